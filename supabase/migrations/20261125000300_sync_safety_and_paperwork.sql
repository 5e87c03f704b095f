-- =============================================================================================================
-- The IntakeQ sync under real IntakeQ behaviour: no duplicate, no result from a runner that lost its lease, no
-- giving up on an outage, and every job ends visibly.
--
--   fencing            every lease carries a fresh token (lease_token); only the holder of the current token has
--                      its result recorded. A stale holder's success with another IntakeQ id is kept as a
--                      possible duplicate (sync_possible_duplicates) for staff.
--   counted at claim   an attempt counts when its lease is taken (the booking request's lease included), so a
--                      runner that dies or a result that cannot be recorded still moves the job towards its end;
--                      a job released untried (a 429, a paused queue, a lease too short) gives its attempt back.
--   sticky reconcile   once an attempt may have created the appointment upstream, every later attempt looks
--                      before it posts, until a lookup has completed.
--   retry window       transient failures back off exponentially (capped at p_max_backoff_minutes) until
--                      p_retry_window_hours after the booking (or its requeue), then the job is dead, visibly.
--   paused queue       an authentication failure (401/403) is nobody's booking's fault: it pauses the queue (no
--                      job spends an attempt); a probe job a minute resumes it once a call succeeds.
--   cancelled          a job whose appointment is cancelled before it reached IntakeQ ends `cancelled`; when an
--                      earlier attempt may have created it upstream, a lookup reports what it finds.
--
-- The intake questionnaire ("intake paperwork"): after the IntakeQ appointment exists, the same sync job sends the
-- practice's questionnaire once (POST /intakes/send), and the booking says where its paperwork stands.
--
--   which            the payer's own questionnaire (payers.intakeq_questionnaire_id), else the practice's default
--                    (practice_settings.intakeq_questionnaire_id); none configured: not_required. Decided when the
--                    appointment is written, so a later change of settings does not change a booking's paperwork.
--   appointments     intake_forms_status: pending -> sent (with IntakeQ's intake id) | failed (a permanent
--                    refusal: visible in sync-health as a dead job, requeueable) | not_required.
--   the job          done only when the appointment is synced AND the paperwork sent (or not required). An
--                    ambiguous send (IntakeQ has no idempotency key) makes every later attempt look for it first
--                    (needs_intake_lookup, sticky until a lookup completes), as the appointment's reconcile does.
-- =============================================================================================================

-- The tables ---------------------------------------------------------------------------------------------------
alter table public.sync_retry_queue
  add column lease_token uuid,
  add column window_started_at timestamptz,
  add column stale_pq_appointment_ids text[] not null default '{}';
update public.sync_retry_queue set lease_token = gen_random_uuid() where locked_by is not null;
update public.sync_retry_queue set window_started_at = created_at;
alter table public.sync_retry_queue
  alter column window_started_at set default now(),
  alter column window_started_at set not null,
  drop constraint sync_retry_queue_state_check,
  add constraint sync_retry_queue_state_check check (state in ('pending', 'done', 'dead', 'cancelled')),
  add constraint sync_retry_queue_token_with_lease check ((locked_by is null) = (lease_token is null));

comment on column public.sync_retry_queue.retry_count is 'Attempts started: counted when a lease is taken, given back when released untried.';
comment on column public.sync_retry_queue.lease_token is 'The current lease''s token: only a report carrying it is recorded.';
comment on column public.sync_retry_queue.window_started_at is 'When retrying began (the booking, or the last requeue).';
comment on column public.sync_retry_queue.stale_pq_appointment_ids is 'IntakeQ ids reported by holders whose lease had been lost.';

-- A lease taken at insert (book_appointment leases the job to its request) gets its token and counts as the
-- first attempt; a lease given up loses its token.
create function private.sync_lease_token()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.locked_by is null then
    new.lease_token := null;
  elsif tg_op = 'INSERT' then
    new.lease_token := coalesce(new.lease_token, gen_random_uuid());
    new.retry_count := new.retry_count + 1;
    new.last_attempt_at := now();
  elsif new.lease_token is null then
    new.lease_token := gen_random_uuid();
  end if;
  return new;
end;
$$;
create trigger sync_retry_queue_lease_token before insert or update on public.sync_retry_queue
  for each row execute function private.sync_lease_token();

-- The queue as a whole: paused while IntakeQ refuses our key.
create table public.sync_queue_state (
  id            boolean primary key default true check (id),
  paused_reason text check (char_length(paused_reason) <= 2000),
  paused_at     timestamptz,
  next_probe_at timestamptz,
  updated_at    timestamptz not null default now(),
  constraint sync_queue_state_pause_whole check ((paused_reason is null) = (paused_at is null))
);
insert into public.sync_queue_state default values;
select private.close_to_browser_roles('public.sync_queue_state');

-- What staff must look at: an IntakeQ appointment that may be a second one for a booking.
create table public.sync_possible_duplicates (
  id                         uuid primary key default gen_random_uuid(),
  appointment_id             uuid not null references public.appointments (id) on delete cascade,
  job_id                     uuid references public.sync_retry_queue (id) on delete set null,
  recorded_pq_appointment_id text,
  other_pq_appointment_id    text not null check (char_length(other_pq_appointment_id) between 1 and 64),
  reason                     text not null check (char_length(reason) <= 500),
  reported_by                text check (char_length(reported_by) <= 100),
  detected_at                timestamptz not null default now(),
  unique (appointment_id, other_pq_appointment_id)
);
select private.close_to_browser_roles('public.sync_possible_duplicates');

-- The intake paperwork --------------------------------------------------------------------------------------------
alter table public.payers
  add column intakeq_questionnaire_id text check (char_length(intakeq_questionnaire_id) between 1 and 64);
alter table public.practice_settings
  add column intakeq_questionnaire_id text check (char_length(intakeq_questionnaire_id) between 1 and 64);
comment on column public.payers.intakeq_questionnaire_id is 'The IntakeQ questionnaire this payer''s patients get (else the practice default).';
comment on column public.practice_settings.intakeq_questionnaire_id is 'The IntakeQ questionnaire sent after booking; null: none.';

alter table public.appointments
  add column intake_forms_status text not null default 'not_required'
    check (intake_forms_status in ('pending', 'sent', 'failed', 'not_required')),
  add column intakeq_questionnaire_id text check (char_length(intakeq_questionnaire_id) between 1 and 64),
  add column intakeq_intake_id text check (char_length(intakeq_intake_id) between 1 and 64),
  add constraint appointments_sent_forms_have_intake_id check (intake_forms_status <> 'sent' or intakeq_intake_id is not null),
  add constraint appointments_forms_have_questionnaire check (intake_forms_status = 'not_required' or intakeq_questionnaire_id is not null);

alter table public.sync_retry_queue
  add column needs_intake_lookup boolean not null default false;
comment on column public.sync_retry_queue.needs_intake_lookup is 'An earlier send may have reached IntakeQ: look for it before sending again.';

-- One intake, one booking: a lookup can never give two bookings the same paperwork.
create unique index appointments_intakeq_intake_id on public.appointments (intakeq_intake_id) where intakeq_intake_id is not null;

-- A runner that takes over a lease its holder let run out must look for paperwork that holder may have sent.
create function private.sync_intake_lookup_on_takeover()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.locked_by is not null and new.locked_by is not null and new.lease_token is distinct from old.lease_token
     and exists (select 1 from public.appointments a where a.id = new.appointment_id and a.intake_forms_status = 'pending') then
    new.needs_intake_lookup := true;
  end if;
  return new;
end;
$$;
create trigger sync_retry_queue_intake_lookup before update on public.sync_retry_queue
  for each row execute function private.sync_intake_lookup_on_takeover();

-- A job that ends without sending the paperwork says so on the appointment: not required once the booking is
-- cancelled, failed when the job died (a requeue makes it pending again).
create function private.sync_intake_on_job_end()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  update public.appointments
  set intake_forms_status = case new.state when 'cancelled' then 'not_required' else 'failed' end
  where id = new.appointment_id and intake_forms_status = 'pending';
  return new;
end;
$$;
create trigger sync_retry_queue_intake_on_end after update of state on public.sync_retry_queue
  for each row when (new.state in ('dead', 'cancelled') and old.state is distinct from new.state)
  execute function private.sync_intake_on_job_end();
revoke all on function private.sync_intake_lookup_on_takeover, private.sync_intake_on_job_end from public, anon, authenticated;

-- Which questionnaire a new appointment's patient gets.
create function private.choose_intake_questionnaire()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.intakeq_questionnaire_id is null then
    new.intakeq_questionnaire_id := coalesce(
      (select py.intakeq_questionnaire_id from public.payers py where py.id = new.payer_id),
      (select ps.intakeq_questionnaire_id from public.practice_settings ps));
  end if;
  new.intake_forms_status := case when new.intakeq_questionnaire_id is null then 'not_required' else 'pending' end;
  return new;
end;
$$;
create trigger appointments_intake_questionnaire before insert on public.appointments
  for each row execute function private.choose_intake_questionnaire();
revoke all on function private.choose_intake_questionnaire from public, anon, authenticated;

-- Small pieces ---------------------------------------------------------------------------------------------------
-- How long a lease has left, in whole seconds (rounded down), by the database's clock: the runner counts it on
-- its own clock from when it got the answer, so a clock that differs between the two does not matter.
create function private.seconds_left(p_until timestamptz)
returns integer
language sql
stable
set search_path = ''
as $$
  select greatest(0, floor(extract(epoch from p_until - now())))::integer;
$$;

-- The wait before attempt p_attempt + 1: 1, 2, 4, 8 ... minutes up to the cap, +-20% jitter.
create function private.sync_backoff(p_attempt integer, p_max_backoff_minutes integer)
returns interval
language sql
volatile
set search_path = ''
as $$
  select make_interval(secs => least(60 * p_max_backoff_minutes, 60 * power(2, least(greatest(p_attempt, 1), 20) - 1))
                               * (0.8 + random() * 0.4));
$$;

-- Everything the worker needs to answer and to sync, read from the current rows; now with the intake paperwork.
create or replace function private.booking_result(p_appointment_id uuid)
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
    'intake_forms', jsonb_build_object(
      'status',           a.intake_forms_status,
      'questionnaire_id', a.intakeq_questionnaire_id,
      'intake_id',        a.intakeq_intake_id),
    'sync_job', case when q.id is not null then jsonb_build_object(
      'id',           q.id,
      'state',        q.state,
      'retry_count',  q.retry_count,
      'locked_by',    q.locked_by,
      'locked_until', private.rfc3339(q.locked_until),
      'lease_token',  q.lease_token,
      'lease_seconds_left', private.seconds_left(q.locked_until)) end)
  from public.appointments a
  join public.patients p           on p.id = a.patient_id
  join public.providers pr         on pr.id = a.provider_id
  join public.service_instances si on si.id = a.service_instance_id
  left join public.payers py       on py.id = a.payer_id
  left join public.practice_settings ps on true
  left join public.sync_retry_queue q   on q.appointment_id = a.id
  where a.id = p_appointment_id;
