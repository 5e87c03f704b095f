-- The happy paths: what a booking writes and what it answers.
begin;
select plan(32);
set local role service_role;

-- A new patient, insured ---------------------------------------------------------------------------------------
select tests.remember_counts();
create temp table booked as
select public.book_appointment(
  p_request_id      => 'req-happy-1',
  p_provider_id     => tests.id('rivera'),
  p_payer_id        => tests.id('beehive')::text,
  p_start           => tests.slot(2, 15),
  p_location_type   => 'telehealth',
  p_patient         => '{"first_name": " Riley ", "last_name": "Quinn", "email": "Riley.Quinn@Example.com",
                         "phone": "+1 555 0101", "date_of_birth": "1991-02-03"}',
  p_notes           => 'Prefers afternoons',
  p_insurance       => '{"member_id": "M-123", "group_number": "G-9"}',
  p_contact         => '{"name": "Case Manager", "email": "cm@example.com"}') as r;

select is(tests.new_rows(), '{"patients": 1, "appointments": 1, "sync_retry_queue": 1}',
  'a booking writes one patient, one appointment and one sync job');
select is((select r->>'status' from booked), 'pending_sync', 'the appointment is pending_sync');
select is((select r->>'sync_status' from booked), 'pending', 'its sync status is pending');
select is((select r->>'pq_appointment_id' from booked), null, 'it has no IntakeQ id yet');
select is((select (r->>'is_duplicate')::boolean from booked), false, 'it is not a duplicate');
select is((select (r->>'patient_created')::boolean from booked), true, 'the patient was created');
select is((select (r->>'start')::timestamptz from booked), tests.slot(2, 15), 'start is the requested instant');
select matches((select r->>'start' from booked), '^\d{4}-\d\d-\d\dT15:00:00Z$', 'written in RFC 3339, UTC');
select is((select (r->>'end')::timestamptz from booked), tests.slot(2, 16), 'end = start + the service duration');
select is((select (r->>'duration_minutes')::int from booked), 60, 'the payer''s own intake lasts 60 minutes');
select is((select r->'provider' from booked),
  jsonb_build_object('id', tests.id('rivera'), 'name', 'Ana Rivera, MD'), 'the provider''s id and name');
select is((select r->'intakeq' from booked),
  '{"practitioner_id": "5f1a00000000000000000001", "service_id": "7c1e0000-0000-4000-8000-000000000002",
    "location_id": "2", "client_id": null}',
  'the IntakeQ practitioner, the payer''s service and the payer''s location');
select is((select r->'patient'->>'first_name' from booked), 'Riley', 'names are stored trimmed');

select results_eq(
  $$select a.request_id::text, a.status, a.sync_status, a.payer_id, a.location_type, a.notes
    from public.appointments a where a.id = (select (r->>'appointment_id')::uuid from booked)$$,
  $$values ('req-happy-1', 'pending_sync', 'pending', tests.id('beehive'), 'telehealth', 'Prefers afternoons')$$,
  'the appointment row carries the request id and the booking');
select is(
  (select a.patient_info from public.appointments a where a.id = (select (r->>'appointment_id')::uuid from booked)),
  '{"first_name": "Riley", "last_name": "Quinn", "email": "Riley.Quinn@Example.com", "phone": "+1 555 0101",
    "date_of_birth": "1991-02-03", "case_manager": {"name": "Case Manager", "email": "cm@example.com"}}',
  'the patient snapshot keeps what the form said');
select is(
  (select a.insurance_info from public.appointments a where a.id = (select (r->>'appointment_id')::uuid from booked)),
  jsonb_build_object('self_pay', false, 'payer_id', tests.id('beehive'), 'payer_name', 'Beehive Health Plan',
                     'member_id', 'M-123', 'group_number', 'G-9'),
  'the insurance snapshot keeps payer, member id and group number');
select is(
  (select p.created_by_request_id::text from public.patients p where p.id = (select (r->'patient'->>'id')::uuid from booked)),
  'req-happy-1', 'the patient row carries the request id');

-- The outbox job, leased to this request ------------------------------------------------------------------------
select results_eq(
  $$select q.state, q.retry_count, q.request_id::text, q.locked_by, q.locked_until = now() + interval '60 seconds',
           q.next_retry_at = q.locked_until, q.max_retries
    from public.sync_retry_queue q where q.appointment_id = (select (r->>'appointment_id')::uuid from booked)$$,
  $$values ('pending', 1, 'req-happy-1', 'req-happy-1', true, true, 5)$$,
  'the sync job is pending, leased to the booking request for 60 s (its first attempt, counted with the lease), and due when the lease ends');
