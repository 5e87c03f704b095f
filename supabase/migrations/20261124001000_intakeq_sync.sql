-- =============================================================================================================
-- The IntakeQ sync's database half. A booking's job (sync_retry_queue) is worked by one runner at a time under
-- a lease: first the booking request itself (book_appointment leases it to the request), then the cron.
--
--   claim_sync_jobs      the cron takes due jobs (FOR UPDATE SKIP LOCKED: overlapping runs never share one)
--   record_sync_result   an attempt's outcome: synced, or failed (transient, ambiguous, permanent), or released
--                        untried; backoff with jitter; the last attempt or a permanent rejection dead-letters
--   sync_health          what staff watch: counts, dead jobs, the oldest pending job, first-try success
--   requeue_sync_job     staff put a dead job back after fixing its cause
--
-- IntakeQ has no idempotency key, so a job remembers whether an earlier attempt may have created the
-- appointment (needs_reconcile): its runner vanished without reporting, or the create call ended ambiguously
-- (timeout, connection error, 5xx, a non-JSON answer). Such a job looks the appointment up before posting.
-- =============================================================================================================

alter table public.sync_retry_queue
  add column needs_reconcile boolean not null default false,
  add column last_error_kind text check (last_error_kind in ('transient', 'ambiguous', 'permanent'));

comment on column public.sync_retry_queue.retry_count is 'Attempts finished (reported), successful or not.';

-- Everything a runner needs to sync a job, without another query.
create function private.sync_job(p_job_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'job_id',          q.id,
    'attempt',         q.retry_count + 1,
    'max_attempts',    q.max_retries,
    'needs_reconcile', q.needs_reconcile,
    'booking',         private.booking_result(q.appointment_id))
  from public.sync_retry_queue q
  where q.id = p_job_id;
$$;

create function public.claim_sync_jobs(p_runner text, p_limit integer, p_lease_seconds integer)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_claimed uuid[];
begin
  if p_runner is null or char_length(p_runner) not between 1 and 100
     or p_limit is null or p_limit not between 1 and 100
     or p_lease_seconds is null or p_lease_seconds not between 1 and 3600 then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_claim', 'p_runner, p_limit (1-100) and p_lease_seconds (1-3600) are required');
  end if;
  with due as (
    select q.id
    from public.sync_retry_queue q
    where q.state = 'pending'
      and q.next_retry_at <= now()
      and (q.locked_until is null or q.locked_until <= now())
    order by q.next_retry_at
    limit p_limit
    for update skip locked
  ), claimed as (
    update public.sync_retry_queue q
    set -- a holder that let its lease run out never reported: its attempt may have reached IntakeQ
        needs_reconcile = q.needs_reconcile or q.locked_by is not null,
        locked_by = p_runner,
        locked_until = now() + make_interval(secs => p_lease_seconds),
        last_attempt_at = now()
    from due
    where q.id = due.id
    returning q.id
  )
  select coalesce(array_agg(id), '{}') into v_claimed from claimed;
  -- A separate statement, so that it reads the jobs as claimed.
  return (select coalesce(jsonb_agg(private.sync_job(id)), '[]') from unnest(v_claimed) as id);
end;
$$;

