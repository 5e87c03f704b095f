-- Asking twice never books twice: an idempotent replay, a reused key, the same patient's same slot, and the
-- same new patient on two slots.
begin;
select plan(14);
set local role service_role;

-- With a date of birth: only a request that identifies the patient fully is answered as a duplicate (see 130).
create function pg_temp.book(p_request_id text, p_key text, p_tag text, p_days integer) returns jsonb
language sql as $$
  select public.book_appointment(p_request_id, tests.id('okafor'), tests.id('beehive')::text, tests.slot(p_days),
    'telehealth', p_patient => tests.new_patient(p_tag) || '{"date_of_birth": "1980-01-02"}',
    p_idempotency_key => p_key);
$$;

-- Idempotency ---------------------------------------------------------------------------------------------------
create temp table first_try as select pg_temp.book('req-i1', 'key-1', 'idem', 3) as r;
select tests.remember_counts();
create temp table replay as select pg_temp.book('req-i2', 'key-1', 'idem', 3) as r;
select is((select r->>'appointment_id' from replay), (select r->>'appointment_id' from first_try),
  'a replay with the same key and request returns the same appointment');
select is((select (r->>'replayed')::boolean from replay), true, 'and says it is a replay');
select is((select r->>'request_id' from replay), 'req-i1', 'the replay names the request that booked');
select is(tests.new_rows(), '{}', 'a replay writes nothing');
select is(tests.booking_error($$select pg_temp.book('req-i3', 'key-1', 'idem', 4)$$),
  'PT422 IDEMPOTENCY_KEY_REUSED idempotency', 'the same key with another request is refused');
select is(tests.new_rows(), '{}', 'a refused key writes nothing');
select is(
  (select k.request_id::text || ' ' || (k.appointment_id = (select (r->>'appointment_id')::uuid from first_try))::text
   from public.idempotency_keys k where k.key = 'key-1'),
  'req-i1 true', 'the key records the request and its appointment');

-- A failed booking releases its key, so the patient can try again with it.
select is(tests.booking_error($$select public.book_appointment('req-i4', gen_random_uuid(), 'cash-payment',
            tests.slot(5), 'telehealth', p_patient => tests.new_patient('idem2'), p_idempotency_key => 'key-2')$$),
  'PT404 PROVIDER_NOT_FOUND provider_lookup', 'a booking with a key fails');
select is((pg_temp.book('req-i5', 'key-2', 'idem2', 5)->>'replayed')::boolean, false,
  'the same key then books for real');

-- The same patient, the same slot, without a key -------------------------------------------------------------------
select tests.remember_counts();
create temp table again as select pg_temp.book('req-d1', null, 'idem', 3) as r;
select is((select r->>'appointment_id' from again), (select r->>'appointment_id' from first_try),
  'the same patient asking again for the same slot gets the existing appointment');
select is((select (r->>'is_duplicate')::boolean from again), true, 'marked as a duplicate');
select is(tests.new_rows(), '{}', 'a duplicate writes nothing');

-- The same new patient, another slot --------------------------------------------------------------------------------
select is((pg_temp.book('req-d2', null, 'idem', 6)->'patient'->>'id'),
  (select r->'patient'->>'id' from first_try), 'a second booking of the same person reuses the patient');

-- A cancelled appointment frees its slot --------------------------------------------------------------------------
reset role;
update public.appointments set status = 'cancelled' where id = (select (r->>'appointment_id')::uuid from first_try);
set local role service_role;
select is((public.book_appointment('req-d3', tests.id('okafor'), tests.id('beehive')::text, tests.slot(3), 'telehealth',
           p_patient_id => tests.id('jordan'))->>'is_duplicate')::boolean, false,
  'a cancelled appointment''s slot can be booked by someone else');

select * from finish();
rollback;