select is((select r->'sync_job'->>'locked_by' from booked), 'req-happy-1', 'the answer says who holds the job');
create temp table short_lease as
select public.book_appointment('req-lease', tests.id('rivera'), 'cash-payment', tests.slot(2, 9), 'telehealth',
  p_patient => tests.new_patient('lease'), p_sync_lease_seconds => 5) as r;
select is(
  (select q.locked_until from public.sync_retry_queue q
   where q.appointment_id = (select (r->>'appointment_id')::uuid from short_lease)),
  now() + interval '5 seconds', 'the caller chooses the lease length');

-- The same person again, written differently ----------------------------------------------------------------------
select is(
  (public.book_appointment('req-happy-2', tests.id('rivera'), tests.id('beehive')::text, tests.slot(4), 'in_person',
     p_patient => '{"first_name": "riley", "last_name": "  QUINN ", "email": " riley.quinn@example.COM",
                    "date_of_birth": "1991-02-03"}')->'patient'->>'id'),
  (select r->'patient'->>'id' from booked),
  'the same email, names and date of birth find the same patient, whatever the case and spacing');
select isnt(
  (public.book_appointment('req-happy-3', tests.id('rivera'), tests.id('beehive')::text, tests.slot(5), 'in_person',
     p_patient => '{"first_name": "Riley", "last_name": "Quinn", "email": "riley.quinn@example.com"}')->'patient'->>'id'),
  (select r->'patient'->>'id' from booked),
  'without a date of birth the same email and names do not attach to a patient who has one (a new patient)');
select isnt(
  (public.book_appointment('req-happy-4', tests.id('rivera'), tests.id('beehive')::text, tests.slot(6), 'in_person',
     p_patient => '{"first_name": "Riley", "last_name": "Quinn", "email": "riley.quinn@example.com",
                    "date_of_birth": "2015-06-07"}')->'patient'->>'id'),
  (select r->'patient'->>'id' from booked),
  'another date of birth is another person (a child sharing a parent''s email)');

-- An existing patient by id ------------------------------------------------------------------------------------
select tests.remember_counts();
select is(
  (public.book_appointment('req-existing', tests.id('okafor'), tests.id('summit')::text, tests.slot(2), 'telehealth',
     p_patient_id => tests.id('jordan'))->'patient'->>'id')::uuid,
  tests.id('jordan'), 'a given patientId is used');
select is(tests.new_rows(), '{"appointments": 1, "sync_retry_queue": 1}', 'and no patient is created');
select is(
  (select a.patient_info->>'email' from public.appointments a where a.request_id = 'req-existing'),
  'jordan.demo@example.com', 'the snapshot of an existing patient comes from the patient row');

-- Payers and service instances -----------------------------------------------------------------------------------
create temp table cash as
select public.book_appointment('req-cash', tests.id('lindqvist'), 'cash-payment', tests.slot(2), 'telehealth',
  p_patient => tests.new_patient('cash')) as r;
select is((select r->>'payer_id' from cash), null, 'cash-payment is stored as payer NULL');
select is((select r->'intakeq'->>'location_id' from cash), '1', 'self pay files under the practice''s self-pay location');
select is((select r->'intakeq'->>'service_id' from cash), '7c1e0000-0000-4000-8000-000000000001',
  'self pay uses the global intake');
select is(
  (select a.insurance_info from public.appointments a where a.request_id = 'req-cash'),
  '{"self_pay": true}', 'the insurance snapshot of self pay says so');
select is(
  (public.book_appointment('req-canyon', tests.id('rivera'), tests.id('canyon')::text, tests.slot(3), 'telehealth',
     p_patient => tests.new_patient('canyon'))->>'duration_minutes')::int,
  90, 'a payer''s own intake instance wins over the global one (Canyon: the 90-minute intake)');
select is(
  public.book_appointment('req-lakeside', tests.id('okafor'), tests.id('lakeside')::text, tests.slot(3), 'telehealth',
     p_patient => tests.new_patient('lakeside'))->'intakeq'->>'service_id',
  '7c1e0000-0000-4000-8000-000000000001', 'a payer without an instance of its own gets the global intake');

select * from finish();
rollback;
