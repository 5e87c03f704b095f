-- =============================================================================================================
-- book_appointment: the whole database half of a booking, in ONE transaction (the PostgREST request's).
-- Either every row is written (patient if new, appointment, sync job, idempotency key) or none is.
--
-- Steps, in order; each error names the step it failed in:
--   request_validation           required arguments present and well formed
--   idempotency                  a replayed key returns its booking; a reused key with another request fails
--   patient_resolution           the given patient_id, or the patient found by normalised identity, or a new one
--   provider_lookup              exists, bookable, and takes the payer (in network; self pay: any bookable)
--   payer_lookup                 "cash-payment" = self pay (payer NULL), else an existing payer
--   service_instance_resolution  the active intake instance of the payer, else the global one, with an IntakeQ id
--   conflict_check               start in the future; the same patient's same slot comes back as a duplicate;
--                                an overlap with another active appointment of the provider is refused
--   appointment_insert           the appointment (pending_sync / pending) and its sync job, leased for a short
--                                while to the calling request so that it can sync it first
--
-- Error scheme (what the worker reads from PostgREST's error body {code, message, details, hint}):
--   code     'PT' || HTTP status, e.g. PT409. PostgREST answers with that status (see postgrest-contract.md).
--   message  the contract's error code, e.g. SLOT_TAKEN.
--   hint     the step, e.g. conflict_check.
--   details  a diagnostic for logs and the failure record: never patient data, not meant for patients.
-- Any other SQLSTATE reaching the worker is a bug or an outage. An exclusion violation never leaves this
-- function as 23P01 (PostgREST would answer 400): it becomes SLOT_TAKEN, 409.
-- =============================================================================================================

-- Errors of the database rather than of the request, worth retrying: serialization failure and deadlock (40),
-- insufficient resources (53), operator intervention such as shutdown (57), lock not available (55P03).
create function private.is_transient(p_sqlstate text)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select left(p_sqlstate, 2) in ('40', '53', '57') or p_sqlstate = '55P03';
$$;

-- RFC 3339 in UTC, whatever the session's time zone.
create function private.rfc3339(p_at timestamptz)
returns text
language sql
immutable
set search_path = ''
as $$
  select to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
$$;

-- Everything the worker needs to answer and to sync, read from the current rows.
create function private.booking_result(p_appointment_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'appointment_id',    a.id,
    'request_id',        a.request_id,
    'status',            a.status,
    'sync_status',       a.sync_status,
    'pq_appointment_id', a.pq_appointment_id,
    'start',             private.rfc3339(a.start_time),
    'end',               private.rfc3339(a.end_time),
    'duration_minutes',  (extract(epoch from a.end_time - a.start_time) / 60)::integer,
    'location_type',     a.location_type,
    'payer_id',          a.payer_id,
    'notes',             a.notes,
    'patient', jsonb_build_object(
      'id',                p.id,
      'first_name',        p.first_name,
      'last_name',         p.last_name,
      'email',             p.email,
      'phone',             p.phone,
      'date_of_birth',     p.date_of_birth,
      'intakeq_client_id', p.intakeq_client_id),
    'provider', jsonb_build_object(
      'id',   pr.id,
      'name', concat_ws(', ', pr.first_name || ' ' || pr.last_name, pr.title)),
    'intakeq', jsonb_build_object(
      'practitioner_id', pr.intakeq_practitioner_id,
      'service_id',      si.intakeq_service_id,
      'location_id',     coalesce(py.intakeq_location_id, ps.self_pay_intakeq_location_id),
      'client_id',       p.intakeq_client_id),
    'sync_job', case when q.id is not null then jsonb_build_object(
      'id',           q.id,
      'state',        q.state,
      'retry_count',  q.retry_count,
      'locked_by',    q.locked_by,
      'locked_until', private.rfc3339(q.locked_until)) end)
  from public.appointments a
  join public.patients p           on p.id = a.patient_id
  join public.providers pr         on pr.id = a.provider_id
  join public.service_instances si on si.id = a.service_instance_id
  left join public.payers py       on py.id = a.payer_id
  left join public.practice_settings ps on true
  left join public.sync_retry_queue q   on q.appointment_id = a.id
  where a.id = p_appointment_id;
$$;

create function public.book_appointment(
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
  v_step            text := 'request_validation';
  v_first_name      text;
  v_last_name       text;
  v_email           text;
  v_first_name_key  text;
  v_last_name_key   text;
  v_phone           text;
  v_dob             date;
  v_request_hash    text;
  v_key             public.idempotency_keys%rowtype;
  v_patient         public.patients%rowtype;
  v_patient_created boolean := false;
  v_provider        public.providers%rowtype;
  v_payer           public.payers%rowtype;
  v_instance_id     uuid;
  v_duration        integer;
  v_end             timestamptz;
  v_appointment_id  uuid;
  v_is_duplicate    boolean := false;
  v_sqlstate        text;
  v_constraint      text;
begin
  ---------------------------------------------------------------------------------------------- request_validation
  perform private.require_request_id(p_request_id);
  if p_provider_id is null or p_payer_id is null or p_start is null or p_location_type is null then
    perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_provider_id, p_payer_id, p_start and p_location_type are required');
  end if;
  if p_location_type not in ('telehealth', 'in_person') then
    perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_location_type must be telehealth or in_person');
  end if;
  if p_idempotency_key is not null and p_idempotency_key !~ '^[!-~]{1,255}$' then
    perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_idempotency_key must be 1-255 visible ASCII characters');
  end if;
  if char_length(p_notes) > 2000 then
    perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_notes is longer than 2000 characters');
  end if;
  if jsonb_typeof(coalesce(p_insurance, '{}')) <> 'object' or jsonb_typeof(coalesce(p_contact, '{}')) <> 'object' then
    perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_insurance and p_contact must be objects');
  end if;
  if p_sync_lease_seconds is null or p_sync_lease_seconds not between 1 and 600 then
    perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_sync_lease_seconds must be between 1 and 600');
  end if;
  if p_patient_id is null then
    if jsonb_typeof(p_patient) is distinct from 'object' then
      perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_patient_id or p_patient is required');
    end if;
    v_first_name := nullif(btrim(p_patient->>'first_name'), '');
    v_last_name  := nullif(btrim(p_patient->>'last_name'), '');
    v_email      := nullif(btrim(p_patient->>'email'), '');
    v_phone      := nullif(btrim(p_patient->>'phone'), '');
    if v_first_name is null or v_last_name is null or v_email is null then
      perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_patient needs first_name, last_name and email');
    end if;
    if p_patient->>'date_of_birth' is not null then
      if p_patient->>'date_of_birth' !~ '^\d{4}-\d{2}-\d{2}$' then
        perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_patient.date_of_birth must be YYYY-MM-DD');
      end if;
      begin
        v_dob := (p_patient->>'date_of_birth')::date;
      exception when others then
        perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_patient.date_of_birth is not a date');
      end;
      if v_dob > current_date then
        perform private.fail(400, 'INVALID_REQUEST', v_step, 'p_patient.date_of_birth is in the future');
      end if;
    end if;
  end if;

  ---------------------------------------------------------------------------------------------------- idempotency
  v_step := 'idempotency';
  if p_idempotency_key is not null then
    -- Everything that makes the request, in a form that does not depend on the session (the start as epoch).
    v_request_hash := encode(sha256(convert_to(jsonb_build_object(
      'patient_id', p_patient_id, 'patient', p_patient, 'provider_id', p_provider_id, 'payer_id', p_payer_id,
      'start', extract(epoch from p_start), 'location_type', p_location_type, 'notes', p_notes,
      'insurance', p_insurance, 'contact', p_contact)::text, 'UTF8')), 'hex');
    -- Claim the key. A concurrent claim of the same key waits here until the first transaction ends.
    insert into public.idempotency_keys (key, request_hash, request_id)
    values (p_idempotency_key, v_request_hash, p_request_id)
    on conflict (key) do nothing;
    if not found then
      select * into v_key from public.idempotency_keys where key = p_idempotency_key;
      if v_key.request_hash <> v_request_hash then
        perform private.fail(422, 'IDEMPOTENCY_KEY_REUSED', v_step,
          'this idempotency key was used by request ' || v_key.request_id || ' with a different request');
      end if;
      return private.booking_result(v_key.appointment_id)
        || jsonb_build_object('is_duplicate', false, 'replayed', true, 'patient_created', false);
    end if;
  end if;

  --------------------------------------------------------------------------------------------- patient_resolution
  v_step := 'patient_resolution';
  if p_patient_id is not null then
    select * into v_patient from public.patients where id = p_patient_id;
    if not found then
      perform private.fail(404, 'PATIENT_NOT_FOUND', v_step, 'no patient has this p_patient_id');
    end if;
  else
    -- The same person: same email, names and date of birth; a row without a date of birth matches any.
    v_first_name_key := private.name_key(v_first_name);
    v_last_name_key := private.name_key(v_last_name);
    select * into v_patient
    from public.patients p
    where p.email_key = lower(v_email) and p.first_name_key = v_first_name_key and p.last_name_key = v_last_name_key
      and (v_dob is null or p.date_of_birth is null or p.date_of_birth = v_dob)
    order by p.date_of_birth is not distinct from v_dob desc, p.created_at
    limit 1;
    if not found then
      begin
        -- The unique identity index decides between concurrent first bookings: the loser waits, inserts
        -- nothing, and reads the winner's row below.
        insert into public.patients (first_name, last_name, email, phone, date_of_birth, created_by_request_id)
        values (v_first_name, v_last_name, v_email, v_phone, v_dob, p_request_id)
        on conflict (email_key, first_name_key, last_name_key, date_of_birth) do nothing
        returning * into v_patient;
      exception when others then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
        if private.is_transient(v_sqlstate) then
          raise;
        end if;
        perform private.fail(500, 'PATIENT_CREATION_FAILED', v_step,
          'patient insert failed: ' || v_sqlstate || coalesce(' ' || nullif(v_constraint, ''), ''));
      end;
      if v_patient.id is not null then
        v_patient_created := true;
      else
        select * into v_patient
        from public.patients p
        where p.email_key = lower(v_email) and p.first_name_key = v_first_name_key and p.last_name_key = v_last_name_key
          and p.date_of_birth is not distinct from v_dob;
        if not found then
          perform private.fail(500, 'PATIENT_CREATION_FAILED', v_step, 'patient identity conflicted but no row was found');
        end if;
      end if;
    end if;
  end if;

  ------------------------------------------------------------------------------------------------ provider_lookup
  v_step := 'provider_lookup';
  select * into v_provider from public.providers where id = p_provider_id;
  if not found then
    perform private.fail(404, 'PROVIDER_NOT_FOUND', v_step, 'no provider has this p_provider_id');
  end if;
  if not v_provider.is_bookable then
    perform private.fail(422, 'PROVIDER_NOT_BOOKABLE', v_step, 'the provider is not bookable');
  end if;

  --------------------------------------------------------------------------------------------------- payer_lookup
  v_step := 'payer_lookup';
  if p_payer_id <> 'cash-payment' then
    if p_payer_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      perform private.fail(404, 'INVALID_PAYER', v_step, 'p_payer_id is neither a uuid nor cash-payment');
    end if;
    select * into v_payer from public.payers where id = p_payer_id::uuid;
    if not found then
      perform private.fail(404, 'INVALID_PAYER', v_step, 'no payer has this p_payer_id');
    end if;
    -- Whether the provider takes this payer belongs to the provider's answer (checked now that the payer is known).
    if not exists (select from public.provider_payer_networks n
                   where n.provider_id = v_provider.id and n.payer_id = v_payer.id) then
      perform private.fail(422, 'PROVIDER_NOT_BOOKABLE', 'provider_lookup', 'the provider is not in network for this payer');
    end if;
  end if;

  ------------------------------------------------------------------------------------ service_instance_resolution
  v_step := 'service_instance_resolution';
  select si.id, s.duration_minutes into v_instance_id, v_duration
  from public.service_instances si
  join public.services s on s.id = si.service_id
  where si.is_active and si.is_intake and si.intakeq_service_id is not null
    and (si.payer_id = v_payer.id or si.payer_id is null)
  order by si.payer_id is null          -- the payer's own instance before the global one
  limit 1;
  if not found then
    perform private.fail(422, 'SERVICE_INSTANCE_NOT_FOUND', v_step,
      'no active intake service instance with an IntakeQ service id for this payer, nor a global one');
  end if;

  ------------------------------------------------------------------------------------------------- conflict_check
  v_step := 'conflict_check';
  if p_start <= now() then
    perform private.fail(422, 'SLOT_IN_PAST', v_step, 'the start is not in the future');
  end if;
  v_end := p_start + make_interval(mins => v_duration);
  -- The same patient asking again for the same slot gets that appointment back.
  select a.id into v_appointment_id
  from public.appointments a
  where a.patient_id = v_patient.id and a.provider_id = v_provider.id and a.start_time = p_start
    and a.status <> 'cancelled';
  v_is_duplicate := found;

  --------------------------------------------------------------------------------------------- appointment_insert
  if not v_is_duplicate then
    v_step := 'appointment_insert';
    begin
      insert into public.appointments (
        patient_id, provider_id, payer_id, service_instance_id, start_time, end_time, location_type,
        notes, patient_info, insurance_info, request_id)
      values (
        v_patient.id, v_provider.id, v_payer.id, v_instance_id, p_start, v_end, p_location_type,
        p_notes,
        jsonb_strip_nulls(jsonb_build_object(
          'first_name',    coalesce(v_first_name, v_patient.first_name),
          'last_name',     coalesce(v_last_name, v_patient.last_name),
          'email',         coalesce(v_email, v_patient.email),
          'phone',         coalesce(v_phone, v_patient.phone),
          'date_of_birth', coalesce(v_dob, v_patient.date_of_birth),
          'case_manager',  nullif(jsonb_strip_nulls(coalesce(p_contact, '{}')), '{}'))),
        jsonb_strip_nulls(jsonb_build_object(
          'self_pay',      v_payer.id is null,
          'payer_id',      v_payer.id,
          'payer_name',    v_payer.name,
          'member_id',     p_insurance->>'member_id',
          'group_number',  p_insurance->>'group_number')),
        p_request_id)
      returning id into v_appointment_id;

      -- The outbox job, leased to this request so that it can sync right away; due for the cron otherwise.
      insert into public.sync_retry_queue (appointment_id, request_id, locked_by, locked_until, next_retry_at)
      values (v_appointment_id, p_request_id, p_request_id,
              now() + make_interval(secs => p_sync_lease_seconds), now() + make_interval(secs => p_sync_lease_seconds));
    exception
      when exclusion_violation then
        -- Another booking of this provider committed first while we waited on it. If it is this patient's
        -- same slot (a concurrent double submit), answer with it; otherwise the slot is taken.
        select a.id into v_appointment_id
        from public.appointments a
        where a.patient_id = v_patient.id and a.provider_id = v_provider.id and a.start_time = p_start
          and a.status <> 'cancelled';
        if not found then
          perform private.fail(409, 'SLOT_TAKEN', 'conflict_check',
            'the provider has another appointment overlapping this time');
        end if;
        v_is_duplicate := true;
      when others then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
        if private.is_transient(v_sqlstate) then
          raise;
        end if;
        perform private.fail(500, 'APPOINTMENT_INSERT_FAILED', v_step,
          'appointment insert failed: ' || v_sqlstate || coalesce(' ' || nullif(v_constraint, ''), ''));
    end;
  end if;

  if p_idempotency_key is not null then
    update public.idempotency_keys set appointment_id = v_appointment_id where key = p_idempotency_key;
  end if;

  return private.booking_result(v_appointment_id)
    || jsonb_build_object('is_duplicate', v_is_duplicate, 'replayed', false, 'patient_created', v_patient_created);

exception
  when others then
    get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
    if v_sqlstate like 'PT%' then
      raise;                                        -- already in the booking error scheme
    end if;
    if private.is_transient(v_sqlstate) then
      perform private.fail(503, 'DATABASE_UNAVAILABLE', v_step, 'database unavailable: ' || v_sqlstate);
    end if;
    perform private.fail(500, 'INTERNAL_ERROR', v_step,
      'unexpected error: ' || v_sqlstate || coalesce(' ' || nullif(v_constraint, ''), ''));
end;
$$;

comment on function public.book_appointment is
  'Books an intake appointment in one transaction. Errors: SQLSTATE PT<http status>, message = contract code, hint = step.';

revoke all on function public.book_appointment from public, anon, authenticated;
grant execute on function public.book_appointment to service_role;
