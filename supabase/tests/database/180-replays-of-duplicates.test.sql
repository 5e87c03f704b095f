-- A replay of a duplicate is a duplicate (20261126000700_replays_of_duplicates.sql): only the request that made
-- a booking, and its replays, are answered as that booking's maker (and so get its manage token from the worker).
begin;
select plan(5);
set local role service_role;

create function pg_temp.book(p_request_id text, p_key text) returns jsonb
language sql as $$
  select public.book_appointment(p_request_id, tests.id('okafor'), tests.id('beehive')::text, tests.slot(11),
    'telehealth', p_patient => tests.new_patient('replayed-dup') || '{"date_of_birth": "1980-01-02"}',
    p_idempotency_key => p_key);
$$;

create temp table made as select pg_temp.book('req-r1', 'key-made') as r;
select is((pg_temp.book('req-r2', 'key-made')->>'is_duplicate')::boolean, false,
  'the replay of the request that made the booking is not a duplicate');

-- Someone else, with the same details and a key of their own: a duplicate, then its replay.
create temp table dup as select pg_temp.book('req-r3', 'key-dup') as r;
select is((select (r->>'is_duplicate')::boolean from dup), true, 'the same details again: a duplicate');
create temp table dup_replay as select pg_temp.book('req-r4', 'key-dup') as r;
select is((select (r->>'replayed')::boolean from dup_replay), true, 'asked again with its key: a replay');
select is((select (r->>'is_duplicate')::boolean from dup_replay), true, 'and still a duplicate, not the booking''s maker');
select is((select r->>'appointment_id' from dup_replay), (select r->>'appointment_id' from made), 'of the same appointment');

select * from finish();
rollback;
