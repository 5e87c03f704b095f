-- The replaced route: the same work as separate statements, one round trip each, no transaction around them
-- (as its supabase-js calls were): patient match, patient insert, service instance, conflict check, payer,
-- appointment insert, status update.
\set provider random(1, 1024)
\set minute random(1, 100000000000)
\set tag random(1, 9000000000000000000)
select count(*) as matches from patients
  where email_key = 'bench.' || :client_id || '.' || :tag || '@example.com' and first_name_key = 'bench' and last_name_key = 'patient';
insert into patients (first_name, last_name, email, created_by_request_id)
  values ('Bench', 'Patient', 'bench.' || :client_id || '.' || :tag || '@example.com', 'bench-old-' || :tag) returning id as patient_id \gset
select si.id as instance_id, s.duration_minutes as duration from service_instances si join services s on s.id = si.service_id
  where si.payer_id is null and si.is_active and si.is_intake and si.intakeq_service_id is not null limit 1 \gset
select count(*) as conflicts from appointments
  where provider_id = (select id from bench_providers where n = :provider) and status <> 'cancelled'
    and tstzrange(start_time, end_time) && tstzrange(now() + interval '1 day' + interval '1 minute' * :minute,
                                                    now() + interval '1 day' + interval '1 minute' * (:minute + :duration));
select count(*) as payers from payers where id = 'b2000000-0000-4000-8000-000000000001';
insert into appointments (patient_id, provider_id, service_instance_id, start_time, end_time, location_type,
                          patient_info, insurance_info, request_id)
  values (':patient_id'::uuid, (select id from bench_providers where n = :provider), ':instance_id'::uuid, now() + interval '1 day' + interval '1 minute' * :minute,
          now() + interval '1 day' + interval '1 minute' * (:minute + :duration), 'telehealth', '{}', '{}', 'bench-old-' || :tag)
  returning id as appointment_id \gset
update appointments set notes = 'booked through the old route' where id = ':appointment_id'::uuid;
