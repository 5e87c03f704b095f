-- Cancel and reschedule, and IntakeQ following through the sync outbox (20261126000600_intakeq_two_way_outbound.sql):
-- what a job owes (create, cancel, move), reopening, the 'applied' outcome under fencing, a change made while a
-- lease is held, the starts a create may have been posted at, and the calls each needs.
-- Time stands still in a transaction (now() does not move), so it passes by moving leases and due times back; a
-- write is seen by its row's new ctid.
begin;
select plan(75);
-- These stories are about the appointment; the intake paperwork has its own (100-intake-questionnaires).
update public.practice_settings set intakeq_questionnaire_id = null;
update public.payers set intakeq_questionnaire_id = null;
-- Every pending job of other files waits a day: the claim takes the oldest due booking first.
update public.sync_retry_queue set next_retry_at = now() + interval '1 day' where state = 'pending';

-- As the owner (schema private, or time passing) ------------------------------------------------------------------
create function pg_temp.owed(p_appointment uuid) returns text
language sql security definer as $$
  select private.owed_intakeq_operation(q.id) from public.sync_retry_queue q where q.appointment_id = p_appointment
$$;
create function pg_temp.needed(p_appointment uuid, p_taking_over boolean default false) returns integer
language sql security definer as $$
  select private.intakeq_calls_needed(q.id, p_taking_over) from public.sync_retry_queue q where q.appointment_id = p_appointment
$$;
-- The job's lease (whoever holds it) has run out and it is due.
create function pg_temp.expire(p_appointment uuid) returns void
language sql security definer as $$
  update public.sync_retry_queue set next_retry_at = now() - interval '1 second',
    locked_until = case when locked_by is null then null else now() - interval '1 second' end
  where appointment_id = p_appointment;
$$;
-- Only this job is due: every other pending job waits a day.
create function pg_temp.only_due(p_appointment uuid) returns void
language sql security definer as $$
  update public.sync_retry_queue set next_retry_at = now() + interval '1 day'
  where state = 'pending' and appointment_id <> p_appointment;
  update public.sync_retry_queue set next_retry_at = now() - interval '1 second' where appointment_id = p_appointment;
$$;
create function pg_temp.set_reconcile(p_appointment uuid, p_value boolean) returns void
language sql security definer as $$
  update public.sync_retry_queue set needs_reconcile = p_value where appointment_id = p_appointment;
$$;
-- Where the rows are: a write makes a new row version (a new ctid), even within this transaction.
create function pg_temp.versions(p_appointment uuid) returns text
language sql security definer as $$
  select a.ctid::text || ' ' || q.ctid::text from public.appointments a join public.sync_retry_queue q on q.appointment_id = a.id
  where a.id = p_appointment
$$;
-- IntakeQ's appointment, as its API answers it (StartDate in Unix ms).
create function pg_temp.intakeq(p_id text, p_status text, p_start timestamptz default null) returns jsonb
language sql as $$
  select jsonb_strip_nulls(jsonb_build_object('Id', p_id, 'Status', p_status,
                                              'StartDate', (extract(epoch from p_start) * 1000)::bigint))
$$;

set local role service_role;

-- As the worker ---------------------------------------------------------------------------------------------------
create function pg_temp.book(p_tag text, p_days integer, p_hour integer default 15, p_patient_id uuid default null,
                             p_provider text default 'rivera') returns uuid
language sql as $$
  select (public.book_appointment('req-out-' || p_tag, tests.id(p_provider), 'cash-payment', tests.slot(p_days, p_hour),
          'telehealth', p_patient_id => p_patient_id,
          p_patient => case when p_patient_id is null then tests.new_patient('out-' || p_tag) end)->>'appointment_id')::uuid;
$$;
create function pg_temp.job(p_appointment uuid) returns public.sync_retry_queue
language sql as $$ select * from public.sync_retry_queue where appointment_id = p_appointment $$;
create function pg_temp.appt(p_appointment uuid) returns public.appointments
language sql as $$ select * from public.appointments where id = p_appointment $$;
-- The job's current holder reports (p_token: someone else's lease).
create function pg_temp.report(p_appointment uuid, p_outcome text, p_pq text default null, p_json jsonb default null,
                               p_written boolean default false, p_kind text default null, p_token uuid default null) returns jsonb
