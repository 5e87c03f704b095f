-- Honest bookings (20261126000200_honest_bookings.sql): no data oracle (a duplicate only for the full identity, a
-- form never attaching to a patient who knows more), trusted callers' details that must not contradict, NFC
-- identity, one patient never in two places at once, starts the practice offers, and what a request booked.
-- (booking_by_request waiting on another transaction needs two connections: tests/db/main.rs.)
begin;
select plan(78);
set local role service_role;

-- "<SQLSTATE> <code> <step>: <detail>", or 'no error'.
create function pg_temp.answer(p_sql text) returns text
language plpgsql as $$
declare v_state text; v_message text; v_hint text; v_detail text;
begin
  execute p_sql;
  return 'no error';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint,
                          v_detail = pg_exception_detail;
  return concat_ws(' ', v_state, v_message, nullif(v_hint, '')) || ': ' || coalesce(v_detail, '');
end;
$$;

-- A cash booking with rivera (the global 60-minute intake) at p_start, for the form p_patient.
create function pg_temp.book(p_request_id text, p_start timestamptz, p_patient jsonb,
                             p_provider uuid default tests.id('rivera')) returns jsonb
language sql as $$
  select public.book_appointment(p_request_id, p_provider, 'cash-payment', p_start, 'telehealth', p_patient => p_patient);
$$;
create function pg_temp.book_sql(p_request_id text, p_start timestamptz, p_patient jsonb,
                                 p_provider uuid default tests.id('rivera')) returns text
language sql as $$
  select format('select pg_temp.book(%L, %L::timestamptz, %L::jsonb, %L::uuid)', p_request_id, p_start, p_patient, p_provider);
$$;

-- Avery knows their date of birth; Blake's row has none.
create temp table avery as
select pg_temp.book('req-avery', tests.slot(20, 10),
  '{"first_name": "Avery", "last_name": "Stone", "email": "avery.stone@example.com", "date_of_birth": "1985-05-06"}') as r;
create temp table blake as
select pg_temp.book('req-blake', tests.slot(21, 10),
  '{"first_name": "Blake", "last_name": "Moss", "email": "blake.moss@example.com"}') as r;

-- No data oracle ------------------------------------------------------------------------------------------------
select tests.remember_counts();
select is(pg_temp.answer(pg_temp.book_sql('req-probe-1', tests.slot(20, 10),
            '{"first_name": "Avery", "last_name": "Stone", "email": "avery.stone@example.com"}')),
  'PT409 SLOT_TAKEN conflict_check: the provider has another appointment overlapping this time',
  'the oracle probe: name and email without a date of birth, on the slot Avery holds, is a taken slot');
select is(pg_temp.answer(pg_temp.book_sql('req-probe-2', tests.slot(20, 10), tests.new_patient('stranger'))),
  'PT409 SLOT_TAKEN conflict_check: the provider has another appointment overlapping this time',
  'exactly what a stranger is told (no ids in the detail)');
select is(pg_temp.answer(pg_temp.book_sql('req-probe-3', tests.slot(20, 10),
            '{"first_name": "Avery", "last_name": "Stone", "email": "avery.stone@example.com", "date_of_birth": "1985-05-07"}')),
  'PT409 SLOT_TAKEN conflict_check: the provider has another appointment overlapping this time',
  'another date of birth: a taken slot too');
select is(pg_temp.answer(pg_temp.book_sql('req-probe-4', tests.slot(21, 10),
            '{"first_name": "Blake", "last_name": "Moss", "email": "blake.moss@example.com"}')),
  'PT409 SLOT_TAKEN conflict_check: the provider has another appointment overlapping this time',
  'a patient row without a date of birth: asking again for its slot without one is a taken slot (nothing proves who asks)');
select is(pg_temp.answer(pg_temp.book_sql('req-probe-5', tests.slot(21, 10),
            '{"first_name": "Blake", "last_name": "Moss", "email": "blake.moss@example.com", "date_of_birth": "1979-09-09"}')),
  'PT409 SLOT_TAKEN conflict_check: the provider has another appointment overlapping this time',
  'nor with a date of birth the row does not know');
select is(tests.new_rows(), '{}', 'the probes wrote nothing');

create temp table avery_again as
select pg_temp.book('req-avery-again', tests.slot(20, 10),
  '{"first_name": " avery", "last_name": "STONE", "email": "Avery.Stone@example.com", "date_of_birth": "1985-05-06"}') as r;
