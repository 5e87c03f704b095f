-- Two-way with IntakeQ, inbound: what IntakeQ says now is compared with ours and with the base (what IntakeQ had,
-- as we last knew it). Ours cancelled or moved by staff follows; a move onto a taken time is a conflict for staff;
-- our own owed move is not undone; IntakeQ appointments that are not ours are busy blocks the web cannot book
-- over, and follow their moves and cancellations. The inbound outbox's leases (fencing, a webhook after the
-- claim, backoff), the catch-up's lease, and the call budget for re-reads.
-- Time stands still in a transaction (now() does not move): it passes by moving timestamps back.
begin;
select plan(129);

-- Every pending job of other files waits a day; no reservation is left over.
update public.sync_retry_queue set next_retry_at = now() + interval '1 day' where state = 'pending';
delete from public.intakeq_call_reservations;

-- As the owner: the private rules, and writes that stand for what other parts do (a sync recording an id, a
-- patient's reschedule, time passing).
create function pg_temp.apply(p_id text, p_appointment jsonb) returns text
language sql security definer as $$ select private.apply_intakeq_appointment(p_id, p_appointment) $$;
create function pg_temp.as_owner(p_sql text) returns void
language plpgsql security definer as $$ begin execute p_sql; end; $$;
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

-- A time p_days from today at p_hour:p_minute UTC (tests.slot, with minutes).
create function pg_temp.t(p_days integer, p_hour integer, p_minute integer default 0) returns timestamptz
language sql as $$ select tests.slot(p_days, p_hour) + make_interval(mins => p_minute) $$;

-- IntakeQ's appointment as GET /appointments/{id} answers it (Unix ms), with its client (never stored).
create function pg_temp.iq(p_id text, p_status text, p_start timestamptz, p_minutes integer default 60,
                           p_practitioner text default '5f1a00000000000000000001', p_with_end boolean default true)
returns jsonb
language sql as $$
  select jsonb_strip_nulls(jsonb_build_object(
    'Id', p_id, 'Status', p_status, 'ClientName', 'Someone Private', 'ClientEmail', 'someone@example.com',
    'StartDate', (extract(epoch from p_start) * 1000)::bigint,
    'EndDate', case when p_with_end then (extract(epoch from p_start + make_interval(mins => p_minutes)) * 1000)::bigint end,
    'Duration', p_minutes, 'PractitionerId', p_practitioner));
$$;

set local role service_role;

create function pg_temp.book(p_tag text, p_start timestamptz, p_provider text default 'rivera') returns uuid
language sql as $$
  select (public.book_appointment('req-in-' || p_tag, tests.id(p_provider), 'cash-payment', p_start, 'telehealth',
          p_patient => tests.new_patient('in-' || p_tag))->>'appointment_id')::uuid
$$;
create function pg_temp.row(p_appointment uuid) returns public.appointments
language sql as $$ select * from public.appointments where id = p_appointment $$;
create function pg_temp.block(p_pq text) returns public.intakeq_busy_blocks
language sql as $$ select * from public.intakeq_busy_blocks where pq_appointment_id = p_pq $$;

-- The base ----------------------------------------------------------------------------------------------------------
select is((select count(*)::int from information_schema.columns
           where table_schema = 'public' and table_name = 'appointments'
             and column_name in ('intakeq_status', 'intakeq_start_time', 'cancelled_at', 'cancelled_by', 'cancellation_reason')),
  5, 'appointments hold the base (intakeq_status, intakeq_start_time) and how they were cancelled');

-- Ours: staff moves, collisions, our own owed move ----------------------------------------------------------------
create temp table a as select pg_temp.book('a', tests.slot(80, 15)) as id;
create temp table b as select pg_temp.book('b', tests.slot(80, 19)) as id;
select pg_temp.synced((select id from a), 'iq-a');
select pg_temp.synced((select id from b), 'iq-b');
select is(tests.booking_error($$update public.appointments set cancelled_by = 'robot' where id = (select id from a)$$),
  '23514 new row for relation "appointments" violates check constraint "appointments_cancelled_by_check"',
  'cancelled_by is patient, partner, staff or intakeq');

select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', tests.slot(80, 15))), 'unchanged',
  'IntakeQ has it where we have it: unchanged');
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', tests.slot(80, 17))), 'moved',
  'staff moved it in IntakeQ (theirs differs from ours and the base): moved');
select results_eq($$select start_time, end_time, intakeq_start_time, status from public.appointments where id = (select id from a)$$,
  $$values (tests.slot(80, 17), tests.slot(80, 18), tests.slot(80, 17), 'scheduled'::text)$$,
  'ours follows: the new start, the same length, and the base is IntakeQ''s start');
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', tests.slot(80, 17))), 'unchanged',
  'the same re-read again: unchanged, the same state');

select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', pg_temp.t(80, 19, 30))), 'conflict',
  'staff moved it onto a time another appointment of ours holds: a conflict');
