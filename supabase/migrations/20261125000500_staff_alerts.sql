-- =============================================================================================================
-- Staff alerts: what must reach a person without anyone polling sync-health. An alert is written in the very
-- transaction that caused it (by triggers on the tables that record the events), so it is never lost, and at most
-- once per event (its event key is unique). The cron delivers them to the practice's chat webhook, retrying with
-- backoff until it answers.
--
--   sync_dead            a sync job died (its reason)
--   queue_paused         IntakeQ refuses our key: nothing syncs until it is fixed
--   queue_resumed        the key works again
--   possible_duplicate   IntakeQ may hold a second appointment for one booking
--
-- An alert carries the appointment id, the provider, the time and the reason: never the patient's name, email,
-- phone or date of birth.
-- =============================================================================================================

create table public.staff_alerts (
  id              uuid primary key default gen_random_uuid(),
  event_key       text not null unique check (char_length(event_key) between 1 and 200),
  kind            text not null check (kind in ('sync_dead', 'queue_paused', 'queue_resumed', 'possible_duplicate')),
  text            text not null check (char_length(text) between 1 and 3000),
  appointment_id  uuid references public.appointments (id) on delete set null,
  attempts        integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  locked_until    timestamptz,
  last_error      text check (char_length(last_error) <= 500),
  sent_at         timestamptz,
  created_at      timestamptz not null default now()
);
create index staff_alerts_due on public.staff_alerts (next_attempt_at) where sent_at is null;
select private.close_to_browser_roles('public.staff_alerts');

-- "<provider> at <start>" for an appointment: what staff need to find it, nothing about the patient.
create function private.alert_appointment(p_appointment_id uuid)
returns text
language sql
stable
set search_path = ''
as $$
  select format('appointment %s (%s, %s UTC)', a.id, concat_ws(', ', pr.first_name || ' ' || pr.last_name, pr.title),
                to_char(a.start_time at time zone 'UTC', 'YYYY-MM-DD HH24:MI'))
  from public.appointments a join public.providers pr on pr.id = a.provider_id
  where a.id = p_appointment_id;
$$;

create function private.raise_staff_alert(p_kind text, p_event_key text, p_appointment_id uuid, p_text text)
returns void
language sql
set search_path = ''
as $$
  insert into public.staff_alerts (kind, event_key, appointment_id, text)
  values (p_kind, p_event_key, p_appointment_id, left(p_text, 3000))
  on conflict (event_key) do nothing;
$$;

create function private.alert_on_dead_job()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform private.raise_staff_alert('sync_dead', format('sync_dead:%s:%s', new.id, new.completed_at), new.appointment_id,
    format('IntakeQ sync gave up on %s: %s. Fix the cause, then requeue it (docs/operations.md, "A dead sync job").',
           private.alert_appointment(new.appointment_id), coalesce(new.error_message, 'no reason recorded')));
  return new;
end;
$$;
create trigger sync_retry_queue_alert_dead after update of state on public.sync_retry_queue
  for each row when (new.state = 'dead' and old.state is distinct from 'dead')
  execute function private.alert_on_dead_job();

create function private.alert_on_queue_state()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.paused_at is null and new.paused_at is not null then
    perform private.raise_staff_alert('queue_paused', format('queue_paused:%s', new.paused_at), null,
      format('IntakeQ sync is paused: IntakeQ refuses the API key (%s). No booking reaches IntakeQ until the key is fixed; bookings are kept and will sync once it works.',
             new.paused_reason));
  elsif old.paused_at is not null and new.paused_at is null then
    perform private.raise_staff_alert('queue_resumed', format('queue_resumed:%s', old.paused_at), null,
      'IntakeQ sync has resumed: IntakeQ accepts the API key again.');
  end if;
  return new;
end;
$$;
create trigger sync_queue_state_alert after update on public.sync_queue_state
  for each row execute function private.alert_on_queue_state();

create function private.alert_on_possible_duplicate()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform private.raise_staff_alert('possible_duplicate', format('possible_duplicate:%s:%s', new.appointment_id, new.other_pq_appointment_id),
    new.appointment_id,
    format('IntakeQ may hold a second appointment for %s: IntakeQ appointment %s (ours: %s). %s. Check both in IntakeQ and cancel the extra one.',
           private.alert_appointment(new.appointment_id), new.other_pq_appointment_id,
           coalesce(new.recorded_pq_appointment_id, 'none recorded yet'), new.reason));
  return new;
end;
$$;
create trigger sync_possible_duplicates_alert after insert on public.sync_possible_duplicates
  for each row execute function private.alert_on_possible_duplicate();

-- Delivery ------------------------------------------------------------------------------------------------------
-- Leases up to p_limit undelivered alerts that are due, oldest first (FOR UPDATE SKIP LOCKED).
create function public.claim_staff_alerts(p_runner text, p_limit integer, p_lease_seconds integer)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_claimed jsonb;
begin
  if p_runner is null or p_limit is null or p_limit not between 1 and 100
     or p_lease_seconds is null or p_lease_seconds not between 1 and 3600 then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_claim', 'p_runner, p_limit (1-100) and p_lease_seconds (1-3600) are required');
  end if;
  with due as (
    select id from public.staff_alerts
    where sent_at is null and next_attempt_at <= now() and (locked_until is null or locked_until <= now())
    order by created_at
    limit p_limit
    for update skip locked
  ), claimed as (
    update public.staff_alerts s
    set locked_until = now() + make_interval(secs => p_lease_seconds), attempts = s.attempts + 1
    from due where s.id = due.id
    returning s.id, s.kind, s.text, s.appointment_id, s.created_at
  )
  select coalesce(jsonb_agg(jsonb_build_object('id', id, 'kind', kind, 'text', text, 'appointment_id', appointment_id)
                            order by created_at), '[]')
  into v_claimed from claimed;
  return v_claimed;
end;
$$;

-- Records a delivery: sent, or failed (due again after 1, 2, 4 ... minutes, at most an hour).
create function public.record_staff_alert(p_alert_id uuid, p_delivered boolean, p_error text default null)
returns void
language sql
volatile
security definer
set search_path = ''
as $$
  update public.staff_alerts
  set sent_at = case when p_delivered then now() end,
      last_error = case when p_delivered then null else left(p_error, 500) end,
      next_attempt_at = case when p_delivered then next_attempt_at
                             else now() + make_interval(secs => least(3600, 60 * power(2, least(attempts, 12) - 1))) end,
      locked_until = null
  where id = p_alert_id and sent_at is null;
$$;

revoke all on function public.claim_staff_alerts, public.record_staff_alert from public, anon, authenticated;
grant execute on function public.claim_staff_alerts, public.record_staff_alert to service_role;
revoke all on function private.alert_appointment, private.raise_staff_alert, private.alert_on_dead_job,
  private.alert_on_queue_state, private.alert_on_possible_duplicate from public, anon, authenticated;
