-- =============================================================================================================
-- The IntakeQ sync outbox. book_appointment writes one job per new appointment in the booking's own
-- transaction, so a booking can never exist without the job that will put it into IntakeQ.
--
-- A job is `pending` until it is `done` (IntakeQ has the appointment) or `dead` (given up: a permanent
-- rejection or the last attempt failed; staff can requeue it). A runner takes a job by leasing it: locked_by
-- names the holder (the booking request that made it, or a cron run) and locked_until is when the lease runs
-- out, after which any runner may take it again, so a crashed holder loses nothing.
-- =============================================================================================================

create table public.sync_retry_queue (
  id             uuid primary key default gen_random_uuid(),
  appointment_id uuid not null unique references public.appointments (id) on delete cascade,
  request_id     public.request_id not null,                        -- the booking request that enqueued it
  state          text not null default 'pending' check (state in ('pending', 'done', 'dead')),
  retry_count    integer not null default 0 check (retry_count >= 0),   -- attempts made so far
  max_retries    integer not null default 5 check (max_retries between 1 and 100),
  next_retry_at  timestamptz not null default now(),
  locked_by      text check (char_length(locked_by) between 1 and 100),
  locked_until   timestamptz,
  error_message  text check (char_length(error_message) <= 2000),
  last_attempt_at timestamptz,
  completed_at   timestamptz,
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  constraint sync_retry_queue_lease_whole check ((locked_by is null) = (locked_until is null))
);
-- What a runner asks: which pending jobs are due?
create index sync_retry_queue_due on public.sync_retry_queue (next_retry_at) where state = 'pending';

select private.close_to_browser_roles('public.sync_retry_queue');

create trigger sync_retry_queue_updated_at before update on public.sync_retry_queue
  for each row execute function private.set_updated_at();
