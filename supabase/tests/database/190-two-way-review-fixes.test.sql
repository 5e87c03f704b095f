-- Two-way with IntakeQ, after review (20261126000500 and 20261126000600): the catch-up resumes where the
-- budget stopped it (not a failure) and a page is fenced by its lease; no reschedule while staff have a move to
-- settle in IntakeQ; a reinstatement made in IntakeQ is followed (or a conflict, and no cancel owed); a transient
-- error in the adoption of what a lookup found is raised.
-- Time stands still in a transaction (now() does not move): it passes by moving timestamps back.
begin;
select plan(81);

-- These stories are about appointments; the paperwork has its own file.
update public.practice_settings set intakeq_questionnaire_id = null;
update public.payers set intakeq_questionnaire_id = null;
-- Every pending job of other files waits a day; no reservation is left over; the catch-up never ran.
update public.sync_retry_queue set next_retry_at = now() + interval '1 day' where state = 'pending';
delete from public.intakeq_call_reservations;
update public.intakeq_catchup_state
set last_started_at = null, last_completed_at = null, locked_by = null, lease_token = null, locked_until = null,
    failures = 0, last_error = null, last_counts = null, next_page = 1;

-- As the owner (schema private, time passing, writes that stand for other parts) ----------------------------------
create function pg_temp.apply(p_id text, p_appointment jsonb) returns text
language sql security definer as $$ select private.apply_intakeq_appointment(p_id, p_appointment) $$;
create function pg_temp.as_owner(p_sql text) returns void
language plpgsql security definer as $$ begin execute p_sql; end; $$;
create function pg_temp.owed(p_appointment uuid) returns text
language sql security definer as $$
  select private.owed_intakeq_operation(q.id) from public.sync_retry_queue q where q.appointment_id = p_appointment
$$;
-- Our booking synced to IntakeQ under p_pq (what record_sync_result writes), its job done.
create function pg_temp.synced(p_appointment uuid, p_pq text) returns void
language sql security definer as $$
  update public.appointments
  set status = 'scheduled', sync_status = 'synced', pq_appointment_id = p_pq, intakeq_status = 'Confirmed',
      intakeq_start_time = start_time, intake_forms_status = 'not_required'
  where id = p_appointment;
  update public.sync_retry_queue
  set state = 'done', completed_at = now(), locked_by = null, locked_until = null
  where appointment_id = p_appointment;
$$;
create function pg_temp.catchup() returns public.intakeq_catchup_state
language sql security definer as $$ select * from public.intakeq_catchup_state $$;
create function pg_temp.conflict(p_pq text, p_kind text) returns public.intakeq_conflicts
language sql security definer as $$
  select * from public.intakeq_conflicts where pq_appointment_id = p_pq and kind = p_kind order by detected_at desc limit 1
$$;
create function pg_temp.open_conflicts(p_pq text) returns integer
language sql security definer as $$
  select count(*)::int from public.intakeq_conflicts where pq_appointment_id = p_pq and resolved_at is null
$$;

-- IntakeQ's appointment as its API answers it (Unix ms), with its client (never stored).
create function pg_temp.iq(p_id text, p_status text, p_start timestamptz, p_minutes integer default 60,
                           p_practitioner text default '5f1a00000000000000000001') returns jsonb
language sql as $$
  select jsonb_build_object(
    'Id', p_id, 'Status', p_status, 'ClientName', 'Someone Private', 'ClientEmail', 'someone@example.com',
    'StartDate', (extract(epoch from p_start) * 1000)::bigint,
    'EndDate', (extract(epoch from p_start + make_interval(mins => p_minutes)) * 1000)::bigint,
    'Duration', p_minutes, 'PractitionerId', p_practitioner);
$$;

set local role service_role;

-- As the worker ---------------------------------------------------------------------------------------------------
create function pg_temp.book(p_tag text, p_start timestamptz) returns uuid
language sql as $$
  select (public.book_appointment('req-rf-' || p_tag, tests.id('rivera'), 'cash-payment', p_start, 'telehealth',
          p_patient => tests.new_patient('rf-' || p_tag))->>'appointment_id')::uuid
