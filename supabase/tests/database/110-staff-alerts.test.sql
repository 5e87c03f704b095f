-- Staff alerts: written with the event that causes them, once per event, without patient data; delivered with retries.
begin;
select plan(9);
update public.practice_settings set intakeq_questionnaire_id = null;
set local role service_role;

create temp table a as select (public.book_appointment('req-alert-a', tests.id('rivera'), 'cash-payment', tests.slot(60),
  'telehealth', p_patient => tests.new_patient('alert-a'))->>'appointment_id')::uuid as id;
create function pg_temp.job() returns public.sync_retry_queue
language sql as $$ select * from public.sync_retry_queue where appointment_id = (select id from a) $$;

select public.record_sync_result((pg_temp.job()).id, 'req-alert-a', (pg_temp.job()).lease_token, 'failed',
  p_error => 'POST /appointments: rejected (400): Invalid ServiceId.', p_error_kind => 'permanent');
select results_eq($$select kind, appointment_id from public.staff_alerts$$, $$values ('sync_dead', (select id from a))$$,
  'a dead job raises one alert, in the same transaction');
select ok((select text like '%Invalid ServiceId.%' and text like '%Ana Rivera, MD%' and text not like '%alert-a%' from public.staff_alerts),
  'with the provider, the time and the reason, and nothing about the patient');

select public.requeue_sync_job((select id from a), 'staff');
select public.record_sync_result((pg_temp.job()).id, 'req-alert-a', (pg_temp.job()).lease_token, 'failed',
  p_error => 'still refused', p_error_kind => 'permanent');
select is((select count(*)::int from public.staff_alerts where kind = 'sync_dead'), 1, 'a job without a lease cannot die again unseen');

reset role;
update public.sync_queue_state set paused_reason = 'rejected (401)', paused_at = now(), next_probe_at = now();
update public.sync_queue_state set next_probe_at = now() + interval '1 minute';
update public.sync_queue_state set paused_reason = null, paused_at = null, next_probe_at = null;
set local role service_role;
select results_eq($$select kind from public.staff_alerts where kind like 'queue%' order by kind$$,
  $$values ('queue_paused'), ('queue_resumed')$$, 'a pause and a resume are one alert each');

select public.record_sync_result((pg_temp.job()).id, 'someone-stale', gen_random_uuid(), 'synced', p_pq_appointment_id => '6c0000000000000000000001');
select is((select count(*)::int from public.staff_alerts where kind = 'possible_duplicate'), 1, 'a possible duplicate is one alert');

-- Delivery ----------------------------------------------------------------------------------------------------
create temp table claimed as select public.claim_staff_alerts('cron-1', 10, 60) as alerts;
select is(jsonb_array_length((select alerts from claimed)), 4, 'the cron claims what is due');
select is(public.claim_staff_alerts('cron-2', 10, 60), '[]', 'another run does not take them');
select public.record_staff_alert((alert->>'id')::uuid, true) from claimed, jsonb_array_elements(alerts) alert where alert->>'kind' <> 'sync_dead';
select public.record_staff_alert((alert->>'id')::uuid, false, 'the webhook answered 500') from claimed, jsonb_array_elements(alerts) alert where alert->>'kind' = 'sync_dead';
select results_eq($$select sent_at is null, last_error, next_attempt_at > now() from public.staff_alerts where kind = 'sync_dead'$$,
  $$values (true, 'the webhook answered 500', true)$$, 'a failed delivery waits and is tried again');
select is((select count(*)::int from public.staff_alerts where sent_at is not null), 3, 'the others are sent, never again');

select * from finish();
rollback;
