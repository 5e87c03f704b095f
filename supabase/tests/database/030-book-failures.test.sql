-- Every failure the database owns answers with its code, HTTP status (SQLSTATE PTxyz) and step, and leaves
-- NO new row in any table: not the patient it created on the way (the orphan of the old route), not the
-- appointment, not the sync job, not the idempotency key.
begin;
select plan(37);
set local role service_role;

-- Each case: a booking that must fail, the expected "<SQLSTATE> <code> <step>", and a description.
create temp table failing_bookings (sql text, expected text, description text);
insert into failing_bookings values
  -- request_validation
  ($$select public.book_appointment('bad id!', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('v1'))$$,
   'PT400 INVALID_REQUEST request_validation', 'a malformed request id'),
  ($$select public.book_appointment('req-v2', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth')$$,
   'PT400 INVALID_REQUEST request_validation', 'neither patientId nor patient'),
  ($$select public.book_appointment('req-v3', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => '{"first_name": "A", "last_name": " ", "email": "a@example.com"}')$$,
   'PT400 INVALID_REQUEST request_validation', 'a blank last name'),
  ($$select public.book_appointment('req-v4', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('v4') || '{"date_of_birth": "1990-02-30"}')$$,
   'PT400 INVALID_REQUEST request_validation', 'a date of birth that does not exist'),
  ($$select public.book_appointment('req-v5', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('v5') || '{"date_of_birth": "today"}')$$,
   'PT400 INVALID_REQUEST request_validation', 'a date of birth Postgres would read as a word'),
  ($$select public.book_appointment('req-v6', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('v6') || jsonb_build_object('date_of_birth', (current_date + 1)::text))$$,
   'PT400 INVALID_REQUEST request_validation', 'a date of birth in the future'),
  ($$select public.book_appointment('req-v7', tests.id('rivera'), 'cash-payment', tests.slot(3), 'on_the_moon', p_patient => tests.new_patient('v7'))$$,
   'PT400 INVALID_REQUEST request_validation', 'an unknown location type'),
  ($$select public.book_appointment('req-v8', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('v8'), p_notes => repeat('x', 2001))$$,
   'PT400 INVALID_REQUEST request_validation', 'notes over 2000 characters'),
  ($$select public.book_appointment('req-v9', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('v9'), p_idempotency_key => 'has space')$$,
   'PT400 INVALID_REQUEST request_validation', 'an idempotency key with a space'),
  ($$select public.book_appointment('req-v10', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('v10'), p_insurance => '"M-1"')$$,
   'PT400 INVALID_REQUEST request_validation', 'insurance that is not an object'),
  -- patient_resolution
  ($$select public.book_appointment('req-p1', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient_id => gen_random_uuid())$$,
   'PT404 PATIENT_NOT_FOUND patient_resolution', 'an unknown patientId'),
  ($$select public.book_appointment('req-p2', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('p2') || jsonb_build_object('first_name', repeat('A', 101)))$$,
   'PT500 PATIENT_CREATION_FAILED patient_resolution', 'a patient the patients table refuses (name too long)'),
  ($$select public.book_appointment('req-p3', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('p3') || '{"email": "not-an-email"}')$$,
   'PT500 PATIENT_CREATION_FAILED patient_resolution', 'a patient the patients table refuses (email)'),
  -- provider_lookup
  ($$select public.book_appointment('req-r1', gen_random_uuid(), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('r1'))$$,
   'PT404 PROVIDER_NOT_FOUND provider_lookup', 'an unknown provider'),
  ($$select public.book_appointment('req-r2', tests.id('whitfield'), 'cash-payment', tests.slot(3), 'telehealth', p_patient => tests.new_patient('r2'))$$,
   'PT422 PROVIDER_NOT_BOOKABLE provider_lookup', 'a provider who is not bookable'),
  ($$select public.book_appointment('req-r3', tests.id('lindqvist'), tests.id('summit')::text, tests.slot(3), 'telehealth', p_patient => tests.new_patient('r3'))$$,
   'PT422 PROVIDER_NOT_BOOKABLE provider_lookup', 'a provider out of network for the payer'),
  -- payer_lookup
  ($$select public.book_appointment('req-y1', tests.id('rivera'), gen_random_uuid()::text, tests.slot(3), 'telehealth', p_patient => tests.new_patient('y1'))$$,
   'PT404 INVALID_PAYER payer_lookup', 'an unknown payer'),
  ($$select public.book_appointment('req-y2', tests.id('rivera'), 'cash', tests.slot(3), 'telehealth', p_patient => tests.new_patient('y2'))$$,
   'PT404 INVALID_PAYER payer_lookup', 'a payer that is neither a uuid nor cash-payment'),
  -- conflict_check
  ($$select public.book_appointment('req-c1', tests.id('rivera'), 'cash-payment', now() - interval '1 minute', 'telehealth', p_patient => tests.new_patient('c1'))$$,
   'PT422 SLOT_IN_PAST conflict_check', 'a start in the past'),
  ($$select public.book_appointment('req-c2', tests.id('rivera'), 'cash-payment', tests.slot(7, 15) + interval '30 minutes', 'telehealth', p_patient => tests.new_patient('c2'))$$,
   'PT409 SLOT_TAKEN conflict_check', 'a new patient whose slot overlaps another patient''s appointment'),
  ($$select public.book_appointment('req-c3', tests.id('rivera'), 'cash-payment', tests.slot(7, 15), 'telehealth', p_patient_id => tests.id('jordan'))$$,
   'PT409 SLOT_TAKEN conflict_check', 'an existing patient on a taken slot');

-- The slot the conflict cases run into.
select ok(public.book_appointment('req-taken', tests.id('rivera'), 'cash-payment', tests.slot(7, 15), 'telehealth',
            p_patient => tests.new_patient('owner'))->>'appointment_id' is not null, 'a slot is booked');

select tests.remember_counts();
select is(tests.booking_error(sql), expected, description) from failing_bookings;
select is(tests.new_rows(), '{}', 'none of those failures left a row behind');

-- Failures that data cannot provoke, injected with a failing trigger ------------------------------------------
-- A plain error (P0001) is the step's failure; an error of the database itself (deadlock 40P01, serialization
-- 40001, lock timeout 55P03) is DATABASE_UNAVAILABLE, worth retrying, whichever step it hit.
create temp table injected (tbl text, sqlstate text, expected text);
insert into injected values
  ('patients',         'P0001', 'PT500 PATIENT_CREATION_FAILED patient_resolution'),
  ('appointments',     'P0001', 'PT500 APPOINTMENT_INSERT_FAILED appointment_insert'),
  ('sync_retry_queue', 'P0001', 'PT500 APPOINTMENT_INSERT_FAILED appointment_insert'),
  ('idempotency_keys', 'P0001', 'PT500 INTERNAL_ERROR idempotency'),
  ('patients',         '40001', 'PT503 DATABASE_UNAVAILABLE patient_resolution'),
  ('appointments',     '40P01', 'PT503 DATABASE_UNAVAILABLE appointment_insert'),
  ('sync_retry_queue', '55P03', 'PT503 DATABASE_UNAVAILABLE appointment_insert');