select results_eq($$select start_time, intakeq_start_time from public.appointments where id = (select id from a)$$,
  $$values (tests.slot(80, 17), tests.slot(80, 17))$$, 'nothing of ours changed, the base neither');
select results_eq($$select kind, appointment_id, intakeq_start, resolved_at is null from public.intakeq_conflicts where pq_appointment_id = 'iq-a'$$,
  $$values ('move_collides'::text, (select id from a), pg_temp.t(80, 19, 30), true)$$,
  'an open move_collides conflict, with IntakeQ''s start');
select results_eq($$select count(*)::int, bool_and(text like '%iq-a%' and text like '%' || (select id from a) || '%'),
                           bool_and(text not like '%example.com%' and text not like '%Patient in-%' and text not like '%Someone%')
                    from public.staff_alerts where kind = 'intakeq_conflict' and appointment_id = (select id from a)$$,
  $$values (1, true, true)$$, 'one staff alert: the ids and times, no patient data');
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', pg_temp.t(80, 19, 30))), 'conflict',
  'seen again: still a conflict');
select results_eq($$select (select count(*)::int from public.intakeq_conflicts where pq_appointment_id = 'iq-a' and resolved_at is null),
                           (select count(*)::int from public.staff_alerts where kind = 'intakeq_conflict' and appointment_id = (select id from a))$$,
  $$values (1, 1)$$, 'one open conflict, one alert');
select ok((sync_health()->'intakeq_conflicts') @> jsonb_build_array(jsonb_build_object(
            'pq_appointment_id', 'iq-a', 'appointment_id', (select id from a), 'provider_id', tests.id('rivera'),
            'kind', 'move_collides')),
  'sync-health lists the open conflict');
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', tests.slot(80, 17))), 'unchanged',
  'staff moved it back to our time: unchanged');
select is((select resolved_at is not null from public.intakeq_conflicts where pq_appointment_id = 'iq-a'), true,
  'and the conflict is resolved');

-- Our move, owed upstream (a patient's reschedule here): theirs is still the base.
select pg_temp.as_owner(format($$update public.appointments set start_time = %L, end_time = %L where id = %L$$,
  tests.slot(80, 21), tests.slot(80, 22), (select id from a)));
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', tests.slot(80, 17))), 'unchanged',
  'IntakeQ still has the base while our move is owed: unchanged');
select results_eq($$select start_time, intakeq_start_time from public.appointments where id = (select id from a)$$,
  $$values (tests.slot(80, 21), tests.slot(80, 17))$$, 'our move is not undone (still owed)');
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Confirmed', tests.slot(80, 21))), 'unchanged',
  'IntakeQ now has our start: unchanged');
select is((pg_temp.row((select id from a))).intakeq_start_time, tests.slot(80, 21), 'and the base is our start: nothing owed');

-- Ours cancelled upstream ---------------------------------------------------------------------------------------
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Canceled', tests.slot(80, 21))), 'cancelled',
  'staff cancelled it in IntakeQ: cancelled');
select results_eq($$select status, cancelled_by, cancelled_at = now(), intakeq_status from public.appointments where id = (select id from a)$$,
  $$values ('cancelled'::text, 'intakeq'::text, true, 'Canceled'::text)$$, 'ours is cancelled, by intakeq, and the base says Canceled');
select is(pg_temp.apply('iq-a', pg_temp.iq('iq-a', 'Canceled', tests.slot(80, 21))), 'unchanged', 'again: unchanged');
select ok(pg_temp.book('a2', tests.slot(80, 21)) is not null, 'the slot books again on the web');
select is(pg_temp.apply('iq-b', null), 'cancelled', 'gone from IntakeQ (404): cancelled');
select is((pg_temp.row((select id from b))).intakeq_status, 'Canceled', 'gone is taken as Canceled');

create temp table c as select pg_temp.book('c', tests.slot(81, 15)) as id;
select pg_temp.synced((select id from c), 'iq-c');
select is(pg_temp.apply('iq-c', pg_temp.iq('iq-c', 'Declined', tests.slot(81, 15))), 'cancelled', 'Declined counts as cancelled');

-- Ours cancelled here, IntakeQ still active: our cancellation is owed.
create temp table d as select pg_temp.book('d', tests.slot(81, 17)) as id;
select pg_temp.synced((select id from d), 'iq-d');
update public.appointments set status = 'cancelled', cancelled_at = now(), cancelled_by = 'patient' where id = (select id from d);
select is(pg_temp.apply('iq-d', pg_temp.iq('iq-d', 'Confirmed', tests.slot(81, 17))), 'unchanged',
  'cancelled here, active in IntakeQ: unchanged (our cancellation is owed)');
select results_eq($$select status, cancelled_by, intakeq_status from public.appointments where id = (select id from d)$$,
  $$values ('cancelled'::text, 'patient'::text, 'Confirmed'::text)$$, 'ours stays cancelled; the base says Confirmed');

