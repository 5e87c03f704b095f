-- The sync under real IntakeQ behaviour: fencing tokens, attempts counted at claim, sticky reconcile, the retry
-- window, a paused queue, cancelled bookings, results the database cannot take, and what staff see.
begin;
select plan(43);
-- These stories are about the appointment; the intake paperwork has its own (100-intake-questionnaires).
update public.practice_settings set intakeq_questionnaire_id = null;
update public.payers set intakeq_questionnaire_id = null;
set local role service_role;

create function pg_temp.book(p_tag text, p_days integer) returns uuid
language sql as $$
  select (public.book_appointment('req-fence-' || p_tag, tests.id('rivera'), 'cash-payment', tests.slot(p_days),
          'telehealth', p_patient => tests.new_patient('fence-' || p_tag))->>'appointment_id')::uuid;
$$;
create function pg_temp.job(p_appointment uuid) returns public.sync_retry_queue
language sql as $$ select * from public.sync_retry_queue where appointment_id = p_appointment $$;
-- Time passes: the job's lease (whoever holds it) has run out and it is due.
create function pg_temp.expire(p_appointment uuid) returns void
language sql security definer as $$
  update public.sync_retry_queue set next_retry_at = now() - interval '1 second',
    locked_until = case when locked_by is null then null else now() - interval '1 second' end
  where appointment_id = p_appointment;
$$;
-- Only this job is due: every other pending job waits a day (claims take the most overdue first).
create function pg_temp.only_due(p_appointment uuid) returns void
language sql security definer as $$
  update public.sync_retry_queue set next_retry_at = now() + interval '1 day'
  where state = 'pending' and appointment_id <> p_appointment;
$$;
create function pg_temp.claim(p_runner text) returns jsonb
language sql as $$ select public.claim_sync_jobs(p_runner, 1, 60) $$;
create function pg_temp.report(p_appointment uuid, p_runner text, p_token uuid, p_outcome text, p_id text default null,
                               p_kind text default null, p_lookup boolean default false, p_answered boolean default true) returns jsonb
language sql as $$
  select public.record_sync_result((pg_temp.job(p_appointment)).id, p_runner, p_token, p_outcome,
    p_pq_appointment_id => p_id, p_error => 'IntakeQ said no (' || coalesce(p_kind, p_outcome) || ')', p_error_kind => p_kind,
    p_lookup_completed => p_lookup, p_intakeq_answered => p_answered);
$$;

-- Fencing ---------------------------------------------------------------------------------------------------------
create temp table a as select pg_temp.book('a', 30) as id;
create temp table a_request as select (pg_temp.job((select id from a))).lease_token as token;
select isnt((select token from a_request), null, 'the booking request''s lease has a token');
select pg_temp.expire((select id from a));
create temp table a_cron as select pg_temp.claim('cron-1') as jobs;
select isnt((select (jobs->0->>'lease_token')::uuid from a_cron), (select token from a_request), 'a new lease gets a new token');
select is((pg_temp.report((select id from a), 'req-fence-a', (select token from a_request), 'failed', p_kind => 'permanent'))->>'recorded',
  'false', 'the request that lost its lease is refused');
select is((pg_temp.job((select id from a))).state, 'pending', 'and its failure changed nothing');
select pg_temp.report((select id from a), 'req-fence-a', (select token from a_request), 'synced', '6a0000000000000000000001');
select results_eq($$select needs_reconcile, stale_pq_appointment_ids from public.sync_retry_queue where appointment_id = (select id from a)$$,
  $$values (true, array['6a0000000000000000000001'])$$,
  'a stale success is not recorded, but the next attempt must look for it before posting');
select pg_temp.report((select id from a), 'cron-1', (select (jobs->0->>'lease_token')::uuid from a_cron), 'synced', '6a0000000000000000000002');
select is((select pq_appointment_id from public.appointments where id = (select id from a)), '6a0000000000000000000002',
  'the current holder''s success is recorded');
select results_eq(
  $$select recorded_pq_appointment_id, other_pq_appointment_id from public.sync_possible_duplicates where appointment_id = (select id from a)$$,
  $$values ('6a0000000000000000000002'::text, '6a0000000000000000000001'::text)$$,
  'and the stale holder''s other IntakeQ appointment is kept as a possible duplicate');
