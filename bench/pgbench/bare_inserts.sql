-- The physical floor: the two rows a booking must write, in one round trip, nothing checked.
\set provider random(1, 1024)
\set minute random(1, 100000000000)
\set tag random(1, 9000000000000000000)
with patient as (
  insert into patients (first_name, last_name, email, created_by_request_id)
  values ('Bench', 'Patient', 'bench.' || :client_id || '.' || :tag || '@example.com', 'bench-bare-' || :tag) returning id)
insert into appointments (patient_id, provider_id, service_instance_id, start_time, end_time, location_type,
                          patient_info, insurance_info, request_id)
select patient.id, (select id from bench_providers where n = :provider), 'd4000000-0000-4000-8000-000000000001', now() + interval '1 day' + interval '1 minute' * :minute,
       now() + interval '1 day' + interval '1 minute' * (:minute + 60), 'telehealth', '{}', '{}', 'bench-bare-' || :tag
from patient;
