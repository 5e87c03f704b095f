-- =============================================================================================================
-- IntakeQ's call budget, kept here so that every isolate shares it. IntakeQ allows 10 calls a minute and 500 a
-- day (sliding windows; past them it answers 429, perhaps with Retry-After). Every IntakeQ call, the booking
-- request's inline attempt and the cron's alike, is made under a token of this budget, so concurrent isolates
-- never overrun it together.
--
--   reservation     an attempt reserves all the calls it needs before its first call, all or nothing
--                   (intakeq_call_reservations, one row per lease token); more pages than foreseen are topped
--                   up one call at a time. Its report (record_sync_result) says how many calls it really made:
--                   the reservation shrinks to them, even from a holder that lost its lease.
--   occupancy       a reservation counts its calls in a window while its held_until is inside it: held_until
--                   is the lease's end (its holder may call until then), or the moment of its report. So a
--                   call counts for a whole window after the last moment it may have been made: conservative.
--   the windows     a minute (p_minute_ms, 60000 in production) and a day (1440 such minutes).
--   429             a rate-limited report pauses every caller until sync_queue_state.rate_limited_until.
--   oldest first    the cron claims due jobs oldest booking first and stops at the first whose calls do not
--                   fit; an attempt's first reservation is refused while an older job is due (the cron serves
--                   it first), unless the queue is paused. A top-up is never refused for that.
--   serialised      sync_queue_state's row is locked by every reservation (after the job's row, the order
--                   record_sync_result takes them in), so two callers never both take the last calls.
-- =============================================================================================================

-- The tables -----------------------------------------------------------------------------------------------------
create table public.intakeq_call_reservations (
  id          uuid primary key default gen_random_uuid(),
  job_id      uuid references public.sync_retry_queue (id) on delete set null,
  lease_token uuid not null unique,
  holder      text check (char_length(holder) <= 100),
  calls       integer not null check (calls between 0 and 1000),
  taken_at    timestamptz not null default now(),
  held_until  timestamptz not null,
  reported_at timestamptz
);
create index intakeq_call_reservations_held_until on public.intakeq_call_reservations (held_until);
create index intakeq_call_reservations_job on public.intakeq_call_reservations (job_id);
select private.close_to_browser_roles('public.intakeq_call_reservations');

comment on table public.intakeq_call_reservations is 'IntakeQ calls reserved (then made) per lease: the shared call budget.';
comment on column public.intakeq_call_reservations.calls is 'Calls reserved; after the report, the calls made.';
comment on column public.intakeq_call_reservations.held_until is 'Until when calls may be made under it: the lease''s end; after the report, the report''s moment.';

alter table public.sync_queue_state add column rate_limited_until timestamptz;
comment on column public.sync_queue_state.rate_limited_until is 'IntakeQ answered 429: no caller calls it before then.';
-- The staff alert on sync_queue_state (private.alert_on_queue_state) looks only at paused_at: a 429 raises none.

-- The budget -----------------------------------------------------------------------------------------------------
-- The occupancy rule, the one place it is defined: the reservations whose calls count in a window ending now.
create function private.intakeq_reservations_in_window(p_window interval)
returns setof public.intakeq_call_reservations
language sql
stable
set search_path = ''
as $$
  select * from public.intakeq_call_reservations where held_until > now() - p_window;
$$;

-- When p_calls more calls fit into a window of p_limit calls: null if they fit now; else the moment the oldest
-- reservations (by held_until) have left it, freeing enough.
create function private.intakeq_window_frees(p_window interval, p_limit integer, p_calls integer)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select min(r.held_until) + p_window
  from (select held_until,
               sum(calls) over () as used,
               sum(calls) over (order by held_until, id rows between unbounded preceding and current row) as freed
        from private.intakeq_reservations_in_window(p_window)) r
  where r.used + p_calls > p_limit and r.used - r.freed + p_calls <= p_limit;
$$;

-- Milliseconds until p_calls more calls fit (0: now): the 429 pause, the minute's window and the day's. A job
-- needing more than a minute's budget takes the whole minute.
create function private.intakeq_budget_wait_ms(p_calls integer, p_per_minute integer, p_per_day integer, p_minute_ms integer)
returns bigint
language sql
stable
set search_path = ''
as $$
  select greatest(0, ceil(extract(epoch from greatest(
           now(),
           (select rate_limited_until from public.sync_queue_state),
           private.intakeq_window_frees(w.minute, p_per_minute, w.calls),
           private.intakeq_window_frees(w.minute * 1440, p_per_day, w.calls)) - now()) * 1000))::bigint
  from (select make_interval(secs => p_minute_ms / 1000.0) as minute,
               least(greatest(p_calls, 0), p_per_minute, p_per_day) as calls) w;
$$;