$$;
create function pg_temp.appt(p_appointment uuid) returns public.appointments
language sql as $$ select * from public.appointments where id = p_appointment $$;
create function pg_temp.job(p_appointment uuid) returns public.sync_retry_queue
language sql as $$ select * from public.sync_retry_queue where appointment_id = p_appointment $$;
create function pg_temp.claim_catchup(p_every integer default 360) returns jsonb
language sql as $$ select public.claim_intakeq_catchup('cron-rf', p_every, 120) $$;
create function pg_temp.move_sql(p_appointment uuid, p_start timestamptz) returns text
language sql as $$ select format('select public.reschedule_appointment(%L, %L::timestamptz, %L, %L)', p_appointment, p_start, 'patient', 'req-move') $$;

-- 1. The catch-up resumes ------------------------------------------------------------------------------------------
select is((select count(*)::int from pg_proc where proname = 'finish_intakeq_catchup' and pronamespace = 'public'::regnamespace)
          || ' ' || (select count(*)::int from pg_proc where proname = 'apply_intakeq_appointments' and pronamespace = 'public'::regnamespace),
  '1 1', 'one finish_intakeq_catchup and one apply_intakeq_appointments (the old signatures are gone)');
select is(array(select p.oid::regprocedure::text from pg_proc p
                where p.oid in ('public.finish_intakeq_catchup'::regproc, 'public.apply_intakeq_appointments'::regproc)
                  and has_function_privilege('service_role', p.oid, 'execute') order by 1),
  array['apply_intakeq_appointments(jsonb,uuid)', 'finish_intakeq_catchup(uuid,boolean,jsonb,text,integer,date)'],
  'their new signatures, callable by the worker''s role');

create temp table run1 as select pg_temp.claim_catchup() as c;
select results_eq($$select c->>'due', (c->>'next_page')::int from run1$$, $$values ('true', 1)$$,
  'never run: due, from page 1');
select is(public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from run1), false, '{"pages": 9}',
            'the call budget ran out', 10) - 'last_completed_at',
  '{"recorded": true, "next_page": 10, "unlisted": 0}', 'the budget stopped it before page 10: recorded, page 10 next');
select results_eq($$select failures, next_page, last_completed_at, last_error, lease_token is null from pg_temp.catchup()$$,
  $$values (0, 10, null::timestamptz, 'the call budget ran out'::text, true)$$,
  'not a failure (no failure counted), not completed, the note kept, the lease cleared');
create temp table run2 as select pg_temp.claim_catchup() as c;
select results_eq($$select c->>'due', (c->>'next_page')::int from run2$$, $$values ('true', 10)$$,
  'due again at the next claim (no backoff), resuming from page 10');

select public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from run2), false, null, 'IntakeQ answered 503 on page 12');
select results_eq($$select failures, next_page, last_error from pg_temp.catchup()$$,
  $$values (1, 10, 'IntakeQ answered 503 on page 12'::text)$$,
  'a page that failed is a failure: counted, and next_page kept');
select is(pg_temp.claim_catchup()->>'due', 'false', 'a failure backs off: not due at once');
select pg_temp.as_owner($$update public.intakeq_catchup_state set last_started_at = now() - interval '61 seconds'$$);
create temp table run3 as select pg_temp.claim_catchup() as c;
select results_eq($$select c->>'due', (c->>'next_page')::int from run3$$, $$values ('true', 10)$$,
  'after the backoff, due, still resuming from page 10');
select public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from run3), false, null, null, 14);
select results_eq($$select failures, next_page, last_error from pg_temp.catchup()$$, $$values (0, 14, null::text)$$,
  'stopped by the budget again (no note): the failures are forgotten, page 14 next');

select pg_temp.as_owner($$update public.intakeq_catchup_state set last_completed_at = now() - interval '1 hour'$$);
create temp table run4 as select pg_temp.claim_catchup() as c;
select results_eq($$select c->>'due', (c->>'next_page')::int from run4$$, $$values ('true', 14)$$,
  'a pass under way is due whatever the period (the last completed one an hour ago, every 360 minutes)');
select is(public.finish_intakeq_catchup(gen_random_uuid(), true, null, null)->>'recorded', 'false',
  'a finish without the current token is refused');
select is(public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from run4), true, '{"pages": 3}', null, 17) - 'last_completed_at',
  '{"recorded": true, "next_page": 1, "unlisted": 0}', 'completed: the next pass starts at page 1 (a p_next_page with it is ignored)');
select results_eq($$select failures, next_page, last_completed_at = now(), last_error from pg_temp.catchup()$$,
  $$values (0, 1, true, null::text)$$, 'completed now');
select is(pg_temp.claim_catchup(), '{"due": false, "next_page": null, "lease_token": null, "lease_seconds_left": null}',
  'completed just now: not due every 360 minutes');