-- A move conflict ends when IntakeQ goes back to the base: our own move is owed again, and its job reopens (by
-- 20261126000600's triggers, whoever writes).
create temp table e as select pg_temp.book('e', tests.slot(82, 15)) as id;
create temp table f as select pg_temp.book('f', tests.slot(82, 19)) as id;
select pg_temp.synced((select id from e), 'iq-e');
select pg_temp.synced((select id from f), 'iq-f');
select pg_temp.as_owner(format($$update public.appointments set start_time = %L, end_time = %L where id = %L$$,
  tests.slot(82, 17), tests.slot(82, 18), (select id from e)));
select is(pg_temp.apply('iq-e', pg_temp.iq('iq-e', 'Confirmed', tests.slot(82, 19))), 'conflict',
  'a staff move onto a taken time while our own move is owed: a conflict');
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-e', 'Confirmed', tests.slot(82, 15))))->>'unchanged', '1',
  'staff moved it back to the base: unchanged');
select results_eq($$select (select resolved_at is not null from public.intakeq_conflicts where pq_appointment_id = 'iq-e'),
                           (select start_time from public.appointments where id = (select id from e)),
                           (select state from public.sync_retry_queue where appointment_id = (select id from e))$$,
  $$values (true, tests.slot(82, 17), 'pending'::text)$$,
  'the conflict is resolved, our start kept, and the job reopened to push our move');

select pg_temp.as_owner(format($$update public.sync_retry_queue set state = 'dead', completed_at = now() where appointment_id = %L$$,
  (select id from e)));
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-e', 'Confirmed', tests.slot(82, 15))))->>'unchanged', '1',
  '(the same re-read again, after the job died)');
select is((select state from public.sync_retry_queue where appointment_id = (select id from e)), 'dead',
  'a re-read that changes nothing reopens nothing: a dead job stays dead until staff requeue it');

-- Not ours: busy blocks -------------------------------------------------------------------------------------------
select is(pg_temp.apply('iq-u', pg_temp.iq('iq-u', 'Confirmed', tests.slot(83, 15), 60, '5f1a0000000000000000ffff')), 'ignored',
  'an appointment of a practitioner we do not know: ignored');
select is(pg_temp.block('iq-u'), null, 'no block for it');
select is(pg_temp.apply('iq-x1', pg_temp.iq('iq-x1', 'Confirmed', tests.slot(83, 15))), 'blocked',
  'staff booked someone in IntakeQ: blocked');
select results_eq($$select provider_id, start_time, end_time, intakeq_status from public.intakeq_busy_blocks where pq_appointment_id = 'iq-x1'$$,
  $$values (tests.id('rivera'), tests.slot(83, 15), tests.slot(83, 16), 'Confirmed'::text)$$,
  'the block: the mapped provider, from StartDate to EndDate');
select is(pg_temp.apply('iq-x1', pg_temp.iq('iq-x1', 'Confirmed', tests.slot(83, 15))), 'unchanged', 'again: unchanged');
set local timezone = 'America/Denver';
select is(pg_temp.apply('iq-x1', pg_temp.iq('iq-x1', 'Confirmed', tests.slot(83, 15))), 'unchanged',
  'IntakeQ''s milliseconds read the same in a session with another time zone (and daylight saving)');
select is(pg_temp.apply('iq-dst', jsonb_build_object('Id', 'iq-dst', 'Status', 'Confirmed', 'StartDate', 1783002600123,
            'Duration', 45, 'PractitionerId', '5f1a00000000000000000002')), 'blocked', '(a summer time, to the millisecond)');
select is((pg_temp.block('iq-dst')).start_time, timestamptz '2026-07-02 14:30:00.123+00', 'read as UTC, to the millisecond');
reset timezone;
select is(pg_temp.apply('iq-x2', pg_temp.iq('iq-x2', 'WaitingConfirmation', tests.slot(83, 18), 30, p_with_end => false)), 'blocked',
  'without EndDate, its Duration');
select is((pg_temp.block('iq-x2')).end_time, tests.slot(83, 18) + interval '30 minutes', 'the block ends after its Duration');
select is(tests.booking_error($$select pg_temp.book('x-web', tests.slot(83, 15))$$), 'PT409 SLOT_TAKEN conflict_check',
  'the web cannot book over a block: SLOT_TAKEN at conflict_check');
select is(tests.booking_error($$select pg_temp.book('x-web2', tests.slot(83, 14) + interval '30 minutes')$$), 'PT409 SLOT_TAKEN conflict_check',
  'nor overlap it');