select is((select (r->>'is_duplicate')::boolean from avery_again), true,
  'the full identity (email, names, date of birth, all known and equal) is answered as a duplicate');
select is((select r->>'appointment_id' from avery_again), (select r->>'appointment_id' from avery),
  'with the existing appointment');
select is(tests.new_rows(), '{}', 'a duplicate writes nothing');

-- Which patient a form attaches to -------------------------------------------------------------------------------
create temp table avery_no_dob as
select pg_temp.book('req-avery-no-dob', tests.slot(22, 10),
  '{"first_name": "Avery", "last_name": "Stone", "email": "avery.stone@example.com"}') as r;
select isnt((select r->'patient'->>'id' from avery_no_dob), (select r->'patient'->>'id' from avery),
  'a form without a date of birth does not attach to a patient who has one');
select is((select (r->>'patient_created')::boolean from avery_no_dob), true, 'it makes a patient of its own');
select is((select r->'patient'->>'date_of_birth' from avery_no_dob), null, 'who knows no more than the form');

create temp table blake_dob as
select pg_temp.book('req-blake-dob', tests.slot(22, 12),
  '{"first_name": "Blake", "last_name": "Moss", "email": "blake.moss@example.com", "date_of_birth": "1979-09-09"}') as r;
select is((select r->'patient'->>'id' from blake_dob), (select r->'patient'->>'id' from blake),
  'a form with a date of birth attaches to a row without one (the request knows more than the record)');
select is((select r->'patient'->>'date_of_birth' from blake_dob), null, 'and the row is not changed');

select is(
  pg_temp.book('req-avery-exact', tests.slot(23, 10),
    '{"first_name": "Avery", "last_name": "Stone", "email": "avery.stone@example.com", "date_of_birth": "1985-05-06"}')->'patient'->>'id',
  (select r->'patient'->>'id' from avery),
  'with rows with and without it, a date of birth finds its exact match');

-- Trusted callers: p_patient_id with details that must not contradict ----------------------------------------------
create function pg_temp.book_jordan_sql(p_request_id text, p_patient jsonb, p_days integer default 24) returns text
language sql as $$
  select format('select public.book_appointment(%L, tests.id(''okafor''), ''cash-payment'', tests.slot(%s, 10), ''telehealth'',
                   p_patient_id => tests.id(''jordan''), p_patient => %L::jsonb)', p_request_id, p_days, p_patient);
$$;
select tests.remember_counts();
select is(pg_temp.answer(pg_temp.book_jordan_sql('req-trusted-1',
            '{"first_name": "Jordan", "last_name": "Demo", "email": "someone.else@example.com"}')),
  'PT422 PATIENT_MISMATCH patient_resolution: p_patient contradicts the patient of p_patient_id in: email',
  'p_patient_id with another email: PATIENT_MISMATCH, naming the field, never the values');
select is(pg_temp.answer(pg_temp.book_jordan_sql('req-trusted-2',
            '{"first_name": "Jo", "last_name": "Demos", "email": "jordan.demo@example.com", "date_of_birth": "1990-04-13"}')),
  'PT422 PATIENT_MISMATCH patient_resolution: p_patient contradicts the patient of p_patient_id in: first_name, last_name, date_of_birth',
  'names and date of birth are compared too');
select is(pg_temp.answer(pg_temp.book_jordan_sql('req-trusted-3', '"jordan"')),
  'PT400 INVALID_REQUEST request_validation: p_patient must be an object', 'p_patient must still be an object');
select is(tests.new_rows(), '{}', 'a contradiction writes nothing');

create temp table trusted as
select public.book_appointment('req-trusted-ok', tests.id('okafor'), 'cash-payment', tests.slot(24, 10), 'telehealth',
  p_patient_id => tests.id('jordan'),
  p_patient => '{"first_name": " JORDAN", "last_name": "demo", "email": "Jordan.Demo@Example.com", "date_of_birth": "1990-04-12"}') as r;
select is((select (r->'patient'->>'id')::uuid from trusted), tests.id('jordan'),
  'details that agree (case and spacing aside) book for the given patient');