create temp table run5 as select pg_temp.claim_catchup(0) as c;
select is(tests.booking_error(format($$select public.finish_intakeq_catchup(%L, false, null, null, 0)$$, (select c->>'lease_token' from run5))),
  'PT400 INVALID_REQUEST intakeq_catchup', 'p_next_page 0 is refused');
select is(tests.booking_error(format($$select public.finish_intakeq_catchup(%L, false, null, null, 1001)$$, (select c->>'lease_token' from run5))),
  'PT400 INVALID_REQUEST intakeq_catchup', 'so is 1001');
select is(tests.booking_error($$select pg_temp.as_owner('update public.intakeq_catchup_state set next_page = 1001')$$),
  '23514 new row for relation "intakeq_catchup_state" violates check constraint "intakeq_catchup_state_next_page_check"',
  'next_page is 1 to 1000 whoever writes');
select public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from run5), true, null, null);

-- 2. A catch-up page is fenced by its lease ----------------------------------------------------------------------------
create temp table fence1 as select pg_temp.claim_catchup(0) as c;
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-f1', 'Confirmed', tests.slot(110, 15))), gen_random_uuid()),
  '{"moved": 0, "blocked": 0, "ignored": 0, "skipped": 0, "conflict": 0, "recorded": false, "cancelled": 0, "unblocked": 0, "unchanged": 0, "reinstated": 0}',
  'a page under a token that is not the catch-up''s lease: counts all 0, recorded false');
select is((select count(*)::int from public.intakeq_busy_blocks where pq_appointment_id = 'iq-f1'), 0, 'and nothing applied');
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-f1', 'Confirmed', tests.slot(110, 15))),
            (select (c->>'lease_token')::uuid from fence1)) - 'ignored' - 'skipped' - 'conflict' - 'cancelled' - 'unblocked' - 'unchanged' - 'moved' - 'reinstated',
  '{"blocked": 1, "recorded": true}', 'under the current lease: applied');
select pg_temp.as_owner($$update public.intakeq_catchup_state set locked_until = now() - interval '1 second'$$);
create temp table fence2 as select pg_temp.claim_catchup(0) as c;
select is((select c->>'due' from fence2), 'true', '(its lease ran out, and another runner took the catch-up)');
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-f1', 'Canceled', tests.slot(110, 15))),
            (select (c->>'lease_token')::uuid from fence1))->>'recorded',
  'false', 'the first runner''s next page is refused');
select is((select count(*)::int from public.intakeq_busy_blocks where pq_appointment_id = 'iq-f1'), 1, 'and its block stays');
select pg_temp.as_owner($$update public.intakeq_catchup_state set last_started_at = now() - interval '1 minute'$$);
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-f1', 'Canceled', tests.slot(110, 15))),
            (select (c->>'lease_token')::uuid from fence2)) - 'ignored' - 'blocked' - 'conflict' - 'cancelled' - 'unblocked' - 'unchanged' - 'moved' - 'reinstated',
  '{"skipped": 1, "recorded": true}', 'the new holder: what was written after its run began is still skipped');
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-f2', 'Confirmed', tests.slot(110, 17))),
            (select (c->>'lease_token')::uuid from fence2))->>'blocked', '1', 'and the rest applied');
select public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from fence2), true, null, null);
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-f2', 'Canceled', tests.slot(110, 17))),
            (select (c->>'lease_token')::uuid from fence2))->>'recorded', 'false', 'after the finish, its token applies nothing');
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-f2', 'Canceled', tests.slot(110, 17))))->>'unblocked', '1',
  'without a token (staff), a page is applied as before');

-- 3. No reschedule while staff have a move to settle -------------------------------------------------------------------
create temp table a as select pg_temp.book('a', tests.slot(111, 15)) as id;
create temp table b as select pg_temp.book('b', tests.slot(111, 19)) as id;
select pg_temp.synced((select id from a), 'iq-a');
select pg_temp.synced((select id from b), 'iq-b');
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', tests.slot(111, 19))), 'conflict',
  '(staff moved it in IntakeQ onto a time taken here: a move_collides conflict)');
select is(tests.booking_error(pg_temp.move_sql((select id from a), tests.slot(111, 17))),
  'PT409 APPOINTMENT_IN_REVIEW appointment_change', 'a reschedule is refused while the conflict is open');
select results_eq($$select start_time, intakeq_start_time, (pg_temp.job(id)).state from pg_temp.appt((select id from a))$$,
  $$values (tests.slot(111, 15), tests.slot(111, 15), 'done'::text)$$, 'nothing changed, nothing owed');
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', tests.slot(111, 15))), 'unchanged',
  '(staff moved it back in IntakeQ: the conflict is resolved)');