create function pg_temp.book_with_failing(p_table text, p_sqlstate text) returns text
language plpgsql as $$
declare
  v_result text;
begin
  execute format('create trigger injected_failure before insert or update on public.%I
                  for each row execute function tests.injected_failure(%L)', p_table, p_sqlstate);
  v_result := tests.booking_error(format(
    $f$select public.book_appointment('req-inject-%s', tests.id('okafor'), tests.id('summit')::text, tests.slot(8),
         'in_person', p_patient => tests.new_patient('inject-%s'), p_idempotency_key => 'key-inject-%s')$f$,
    p_table, p_table, p_table));
  execute format('drop trigger injected_failure on public.%I', p_table);
  return v_result;
end;
$$;
reset role;  -- creating triggers needs the owner
select tests.remember_counts();
select is(pg_temp.book_with_failing(tbl, sqlstate), expected,
          format('an insert into %s failing with %s: %s', tbl, sqlstate, expected)) from injected;
select is(tests.new_rows(), '{}', 'an insert failing after the patient was created leaves no orphan patient');
set local role service_role;

-- No intake instance at all for a payer --------------------------------------------------------------------------
reset role;
update public.service_instances set is_active = false where id = tests.id('global_intake');
set local role service_role;
select tests.remember_counts();
select is(tests.booking_error($$select public.book_appointment('req-s1', tests.id('rivera'), tests.id('lakeside')::text,
            tests.slot(3), 'telehealth', p_patient => tests.new_patient('s1'))$$),
  'PT422 SERVICE_INSTANCE_NOT_FOUND service_instance_resolution',
  'a payer with no instance of its own and no active global intake');
select is(tests.booking_error($$select public.book_appointment('req-s2', tests.id('rivera'), 'cash-payment',
            tests.slot(3), 'telehealth', p_patient => tests.new_patient('s2'))$$),
  'PT422 SERVICE_INSTANCE_NOT_FOUND service_instance_resolution',
  'self pay with no active global intake');
reset role;
update public.service_instances set is_active = true where id = tests.id('global_intake');
update public.service_instances set intakeq_service_id = null where payer_id = tests.id('beehive');
update public.service_instances set is_active = false where id = tests.id('global_intake');
set local role service_role;
select is(tests.booking_error($$select public.book_appointment('req-s3', tests.id('rivera'), tests.id('beehive')::text,
            tests.slot(3), 'telehealth', p_patient => tests.new_patient('s3'))$$),
  'PT422 SERVICE_INSTANCE_NOT_FOUND service_instance_resolution',
  'an instance without an IntakeQ service id is never chosen');
select is(tests.new_rows(), '{}', 'service instance failures leave no row behind');
reset role;
update public.service_instances set is_active = true where id = tests.id('global_intake');
set local role service_role;

-- The error body the worker reads ------------------------------------------------------------------------------
create function pg_temp.error_detail(p_sql text) returns text
language plpgsql as $$
declare v_detail text;
begin
  execute p_sql;
  return null;
exception when others then
  get stacked diagnostics v_detail = pg_exception_detail;
  return v_detail;
end;
$$;
select is(pg_temp.error_detail($$select public.book_appointment('req-d1', tests.id('rivera'), 'cash-payment',
            tests.slot(7, 15), 'telehealth', p_patient => tests.new_patient('d1'))$$),
  'the provider has another appointment overlapping this time', 'details carry a diagnostic for the logs');
select unalike(pg_temp.error_detail($$select public.book_appointment('req-d2', tests.id('rivera'), 'cash-payment',
            tests.slot(9), 'telehealth', p_patient => tests.new_patient('d2') || '{"email": "no-at-sign.example.com"}')$$),
  '%no-at-sign%', 'a diagnostic never repeats patient data');

select * from finish();
rollback;
