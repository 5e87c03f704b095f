-- The sync outbox's life cycle: leases, outcomes, backoff, dead letters, health and requeue.
begin;
select plan(26);
-- These stories are about the appointment; the intake paperwork has its own (100-intake-questionnaires).
update public.practice_settings set intakeq_questionnaire_id = null;
update public.payers set intakeq_questionnaire_id = null;
set local role service_role;

create function pg_temp.book(p_tag text, p_days integer) returns uuid
language sql as $$
  select (public.book_appointment('req-sync-' || p_tag, tests.id('rivera'), 'cash-payment', tests.slot(p_days),
          'telehealth', p_patient => tests.new_patient('sync-' || p_tag))->>'appointment_id')::uuid;
$$;
create function pg_temp.job(p_appointment uuid) returns public.sync_retry_queue
language sql as $$ select * from public.sync_retry_queue where appointment_id = p_appointment $$;
create function pg_temp.token(p_appointment uuid) returns uuid
language sql as $$ select lease_token from public.sync_retry_queue where appointment_id = p_appointment $$;
create function pg_temp.appointment(p_appointment uuid) returns text
language sql as $$ select status || '/' || sync_status || '/' || coalesce(pq_appointment_id, '-')
                   from public.appointments where id = p_appointment $$;

create temp table a as select pg_temp.book('a', 20) as id;

-- Leases ----------------------------------------------------------------------------------------------------------
select is(public.claim_sync_jobs('cron-1', 10, 60), '[]', 'a job leased to its booking request is not claimed');
reset role;
update public.sync_retry_queue set locked_until = now() - interval '1 second', next_retry_at = now() - interval '1 second'
  where appointment_id = (select id from a);  -- the request's lease ran out (time passes by moving it back)
set local role service_role;
create temp table claimed as select public.claim_sync_jobs('cron-1', 10, 60) as jobs;
select is(jsonb_array_length((select jobs from claimed)), 1, 'once the request''s lease ran out, the cron claims it');
select is((select jobs->0->>'needs_reconcile' from claimed), 'true',
  'the request never reported, so its attempt may have reached IntakeQ: reconcile first');
select is((select jobs->0->'booking'->'intakeq'->>'practitioner_id' from claimed), '5f1a00000000000000000001',
  'the claimed job carries what the sync needs');
select is(public.claim_sync_jobs('cron-2', 10, 60), '[]', 'another run does not take a claimed job');
select is((pg_temp.job((select id from a))).locked_by, 'cron-1', 'the lease names its runner');

-- Outcomes --------------------------------------------------------------------------------------------------------
select public.record_sync_result((pg_temp.job((select id from a))).id, 'cron-1', pg_temp.token((select id from a)), 'failed',
  p_error => 'IntakeQ answered 500', p_error_kind => 'transient', p_intakeq_client_id => '1001');
select results_eq(
  $$select retry_count, locked_by, last_error_kind, next_retry_at between now() + interval '95 seconds' and now() + interval '145 seconds'
    from public.sync_retry_queue where appointment_id = (select id from a)$$,
  $$values (2, null::text, 'transient', true)$$,
  'a transient failure keeps the attempts counted at claim (the request''s and the cron''s), frees the job and retries in about two minutes');
select is(pg_temp.appointment((select id from a)), 'pending_sync/pending/-', 'the appointment still says it is not in IntakeQ');
select is((select intakeq_client_id from public.patients p join public.appointments x on x.patient_id = p.id where x.id = (select id from a)),
  '1001', 'the IntakeQ client id is kept even when the attempt failed later');

reset role;
update public.sync_retry_queue set next_retry_at = now() where appointment_id = (select id from a);
set local role service_role;
select is(jsonb_array_length(public.claim_sync_jobs('cron-3', 10, 60)), 1, 'a due retry is claimed again');
select public.record_sync_result((pg_temp.job((select id from a))).id, 'cron-3', pg_temp.token((select id from a)), 'failed',
  p_error => '429', p_error_kind => 'transient', p_retry_after_seconds => 900);
select ok((pg_temp.job((select id from a))).next_retry_at >= now() + interval '900 seconds', 'Retry-After is honoured');

reset role;
update public.sync_retry_queue set next_retry_at = now() where appointment_id = (select id from a);
set local role service_role;
select public.claim_sync_jobs('cron-4', 10, 60);
select public.record_sync_result((pg_temp.job((select id from a))).id, 'cron-4', pg_temp.token((select id from a)), 'failed',
  p_error => 'timed out', p_error_kind => 'ambiguous');