language sql as $$
  select public.record_sync_result(q.id, coalesce(q.locked_by, 'nobody'), coalesce(p_token, q.lease_token), p_outcome,
    p_pq_appointment_id => p_pq, p_error => case when p_kind is not null then 'IntakeQ said no (' || p_kind || ')' end,
    p_error_kind => p_kind, p_intakeq_answered => true, p_intakeq_appointment => p_json, p_intakeq_written => p_written)
  from public.sync_retry_queue q where q.appointment_id = p_appointment
$$;
-- The booking request's attempt posted it, and IntakeQ answered with it.
create function pg_temp.synced(p_appointment uuid, p_pq text) returns jsonb
language sql as $$
  select pg_temp.report(p_appointment, 'synced', p_pq, pg_temp.intakeq(p_pq, 'Confirmed', (pg_temp.appt(p_appointment)).start_time))
$$;
create function pg_temp.claim(p_runner text) returns jsonb
language sql as $$ select public.claim_sync_jobs(p_runner, 1, 60) $$;
create function pg_temp.cancel(p_appointment uuid, p_reason text default null, p_by text default 'patient') returns jsonb
language sql as $$ select public.cancel_appointment(p_appointment, p_reason, p_by, 'req-cancel') $$;
create function pg_temp.move(p_appointment uuid, p_start timestamptz, p_by text default 'patient') returns jsonb
language sql as $$ select public.reschedule_appointment(p_appointment, p_start, p_by, 'req-move') $$;
create function pg_temp.cancel_sql(p_appointment uuid, p_reason text default null, p_by text default 'patient') returns text
language sql as $$ select format('select public.cancel_appointment(%L, %L, %L, %L)', p_appointment, p_reason, p_by, 'req-cancel') $$;
create function pg_temp.move_sql(p_appointment uuid, p_start timestamptz) returns text
language sql as $$ select format('select public.reschedule_appointment(%L, %L::timestamptz, %L, %L)', p_appointment, p_start, 'patient', 'req-move') $$;

-- A patient cancels a synced appointment ------------------------------------------------------------------------
create temp table a as select pg_temp.book('a', 90) as id;
select pg_temp.synced((select id from a), '6e0000000000000000000001');
select results_eq(
  $$select status, sync_status, intakeq_status, intakeq_start_time = start_time, (pg_temp.job(id)).state from pg_temp.appt((select id from a))$$,
  $$values ('scheduled', 'synced', 'Confirmed', true, 'done')$$,
  'synced: IntakeQ''s status and start are recorded as the base');
select is(pg_temp.owed((select id from a)), null, 'and nothing is owed');
select is(pg_temp.cancel((select id from a), '  Feeling better  '),
  jsonb_build_object('appointment_id', (select id from a), 'status', 'cancelled', 'changed', true, 'intakeq', 'cancellation_queued'),
  'a patient cancels: cancelled, and the cancellation is queued for IntakeQ');
select results_eq(
  $$select status, sync_status, cancelled_by, cancellation_reason, cancelled_at = now() from pg_temp.appt((select id from a))$$,
  $$values ('cancelled', 'synced', 'patient', 'Feeling better', true)$$,
  'who cancelled, when and why are kept (the reason trimmed)');
select isnt(pg_temp.book('a-again', 90), null, 'the slot is free at once: another patient books it');
select results_eq(
  $$select state, next_retry_at <= now(), retry_count, window_started_at = now(), error_message from pg_temp.job((select id from a))$$,
  $$values ('pending', true, 0, true, null::text)$$,
  'the done job is reopened: due now, fresh attempts and window');
select is(pg_temp.owed((select id from a)), 'cancel', 'owing IntakeQ a cancel');
select is(pg_temp.needed((select id from a)), 1, 'a cancel is one call');
select pg_temp.set_reconcile((select id from a), true);
select is(pg_temp.needed((select id from a)), 2, 'two when an earlier attempt may have reached IntakeQ: it re-reads first');
select pg_temp.set_reconcile((select id from a), false);
create temp table a_versions as select pg_temp.versions((select id from a)) as v;
select is(pg_temp.cancel((select id from a), 'another reason', 'staff'),
  jsonb_build_object('appointment_id', (select id from a), 'status', 'cancelled', 'changed', false, 'intakeq', 'cancellation_queued'),
  'a second cancel answers the same, changed false');