-- The calls an attempt of this job makes (src/sync/attempt.rs), at most: one per page of a search is assumed,
-- more pages are topped up. p_taking_over: as the claim will see it once it takes the lease over (a holder that
-- vanished makes the next attempt look for what it may have created).
create function private.intakeq_calls_needed(p_job_id uuid, p_taking_over boolean)
returns integer
language sql
stable
set search_path = ''
as $$
  select
    case
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
           q.needs_intake_lookup or (p_taking_over and q.locked_by is not null and a.intake_forms_status = 'pending') as intake_lookup
  ) f
  where q.id = p_job_id;
$$;

create function private.intakeq_calls_needed(p_job_id uuid)
returns integer
language sql
stable
set search_path = ''
as $$
  select private.intakeq_calls_needed(p_job_id, false);
$$;

-- The oldest due job, the one the claim takes next: pending, due, not leased (or its lease ran out), oldest
-- booking first. p_lock: lock it, skipping a job another claim holds.
create function private.oldest_due_sync_job(p_lock boolean)
returns uuid
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_id uuid;
begin
  if p_lock then
    select q.id into v_id
    from public.sync_retry_queue q
    where q.state = 'pending' and q.next_retry_at <= now() and (q.locked_until is null or q.locked_until <= now())
    order by q.created_at, q.id
    limit 1
    for update skip locked;
  else
    select q.id into v_id
    from public.sync_retry_queue q
    where q.state = 'pending' and q.next_retry_at <= now() and (q.locked_until is null or q.locked_until <= now())
    order by q.created_at, q.id
    limit 1;
  end if;
  return v_id;
end;
$$;

create function private.check_intakeq_budget(p_step text, p_calls_per_minute integer, p_calls_per_day integer, p_minute_ms integer)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_calls_per_minute is null or p_calls_per_minute not between 1 and 10000
     or p_calls_per_day is null or p_calls_per_day not between 1 and 1000000
     or p_minute_ms is null or p_minute_ms not between 100 and 3600000 then
    perform private.fail(400, 'INVALID_REQUEST', p_step,
      'the IntakeQ budget: p_calls_per_minute (1-10000), p_calls_per_day (1-1000000), p_minute_ms (100-3600000)');
  end if;
end;
$$;

-- reserve_intakeq_calls ------------------------------------------------------------------------------------------
-- Before its first IntakeQ call, the holder of a job's lease reserves the calls its attempt needs (p_calls null),
-- all or nothing; a top-up (p_calls, say 1 for one more page) adds to its reservation. Refused: the lease is not
-- (or no longer) this holder's (wait_ms null), an older job is due (wait_ms null: the cron serves it first), or
-- the calls do not fit yet (wait_ms: how long until they do).
create function public.reserve_intakeq_calls(
  p_job_id           uuid,
  p_runner           text,
  p_lease_token      uuid,
  p_calls            integer default null, -- null: all the calls an attempt of this job makes; else a top-up
  p_calls_per_minute integer default 10,
  p_calls_per_day    integer default 500,
  p_minute_ms        integer default 60000
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_job     public.sync_retry_queue%rowtype;
  v_paused  timestamptz;
  v_oldest  uuid;
  v_calls   integer;
  v_wait    bigint;
  v_refused constant jsonb := jsonb_build_object('reserved', false, 'calls', 0, 'wait_ms', null);
begin
  if p_job_id is null or p_lease_token is null or p_runner is null or char_length(p_runner) not between 1 and 100
     or (p_calls is not null and p_calls not between 0 and 1000) then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_claim',
      'p_job_id, p_runner (1-100 characters) and p_lease_token are required; p_calls is 0-1000');
  end if;
  perform private.check_intakeq_budget('sync_claim', p_calls_per_minute, p_calls_per_day, p_minute_ms);

  -- The job's row, then the queue's: the order record_sync_result takes them in.
  select * into v_job from public.sync_retry_queue where id = p_job_id for update;
  if not found or v_job.state <> 'pending' or v_job.lease_token is distinct from p_lease_token
     or v_job.locked_until is null or v_job.locked_until <= now() then
    return v_refused;
  end if;
  select paused_at into v_paused from public.sync_queue_state for update;

  v_calls := least(coalesce(p_calls, private.intakeq_calls_needed(p_job_id)), p_calls_per_minute, p_calls_per_day);
  if v_calls > 0 then
    if p_calls is null and v_paused is null then
      v_oldest := private.oldest_due_sync_job(false);
      if v_oldest is not null
         and (select (q.created_at, q.id) < (v_job.created_at, v_job.id) from public.sync_retry_queue q where q.id = v_oldest) then
        return v_refused;
      end if;
    end if;
    v_wait := private.intakeq_budget_wait_ms(v_calls, p_calls_per_minute, p_calls_per_day, p_minute_ms);
    if v_wait > 0 then
      return jsonb_build_object('reserved', false, 'calls', 0, 'wait_ms', v_wait);
    end if;
  end if;
  insert into public.intakeq_call_reservations as r (job_id, lease_token, holder, calls, held_until)
  values (p_job_id, p_lease_token, p_runner, v_calls, v_job.locked_until)
  on conflict (lease_token) do update
  set calls = least(r.calls + excluded.calls, 1000), held_until = greatest(r.held_until, excluded.held_until),
      holder = excluded.holder;
  return jsonb_build_object('reserved', true, 'calls', v_calls, 'wait_ms', null);