select is(public.reschedule_appointment((select id from a), tests.slot(111, 17), 'patient', 'req-move')->>'changed', 'true',
  'once it is resolved, the reschedule is taken');
select results_eq($$select start_time, pg_temp.owed(id) from pg_temp.appt((select id from a))$$,
  $$values (tests.slot(111, 17), 'move'::text)$$, 'and its move is owed to IntakeQ');

create temp table c as select pg_temp.book('c', tests.slot(112, 15)) as id;
create temp table c2 as select pg_temp.book('c2', tests.slot(112, 19)) as id;
select pg_temp.synced((select id from c), 'iq-c');
select pg_temp.synced((select id from c2), 'iq-c2');
select pg_temp.apply('iq-c', pg_temp.iq('iq-c', 'Confirmed', tests.slot(112, 19)));
select is(public.cancel_appointment((select id from c), 'Changed my mind', 'patient', 'req-cancel') - 'appointment_id',
  '{"status": "cancelled", "changed": true, "intakeq": "cancellation_queued"}', 'a cancel is allowed while the conflict is open');
select results_eq($$select status, pg_temp.owed(id), pg_temp.open_conflicts('iq-c') from pg_temp.appt((select id from c))$$,
  $$values ('cancelled'::text, 'cancel'::text, 0)$$, 'it owes IntakeQ a cancel, and ends the conflict');

-- 4. A reinstatement in IntakeQ is followed ----------------------------------------------------------------------------
create temp table d as select pg_temp.book('d', tests.slot(113, 15)) as id;
select pg_temp.synced((select id from d), 'iq-d');
create temp table d_length as select end_time - start_time as length from pg_temp.appt((select id from d));
select is(pg_temp.apply('iq-d', pg_temp.iq('iq-d', 'Canceled', tests.slot(113, 15))), 'cancelled', '(staff cancelled it in IntakeQ)');
select is(pg_temp.apply('iq-d', pg_temp.iq('iq-d', 'Confirmed', tests.slot(113, 17))), 'reinstated',
  'and reinstated it there, at another time: reinstated');
select results_eq(
  $$select status, sync_status, start_time, end_time - start_time, intakeq_start_time, intakeq_status,
           cancelled_at, cancelled_by, cancellation_reason from pg_temp.appt((select id from d))$$,
  $$values ('scheduled'::text, 'synced'::text, tests.slot(113, 17), (select length from d_length), tests.slot(113, 17),
            'Confirmed'::text, null::timestamptz, null::text, null::text)$$,
  'ours is scheduled again at IntakeQ''s start, with our length; the base follows; the cancellation is cleared');
select results_eq($$select pg_temp.owed(id), (pg_temp.job(id)).state from pg_temp.appt((select id from d))$$,
  $$values (null::text, 'done'::text)$$, 'nothing is owed to IntakeQ: no cancellation is posted');
select is(pg_temp.apply('iq-d', pg_temp.iq('iq-d', 'Confirmed', tests.slot(113, 17))), 'unchanged', 'the same re-read again: unchanged');
select ok(pg_temp.book('d-other', tests.slot(113, 15)) is not null, 'its old time is free on the web');

create temp table e as select pg_temp.book('e', tests.slot(114, 15)) as id;
select pg_temp.synced((select id from e), 'iq-e');
select pg_temp.apply('iq-e', pg_temp.iq('iq-e', 'Declined', tests.slot(114, 15)));
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-e', 'WaitingConfirmation', tests.slot(114, 15))))->>'reinstated', '1',
  'a catch-up page counts a reinstatement (Declined, then WaitingConfirmation)');
select is((pg_temp.appt((select id from e))).intakeq_status, 'WaitingConfirmation', 'the base takes IntakeQ''s status');

-- Its time was taken meanwhile (by another appointment of ours).
create temp table f as select pg_temp.book('f', tests.slot(115, 15)) as id;
select pg_temp.synced((select id from f), 'iq-f');
select pg_temp.apply('iq-f', pg_temp.iq('iq-f', 'Canceled', tests.slot(115, 15)));
create temp table f_taker as select pg_temp.book('f-taker', tests.slot(115, 15)) as id;
select is(pg_temp.apply('iq-f', pg_temp.iq('iq-f', 'Confirmed', tests.slot(115, 15))), 'conflict',
  'reinstated in IntakeQ, but its time is taken here: a conflict');