select is((select r->'patient'->>'email' from trusted), 'jordan.demo@example.com', 'the patient row is not changed');
select is(tests.new_rows(), '{"appointments": 1, "sync_retry_queue": 1}', 'no patient is created');
select is(
  (public.book_appointment('req-trusted-partial', tests.id('okafor'), 'cash-payment', tests.slot(25, 10), 'telehealth',
     p_patient_id => tests.id('jordan'), p_patient => '{"email": "jordan.demo@example.com"}')->'patient'->>'id')::uuid,
  tests.id('jordan'), 'a trusted caller may confirm only some details');
select is(
  (public.book_appointment('req-trusted-dup', tests.id('okafor'), 'cash-payment', tests.slot(24, 10), 'telehealth',
     p_patient_id => tests.id('jordan'))->>'is_duplicate')::boolean,
  true, 'a trusted caller''s same slot again is answered as a duplicate, as before');

-- NFC: one identity however the characters were typed ------------------------------------------------------------
reset role;
select is(private.name_key('Jose' || U&'\0301'), private.name_key('Jos' || U&'\00E9'),
  'name_key: "José" with a combining accent (NFD) and as one character (NFC) are one key');
select is(private.name_key(' JOSE' || U&'\0301  Ma  ria '), 'jos' || U&'\00E9' || ' ma ria',
  'name_key still folds case and collapses whitespace');
select is(private.email_key('Jose' || U&'\0301' || '@Example.com'), 'jos' || U&'\00E9' || '@example.com',
  'email_key: NFC and lower case');
select is(
  (select array_agg(provolatile order by proname) from pg_proc
   where oid in ('private.name_key(text)'::regprocedure, 'private.email_key(text)'::regprocedure)),
  array['i', 'i']::"char"[], 'both are immutable (they compute generated columns)');
set local role service_role;

create temp table jose_nfd as
select pg_temp.book('req-jose-nfd', tests.slot(26, 10), jsonb_build_object(
  'first_name', 'Jose' || U&'\0301', 'last_name', 'Nu' || U&'n\0303' || 'ez',
  'email', 'jose' || U&'\0301' || '@example.com', 'date_of_birth', '1970-03-04')) as r;
create temp table jose_nfc as
select pg_temp.book('req-jose-nfc', tests.slot(26, 12), jsonb_build_object(
  'first_name', 'Jos' || U&'\00E9', 'last_name', 'Nu' || U&'\00F1' || 'ez',
  'email', 'jos' || U&'\00E9' || '@example.com', 'date_of_birth', '1970-03-04')) as r;
select is((select r->'patient'->>'id' from jose_nfc), (select r->'patient'->>'id' from jose_nfd),
  'José typed in NFD, then in NFC: one patient');
select is((select (r->>'patient_created')::boolean from jose_nfc), false, 'the second booking creates none');
select is(
  (select count(*)::int from public.patients where email_key = 'jos' || U&'\00E9' || '@example.com'), 1,
  'one patient row');
select is(
  (select (r->>'is_duplicate')::boolean from (select pg_temp.book('req-jose-dup', tests.slot(26, 10), jsonb_build_object(
     'first_name', 'JOS' || U&'\00C9', 'last_name', 'NU' || U&'\00D1' || 'EZ',
     'email', 'jos' || U&'\00E9' || '@example.com', 'date_of_birth', '1970-03-04')) as r) d),
  true, 'and the same slot in the other form is the same patient''s duplicate');
select throws_ok(
  $$insert into public.patients (first_name, last_name, email, date_of_birth, created_by_request_id)
    values ('Jos' || U&'\00E9', 'Nu' || U&'\00F1' || 'ez', 'jose' || U&'\0301' || '@example.com', '1970-03-04', 'req-direct')$$,
  '23505', null, 'the identity index refuses the other form too, whoever writes');

-- One patient, one place at a time ---------------------------------------------------------------------------------
create temp table casey as
select pg_temp.book('req-casey', tests.slot(27, 10),
  '{"first_name": "Casey", "last_name": "Park", "email": "casey.park@example.com", "date_of_birth": "1992-02-02"}') as r;
create function pg_temp.casey_sql(p_request_id text, p_start timestamptz, p_provider uuid) returns text
language sql as $$
  select pg_temp.book_sql(p_request_id, p_start,
    '{"first_name": "Casey", "last_name": "Park", "email": "casey.park@example.com", "date_of_birth": "1992-02-02"}', p_provider);