$$;


create or replace function private.sync_job(p_job_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'job_id',           q.id,
    'attempt',          greatest(q.retry_count, 1),
    'max_attempts',     q.max_retries,
    'needs_reconcile',  q.needs_reconcile,
    'needs_intake_lookup', q.needs_intake_lookup,
    'booked_at',        to_char(q.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'state',            q.state,
    'lease_token',      q.lease_token,
    'lease_seconds_left', private.seconds_left(q.locked_until),
    'booking',          private.booking_result(q.appointment_id))
  from public.sync_retry_queue q
  where q.id = p_job_id;
$$;


create function private.note_possible_duplicate(
  p_job public.sync_retry_queue, p_recorded text, p_other text, p_reason text, p_reported_by text
)
returns void
language sql
set search_path = ''
as $$
  insert into public.sync_possible_duplicates
    (appointment_id, job_id, recorded_pq_appointment_id, other_pq_appointment_id, reason, reported_by)
  values (p_job.appointment_id, p_job.id, p_recorded, p_other, p_reason, left(p_reported_by, 100))
  on conflict (appointment_id, other_pq_appointment_id) do nothing;
$$;

-- Ends a job for good: dead with a reason staff can act on; its appointment says `failed`.
create function private.kill_sync_job(p_job_id uuid, p_reason text, p_error_kind text)
returns void
language sql
set search_path = ''
as $$
  update public.sync_retry_queue
  set state = 'dead', error_message = left(p_reason, 2000), last_error_kind = p_error_kind,
      locked_by = null, locked_until = null, completed_at = now()
  where id = p_job_id;
  update public.appointments a set sync_status = 'failed'
  from public.sync_retry_queue q
  where q.id = p_job_id and a.id = q.appointment_id and a.sync_status = 'pending';
$$;

create function private.resume_sync_queue()
returns void
language sql
set search_path = ''
as $$
  update public.sync_queue_state set paused_reason = null, paused_at = null, next_probe_at = null, updated_at = now()
  where paused_at is not null;
$$;

-- claim_sync_jobs ----------------------------------------------------------------------------------------------
drop function public.claim_sync_jobs(text, integer, integer);
create function public.claim_sync_jobs(
  p_runner              text,
  p_limit               integer,
  p_lease_seconds       integer,
  p_retry_window_hours  integer default 72,
  p_max_attempts        integer default null, -- a cap on attempts; null: the retry window alone decides
  p_max_backoff_minutes integer default 30
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_queue   public.sync_queue_state%rowtype;
  v_limit   integer := p_limit;
  v_job     record;
  v_claimed uuid[];
begin
  if p_runner is null or char_length(p_runner) not between 1 and 100
     or p_limit is null or p_limit not between 1 and 100
     or p_lease_seconds is null or p_lease_seconds not between 1 and 3600
     or p_retry_window_hours is null or p_retry_window_hours not between 1 and 8760
     or p_max_backoff_minutes is null or p_max_backoff_minutes not between 1 and 1440
     or (p_max_attempts is not null and p_max_attempts not between 1 and 10000) then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_claim',
      'p_runner, p_limit (1-100), p_lease_seconds (1-3600), p_retry_window_hours (1-8760), p_max_backoff_minutes (1-1440) are required');
  end if;

  -- Jobs that can end without IntakeQ: cancelled before they reached it with nothing to look up (no earlier
  -- attempt may have created it, and no holder vanished mid-attempt), or out of time, or out of attempts.
  for v_job in
    select q.id, a.status, q.needs_reconcile, q.locked_by, q.retry_count, q.window_started_at, q.error_message
    from public.sync_retry_queue q join public.appointments a on a.id = q.appointment_id
    where q.state = 'pending' and (q.locked_until is null or q.locked_until <= now())
      and ((a.status = 'cancelled' and not q.needs_reconcile and q.locked_by is null)
           or q.window_started_at + make_interval(hours => p_retry_window_hours) <= now()
           or q.retry_count >= p_max_attempts)
    for update of q skip locked
  loop
    if v_job.status = 'cancelled' and not v_job.needs_reconcile and v_job.locked_by is null then
      update public.sync_retry_queue set state = 'cancelled', completed_at = now() where id = v_job.id;
    else
      -- A holder that vanished may have reached IntakeQ: a requeued job must look before it posts.
      update public.sync_retry_queue set needs_reconcile = needs_reconcile or locked_by is not null where id = v_job.id;
      perform private.kill_sync_job(v_job.id,
        format('%s; last error: %s',
               case when v_job.retry_count >= p_max_attempts then format('%s attempts made', v_job.retry_count)
                    else format('no success within %s hours of booking', p_retry_window_hours) end,
               coalesce(v_job.error_message, 'none recorded (the runner never reported)')),
        'transient');
    end if;
  end loop;

  -- A paused queue lets one probe job through a minute.
  select * into v_queue from public.sync_queue_state for update;
  if v_queue.paused_at is not null then
    if v_queue.next_probe_at > now() then
      return '[]';
    end if;
    v_limit := 1;
    update public.sync_queue_state set next_probe_at = now() + interval '1 minute', updated_at = now();
  end if;

  with due as (
    select q.id
    from public.sync_retry_queue q
    where q.state = 'pending'
      and q.next_retry_at <= now()
      and (q.locked_until is null or q.locked_until <= now())
    order by q.next_retry_at
    limit v_limit
    for update skip locked
  ), claimed as (
    update public.sync_retry_queue q
    set -- a holder that let its lease run out never reported: its attempt may have reached IntakeQ
        needs_reconcile = q.needs_reconcile or q.locked_by is not null,
        locked_by = p_runner,
        lease_token = gen_random_uuid(),
        locked_until = now() + make_interval(secs => p_lease_seconds),
        retry_count = q.retry_count + 1,
        last_attempt_at = now(),
        -- if this runner never reports, the job waits out its backoff after the lease, as after a failure
        next_retry_at = now() + make_interval(secs => p_lease_seconds) + private.sync_backoff(q.retry_count + 1, p_max_backoff_minutes)
    from due
    where q.id = due.id
    returning q.id
  )
  select coalesce(array_agg(id), '{}') into v_claimed from claimed;
  return (select coalesce(jsonb_agg(private.sync_job(id)), '[]') from unnest(v_claimed) as id);
end;
$$;

-- record_sync_result -------------------------------------------------------------------------------------------
drop function public.record_sync_result(uuid, text, text, text, text, text, text, integer, integer);
create function public.record_sync_result(
  p_job_id               uuid,
  p_runner               text,
  p_lease_token          uuid,
  p_outcome              text,              -- 'synced' | 'failed' | 'released' | 'auth_failed' | 'cancelled'
  p_pq_appointment_id    text    default null, -- synced: ours; cancelled: what a lookup found upstream
  p_intakeq_client_id    text    default null,
  p_error                text    default null,
  p_error_kind           text    default null, -- 'transient' | 'ambiguous' | 'permanent', with 'failed'
  p_retry_after_seconds  integer default null,
  p_max_attempts         integer default null, -- a cap on attempts; null: the retry window alone decides
  p_lookup_completed     boolean default false, -- this attempt completed a lookup upstream (found or not)
  p_max_backoff_minutes  integer default 30,
  p_retry_window_hours   integer default 72,
  p_intakeq_answered     boolean default false, -- IntakeQ answered a call of this attempt (our key works)
  -- The intake questionnaire, with 'synced': 'sent' + its IntakeQ id, or 'failed' + kind; null: not attempted.
  p_intake_outcome       text    default null,
  p_intakeq_intake_id    text    default null,
  p_intake_error         text    default null,
  p_intake_error_kind    text    default null,
  p_intake_lookup_completed boolean default false,
  p_intake_retry_after_seconds integer default null -- with 'released' / 'auth_failed' for the paperwork
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_job      public.sync_retry_queue%rowtype;
  v_recorded text;
  v_holder   uuid;
  v_backoff  interval;
  v_sqlstate text;
  v_constraint text;
begin
  if p_outcome is null or p_outcome not in ('synced', 'failed', 'released', 'auth_failed', 'cancelled')
     or (p_outcome = 'synced' and p_pq_appointment_id is null)
     or (p_outcome = 'failed' and (p_error_kind is null or p_error_kind not in ('transient', 'ambiguous', 'permanent')))
     or (p_outcome = 'auth_failed' and p_error is null)
     or p_max_backoff_minutes is null or p_max_backoff_minutes not between 1 and 1440
     or p_retry_window_hours is null or p_retry_window_hours not between 1 and 8760
     or (p_max_attempts is not null and p_max_attempts not between 1 and 10000)
     or (p_intake_outcome is not null and (p_outcome <> 'synced' or p_intake_outcome not in ('sent', 'failed', 'released', 'auth_failed')))
     or (p_intake_outcome = 'sent' and p_intakeq_intake_id is null)
     or (p_intake_outcome = 'failed' and (p_intake_error_kind is null or p_intake_error_kind not in ('transient', 'ambiguous', 'permanent'))) then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_record',
      'an outcome with what it needs: synced + id, failed + kind, auth_failed + error; bounds on the knobs');
  end if;
  select * into v_job from public.sync_retry_queue where id = p_job_id for update;
  if not found then
    perform private.fail(404, 'SYNC_JOB_NOT_FOUND', 'sync_record', 'no sync job has this id');
  end if;
  select pq_appointment_id into v_recorded from public.appointments where id = v_job.appointment_id;

  -- Fencing: a report without the current lease's token is refused, whoever sends it.
  if p_lease_token is null or v_job.lease_token is distinct from p_lease_token then
    if p_outcome in ('synced', 'cancelled') and p_pq_appointment_id is not null
       and p_pq_appointment_id is distinct from v_recorded then
      -- Staff see it at once, whatever becomes of the job (recorded_pq_appointment_id is filled in if the job
      -- syncs later, and the row goes if that is this very appointment, adopted).
      perform private.note_possible_duplicate(v_job, v_recorded, p_pq_appointment_id,
        'a runner that had lost its lease reported this IntakeQ appointment for the booking', p_runner);
      if v_job.state <> 'done' then
        -- Every later attempt (a requeue's included) must find it rather than post again.
        update public.sync_retry_queue
        set needs_reconcile = true,
            stale_pq_appointment_ids = array_append(stale_pq_appointment_ids, p_pq_appointment_id)
        where id = p_job_id;
      end if;
    end if;
    if (p_intake_outcome = 'sent' or p_intake_error_kind = 'ambiguous') and v_job.state <> 'done' then
      -- A stale holder may have sent the paperwork: whoever sends next looks for it first.
      update public.sync_retry_queue set needs_intake_lookup = true where id = p_job_id;
    end if;
    return private.sync_job(p_job_id) || jsonb_build_object('recorded', false);
  end if;

  -- IntakeQ's client id is worth keeping whatever happened next: the next attempt will not create another.
  if p_intakeq_client_id is not null then
    update public.patients p set intakeq_client_id = p_intakeq_client_id
    from public.appointments a
    where a.id = v_job.appointment_id and p.id = a.patient_id and p.intakeq_client_id is null;
  end if;

  if p_intakeq_answered and p_outcome <> 'auth_failed' then
    perform private.resume_sync_queue();   -- IntakeQ took our key again
  end if;

  if p_outcome = 'synced' then
    if v_recorded is not null and v_recorded <> p_pq_appointment_id then
      -- The appointment already has its IntakeQ id: another one is never written over it.
      perform private.note_possible_duplicate(v_job, v_recorded, p_pq_appointment_id,
        'an attempt reported another IntakeQ appointment for a booking already synced', p_runner);
      p_pq_appointment_id := v_recorded;
    end if;
    select a.id into v_holder from public.appointments a
    where a.pq_appointment_id = p_pq_appointment_id and a.id <> v_job.appointment_id;
    if v_holder is not null then
      perform private.kill_sync_job(p_job_id,
        format('IntakeQ appointment %s is already held by appointment %s', p_pq_appointment_id, v_holder), 'permanent');
      return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
    end if;
    begin
      update public.appointments
      set status = case when status = 'cancelled' then status else 'scheduled' end,
          sync_status = 'synced', pq_appointment_id = p_pq_appointment_id
      where id = v_job.appointment_id;
      if p_intake_outcome = 'sent' then
        update public.appointments set intake_forms_status = 'sent', intakeq_intake_id = p_intakeq_intake_id
        where id = v_job.appointment_id and intake_forms_status in ('pending', 'failed');
      end if;
    exception when others then
      -- An answer the database refuses for good: the job ends, visibly, instead of coming back every minute.
      get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
      perform private.kill_sync_job(p_job_id,
        format('IntakeQ''s answer could not be stored (%s %s)', v_sqlstate, coalesce(v_constraint, '')), 'permanent');
      return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
    end;
    -- The id a stale holder reported is no duplicate if it is the one adopted; the others now know ours.
    delete from public.sync_possible_duplicates
    where appointment_id = v_job.appointment_id and other_pq_appointment_id = p_pq_appointment_id and recorded_pq_appointment_id is null;
    update public.sync_possible_duplicates set recorded_pq_appointment_id = p_pq_appointment_id
    where appointment_id = v_job.appointment_id and recorded_pq_appointment_id is null;
    if exists (select 1 from public.appointments where id = v_job.appointment_id and status = 'cancelled') then
      perform private.note_possible_duplicate(v_job, p_pq_appointment_id, p_pq_appointment_id,
        'the booking was cancelled while it was being posted: cancel this appointment in IntakeQ', p_runner);
    end if;
    -- The intake questionnaire: the job is done when the appointment is in IntakeQ AND the paperwork sent (or
    -- none is required); a paperwork failure keeps the appointment synced and the job going, or ends it dead.
    update public.sync_retry_queue
    set needs_reconcile = false,
        needs_intake_lookup = (needs_intake_lookup and not p_intake_lookup_completed) or coalesce(p_intake_error_kind = 'ambiguous', false)
    where id = p_job_id;
    if exists (select 1 from public.appointments where id = v_job.appointment_id and intake_forms_status in ('sent', 'not_required')) then
      update public.sync_retry_queue
      set state = 'done', completed_at = now(), needs_intake_lookup = false,
          error_message = null, last_error_kind = null, locked_by = null, locked_until = null
      where id = p_job_id;
    elsif p_intake_outcome in ('released', 'auth_failed') then
      -- The paperwork was not tried (a 429, a refused key, a lease too short): the attempt is given back.
      if p_intake_outcome = 'auth_failed' then
        update public.sync_queue_state
        set paused_reason = left(coalesce(p_intake_error, 'IntakeQ refused the key'), 2000), paused_at = coalesce(paused_at, now()),
            next_probe_at = now() + interval '1 minute', updated_at = now();
      end if;
      update public.sync_retry_queue
      set retry_count = greatest(retry_count - 1, 0), locked_by = null, locked_until = null,
          error_message = left('intake questionnaire: ' || coalesce(p_intake_error, 'not sent yet'), 2000),
          next_retry_at = now() + make_interval(secs => coalesce(p_intake_retry_after_seconds, 0))
      where id = p_job_id;
    elsif p_intake_error_kind = 'permanent' then
      update public.appointments set intake_forms_status = 'failed' where id = v_job.appointment_id;
      perform private.kill_sync_job(p_job_id, 'intake questionnaire: ' || coalesce(p_intake_error, 'refused'), 'permanent');
    else
      update public.sync_retry_queue
      set error_message = left('intake questionnaire: ' || coalesce(p_intake_error, 'not sent yet'), 2000),
          last_error_kind = coalesce(p_intake_error_kind, 'transient'),
          next_retry_at = now() + private.sync_backoff(retry_count, p_max_backoff_minutes),
          locked_by = null, locked_until = null
      where id = p_job_id;
    end if;

  elsif p_outcome = 'cancelled' then
    if p_pq_appointment_id is not null then
      perform private.note_possible_duplicate(v_job, v_recorded, p_pq_appointment_id,
        'the booking was cancelled before it synced, but IntakeQ has this appointment for it', p_runner);
    end if;
    update public.sync_retry_queue
    set state = 'cancelled', completed_at = now(), needs_reconcile = false, locked_by = null, locked_until = null
    where id = p_job_id;

  elsif p_outcome in ('released', 'auth_failed') then
    -- Not tried (or refused before anything could happen): the attempt is given back, the reason kept.
    if p_outcome = 'auth_failed' then
      update public.sync_queue_state
      set paused_reason = left(p_error, 2000), paused_at = coalesce(paused_at, now()),
          next_probe_at = now() + interval '1 minute', updated_at = now();
    end if;
    update public.sync_retry_queue
    set retry_count = greatest(retry_count - 1, 0), locked_by = null, locked_until = null,
        error_message = coalesce(left(p_error, 2000), error_message),
        next_retry_at = now() + make_interval(secs => coalesce(p_retry_after_seconds, 0))
    where id = p_job_id;

  elsif p_error_kind = 'permanent' or v_job.retry_count >= coalesce(p_max_attempts, v_job.retry_count + 1) then
    update public.sync_retry_queue
    set needs_reconcile = (needs_reconcile and not p_lookup_completed) or p_error_kind = 'ambiguous'
                          or cardinality(stale_pq_appointment_ids) > 0
    where id = p_job_id;
    perform private.kill_sync_job(p_job_id, p_error, p_error_kind);

  else
    -- 1, 2, 4, 8 ... minutes up to the cap, +-20% jitter, never sooner than IntakeQ's Retry-After.
    v_backoff := greatest(private.sync_backoff(v_job.retry_count, p_max_backoff_minutes),
                          make_interval(secs => coalesce(p_retry_after_seconds, 0)));
    if now() + v_backoff > v_job.window_started_at + make_interval(hours => p_retry_window_hours) then
      perform private.kill_sync_job(p_job_id,
        format('no success within %s hours of booking; last error: %s', p_retry_window_hours, p_error), p_error_kind);
      update public.sync_retry_queue
      set needs_reconcile = (needs_reconcile and not p_lookup_completed) or p_error_kind = 'ambiguous'
                          or cardinality(stale_pq_appointment_ids) > 0
      where id = p_job_id;
    else
      update public.sync_retry_queue
      set error_message = left(p_error, 2000), last_error_kind = p_error_kind,
          needs_reconcile = (needs_reconcile and not p_lookup_completed) or p_error_kind = 'ambiguous'
                          or cardinality(stale_pq_appointment_ids) > 0,
          next_retry_at = now() + v_backoff, locked_by = null, locked_until = null
      where id = p_job_id;
    end if;
  end if;
  return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
end;
$$;


-- sync_health --------------------------------------------------------------------------------------------------
create or replace function public.sync_health()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'appointments_by_sync_status', (
      select jsonb_build_object(
        'pending', count(*) filter (where sync_status = 'pending'),
        'synced',  count(*) filter (where sync_status = 'synced'),
        'failed',  count(*) filter (where sync_status = 'failed'))
      from public.appointments),
    'jobs_by_state', (
      select jsonb_build_object(
        'pending',   count(*) filter (where state = 'pending'),
        'done',      count(*) filter (where state = 'done'),
        'dead',      count(*) filter (where state = 'dead'),
        'cancelled', count(*) filter (where state = 'cancelled'))
      from public.sync_retry_queue),
    'queue', (
      select jsonb_build_object('paused', paused_at is not null, 'reason', paused_reason,
                                'paused_since', private.rfc3339(paused_at))
      from public.sync_queue_state),
    'dead_jobs', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'job_id', q.id, 'appointment_id', q.appointment_id, 'request_id', q.request_id,
               'attempts', q.retry_count, 'error', q.error_message, 'error_kind', q.last_error_kind,
               'dead_since', private.rfc3339(q.completed_at)) order by q.completed_at desc), '[]')
      from public.sync_retry_queue q where q.state = 'dead'),
    'possible_duplicates', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'appointment_id', d.appointment_id, 'provider_id', a.provider_id, 'start', private.rfc3339(a.start_time),
               'recorded_pq_appointment_id', d.recorded_pq_appointment_id,
               'other_pq_appointment_id', d.other_pq_appointment_id, 'reason', d.reason,
               'detected_at', private.rfc3339(d.detected_at)) order by d.detected_at desc), '[]')
      from public.sync_possible_duplicates d join public.appointments a on a.id = d.appointment_id),
    'pending_jobs', (select count(*) from public.sync_retry_queue where state = 'pending'),
    'oldest_pending_seconds', (
      select coalesce(extract(epoch from now() - min(created_at))::integer, 0)
      from public.sync_retry_queue where state = 'pending'),
    'last_24h', (
      select jsonb_build_object(
        'bookings', count(*),
        'synced_first_try', count(*) filter (where state = 'done' and retry_count = 1),
        'first_try_share', case when count(*) = 0 then null
                           else round(count(*) filter (where state = 'done' and retry_count = 1)::numeric / count(*), 3) end)
      from public.sync_retry_queue where created_at > now() - interval '24 hours'));