select is(pg_temp.versions((select id from a)), (select v from a_versions), 'and writes nothing');
select pg_temp.only_due((select id from a));
create temp table a_claim as select pg_temp.claim('cron-a') as jobs;
select results_eq(
  $$select jobs->0->>'operation', jobs->0->>'cancellation_reason', (jobs->0->>'needs_reconcile')::boolean,
           (jobs->0->>'job_id')::uuid = (pg_temp.job((select id from a))).id from a_claim$$,
  $$values ('cancel', 'Feeling better', false, true)$$,
  'the claim hands it out as a cancel, with the reason for IntakeQ');
select is((pg_temp.report((select id from a), 'applied', '6e0000000000000000000001',
            pg_temp.intakeq('6e0000000000000000000001', 'Canceled'), true))->>'recorded', 'true',
  'the holder reports it applied, with IntakeQ''s appointment');
select results_eq(
  $$select (pg_temp.job(id)).state, intakeq_status, pg_temp.owed(id), (pg_temp.job(id)).locked_by from pg_temp.appt((select id from a))$$,
  $$values ('cancelled', 'Canceled', null::text, null::text)$$,
  'IntakeQ''s status is recorded, nothing is owed, the job ends cancelled');

-- Cancelled before the create synced ----------------------------------------------------------------------------
create temp table b as select pg_temp.book('b', 91) as id;
select pg_temp.report((select id from b), 'failed', p_kind => 'transient');
select is(pg_temp.cancel((select id from b))->>'intakeq', 'create_stopped', 'IntakeQ has no id for it yet: the create is stopped');
select is(pg_temp.owed((select id from b)), null, 'nothing can exist upstream: nothing is owed');
select pg_temp.expire((select id from b));
select pg_temp.only_due((select id from b));
select is(pg_temp.claim('cron-b'), '[]', 'the claim hands out nothing: nothing is posted');
select results_eq($$select (pg_temp.job(id)).state, sync_status, pq_appointment_id from pg_temp.appt((select id from b))$$,
  $$values ('cancelled', 'pending', null::text)$$, 'the job ends cancelled at claim');
select is(tests.booking_error(format($$select public.record_sync_result(%L, 'x', %L, 'applied')$$,
            (pg_temp.job((select id from b))).id, gen_random_uuid())),
  'PT400 INVALID_REQUEST sync_record', 'applied is refused for an appointment IntakeQ has no id for');

create temp table b2 as select pg_temp.book('b2', 92) as id;
select pg_temp.report((select id from b2), 'failed', p_kind => 'ambiguous');
select is(pg_temp.cancel((select id from b2))->>'intakeq', 'create_stopped', 'the same answer when an attempt may have created it');
select pg_temp.expire((select id from b2));
select pg_temp.only_due((select id from b2));
create temp table b2_claim as select pg_temp.claim('cron-b2') as jobs;
select results_eq($$select jsonb_array_length(jobs), jobs->0->>'operation', (jobs->0->>'needs_reconcile')::boolean from b2_claim$$,
  $$values (1, 'create', true)$$, 'but then it is claimed to look first (a create that posts nothing)');
select is(pg_temp.needed((select id from b2)), 3, 'its calls as before: the client (a search, a create at most) and the lookup');
select pg_temp.report((select id from b2), 'cancelled', '6e0000000000000000000002',
  pg_temp.intakeq('6e0000000000000000000002', 'Confirmed', tests.slot(92)));
select results_eq(
  $$select status, sync_status, pq_appointment_id, intakeq_status, intakeq_start_time = start_time,
           (pg_temp.job(id)).state, pg_temp.owed(id),
           (select count(*)::int from public.sync_possible_duplicates d where d.appointment_id = id)
    from pg_temp.appt((select id from b2))$$,
  $$values ('cancelled', 'synced', '6e0000000000000000000002'::text, 'Confirmed', true, 'pending', 'cancel', 0)$$,
  'what the lookup found is adopted: no possible duplicate for staff, its cancellation is owed and the job goes on');

