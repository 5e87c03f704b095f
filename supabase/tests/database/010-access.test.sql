-- The browser-facing roles can neither read nor write any table nor call any function; the worker's role can
-- call the API.
begin;
select plan(13);

-- Tries select, insert, update and delete on every table in public as the current role; answers the ones
-- that got past the privilege check.
create function pg_temp.operations_allowed() returns text[]
language plpgsql as $$
declare
  v_table text; v_column text; v_sql text; v_allowed text[] := '{}';
begin
  for v_table, v_column in
    select c.relname, (select a.attname from pg_attribute a where a.attrelid = c.oid and a.attnum = 1)
    from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' order by 1
  loop
    foreach v_sql in array array[
      format('select 1 from public.%I limit 1', v_table),
      format('insert into public.%I default values', v_table),
      format('update public.%I set %I = %I', v_table, v_column, v_column),
      format('delete from public.%I', v_table)]
    loop
      begin
        execute v_sql;
        v_allowed := v_allowed || v_sql;
      exception
        when insufficient_privilege then null;
        when others then v_allowed := v_allowed || v_sql;   -- past the privilege check, failed on data
      end;
    end loop;
  end loop;
  return v_allowed;
end;
$$;
grant execute on function pg_temp.operations_allowed() to anon, authenticated;

select is(
  array(select relname::text from pg_class
        where relnamespace = 'public'::regnamespace and relkind = 'r' and not relrowsecurity),
  '{}'::text[], 'row level security is on for every table');
select is(
  array(select c.relname::text from pg_class c
        where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
          and not exists (select from pg_policies p where p.schemaname = 'public' and p.tablename = c.relname
                          and p.permissive = 'RESTRICTIVE' and p.roles @> '{anon,authenticated}' and p.qual = 'false')),
  '{}'::text[], 'every table has a restrictive policy refusing anon and authenticated');
select is(
  array(select distinct table_name::text from information_schema.role_table_grants
        where table_schema = 'public' and grantee in ('anon', 'authenticated')),
  '{}'::text[], 'anon and authenticated hold no privilege on any table');
select is(
  array(select p.oid::regprocedure::text from pg_proc p
        where p.pronamespace = 'public'::regnamespace
          and (has_function_privilege('anon', p.oid, 'execute') or has_function_privilege('authenticated', p.oid, 'execute'))),
  '{}'::text[], 'anon and authenticated may execute no function in public');
select ok(not has_schema_privilege('anon', 'private', 'usage') and not has_schema_privilege('authenticated', 'private', 'usage'),
  'anon and authenticated cannot use the private schema');
select is(
  array(select p.proname::text from pg_proc p
        where p.pronamespace = 'public'::regnamespace
          and not (p.prosecdef and p.proconfig @> array['search_path=""'])),
  '{}'::text[], 'every function in public is security definer with an empty search_path');

set local role anon;
select is(pg_temp.operations_allowed(), '{}'::text[], 'anon can neither read nor write any table');
select is(tests.booking_error($$select public.book_appointment('r', gen_random_uuid(), 'cash-payment', now(), 'telehealth')$$),
  '42501 permission denied for function book_appointment', 'anon cannot call book_appointment');
select is(tests.booking_error($$select public.record_booking_failure('r', 'payer_lookup', 'INVALID_PAYER', 'm')$$),
  '42501 permission denied for function record_booking_failure', 'anon cannot call record_booking_failure');
reset role;

set local role authenticated;
select is(pg_temp.operations_allowed(), '{}'::text[], 'authenticated can neither read nor write any table');
select is(tests.booking_error($$select public.book_appointment('r', gen_random_uuid(), 'cash-payment', now(), 'telehealth')$$),
  '42501 permission denied for function book_appointment', 'authenticated cannot call book_appointment');
reset role;

set local role service_role;
select ok(public.book_appointment('access-check', tests.id('rivera'), 'cash-payment', tests.slot(3), 'telehealth',
          p_patient => tests.new_patient('access'))->>'appointment_id' is not null,
  'service_role can book');
select ok(public.record_booking_failure('access-check', 'payer_lookup', 'INVALID_PAYER', 'unknown payer') is not null,
  'service_role can record a failure');
reset role;

select * from finish();
rollback;