select ok(pg_temp.book('x-web3', tests.slot(83, 16)) is not null, 'the time after it books');
select ok(pg_temp.book('x-web4', tests.slot(83, 15), 'okafor') is not null, 'another provider books at that time');
select is(tests.booking_error(format($$update public.appointments set start_time = %L, end_time = %L where request_id = 'req-in-x-web3'$$,
                                     pg_temp.t(83, 15, 30), pg_temp.t(83, 16, 30))),
  '23P01 conflicting key value violates exclusion constraint "appointments_no_busy_block_overlap"',
  'whoever writes: moving an appointment into a block violates appointments_no_busy_block_overlap');

select is(pg_temp.apply('iq-x1', pg_temp.iq('iq-x1', 'Confirmed', tests.slot(83, 20))), 'blocked', 'staff moved it: blocked');
select is((pg_temp.block('iq-x1')).start_time, tests.slot(83, 20), 'the block follows the move');
select ok(pg_temp.book('x-web5', tests.slot(83, 15)) is not null, 'and its old time books');
select is(pg_temp.apply('iq-x1', pg_temp.iq('iq-x1', 'Canceled', tests.slot(83, 20))), 'unblocked', 'staff cancelled it: unblocked');
select is(pg_temp.block('iq-x1'), null, 'the block is gone');
select ok(pg_temp.book('x-web6', tests.slot(83, 20)) is not null, 'and its time books');
select is(pg_temp.apply('iq-x1', pg_temp.iq('iq-x1', 'Canceled', tests.slot(83, 20))), 'unchanged', 'again: unchanged');
select is(pg_temp.apply('iq-x2', null), 'unblocked', 'gone from IntakeQ: unblocked');

-- Twice and out of order: the rules compare with what IntakeQ says now, never with what an event said, so two
-- histories that reach the same IntakeQ state end in the same block (and webhooks that arrived out of order are
-- folded into one waiting row, re-read once: see the outbox below).
select pg_temp.apply('iq-o1', pg_temp.iq('iq-o1', 'Confirmed', tests.slot(83, 10)));
select pg_temp.apply('iq-o1', pg_temp.iq('iq-o1', 'Confirmed', tests.slot(83, 11)));
select pg_temp.apply('iq-o2', pg_temp.iq('iq-o2', 'Confirmed', tests.slot(83, 11)));
select pg_temp.apply('iq-o2', pg_temp.iq('iq-o2', 'Confirmed', tests.slot(83, 11)));
select results_eq($$select start_time, end_time from public.intakeq_busy_blocks where pq_appointment_id = 'iq-o1'$$,
                  $$select start_time, end_time from public.intakeq_busy_blocks where pq_appointment_id = 'iq-o2'$$,
  'created then moved, or only the last state twice: the same block');

-- A create of ours still waiting to be recorded: the IntakeQ appointment is probably ours.
create temp table g as select pg_temp.book('g', tests.slot(84, 15)) as id;
select is(pg_temp.apply('iq-g', pg_temp.iq('iq-g', 'Confirmed', tests.slot(84, 15))), 'ignored',
  'same provider and start as our booking not yet recorded: ignored');
select is(pg_temp.block('iq-g'), null, 'no block for it');
select is(pg_temp.apply('iq-g2', pg_temp.iq('iq-g2', 'Confirmed', tests.slot(84, 18))), 'blocked', '(another one: a block)');
update public.appointments set sync_status = 'synced', status = 'scheduled', pq_appointment_id = 'iq-g2' where id = (select id from g);
select is(pg_temp.block('iq-g2'), null, 'an appointment adopting a block''s id deletes the block (it was ours)');

-- A double booking across the two systems.
create temp table h as select pg_temp.book('h', tests.slot(85, 15)) as id;
select pg_temp.synced((select id from h), 'iq-h');
select is(pg_temp.apply('iq-y', pg_temp.iq('iq-y', 'Confirmed', tests.slot(85, 15), 30)), 'conflict',
  'staff booked someone in IntakeQ over one of ours: a conflict');
select results_eq($$select (select count(*)::int from public.intakeq_busy_blocks where pq_appointment_id = 'iq-y'),
                           (select appointment_id from public.intakeq_conflicts where pq_appointment_id = 'iq-y' and kind = 'block_overlaps' and resolved_at is null),
                           (select count(*)::int from public.staff_alerts where kind = 'intakeq_conflict' and appointment_id = (select id from h))$$,
  $$values (1, (select id from h), 1)$$, 'the block is stored, the conflict names ours, staff are alerted');
select is(tests.booking_error(format($$update public.appointments set status = 'scheduled', notes = 'x' where id = %L$$, (select id from h))),
  'no error', 'ours can still be written (the block is a conflict for staff, not a reason to refuse its sync)');
select is(pg_temp.apply('iq-y', pg_temp.iq('iq-y', 'Confirmed', tests.slot(85, 17), 30)), 'blocked', 'staff moved theirs away: blocked');
select is((select resolved_at is not null from public.intakeq_conflicts where pq_appointment_id = 'iq-y'), true, 'and the conflict is resolved');
select is(sync_health()->'busy_blocks', (select to_jsonb(count(*)) from public.intakeq_busy_blocks where end_time > now()),
  'sync-health counts the future blocks');

