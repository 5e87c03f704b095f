-- IntakeQ's call budget: what an attempt needs, reservations all or nothing, oldest booking first, reports that
-- free what was not used, a 429 that makes everyone wait, the claim within the budget, the day's window.
-- Time stands still in a transaction (now() does not move), so it passes by moving held_until back.
begin;
select plan(47);

-- Every pending job of other files waits a day; no reservation is left over.
update public.sync_retry_queue set next_retry_at = now() + interval '1 day' where state = 'pending';
delete from public.intakeq_call_reservations;

-- As the owner (they reach schema private, or move time): a job's needs, and a clean slate.
create function pg_temp.needed(p_appointment uuid, p_taking_over boolean default false) returns integer
language sql security definer as $$
  select private.intakeq_calls_needed(q.id, p_taking_over) from public.sync_retry_queue q where q.appointment_id = p_appointment
$$;
create function pg_temp.clean_slate() returns void
language sql security definer as $$
  update public.sync_retry_queue set next_retry_at = now() + interval '1 day' where state = 'pending';
  delete from public.intakeq_call_reservations;
  update public.sync_queue_state set rate_limited_until = null;
$$;
-- The request's lease was given up and the job is due, booked p_age ago.
create function pg_temp.due(p_appointment uuid, p_age interval) returns void
language sql security definer as $$
  update public.sync_retry_queue set locked_by = null, locked_until = null, next_retry_at = now() - interval '1 second',
    created_at = now() - p_age
  where appointment_id = p_appointment;
$$;

set local role service_role;

create function pg_temp.book(p_tag text, p_days integer, p_client text default null) returns uuid
language plpgsql as $$
declare
  v_id uuid;
begin
  v_id := (public.book_appointment('req-budget-' || p_tag, tests.id('rivera'), 'cash-payment', tests.slot(p_days),
           'telehealth', p_patient => tests.new_patient('budget-' || p_tag))->>'appointment_id')::uuid;
  if p_client is not null then
    update public.patients p set intakeq_client_id = p_client from public.appointments a where a.id = v_id and p.id = a.patient_id;
  end if;
  return v_id;
end;
$$;
create function pg_temp.job(p_appointment uuid) returns public.sync_retry_queue
language sql as $$ select * from public.sync_retry_queue where appointment_id = p_appointment $$;
-- The job's current holder reserves (p_calls null: the attempt's first reservation).
create function pg_temp.reserve(p_appointment uuid, p_calls integer default null, p_per_minute integer default 10,
                                p_per_day integer default 500, p_minute_ms integer default 60000) returns jsonb
language sql as $$
  select public.reserve_intakeq_calls(q.id, q.locked_by, q.lease_token, p_calls, p_per_minute, p_per_day, p_minute_ms)
  from public.sync_retry_queue q where q.appointment_id = p_appointment
$$;
create function pg_temp.reserved(p_appointment uuid) returns integer
language sql as $$
  select r.calls from public.intakeq_call_reservations r join public.sync_retry_queue q on q.lease_token = r.lease_token
  where q.appointment_id = p_appointment
$$;
create function pg_temp.report(p_appointment uuid, p_calls_made integer, p_outcome text default 'failed',
                               p_rate_limited integer default null) returns jsonb
language sql as $$
  select public.record_sync_result(q.id, q.locked_by, q.lease_token, p_outcome, p_error => 'IntakeQ said no',
    p_error_kind => case when p_outcome = 'failed' then 'transient' end, p_retry_after_seconds => p_rate_limited,
    p_intakeq_calls_made => p_calls_made, p_rate_limited_seconds => p_rate_limited)
  from public.sync_retry_queue q where q.appointment_id = p_appointment
$$;

-- The calls an attempt needs ----------------------------------------------------------------------------------------
create temp table n as select pg_temp.book('needs', 70) as id;
select is(pg_temp.needed((select id from n)), 4, 'a new patient with paperwork: search, create, post, send');
update public.patients p set intakeq_client_id = '2001' from public.appointments a where a.id = (select id from n) and p.id = a.patient_id;
select is(pg_temp.needed((select id from n)), 2, 'a known client: post, send');
update public.sync_retry_queue set needs_reconcile = true where appointment_id = (select id from n);
select is(pg_temp.needed((select id from n)), 3, 'reconcile: one lookup more');
update public.sync_retry_queue set needs_intake_lookup = true where appointment_id = (select id from n);
select is(pg_temp.needed((select id from n)), 4, 'a paperwork lookup: one more');
update public.sync_retry_queue set needs_reconcile = false, needs_intake_lookup = false where appointment_id = (select id from n);
select is(pg_temp.needed((select id from n), p_taking_over => true), 4,
  'taken over from a holder that vanished: the claim counts both lookups');
