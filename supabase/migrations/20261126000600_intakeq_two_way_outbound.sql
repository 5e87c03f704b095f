-- =============================================================================================================
-- Two-way with IntakeQ, outbound (issue 13): a patient (or the partner, or staff) cancels or moves an appointment
-- here, and the sync outbox makes IntakeQ follow. The model is a three-way comparison (the appointments columns
-- come with 20261126000500_intakeq_two_way_inbound.sql):
--
--   ours     the row: status, start_time
--   base     what IntakeQ has, as we last knew it: intakeq_status, intakeq_start_time
--   theirs   what IntakeQ says now (a re-read)
--
-- Ours differs from base -> we owe IntakeQ a change. The appointment's one sync job (sync_retry_queue) is
-- reopened and does it, under every rule the create already had: leases and fencing tokens, attempts counted at
-- claim, sticky reconcile (for a cancel or a move: re-read the appointment before changing it), the retry window,
-- the call budget, staff alerts on a dead job.
--
--   owed operation   private.owed_intakeq_operation: 'create' (the appointment, its paperwork, or for a booking
--                    cancelled first the lookup of what an earlier attempt may have created), 'cancel', 'move',
--                    or nothing. Worked out from the rows every time, never stored: whatever changes ours or base
--                    (a patient, an inbound re-read, a record) changes what is owed.
--   reopen           a patient's cancel or move (and a record that ends a job) starts the job afresh when something
--                    is owed and nobody holds its lease: pending, due now, fresh attempts and window, whatever its
--                    state. A held lease is left alone: its holder's record reopens it (the record looks at what
--                    is owed after it).
--   revive           whoever else writes (an inbound re-read, staff in the SQL editor, a conflict resolved): a job
--                    that ended (done, cancelled) starts again when its appointment now owes IntakeQ something.
--   applied          the outcome of a cancel or a move: IntakeQ's appointment as the attempt last saw it goes
--                    through the inbound rules (private.apply_intakeq_appointment), so a change staff made
--                    meanwhile is taken, not overwritten. A re-read that finds what we owe still owed (our write
--                    never landed) keeps the same job going, its attempts and retry window kept, so a write that
--                    keeps failing dies (and alerts) instead of starting afresh each minute.
--   posted_starts    every start a post of the create, or a move, may have used: a booking moved before it synced
--                    is looked for at each of them, so a reconcile never misses the first post; a re-read finding
--                    IntakeQ at one of them finds our own write landed (the base), so a patient's later
--                    reschedule is not taken for a staff move back to the earlier start.
--   in review        while an open move_collides conflict stands (staff moved it in IntakeQ to a time taken here),
--                    no move of ours is pushed over it, and reschedule_appointment refuses (409
--                    APPOINTMENT_IN_REVIEW): it would be taken here and never reach IntakeQ. A cancel stays allowed.
--   transient errors a deadlock, a serialization failure, a lock timeout or a shutdown while record_sync_result
--                    stores a 'synced' answer or adopts what a lookup found is raised, so the report is retried,
--                    instead of ending the job dead or losing the adoption.
--
-- Lock order: the job's row, then the appointment's row, then the booking advisory locks
-- (private.lock_booking_slots). record_sync_result (job, then apply's appointment and locks), cancel_appointment
-- and reschedule_appointment follow it. The inbound rules lock the appointment first and never wait for a job's
-- row: the revive triggers take it only if it is free (skip locked).
-- =============================================================================================================

-- Every start a post may have used ------------------------------------------------------------------------------
alter table public.sync_retry_queue
  add column posted_starts timestamptz[] not null default '{}';
comment on column public.sync_retry_queue.posted_starts is
  'Every start a post or a move of this appointment may have used (each lease of a create or a move adds its start): a reconcile looks for each, and a re-read finding IntakeQ at one finds our own write.';

-- The jobs an attempt has already worked on were posted, if at all, at the appointment's start: appointments
-- could not move before this migration.
update public.sync_retry_queue q set posted_starts = array[a.start_time]
from public.appointments a
where a.id = q.appointment_id and a.pq_appointment_id is null and (q.retry_count > 0 or q.locked_by is not null);

-- The booking request's own lease (book_appointment inserts the job leased to it) may post too.
create function private.sync_posted_start_at_insert()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.locked_by is not null then
    new.posted_starts := coalesce(
      (select array[a.start_time] from public.appointments a
       where a.id = new.appointment_id and a.pq_appointment_id is null and a.status <> 'cancelled'),
      new.posted_starts);
  end if;
  return new;
end;
$$;
create trigger sync_retry_queue_posted_start before insert on public.sync_retry_queue
  for each row execute function private.sync_posted_start_at_insert();

-- What the job owes IntakeQ -------------------------------------------------------------------------------------
-- In this order:
--   'create'  not in IntakeQ yet (pq_appointment_id null) and active, or cancelled but an earlier attempt may
--             have created it (needs_reconcile: the attempt looks, and posts nothing)
--   'cancel'  in IntakeQ, cancelled here, and IntakeQ's status (as we last knew it) is not cancelled
--   'create'  in IntakeQ, active, and its paperwork still pending (the attempt sends only the questionnaire)
--   nothing   an open 'move_collides' conflict: staff moved it in IntakeQ to a time we could not take; our start
--             is never pushed back over that until staff resolve it
--   'move'    in IntakeQ, active, and our start differs from IntakeQ's (as we last knew it)
-- p_taking_over: as the claim sees it once it takes the lease over from a holder that vanished (which makes the
-- next attempt look for what that holder may have created).
create function private.owed_intakeq_operation(p_job_id uuid, p_taking_over boolean)
returns text
language sql
stable
set search_path = ''
as $$
  select case
    when a.pq_appointment_id is null then
      case when a.status <> 'cancelled' or q.needs_reconcile or (p_taking_over and q.locked_by is not null)
           then 'create' end
    when a.status = 'cancelled' then
      case when coalesce(a.intakeq_status, '') not in ('Canceled', 'Declined') then 'cancel' end
    when a.intake_forms_status = 'pending' then 'create'
    when exists (select from public.intakeq_conflicts c
                 where c.appointment_id = a.id and c.kind = 'move_collides' and c.resolved_at is null) then null
    when a.start_time is distinct from a.intakeq_start_time then 'move'
  end
  from public.sync_retry_queue q
  join public.appointments a on a.id = q.appointment_id
  where q.id = p_job_id;
$$;

create function private.owed_intakeq_operation(p_job_id uuid)
returns text
language sql
stable
set search_path = ''
as $$
  select private.owed_intakeq_operation(p_job_id, false);
$$;

-- The calls an attempt of this job makes (src/sync/attempt.rs), at most: as before for a create; a cancel or a
-- move is one call (POST /appointments/cancellation, PUT /appointments), and one more to re-read the
-- appointment first when the job needs_reconcile; nothing owed, no call.
create or replace function private.intakeq_calls_needed(p_job_id uuid, p_taking_over boolean)
returns integer
language sql
stable
set search_path = ''
as $$
  select
    case
      when f.operation is null then 0
      when f.operation in ('cancel', 'move') then 1 + (case when f.reconcile then 1 else 0 end)
      -- in IntakeQ, but the patient's client is unknown: the attempt fails for good without a call
      when a.pq_appointment_id is not null and p.intakeq_client_id is null then 0
      else
        -- the appointment: the client (search + create), a lookup, the post; nothing for a cancelled booking
        -- with nothing to look up
        (case when a.pq_appointment_id is not null or (a.status = 'cancelled' and not f.reconcile) then 0
              else (case when p.intakeq_client_id is null then 2 else 0 end)
                   + (case when f.reconcile then 1 else 0 end)
                   + (case when a.status <> 'cancelled' then 1 else 0 end)
         end)
        -- the paperwork: the send, and a lookup first after an ambiguous one
        + (case when a.intake_forms_status = 'pending' and a.status <> 'cancelled'
                then 1 + (case when f.intake_lookup then 1 else 0 end) else 0 end)
    end
  from public.sync_retry_queue q
  join public.appointments a on a.id = q.appointment_id
  join public.patients p on p.id = a.patient_id
  cross join lateral (
    select q.needs_reconcile or (p_taking_over and q.locked_by is not null) as reconcile,
           q.needs_intake_lookup or (p_taking_over and q.locked_by is not null and a.intake_forms_status = 'pending') as intake_lookup,
           private.owed_intakeq_operation(q.id, p_taking_over) as operation
  ) f
  where q.id = p_job_id;
$$;

-- The job as runners get it: now with what it owes (operation), every start a post may have used, and the
-- cancellation's reason for IntakeQ (the patient's words: the worker passes it on and never logs it).
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
    'intakeq_calls_reserved', (select r.calls from public.intakeq_call_reservations r where r.lease_token = q.lease_token),
    'operation',        private.owed_intakeq_operation(q.id),
    'posted_starts',    (select coalesce(jsonb_agg(private.rfc3339(s.at) order by s.n), '[]')
                         from unnest(q.posted_starts) with ordinality as s(at, n)),
    'cancellation_reason', (select a.cancellation_reason from public.appointments a where a.id = q.appointment_id),
    'booking',          private.booking_result(q.appointment_id))
  from public.sync_retry_queue q
  where q.id = p_job_id;