-- Reschedule onto a free slot -----------------------------------------------------------------------------------
create temp table c as select pg_temp.book('c', 93) as id;
select pg_temp.report((select id from c), 'synced', '6e0000000000000000000003');
select results_eq($$select intakeq_status, intakeq_start_time = start_time from pg_temp.appt((select id from c))$$,
  $$values ('Confirmed', true)$$, 'synced without IntakeQ''s answer: the base is the start the lease posted');
create temp table c_move as select pg_temp.move((select id from c), tests.slot(93, 17)) as r;
select is(array(select jsonb_object_keys(r) from c_move order by 1),
  array['appointment_id', 'changed', 'end', 'start', 'status', 'sync_status'], 'the answer''s shape');
select results_eq(
  $$select (r->>'appointment_id')::uuid = (select id from c), (r->>'start')::timestamptz, (r->>'end')::timestamptz,
           r->>'status', r->>'sync_status', (r->>'changed')::boolean from c_move$$,
  $$values (true, tests.slot(93, 17), tests.slot(93, 18), 'scheduled', 'synced', true)$$,
  'moved to the new start, its length kept');
select results_eq($$select start_time, end_time, intakeq_start_time from pg_temp.appt((select id from c))$$,
  $$values (tests.slot(93, 17), tests.slot(93, 18), tests.slot(93, 15))$$, 'the row moved; IntakeQ still has the old start');
select results_eq($$select state, next_retry_at <= now(), retry_count, pg_temp.owed(appointment_id) from pg_temp.job((select id from c))$$,
  $$values ('pending', true, 0, 'move')$$, 'the job is reopened to move it in IntakeQ');
select is(pg_temp.needed((select id from c)), 1, 'a move is one call');
select pg_temp.set_reconcile((select id from c), true);
select is(pg_temp.needed((select id from c)), 2, 'two after a possible earlier attempt');
select pg_temp.set_reconcile((select id from c), false);
create temp table c_versions as select pg_temp.versions((select id from c)) as v;
select is((pg_temp.move((select id from c), tests.slot(93, 17)))->>'changed', 'false', 'the same start: changed false');
select is(pg_temp.versions((select id from c)), (select v from c_versions), 'and nothing is written');
select pg_temp.only_due((select id from c));
create temp table c_claim as select pg_temp.claim('cron-c') as jobs;
select results_eq($$select jobs->0->>'operation', (jobs->0->'booking'->>'start')::timestamptz from c_claim$$,
  $$values ('move', tests.slot(93, 17))$$, 'claimed as a move, to the new start');
select pg_temp.report((select id from c), 'applied', '6e0000000000000000000003',
  pg_temp.intakeq('6e0000000000000000000003', 'Confirmed', tests.slot(93, 17)), true);
select results_eq($$select (pg_temp.job(id)).state, intakeq_start_time, pg_temp.owed(id) from pg_temp.appt((select id from c))$$,
  $$values ('done', tests.slot(93, 17), null::text)$$, 'applied: IntakeQ''s new start is recorded and the job is done');

-- Reschedule onto a taken slot, or one not offered: nothing changes ---------------------------------------------
create temp table d as select pg_temp.book('d', 94) as id;
select pg_temp.book('d-other', 94, 17);
create temp table d_versions as select pg_temp.versions((select id from d)) as v;
select is(tests.booking_error(pg_temp.move_sql((select id from d), tests.slot(94, 17))), 'PT409 SLOT_TAKEN conflict_check',
  'onto the provider''s other appointment: SLOT_TAKEN');
select is(tests.booking_error(pg_temp.move_sql((select id from d), tests.slot(94, 16) + interval '30 minutes')),
  'PT409 SLOT_TAKEN conflict_check', 'onto part of it too');
create temp table j1 as select pg_temp.book('j1', 95, 15, tests.id('jordan')) as id;
select pg_temp.book('j2', 95, 17, tests.id('jordan'), 'okafor');
select is(tests.booking_error(pg_temp.move_sql((select id from j1), tests.slot(95, 17))), 'PT409 PATIENT_SLOT_TAKEN conflict_check',
  'onto the patient''s appointment with another provider: PATIENT_SLOT_TAKEN');