update public.appointments set status = 'cancelled' where id = (select id from n);
select is(pg_temp.needed((select id from n)), 0, 'cancelled, nothing to look up: no call');
update public.appointments set status = 'pending_sync', pq_appointment_id = '6d0000000000000000000001' where id = (select id from n);
update public.patients p set intakeq_client_id = null from public.appointments a where a.id = (select id from n) and p.id = a.patient_id;
select is(pg_temp.needed((select id from n)), 0, 'in IntakeQ with an unknown client: the attempt fails without a call');
update public.patients p set intakeq_client_id = '2001' from public.appointments a where a.id = (select id from n) and p.id = a.patient_id;
select is(pg_temp.needed((select id from n)), 1, 'in IntakeQ already: only the paperwork');

-- All or nothing ---------------------------------------------------------------------------------------------------
select pg_temp.clean_slate();
create temp table j1 as select pg_temp.book('j1', 71) as id;
create temp table j2 as select pg_temp.book('j2', 72) as id;
create temp table j3 as select pg_temp.book('j3', 73) as id;
select is(pg_temp.reserve((select id from j1)), '{"reserved": true, "calls": 4, "wait_ms": null}', 'a first attempt reserves its 4 calls');
select is(pg_temp.reserve((select id from j2)), '{"reserved": true, "calls": 4, "wait_ms": null}', 'a second one too (8 of 10)');
select is(pg_temp.reserve((select id from j3)), '{"reserved": false, "calls": 0, "wait_ms": 120000}',
  'a third does not fit: it waits until a reservation leaves the minute (its lease''s end, 60 s, + a minute)');
select is(pg_temp.reserved((select id from j3)), null, 'and it reserved nothing');
select is((select (public.record_sync_result((pg_temp.job((select id from j1))).id, 'req-budget-j1', gen_random_uuid(), 'failed',
                     p_error_kind => 'transient'))->>'recorded'), 'false', '(a stranger''s report changes nothing)');
select is(pg_temp.reserved((select id from j1)), 4, 'the holder''s reservation is on its lease');
select is(public.reserve_intakeq_calls((pg_temp.job((select id from j3))).id, 'req-budget-j3', gen_random_uuid()),
  '{"reserved": false, "calls": 0, "wait_ms": null}', 'a caller without the current lease reserves nothing');

-- A report frees what was not used -----------------------------------------------------------------------------------
select pg_temp.report((select id from j1), 1);
select results_eq($$select calls, held_until = now(), reported_at is not null from public.intakeq_call_reservations
                    where job_id = (pg_temp.job((select id from j1))).id$$,
  $$values (1, true, true)$$, 'a report of 1 call made: the reservation is 1 call, counted until the report');
select is(pg_temp.reserve((select id from j3)), '{"reserved": true, "calls": 4, "wait_ms": null}', 'which leaves room for the third');

-- A 429 stops everyone ---------------------------------------------------------------------------------------------
select pg_temp.report((select id from j2), 1, 'released', p_rate_limited => 30);
create temp table j4 as select pg_temp.book('j4', 74, '2002') as id;
select is(pg_temp.reserve((select id from j4)), '{"reserved": false, "calls": 0, "wait_ms": 30000}',
  'after a 429 with Retry-After 30, nobody reserves for 30 s, though the calls would fit');
select results_eq($$select (sync_health()->'intakeq_budget'->>'calls_last_minute')::int, (sync_health()->'intakeq_budget'->>'calls_last_day')::int,
                           sync_health()->'intakeq_budget'->>'rate_limited_until' is not null$$,
  $$values (6, 6, true)$$, 'sync-health shows the calls counted (made or reserved) and the pause');
select is((select count(*)::int from public.staff_alerts where kind like 'queue%'), 0, 'a 429 is no staff alert');
select pg_temp.report((select id from j4), 0, 'released', p_rate_limited => 10);
select ok((select rate_limited_until between now() + interval '29 seconds' and now() + interval '30 seconds' from public.sync_queue_state),
  'a shorter Retry-After never shortens the pause');