end;
$$;

-- intakeq_budget_wait --------------------------------------------------------------------------------------------
-- How long until the oldest due job's calls fit (what the cron may sleep before claiming it); null when no job
-- is due or the queue is paused.
create function public.intakeq_budget_wait(
  p_calls_per_minute integer default 10,
  p_calls_per_day    integer default 500,
  p_minute_ms        integer default 60000
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_next  uuid;
  v_calls integer;
begin
  perform private.check_intakeq_budget('sync_claim', p_calls_per_minute, p_calls_per_day, p_minute_ms);
  if exists (select 1 from public.sync_queue_state where paused_at is not null) then
    return jsonb_build_object('wait_ms', null);
  end if;
  v_next := private.oldest_due_sync_job(false);
  if v_next is null then
    return jsonb_build_object('wait_ms', null);
  end if;
  v_calls := least(private.intakeq_calls_needed(v_next, true), p_calls_per_minute, p_calls_per_day);
  return jsonb_build_object('wait_ms',
    case when v_calls = 0 then 0 else private.intakeq_budget_wait_ms(v_calls, p_calls_per_minute, p_calls_per_day, p_minute_ms) end);
end;
$$;

-- The job as runners get it: now with the calls reserved for its current lease (null: none).
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
    'booking',          private.booking_result(q.appointment_id))
  from public.sync_retry_queue q
  where q.id = p_job_id;
$$;

-- claim_sync_jobs ----------------------------------------------------------------------------------------------
-- As before (the end of life, the paused queue's probe, leases, tokens, the backoff at claim), but oldest booking
-- first, and with a budget only what fits it.
drop function public.claim_sync_jobs(text, integer, integer, integer, integer, integer);
create function public.claim_sync_jobs(
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
        next_retry_at = now() + make_interval(secs => p_lease_seconds) + private.sync_backoff(q.retry_count + 1, p_max_backoff_minutes)
    where q.id = v_next
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
-- As before, and the calls the attempt made and IntakeQ's 429 are kept for the budget.
drop function public.record_sync_result(uuid, text, uuid, text, text, text, text, text, integer, integer, boolean, integer, integer,
  boolean, text, text, text, text, boolean, integer);
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
  p_intake_retry_after_seconds integer default null, -- with 'released' / 'auth_failed' for the paperwork
  -- IntakeQ's call budget: the calls this attempt made (null: not said), and IntakeQ's 429 (its Retry-After)
  p_intakeq_calls_made   integer default null,
  p_rate_limited_seconds integer default null
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
     or (p_intake_outcome = 'failed' and (p_intake_error_kind is null or p_intake_error_kind not in ('transient', 'ambiguous', 'permanent')))
     or (p_intakeq_calls_made is not null and p_intakeq_calls_made not between 0 and 1000)
     or (p_rate_limited_seconds is not null and p_rate_limited_seconds not between 1 and 86400) then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_record',
      'an outcome with what it needs: synced + id, failed + kind, auth_failed + error; bounds on the knobs');
  end if;
  select * into v_job from public.sync_retry_queue where id = p_job_id for update;
  if not found then
    perform private.fail(404, 'SYNC_JOB_NOT_FOUND', 'sync_record', 'no sync job has this id');
  end if;
  select pq_appointment_id into v_recorded from public.appointments where id = v_job.appointment_id;

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
-- As before, and the budget: the calls counted in the last minute and day, and the 429's pause.
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
    'intakeq_budget', (
      select jsonb_build_object(
        'calls_last_minute', (select coalesce(sum(calls), 0) from private.intakeq_reservations_in_window(interval '1 minute')),
        'calls_last_day',    (select coalesce(sum(calls), 0) from private.intakeq_reservations_in_window(interval '1 day')),
        'rate_limited_until', case when rate_limited_until > now() then private.rfc3339(rate_limited_until) end)
      from public.sync_queue_state),
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

revoke all on function public.claim_sync_jobs, public.record_sync_result, public.reserve_intakeq_calls,
  public.intakeq_budget_wait from public, anon, authenticated;
grant execute on function public.claim_sync_jobs, public.record_sync_result, public.reserve_intakeq_calls,
  public.intakeq_budget_wait to service_role;
revoke all on function private.intakeq_reservations_in_window, private.intakeq_window_frees, private.intakeq_budget_wait_ms,
  private.intakeq_calls_needed(uuid, boolean), private.intakeq_calls_needed(uuid), private.oldest_due_sync_job,
  private.check_intakeq_budget from public, anon, authenticated;