reset role;
insert into public.intakeq_busy_blocks (pq_appointment_id, provider_id, start_time, end_time, intakeq_status)
values ('6e00000000000000000000ff', tests.id('rivera'), tests.slot(94, 19), tests.slot(94, 20), 'Confirmed');
set local role service_role;
select is(tests.booking_error(pg_temp.move_sql((select id from d), tests.slot(94, 19))), 'PT409 SLOT_TAKEN conflict_check',
  'onto a time the provider is busy in IntakeQ: SLOT_TAKEN');
select is(tests.booking_error(pg_temp.move_sql((select id from d), tests.slot(94, 18) + interval '7 minutes')),
  'PT422 SLOT_NOT_OFFERED conflict_check', 'off the practice''s grid: SLOT_NOT_OFFERED');
select is(tests.booking_error(pg_temp.move_sql((select id from d),
            to_timestamp(floor(extract(epoch from now() + interval '30 minutes') / 300) * 300))),
  'PT422 SLOT_NOT_OFFERED conflict_check', 'inside the notice: SLOT_NOT_OFFERED');
select is(tests.booking_error(pg_temp.move_sql((select id from d), tests.slot(-1))), 'PT422 SLOT_IN_PAST conflict_check',
  'in the past: SLOT_IN_PAST');
select is(pg_temp.versions((select id from d)), (select v from d_versions), 'none of them changed the appointment or its job');

-- What cannot be cancelled or moved -------------------------------------------------------------------------------
select is(tests.booking_error(pg_temp.move_sql((select id from a), tests.slot(90, 17))), 'PT409 APPOINTMENT_CANCELLED appointment_change',
  'a cancelled appointment is not moved');
create temp table s as select pg_temp.book('s', 96) as id;
reset role;
update public.appointments set start_time = date_trunc('minute', now()) - interval '10 minutes',
  end_time = date_trunc('minute', now()) + interval '50 minutes' where id = (select id from s);
set local role service_role;
select is(tests.booking_error(pg_temp.cancel_sql((select id from s))), 'PT422 APPOINTMENT_STARTED appointment_change',
  'a started appointment is not cancelled');
select is(tests.booking_error(pg_temp.move_sql((select id from s), tests.slot(96, 17))), 'PT422 APPOINTMENT_STARTED appointment_change',
  'nor moved');
select is(tests.booking_error(pg_temp.cancel_sql(gen_random_uuid())), 'PT404 APPOINTMENT_NOT_FOUND appointment_lookup',
  'an unknown appointment is not found (cancel)');
select is(tests.booking_error(pg_temp.move_sql(gen_random_uuid(), tests.slot(96, 17))), 'PT404 APPOINTMENT_NOT_FOUND appointment_lookup',
  'an unknown appointment is not found (reschedule)');
select is(tests.booking_error(pg_temp.cancel_sql((select id from d), repeat('x', 501))), 'PT400 INVALID_REQUEST request_validation',
  'a reason over 500 characters is refused');
select is(tests.booking_error(pg_temp.cancel_sql((select id from d), null, 'robot')), 'PT400 INVALID_REQUEST request_validation',
  'so is an unknown requester');
select is(tests.booking_error(format($$select public.reschedule_appointment(%L, %L::timestamptz, 'patient', 'bad id!')$$,
            (select id from d), tests.slot(94, 17))), 'PT400 INVALID_REQUEST request_validation', 'and a malformed request id');

-- Fencing: a stale 'applied' ------------------------------------------------------------------------------------
create temp table h as select pg_temp.book('h', 97) as id;
select pg_temp.synced((select id from h), '6e0000000000000000000008');
select pg_temp.move((select id from h), tests.slot(97, 17));
select pg_temp.only_due((select id from h));
create temp table h_first as select (pg_temp.claim('cron-h1')->0->>'lease_token')::uuid as token;
select pg_temp.expire((select id from h));
select pg_temp.claim('cron-h2');                                      -- cron-h1's lease ran out; taken over
select pg_temp.set_reconcile((select id from h), false);              -- (the takeover asked for one: start clean)
select is((pg_temp.report((select id from h), 'applied', '6e0000000000000000000008',
            pg_temp.intakeq('6e0000000000000000000008', 'Confirmed', tests.slot(97, 17)), true,
            p_token => (select token from h_first)))->>'recorded', 'false',
  'an applied from a holder that lost its lease is refused');