select is(tests.booking_error($$select public.reserve_intakeq_calls(gen_random_uuid(), 'x', gen_random_uuid(), p_calls_per_minute => 0)$$),
  'PT400 INVALID_REQUEST sync_claim', 'a budget out of bounds is refused');
select is(tests.booking_error($$select public.record_sync_result(gen_random_uuid(), 'x', gen_random_uuid(), 'released', p_rate_limited_seconds => 0)$$),
  'PT400 INVALID_REQUEST sync_record', 'so is a 429 of 0 seconds');

-- Oldest first -----------------------------------------------------------------------------------------------------
select pg_temp.clean_slate();
create temp table old as select pg_temp.book('old', 75) as id;
create temp table young as select pg_temp.book('young', 76) as id;
select pg_temp.due((select id from old), interval '10 minutes');
select is(pg_temp.reserve((select id from young)), '{"reserved": false, "calls": 0, "wait_ms": null}',
  'a first reservation waits while an older booking is due: the cron serves it first');
select is(public.intakeq_budget_wait(10, 500, 60000), '{"wait_ms": 0}', 'whose calls fit now');
select is(pg_temp.reserve((select id from young), 1), '{"reserved": true, "calls": 1, "wait_ms": null}',
  'a top-up (one more page) is not held back');
reset role;
update public.sync_queue_state set paused_reason = 'rejected (401)', paused_at = now(), next_probe_at = now() + interval '1 minute';
set local role service_role;
select is(public.intakeq_budget_wait(10, 500, 60000), '{"wait_ms": null}', 'a paused queue serves nobody first');
select is(pg_temp.reserve((select id from young)), '{"reserved": true, "calls": 4, "wait_ms": null}',
  'so an attempt (a probe, say) is not held back for an older job');
select is(pg_temp.reserved((select id from young)), 5, 'a top-up adds to the reservation');
reset role;
update public.sync_queue_state set paused_reason = null, paused_at = null, next_probe_at = null;
set local role service_role;
select is(public.intakeq_budget_wait(10, 500, 60000), '{"wait_ms": 0}', '(resumed)');

-- The claim within the budget ---------------------------------------------------------------------------------------
select pg_temp.clean_slate();
create temp table c1 as select pg_temp.book('c1', 77) as id;
create temp table c2 as select pg_temp.book('c2', 78) as id;
create temp table c3 as select pg_temp.book('c3', 79) as id;
create temp table c4 as select pg_temp.book('c4', 80, '2004') as id;  -- a known client: 2 calls
select pg_temp.due((select id from c1), interval '40 minutes');
select pg_temp.due((select id from c4), interval '10 minutes');
select pg_temp.due((select id from c3), interval '20 minutes');
select pg_temp.due((select id from c2), interval '30 minutes');
create temp table claim1 as select public.claim_sync_jobs('cron-b', 5, 60, p_calls_per_minute => 10, p_calls_per_day => 500) as jobs;
select is(array(select (j->>'job_id')::uuid from claim1, jsonb_array_elements(jobs) j),
  array[(pg_temp.job((select id from c1))).id, (pg_temp.job((select id from c2))).id],
  'the claim takes the oldest bookings first, and stops at the first that does not fit (c4 would, but is younger than c3)');
select is(array(select (j->>'intakeq_calls_reserved')::int from claim1, jsonb_array_elements(jobs) j), array[4, 4],
  'each claimed job carries the calls reserved for its lease');
select results_eq($$select holder, held_until = (pg_temp.job((select id from c1))).locked_until from public.intakeq_call_reservations
                    where lease_token = (pg_temp.job((select id from c1))).lease_token$$,
  $$values ('cron-b'::text, true)$$, 'held by the claim''s runner until its lease''s end');
select is(public.intakeq_budget_wait(10, 500, 60000), '{"wait_ms": 120000}', 'the oldest due job''s calls fit once c1''s leave the minute');
create temp table claim2 as select public.claim_sync_jobs('cron-nb', 5, 60) as jobs;
select is(array(select (j->>'job_id')::uuid from claim2, jsonb_array_elements(jobs) j),
  array[(pg_temp.job((select id from c3))).id, (pg_temp.job((select id from c4))).id],
  'without a budget the claim takes every due job, oldest first');