select results_eq($$select status, cancelled_by, intakeq_status, start_time from pg_temp.appt((select id from f))$$,
  $$values ('cancelled'::text, 'intakeq'::text, 'Canceled'::text, tests.slot(115, 15))$$,
  'nothing of ours changed, and the base still says cancelled');
select results_eq($$select pg_temp.owed(id) is distinct from 'cancel', pg_temp.owed(id), (pg_temp.job(id)).state from pg_temp.appt((select id from f))$$,
  $$values (true, null::text, 'done'::text)$$, 'so no cancel is owed, and the job is not reopened');
select results_eq($$select kind, appointment_id, intakeq_start, resolved_at is null from pg_temp.conflict('iq-f', 'reinstate_collides')$$,
  $$values ('reinstate_collides'::text, (select id from f), tests.slot(115, 15), true)$$, 'an open reinstate_collides conflict');
select results_eq($$select count(*)::int, bool_and(text like '%iq-f%' and text like '%active there again%'),
                           bool_and(text not like '%example.com%' and text not like '%Someone%' and text not like '%Patient rf-%')
                    from public.staff_alerts where kind = 'intakeq_conflict' and appointment_id = (select id from f)$$,
  $$values (1, true, true)$$, 'one staff alert, ids and times only');
select ok(exists (select from jsonb_array_elements(public.sync_health()->'intakeq_conflicts') c
                  where c->>'pq_appointment_id' = 'iq-f' and c->>'kind' = 'reinstate_collides'
                    and c->>'appointment_id' = (select id from f)::text),
  'sync-health lists it');
select is(pg_temp.apply('iq-f', pg_temp.iq('iq-f', 'Confirmed', tests.slot(115, 15))), 'conflict', 'seen again: still a conflict');
select is(pg_temp.open_conflicts('iq-f'), 1, 'one open conflict');
select is(pg_temp.apply('iq-f', pg_temp.iq('iq-f', 'Canceled', tests.slot(115, 15))), 'unchanged',
  'staff cancel it again in IntakeQ: unchanged');
select is(pg_temp.open_conflicts('iq-f'), 0, 'and the conflict is resolved');

-- Its time is busy in IntakeQ (a block), then staff move it to a free time.
create temp table g as select pg_temp.book('g', tests.slot(116, 15)) as id;
select pg_temp.synced((select id from g), 'iq-g');
select pg_temp.apply('iq-g', pg_temp.iq('iq-g', 'Canceled', tests.slot(116, 15)));
select is(pg_temp.apply('iq-g-phone', pg_temp.iq('iq-g-phone', 'Confirmed', tests.slot(116, 15))), 'blocked',
  '(staff booked someone by phone in its time)');
select is(pg_temp.apply('iq-g', pg_temp.iq('iq-g', 'Confirmed', tests.slot(116, 15))), 'conflict',
  'a reinstatement onto a busy block: a conflict');
select is((pg_temp.conflict('iq-g', 'reinstate_collides')).detail like '%busy in IntakeQ%', true, 'naming the busy block');
select is(pg_temp.apply('iq-g', pg_temp.iq('iq-g', 'Confirmed', tests.slot(116, 17))), 'reinstated',
  'staff move it to a free time in IntakeQ: reinstated there');
select results_eq($$select status, start_time, pg_temp.open_conflicts('iq-g'), pg_temp.owed(id) from pg_temp.appt((select id from g))$$,
  $$values ('scheduled'::text, tests.slot(116, 17), 0, null::text)$$, 'the conflict resolved, nothing owed');

-- Cancelled here, active in IntakeQ: our cancellation is still owed.
create temp table h as select pg_temp.book('h', tests.slot(117, 15)) as id;
select pg_temp.synced((select id from h), 'iq-h');
select public.cancel_appointment((select id from h), null, 'patient', 'req-cancel-h');
select is(pg_temp.apply('iq-h', pg_temp.iq('iq-h', 'Confirmed', tests.slot(117, 15))), 'unchanged',
  'cancelled by the patient, active in IntakeQ: unchanged');
select results_eq($$select status, cancelled_by, pg_temp.owed(id), (pg_temp.job(id)).state from pg_temp.appt((select id from h))$$,
  $$values ('cancelled'::text, 'patient'::text, 'cancel'::text, 'pending'::text)$$,
  'ours stays cancelled, and the cancel is owed to IntakeQ');