select results_eq($$select q.needs_reconcile, q.locked_by, a.intakeq_start_time from public.sync_retry_queue q
                    join public.appointments a on a.id = q.appointment_id where a.id = (select id from h)$$,
  $$values (true, 'cron-h2'::text, tests.slot(97, 15))$$,
  'nothing of it is recorded, but the next attempt re-reads first: the stale move may have reached IntakeQ');
select is(pg_temp.needed((select id from h)), 2, 'so the move now needs two calls');
select pg_temp.report((select id from h), 'applied', '6e0000000000000000000008',
  pg_temp.intakeq('6e0000000000000000000008', 'Confirmed', tests.slot(97, 17)), false);
select results_eq($$select (pg_temp.job(id)).state, (pg_temp.job(id)).needs_reconcile, intakeq_start_time from pg_temp.appt((select id from h))$$,
  $$values ('done', false, tests.slot(97, 17))$$, 'the current holder''s re-read, finding it moved, ends the job');
select is(tests.booking_error(format($$select public.record_sync_result(%L, 'x', %L, 'applied', p_pq_appointment_id => 'another')$$,
            (pg_temp.job((select id from h))).id, (pg_temp.job((select id from h))).lease_token)),
  'PT400 INVALID_REQUEST sync_record', 'applied names the IntakeQ appointment the booking has, no other');

-- A change while the lease is held ------------------------------------------------------------------------------
create temp table m as select pg_temp.book('m', 98) as id;
select pg_temp.synced((select id from m), '6e0000000000000000000009');
select pg_temp.move((select id from m), tests.slot(98, 17));
select pg_temp.only_due((select id from m));
select pg_temp.claim('cron-m');
select is((pg_temp.move((select id from m), tests.slot(98, 19)))->>'changed', 'true', 'the patient moves it again while cron-m moves it');
select results_eq($$select locked_by, retry_count from pg_temp.job((select id from m))$$, $$values ('cron-m'::text, 1)$$,
  'the held lease is left alone');
select is((pg_temp.report((select id from m), 'applied', '6e0000000000000000000009',
            pg_temp.intakeq('6e0000000000000000000009', 'Confirmed', tests.slot(98, 17)), true))->>'recorded', 'true',
  'cron-m reports its move (to the first new start)');
select results_eq(
  $$select (pg_temp.job(id)).state, (pg_temp.job(id)).next_retry_at <= now(), (pg_temp.job(id)).retry_count,
           pg_temp.owed(id), start_time, intakeq_start_time from pg_temp.appt((select id from m))$$,
  $$values ('pending', true, 0, 'move', tests.slot(98, 19), tests.slot(98, 17))$$,
  'the record keeps the job going: IntakeQ has the first move, the second is still owed (not taken as a staff change)');
select pg_temp.claim('cron-m2');
select is(pg_temp.cancel((select id from m))->>'intakeq', 'cancellation_queued', 'then the patient cancels while cron-m2 moves it');
select pg_temp.report((select id from m), 'applied', '6e0000000000000000000009',
  pg_temp.intakeq('6e0000000000000000000009', 'Confirmed', tests.slot(98, 19)), true);
select results_eq($$select (pg_temp.job(id)).state, pg_temp.owed(id), status, intakeq_start_time from pg_temp.appt((select id from m))$$,
  $$values ('pending', 'cancel', 'cancelled', tests.slot(98, 19))$$,
  'the move is recorded, and the cancel is owed next');

-- Every start a create may have been posted at --------------------------------------------------------------------
create temp table k as select pg_temp.book('k', 99) as id;
select is((pg_temp.job((select id from k))).posted_starts, array[tests.slot(99)], 'the booking request''s lease may post at the booked start');
select pg_temp.report((select id from k), 'failed', p_kind => 'ambiguous');
create temp table k_move as select pg_temp.move((select id from k), tests.slot(99, 17)) as r;
select results_eq($$select r->>'status', r->>'sync_status', (r->>'changed')::boolean from k_move$$,
  $$values ('pending_sync', 'pending', true)$$, 'a booking not in IntakeQ yet can be moved too');
select results_eq($$select state, next_retry_at <= now(), pg_temp.owed(appointment_id) from pg_temp.job((select id from k))$$,
  $$values ('pending', true, 'create')$$, 'its create is due now, at the new start');