select is(array(select j->>'intakeq_calls_reserved' from claim2, jsonb_array_elements(jobs) j), array[null, null]::text[],
  'and reserves nothing');

-- A stale holder's calls count ---------------------------------------------------------------------------------------
create temp table c1_lease as select (pg_temp.job((select id from c1))).lease_token as token;
reset role;
update public.sync_retry_queue set locked_until = now() - interval '1 second', next_retry_at = now() - interval '1 second'
  where appointment_id = (select id from c1);
set local role service_role;
select is(jsonb_array_length(public.claim_sync_jobs('cron-c', 1, 60)), 1, 'cron-b''s lease on c1 ran out and cron-c took it over');
select is((public.record_sync_result((pg_temp.job((select id from c1))).id, 'cron-b', (select token from c1_lease), 'failed',
            p_error_kind => 'transient', p_intakeq_calls_made => 3))->>'recorded', 'false', 'cron-b''s late report is not recorded');
select results_eq($$select calls, held_until = now(), reported_at is not null from public.intakeq_call_reservations
                    where lease_token = (select token from c1_lease)$$,
  $$values (3, true, true)$$, 'but the 3 calls it made count');

-- The day's window ---------------------------------------------------------------------------------------------------
select pg_temp.clean_slate();
create temp table d as select pg_temp.book('d', 81) as id;
reset role;
insert into public.intakeq_call_reservations (lease_token, calls, held_until, reported_at)
values (gen_random_uuid(), 497, now() - interval '2 hours', now() - interval '2 hours');
set local role service_role;
select is(pg_temp.reserve((select id from d)), '{"reserved": false, "calls": 0, "wait_ms": 79200000}',
  '497 calls two hours ago: 4 more do not fit in 500 a day until they leave it, in 22 hours');
select is(pg_temp.reserve((select id from d), p_per_day => 501), '{"reserved": true, "calls": 4, "wait_ms": null}',
  'they fit a day of 501');

-- The minute's window, shortened ------------------------------------------------------------------------------------
select pg_temp.clean_slate();
create temp table m as select pg_temp.book('m', 82) as id;
reset role;
insert into public.intakeq_call_reservations (lease_token, calls, held_until, reported_at)
values (gen_random_uuid(), 10, now() - interval '150 milliseconds', now() - interval '150 milliseconds');
set local role service_role;
select is(pg_temp.reserve((select id from m), p_minute_ms => 200), '{"reserved": false, "calls": 0, "wait_ms": 50}',
  'a full minute of 200 ms, its calls made 150 ms ago: 50 ms to wait');
reset role;
update public.intakeq_call_reservations set held_until = held_until - interval '100 milliseconds' where job_id is null;
set local role service_role;
select is(pg_temp.reserve((select id from m), p_minute_ms => 200), '{"reserved": true, "calls": 4, "wait_ms": null}',
  'once they have left the minute, there is room');
reset role;
update public.appointments set status = 'cancelled' where id = (select id from m);
set local role service_role;
select is(pg_temp.reserve((select id from m), p_minute_ms => 200), '{"reserved": true, "calls": 0, "wait_ms": null}',
  'a job that needs no call reserves none');

-- A late report counts its calls from the report, not from the lease's end -------------------------------------------
select pg_temp.clean_slate();
create temp table lr as select pg_temp.book('lr', 83) as id;
select is((pg_temp.reserve((select id from lr)))->>'reserved', 'true', 'the request reserved its calls');
create temp table lr_lease as select (pg_temp.job((select id from lr))).lease_token as token, (pg_temp.job((select id from lr))).id as job;
reset role;
update public.intakeq_call_reservations set held_until = now() - interval '30 seconds' where lease_token = (select token from lr_lease);
set local role service_role;
select public.record_sync_result((select job from lr_lease), 'req-budget-lr', (select token from lr_lease), 'failed',
  p_error_kind => 'transient', p_intakeq_calls_made => 2);
select results_eq($$select calls, held_until = now() from public.intakeq_call_reservations where lease_token = (select token from lr_lease)$$,
  $$values (2, true)$$, 'a report after its lease''s end counts the calls made from the report, never earlier');
select is(public.reserve_intakeq_calls((select job from lr_lease), 'req-budget-lr', (select token from lr_lease)),
  '{"reserved": false, "calls": 0, "wait_ms": null}', 'a lease the report gave back reserves nothing more');

select * from finish();
rollback;