$$;
select tests.remember_counts();
select is(pg_temp.answer(pg_temp.casey_sql('req-casey-2', tests.slot(27, 10), tests.id('okafor'))),
  'PT409 PATIENT_SLOT_TAKEN conflict_check: the patient has another appointment overlapping this time',
  'the same patient with another provider at the same time');
select is(pg_temp.answer(pg_temp.casey_sql('req-casey-3', tests.slot(27, 10) + interval '30 minutes', tests.id('okafor'))),
  'PT409 PATIENT_SLOT_TAKEN conflict_check: the patient has another appointment overlapping this time',
  'or at an overlapping time');
select is(pg_temp.answer(pg_temp.casey_sql('req-casey-4', tests.slot(27, 10) + interval '30 minutes', tests.id('rivera'))),
  'PT409 PATIENT_SLOT_TAKEN conflict_check: the patient has another appointment overlapping this time',
  'or with the same provider at another overlapping start');
select is(pg_temp.answer(format(
    $f$select public.book_appointment('req-jordan-twice', tests.id('lindqvist'), 'cash-payment', %L::timestamptz,
         'telehealth', p_patient_id => tests.id('jordan'))$f$, tests.slot(24, 10) + interval '15 minutes')),
  'PT409 PATIENT_SLOT_TAKEN conflict_check: the patient has another appointment overlapping this time',
  'a trusted caller''s patient too');
select is(tests.new_rows(), '{}', 'refused overlaps write nothing');
select is(pg_temp.answer(pg_temp.casey_sql('req-casey-5', tests.slot(27, 11), tests.id('okafor'))), 'no error',
  'the next hour, right after, is free');
reset role;
update public.appointments set status = 'cancelled' where request_id = 'req-casey';
set local role service_role;
select is(pg_temp.answer(pg_temp.casey_sql('req-casey-6', tests.slot(27, 10), tests.id('okafor'))), 'no error',
  'a cancelled appointment does not count');
reset role;
select throws_ok(
  $$insert into public.appointments (patient_id, provider_id, service_instance_id, start_time, end_time, location_type,
      patient_info, insurance_info, request_id)
    values (tests.id('jordan'), tests.id('rivera'), tests.id('global_intake'), tests.slot(24, 10) + interval '59 minutes',
      tests.slot(24, 12), 'telehealth', '{}', '{}', 'req-direct')$$,
  '23P01', null, 'the table refuses a patient''s overlapping appointments, whoever writes');
select is(
  (select conname::text from pg_constraint where conrelid = 'public.appointments'::regclass and contype = 'x'
   and pg_get_constraintdef(oid) like '%patient_id WITH =%'),
  'appointments_no_patient_overlap', 'by the constraint the booking tells apart by name');
-- When an overlapping booking won meanwhile, the violated constraint says which answer.
create temp table casey_now as
select (select id from public.appointments where request_id = 'req-casey-6') as appointment_id,
       (select (r->'patient'->>'id')::uuid from casey) as patient_id;
select is(pg_temp.answer(format($f$select private.settle_slot_conflict(%L, tests.id('rivera'), %L, true,
            'appointments_no_patient_overlap')$f$, (select patient_id from casey_now), tests.slot(27, 10))),
  'PT409 PATIENT_SLOT_TAKEN conflict_check: the patient has another appointment overlapping this time',
  'settling a violation of the patient''s constraint: PATIENT_SLOT_TAKEN');
select is(private.settle_slot_conflict((select patient_id from casey_now), tests.id('okafor'), tests.slot(27, 10), true,
            'appointments_no_patient_overlap'),
  (select appointment_id from casey_now), 'the same slot of an identified patient: the duplicate, whichever constraint');
select is(pg_temp.answer(format($f$select private.settle_slot_conflict(%L, tests.id('okafor'), %L, false,
            'appointments_no_provider_overlap')$f$, (select patient_id from casey_now), tests.slot(27, 10))),
  'PT409 SLOT_TAKEN conflict_check: the provider has another appointment overlapping this time',
  'the same slot of a patient not identified: a taken slot');
set local role service_role;

-- Starts the practice offers ---------------------------------------------------------------------------------------
-- The first start on a p_minutes grid at least a minute from now: ahead, on the grid, inside the default notice.
create function pg_temp.soon(p_minutes integer) returns timestamptz
language sql as $$
  select to_timestamp(ceil(extract(epoch from now() + interval '1 minute') / (60 * p_minutes)) * 60 * p_minutes);
