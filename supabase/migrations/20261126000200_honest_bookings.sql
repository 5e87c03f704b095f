-- =============================================================================================================
-- Honest bookings (issue 12, the database half). The booking route is on the open internet, in front of health
-- data: a booking must not tell a stranger who is seeing whom and when, must book only what the practice offers,
-- and must let the worker learn the truth after a timeout.
--
--   no data oracle    A booking answers as the duplicate of an existing appointment (its ids, is_duplicate) only
--                     when the request identifies the patient fully: email, first and last name and date of
--                     birth all known, on the form and on the patient row, and equal; or when it names
--                     p_patient_id (only the practice's own tools may: the worker checks). Anything weaker that
--                     meets an appointment is SLOT_TAKEN, like any taken slot, with the same detail. A form
--                     never attaches to a patient row that knows more than the form: a form without a date of
--                     birth only to a row without one (a form with one: the row with the same one, else a row
--                     without one).
--   trusted callers   p_patient_id may come with p_patient; the details must not contradict the patient's
--                     (email, names, date of birth when both know it): PATIENT_MISMATCH 422, nothing written.
--   Unicode           names and emails are normalised to NFC before their keys are computed
--                     (private.name_key, private.email_key), in the generated columns, the identity index and
--                     every lookup: "José" typed with a combining accent is the same patient.
--   bookable times    one patient never holds two overlapping active appointments (exclusion constraint
--                     appointments_no_patient_overlap; PATIENT_SLOT_TAKEN 409); a start must be aligned to
--                     practice_settings.slot_granularity_minutes and at least min_booking_notice_minutes ahead
--                     (SLOT_NOT_OFFERED 422). The settings are the practice's: the function enforces them
--                     whoever calls it.
--   a timeout         book_appointment holds an advisory lock named after its request id until its transaction
--                     ends; booking_by_request waits on it, boundedly, then answers what the request booked (the
--                     booking's answer) or NULL.
--
-- The steps of book_appointment stay those of 20261125000100_book_appointment_in_chapters.sql; resolve_patient
-- now also says whether the request `identified` the patient, and check_slot, insert_appointment and
-- settle_slot_conflict take that answer.
-- =============================================================================================================

-- Unicode: NFC before identity --------------------------------------------------------------------------------

-- How emails compare: NFC, case folded. (Stored emails are trimmed by book_appointment; the key never was.)
create function private.email_key(p_email text)
returns text
language sql
immutable
set search_path = ''
as $$
  select lower(normalize(p_email, nfc));
$$;

-- How names compare: NFC, case folded, whitespace trimmed and runs of it collapsed ("  Mary  Ann " = "mary ann").
-- (normalize() is immutable: a Postgres upgrade with a newer Unicode could in principle change a key; NFC of
-- assigned characters is stable by Unicode's own policy.)
create or replace function private.name_key(p_name text)
returns text
language sql
immutable
set search_path = ''
as $$
  select lower(btrim(regexp_replace(normalize(p_name, nfc), '\s+', ' ', 'g')));
$$;

-- Existing rows that the new keys make one identity (the same person typed once in NFC and once in NFD) would
-- stop the identity index below with an error quoting their email and names. Stop first, naming only ids: staff
-- merge those rows (move the appointments, delete the copy) and migrate again.
do $$
declare
  v_groups text;
begin
  select string_agg(ids, '; ') into v_groups
  from (select string_agg(p.id::text, ', ' order by p.created_at) as ids
        from public.patients p
        group by private.email_key(p.email), private.name_key(p.first_name), private.name_key(p.last_name),
                 p.date_of_birth                                 -- group by: NULLs together, like NULLS NOT DISTINCT
        having count(*) > 1) same_person;
  if v_groups is not null then
    raise exception 'patients that NFC makes one identity (merge each group, then migrate again): %', v_groups;
  end if;
end;
$$;

-- The keys are stored generated columns: Postgres 15 cannot change their expression, so they are dropped (the
-- identity index goes with them) and added again, which rewrites the table and computes every row's keys anew.
alter table public.patients
  drop column email_key,
  drop column first_name_key,
  drop column last_name_key;
alter table public.patients
  add column email_key      text not null generated always as (private.email_key(email)) stored,
  add column first_name_key text not null generated always as (private.name_key(first_name)) stored,
  add column last_name_key  text not null generated always as (private.name_key(last_name)) stored;
create unique index patients_identity
  on public.patients (email_key, first_name_key, last_name_key, date_of_birth) nulls not distinct;

-- Bookable times -----------------------------------------------------------------------------------------------

-- Existing appointments one patient holds at overlapping times would stop the constraint below (an exclusion
-- constraint cannot be added NOT VALID). Stop first, naming the appointments: staff cancel one of each pair.
do $$
declare
  v_pairs text;
begin
  select string_agg(a.id || ' & ' || b.id, '; ') into v_pairs
  from public.appointments a
  join public.appointments b
    on b.patient_id = a.patient_id and b.id > a.id
   and tstzrange(b.start_time, b.end_time, '[)') && tstzrange(a.start_time, a.end_time, '[)')
  where a.status <> 'cancelled' and b.status <> 'cancelled';
  if v_pairs is not null then
    raise exception 'one patient''s active appointments overlap (cancel one of each pair, then migrate again): %', v_pairs;
  end if;
end;
$$;

-- A patient cannot hold two active appointments that overlap, with one provider or two: like the provider's
-- constraint, it decides under concurrency whatever the caller checked before.
alter table public.appointments
  add constraint appointments_no_patient_overlap exclude using gist (
    patient_id with =,
    tstzrange(start_time, end_time, '[)') with &&
  ) where (status <> 'cancelled');

-- What the practice offers: starts on a grid (minutes dividing an hour, so the grid is the clock's: every hour
-- starts a slot, in UTC and in every time zone a whole number of slots away from it), and not too soon.
alter table public.practice_settings
  add column slot_granularity_minutes integer not null default 5
    constraint practice_settings_slot_granularity_divides_an_hour
    check (slot_granularity_minutes between 1 and 60 and 60 % slot_granularity_minutes = 0),
  add column min_booking_notice_minutes integer not null default 60
    constraint practice_settings_min_booking_notice_bounded
    check (min_booking_notice_minutes between 0 and 43200);
comment on column public.practice_settings.slot_granularity_minutes is
  'A start must be a whole multiple of this many minutes since the Unix epoch (UTC), seconds included; divides 60.';
comment on column public.practice_settings.min_booking_notice_minutes is
  'A start must be at least this many minutes ahead of the database''s clock; 0 to 43200 (30 days).';

-- A timeout tells the truth --------------------------------------------------------------------------------------

-- The advisory lock a booking holds for its transaction, named after its request id.
create function private.booking_lock_key(p_request_id text)
returns bigint
language sql
immutable
set search_path = ''
as $$
  select hashtextextended('booking:' || p_request_id, 0);
$$;

-- A booking call the worker gave up on, and told its client failed (booking_by_request found no booking for it):
-- if that call only now reaches the database (it waited for a connection, say), it must not book. The worker
-- names each call with a fresh id (p_call_id); a retry is a new call, so it is never refused for an old one.
create table public.abandoned_booking_calls (
  call_id      uuid primary key,
  request_id   text check (char_length(request_id) <= 64),
  abandoned_at timestamptz not null default now()
);
create index abandoned_booking_calls_abandoned_at on public.abandoned_booking_calls (abandoned_at);
select private.close_to_browser_roles('public.abandoned_booking_calls');
comment on table public.abandoned_booking_calls is
  'Booking calls the worker stopped waiting for and answered 503: they may not book when they arrive late.';

-- The advisory lock a call holds for its transaction (booking_by_request takes it to settle the call's fate).
create function private.booking_call_lock_key(p_call_id uuid)
returns bigint
language sql
immutable
set search_path = ''
as $$
  select hashtextextended('booking-call:' || p_call_id, 0);
$$;

-- The start of a booking: the request's lock and the call's (until the transaction ends), then no booking for a
-- call the worker already gave up on: 503, as its client was told.
create function private.claim_booking_call(p_request_id text, p_call_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform pg_advisory_xact_lock(private.booking_lock_key(p_request_id));
  if p_call_id is not null then
    perform pg_advisory_xact_lock(private.booking_call_lock_key(p_call_id));
    if exists (select from public.abandoned_booking_calls where call_id = p_call_id) then
      perform private.fail(503, 'DATABASE_UNAVAILABLE', 'booking_rpc',
        'the worker stopped waiting for this call and answered that it failed; it books nothing');
    end if;
  end if;
end;
$$;

-- request_validation ----------------------------------------------------------------------------------------------

-- Every argument present and well formed. Answers the patient as the form gives them (names, email, phone, date of
-- birth; trimmed, empty strings as NULL): the new patient's row, or with p_patient_id the details it must not
-- contradict (none required then; all NULL without p_patient).
create or replace function private.check_booking_arguments(
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
  if p_patient_id is not null and p_patient is null then
    return v_form;                                  -- an existing patient, nothing to compare: all NULL
  end if;

  if jsonb_typeof(p_patient) is distinct from 'object' then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation',
      case when p_patient_id is null then 'p_patient_id or p_patient is required' else 'p_patient must be an object' end);
  end if;
  v_form.first_name := nullif(btrim(p_patient->>'first_name'), '');
  v_form.last_name  := nullif(btrim(p_patient->>'last_name'), '');
  v_form.email      := nullif(btrim(p_patient->>'email'), '');
  v_form.phone      := nullif(btrim(p_patient->>'phone'), '');
  if p_patient_id is null and (v_form.first_name is null or v_form.last_name is null or v_form.email is null) then
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

-- patient_resolution ------------------------------------------------------------------------------------------------

-- The patient of the booking, and whether this booking made the row (`created`) and identified the patient fully
-- (`identified`: may be told about the patient's appointments, as a duplicate):
--   * p_patient_id (a trusted caller): that patient, whose details the form must not contradict; identified.
--   * else the same person as the form's: same email and names (by key), and a date of birth that does not
--     contradict the form's nor adds to it: with the form's, the row with the same one (preferred) or else a row
--     without one; without the form's, only a row without one. Identified when both know the same date of birth.
--   * else a new patient, identified when the form gives a date of birth.
drop function private.resolve_patient(text, uuid, public.patients);
create function private.resolve_patient(
  p_request_id   text,
  p_patient_id   uuid,
  p_form         public.patients,
  out patient    public.patients,
  out created    boolean,
  out identified boolean
)
language plpgsql
set search_path = ''
as $$
declare
  v_email_key      text := private.email_key(p_form.email);
  v_first_name_key text := private.name_key(p_form.first_name);
  v_last_name_key  text := private.name_key(p_form.last_name);
  v_contradicted   text[];
begin
  created := false;
  if p_patient_id is not null then
    select * into patient from public.patients where id = p_patient_id;
    if not found then
      perform private.fail(404, 'PATIENT_NOT_FOUND', 'patient_resolution', 'no patient has this p_patient_id');
    end if;
    -- A field the form leaves out contradicts nothing; the names of the fields, never their values.
    v_contradicted := array_remove(array[
      case when v_email_key <> patient.email_key then 'email' end,
      case when v_first_name_key <> patient.first_name_key then 'first_name' end,
      case when v_last_name_key <> patient.last_name_key then 'last_name' end,
      case when p_form.date_of_birth <> patient.date_of_birth then 'date_of_birth' end], null);
    if cardinality(v_contradicted) > 0 then
      perform private.fail(422, 'PATIENT_MISMATCH', 'patient_resolution',
        'p_patient contradicts the patient of p_patient_id in: ' || array_to_string(v_contradicted, ', '));
    end if;
    identified := true;
    return;
  end if;

  select * into patient
  from public.patients p
  where p.email_key = v_email_key and p.first_name_key = v_first_name_key and p.last_name_key = v_last_name_key
    and (p.date_of_birth = p_form.date_of_birth or p.date_of_birth is null)
  order by p.date_of_birth is null, p.created_at    -- the same date of birth before none
  limit 1;
  if not found then
    patient := private.insert_patient(p_request_id, p_form);
    created := patient.id is not null;
    if not created then
      select * into patient
      from public.patients p
      where p.email_key = v_email_key and p.first_name_key = v_first_name_key and p.last_name_key = v_last_name_key
        and p.date_of_birth is not distinct from p_form.date_of_birth;
      if not found then
        perform private.fail(500, 'PATIENT_CREATION_FAILED', 'patient_resolution', 'patient identity conflicted but no row was found');
      end if;
    end if;
  end if;
  identified := coalesce(patient.date_of_birth = p_form.date_of_birth, false);
end;
$$;

-- conflict_check ----------------------------------------------------------------------------------------------------

-- The slot: in the future; offered (on the practice's grid, far enough ahead); when it ends (start + the service's
-- duration); the same patient's appointment in it, when they asked for it before: a duplicate, answered with that
-- appointment when the request identified the patient, else SLOT_TAKEN as for any taken slot (the same detail,
-- nothing to tell them apart); and no other active appointment of the patient overlapping it.
drop function private.check_slot(uuid, uuid, timestamptz, integer);
create function private.check_slot(
  p_patient_id       uuid,
  p_provider_id      uuid,
  p_start            timestamptz,
  p_duration_minutes integer,
  p_identified       boolean,
  out end_time       timestamptz,
  out same_slot_id   uuid
)
language plpgsql
set search_path = ''
as $$
declare
  v_granularity integer;
  v_notice      integer;
begin
  if p_start <= now() then
    perform private.fail(422, 'SLOT_IN_PAST', 'conflict_check', 'the start is not in the future');
  end if;
  select ps.slot_granularity_minutes, ps.min_booking_notice_minutes into v_granularity, v_notice
  from public.practice_settings ps;
  v_granularity := coalesce(v_granularity, 5);      -- the columns' defaults, should the settings row be missing
  v_notice := coalesce(v_notice, 60);
  if extract(epoch from p_start) % (60 * v_granularity) <> 0 then
    perform private.fail(422, 'SLOT_NOT_OFFERED', 'conflict_check',
      format('the start is not on the practice''s %s-minute grid', v_granularity));
  end if;
  if p_start < now() + make_interval(mins => v_notice) then
    perform private.fail(422, 'SLOT_NOT_OFFERED', 'conflict_check',
      format('the start is less than %s minutes ahead', v_notice));
  end if;
  end_time := p_start + make_interval(mins => p_duration_minutes);
  same_slot_id := private.same_slot_appointment(p_patient_id, p_provider_id, p_start);
  if same_slot_id is not null and p_identified is not true then
    perform private.fail(409, 'SLOT_TAKEN', 'conflict_check', 'the provider has another appointment overlapping this time');
  end if;
  -- The patient's own overlap is named only to a request that identified the patient: to anyone else it would
  -- tell when that person is booked, so it is answered as a taken slot.
  if same_slot_id is null and exists (
       select from public.appointments a
       where a.patient_id = p_patient_id and a.status <> 'cancelled'
         and tstzrange(a.start_time, a.end_time, '[)') && tstzrange(p_start, check_slot.end_time, '[)')) then
    if p_identified is not true then
      perform private.fail(409, 'SLOT_TAKEN', 'conflict_check', 'the provider has another appointment overlapping this time');
    end if;
    perform private.fail(409, 'PATIENT_SLOT_TAKEN', 'conflict_check', 'the patient has another appointment overlapping this time');
  end if;
end;
$$;

-- appointment_insert ------------------------------------------------------------------------------------------------

-- An overlapping booking committed first while this one waited on it (the check saw nothing), violating
-- p_constraint. This patient's same slot (a concurrent double submit): answered when the request identified the
-- patient, else SLOT_TAKEN; another appointment of the patient: PATIENT_SLOT_TAKEN to a request that identified
-- the patient (anyone else is told the slot is taken); else the slot is taken.
drop function private.settle_slot_conflict(uuid, uuid, timestamptz);
create function private.settle_slot_conflict(
  p_patient_id  uuid,
  p_provider_id uuid,
  p_start       timestamptz,
  p_identified  boolean,
  p_constraint  text
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_appointment_id uuid;
begin
  v_appointment_id := private.same_slot_appointment(p_patient_id, p_provider_id, p_start);
  if v_appointment_id is null or p_identified is not true then
    if v_appointment_id is null and p_constraint = 'appointments_no_patient_overlap' and p_identified is true then
      perform private.fail(409, 'PATIENT_SLOT_TAKEN', 'conflict_check', 'the patient has another appointment overlapping this time');
    end if;
    perform private.fail(409, 'SLOT_TAKEN', 'conflict_check', 'the provider has another appointment overlapping this time');
  end if;
  return v_appointment_id;
end;
$$;

-- The appointment (pending_sync / pending) with what the form said, and its sync job, leased to the calling request
-- so that it can sync it first; due for the cron once the lease ends. Two exclusion constraints decide overlaps
-- under concurrency (the provider's and the patient's): the insert waits for an overlapping booking in flight and
-- fails with an exclusion violation if it commits; settle_slot_conflict then says what that booking is to this
-- one, by the violated constraint's name. Any other failure is APPOINTMENT_INSERT_FAILED.
drop function private.insert_appointment(text, public.patients, public.patients, uuid, public.payers, uuid,
                                         timestamptz, timestamptz, text, text, jsonb, jsonb, integer);
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
  p_identified          boolean,
  out appointment_id    uuid,
  out is_duplicate      boolean
)
language plpgsql
set search_path = ''
as $$
declare
  v_try        integer;
  v_constraint text;
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
      get stacked diagnostics v_constraint = constraint_name;
      appointment_id := private.settle_slot_conflict(p_patient.id, p_provider_id, p_start, p_identified, v_constraint);
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

-- One booking at a time per provider and per patient ---------------------------------------------------------------

-- Takes, until the transaction ends, the provider's and the patient's booking locks (in one order, so two
-- bookings never wait for each other in a circle). Bookings that could collide (the same provider, or the same
-- patient) then check and insert one after the other: the later one's check sees what the earlier one committed,
-- and the exclusion constraints, still the guarantee for whoever writes, no longer make racing bookings deadlock
-- (two constraints made that frequent enough to exhaust insert_appointment's retries with 32 racers).
create function private.lock_booking_slots(p_provider_id uuid, p_patient_id uuid)
returns void
language sql
set search_path = ''
as $$
  select pg_advisory_xact_lock(key)
  from unnest(array[hashtextextended('booking-provider:' || p_provider_id, 0),
                    hashtextextended('booking-patient:' || p_patient_id, 0)]) as key
  order by key;
$$;

-- The booking -------------------------------------------------------------------------------------------------------

-- As before, plus: the advisory lock of its request id first (held until the transaction ends, for
-- booking_by_request), the provider's and the patient's booking locks before the slot is checked, and the
-- patient's `identified` handed to the slot's steps.
drop function public.book_appointment(text, uuid, text, timestamptz, text, uuid, jsonb, text, text, jsonb, jsonb, integer);
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
  p_sync_lease_seconds  integer default 60,
  p_call_id             uuid    default null   -- the worker's id of this call (see abandoned_booking_calls)
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_form        public.patients;  -- the patient as the form gives them (with p_patient_id: what must match)
  v_replay      jsonb;            -- the earlier booking of a replayed idempotency key
  v_patient     record;           -- patient, created, identified
  v_provider_id uuid;
  v_payer       public.payers;    -- NULL for self pay
  v_instance    record;           -- service_instance_id, duration_minutes
  v_slot        record;           -- end_time, same_slot_id
  v_booked      record;           -- appointment_id, is_duplicate
  v_sqlstate    text;
  v_constraint  text;
  v_context     text;
begin
  perform private.claim_booking_call(p_request_id, p_call_id);  -- its locks, until the transaction ends
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
  perform private.lock_booking_slots(v_provider_id, (v_patient.patient).id);
  v_slot := private.check_slot((v_patient.patient).id, v_provider_id, p_start, v_instance.duration_minutes,
    v_patient.identified);
  if v_slot.same_slot_id is not null then
    return private.answer_booking(v_slot.same_slot_id, true, v_patient.created, p_idempotency_key);
  end if;
  v_booked := private.insert_appointment(p_request_id, v_patient.patient, v_form, v_provider_id, v_payer,
    v_instance.service_instance_id, p_start, v_slot.end_time, p_location_type, p_notes, p_insurance, p_contact,
    p_sync_lease_seconds, v_patient.identified);
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

-- What a request booked, once its transaction has ended ----------------------------------------------------------

-- For a worker whose booking call timed out: waits at most p_wait_ms (0: not at all) for the booking transaction of
-- p_request_id to end (book_appointment holds the lock of its request id until then; this takes it shared, so
-- any number may wait together), then answers the appointment that request booked, as book_appointment answered
-- it (is_duplicate and replayed false, patient_created when that request made the patient), or NULL when none
-- exists: the booking rolled back, failed, answered a duplicate or a replay (nothing of its own), or had not begun
-- when asked. Still running after p_wait_ms: DATABASE_UNAVAILABLE 503, step booking_rpc (the call the worker is
-- trying to settle). Reads committed rows only: call it in READ COMMITTED (PostgREST does).
create function public.booking_by_request(
  p_request_id  text,
  p_wait_ms     integer     default 5000,
  -- What the asking request booked: an appointment of that request id is answered only if it is this one (a
  -- request id is the client's to choose, and may have been used before, by it or by someone else).
  p_provider_id uuid        default null,
  p_start       timestamptz default null,
  p_email       text        default null,
  p_patient_id  uuid        default null,
  -- The asking call's id: it waits for that call's transaction (not only the request id's), and when it finds
  -- nothing, the call is marked abandoned, so that it can never book later.
  p_call_id     uuid        default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_lock_timeout   text := current_setting('lock_timeout');
  v_appointment_id uuid;
  v_created        boolean;
begin
  perform private.require_request_id(p_request_id);
  if p_wait_ms is null or p_wait_ms not between 0 and 60000 then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_wait_ms must be between 0 and 60000');
  end if;
  begin
    -- The call's own lock, exclusively (its booking, if it has not begun, waits behind this answer and then finds
    -- the call abandoned); without a call id, the request id's, shared.
    if p_wait_ms = 0 then                           -- (a lock_timeout of 0 would wait for ever)
      if not (case when p_call_id is null then pg_try_advisory_xact_lock_shared(private.booking_lock_key(p_request_id))
                   else pg_try_advisory_xact_lock(private.booking_call_lock_key(p_call_id)) end) then
        raise sqlstate '55P03';
      end if;
    else
      perform set_config('lock_timeout', p_wait_ms || 'ms', true);
      if p_call_id is null then
        perform pg_advisory_xact_lock_shared(private.booking_lock_key(p_request_id));
      else
        perform pg_advisory_xact_lock(private.booking_call_lock_key(p_call_id));
      end if;
      perform set_config('lock_timeout', v_lock_timeout, true);
    end if;
  exception
    when lock_not_available then                    -- (leaving the block undid the set_config)
      perform private.fail(503, 'DATABASE_UNAVAILABLE', 'booking_rpc',
        format('the booking of this request id was still running after %s ms', p_wait_ms));
  end;
  -- A statement after the wait: its snapshot sees what the booking committed.
  select a.id, p.created_by_request_id = p_request_id into v_appointment_id, v_created
  from public.appointments a
  join public.patients p on p.id = a.patient_id
  where a.request_id = p_request_id
    and (p_provider_id is null or a.provider_id = p_provider_id)
    and (p_start is null or a.start_time = p_start)
    and (p_email is null or p.email_key = private.email_key(btrim(p_email)))
    and (p_patient_id is null or a.patient_id = p_patient_id)
  order by a.created_at
  limit 1;
  if not found then
    if p_call_id is not null then
      -- Told it failed, it must never book: the call, should it arrive now, finds this and books nothing.
      insert into public.abandoned_booking_calls (call_id, request_id) values (p_call_id, p_request_id)
      on conflict (call_id) do nothing;
      delete from public.abandoned_booking_calls
      where call_id in (select call_id from public.abandoned_booking_calls
                        where abandoned_at < now() - interval '1 day' limit 1000 for update skip locked);
    end if;
    return null;
  end if;
  return private.booking_result(v_appointment_id)
    || jsonb_build_object('is_duplicate', false, 'replayed', false, 'patient_created', v_created);
end;
$$;

comment on function public.booking_by_request is
  'What p_request_id booked, once its transaction has ended (waits at most p_wait_ms); NULL when nothing. Errors as book_appointment''s.';

revoke all on function public.booking_by_request(text, integer, uuid, timestamptz, text, uuid, uuid) from public, anon, authenticated;
grant execute on function public.booking_by_request(text, integer, uuid, timestamptz, text, uuid, uuid) to service_role;
revoke all on function public.book_appointment from public, anon, authenticated;
grant execute on function public.book_appointment to service_role;

-- Internals: EXECUTE for nobody but their owner (book_appointment runs as that owner); create or replace kept
-- check_booking_arguments' revocation. Not the key functions: like name_key, email_key computes a generated column,
-- so whoever may write patients (service_role, for staff tooling) must be able to execute it.
revoke all on function
  private.booking_lock_key(text),
  private.booking_call_lock_key(uuid),
  private.claim_booking_call(text, uuid),
  private.lock_booking_slots(uuid, uuid),
  private.resolve_patient(text, uuid, public.patients),
  private.check_slot(uuid, uuid, timestamptz, integer, boolean),
  private.settle_slot_conflict(uuid, uuid, timestamptz, boolean, text),
  private.insert_appointment(text, public.patients, public.patients, uuid, public.payers, uuid, timestamptz,
                             timestamptz, text, text, jsonb, jsonb, integer, boolean)
from public, anon, authenticated, service_role;