select pg_temp.only_due((select id from k));
create temp table k_claim as select pg_temp.claim('cron-k') as jobs;
select is(array(select value::timestamptz from k_claim, jsonb_array_elements_text(jobs->0->'posted_starts')),
  array[tests.slot(99), tests.slot(99, 17)], 'a claim of the create adds the start it may post at: the reconcile looks for both');
select pg_temp.expire((select id from k));
select pg_temp.claim('cron-k2');
select is((pg_temp.job((select id from k))).posted_starts, array[tests.slot(99), tests.slot(99, 17)],
  'a start already there is not added twice');
select pg_temp.report((select id from k), 'synced', '6e000000000000000000000a',
  pg_temp.intakeq('6e000000000000000000000a', 'Confirmed', tests.slot(99)));
select results_eq(
  $$select status, intakeq_start_time, (pg_temp.job(id)).state, pg_temp.owed(id) from pg_temp.appt((select id from k))$$,
  $$values ('scheduled', tests.slot(99), 'pending', 'move')$$,
  'the reconcile adopted the first post: the base is its start, and the move is owed at once');

-- An open conflict stops our move -------------------------------------------------------------------------------
create temp table n as select pg_temp.book('n', 100) as id;
select pg_temp.synced((select id from n), '6e000000000000000000000b');
select pg_temp.move((select id from n), tests.slot(100, 17));
reset role;
insert into public.intakeq_conflicts (pq_appointment_id, appointment_id, kind, intakeq_start, detail)
values ('6e000000000000000000000b', (select id from n), 'move_collides', tests.slot(100, 19), 'test');
set local role service_role;
select is(pg_temp.owed((select id from n)), null, 'staff moved it in IntakeQ onto a taken time: our move is not owed');
select pg_temp.only_due((select id from n));
select is(pg_temp.claim('cron-n'), '[]', 'so nothing is claimed');
select is((pg_temp.job((select id from n))).state, 'done', 'the job ends at claim');
reset role;
update public.intakeq_conflicts set resolved_at = now() where appointment_id = (select id from n);
set local role service_role;
select results_eq($$select pg_temp.owed(appointment_id), state, next_retry_at <= now() from pg_temp.job((select id from n))$$,
  $$values ('move', 'pending', true)$$, 'once the conflict is resolved, the move is owed again and the ended job goes on');
select is(pg_temp.cancel((select id from n))->>'intakeq', 'cancellation_queued', 'a cancel is owed whatever the conflicts');

-- Whoever writes: staff in the SQL editor ------------------------------------------------------------------------
create temp table w as select pg_temp.book('w', 101) as id;
select pg_temp.synced((select id from w), '6e000000000000000000000c');
update public.appointments set status = 'cancelled', cancelled_by = 'staff' where id = (select id from w);   -- as service_role
select results_eq($$select state, next_retry_at <= now(), pg_temp.owed(appointment_id) from pg_temp.job((select id from w))$$,
  $$values ('pending', true, 'cancel')$$, 'staff cancelling by hand: the ended job goes on to cancel it in IntakeQ');
create temp table w2 as select pg_temp.book('w2', 102) as id;
select pg_temp.report((select id from w2), 'failed', p_kind => 'transient');
create temp table w2_before as select next_retry_at, retry_count from pg_temp.job((select id from w2));
update public.appointments set notes = 'by hand', start_time = tests.slot(102, 17), end_time = tests.slot(102, 18)
where id = (select id from w2);
select results_eq($$select next_retry_at, retry_count from pg_temp.job((select id from w2))$$,
  $$select next_retry_at, retry_count from w2_before$$, 'a pending job is left to its backoff (only our API restarts it)');

-- Access ----------------------------------------------------------------------------------------------------------
reset role;
select is(array(select p.proname::text from pg_proc p
                where p.oid in ('public.cancel_appointment'::regproc, 'public.reschedule_appointment'::regproc)
                  and p.prosecdef and p.proconfig @> array['search_path=""'] and has_function_privilege('service_role', p.oid, 'execute')
                  and not has_function_privilege('anon', p.oid, 'execute') and not has_function_privilege('authenticated', p.oid, 'execute')
                order by 1),
  array['cancel_appointment', 'reschedule_appointment'],
  'both are security definer with an empty search_path, for service_role only');

select * from finish();
rollback;