create temp table h2 as select pg_temp.book('h2', tests.slot(117, 17)) as id;
select pg_temp.synced((select id from h2), 'iq-h2');
select public.cancel_appointment((select id from h2), null, 'staff', 'req-cancel-h2');
select pg_temp.as_owner(format($$update public.appointments set intakeq_status = 'Canceled' where id = %L$$, (select id from h2)));
select is(pg_temp.apply('iq-h2', pg_temp.iq('iq-h2', 'Confirmed', tests.slot(117, 17))), 'reinstated',
  'cancelled here, IntakeQ took the cancel, then staff reinstated it there ("cancelled by mistake"): followed');
select results_eq($$select status, intakeq_status, pg_temp.owed(id) from pg_temp.appt((select id from h2))$$,
  $$values ('scheduled'::text, 'Confirmed'::text, null::text)$$, 'scheduled again, and no cancellation is posted again');

-- 5. A transient error in the adoption is raised -----------------------------------------------------------------------
-- A booking cancelled before it synced, whose earlier attempt may have created it: the lookup finds it upstream
-- and the report adopts it.
create temp table k as select pg_temp.book('k', tests.slot(118, 15)) as id;
create function pg_temp.report_k(p_outcome text, p_kind text default null) returns jsonb
language sql as $$
  select public.record_sync_result(q.id, coalesce(q.locked_by, 'nobody'), q.lease_token, p_outcome,
    p_pq_appointment_id => case when p_outcome = 'cancelled' then 'iq-k' end,
    p_error => case when p_kind is not null then 'IntakeQ timed out' end, p_error_kind => p_kind,
    p_intakeq_appointment => case when p_outcome = 'cancelled' then pg_temp.iq('iq-k', 'Confirmed', tests.slot(118, 15)) end)
  from public.sync_retry_queue q where q.appointment_id = (select id from k)
$$;
select pg_temp.report_k('failed', 'ambiguous');
select public.cancel_appointment((select id from k), null, 'patient', 'req-cancel-k');
-- Only its job is due (the moves and cancels owed above wait a day).
select pg_temp.as_owner(format($$update public.sync_retry_queue set next_retry_at = now() + interval '1 day' where state = 'pending';
                                 update public.sync_retry_queue set next_retry_at = now() - interval '1 second' where appointment_id = %L$$,
  (select id from k)));