$$;

-- Reopening -----------------------------------------------------------------------------------------------------
-- A fresh start: pending, due now, attempts and the retry window afresh, the error cleared (a new change is a new
-- start, as a requeue is). Kept: whether IntakeQ may already have it (needs_reconcile, needs_intake_lookup,
-- posted_starts) and a lease that ran out (the claim then knows its holder vanished).
create function private.restart_sync_job(p_job_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_appointment_id uuid;
begin
  update public.sync_retry_queue
  set state = 'pending', next_retry_at = now(), retry_count = 0, window_started_at = now(),
      error_message = null, last_error_kind = null, completed_at = null
  where id = p_job_id
  returning appointment_id into v_appointment_id;
  -- A job that died before IntakeQ had the appointment marked it failed, and its paperwork with it (the job's
  -- death, not a refusal of the questionnaire): both are pending again, as after a requeue.
  update public.appointments
  set sync_status = case when sync_status = 'failed' then 'pending' else sync_status end,
      intake_forms_status = case when intake_forms_status = 'failed' then 'pending' else intake_forms_status end
  where id = v_appointment_id and pq_appointment_id is null and (sync_status = 'failed' or intake_forms_status = 'failed');
end;
$$;

-- When something is owed and nobody holds the lease, the job starts afresh (whatever its state: a patient's change
-- is a new request). A held lease is left alone: its holder's record reopens the job (the record looks at what is
-- owed after it). Answers whether it reopened.
create function private.reopen_sync_job(p_appointment_id uuid)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_job public.sync_retry_queue%rowtype;
begin
  select * into v_job from public.sync_retry_queue where appointment_id = p_appointment_id for update;
  if not found or (v_job.locked_by is not null and v_job.locked_until > now())
     or private.owed_intakeq_operation(v_job.id) is null then
    return false;
  end if;
  perform private.restart_sync_job(v_job.id);
  return true;
end;
$$;

