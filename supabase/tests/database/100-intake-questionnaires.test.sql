-- The intake paperwork: which questionnaire a booking gets, and how its send is recorded with the appointment's.
begin;
select plan(17);
set local role service_role;

create function pg_temp.book(p_tag text, p_days integer, p_payer text) returns uuid
language sql as $$
  select (public.book_appointment('req-intake-' || p_tag, tests.id('rivera'), p_payer, tests.slot(p_days),
          'telehealth', p_patient => tests.new_patient('intake-' || p_tag))->>'appointment_id')::uuid;
$$;
create function pg_temp.forms(p_appointment uuid) returns text
language sql as $$ select intake_forms_status || '/' || coalesce(intakeq_questionnaire_id, '-') || '/' || coalesce(intakeq_intake_id, '-')
                   from public.appointments where id = p_appointment $$;
create function pg_temp.job(p_appointment uuid) returns public.sync_retry_queue
language sql as $$ select * from public.sync_retry_queue where appointment_id = p_appointment $$;
create function pg_temp.synced(p_appointment uuid, p_pq text, p_intake text, p_intake_id text default null,
                               p_kind text default null, p_lookup boolean default false) returns jsonb
language sql as $$
  select public.record_sync_result((pg_temp.job(p_appointment)).id, 'req-intake', (pg_temp.job(p_appointment)).lease_token,
    'synced', p_pq_appointment_id => p_pq, p_intake_outcome => p_intake, p_intakeq_intake_id => p_intake_id,
    p_intake_error => 'POST /intakes/send: ' || coalesce(p_kind, 'ok'), p_intake_error_kind => p_kind,
    p_intake_lookup_completed => p_lookup, p_intakeq_answered => true);
$$;
-- Hands the job back to a runner as the claim would (time passes, its lease is new).
create function pg_temp.reclaim(p_appointment uuid) returns void
language sql security definer as $$
  update public.sync_retry_queue set locked_by = 'req-intake', lease_token = gen_random_uuid(),
    locked_until = now() + interval '1 minute' where appointment_id = p_appointment;
$$;

-- Which questionnaire -------------------------------------------------------------------------------------------
create temp table commercial as select pg_temp.book('beehive', 50, tests.id('beehive')::text) as id;
create temp table medicaid as select pg_temp.book('medicaid', 51, 'b2000000-0000-4000-8000-000000000002') as id;
create temp table cash as select pg_temp.book('cash', 52, 'cash-payment') as id;
select is(pg_temp.forms((select id from commercial)), 'pending/61a000000000000000000001/-', 'a commercial payer without its own gets the practice''s');
select is(pg_temp.forms((select id from medicaid)), 'pending/61a000000000000000000002/-', 'the Medicaid payer gets its own');
select is(pg_temp.forms((select id from cash)), 'pending/61a000000000000000000001/-', 'self pay gets the practice''s');
select is(public.book_appointment('req-intake-answer', tests.id('rivera'), 'cash-payment', tests.slot(53), 'telehealth',
            p_patient => tests.new_patient('intake-answer'))->'intake_forms'->>'status', 'pending', 'the booking''s answer says so');
reset role;
update public.practice_settings set intakeq_questionnaire_id = null;
set local role service_role;
create temp table none_configured as select pg_temp.book('none', 54, 'cash-payment') as id;
select is(pg_temp.forms((select id from none_configured)), 'not_required/-/-', 'none configured: not required');

-- Recording the send --------------------------------------------------------------------------------------------
select pg_temp.synced((select id from none_configured), '6b0000000000000000000001', null);
select is((pg_temp.job((select id from none_configured))).state, 'done', 'without paperwork, the synced appointment finishes the job');
select pg_temp.synced((select id from commercial), '6b0000000000000000000002', 'sent', 'a1b2c3d4-0000-4000-8000-000000000001');
select results_eq($$select pg_temp.forms((select id from commercial)), (pg_temp.job((select id from commercial))).state$$,
  $$values ('sent/61a000000000000000000001/a1b2c3d4-0000-4000-8000-000000000001', 'done')$$, 'appointment and paperwork: done');

select pg_temp.synced((select id from medicaid), '6b0000000000000000000003', 'failed', p_kind => 'ambiguous');
select results_eq(
  $$select a.sync_status, a.intake_forms_status, q.state, q.needs_intake_lookup from public.appointments a
    join public.sync_retry_queue q on q.appointment_id = a.id where a.id = (select id from medicaid)$$,
  $$values ('synced', 'pending', 'pending', true)$$,
  'an ambiguous send: the appointment is synced, the job goes on and looks before sending again');
