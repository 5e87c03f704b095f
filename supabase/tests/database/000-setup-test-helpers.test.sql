-- Helpers for the pgTAP files that follow (pg_prove runs them in name order). Created in schema `tests`,
-- outside any transaction, in the throwaway test database only.
create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

-- Runs a statement and answers with how it failed: "<SQLSTATE> <message> <hint>", e.g.
-- "PT409 SLOT_TAKEN conflict_check" (SQLSTATE PTxyz = HTTP status xyz, message = code, hint = step).
-- Like a real failed request, whatever the statement wrote is rolled back.
create or replace function tests.booking_error(p_sql text) returns text
language plpgsql as $$
declare
  v_state text; v_message text; v_hint text;
begin
  execute p_sql;
  return 'no error';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint;
  return concat_ws(' ', v_state, v_message, nullif(v_hint, ''));
end;
$$;

-- Row counts of every table a booking may write.
create or replace function tests.row_counts() returns jsonb
language sql security definer set search_path = '' as $$
  select jsonb_build_object(
    'patients',          (select count(*) from public.patients),
    'appointments',      (select count(*) from public.appointments),
    'sync_retry_queue',  (select count(*) from public.sync_retry_queue),
    'idempotency_keys',  (select count(*) from public.idempotency_keys),
    'booking_failures',  (select count(*) from public.booking_failures));
$$;

-- remember_counts() then new_rows(): which tables gained (or lost) rows since, e.g. {"patients": 1}; {} if none.
create or replace function tests.remember_counts() returns void
language plpgsql as $$
begin
  if to_regclass('pg_temp.remembered_counts') is null then
    create temp table remembered_counts (counts jsonb);
  end if;
  delete from remembered_counts;
  insert into remembered_counts values (tests.row_counts());
end;
$$;

create or replace function tests.new_rows() returns jsonb
language plpgsql as $$
begin
  return (
    select coalesce(jsonb_object_agg(now.key, now.value::int - before.value::int)
                    filter (where now.value::int <> before.value::int), '{}')
    from jsonb_each_text(tests.row_counts()) now
    join jsonb_each_text((select counts from remembered_counts)) before using (key));
end;
$$;

-- A slot N days from today at the given hour, UTC: always in the future, never overlapping another day's.
create or replace function tests.slot(p_days integer, p_hour integer default 15) returns timestamptz
language sql as $$
  select date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'
         + make_interval(days => p_days, hours => p_hour);
$$;

-- A made-up new patient, distinct per tag.
create or replace function tests.new_patient(p_tag text) returns jsonb
language sql as $$
  select jsonb_build_object('first_name', 'Test', 'last_name', 'Patient ' || p_tag,
                            'email', 'patient.' || p_tag || '@example.com');
$$;

-- For failures no data can provoke: a trigger function that fails whatever it is attached to, with the
-- SQLSTATE given as the trigger's argument (default P0001). A test attaches it inside its own transaction,
-- which rolls back with the test.
create or replace function tests.injected_failure() returns trigger
language plpgsql as $$
begin
  raise exception 'injected failure for a test' using errcode = coalesce(tg_argv[0], 'P0001');
end;
$$;

-- The demo practice of supabase/seed.sql, by role.
create or replace function tests.id(p_name text) returns uuid
language sql immutable as $$
  select case p_name
    when 'rivera'    then 'a1000000-0000-4000-8000-000000000001'  -- bookable; Beehive, Canyon, Lakeside
    when 'okafor'    then 'a1000000-0000-4000-8000-000000000002'  -- bookable; Beehive, Summit, Lakeside
    when 'lindqvist' then 'a1000000-0000-4000-8000-000000000003'  -- bookable; Canyon, Lakeside (not Summit)
    when 'whitfield' then 'a1000000-0000-4000-8000-000000000004'  -- not bookable
    when 'beehive'   then 'b2000000-0000-4000-8000-000000000001'  -- own 60-minute intake
    when 'canyon'    then 'b2000000-0000-4000-8000-000000000002'  -- own 90-minute intake
    when 'summit'    then 'b2000000-0000-4000-8000-000000000003'  -- own 60-minute intake, plus a retired one
    when 'lakeside'  then 'b2000000-0000-4000-8000-000000000004'  -- no instance: the global intake
    when 'global_intake' then 'd4000000-0000-4000-8000-000000000001'
    when 'jordan'    then 'e5000000-0000-4000-8000-000000000001'  -- an existing patient
  end::uuid;
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

select plan(1);
select has_function('tests', 'booking_error', array['text'], 'test helpers are installed');
select * from finish();