select pg_temp.report((select id from a), 'req-fence-a', (select token from a_request), 'synced', '6a0000000000000000000003');
select is((select pq_appointment_id from public.appointments where id = (select id from a)), '6a0000000000000000000002',
  'a late stale success never overwrites the recorded id');
select is((select count(*)::int from public.sync_possible_duplicates where appointment_id = (select id from a)), 2,
  'it is one more possible duplicate');

-- Attempts count at claim -----------------------------------------------------------------------------------------
create temp table b as select pg_temp.book('b', 31) as id;
select is((pg_temp.job((select id from b))).retry_count, 1, 'the booking request''s lease is the first attempt');
select pg_temp.expire((select id from b));
select pg_temp.claim('cron-dies-1');
select pg_temp.expire((select id from b));
select pg_temp.claim('cron-dies-2');
select is((pg_temp.job((select id from b))).retry_count, 3, 'runners that die without reporting still spend attempts');
reset role;
update public.sync_retry_queue set window_started_at = now() - interval '73 hours', locked_until = now() - interval '1 second'
  where appointment_id = (select id from b);
set local role service_role;
select is(pg_temp.claim('cron-3'), '[]', 'a job out of its retry window is not claimed');
select results_eq($$select state, error_message like 'no success within 72 hours%' from public.sync_retry_queue where appointment_id = (select id from b)$$,
  $$values ('dead', true)$$, 'it is dead, visibly, with the reason');
select is((select sync_status from public.appointments where id = (select id from b)), 'failed', 'and its appointment says so');

-- Sticky reconcile, backoff, the window -----------------------------------------------------------------------------
create temp table c as select pg_temp.book('c', 32) as id;
select pg_temp.report((select id from c), 'req-fence-c', (pg_temp.job((select id from c))).lease_token, 'failed', p_kind => 'ambiguous');
select pg_temp.expire((select id from c));
select pg_temp.claim('cron-4');
select pg_temp.report((select id from c), 'cron-4', (pg_temp.job((select id from c))).lease_token, 'released');
select is((pg_temp.job((select id from c))).needs_reconcile, true, 'a 429 after an ambiguous attempt keeps the lookup');
select pg_temp.expire((select id from c));
select pg_temp.claim('cron-5');
select pg_temp.report((select id from c), 'cron-5', (pg_temp.job((select id from c))).lease_token, 'failed', p_kind => 'transient');
select is((pg_temp.job((select id from c))).needs_reconcile, true, 'so does a transient failure before the lookup completed');
select pg_temp.expire((select id from c));
select pg_temp.claim('cron-6');
select pg_temp.report((select id from c), 'cron-6', (pg_temp.job((select id from c))).lease_token, 'failed', p_kind => 'transient', p_lookup => true);
select is((pg_temp.job((select id from c))).needs_reconcile, false, 'a completed lookup that found nothing clears it');
reset role;
update public.sync_retry_queue set retry_count = 12 where appointment_id = (select id from c);
set local role service_role;
select pg_temp.expire((select id from c));
select pg_temp.claim('cron-7');
select pg_temp.report((select id from c), 'cron-7', (pg_temp.job((select id from c))).lease_token, 'failed', p_kind => 'transient');
select ok((pg_temp.job((select id from c))).next_retry_at between now() + interval '23 minutes' and now() + interval '37 minutes',
  'backoff is capped at 30 minutes (with jitter)');
select is((pg_temp.job((select id from c))).state, 'pending', 'thirteen failed attempts are not the end within the window');
reset role;
update public.sync_retry_queue set window_started_at = now() - interval '71 hours 50 minutes' where appointment_id = (select id from c);
set local role service_role;
select pg_temp.expire((select id from c));
select pg_temp.claim('cron-8');
select pg_temp.report((select id from c), 'cron-8', (pg_temp.job((select id from c))).lease_token, 'failed', p_kind => 'transient');
select is((pg_temp.job((select id from c))).state, 'dead', 'a retry that would fall past the window ends the job');

-- Paused on a refused key ---------------------------------------------------------------------------------------
create temp table d as select pg_temp.book('d', 33) as id;
create temp table e as select pg_temp.book('e', 34) as id;
select pg_temp.report((select id from d), 'req-fence-d', (pg_temp.job((select id from d))).lease_token, 'auth_failed', p_answered => false);
select results_eq($$select retry_count, locked_by from public.sync_retry_queue where appointment_id = (select id from d)$$,
  $$values (0, null::text)$$, 'a refused key spends no attempt of the job');