select pg_temp.reclaim((select id from medicaid));
select pg_temp.synced((select id from medicaid), '6b0000000000000000000003', 'failed', p_kind => 'transient');
select is((pg_temp.job((select id from medicaid))).needs_intake_lookup, true, 'a transient failure before the lookup completed keeps it');
select pg_temp.reclaim((select id from medicaid));
select pg_temp.synced((select id from medicaid), '6b0000000000000000000003', 'sent', 'a1b2c3d4-0000-4000-8000-000000000002', p_lookup => true);
select results_eq($$select pg_temp.forms((select id from medicaid)), (pg_temp.job((select id from medicaid))).state$$,
  $$values ('sent/61a000000000000000000002/a1b2c3d4-0000-4000-8000-000000000002', 'done')$$, 'then adopted or sent: done');

select pg_temp.synced((select id from cash), '6b0000000000000000000004', 'failed', p_kind => 'permanent');
select results_eq(
  $$select a.status, a.intake_forms_status, q.state, q.error_message from public.appointments a
    join public.sync_retry_queue q on q.appointment_id = a.id where a.id = (select id from cash)$$,
  $$values ('scheduled', 'failed', 'dead', 'intake questionnaire: POST /intakes/send: permanent')$$,
  'a refused send: the appointment stands, the paperwork failed, the job is dead for staff');
select public.requeue_sync_job((select id from cash), 'staff');
select results_eq($$select intake_forms_status, (pg_temp.job(id)).state from public.appointments where id = (select id from cash)$$,
  $$values ('pending', 'pending')$$, 'a requeue sends the paperwork again');

-- What a lost lease, a refused id, a cancellation and an untried send do ----------------------------------------
reset role;
update public.practice_settings set intakeq_questionnaire_id = '61a000000000000000000001';
set local role service_role;
create temp table took_over as select pg_temp.book('takeover', 55, 'cash-payment') as id;
create temp table stale_token as select (pg_temp.job((select id from took_over))).lease_token as token;
select pg_temp.synced((select id from took_over), '6b0000000000000000000005', 'failed', p_kind => 'transient');
select pg_temp.reclaim((select id from took_over));
reset role;
-- the runner's lease runs out while it may be sending; another runner takes the job over
update public.sync_retry_queue set locked_by = 'cron-other', lease_token = gen_random_uuid() where appointment_id = (select id from took_over);
set local role service_role;
select is((pg_temp.job((select id from took_over))).needs_intake_lookup, true, 'a runner taking over a lost lease looks for paperwork first');
select public.record_sync_result((pg_temp.job((select id from took_over))).id, 'req-intake', (select token from stale_token), 'synced',
  p_pq_appointment_id => '6b0000000000000000000005', p_intake_outcome => 'sent', p_intakeq_intake_id => 'a1b2c3d4-0000-4000-8000-000000000009');
select is(pg_temp.forms((select id from took_over)), 'pending/61a000000000000000000001/-', 'a stale holder''s send is not recorded');

create temp table second_holder as select pg_temp.book('second', 56, 'cash-payment') as id;
select pg_temp.synced((select id from second_holder), '6b0000000000000000000006', 'sent', 'a1b2c3d4-0000-4000-8000-000000000001');
select results_eq($$select (pg_temp.job((select id from second_holder))).state, pg_temp.forms((select id from second_holder)) like 'pending/%'$$,
  $$values ('dead', false)$$, 'an intake another booking holds is refused: the job ends dead, not two bookings on one form');

create temp table untried as select pg_temp.book('untried', 57, 'cash-payment') as id;
select public.record_sync_result((pg_temp.job((select id from untried))).id, 'req-intake', (pg_temp.job((select id from untried))).lease_token,
  'synced', p_pq_appointment_id => '6b0000000000000000000007', p_intake_outcome => 'auth_failed', p_intake_error => 'rejected (401)',
  p_intakeq_answered => false);
select results_eq($$select (pg_temp.job((select id from untried))).retry_count, (public.sync_health()->'queue'->>'paused')::boolean$$,
  $$values (0, true)$$, 'a refused key on the send spends no attempt and pauses the queue');

reset role;
update public.appointments set status = 'cancelled' where id = (select id from untried);
update public.sync_retry_queue set state = 'cancelled' where appointment_id = (select id from untried);
set local role service_role;
select is(pg_temp.forms((select id from untried)), 'not_required/61a000000000000000000001/-', 'a cancelled booking''s paperwork is no longer required');

select * from finish();
rollback;
