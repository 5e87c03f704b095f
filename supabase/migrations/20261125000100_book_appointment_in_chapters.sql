-- =============================================================================================================
-- book_appointment in chapters: the same booking, the same errors and the same answers as
-- 20261124000700_book_appointment.sql, with each step in a function of its own. book_appointment only calls
-- them in order:
--
--   step                         function                            does
--   request_validation           private.check_booking_arguments     the arguments; gives the form's new patient
--   idempotency                  private.claim_idempotency_key       claims the key; a replay gets its booking back
--   patient_resolution           private.resolve_patient             the given patient, the same person, or a new one
--                                private.insert_patient                the new one's row
--   provider_lookup              private.resolve_provider            exists and is bookable
--   payer_lookup                 private.resolve_payer               self pay or an existing payer the provider takes
--   service_instance_resolution  private.resolve_service_instance    the payer's intake instance, else the global one
--   conflict_check               private.check_slot                  the slot's end; start in the future; the same
--                                                                    patient's same slot comes back as a duplicate
--   appointment_insert           private.insert_appointment          the appointment and its sync job; when an
--                                                                    overlapping booking won the slot meanwhile:
--                                private.settle_slot_conflict          that booking, if it is this patient's same
--                                                                      slot (a double submit), else SLOT_TAKEN
--   (answering)                  private.answer_booking              the key's appointment; the JSON answer
--
-- "The same patient's same slot with the same provider" is looked up in ONE place,
-- private.same_slot_appointment, for check_slot and for settle_slot_conflict.
--
-- Errors keep the scheme documented in 20261124000700_book_appointment.sql (SQLSTATE PT<status>, message = the
-- contract's code, hint = the step, detail = a diagnostic without patient data):
--   * a step function raises its own errors, with its own step, through private.fail;
--   * anything else (a constraint, a trigger, a deadlock, a lock timeout) is caught once, by book_appointment, and
--     private.raise_unexpected_booking_error names it after the step function it arose in (the innermost one in
--     the error's context): DATABASE_UNAVAILABLE (503) when worth retrying, PATIENT_CREATION_FAILED (500) in
--     insert_patient, APPOINTMENT_INSERT_FAILED (500) in insert_appointment, INTERNAL_ERROR (500) elsewhere.
--     Answering runs outside the step functions and counts as part of the step that found or made the
--     appointment (conflict_check for the same patient's same slot, appointment_insert otherwise), as before.
--
-- Two exception blocks (subtransactions) per booking where there were three, four with a date of birth: the one in
-- book_appointment, and the one around the appointment insert that turns an exclusion violation (an overlapping
-- booking won the slot) into SLOT_TAKEN or a duplicate, so that 23P01 never leaves. The patient insert needs none
-- (a failed insert ends the booking anyway; the outer block names it), and a date of birth is checked by
-- arithmetic instead of a cast caught in a block.
--
-- The step functions are internals: not security definer (they run inside book_appointment, as its owner), an
-- empty search_path, and EXECUTE for nobody but their owner.
-- =============================================================================================================

-- request_validation ----------------------------------------------------------------------------------------------

-- The day a YYYY-MM-DD string of ASCII digits names, or NULL when no such day exists (2023-02-29, 2023-13-01,
-- 0000-01-01): exactly the strings of that shape a cast to date refuses, without an exception block to catch it.
create function private.calendar_date(p_text text)
returns date
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_year  integer;
  v_month integer;
  v_day   integer;
  v_days  integer;                                  -- in that month; 0 for a month that does not exist
begin
  if p_text !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' then
    return null;
  end if;
  v_year := substr(p_text, 1, 4)::integer;
  v_month := substr(p_text, 6, 2)::integer;
  v_day := substr(p_text, 9, 2)::integer;
  v_days := case
    when v_month in (1, 3, 5, 7, 8, 10, 12) then 31
    when v_month in (4, 6, 9, 11) then 30
    when v_month = 2 and v_year % 4 = 0 and (v_year % 100 <> 0 or v_year % 400 = 0) then 29
    when v_month = 2 then 28
    else 0 end;
  if v_year < 1 or v_day not between 1 and v_days then
    return null;
  end if;
  return make_date(v_year, v_month, v_day);
end;
$$;

-- Every argument present and well formed. Answers the new patient as the form gives them (names, email, phone,
-- date of birth; trimmed, empty strings as NULL), or NULL when the booking names an existing patient.
create function private.check_booking_arguments(
  p_request_id         text,
  p_provider_id        uuid,
  p_payer_id           text,
  p_start              timestamptz,
  p_location_type      text,
  p_patient_id         uuid,
  p_patient            jsonb,
  p_idempotency_key    text,
  p_notes              text,
  p_insurance          jsonb,
  p_contact            jsonb,
  p_sync_lease_seconds integer
)
returns public.patients
language plpgsql
set search_path = ''
as $$
declare
  v_form public.patients;
begin
  perform private.require_request_id(p_request_id);
  if p_provider_id is null or p_payer_id is null or p_start is null or p_location_type is null then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_provider_id, p_payer_id, p_start and p_location_type are required');
  end if;
  if p_location_type not in ('telehealth', 'in_person') then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_location_type must be telehealth or in_person');
  end if;
  if p_idempotency_key is not null and p_idempotency_key !~ '^[!-~]{1,255}$' then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_idempotency_key must be 1-255 visible ASCII characters');
  end if;
  if char_length(p_notes) > 2000 then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_notes is longer than 2000 characters');
  end if;
  if jsonb_typeof(coalesce(p_insurance, '{}')) <> 'object' or jsonb_typeof(coalesce(p_contact, '{}')) <> 'object' then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_insurance and p_contact must be objects');
  end if;
  if p_sync_lease_seconds is null or p_sync_lease_seconds not between 1 and 600 then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_sync_lease_seconds must be between 1 and 600');
  end if;
  if p_patient_id is not null then
    return null;                                    -- an existing patient: p_patient is not read
  end if;

  if jsonb_typeof(p_patient) is distinct from 'object' then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_patient_id or p_patient is required');
  end if;
  v_form.first_name := nullif(btrim(p_patient->>'first_name'), '');
  v_form.last_name  := nullif(btrim(p_patient->>'last_name'), '');
  v_form.email      := nullif(btrim(p_patient->>'email'), '');
  v_form.phone      := nullif(btrim(p_patient->>'phone'), '');
  if v_form.first_name is null or v_form.last_name is null or v_form.email is null then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_patient needs first_name, last_name and email');
  end if;
  if p_patient->>'date_of_birth' is not null then
    if p_patient->>'date_of_birth' !~ '^\d{4}-\d{2}-\d{2}$' then
      perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_patient.date_of_birth must be YYYY-MM-DD');
    end if;
    v_form.date_of_birth := private.calendar_date(p_patient->>'date_of_birth');
    if v_form.date_of_birth is null then
      perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_patient.date_of_birth is not a date');
    end if;
    if v_form.date_of_birth > current_date then
      perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_patient.date_of_birth is in the future');
    end if;
  end if;
  return v_form;
end;
$$;

-- idempotency -------------------------------------------------------------------------------------------------------

-- Claims the key for this booking. Answers NULL when there is no key or the key is new (the booking goes on), the
-- earlier booking when the key was used by the same request (a replay), and fails when it was used by another.
create function private.claim_idempotency_key(
  p_idempotency_key text,
  p_request_id      text,
  p_patient_id      uuid,
  p_patient         jsonb,
  p_provider_id     uuid,
  p_payer_id        text,
  p_start           timestamptz,
  p_location_type   text,
  p_notes           text,
  p_insurance       jsonb,
  p_contact         jsonb
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_request_hash text;
  v_key          public.idempotency_keys%rowtype;
begin
  if p_idempotency_key is null then
    return null;
  end if;
  -- Everything that makes the request, in a form that does not depend on the session (the start as epoch). The
  -- same hash as before: keys claimed by the previous version still recognise their requests.
  v_request_hash := encode(sha256(convert_to(jsonb_build_object(
    'patient_id', p_patient_id, 'patient', p_patient, 'provider_id', p_provider_id, 'payer_id', p_payer_id,
    'start', extract(epoch from p_start), 'location_type', p_location_type, 'notes', p_notes,
    'insurance', p_insurance, 'contact', p_contact)::text, 'UTF8')), 'hex');
  -- Claim the key. A concurrent claim of the same key waits here until the first transaction ends.
  insert into public.idempotency_keys (key, request_hash, request_id)
  values (p_idempotency_key, v_request_hash, p_request_id)
  on conflict (key) do nothing;
  if found then
    return null;
  end if;
  select * into v_key from public.idempotency_keys where key = p_idempotency_key;
  if v_key.request_hash <> v_request_hash then
    perform private.fail(422, 'IDEMPOTENCY_KEY_REUSED', 'idempotency',
      'this idempotency key was used by request ' || v_key.request_id || ' with a different request');
  end if;
  return private.booking_result(v_key.appointment_id)
    || jsonb_build_object('is_duplicate', false, 'replayed', true, 'patient_created', false);
end;
$$;

-- patient_resolution ------------------------------------------------------------------------------------------------

-- The new patient's row, or NULL when a concurrent first booking of the same person inserted it first. The unique
-- identity index decides between concurrent first bookings: the loser waits, inserts nothing, and reads the
-- winner's row (resolve_patient). Any failure here is PATIENT_CREATION_FAILED.
create function private.insert_patient(p_request_id text, p_form public.patients)
returns public.patients
language plpgsql
set search_path = ''
as $$
declare
  v_patient public.patients;
begin
  insert into public.patients (first_name, last_name, email, phone, date_of_birth, created_by_request_id)
  values (p_form.first_name, p_form.last_name, p_form.email, p_form.phone, p_form.date_of_birth, p_request_id)
  on conflict (email_key, first_name_key, last_name_key, date_of_birth) do nothing
  returning * into v_patient;
  return v_patient;
end;
$$;

-- The patient of the booking: the given p_patient_id, or the same person as the form's (same email, names and date
-- of birth; a row without a date of birth matches any), or a new one. `created` says whether this booking made it.
create function private.resolve_patient(
  p_request_id text,
  p_patient_id uuid,
  p_form       public.patients,
  out patient  public.patients,
  out created  boolean
)
language plpgsql
set search_path = ''
as $$
declare
  v_first_name_key text;
  v_last_name_key  text;
begin
  created := false;
  if p_patient_id is not null then
    select * into patient from public.patients where id = p_patient_id;
    if not found then
      perform private.fail(404, 'PATIENT_NOT_FOUND', 'patient_resolution', 'no patient has this p_patient_id');
    end if;
    return;
  end if;

  v_first_name_key := private.name_key(p_form.first_name);
  v_last_name_key := private.name_key(p_form.last_name);
  select * into patient
  from public.patients p
  where p.email_key = lower(p_form.email) and p.first_name_key = v_first_name_key and p.last_name_key = v_last_name_key
    and (p_form.date_of_birth is null or p.date_of_birth is null or p.date_of_birth = p_form.date_of_birth)
  order by p.date_of_birth is not distinct from p_form.date_of_birth desc, p.created_at
  limit 1;
  if found then
    return;
  end if;

  patient := private.insert_patient(p_request_id, p_form);
  created := patient.id is not null;
  if not created then
    select * into patient
    from public.patients p
    where p.email_key = lower(p_form.email) and p.first_name_key = v_first_name_key and p.last_name_key = v_last_name_key
      and p.date_of_birth is not distinct from p_form.date_of_birth;
    if not found then
      perform private.fail(500, 'PATIENT_CREATION_FAILED', 'patient_resolution', 'patient identity conflicted but no row was found');
    end if;
  end if;
end;
$$;

-- provider_lookup ---------------------------------------------------------------------------------------------------

-- The provider exists and is bookable; answers its id. (Whether it takes the payer is checked by resolve_payer,
-- once the payer is known, and fails as provider_lookup.)
create function private.resolve_provider(p_provider_id uuid)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_is_bookable boolean;
begin
  select pr.is_bookable into v_is_bookable from public.providers pr where pr.id = p_provider_id;
  if not found then
    perform private.fail(404, 'PROVIDER_NOT_FOUND', 'provider_lookup', 'no provider has this p_provider_id');
  end if;
  if not v_is_bookable then
    perform private.fail(422, 'PROVIDER_NOT_BOOKABLE', 'provider_lookup', 'the provider is not bookable');
  end if;
  return p_provider_id;
end;
$$;

-- payer_lookup ------------------------------------------------------------------------------------------------------

-- "cash-payment" is self pay: answers NULL. Otherwise an existing payer, which the provider must take.
create function private.resolve_payer(p_payer_id text, p_provider_id uuid)
returns public.payers
language plpgsql
set search_path = ''
as $$
declare
  v_payer public.payers;
begin
  if p_payer_id = 'cash-payment' then
    return null;
  end if;
  if p_payer_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    perform private.fail(404, 'INVALID_PAYER', 'payer_lookup', 'p_payer_id is neither a uuid nor cash-payment');
  end if;
  select * into v_payer from public.payers where id = p_payer_id::uuid;
  if not found then
    perform private.fail(404, 'INVALID_PAYER', 'payer_lookup', 'no payer has this p_payer_id');
  end if;
  -- Whether the provider takes this payer belongs to the provider's answer (checked now that the payer is known).
  if not exists (select from public.provider_payer_networks n
                 where n.provider_id = p_provider_id and n.payer_id = v_payer.id) then
    perform private.fail(422, 'PROVIDER_NOT_BOOKABLE', 'provider_lookup', 'the provider is not in network for this payer');
  end if;
  return v_payer;
end;
$$;

-- service_instance_resolution ---------------------------------------------------------------------------------------

-- The active intake instance of the payer (NULL: self pay), else the global one, with an IntakeQ service id.
create function private.resolve_service_instance(
  p_payer_id              uuid,
  out service_instance_id uuid,
  out duration_minutes    integer
)
language plpgsql
set search_path = ''
as $$
begin
  select si.id, s.duration_minutes into service_instance_id, duration_minutes
  from public.service_instances si
  join public.services s on s.id = si.service_id
  where si.is_active and si.is_intake and si.intakeq_service_id is not null
    and (si.payer_id = p_payer_id or si.payer_id is null)
  order by si.payer_id is null          -- the payer's own instance before the global one
  limit 1;
  if not found then
    perform private.fail(422, 'SERVICE_INSTANCE_NOT_FOUND', 'service_instance_resolution',
      'no active intake service instance with an IntakeQ service id for this payer, nor a global one');
  end if;
end;
$$;

-- conflict_check ----------------------------------------------------------------------------------------------------

-- THE same-slot lookup: the same patient's active appointment with the same provider at the same start, if any.
-- Used before inserting (check_slot) and after an overlapping booking won the slot (settle_slot_conflict).
create function private.same_slot_appointment(p_patient_id uuid, p_provider_id uuid, p_start timestamptz)
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  v_appointment_id uuid;
begin
  select a.id into v_appointment_id
  from public.appointments a
  where a.patient_id = p_patient_id and a.provider_id = p_provider_id and a.start_time = p_start
    and a.status <> 'cancelled';
  return v_appointment_id;
end;
$$;

-- The slot: it starts in the future; when it ends (start + the service's duration); and the same patient's
-- appointment in it, when they asked for it before (a duplicate, answered with that appointment).
create function private.check_slot(
  p_patient_id       uuid,
  p_provider_id      uuid,
  p_start            timestamptz,
  p_duration_minutes integer,
  out end_time       timestamptz,
  out same_slot_id   uuid
)
language plpgsql
set search_path = ''
as $$
begin
  if p_start <= now() then
    perform private.fail(422, 'SLOT_IN_PAST', 'conflict_check', 'the start is not in the future');
  end if;
  end_time := p_start + make_interval(mins => p_duration_minutes);
  same_slot_id := private.same_slot_appointment(p_patient_id, p_provider_id, p_start);
end;
$$;

-- appointment_insert ------------------------------------------------------------------------------------------------

-- An overlapping booking of the provider committed first while this one waited on it (the check saw nothing). If
-- it is this patient's same slot (a concurrent double submit), answers it; otherwise the slot is taken.
create function private.settle_slot_conflict(p_patient_id uuid, p_provider_id uuid, p_start timestamptz)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_appointment_id uuid;
begin
  v_appointment_id := private.same_slot_appointment(p_patient_id, p_provider_id, p_start);
  if v_appointment_id is null then
    perform private.fail(409, 'SLOT_TAKEN', 'conflict_check', 'the provider has another appointment overlapping this time');
  end if;
  return v_appointment_id;
end;
$$;

-- The appointment (pending_sync / pending) with what the form said, and its sync job, leased to the calling request
-- so that it can sync it first; due for the cron once the lease ends. The exclusion constraint decides overlaps
-- under concurrency: the insert waits for an overlapping booking in flight and fails with an exclusion violation if
-- it commits; settle_slot_conflict then says what that booking is to this one (the one exception block a booking
-- keeps besides book_appointment's: the booking goes on after it). Any other failure is APPOINTMENT_INSERT_FAILED.
-- (Not ON CONFLICT DO NOTHING on the constraint: that probes the GiST index once more per booking, which costs more
-- than the subtransaction, the more so the more appointments there are.)
create function private.insert_appointment(
  p_request_id          text,
  p_patient             public.patients,
  p_form                public.patients,
  p_provider_id         uuid,
  p_payer               public.payers,
  p_service_instance_id uuid,
  p_start               timestamptz,
  p_end                 timestamptz,
  p_location_type       text,
  p_notes               text,
  p_insurance           jsonb,
  p_contact             jsonb,
  p_sync_lease_seconds  integer,
  out appointment_id    uuid,
  out is_duplicate      boolean
)
language plpgsql
set search_path = ''
as $$
declare
  v_try integer;
begin
  -- Two bookings racing for one slot can each wait for the other's index entry (an exclusion constraint checks
  -- after inserting). Postgres breaks such a deadlock by failing one of them: that one tries again, now behind
  -- the other, and so meets its outcome (the slot taken, or free again) instead of answering "unavailable".
  for v_try in 1..3 loop
  begin
    insert into public.appointments (
      patient_id, provider_id, payer_id, service_instance_id, start_time, end_time, location_type,
      notes, patient_info, insurance_info, request_id)
    values (
      p_patient.id, p_provider_id, p_payer.id, p_service_instance_id, p_start, p_end, p_location_type,
      p_notes,
      jsonb_strip_nulls(jsonb_build_object(
        'first_name',    coalesce(p_form.first_name, p_patient.first_name),
        'last_name',     coalesce(p_form.last_name, p_patient.last_name),
        'email',         coalesce(p_form.email, p_patient.email),
        'phone',         coalesce(p_form.phone, p_patient.phone),
        'date_of_birth', coalesce(p_form.date_of_birth, p_patient.date_of_birth),
        'case_manager',  nullif(jsonb_strip_nulls(coalesce(p_contact, '{}')), '{}'))),
      jsonb_strip_nulls(jsonb_build_object(
        'self_pay',      p_payer.id is null,
        'payer_id',      p_payer.id,
        'payer_name',    p_payer.name,
        'member_id',     p_insurance->>'member_id',
        'group_number',  p_insurance->>'group_number')),
      p_request_id)
    returning id into appointment_id;
    exit;
  exception
    when exclusion_violation then
      appointment_id := private.settle_slot_conflict(p_patient.id, p_provider_id, p_start);
      is_duplicate := true;
      return;
    when deadlock_detected then
      if v_try = 3 then
        raise;
      end if;
  end;
  end loop;
  is_duplicate := false;
  insert into public.sync_retry_queue (appointment_id, request_id, locked_by, locked_until, next_retry_at)
  values (appointment_id, p_request_id, p_request_id,
          now() + make_interval(secs => p_sync_lease_seconds), now() + make_interval(secs => p_sync_lease_seconds));
end;
$$;

-- Answering ---------------------------------------------------------------------------------------------------------

-- Records which appointment the idempotency key stands for, and answers with everything the worker needs.
create function private.answer_booking(
  p_appointment_id  uuid,
  p_is_duplicate    boolean,
  p_patient_created boolean,
  p_idempotency_key text
)
returns jsonb
language plpgsql
set search_path = ''
as $$
begin
  if p_idempotency_key is not null then
    update public.idempotency_keys set appointment_id = p_appointment_id where key = p_idempotency_key;
  end if;
  return private.booking_result(p_appointment_id)
    || jsonb_build_object('is_duplicate', p_is_duplicate, 'replayed', false, 'patient_created', p_patient_created);
end;
$$;

-- Errors no step raised itself ----------------------------------------------------------------------------------------

-- Raises an error that is not in the booking scheme yet (any SQLSTATE but PT*) in it, named after the step function
-- it arose in: the innermost one in the error's context (p_context, GET STACKED DIAGNOSTICS PG_EXCEPTION_CONTEXT,
-- innermost first). p_answer_step is the step of an error raised outside every step function (answering).
create function private.raise_unexpected_booking_error(
  p_sqlstate    text,
  p_constraint  text,
  p_context     text,
  p_answer_step text
)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_function text := substring(p_context from
    'PL/pgSQL function (?:private\.)?(check_booking_arguments|claim_idempotency_key|resolve_patient|insert_patient|'
    'resolve_provider|resolve_payer|resolve_service_instance|check_slot|insert_appointment|settle_slot_conflict)\(');
  v_step text := case v_function
    when 'check_booking_arguments'  then 'request_validation'
    when 'claim_idempotency_key'    then 'idempotency'
    when 'resolve_patient'          then 'patient_resolution'
    when 'insert_patient'           then 'patient_resolution'
    when 'resolve_provider'         then 'provider_lookup'
    when 'resolve_payer'            then 'payer_lookup'
    when 'resolve_service_instance' then 'service_instance_resolution'
    when 'check_slot'               then 'conflict_check'
    when 'insert_appointment'       then 'appointment_insert'
    when 'settle_slot_conflict'     then 'appointment_insert'
    else p_answer_step end;
  v_diagnostic text := p_sqlstate || coalesce(' ' || nullif(p_constraint, ''), '');
begin
  if private.is_transient(p_sqlstate) then
    perform private.fail(503, 'DATABASE_UNAVAILABLE', v_step, 'database unavailable: ' || p_sqlstate);
  end if;
  if v_function = 'insert_patient' then
    perform private.fail(500, 'PATIENT_CREATION_FAILED', v_step, 'patient insert failed: ' || v_diagnostic);
  end if;
  if v_function = 'insert_appointment' then
    perform private.fail(500, 'APPOINTMENT_INSERT_FAILED', v_step, 'appointment insert failed: ' || v_diagnostic);
  end if;
  perform private.fail(500, 'INTERNAL_ERROR', v_step, 'unexpected error: ' || v_diagnostic);
end;
$$;

-- The booking -------------------------------------------------------------------------------------------------------

create or replace function public.book_appointment(
  p_request_id          text,
  p_provider_id         uuid,
  p_payer_id            text,            -- a payer's uuid, or 'cash-payment'
  p_start               timestamptz,
  p_location_type       text,            -- 'telehealth' | 'in_person'
  p_patient_id          uuid    default null,
  p_patient             jsonb   default null,  -- {first_name, last_name, email, phone?, date_of_birth?}
  p_idempotency_key     text    default null,
  p_notes               text    default null,
  p_insurance           jsonb   default null,  -- {member_id?, group_number?}
  p_contact             jsonb   default null,  -- case manager {name?, email?, phone?}
  p_sync_lease_seconds  integer default 60
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_form        public.patients;  -- the new patient as the form gives them; NULL with p_patient_id
  v_replay      jsonb;            -- the earlier booking of a replayed idempotency key
  v_patient     record;           -- patient, created
  v_provider_id uuid;
  v_payer       public.payers;    -- NULL for self pay
  v_instance    record;           -- service_instance_id, duration_minutes
  v_slot        record;           -- end_time, same_slot_id
  v_booked      record;           -- appointment_id, is_duplicate
  v_sqlstate    text;
  v_constraint  text;
  v_context     text;
begin
  v_form := private.check_booking_arguments(p_request_id, p_provider_id, p_payer_id, p_start, p_location_type,
    p_patient_id, p_patient, p_idempotency_key, p_notes, p_insurance, p_contact, p_sync_lease_seconds);
  v_replay := private.claim_idempotency_key(p_idempotency_key, p_request_id, p_patient_id, p_patient, p_provider_id,
    p_payer_id, p_start, p_location_type, p_notes, p_insurance, p_contact);
  if v_replay is not null then
    return v_replay;
  end if;
  v_patient := private.resolve_patient(p_request_id, p_patient_id, v_form);
  v_provider_id := private.resolve_provider(p_provider_id);
  v_payer := private.resolve_payer(p_payer_id, v_provider_id);
  v_instance := private.resolve_service_instance(v_payer.id);
  v_slot := private.check_slot((v_patient.patient).id, v_provider_id, p_start, v_instance.duration_minutes);
  if v_slot.same_slot_id is not null then
    return private.answer_booking(v_slot.same_slot_id, true, v_patient.created, p_idempotency_key);
  end if;
  v_booked := private.insert_appointment(p_request_id, v_patient.patient, v_form, v_provider_id, v_payer,
    v_instance.service_instance_id, p_start, v_slot.end_time, p_location_type, p_notes, p_insurance, p_contact,
    p_sync_lease_seconds);
  return private.answer_booking(v_booked.appointment_id, v_booked.is_duplicate, v_patient.created, p_idempotency_key);

exception
  when others then
    get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name, v_context = pg_exception_context;
    if v_sqlstate like 'PT%' then
      raise;                                        -- a step's own error, already in the booking error scheme
    end if;
    -- Answering belongs to the step that found the appointment: conflict_check for the same slot, else the insert.
    perform private.raise_unexpected_booking_error(v_sqlstate, v_constraint, v_context,
      case when v_booked is null then 'conflict_check' else 'appointment_insert' end);
end;
$$;

comment on function public.book_appointment is
  'Books an intake appointment in one transaction. Errors: SQLSTATE PT<http status>, message = contract code, hint = step.';

revoke all on function public.book_appointment from public, anon, authenticated;
grant execute on function public.book_appointment to service_role;

-- Internals: EXECUTE for nobody but their owner (book_appointment runs as that owner).
revoke all on function
  private.calendar_date(text),
  private.check_booking_arguments(text, uuid, text, timestamptz, text, uuid, jsonb, text, text, jsonb, jsonb, integer),
  private.claim_idempotency_key(text, text, uuid, jsonb, uuid, text, timestamptz, text, text, jsonb, jsonb),
  private.insert_patient(text, public.patients),
  private.resolve_patient(text, uuid, public.patients),
  private.resolve_provider(uuid),
  private.resolve_payer(text, uuid),
  private.resolve_service_instance(uuid),
  private.same_slot_appointment(uuid, uuid, timestamptz),
  private.check_slot(uuid, uuid, timestamptz, integer),
  private.settle_slot_conflict(uuid, uuid, timestamptz),
  private.insert_appointment(text, public.patients, public.patients, uuid, public.payers, uuid, timestamptz,
                             timestamptz, text, text, jsonb, jsonb, integer),
  private.answer_booking(uuid, boolean, boolean, text),
  private.raise_unexpected_booking_error(text, text, text, text)
from public, anon, authenticated, service_role;