-- The inbound outbox: leases ---------------------------------------------------------------------------------------
select public.note_intakeq_webhook('iq-e1', 'AppointmentCreated');
select public.note_intakeq_webhook('iq-e2', 'AppointmentCreated');
select pg_temp.as_owner($$update public.intakeq_inbound_events set first_received_at = now() - interval '2 minutes' where pq_appointment_id = 'iq-e1';
                          update public.intakeq_inbound_events set first_received_at = now() - interval '1 minute' where pq_appointment_id = 'iq-e2'$$);
create temp table claim1 as select public.claim_intakeq_inbound_events('cron-1', 1, 60) as c;
select results_eq($$select jsonb_array_length(c), c->0->>'pq_appointment_id', (c->0->>'lease_seconds_left')::int, c->0->>'lease_token' is not null from claim1$$,
  $$values (1, 'iq-e1', 60, true)$$, 'a claim leases the longest waiting event, with a token');
select is(public.claim_intakeq_inbound_events('cron-2', 5, 60)->0->>'pq_appointment_id', 'iq-e2', 'the next claim gets the other one');
select is(public.claim_intakeq_inbound_events('cron-3', 5, 60), '[]', 'both are leased: nothing to claim');
select is(public.apply_intakeq_event((select (c->0->>'event_id')::uuid from claim1), gen_random_uuid(),
            pg_temp.iq('iq-e1', 'Confirmed', tests.slot(86, 15))),
  '{"result": null, "recorded": false, "processed": false}', 'an apply without the current token is refused');
select is(pg_temp.block('iq-e1'), null, 'and applies nothing');
select is(public.apply_intakeq_event((select (c->0->>'event_id')::uuid from claim1), (select (c->0->>'lease_token')::uuid from claim1),
            pg_temp.iq('iq-e1', 'Confirmed', tests.slot(86, 15))),
  '{"result": "blocked", "recorded": true, "processed": true}', 'with it: applied and processed');
select results_eq($$select processed_at is not null, lease_token is null from public.intakeq_inbound_events where pq_appointment_id = 'iq-e1'$$,
  $$values (true, true)$$, 'the event is processed, its lease cleared');
select is(public.apply_intakeq_event((select (c->0->>'event_id')::uuid from claim1), (select (c->0->>'lease_token')::uuid from claim1),
            pg_temp.iq('iq-e1', 'Canceled', tests.slot(86, 15)))->>'recorded',
  'false', 'the same token again is refused (the lease is over)');

-- A lease that ran out and was taken over: the first holder's token is refused.
create temp table e2 as select id, lease_token from public.intakeq_inbound_events where pq_appointment_id = 'iq-e2';
select pg_temp.as_owner($$update public.intakeq_inbound_events set locked_until = now() - interval '1 second' where pq_appointment_id = 'iq-e2'$$);
create temp table claim2 as select public.claim_intakeq_inbound_events('cron-4', 5, 60) as c;
select is((select c->0->>'pq_appointment_id' from claim2), 'iq-e2', 'a lease that ran out is claimed again');
select is(public.apply_intakeq_event((select id from e2), (select lease_token from e2), null)->>'recorded', 'false',
  'its first holder is refused');
select is(public.apply_intakeq_event((select id from e2), (select (c->0->>'lease_token')::uuid from claim2), null),
  '{"result": "unchanged", "recorded": true, "processed": true}', 'its new holder is recorded (gone, nothing held: unchanged)');

-- A webhook arriving after the claim: the re-read may predate the change it announces.
select public.note_intakeq_webhook('iq-e3', 'AppointmentCreated');
create temp table claim3 as select public.claim_intakeq_inbound_events('cron-5', 5, 60) as c;
select pg_temp.as_owner($$update public.intakeq_inbound_events set claimed_at = now() - interval '1 minute' where pq_appointment_id = 'iq-e3'$$);
select is(public.note_intakeq_webhook('iq-e3', 'AppointmentRescheduled')->>'duplicate', 'true', '(a webhook arrives during the re-read)');
select is(public.apply_intakeq_event((select (c->0->>'event_id')::uuid from claim3), (select (c->0->>'lease_token')::uuid from claim3),
            pg_temp.iq('iq-e3', 'Confirmed', tests.slot(86, 17))),
  '{"result": "blocked", "recorded": true, "processed": false}', 'the re-read is applied, but the event is not processed');
select results_eq($$select processed_at is null, lease_token is null, next_attempt_at <= now() from public.intakeq_inbound_events where pq_appointment_id = 'iq-e3'$$,
  $$values (true, true, true)$$, 'it waits, released, due now, to be re-read again');