create function public.record_sync_result(
  p_job_id              uuid,
  p_runner              text,
  p_outcome             text,              -- 'synced' | 'failed' | 'released'
  p_pq_appointment_id   text    default null,
  p_intakeq_client_id   text    default null,
  p_error               text    default null,
  p_error_kind          text    default null, -- 'transient' | 'ambiguous' | 'permanent', with 'failed'
  p_retry_after_seconds integer default null,
  p_max_attempts        integer default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_job      public.sync_retry_queue%rowtype;
  v_attempts integer;
  v_max      integer;
  v_backoff  interval;
begin
  if p_outcome is null or p_outcome not in ('synced', 'failed', 'released')
     or (p_outcome = 'synced' and p_pq_appointment_id is null)
     or (p_outcome = 'failed' and (p_error_kind is null or p_error_kind not in ('transient', 'ambiguous', 'permanent'))) then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_record', 'an outcome with what it needs: synced + id, failed + kind');
  end if;
  select * into v_job from public.sync_retry_queue where id = p_job_id for update;
  if not found then
    perform private.fail(404, 'SYNC_JOB_NOT_FOUND', 'sync_record', 'no sync job has this id');
  end if;

  -- IntakeQ's client id is worth keeping whatever happened next: the next attempt will not create another.
  if p_intakeq_client_id is not null then
    update public.patients p set intakeq_client_id = p_intakeq_client_id
    from public.appointments a
    where a.id = v_job.appointment_id and p.id = a.patient_id and p.intakeq_client_id is null;
  end if;

  if p_outcome = 'synced' then
    -- The truth from IntakeQ wins even from a runner whose lease ran out: the appointment exists there.
    update public.appointments
    set status = case when status = 'cancelled' then status else 'scheduled' end,
        sync_status = 'synced', pq_appointment_id = p_pq_appointment_id
    where id = v_job.appointment_id;
    update public.sync_retry_queue
    set state = 'done', completed_at = now(), retry_count = retry_count + 1, needs_reconcile = false,
        error_message = null, last_error_kind = null, locked_by = null, locked_until = null
    where id = p_job_id;
    return private.sync_job(p_job_id);
  end if;

  if v_job.locked_by is distinct from p_runner or v_job.state <> 'pending' then
    -- Someone else holds the job now (or it is finished): this runner's failure is no longer news.
    return private.sync_job(p_job_id);
  end if;

  if p_outcome = 'released' then
    update public.sync_retry_queue
    set locked_by = null, locked_until = null,
        next_retry_at = greatest(next_retry_at, now() + make_interval(secs => coalesce(p_retry_after_seconds, 0)))
    where id = p_job_id;
    return private.sync_job(p_job_id);
  end if;

  v_attempts := v_job.retry_count + 1;
  v_max := coalesce(p_max_attempts, v_job.max_retries);
  if p_error_kind = 'permanent' or v_attempts >= v_max then
    update public.sync_retry_queue
    set state = 'dead', retry_count = v_attempts, error_message = left(p_error, 2000), last_error_kind = p_error_kind,
        needs_reconcile = needs_reconcile or p_error_kind = 'ambiguous',
        locked_by = null, locked_until = null, completed_at = now()
    where id = p_job_id;
    update public.appointments set sync_status = 'failed' where id = v_job.appointment_id and sync_status = 'pending';
  else
    -- 1, 2, 4, 8 ... minutes (at most an hour), +-20% jitter, never sooner than IntakeQ's Retry-After.
    v_backoff := make_interval(secs => least(3600, 60 * power(2, v_attempts - 1)) * (0.8 + random() * 0.4));
    update public.sync_retry_queue
    set retry_count = v_attempts, error_message = left(p_error, 2000), last_error_kind = p_error_kind,
        needs_reconcile = p_error_kind = 'ambiguous',
        next_retry_at = now() + greatest(v_backoff, make_interval(secs => coalesce(p_retry_after_seconds, 0))),
        locked_by = null, locked_until = null
    where id = p_job_id;
  end if;
  return private.sync_job(p_job_id);
end;
$$;

create function public.sync_health()
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
    'dead_jobs', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'job_id', q.id, 'appointment_id', q.appointment_id, 'request_id', q.request_id,
               'attempts', q.retry_count, 'error', q.error_message, 'error_kind', q.last_error_kind,
               'dead_since', private.rfc3339(q.completed_at)) order by q.completed_at desc), '[]')
      from public.sync_retry_queue q where q.state = 'dead'),
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

create function public.requeue_sync_job(p_appointment_id uuid, p_requested_by text)
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
  -- A fresh budget of attempts, due now; whether IntakeQ may already have it is kept.
  update public.sync_retry_queue
  set state = 'pending', retry_count = 0, next_retry_at = now(), completed_at = null,
      error_message = 'requeued by ' || p_requested_by || ' after: ' || coalesce(error_message, 'no error recorded')
  where id = v_job.id;
  update public.appointments set sync_status = 'pending' where id = p_appointment_id and sync_status = 'failed';
  return private.sync_job(v_job.id);
end;
$$;

revoke all on function public.claim_sync_jobs, public.record_sync_result, public.sync_health, public.requeue_sync_job
  from public, anon, authenticated;
grant execute on function public.claim_sync_jobs, public.record_sync_result, public.sync_health, public.requeue_sync_job
  to service_role;
