-- book-v2: ONE round trip, the whole booking in one transaction (a new patient, a random far slot).
\set provider random(1, 1024)
\set minute random(1, 100000000000)
\set tag random(1, 9000000000000000000)
select public.book_appointment('bench-' || :client_id || '-' || :tag, (select id from bench_providers where n = :provider), 'cash-payment',
  now() + interval '1 day' + interval '1 minute' * :minute, 'telehealth',
  p_patient => jsonb_build_object('first_name', 'Bench', 'last_name', 'Patient',
                                  'email', 'bench.' || :client_id || '.' || :tag || '@example.com'));