select is(public.claim_sync_jobs('cron-k', 1, 60)->0->>'operation', 'create', '(claimed to look for what the first attempt created)');
reset role;
create function pg_temp.inject_adoption_failure(p_sqlstate text) returns void
language plpgsql as $$
begin
  if exists (select from pg_trigger where tgname = 'injected_failure' and tgrelid = 'public.appointments'::regclass) then
    execute 'drop trigger injected_failure on public.appointments';
  end if;
  execute format('create trigger injected_failure before update of pq_appointment_id on public.appointments
                  for each row when (old.pq_appointment_id is null and new.pq_appointment_id is not null)
                  execute function tests.injected_failure(%L)', p_sqlstate);
end;
$$;
select pg_temp.inject_adoption_failure('40P01');
set local role service_role;
select is(tests.booking_error($$select pg_temp.report_k('cancelled')$$), '40P01 injected failure for a test',
  'a deadlock in the adoption is raised: the report fails, to be retried');
select results_eq($$select pq_appointment_id, (pg_temp.job(id)).locked_by,
                           (select count(*)::int from public.sync_possible_duplicates d where d.appointment_id = a.id)
                    from pg_temp.appt((select id from k)) a$$,
  $$values (null::text, 'cron-k'::text, 0)$$, 'nothing of it recorded: the job is still leased, no duplicate noted');
reset role;
select pg_temp.inject_adoption_failure('23514');
set local role service_role;
select is(pg_temp.report_k('cancelled')->>'recorded', 'true', 'an error of the answer itself is not raised');
select results_eq($$select pq_appointment_id, (pg_temp.job(id)).state,
                           (select count(*)::int from public.sync_possible_duplicates d where d.appointment_id = a.id and d.other_pq_appointment_id = 'iq-k')
                    from pg_temp.appt((select id from k)) a$$,
  $$values (null::text, 'cancelled'::text, 1)$$, 'it is left to staff as a possible duplicate, as before');
reset role;
drop trigger injected_failure on public.appointments;

-- The same for a synced report: a deadlock while it is stored is raised (it used to end the job dead).
select pg_temp.inject_adoption_failure('40P01');
set local role service_role;
create temp table m as select pg_temp.book('m', tests.slot(119, 15)) as id;
create function pg_temp.report_m() returns jsonb
language sql as $$
  select public.record_sync_result(q.id, q.locked_by, q.lease_token, 'synced', p_pq_appointment_id => 'iq-m',
    p_intakeq_client_id => '4242', p_intakeq_appointment => pg_temp.iq('iq-m', 'Confirmed', tests.slot(119, 15)))
  from public.sync_retry_queue q where q.appointment_id = (select id from m)
$$;
select is(tests.booking_error($$select pg_temp.report_m()$$), '40P01 injected failure for a test',
  'a deadlock while a synced report is stored is raised: the report fails, to be retried');
select results_eq($$select (pg_temp.job(id)).state, pq_appointment_id from pg_temp.appt((select id from m)) a$$,
  $$values ('pending'::text, null::text)$$, 'nothing of it recorded, and the job is not ended dead');
reset role;
drop trigger injected_failure on public.appointments;

-- 6. A move whose write may have reached IntakeQ --------------------------------------------------------------------
-- Only this appointment's job is due; claimed as the cron claims (its lease, a token, posted_starts).
create function pg_temp.claim_only(p_appointment uuid) returns jsonb
language sql as $$
  select pg_temp.as_owner(format($q$update public.sync_retry_queue set next_retry_at = now() + interval '1 day' where state = 'pending';
                                    update public.sync_retry_queue set next_retry_at = now() - interval '1 second',
                                      locked_until = case when locked_by is null then null else now() - interval '1 second' end
                                    where appointment_id = %L$q$, p_appointment));
  select public.claim_sync_jobs('cron-mv', 1, 60)->0;
$$;
create function pg_temp.report_mv(p_appointment uuid, p_outcome text, p_iq jsonb default null) returns jsonb
language sql as $$
  select public.record_sync_result(q.id, q.locked_by, q.lease_token, p_outcome,
    p_pq_appointment_id => case when p_outcome = 'applied' then a.pq_appointment_id end,
    p_error => case when p_outcome = 'failed' then 'PUT /appointments: no answer in time' end,
    p_error_kind => case when p_outcome = 'failed' then 'ambiguous' end,
    p_intakeq_appointment => p_iq, p_intakeq_written => false)
  from public.sync_retry_queue q join public.appointments a on a.id = q.appointment_id where q.appointment_id = p_appointment
$$;

-- A PUT that never lands: the re-read finds IntakeQ where it was, and the same job goes on (no fresh start).
create temp table n as select pg_temp.book('n', tests.slot(120, 15)) as id;
select pg_temp.synced((select id from n), 'iq-n');
select public.reschedule_appointment((select id from n), tests.slot(120, 17), 'patient', 'req-move-n');
select is(pg_temp.claim_only((select id from n))->>'operation', 'move', '(a move owed and claimed)');
select pg_temp.report_mv((select id from n), 'failed');
select is(pg_temp.claim_only((select id from n))->>'needs_reconcile', 'true', '(the next attempt re-reads first)');
create temp table n_before as select (pg_temp.job(id)).retry_count as attempts, (pg_temp.job(id)).window_started_at as since from n;
select pg_temp.report_mv((select id from n), 'applied', pg_temp.iq('iq-n', 'Confirmed', tests.slot(120, 15)));
select results_eq($$select j.state, j.retry_count = b.attempts, j.window_started_at = b.since, j.needs_reconcile, pg_temp.owed(n.id)
                    from n, n_before b, pg_temp.job(n.id) j$$,
  $$values ('pending'::text, true, true, false, 'move'::text)$$,
  'IntakeQ still where it was: the move still owed, the job pending with its attempts and window kept (a write that keeps failing ends)');

-- A PUT whose answer was lost, the patient having moved again since: IntakeQ at the start we sent is ours landing,
-- not staff moving it; the newer move is what is owed.
create temp table o as select pg_temp.book('o', tests.slot(121, 15)) as id;
select pg_temp.synced((select id from o), 'iq-o');
select public.reschedule_appointment((select id from o), tests.slot(121, 17), 'patient', 'req-move-o1');
select pg_temp.claim_only((select id from o));
select pg_temp.report_mv((select id from o), 'failed');
select public.reschedule_appointment((select id from o), tests.slot(121, 19), 'patient', 'req-move-o2');
select is(pg_temp.claim_only((select id from o))->>'needs_reconcile', 'true', '(re-read first)');
select pg_temp.report_mv((select id from o), 'applied', pg_temp.iq('iq-o', 'Confirmed', tests.slot(121, 17)));
select results_eq($$select a.start_time, a.intakeq_start_time, pg_temp.owed(a.id), pg_temp.open_conflicts('iq-o')
                    from pg_temp.appt((select id from o)) a$$,
  $$values (tests.slot(121, 19), tests.slot(121, 17), 'move'::text, 0)$$,
  'ours stays where the patient put it last; IntakeQ''s start is ours landing; the newer move is owed; no conflict');

-- 8. A nudge that cannot be re-read for hours reaches a person, once --------------------------------------------------
select public.note_intakeq_webhook('aaaaaaaaaaaaaaaaaaaaaa08', 'AppointmentCanceled');
create function pg_temp.fail_reread() returns jsonb
language sql as $$
  select pg_temp.as_owner($q$update public.intakeq_inbound_events set next_attempt_at = now() - interval '1 second'
                             where pq_appointment_id = 'aaaaaaaaaaaaaaaaaaaaaa08'$q$);
  select public.release_intakeq_event((c->0->>'event_id')::uuid, (c->0->>'lease_token')::uuid, 'GET /appointments/{id}: server error (500)', null)
  from (select public.claim_intakeq_inbound_events('cron-fail', 1, 60) as c) claimed;
$$;
select pg_temp.as_owner($$update public.intakeq_inbound_events set next_attempt_at = now() + interval '1 day'
                          where processed_at is null and pq_appointment_id <> 'aaaaaaaaaaaaaaaaaaaaaa08'$$);
select pg_temp.fail_reread() from generate_series(1, 7);
create function pg_temp.reread_alerts() returns bigint
language sql security definer as $$ select count(*) from public.staff_alerts where kind = 'intakeq_reread_failing' $$;
select is(pg_temp.reread_alerts(), 0::bigint, 'seven failed re-reads: not yet');
select pg_temp.fail_reread() from generate_series(1, 3);
select is(pg_temp.reread_alerts(), 1::bigint, 'the eighth makes one staff alert, and later ones none');

-- 9. What a whole pass of the catch-up does not list is re-read -------------------------------------------------------
-- Ours, synced, and a staff block, both in the window; a third, ours too, that IntakeQ still lists.
create temp table gone as select pg_temp.book('gone', tests.slot(122, 15)) as id;
create temp table kept as select pg_temp.book('kept', tests.slot(122, 17)) as id;
select pg_temp.synced((select id from gone), 'bbbbbbbbbbbbbbbbbbbbbb01');
select pg_temp.synced((select id from kept), 'bbbbbbbbbbbbbbbbbbbbbb02');
select pg_temp.apply('bbbbbbbbbbbbbbbbbbbbbb03', pg_temp.iq('bbbbbbbbbbbbbbbbbbbbbb03', 'Confirmed', tests.slot(123, 15)));
select pg_temp.as_owner($$update public.intakeq_catchup_state set locked_by = null, lease_token = null, locked_until = null,
                           failures = 0, next_page = 1$$);
create temp table pass as select pg_temp.claim_catchup(0) as c;
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('bbbbbbbbbbbbbbbbbbbbbb02', 'Confirmed', tests.slot(122, 17))),
            (select (c->>'lease_token')::uuid from pass))->>'recorded', 'true', '(a page listing only the third)');
-- Time passes: what we hold was written before the pass began; the page was listed after it.
select pg_temp.as_owner($$update public.intakeq_catchup_state set pass_started_at = now() + interval '1 minute';
                          update public.intakeq_catchup_listed set listed_at = now() + interval '2 minutes'$$);
select cmp_ok((public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from pass), true, '{}', null, null, current_date + 200)->>'unlisted')::int,
  '>=', 2, 'the whole window read: what it did not list is nudged (ours and the block below, and this file''s others)');
select is(array(select pq_appointment_id || ' ' || last_event_type from public.intakeq_inbound_events
                where processed_at is null and pq_appointment_id like 'bbbbbbbbbbbbbbbbbbbbbb0%' order by 1),
  array['bbbbbbbbbbbbbbbbbbbbbb01 NotListedByCatchUp', 'bbbbbbbbbbbbbbbbbbbbbb03 NotListedByCatchUp'],
  'each waits to be re-read like a webhook''s nudge; the one listed does not');
create temp table pass2 as select pg_temp.claim_catchup(0) as c;
select is(public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from pass2), true, '{}', 'read the first 100 pages')->>'unlisted',
  '0', 'a pass that did not read its whole window (no last date) nudges nothing');

select * from finish();
rollback;