create temp table claim4 as select public.claim_intakeq_inbound_events('cron-6', 5, 60) as c;
select is(public.apply_intakeq_event((select (c->0->>'event_id')::uuid from claim4), (select (c->0->>'lease_token')::uuid from claim4),
            pg_temp.iq('iq-e3', 'Confirmed', tests.slot(86, 17))),
  '{"result": "unchanged", "recorded": true, "processed": true}', 'the next re-read finds it applied, and the event is processed');

-- A re-read older than what we stored since the claim (a sync job's record, a catch-up) is not applied over it.
create temp table i as select pg_temp.book('i', tests.slot(86, 19)) as id;
select pg_temp.synced((select id from i), 'iq-i');
select public.note_intakeq_webhook('iq-i', 'AppointmentRescheduled');
create temp table claim5 as select public.claim_intakeq_inbound_events('cron-7', 5, 60) as c;
select pg_temp.as_owner($$update public.intakeq_inbound_events set claimed_at = now() - interval '1 minute' where pq_appointment_id = 'iq-i'$$);
select is(public.apply_intakeq_event((select (c->0->>'event_id')::uuid from claim5), (select (c->0->>'lease_token')::uuid from claim5),
            pg_temp.iq('iq-i', 'Confirmed', tests.slot(86, 21))),
  '{"result": null, "recorded": true, "processed": false}', 'ours was written after the claim: not applied, re-read again');
select is((pg_temp.row((select id from i))).start_time, tests.slot(86, 19), 'ours is unchanged');

-- Release with backoff -------------------------------------------------------------------------------------------
select pg_temp.as_owner($$update public.intakeq_inbound_events set processed_at = now(), locked_by = null, lease_token = null,
                            locked_until = null, claimed_at = null where processed_at is null$$);
select public.note_intakeq_webhook('iq-r', 'AppointmentCanceled');
create function pg_temp.claim_r() returns uuid
language sql as $$ select (public.claim_intakeq_inbound_events('cron-8', 5, 60)->0->>'lease_token')::uuid $$;
create function pg_temp.release_r(p_token uuid, p_retry_after integer default null) returns jsonb
language sql as $$
  select public.release_intakeq_event(e.id, p_token, 'IntakeQ answered 503', p_retry_after)
  from public.intakeq_inbound_events e where e.pq_appointment_id = 'iq-r' and e.processed_at is null
$$;
create function pg_temp.make_r_due() returns void
language sql security definer as $$
  update public.intakeq_inbound_events set next_attempt_at = now() where pq_appointment_id = 'iq-r' and processed_at is null
$$;
create temp table r_state as select pg_temp.release_r(pg_temp.claim_r()) as released;
select is((select released->>'recorded' from r_state) || ' ' || (select released->>'attempts' from r_state), 'true 1',
  'a failed re-read is released: one attempt');
select results_eq($$select next_attempt_at - now(), last_error, lease_token is null, processed_at is null
                    from public.intakeq_inbound_events where pq_appointment_id = 'iq-r'$$,
  $$values (interval '1 minute', 'IntakeQ answered 503'::text, true, true)$$,
  'due again in a minute, the error kept, the lease cleared, still waiting');
select is(public.claim_intakeq_inbound_events('cron-9', 5, 60), '[]', 'not claimed before then');
select pg_temp.make_r_due();
select pg_temp.release_r(pg_temp.claim_r());
select is((select next_attempt_at - now() from public.intakeq_inbound_events where pq_appointment_id = 'iq-r'), interval '2 minutes',
  'the second failure waits two minutes');
select pg_temp.as_owner($$update public.intakeq_inbound_events set attempts = 9, next_attempt_at = now() where pq_appointment_id = 'iq-r'$$);
select pg_temp.release_r(pg_temp.claim_r());
select is((select next_attempt_at - now() from public.intakeq_inbound_events where pq_appointment_id = 'iq-r'), interval '30 minutes',
  'at most thirty minutes');
select pg_temp.make_r_due();
select pg_temp.release_r(pg_temp.claim_r(), 45);
select is((select next_attempt_at - now() from public.intakeq_inbound_events where pq_appointment_id = 'iq-r'), interval '45 seconds',
  'IntakeQ''s Retry-After, when given');
select is(pg_temp.release_r(gen_random_uuid())->>'recorded', 'false', 'a release without the current token is refused');
select is((select attempts from public.intakeq_inbound_events where pq_appointment_id = 'iq-r'), 11, 'and counts nothing');
select is((sync_health()->'intakeq_inbound') - 'oldest_waiting_seconds'::text, '{"waiting": 1, "failing": 1}',
  'sync-health: the events waiting, and those failing');
select is(tests.booking_error($$select public.release_intakeq_event(gen_random_uuid(), gen_random_uuid(), 'x', 0)$$),
  'PT400 INVALID_REQUEST intakeq_inbound', 'a Retry-After of 0 is refused');

-- The catch-up's pages --------------------------------------------------------------------------------------------
select is(public.apply_intakeq_appointments(jsonb_build_array(
            pg_temp.iq('iq-p1', 'Confirmed', pg_temp.t(87, 15)),
            pg_temp.iq('iq-p2', 'Confirmed', pg_temp.t(87, 17), 60, '5f1a0000000000000000ffff'),
            jsonb_build_object('Status', 'Confirmed'))),
  '{"moved": 0, "blocked": 1, "ignored": 2, "skipped": 0, "conflict": 0, "recorded": true, "cancelled": 0, "unblocked": 0, "unchanged": 0, "reinstated": 0}',
  'a page: each appointment under its own Id (one without an Id is ignored)');
select is(public.apply_intakeq_appointments(jsonb_build_array(
            pg_temp.iq('iq-p1', 'Confirmed', pg_temp.t(87, 15)),
            pg_temp.iq('iq-p2', 'Confirmed', pg_temp.t(87, 17), 60, '5f1a0000000000000000ffff'),
            jsonb_build_object('Status', 'Confirmed'))),
  '{"moved": 0, "blocked": 0, "ignored": 2, "skipped": 0, "conflict": 0, "recorded": true, "cancelled": 0, "unblocked": 0, "unchanged": 1, "reinstated": 0}',
  'the same page again: nothing changes');
select is(tests.booking_error($$select public.apply_intakeq_appointments('{}')$$), 'PT400 INVALID_REQUEST intakeq_catchup',
  'a page is an array');
select is(public.apply_intakeq_appointments(jsonb_build_array(jsonb_build_object('Id', 'iq-o1', 'Status', 'Canceled')))->>'unblocked',
  '1', 'an element with only an Id and a Status Canceled: its block goes');

-- The catch-up's lease ---------------------------------------------------------------------------------------------
create temp table cu as select public.claim_intakeq_catchup('cron-1', 360, 120) as c;
select results_eq($$select c->>'due', c->>'lease_token' is not null, (c->>'lease_seconds_left')::int from cu$$,
  $$values ('true', true, 120)$$, 'never completed: due, leased');
select is(public.claim_intakeq_catchup('cron-2', 0, 120), '{"due": false, "lease_token": null, "lease_seconds_left": null, "next_page": null}',
  'leased: not due for anyone else, even every run');
select pg_temp.as_owner($$update public.intakeq_catchup_state set last_started_at = now() - interval '1 minute'$$);
select is(public.apply_intakeq_appointments(jsonb_build_array(pg_temp.iq('iq-p1', 'Canceled', pg_temp.t(87, 15))))->>'skipped', '1',
  'while it runs, an appointment written after it began is skipped (the page may be older than that write)');
select is((pg_temp.block('iq-p1')).start_time, pg_temp.t(87, 15), 'and left as it was');
select is(public.finish_intakeq_catchup(gen_random_uuid(), true, '{}', null)->>'recorded', 'false',
  'a finish without the current token is refused');
select pg_temp.as_owner(format($$insert into public.intakeq_busy_blocks (pq_appointment_id, provider_id, start_time, end_time)
                                 values ('iq-old', %L, now() - interval '5 days', now() - interval '4 days')$$, tests.id('okafor')));
select is(public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from cu), true, '{"blocked": 1}', null)->>'recorded', 'true',
  'its holder finishes it');