select is((public.sync_health()->'queue'->>'paused')::boolean, true, 'the queue is paused');
select pg_temp.expire((select id from d));
select pg_temp.expire((select id from e));
select is(public.claim_sync_jobs('cron-9', 10, 60), '[]', 'a paused queue hands out nothing until its probe is due');
reset role;
update public.sync_queue_state set next_probe_at = now() - interval '1 second';
set local role service_role;
select is(jsonb_array_length(public.claim_sync_jobs('cron-9b', 10, 60)), 1, 'then one probe job');
select pg_temp.report(q.appointment_id, 'cron-9b', q.lease_token, 'failed', p_kind => 'transient', p_answered => false)
  from public.sync_retry_queue q where q.locked_by = 'cron-9b';
select is((public.sync_health()->'queue'->>'paused')::boolean, true, 'a timeout proves nothing: the queue stays paused');
reset role;
update public.sync_queue_state set next_probe_at = now() - interval '1 second';
set local role service_role;
select pg_temp.expire((select id from d));
select pg_temp.expire((select id from e));
select is(jsonb_array_length(public.claim_sync_jobs('cron-10', 10, 60)), 1, 'the next probe a minute later');
select pg_temp.report(q.appointment_id, 'cron-10', q.lease_token, 'synced', '6a0000000000000000000009')
  from public.sync_retry_queue q where q.locked_by = 'cron-10';
select is((public.sync_health()->'queue'->>'paused')::boolean, false, 'a call that succeeds resumes the queue');

-- Cancelled -----------------------------------------------------------------------------------------------------
create temp table f as select pg_temp.book('f', 35) as id;
select pg_temp.report((select id from f), 'req-fence-f', (pg_temp.job((select id from f))).lease_token, 'failed', p_kind => 'transient');
reset role;
update public.appointments set status = 'cancelled' where id = (select id from f);
set local role service_role;
select pg_temp.expire((select id from f));
select pg_temp.only_due((select id from f));
select is(pg_temp.claim('cron-11'), '[]', 'a cancelled booking with nothing to look up is not worked');
select is((pg_temp.job((select id from f))).state, 'cancelled', 'its job ends cancelled');
create temp table g as select pg_temp.book('g', 36) as id;
select pg_temp.report((select id from g), 'req-fence-g', (pg_temp.job((select id from g))).lease_token, 'failed', p_kind => 'ambiguous');
reset role;
update public.appointments set status = 'cancelled' where id = (select id from g);
set local role service_role;
select pg_temp.expire((select id from g));
select pg_temp.only_due((select id from g));
select is(jsonb_array_length(pg_temp.claim('cron-12')), 1, 'one that may exist upstream is claimed for a lookup');
select pg_temp.report((select id from g), 'cron-12', (pg_temp.job((select id from g))).lease_token, 'cancelled', '6a000000000000000000000a');
select results_eq(
  $$select q.state, a.pq_appointment_id, (select count(*)::int from public.sync_possible_duplicates d where d.appointment_id = a.id)
    from public.sync_retry_queue q join public.appointments a on a.id = q.appointment_id where q.appointment_id = (select id from g)$$,
  $$values ('pending', '6a000000000000000000000a'::text, 0)$$,
  'what the lookup found upstream is adopted, and the job goes on to cancel it in IntakeQ (issue 13)');

-- A result the database cannot take -----------------------------------------------------------------------------
create temp table h as select pg_temp.book('h', 37) as id;
select pg_temp.report((select id from h), 'req-fence-h', (pg_temp.job((select id from h))).lease_token, 'synced', '6a0000000000000000000002');
select results_eq($$select state, error_message from public.sync_retry_queue where appointment_id = (select id from h)$$,
  $$values ('dead', format('IntakeQ appointment 6a0000000000000000000002 is already held by appointment %s', (select id from a)))$$,
  'an IntakeQ id held by another appointment ends the job dead with that reason, never a loop');

