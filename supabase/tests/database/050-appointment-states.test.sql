-- The table itself refuses the states that hid the original failure, and double bookings, whoever writes.
begin;
select plan(7);

create temp table booked as
select (public.book_appointment('req-st', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth',
          p_patient => tests.new_patient('states'))->>'appointment_id')::uuid as id;

select throws_ok($$update public.appointments set status = 'scheduled' where id = (select id from booked)$$,
  '23514', null, 'an appointment cannot be scheduled while IntakeQ does not have it');
select throws_ok($$update public.appointments set sync_status = 'synced' where id = (select id from booked)$$,
  '23514', null, 'it cannot be synced without an IntakeQ id');
select lives_ok($$update public.appointments set status = 'scheduled', sync_status = 'synced',
                  pq_appointment_id = '65a1b2c3d4e5f60718293a4b' where id = (select id from booked)$$,
  'scheduled, synced, with its IntakeQ id: fine');
select throws_ok($$update public.appointments set sync_status = 'retrying' where id = (select id from booked)$$,
  '23514', null, 'sync_status takes only pending, synced, failed');
select throws_ok(
  $$insert into public.appointments (patient_id, provider_id, service_instance_id, start_time, end_time, location_type,
      patient_info, insurance_info, request_id)
    values (tests.id('jordan'), tests.id('rivera'), tests.id('global_intake'), tests.slot(3) + interval '59 minutes',
      tests.slot(3) + interval '2 hours', 'telehealth', '{}', '{}', 'req-direct')$$,
  '23P01', null, 'an overlapping appointment is refused by the table, not only by the function');
select throws_ok(
  $$insert into public.sync_retry_queue (appointment_id, request_id) values ((select id from booked), 'req-2nd')$$,
  '23505', null, 'an appointment has one sync job');
select throws_ok(
  $$insert into public.appointments (patient_id, provider_id, service_instance_id, start_time, end_time, location_type,
      patient_info, insurance_info, request_id)
    values (tests.id('jordan'), tests.id('okafor'), tests.id('global_intake'), tests.slot(3), tests.slot(4),
      'telehealth', '{}', '{}', 'not a request id!')$$,
  '23514', null, 'a row''s request id must be a well-formed one');

select * from finish();
rollback;