select is((pg_temp.job((select id from a))).needs_reconcile, true, 'an ambiguous failure asks the next attempt to reconcile');

select is(public.record_sync_result((pg_temp.job((select id from a))).id, 'someone-else', gen_random_uuid(), 'failed',
  p_error => 'stale', p_error_kind => 'permanent')->>'attempt', '4', 'a failure from a runner without the lease changes nothing');

reset role;
update public.sync_retry_queue set next_retry_at = now() where appointment_id = (select id from a);
set local role service_role;
select public.claim_sync_jobs('cron-5', 10, 60);
select public.record_sync_result((pg_temp.job((select id from a))).id, 'cron-5', pg_temp.token((select id from a)), 'synced',
  p_pq_appointment_id => '65a1b2c3d4e5f60718293a4b');
select is(pg_temp.appointment((select id from a)), 'scheduled/synced/65a1b2c3d4e5f60718293a4b', 'synced: scheduled, with its IntakeQ id');
select results_eq($$select state, needs_reconcile, locked_by from public.sync_retry_queue where appointment_id = (select id from a)$$,
  $$values ('done', false, null::text)$$, 'and the job is done');

-- Released untried ------------------------------------------------------------------------------------------------
create temp table b as select pg_temp.book('b', 21) as id;
select public.record_sync_result((pg_temp.job((select id from b))).id, 'req-sync-b', pg_temp.token((select id from b)), 'released', p_retry_after_seconds => 30);
select results_eq($$select retry_count, locked_by, next_retry_at >= now() + interval '30 seconds' from public.sync_retry_queue where appointment_id = (select id from b)$$,
  $$values (0, null::text, true)$$, 'a job released untried gives back the attempt its lease counted');

-- Dead letters ----------------------------------------------------------------------------------------------------
select public.record_sync_result((pg_temp.job((select id from b))).id, 'req-sync-b', gen_random_uuid(), 'failed',
  p_error => 'Invalid ServiceId.', p_error_kind => 'permanent');
select is((pg_temp.job((select id from b))).state, 'pending', 'a runner without the lease cannot dead-letter it');
reset role;
update public.sync_retry_queue set next_retry_at = now() where appointment_id = (select id from b);
set local role service_role;
select public.claim_sync_jobs('cron-6', 10, 60);
select public.record_sync_result((pg_temp.job((select id from b))).id, 'cron-6', pg_temp.token((select id from b)), 'failed',
  p_error => 'Invalid ServiceId.', p_error_kind => 'permanent');
select results_eq($$select state, retry_count, error_message from public.sync_retry_queue where appointment_id = (select id from b)$$,
  $$values ('dead', 1, 'Invalid ServiceId.')$$, 'a permanent rejection is dead after one attempt');
select is(pg_temp.appointment((select id from b)), 'pending_sync/failed/-', 'and the appointment says the sync failed');

create temp table c as select pg_temp.book('c', 22) as id;
select public.record_sync_result((pg_temp.job((select id from c))).id, 'req-sync-c', pg_temp.token((select id from c)), 'failed',
  p_error => 'IntakeQ answered 503', p_error_kind => 'transient', p_max_attempts => 1);
select is((pg_temp.job((select id from c))).state, 'dead', 'the last attempt dead-letters a transient failure too');

-- Health ----------------------------------------------------------------------------------------------------------
create temp table health as select public.sync_health() as h;
select ok((select (h->'appointments_by_sync_status'->>'failed')::int >= 2 from health), 'sync_health counts failed syncs');
select ok((select jsonb_path_exists(h, '$.dead_jobs[*] ? (@.error == "Invalid ServiceId.")') from health),
  'and lists each dead job with its error');
select ok((select h ? 'oldest_pending_seconds' and h->'last_24h' ? 'first_try_share' from health), 'with the oldest pending age and first-try share');

-- Requeue ---------------------------------------------------------------------------------------------------------
select is(tests.booking_error(format($$select public.requeue_sync_job(%L, 'staff')$$, (select id from a))),
  'PT409 SYNC_JOB_NOT_DEAD sync_requeue', 'only a dead job can be requeued');
select public.requeue_sync_job((select id from b), 'staff@example.com');
select results_eq($$select state, retry_count, next_retry_at <= now() from public.sync_retry_queue where appointment_id = (select id from b)$$,
  $$values ('pending', 0, true)$$, 'a requeued job is pending with a fresh budget, due now');
select is(pg_temp.appointment((select id from b)), 'pending_sync/pending/-', 'and its appointment is pending again');

select * from finish();
rollback;
