-- Existing data for the scale comparison: 100 thousand patients and :appointments appointments spread over
-- the bench providers, two hours apart per provider (no overlap), half of them synced.
insert into patients (first_name, last_name, email, created_by_request_id)
select 'Existing', 'Patient ' || i, 'existing.' || i || '@example.com', 'bench-load'
from generate_series(1, 100000) i;

create temp table existing_patients as select id, row_number() over () as n from patients where created_by_request_id = 'bench-load';
create index on existing_patients (n);

insert into appointments (patient_id, provider_id, service_instance_id, start_time, end_time, location_type,
                          status, sync_status, pq_appointment_id, patient_info, insurance_info, request_id)
select p.id, b.id, 'd4000000-0000-4000-8000-000000000001',
       timestamptz '2030-01-01' + (i / 1024) * interval '2 hours',
       timestamptz '2030-01-01' + (i / 1024) * interval '2 hours' + interval '1 hour',
       'telehealth',
       case when i % 2 = 0 then 'scheduled' else 'pending_sync' end,
       case when i % 2 = 0 then 'synced' else 'pending' end,
       case when i % 2 = 0 then 'bulk-' || i end,
       '{}', '{}', 'bench-load'
from generate_series(0, :appointments - 1) i
join bench_providers b on b.n = i % 1024 + 1
join existing_patients p on p.n = i % 100000 + 1;
analyze;