$$;

-- requeue ------------------------------------------------------------------------------------------------------
-- A fresh start: attempts and the retry window begin again; whether IntakeQ may already have it is kept.
create or replace function public.requeue_sync_job(p_appointment_id uuid, p_requested_by text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_job public.sync_retry_queue%rowtype;
begin
  if p_requested_by is null or char_length(p_requested_by) not between 1 and 100 then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_requeue', 'p_requested_by is required');
  end if;
  select * into v_job from public.sync_retry_queue where appointment_id = p_appointment_id for update;
  if not found then
    perform private.fail(404, 'SYNC_JOB_NOT_FOUND', 'sync_requeue', 'this appointment has no sync job');
  end if;
  if v_job.state <> 'dead' then
    perform private.fail(409, 'SYNC_JOB_NOT_DEAD', 'sync_requeue', 'only a dead job can be requeued; this one is ' || v_job.state);
  end if;
  update public.sync_retry_queue
  set state = 'pending', retry_count = 0, next_retry_at = now(), completed_at = null, window_started_at = now(),
      error_message = left('requeued by ' || p_requested_by || ' after: ' || coalesce(error_message, 'no error recorded'), 2000)
  where id = v_job.id;
  update public.appointments set sync_status = 'pending' where id = p_appointment_id and sync_status = 'failed';
  update public.appointments set intake_forms_status = 'pending' where id = p_appointment_id and intake_forms_status = 'failed';
  return private.sync_job(v_job.id);
end;
$$;


-- Every dead job that died at or after p_since, after an outage or a fix: answers how many and which.
create function public.requeue_dead_sync_jobs(p_since timestamptz, p_requested_by text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_appointments uuid[];
begin
  if p_since is null or p_requested_by is null or char_length(p_requested_by) not between 1 and 100 then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_requeue', 'p_since and p_requested_by are required');
  end if;
  select coalesce(array_agg(appointment_id order by completed_at), '{}') into v_appointments
  from public.sync_retry_queue where state = 'dead' and completed_at >= p_since;
  perform public.requeue_sync_job(id, p_requested_by) from unnest(v_appointments) as id;
  return jsonb_build_object('requeued', cardinality(v_appointments), 'appointment_ids', to_jsonb(v_appointments));
end;
$$;

revoke all on function public.claim_sync_jobs, public.record_sync_result, public.requeue_dead_sync_jobs
  from public, anon, authenticated;
grant execute on function public.claim_sync_jobs, public.record_sync_result, public.requeue_dead_sync_jobs
  to service_role;
revoke all on function private.sync_lease_token, private.note_possible_duplicate, private.kill_sync_job,
  private.resume_sync_queue, private.seconds_left, private.sync_backoff from public, anon, authenticated;
