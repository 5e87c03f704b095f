-- The previous book_appointment (20261124000700, one 285-line body with four exception blocks), installed by
-- scripts/bench.sh as bench.book_appointment_before: the same booking as book_appointment.sql, measured next to it.
\set provider random(1, 1024)
\set minute random(1, 100000000000)
\set tag random(1, 9000000000000000000)
select bench.book_appointment_before('bench-before-' || :client_id || '-' || :tag, (select id from bench_providers where n = :provider), 'cash-payment',
  now() + interval '1 day' + interval '1 minute' * :minute, 'telehealth',
  p_patient => jsonb_build_object('first_name', 'Bench', 'last_name', 'Patient',
                                  'email', 'bench.before.' || :client_id || '.' || :tag || '@example.com'));
