-- A small demo practice. Every person here is made up; emails use the reserved example.com domain.
-- IntakeQ ids match the IntakeQ sandbox's settings (practitioners, services, locations).
-- Idempotent: applying it twice changes nothing.

insert into public.practice_settings (singleton, self_pay_intakeq_location_id)
values (true, '1')
on conflict (singleton) do nothing;

insert into public.providers (id, first_name, last_name, title, is_bookable, intakeq_practitioner_id) values
  ('a1000000-0000-4000-8000-000000000001', 'Ana',   'Rivera',    'MD',     true,  '5f1a00000000000000000001'),
  ('a1000000-0000-4000-8000-000000000002', 'Ben',   'Okafor',    'DO',     true,  '5f1a00000000000000000002'),
  ('a1000000-0000-4000-8000-000000000003', 'Casey', 'Lindqvist', 'PMHNP',  true,  '5f1a00000000000000000003'),
  -- On leave: exists, not bookable.
  ('a1000000-0000-4000-8000-000000000004', 'Dana',  'Whitfield', 'MD',     false, '5f1a00000000000000000004')
on conflict (id) do nothing;

insert into public.payers (id, name, intakeq_location_id) values
  ('b2000000-0000-4000-8000-000000000001', 'Beehive Health Plan',    '2'),
  ('b2000000-0000-4000-8000-000000000002', 'Canyon Care Medicaid',   '3'),
  ('b2000000-0000-4000-8000-000000000003', 'Summit Mutual',          '4'),
  -- No intake instance of its own: bookings under it use the global intake instance.
  ('b2000000-0000-4000-8000-000000000004', 'Lakeside Employee Plan', '5')
on conflict (id) do nothing;

insert into public.provider_payer_networks (provider_id, payer_id) values
  ('a1000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000001'),
  ('a1000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000002'),
  ('a1000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000004'),
  ('a1000000-0000-4000-8000-000000000002', 'b2000000-0000-4000-8000-000000000001'),
  ('a1000000-0000-4000-8000-000000000002', 'b2000000-0000-4000-8000-000000000003'),
  ('a1000000-0000-4000-8000-000000000002', 'b2000000-0000-4000-8000-000000000004'),
  -- Casey Lindqvist does not take Summit Mutual.
  ('a1000000-0000-4000-8000-000000000003', 'b2000000-0000-4000-8000-000000000002'),
  ('a1000000-0000-4000-8000-000000000003', 'b2000000-0000-4000-8000-000000000004'),
  ('a1000000-0000-4000-8000-000000000004', 'b2000000-0000-4000-8000-000000000001')
on conflict do nothing;

insert into public.services (id, name, duration_minutes) values
  ('c3000000-0000-4000-8000-000000000001', 'New patient psychiatric intake',            60),
  ('c3000000-0000-4000-8000-000000000002', 'New patient psychiatric intake (extended)', 90),
  ('c3000000-0000-4000-8000-000000000003', 'Medication management follow-up',           30)
on conflict (id) do nothing;

insert into public.service_instances (id, service_id, payer_id, is_intake, is_active, intakeq_service_id) values
  -- Global intake: self pay, and any payer without an intake instance of its own.
  ('d4000000-0000-4000-8000-000000000001', 'c3000000-0000-4000-8000-000000000001', null,
   true, true, '7c1e0000-0000-4000-8000-000000000001'),
  ('d4000000-0000-4000-8000-000000000002', 'c3000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000001',
   true, true, '7c1e0000-0000-4000-8000-000000000002'),
  -- Canyon Care Medicaid requires the extended intake.
  ('d4000000-0000-4000-8000-000000000003', 'c3000000-0000-4000-8000-000000000002', 'b2000000-0000-4000-8000-000000000002',
   true, true, '7c1e0000-0000-4000-8000-000000000003'),
  ('d4000000-0000-4000-8000-000000000004', 'c3000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000003',
   true, true, '7c1e0000-0000-4000-8000-000000000004'),
  -- Retired: inactive, never chosen.
  ('d4000000-0000-4000-8000-000000000005', 'c3000000-0000-4000-8000-000000000002', 'b2000000-0000-4000-8000-000000000003',
   true, false, '7c1e0000-0000-4000-8000-000000000005'),
  -- Not an intake: never chosen by the booking form.
  ('d4000000-0000-4000-8000-000000000006', 'c3000000-0000-4000-8000-000000000003', null,
   false, true, '7c1e0000-0000-4000-8000-000000000006')
on conflict (id) do nothing;

-- An existing patient, for bookings by patientId.
insert into public.patients (id, first_name, last_name, email, phone, date_of_birth, created_by_request_id) values
  ('e5000000-0000-4000-8000-000000000001', 'Jordan', 'Demo', 'jordan.demo@example.com', '+1 555 0100', '1990-04-12', 'seed')
on conflict (id) do nothing;

-- Intake paperwork: the general questionnaire for everyone, Canyon Care Medicaid's own for its patients
-- (questionnaire ids the IntakeQ sandbox knows).
update public.practice_settings set intakeq_questionnaire_id = '61a000000000000000000001' where intakeq_questionnaire_id is null;
update public.payers set intakeq_questionnaire_id = '61a000000000000000000002'
where id = 'b2000000-0000-4000-8000-000000000002' and intakeq_questionnaire_id is null;