-- Review findings: lost stale successes, vanished holders, cancelled while posting, refused answers ------------
create temp table i as select pg_temp.book('i', 38) as id;
create temp table i_request as select (pg_temp.job((select id from i))).lease_token as token;
select pg_temp.expire((select id from i));
select pg_temp.only_due((select id from i));
select pg_temp.claim('cron-13');
select pg_temp.report((select id from i), 'req-fence-i', (select token from i_request), 'synced', '6a000000000000000000000b');
select pg_temp.report((select id from i), 'cron-13', (pg_temp.job((select id from i))).lease_token, 'failed', p_kind => 'permanent', p_lookup => true);
select results_eq(
  $$select q.state, q.needs_reconcile, d.other_pq_appointment_id from public.sync_retry_queue q
    join public.sync_possible_duplicates d on d.appointment_id = q.appointment_id where q.appointment_id = (select id from i)$$,
  $$values ('dead', true, '6a000000000000000000000b'::text)$$,
  'a stale success is shown to staff at once and keeps every later attempt looking, even if the job dies');

create temp table j as select pg_temp.book('j', 39) as id;
reset role;
update public.appointments set status = 'cancelled' where id = (select id from j);
set local role service_role;
select pg_temp.expire((select id from j));
select pg_temp.only_due((select id from j));
create temp table j_claim as select pg_temp.claim('cron-14') as jobs;
select results_eq($$select jsonb_array_length(jobs), (jobs->0->>'needs_reconcile')::boolean from j_claim$$, $$values (1, true)$$,
  'a cancelled booking whose holder vanished is claimed for a lookup, not ended blind');

create temp table k as select pg_temp.book('k', 40) as id;
reset role;
update public.appointments set status = 'cancelled' where id = (select id from k);
set local role service_role;
select pg_temp.report((select id from k), 'req-fence-k', (pg_temp.job((select id from k))).lease_token, 'synced', '6a000000000000000000000c');
select ok(not exists (select 1 from public.sync_possible_duplicates where appointment_id = (select id from k))
          and (pg_temp.job((select id from k))).state = 'pending',
  'a booking cancelled while it was being posted is cancelled in IntakeQ by its job, not left to staff (issue 13)');

create temp table l as select pg_temp.book('l', 41) as id;
select pg_temp.report((select id from l), 'req-fence-l', (pg_temp.job((select id from l))).lease_token, 'synced', repeat('6', 65));
select results_eq($$select state, error_message like 'IntakeQ''s answer could not be stored (23514%' from public.sync_retry_queue where appointment_id = (select id from l)$$,
  $$values ('dead', true)$$, 'an answer the database refuses ends the job dead with the reason, not in a loop');

create temp table m as select pg_temp.book('m', 42) as id;
select pg_temp.expire((select id from m));
select pg_temp.only_due((select id from m));
select is(public.claim_sync_jobs('cron-15', 1, 60, p_max_attempts => 1), '[]', 'SYNC_MAX_ATTEMPTS holds at claim too');
select results_eq($$select state, needs_reconcile from public.sync_retry_queue where appointment_id = (select id from m)$$,
  $$values ('dead', true)$$, 'and a job whose holder vanished is killed remembering to look first after a requeue');

-- What staff see, and requeue since ------------------------------------------------------------------------------
create temp table health as select public.sync_health() as h;
select ok((select (h->'jobs_by_state'->>'cancelled')::int >= 1 and (h->'jobs_by_state'->>'dead')::int >= 3 from health),
  'sync_health counts jobs by state');
select ok((select jsonb_path_exists(h, '$.possible_duplicates[*] ? (@.other_pq_appointment_id == "6a0000000000000000000001")') from health),
  'and lists possible duplicates with both IntakeQ ids');
create temp table dead_now as select count(*)::int as n from public.sync_retry_queue where state = 'dead';
select ok((select n >= 6 from dead_now), 'six jobs of this story are dead (b, c, h, i, l, m) among others');
select is((public.requeue_dead_sync_jobs(now() - interval '1 minute', 'staff')->>'requeued')::int, (select n from dead_now),
  'every job dead since a time is requeued at once');
select results_eq($$select state, retry_count, window_started_at = now() from public.sync_retry_queue where appointment_id = (select id from c)$$,
  $$values ('pending', 0, true)$$, 'with fresh attempts and a fresh retry window');

select * from finish();
rollback;