-- Whoever writes (a re-read of IntakeQ, staff in the SQL editor, a conflict resolved): a job that ended (done or
-- cancelled) while its appointment now owes IntakeQ something starts again. A pending job is left as it is (it
-- will do what is owed; resetting its attempts on every write could keep it from ever ending), and so is a dead
-- one (staff were alerted; they requeue it). The job's row is taken only if free: the writer may hold the
-- appointment's row while a record holds the job's and waits for it (the opposite order), and that record
-- reopens the job itself.
create function private.revive_sync_job(p_appointment_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_job_id uuid;
begin
  select q.id into v_job_id from public.sync_retry_queue q
  where q.appointment_id = p_appointment_id and q.state in ('done', 'cancelled')
  for update skip locked;
  if v_job_id is not null and private.owed_intakeq_operation(v_job_id) is not null then
    perform private.restart_sync_job(v_job_id);
  end if;
end;
$$;

-- Ours or the base changed.
create function private.sync_revive_on_appointment()
returns trigger
language plpgsql
security definer                                    -- staff tooling (service_role) has no usage on schema private
set search_path = ''
as $$
begin
  perform private.revive_sync_job(new.id);
  return null;
end;
$$;
create trigger appointments_revive_sync_job
  after update of status, start_time, pq_appointment_id, intakeq_status, intakeq_start_time on public.appointments
  for each row
  when (new.status is distinct from old.status or new.start_time is distinct from old.start_time
        or new.pq_appointment_id is distinct from old.pq_appointment_id
        or new.intakeq_status is distinct from old.intakeq_status
        or new.intakeq_start_time is distinct from old.intakeq_start_time)
  execute function private.sync_revive_on_appointment();

-- A move conflict resolved: the move it held back may be owed again.
create function private.sync_revive_on_conflict_resolved()
returns trigger
language plpgsql
security definer                                    -- staff tooling (service_role) has no usage on schema private
set search_path = ''
as $$
begin
  perform private.revive_sync_job(new.appointment_id);
  return null;
end;
$$;
create trigger intakeq_conflicts_revive_sync_job
  after update of resolved_at on public.intakeq_conflicts
  for each row
  when (old.resolved_at is null and new.resolved_at is not null and new.appointment_id is not null)
  execute function private.sync_revive_on_conflict_resolved();

-- Bookable times, one definition -------------------------------------------------------------------------------
-- Whether the practice offers a start: in the future (SLOT_IN_PAST), on its grid and at least its notice ahead
-- (SLOT_NOT_OFFERED). book_appointment's check_slot and reschedule_appointment both ask it.
create function private.check_slot_offered(p_start timestamptz)
returns void
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
end;
$$;

-- check_slot as in 20261126000200_honest_bookings.sql, its first three checks now private.check_slot_offered
-- (the same checks, messages and order).
create or replace function private.check_slot(
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
begin
  perform private.check_slot_offered(p_start);
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

-- claim_sync_jobs ----------------------------------------------------------------------------------------------
-- As in 20261126000100_intakeq_call_budget.sql, and:
--   * a job that owes IntakeQ nothing (as the claim would see it) ends at claim without a call: 'cancelled' when
--     its appointment is cancelled, else 'done'. For a booking cancelled before it reached IntakeQ that is the
--     old end (nothing to look up, no holder vanished); a booking in IntakeQ whose cancellation is owed is now
--     claimed for it instead.
--   * leasing a create of an appointment not in IntakeQ yet, or a move, adds its start to posted_starts (moved to
--     the end if it is there already, so the last is the start this lease posts).
create or replace function public.claim_sync_jobs(
  p_runner              text,
  p_limit               integer,
  p_lease_seconds       integer,
  p_retry_window_hours  integer default 72,
  p_max_attempts        integer default null, -- a cap on attempts; null: the retry window alone decides
  p_max_backoff_minutes integer default 30,
  -- IntakeQ's call budget (see reserve_intakeq_calls); a null p_calls_per_minute applies none
  p_calls_per_minute    integer default null,
  p_calls_per_day       integer default null,
  p_minute_ms           integer default 60000
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
  v_claimed uuid[] := '{}';
  v_next    uuid;
  v_calls   integer;
  v_token   uuid;
  v_until   timestamptz;
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
  if p_calls_per_minute is not null then
    perform private.check_intakeq_budget('sync_claim', p_calls_per_minute, p_calls_per_day, p_minute_ms);
  end if;

  -- Jobs that can end without IntakeQ: nothing owed (a booking cancelled before it reached IntakeQ with nothing
  -- to look up, no holder vanished mid-attempt; a change undone before it was made), or out of time, or out of
  -- attempts.
  for v_job in
    select q.id, a.status, q.retry_count, q.error_message, f.operation
    from public.sync_retry_queue q
    join public.appointments a on a.id = q.appointment_id
    cross join lateral (select private.owed_intakeq_operation(q.id, true) as operation) f
    where q.state = 'pending' and (q.locked_until is null or q.locked_until <= now())
      and (f.operation is null
           or q.window_started_at + make_interval(hours => p_retry_window_hours) <= now()
           or q.retry_count >= p_max_attempts)
    for update of q skip locked
  loop
    if v_job.operation is null then
      update public.sync_retry_queue
      set state = case when v_job.status = 'cancelled' then 'cancelled' else 'done' end, completed_at = now(),
          locked_by = null, locked_until = null
      where id = v_job.id;
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

  -- Reservations no window counts any more.
  delete from public.intakeq_call_reservations
  where held_until < now() - greatest(interval '1 day', make_interval(secs => coalesce(p_minute_ms, 60000) / 1000.0) * 1440)
                   - interval '1 hour';

  -- A paused queue lets one probe job through a minute.
  select * into v_queue from public.sync_queue_state for update;
  if v_queue.paused_at is not null then
    if v_queue.next_probe_at > now() then
      return '[]';
    end if;
    v_limit := 1;
    update public.sync_queue_state set next_probe_at = now() + interval '1 minute', updated_at = now();
  end if;

  -- Oldest booking first, one at a time. With a budget, a job is claimed only if its calls fit now (they are
  -- reserved for its new lease in this transaction); the first that does not fit ends the claim, so no younger
  -- job overtakes it.
  while cardinality(v_claimed) < v_limit loop
    v_next := private.oldest_due_sync_job(true);
    exit when v_next is null;
    if p_calls_per_minute is not null then
      v_calls := least(private.intakeq_calls_needed(v_next, true), p_calls_per_minute, p_calls_per_day);
      exit when v_calls > 0
                and private.intakeq_budget_wait_ms(v_calls, p_calls_per_minute, p_calls_per_day, p_minute_ms) > 0;
    end if;
    update public.sync_retry_queue q
    set -- a holder that let its lease run out never reported: its attempt may have reached IntakeQ
        needs_reconcile = q.needs_reconcile or q.locked_by is not null,
        locked_by = p_runner,
        lease_token = gen_random_uuid(),
        locked_until = now() + make_interval(secs => p_lease_seconds),
        retry_count = q.retry_count + 1,
        last_attempt_at = now(),
        -- if this runner never reports, the job waits out its backoff after the lease, as after a failure
        next_retry_at = now() + make_interval(secs => p_lease_seconds) + private.sync_backoff(q.retry_count + 1, p_max_backoff_minutes),
        -- this lease may post the appointment at its current start, or move IntakeQ's to it
        posted_starts = case when a.status <> 'cancelled'
                                  and (a.pq_appointment_id is null or a.start_time is distinct from a.intakeq_start_time)
                             then array_append(array_remove(q.posted_starts, a.start_time), a.start_time)
                             else q.posted_starts end
    from public.appointments a
    where q.id = v_next and a.id = q.appointment_id
    returning q.lease_token, q.locked_until into v_token, v_until;
    if p_calls_per_minute is not null then
      insert into public.intakeq_call_reservations (job_id, lease_token, holder, calls, held_until)
      values (v_next, v_token, p_runner, v_calls, v_until);
    end if;
    v_claimed := v_claimed || v_next;
  end loop;
  return (select coalesce(jsonb_agg(private.sync_job(id)), '[]') from unnest(v_claimed) as id);
end;
$$;

-- record_sync_result -------------------------------------------------------------------------------------------
-- As in 20261126000100_intakeq_call_budget.sql, and:
--   * 'applied': a cancel or a move is done in IntakeQ (or a re-read found it done, or the appointment cancelled
--     or gone there). Under fencing, IntakeQ's appointment as the attempt last saw it (p_intakeq_appointment;
--     null: IntakeQ answered 404) goes through the inbound rules (private.apply_intakeq_appointment). When this
--     attempt wrote it (p_intakeq_written), what IntakeQ answered is first taken as what IntakeQ has from us
--     (the base): our own change is never mistaken for a staff change, and a change made here meanwhile (a second
--     reschedule during the lease) stays owed. A stale 'applied' is refused and makes the next attempt re-read
--     first (needs_reconcile): the stale holder's change may have reached IntakeQ. A re-read (not written by this
--     attempt) finding IntakeQ at a start we sent it ourselves (posted_starts) takes it as ours landing, the base,
--     before the rules run. A re-read finding what we owe still owed (our earlier write never landed) leaves the
--     same job pending, due now, its attempts and retry window kept, instead of ending it (and reopening it afresh).
--   * 'synced' also records what IntakeQ has (the base) when it is new to us: p_intakeq_appointment's Status
--     (else 'Confirmed') and StartDate (else the start the lease posted, else the start).
--   * 'cancelled' with an IntakeQ appointment a lookup found upstream: it is adopted (its id, synced, the base),
--     so its cancellation is owed and posted, instead of being left to staff as a possible duplicate.
--   * a transient error of the database (private.is_transient: SQLSTATE classes 40, 53, 57 and 55P03) while a
--     'synced' answer is stored or a lookup's find adopted is raised, so the worker's report fails and is retried;
--     only an error of the answer itself (one that will fail again) ends the job dead, or is left to staff as a
--     possible duplicate.
--   * a booking cancelled while it was being posted is no longer listed for staff: its cancellation is posted.
--     Such a job ends 'cancelled' (its paperwork is not required any more).
--   * after any recorded outcome that ends the job (done or cancelled), if IntakeQ is still owed something (a
--     change made while the lease was held, say), the job is reopened (private.reopen_sync_job): pending, due
--     now, fresh attempts and window, no error.
drop function public.record_sync_result(uuid, text, uuid, text, text, text, text, text, integer, integer, boolean, integer,
  integer, boolean, text, text, text, text, boolean, integer, integer, integer);
create function public.record_sync_result(
  p_job_id               uuid,
  p_runner               text,
  p_lease_token          uuid,
  p_outcome              text,              -- 'synced' | 'applied' | 'failed' | 'released' | 'auth_failed' | 'cancelled'
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
  p_intake_retry_after_seconds integer default null, -- with 'released' / 'auth_failed' for the paperwork
  -- IntakeQ's call budget: the calls this attempt made (null: not said), and IntakeQ's 429 (its Retry-After)
  p_intakeq_calls_made   integer default null,
  p_rate_limited_seconds integer default null,
  -- IntakeQ's appointment as the attempt last saw it ({Id, Status, StartDate (Unix ms), ...}): with 'synced' the
  -- one posted or adopted, with 'cancelled' the one found, with 'applied' the one changed or re-read (null with
  -- 'applied': IntakeQ answered 404, it is gone).
  p_intakeq_appointment  jsonb   default null,
  p_intakeq_written      boolean default false  -- with 'applied': this attempt made the change (not a re-read)
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_job        public.sync_retry_queue%rowtype;
  v_recorded   text;
  v_holder     uuid;
  v_backoff    interval;
  v_sqlstate   text;
  v_constraint text;
  v_status     text;          -- p_intakeq_appointment's Status
  v_start      timestamptz;   -- p_intakeq_appointment's StartDate
  v_adopted    boolean;
begin
  if p_outcome is null or p_outcome not in ('synced', 'applied', 'failed', 'released', 'auth_failed', 'cancelled')
     or (p_outcome = 'synced' and p_pq_appointment_id is null)
     or (p_outcome = 'failed' and (p_error_kind is null or p_error_kind not in ('transient', 'ambiguous', 'permanent')))
     or (p_outcome = 'auth_failed' and p_error is null)
     or p_max_backoff_minutes is null or p_max_backoff_minutes not between 1 and 1440
     or p_retry_window_hours is null or p_retry_window_hours not between 1 and 8760
     or (p_max_attempts is not null and p_max_attempts not between 1 and 10000)
     or (p_intake_outcome is not null and (p_outcome <> 'synced' or p_intake_outcome not in ('sent', 'failed', 'released', 'auth_failed')))
     or (p_intake_outcome = 'sent' and p_intakeq_intake_id is null)
     or (p_intake_outcome = 'failed' and (p_intake_error_kind is null or p_intake_error_kind not in ('transient', 'ambiguous', 'permanent')))
     or (p_intakeq_calls_made is not null and p_intakeq_calls_made not between 0 and 1000)
     or (p_rate_limited_seconds is not null and p_rate_limited_seconds not between 1 and 86400)
     or jsonb_typeof(p_intakeq_appointment) not in ('object', 'null') then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_record',
      'an outcome with what it needs: synced + id, failed + kind, auth_failed + error; bounds on the knobs; '
      || 'p_intakeq_appointment an object when given');
  end if;
  -- Read as the inbound rules read it (private.apply_intakeq_appointment): a Status of at most 32 characters, a
  -- StartDate in Unix ms (unreadable: none).
  v_status := left(nullif(btrim(p_intakeq_appointment->>'Status'), ''), 32);
  v_start := private.intakeq_time(p_intakeq_appointment->'StartDate');

  select * into v_job from public.sync_retry_queue where id = p_job_id for update;
  if not found then
    perform private.fail(404, 'SYNC_JOB_NOT_FOUND', 'sync_record', 'no sync job has this id');
  end if;
  select pq_appointment_id into v_recorded from public.appointments where id = v_job.appointment_id;
  if p_outcome = 'applied' and (v_recorded is null
                                or coalesce(nullif(p_intakeq_appointment->>'Id', ''), v_recorded) <> v_recorded
                                or coalesce(p_pq_appointment_id, v_recorded) <> v_recorded) then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_record',
      'applied is for the IntakeQ appointment the booking has: the booking has none, or another one');
  end if;

  -- IntakeQ's call budget, before the fencing: a holder that lost its lease made its calls all the same. Its
  -- reservation becomes the calls made, counted from now (the report comes after its last call; a late report
  -- after the lease's end counts them later still, never earlier); calls made without a reservation count from
  -- now. A 429 makes every caller wait.
  if p_intakeq_calls_made is not null then
    update public.intakeq_call_reservations
    set calls = p_intakeq_calls_made, held_until = now(), reported_at = now()
    where lease_token = p_lease_token and reported_at is null;
    if not found and p_intakeq_calls_made > 0 then
      insert into public.intakeq_call_reservations (job_id, lease_token, holder, calls, held_until, reported_at)
      values (p_job_id, coalesce(p_lease_token, gen_random_uuid()), left(p_runner, 100), p_intakeq_calls_made, now(), now())
      on conflict (lease_token) do nothing;
    end if;
  end if;
  if p_rate_limited_seconds is not null then
    update public.sync_queue_state
    set rate_limited_until = greatest(coalesce(rate_limited_until, now()), now() + make_interval(secs => p_rate_limited_seconds)),
        updated_at = now();
  end if;

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
    if p_outcome = 'applied' then
      -- A stale holder's cancel or move may have reached IntakeQ: whoever changes it next re-reads it first.
      update public.sync_retry_queue set needs_reconcile = true where id = p_job_id;
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
      -- What IntakeQ has (the base), when it is new to us: the appointment posted or adopted, as IntakeQ answered
      -- it; without its answer, the start this lease posted (the last of posted_starts), which a reschedule
      -- during the lease has not changed. A base we knew is kept: only a re-read (the inbound rules) changes it.
      update public.appointments
      set status = case when status = 'cancelled' then status else 'scheduled' end,
          sync_status = 'synced', pq_appointment_id = p_pq_appointment_id,
          intakeq_status = case when v_recorded is null or intakeq_status is null
                                then coalesce(v_status, 'Confirmed') else intakeq_status end,
          intakeq_start_time = case when v_recorded is null or intakeq_start_time is null
                                    then coalesce(v_start, v_job.posted_starts[cardinality(v_job.posted_starts)], start_time)
                                    else intakeq_start_time end
      where id = v_job.appointment_id;
      if p_intake_outcome = 'sent' then
        update public.appointments set intake_forms_status = 'sent', intakeq_intake_id = p_intakeq_intake_id
        where id = v_job.appointment_id and intake_forms_status in ('pending', 'failed');
      end if;
    exception when others then
      get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
      if private.is_transient(v_sqlstate) then
        raise;                                      -- the database, not the answer: the report is worth retrying
      end if;
      -- An answer the database refuses for good: the job ends, visibly, instead of coming back every minute.
      perform private.kill_sync_job(p_job_id,
        format('IntakeQ''s answer could not be stored (%s %s)', v_sqlstate, coalesce(v_constraint, '')), 'permanent');
      return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
    end;
    -- The id a stale holder reported is no duplicate if it is the one adopted; the others now know ours.
    delete from public.sync_possible_duplicates
    where appointment_id = v_job.appointment_id and other_pq_appointment_id = p_pq_appointment_id and recorded_pq_appointment_id is null;
    update public.sync_possible_duplicates set recorded_pq_appointment_id = p_pq_appointment_id
    where appointment_id = v_job.appointment_id and recorded_pq_appointment_id is null;
    -- The intake questionnaire: the job is done when the appointment is in IntakeQ AND the paperwork sent (or
    -- none is required); a paperwork failure keeps the appointment synced and the job going, or ends it dead.
    -- A booking cancelled meanwhile needs no paperwork: its job ends cancelled (and reopens for the cancel).
    update public.sync_retry_queue
    set needs_reconcile = false,
        needs_intake_lookup = (needs_intake_lookup and not p_intake_lookup_completed) or coalesce(p_intake_error_kind = 'ambiguous', false)
    where id = p_job_id;
    if p_intake_outcome = 'auth_failed' then
      update public.sync_queue_state
      set paused_reason = left(coalesce(p_intake_error, 'IntakeQ refused the key'), 2000), paused_at = coalesce(paused_at, now()),
          next_probe_at = now() + interval '1 minute', updated_at = now();
    end if;
    if exists (select 1 from public.appointments where id = v_job.appointment_id
               and (intake_forms_status in ('sent', 'not_required') or status = 'cancelled')) then
      update public.sync_retry_queue
      set state = case when (select status from public.appointments where id = v_job.appointment_id) = 'cancelled'
                       then 'cancelled' else 'done' end,
          completed_at = now(), needs_intake_lookup = false,
          error_message = null, last_error_kind = null, locked_by = null, locked_until = null
      where id = p_job_id;
    elsif p_intake_outcome in ('released', 'auth_failed') then
      -- The paperwork was not tried (a 429, a refused key, a lease too short): the attempt is given back.
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

  elsif p_outcome = 'applied' then
    begin
      if p_intakeq_written and p_intakeq_appointment is not null then
        -- This attempt wrote it: what IntakeQ answered is what it has from us.
        update public.appointments
        set intakeq_status = coalesce(v_status, intakeq_status), intakeq_start_time = coalesce(v_start, intakeq_start_time)
        where id = v_job.appointment_id;
      elsif v_start is not null and v_start = any(v_job.posted_starts) and not coalesce(v_status in ('Canceled', 'Declined'), false) then
        -- A re-read finding IntakeQ at a start we sent it ourselves (an earlier move whose answer was lost, the
        -- patient having moved again since): that is ours landing, not staff moving it, and the base.
        update public.appointments set intakeq_start_time = v_start
        where id = v_job.appointment_id and intakeq_start_time is distinct from v_start;
      end if;
      perform private.apply_intakeq_appointment(v_recorded, p_intakeq_appointment);
    exception when others then
      get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
      if private.is_transient(v_sqlstate) then
        raise;                                      -- the database, not the answer: the report is worth retrying
      end if;
      perform private.kill_sync_job(p_job_id,
        format('IntakeQ''s answer could not be applied (%s %s)', v_sqlstate, coalesce(v_constraint, '')), 'permanent');
      return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
    end;
    if not p_intakeq_written and private.owed_intakeq_operation(p_job_id) is not null then
      -- A re-read found what we owe still owed (our earlier write never landed): the same job goes on, due now,
      -- its attempts and its retry window kept, so a write that keeps failing ends, visibly, instead of starting
      -- afresh every minute.
      update public.sync_retry_queue
      set needs_reconcile = false, next_retry_at = now(), locked_by = null, locked_until = null
      where id = p_job_id;
    else
      update public.sync_retry_queue
      set state = case when (select status from public.appointments where id = v_job.appointment_id) = 'cancelled'
                       then 'cancelled' else 'done' end,
          completed_at = now(), needs_reconcile = false,
          error_message = null, last_error_kind = null, locked_by = null, locked_until = null
      where id = p_job_id;
    end if;

  elsif p_outcome = 'cancelled' then
    if p_pq_appointment_id is not null then
      v_adopted := false;
      if v_recorded is null and not exists (select from public.appointments a where a.pq_appointment_id = p_pq_appointment_id) then
        -- What an earlier attempt created is ours: adopted, so its cancellation is owed (and posted).
        begin
          update public.appointments
          set pq_appointment_id = p_pq_appointment_id, sync_status = 'synced',
              status = case when status = 'pending_sync' then 'scheduled' else status end,
              intakeq_status = coalesce(v_status, 'Confirmed'), intakeq_start_time = coalesce(v_start, start_time)
          where id = v_job.appointment_id;
          v_adopted := true;
        exception when others then
          -- The database, not the answer (a deadlock, a serialization failure, a lock timeout, a shutdown): the
          -- report fails and is worth retrying, rather than losing the adoption to a possible-duplicate note.
          get stacked diagnostics v_sqlstate = returned_sqlstate;
          if private.is_transient(v_sqlstate) then
            raise;
          end if;
          -- Not storable for good: staff are shown it below instead.
        end;
      end if;
      if v_adopted then
        delete from public.sync_possible_duplicates
        where appointment_id = v_job.appointment_id and other_pq_appointment_id = p_pq_appointment_id and recorded_pq_appointment_id is null;
        update public.sync_possible_duplicates set recorded_pq_appointment_id = p_pq_appointment_id
        where appointment_id = v_job.appointment_id and recorded_pq_appointment_id is null;
      elsif p_pq_appointment_id is distinct from v_recorded then
        perform private.note_possible_duplicate(v_job, v_recorded, p_pq_appointment_id,
          'the booking was cancelled before it synced, but IntakeQ has this appointment for it', p_runner);
      end if;
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

  -- Ended, yet IntakeQ is still owed something (a change made while the lease was held): the job goes on.
  if (select state from public.sync_retry_queue where id = p_job_id) in ('done', 'cancelled') then
    perform private.reopen_sync_job(v_job.appointment_id);
  end if;
  return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
end;
$$;

-- Errors of the database rather than the request, in the booking error scheme ----------------------------------
-- As book_appointment answers them: a step's own error passes; SQLSTATE classes 40, 53, 57 and 55P03 are
-- DATABASE_UNAVAILABLE (503, worth retrying); anything else INTERNAL_ERROR (500) with the SQLSTATE and constraint.
create function private.raise_unexpected_change_error(p_sqlstate text, p_constraint text, p_step text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if private.is_transient(p_sqlstate) then
    perform private.fail(503, 'DATABASE_UNAVAILABLE', p_step, 'database unavailable: ' || p_sqlstate);
  end if;
  perform private.fail(500, 'INTERNAL_ERROR', p_step,
    'unexpected error: ' || p_sqlstate || coalesce(' ' || nullif(p_constraint, ''), ''));
end;
$$;

-- The request's arguments common to a cancel and a reschedule.
create function private.check_change_arguments(p_appointment_id uuid, p_requested_by text, p_request_id text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform private.require_request_id(p_request_id);
  if p_appointment_id is null then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_appointment_id is required');
  end if;
  if p_requested_by is null or p_requested_by not in ('patient', 'partner', 'staff') then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_requested_by must be patient, partner or staff');
  end if;
end;
$$;

-- cancel_appointment -------------------------------------------------------------------------------------------
-- Cancels an appointment for the patient (the worker has checked who asks: the booking's manage token, the
-- partner, staff). The slot is free at once (a cancelled appointment is outside both exclusion constraints and the
-- busy-block check). IntakeQ follows through the sync job:
--   intakeq 'cancellation_queued'   IntakeQ has it: the job is reopened to cancel it there (if a runner holds the
--                                   job, its record reopens it)
--           'create_stopped'        IntakeQ has no id for it yet: the create is not posted; the claim ends the
--                                   job cancelled, or first looks for what an earlier attempt may have created
--                                   (and cancels that)
--           'nothing_to_do'         IntakeQ has it cancelled already, or the job ended before reaching IntakeQ
-- Already cancelled: the same answer with changed false, nothing written. Errors: INVALID_REQUEST 400
-- (request_validation: the request id, p_requested_by, a reason over 500 characters), APPOINTMENT_NOT_FOUND 404
-- (appointment_lookup), APPOINTMENT_STARTED 422 (appointment_change: its start is not in the future).
create function public.cancel_appointment(
  p_appointment_id uuid,
  p_reason         text,   -- the patient's words for IntakeQ's cancellation; optional, at most 500 characters
  p_requested_by   text,   -- 'patient' | 'partner' | 'staff'
  p_request_id     text
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_step        text := 'request_validation';
  v_reason      text := nullif(btrim(p_reason), '');
  v_appointment public.appointments%rowtype;
  v_job         public.sync_retry_queue%rowtype;
  v_changed     boolean := false;
  v_sqlstate    text;
  v_constraint  text;
begin
  perform private.check_change_arguments(p_appointment_id, p_requested_by, p_request_id);
  if char_length(v_reason) > 500 then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_reason is longer than 500 characters');
  end if;

  v_step := 'appointment_lookup';
  -- The job's row before the appointment's: the order record_sync_result takes them in.
  select * into v_job from public.sync_retry_queue where appointment_id = p_appointment_id for update;
  select * into v_appointment from public.appointments where id = p_appointment_id for update;
  if not found then
    perform private.fail(404, 'APPOINTMENT_NOT_FOUND', 'appointment_lookup', 'no appointment has this id');
  end if;

  v_step := 'appointment_change';
  if v_appointment.status <> 'cancelled' then
    if v_appointment.start_time <= now() then
      perform private.fail(422, 'APPOINTMENT_STARTED', 'appointment_change', 'the appointment has started or is over');
    end if;
    update public.appointments
    set status = 'cancelled', cancelled_at = now(), cancelled_by = p_requested_by, cancellation_reason = v_reason
    where id = p_appointment_id;
    perform private.reopen_sync_job(p_appointment_id);
    v_changed := true;
  end if;

  select * into v_job from public.sync_retry_queue where appointment_id = p_appointment_id;
  return jsonb_build_object(
    'appointment_id', p_appointment_id,
    'status',         'cancelled',
    'changed',        v_changed,
    'intakeq',        case
                        when v_appointment.pq_appointment_id is not null then
                          case when private.owed_intakeq_operation(v_job.id) = 'cancel' then 'cancellation_queued'
                               else 'nothing_to_do' end
                        when v_job.state = 'pending' then 'create_stopped'
                        else 'nothing_to_do' end);

exception
  when others then
    get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
    if v_sqlstate like 'PT%' then
      raise;
    end if;
    perform private.raise_unexpected_change_error(v_sqlstate, v_constraint, v_step);
end;
$$;

-- reschedule_appointment ---------------------------------------------------------------------------------------
-- Moves an appointment to p_start, keeping its length, checked like a booking in this one transaction: the
-- practice offers the start (SLOT_IN_PAST / SLOT_NOT_OFFERED 422, the check book_appointment uses), and under the
-- provider's and the patient's booking locks (book_appointment's order) the exclusion constraints and the busy
-- blocks decide: SLOT_TAKEN 409 (the provider's appointment, or IntakeQ's busy block), PATIENT_SLOT_TAKEN 409 (the
-- patient's other appointment; the caller is the patient, or trusted), step conflict_check; nothing is changed
-- then. The same start: changed false, nothing written. The sync job is reopened to move it in IntakeQ (or, not
-- there yet, to post it at the new start). Errors besides: INVALID_REQUEST 400 (request_validation),
-- APPOINTMENT_NOT_FOUND 404 (appointment_lookup), APPOINTMENT_CANCELLED 409, APPOINTMENT_STARTED 422 and
-- APPOINTMENT_IN_REVIEW 409 (appointment_change): while an open move_collides conflict stands for the appointment
-- (staff moved it in IntakeQ to a time taken here), nothing is changed. A cancel stays allowed: it ends the
-- conflict (appointments_settle_intakeq_conflicts) and owes IntakeQ a cancel as before.
create function public.reschedule_appointment(
  p_appointment_id uuid,
  p_start          timestamptz,
  p_requested_by   text,   -- 'patient' | 'partner' | 'staff'
  p_request_id     text
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_step        text := 'request_validation';
  v_appointment public.appointments%rowtype;
  v_start       timestamptz := p_start;
  v_changed     boolean := false;
  v_sqlstate    text;
  v_constraint  text;
begin
  perform private.check_change_arguments(p_appointment_id, p_requested_by, p_request_id);
  if v_start is null then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_start is required');
  end if;

  v_step := 'appointment_lookup';
  -- The job's row, the appointment's, then the booking locks: the order record_sync_result and the inbound rules
  -- take them in.
  perform 1 from public.sync_retry_queue where appointment_id = p_appointment_id for update;
  select * into v_appointment from public.appointments where id = p_appointment_id for update;
  if not found then
    perform private.fail(404, 'APPOINTMENT_NOT_FOUND', 'appointment_lookup', 'no appointment has this id');
  end if;

  v_step := 'appointment_change';
  if v_appointment.status = 'cancelled' then
    perform private.fail(409, 'APPOINTMENT_CANCELLED', 'appointment_change', 'the appointment is cancelled');
  end if;
  if v_appointment.start_time <= now() then
    perform private.fail(422, 'APPOINTMENT_STARTED', 'appointment_change', 'the appointment has started or is over');
  end if;
  -- Staff moved it in IntakeQ to a time taken here: until they settle that in IntakeQ, no move of ours is pushed
  -- there (private.owed_intakeq_operation), so a reschedule taken now would never reach IntakeQ. (Read under the
  -- appointment's lock, which the inbound rules hold when they open a conflict.)
  if exists (select from public.intakeq_conflicts c
             where c.appointment_id = p_appointment_id and c.kind = 'move_collides' and c.resolved_at is null) then
    perform private.fail(409, 'APPOINTMENT_IN_REVIEW', 'appointment_change',
      'staff moved this appointment in IntakeQ to a time taken here; it can be moved once they settle that in IntakeQ');
  end if;

  if v_start <> v_appointment.start_time then
    v_step := 'conflict_check';
    perform private.check_slot_offered(v_start);
    perform private.lock_booking_slots(v_appointment.provider_id, v_appointment.patient_id);
    begin
      update public.appointments
      set start_time = v_start, end_time = v_start + (v_appointment.end_time - v_appointment.start_time)
      where id = p_appointment_id
      returning * into v_appointment;
    exception
      when exclusion_violation then
        get stacked diagnostics v_constraint = constraint_name;
        if v_constraint = 'appointments_no_patient_overlap' then
          perform private.fail(409, 'PATIENT_SLOT_TAKEN', 'conflict_check', 'the patient has another appointment overlapping this time');
        end if;
        perform private.fail(409, 'SLOT_TAKEN', 'conflict_check', 'the provider has another appointment overlapping this time');
    end;
    v_step := 'appointment_change';
    perform private.reopen_sync_job(p_appointment_id);
    v_changed := true;
  end if;

  return jsonb_build_object(
    'appointment_id', v_appointment.id,
    'start',          private.rfc3339(v_appointment.start_time),
    'end',            private.rfc3339(v_appointment.end_time),
    'status',         v_appointment.status,
    'sync_status',    v_appointment.sync_status,
    'changed',        v_changed);

exception
  when others then
    get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
    if v_sqlstate like 'PT%' then
      raise;
    end if;
    perform private.raise_unexpected_change_error(v_sqlstate, v_constraint, v_step);
end;
$$;

revoke all on function public.claim_sync_jobs, public.record_sync_result, public.cancel_appointment,
  public.reschedule_appointment from public, anon, authenticated;
grant execute on function public.claim_sync_jobs, public.record_sync_result, public.cancel_appointment,
  public.reschedule_appointment to service_role;
-- Internals: EXECUTE for nobody but their owner (the API functions run as that owner).
revoke all on function private.sync_posted_start_at_insert(), private.owed_intakeq_operation(uuid, boolean),
  private.owed_intakeq_operation(uuid), private.intakeq_calls_needed(uuid, boolean), private.sync_job(uuid),
  private.restart_sync_job(uuid), private.reopen_sync_job(uuid), private.revive_sync_job(uuid),
  private.sync_revive_on_appointment(), private.sync_revive_on_conflict_resolved(), private.check_slot_offered(timestamptz),
  private.check_slot(uuid, uuid, timestamptz, integer, boolean), private.raise_unexpected_change_error(text, text, text),
  private.check_change_arguments(uuid, text, text)
from public, anon, authenticated, service_role;