select results_eq($$select last_completed_at = now(), last_counts, lease_token is null, last_error is null from public.intakeq_catchup_state$$,
  $$values (true, '{"blocked": 1}'::jsonb, true, true)$$, 'completed now, its counts kept, the lease cleared');
select is(pg_temp.block('iq-old'), null, 'a completed catch-up forgets blocks that ended over three days ago');
select is(public.claim_intakeq_catchup('cron-1', 360, 120)->>'due', 'false', 'completed just now: not due every 360 minutes');
create temp table cu2 as select public.claim_intakeq_catchup('cron-1', 0, 120) as c;
select is((select c->>'due' from cu2), 'true', 'every 0: due on every run');
select public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from cu2), false, null, 'IntakeQ answered 500 on page 2');
select is(sync_health()->'intakeq_catchup', jsonb_build_object('last_completed_at', sync_health()->'intakeq_catchup'->'last_completed_at',
                                                               'last_error', 'IntakeQ answered 500 on page 2'),
  'sync-health shows when it last completed and the last error');
select pg_temp.as_owner($$update public.intakeq_catchup_state set last_completed_at = now() - interval '7 hours'$$);
select is(public.claim_intakeq_catchup('cron-1', 360, 120)->>'due', 'false', 'a failed run is not retried at once');
select pg_temp.as_owner($$update public.intakeq_catchup_state set last_started_at = now() - interval '61 seconds'$$);
create temp table cu3 as select public.claim_intakeq_catchup('cron-1', 360, 120) as c;
select is((select c->>'due' from cu3), 'true', 'but a minute later (the backoff after one failure), and 360 minutes after the last completion');
select public.finish_intakeq_catchup((select (c->>'lease_token')::uuid from cu3), true, null, null);

