-- =============================================================================================================
-- IntakeQ's appointment webhooks, received (issue 13, the first part): what staff do in IntakeQ (cancel, move,
-- book by phone) must come back to us. IntakeQ signs nothing, so a webhook is only a nudge: the worker keeps
-- which appointment changed, acknowledges at once, and (next) re-reads that appointment from IntakeQ before acting.
--
--   inbound outbox   one row per IntakeQ appointment waiting to be re-read: a webhook for an appointment already
--                    waiting adds to that row (times_received, the last event type) instead of a second one.
--                    Once it has been re-read (processed_at), the next webhook opens a new row.
--   no patient data  only IntakeQ's appointment id, the event type and who acted are kept; the payload's client
--                    name and email are not (the re-read gets what is needed).
-- =============================================================================================================

create table public.intakeq_inbound_events (
  id                  uuid primary key default gen_random_uuid(),
  pq_appointment_id   text not null check (char_length(pq_appointment_id) between 1 and 64),
  last_event_type     text not null check (char_length(last_event_type) between 1 and 64),
  by_client           boolean not null default false,
  times_received      integer not null default 1 check (times_received >= 1),
  first_received_at   timestamptz not null default now(),
  last_received_at    timestamptz not null default now(),
  request_id          public.request_id,
  processed_at        timestamptz
);
-- One waiting row per IntakeQ appointment: the deduplication.
create unique index intakeq_inbound_events_waiting on public.intakeq_inbound_events (pq_appointment_id)
  where processed_at is null;
create index intakeq_inbound_events_first_received on public.intakeq_inbound_events (first_received_at)
  where processed_at is null;
select private.close_to_browser_roles('public.intakeq_inbound_events');

comment on table public.intakeq_inbound_events is
  'IntakeQ appointment webhooks received: which appointment to re-read from IntakeQ (one waiting row per appointment).';

-- Keeps a webhook's nudge: answers {"event_id", "duplicate"} (duplicate: the appointment was already waiting to be
-- re-read, and this webhook was folded into that row).
create function public.note_intakeq_webhook(
  p_pq_appointment_id text,
  p_event_type        text,
  p_by_client         boolean default false,
  p_request_id        text    default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_event_id uuid;
  v_inserted boolean;
begin
  if p_pq_appointment_id is null or char_length(p_pq_appointment_id) not between 1 and 64
     or p_event_type is null or char_length(p_event_type) not between 1 and 64 then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation',
      'p_pq_appointment_id and p_event_type are required, 1-64 characters each');
  end if;
  if p_request_id is not null then
    perform private.require_request_id(p_request_id);
  end if;
  insert into public.intakeq_inbound_events (pq_appointment_id, last_event_type, by_client, request_id)
  values (p_pq_appointment_id, p_event_type, coalesce(p_by_client, false), p_request_id)
  on conflict (pq_appointment_id) where processed_at is null do update
    set times_received = intakeq_inbound_events.times_received + 1,
        last_event_type = excluded.last_event_type,
        by_client = excluded.by_client,
        last_received_at = now()
  returning id, (xmax = 0) into v_event_id, v_inserted;   -- xmax 0: a new row, not the waiting one updated
  return jsonb_build_object('event_id', v_event_id, 'duplicate', not v_inserted);
end;
$$;

revoke all on function public.note_intakeq_webhook(text, text, boolean, text) from public, anon, authenticated;
grant execute on function public.note_intakeq_webhook(text, text, boolean, text) to service_role;