$$;
select tests.remember_counts();
select is(pg_temp.answer(pg_temp.book_sql('req-grid-1', tests.slot(28, 10) + interval '7 minutes', tests.new_patient('grid-1'))),
  'PT422 SLOT_NOT_OFFERED conflict_check: the start is not on the practice''s 5-minute grid', 'minute 7 is off the grid');
select is(pg_temp.answer(pg_temp.book_sql('req-grid-2', tests.slot(28, 15) + interval '13 seconds', tests.new_patient('grid-2'))),
  'PT422 SLOT_NOT_OFFERED conflict_check: the start is not on the practice''s 5-minute grid', 'so is 15:00:13');
select is(pg_temp.answer(pg_temp.book_sql('req-grid-3', tests.slot(28, 15) + interval '0.25 seconds', tests.new_patient('grid-3'))),
  'PT422 SLOT_NOT_OFFERED conflict_check: the start is not on the practice''s 5-minute grid', 'and a quarter of a second past');
select is(pg_temp.answer(pg_temp.book_sql('req-notice', pg_temp.soon(5), tests.new_patient('notice'))),
  'PT422 SLOT_NOT_OFFERED conflict_check: the start is less than 60 minutes ahead', 'a start inside the notice window');
select is(pg_temp.answer(pg_temp.book_sql('req-past', now() - interval '1 minute 7 seconds', tests.new_patient('past'))),
  'PT422 SLOT_IN_PAST conflict_check: the start is not in the future', 'a start in the past is still SLOT_IN_PAST');
select is(tests.new_rows(), '{}', 'starts not offered write nothing');
select is(pg_temp.answer(pg_temp.book_sql('req-grid-ok', tests.slot(28, 10) + interval '35 minutes', tests.new_patient('grid-ok'))),
  'no error', 'minute 35 is on the 5-minute grid');
select is(
  (select array[slot_granularity_minutes, min_booking_notice_minutes] from public.practice_settings),
  array[5, 60], 'the defaults: a 5-minute grid, 60 minutes'' notice');

reset role;
update public.practice_settings set slot_granularity_minutes = 15, min_booking_notice_minutes = 0;
set local role service_role;
select is(pg_temp.answer(pg_temp.book_sql('req-set-1', tests.slot(29, 10) + interval '5 minutes', tests.new_patient('set-1'))),
  'PT422 SLOT_NOT_OFFERED conflict_check: the start is not on the practice''s 15-minute grid',
  'the practice''s grid takes effect');
select is(pg_temp.answer(pg_temp.book_sql('req-set-2', tests.slot(29, 10) + interval '45 minutes', tests.new_patient('set-2'))),
  'no error', 'a start on it books');
select is(pg_temp.answer(pg_temp.book_sql('req-set-3', pg_temp.soon(15), tests.new_patient('set-3'))),
  'no error', 'no notice: a start minutes ahead books');
reset role;
update public.practice_settings set min_booking_notice_minutes = 2880;
set local role service_role;
select is(pg_temp.answer(pg_temp.book_sql('req-set-4', tests.slot(1, 23), tests.new_patient('set-4'))),
  'PT422 SLOT_NOT_OFFERED conflict_check: the start is less than 2880 minutes ahead', 'two days'' notice takes effect');
reset role;
select throws_ok($$update public.practice_settings set slot_granularity_minutes = 7$$, '23514', null,
  'a grid must divide an hour');
select throws_ok($$update public.practice_settings set slot_granularity_minutes = 0$$, '23514', null, 'and be at least a minute');
select throws_ok($$update public.practice_settings set min_booking_notice_minutes = -1$$, '23514', null,
  'notice is never negative');
update public.practice_settings set slot_granularity_minutes = 5, min_booking_notice_minutes = 60;
set local role service_role;

-- What a request booked -----------------------------------------------------------------------------------------------
select is(public.booking_by_request('req-avery'),
  (select r from avery), 'booking_by_request answers a booking exactly as book_appointment did');
select is(public.booking_by_request('req-blake-dob', 0)->>'patient_created', 'false',
  'patient_created: only when that request made the patient');
select is(public.booking_by_request('req-blake-dob')->>'appointment_id',
  (select r->>'appointment_id' from blake_dob), 'its own appointment');