-- IntakeQ's call budget for re-reads and catch-up pages ----------------------------------------------------------
create function pg_temp.clean_budget() returns void
language sql security definer as $$
  update public.sync_retry_queue set next_retry_at = now() + interval '1 day' where state = 'pending';
  delete from public.intakeq_call_reservations;
  update public.sync_queue_state set rate_limited_until = null, paused_at = null, paused_reason = null;
$$;
create function pg_temp.reserve(p_token uuid, p_calls integer, p_per_minute integer default 3) returns jsonb
language sql as $$ select public.reserve_intakeq_budget('reread', p_token, p_calls, 60, p_per_minute, 500, 60000) $$;
create temp table tok as select gen_random_uuid() as t1, gen_random_uuid() as t2, gen_random_uuid() as t3,
  gen_random_uuid() as t4, gen_random_uuid() as t5;
select pg_temp.clean_budget();
select is(pg_temp.reserve((select t1 from tok), 1), '{"reserved": true, "calls": 1, "wait_ms": null}', 'a re-read reserves its call');
select results_eq($$select job_id, holder, calls, held_until = now() + interval '60 seconds' from public.intakeq_call_reservations
                    where lease_token = (select t1 from tok)$$,
  $$values (null::uuid, 'reread'::text, 1, true)$$, 'under its token, no job, held for the time asked');
select is(pg_temp.reserve((select t1 from tok), 2), '{"reserved": true, "calls": 2, "wait_ms": null}', 'two more under the same token');
select is((select calls from public.intakeq_call_reservations where lease_token = (select t1 from tok)), 3, 'added to its reservation');
select is(pg_temp.reserve((select t2 from tok), 1), '{"reserved": false, "calls": 0, "wait_ms": 120000}',
  'past the minute''s limit: refused, with how long until it fits');
select public.report_intakeq_calls((select t1 from tok), 1, null);
select results_eq($$select calls, held_until = now(), reported_at is not null from public.intakeq_call_reservations where lease_token = (select t1 from tok)$$,
  $$values (1, true, true)$$, 'a report: the calls made, counted from now');
select is(pg_temp.reserve((select t2 from tok), 1), '{"reserved": true, "calls": 1, "wait_ms": null}', 'which frees the rest');
select is(pg_temp.reserve((select t1 from tok), 1)->>'reserved', 'true', 'a token reserves again after its report');
select is((select sum(calls)::int from public.intakeq_call_reservations), 3, 'and its reported call still counts, beside the new one');
select is(tests.booking_error($$select public.reserve_intakeq_budget('reread', gen_random_uuid(), 4, 60, 3, 500, 60000)$$),
  'PT400 INVALID_REQUEST intakeq_budget', 'more calls than a minute allows are refused as a request');

-- A booking waiting for the cron goes first.
select pg_temp.clean_budget();
create temp table j as select pg_temp.book('j', pg_temp.t(88, 15)) as id;
select pg_temp.as_owner(format($$update public.sync_retry_queue set locked_by = null, locked_until = null,
                                 next_retry_at = now() - interval '1 second' where appointment_id = %L$$, (select id from j)));
select is(pg_temp.reserve((select t3 from tok), 2, 5), '{"reserved": false, "calls": 0, "wait_ms": null}',
  'a due booking needs 4 calls of 5 a minute: 2 for a re-read would not leave them');
select is(pg_temp.reserve((select t3 from tok), 1, 5), '{"reserved": true, "calls": 1, "wait_ms": null}', '1 leaves them');
select ok((pg_temp.reserve((select t4 from tok), 1, 5)->>'wait_ms')::int > 0, 'one more would not: refused until it would');

-- A 429 stops every caller.
select public.report_intakeq_calls((select t3 from tok), 1, 30);
select is(pg_temp.reserve((select t5 from tok), 1, 100), '{"reserved": false, "calls": 0, "wait_ms": 30000}',
  'after a 429 with Retry-After 30, no re-read for 30 s, though the calls would fit');
select ok((select rate_limited_until = now() + interval '30 seconds' from public.sync_queue_state), 'the pause is everyone''s');
select public.report_intakeq_calls((select t5 from tok), 2, null);
select is((select calls from public.intakeq_call_reservations where lease_token = (select t5 from tok) and reported_at is not null), 2,
  'calls reported without a reservation count too');

-- Access and data ------------------------------------------------------------------------------------------------
select is(tests.booking_error($$select private.apply_intakeq_appointment('x', null)$$), '42501 permission denied for schema private',
  'the rules are not callable by the worker''s role, only through the API');
select is(array(select table_name || '.' || column_name from information_schema.columns
                where table_schema = 'public' and table_name in ('intakeq_busy_blocks', 'intakeq_conflicts', 'intakeq_catchup_state')
                  and column_name ~* 'name|email|phone|birth|payload|client'),
  '{}'::text[], 'no column for patient data in the new tables');

select * from finish();
rollback;