select is(public.booking_by_request('req-never-seen'), null, 'an unknown request id: null');
select is(public.booking_by_request('req-avery-again'), null, 'a request answered as a duplicate booked nothing of its own: null');
select ok(public.record_booking_failure('req-failed-only', 'conflict_check', 'SLOT_TAKEN', 'slot taken') is not null,
  'a failure is recorded under a request id');
select is(public.booking_by_request('req-failed-only'), null, 'a failure record is not a booking: null');
select is(pg_temp.answer($$select public.booking_by_request('bad id!')$$),
  'PT400 INVALID_REQUEST request_validation: p_request_id must be 1-64 characters of [A-Za-z0-9._-]', 'a malformed request id');
select is(pg_temp.answer($$select public.booking_by_request('req-avery', 60001)$$),
  'PT400 INVALID_REQUEST request_validation: p_wait_ms must be between 0 and 60000', 'a wait beyond a minute');
select is(current_setting('lock_timeout'), '0', 'the wait leaves lock_timeout as it found it');
select ok(exists (select from pg_locks l
                  where l.locktype = 'advisory' and l.pid = pg_backend_pid() and l.mode = 'ExclusiveLock'
                    and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('booking:req-avery', 0)),
  'a booking holds the advisory lock of its request id until its transaction ends');
reset role;
select ok(
  (select p.prosecdef and p.proconfig @> array['search_path=""'] and not has_function_privilege('anon', p.oid, 'execute')
          and not has_function_privilege('authenticated', p.oid, 'execute') and has_function_privilege('service_role', p.oid, 'execute')
   from pg_proc p where p.oid = 'public.booking_by_request(text, integer, uuid, timestamptz, text, uuid, uuid)'::regprocedure),
  'booking_by_request: security definer, empty search_path, service_role only');

-- A patient's other appointment is named only to a request that identified the patient -----------------------------
select pg_temp.book('req-sky-1', tests.slot(63, 10),
  '{"first_name": "Sky", "last_name": "Nobirth", "email": "sky.nobirth@example.com"}');
select is(pg_temp.answer(pg_temp.book_sql('req-sky-probe', tests.slot(63, 10), 
    '{"first_name": "Sky", "last_name": "Nobirth", "email": "sky.nobirth@example.com"}', tests.id('okafor'))),
  'PT409 SLOT_TAKEN conflict_check: the provider has another appointment overlapping this time',
  'a request without a date of birth, for a record without one, asking another provider at the same time: a taken slot, not when that person is booked');
select is(pg_temp.answer(format($f$select private.settle_slot_conflict(
      (select patient_id from public.appointments where request_id = 'req-sky-1'), tests.id('okafor'), %L, false,
      'appointments_no_patient_overlap')$f$, tests.slot(63, 10))),
  'PT409 SLOT_TAKEN conflict_check: the provider has another appointment overlapping this time',
  'and so when an overlapping booking of that patient won meanwhile');

-- booking_by_request answers only the asking request's booking -------------------------------------------------------
select is(public.booking_by_request('req-sky-1', 0, tests.id('okafor'), tests.slot(63, 10)), null,
  'an appointment of that request id with another provider is not the asker''s: nothing is answered');

-- A call the worker gave up on never books ----------------------------------------------------------------------------
select is(public.booking_by_request('req-late-call', 0, p_call_id => 'c0000000-0000-4000-8000-000000000001'), null,
  'asked about a call that has not reached the database: nothing yet');
select is(pg_temp.answer($$select public.book_appointment('req-late-call', tests.id('rivera'), 'cash-payment',
    tests.slot(64, 10), 'telehealth', p_patient => '{"first_name": "Late", "last_name": "Call", "email": "late.call@example.com"}',
    p_call_id => 'c0000000-0000-4000-8000-000000000001')$$),
  'PT503 DATABASE_UNAVAILABLE booking_rpc: the worker stopped waiting for this call and answered that it failed; it books nothing',
  'the call, arriving late, books nothing: its client was told it failed');
select is(pg_temp.answer($$select public.book_appointment('req-late-call', tests.id('rivera'), 'cash-payment',
    tests.slot(64, 10), 'telehealth', p_patient => '{"first_name": "Late", "last_name": "Call", "email": "late.call@example.com"}',
    p_call_id => 'c0000000-0000-4000-8000-000000000002')$$), 'no error',
  'a retry is a new call, with the same request id: it books');

select * from finish();
rollback;
