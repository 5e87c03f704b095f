-- book_appointment in chapters (20261125000100_book_appointment_in_chapters.sql): a short sequence of private step
-- functions nobody else may call, one same-slot lookup, two exception blocks where there were four; and the
-- corners of the error scheme the rewrite moved (a date of birth checked without a cast, errors outside the
-- inserts, an exclusion violation).
begin;
select plan(23);

create temp table step_functions (signature text);
insert into step_functions values
  ('private.claim_booking_call(text, uuid)'),
  ('private.check_booking_arguments(text, uuid, text, timestamptz, text, uuid, jsonb, text, text, jsonb, jsonb, integer)'),
  ('private.claim_idempotency_key(text, text, uuid, jsonb, uuid, text, timestamptz, text, text, jsonb, jsonb)'),
  ('private.resolve_patient(text, uuid, public.patients)'),
  ('private.insert_patient(text, public.patients)'),
  ('private.resolve_provider(uuid)'),
  ('private.resolve_payer(text, uuid)'),
  ('private.resolve_service_instance(uuid)'),
  ('private.lock_booking_slots(uuid, uuid)'),
  ('private.check_slot(uuid, uuid, timestamptz, integer, boolean)'),
  ('private.same_slot_appointment(uuid, uuid, timestamptz)'),
  ('private.insert_appointment(text, public.patients, public.patients, uuid, public.payers, uuid, timestamptz, timestamptz, text, text, jsonb, jsonb, integer, boolean)'),
  ('private.settle_slot_conflict(uuid, uuid, timestamptz, boolean, text)'),
  ('private.answer_booking(uuid, boolean, boolean, text)'),
  ('private.raise_unexpected_booking_error(text, text, text, text)'),
  ('private.calendar_date(text)');

-- The shape -----------------------------------------------------------------------------------------------------
select is(array(select signature from step_functions where to_regprocedure(signature) is null), '{}'::text[],
  'the step functions exist');
select is(
  array(select signature from step_functions s, unnest(array['anon', 'authenticated', 'service_role']) r
        where has_function_privilege(r, to_regprocedure(s.signature), 'execute')),
  '{}'::text[], 'no API role may execute a step function (only book_appointment, as their owner, calls them)');
select is(
  array(select signature from step_functions s join pg_proc p on p.oid = to_regprocedure(s.signature)
        where p.prosecdef or not coalesce(p.proconfig @> array['search_path=""'], false)),
  '{}'::text[], 'the step functions are not security definer and have an empty search_path');
select ok(
  (select p.prosecdef and p.proconfig @> array['search_path=""'] and not has_function_privilege('anon', p.oid, 'execute')
          and not has_function_privilege('authenticated', p.oid, 'execute') and has_function_privilege('service_role', p.oid, 'execute')
   from pg_proc p where p.oid = 'public.book_appointment'::regproc),
  'book_appointment keeps its privileges: security definer, empty search_path, service_role only');
select cmp_ok(
  (select array_length(string_to_array(p.prosrc, E'\n'), 1) from pg_proc p where p.oid = 'public.book_appointment'::regproc),
  '<=', 50, 'book_appointment''s body is short (declarations and the error handler included)');
select ok(
  (select bool_and(x.at > 0) and array_agg(x.at order by x.n) = array_agg(x.at order by x.at)
   from pg_proc p,
        unnest(array['check_booking_arguments', 'claim_idempotency_key', 'resolve_patient', 'resolve_provider',
                     'resolve_payer', 'resolve_service_instance', 'check_slot', 'insert_appointment']) with ordinality s(f, n),
        lateral (select s.n, strpos(p.prosrc, 'private.' || s.f || '(') as at) x
   where p.oid = 'public.book_appointment'::regproc),
  'book_appointment calls the steps, in order');
select is(
  array(select n.nspname || '.' || p.proname || ': ' || (select count(*) from regexp_matches(p.prosrc, '(?n)^\s*exception\M', 'gi'))
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where (p.oid = 'public.book_appointment'::regproc or p.oid in (select to_regprocedure(signature) from step_functions))
          and p.prosrc ~* '(?n)^\s*exception\M'
        order by 1),
  array['private.insert_appointment: 1', 'public.book_appointment: 1'],
  'two exception blocks (subtransactions) per booking: book_appointment''s, and the appointment insert''s for an overlap');
select is(
  array(select n.nspname || '.' || p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname in ('public', 'private') and p.prosrc ~ 'start_time = p_start'
          -- (booking_by_request matches the asking request's own appointment by its request id, not a slot)
          and p.proname <> 'booking_by_request'),
  array['private.same_slot_appointment'],
  'the same patient''s same slot is looked up in one function');

-- Corners of the error scheme -------------------------------------------------------------------------------------
set local role service_role;

create function pg_temp.error_detail(p_sql text) returns text
language plpgsql as $$
declare v_state text; v_message text; v_hint text; v_detail text;
begin
  execute p_sql;
  return 'no error';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint,
                          v_detail = pg_exception_detail;
  return concat_ws(' ', v_state, v_message, nullif(v_hint, '')) || ': ' || coalesce(v_detail, '');
end;
$$;
create function pg_temp.book_born(p_tag text, p_date_of_birth text) returns text
language sql as $$
  select pg_temp.error_detail(format(
    $f$select public.book_appointment('req-dob-%s', tests.id('rivera'), 'cash-payment', tests.slot(11), 'telehealth',
         p_patient => tests.new_patient('dob-%s') || jsonb_build_object('date_of_birth', %L::text))$f$,
    p_tag, p_tag, p_date_of_birth));
$$;

-- A date of birth is checked without casting it inside an exception block: the same answers as the cast gave.
select tests.remember_counts();
select is(pg_temp.book_born('1', '1900-02-29'),
  'PT400 INVALID_REQUEST request_validation: p_patient.date_of_birth is not a date', '1900 was no leap year');
select is(pg_temp.book_born('2', '0000-01-01'),
  'PT400 INVALID_REQUEST request_validation: p_patient.date_of_birth is not a date', 'there is no year 0');
select is(pg_temp.book_born('3', '2023-04-31'),
  'PT400 INVALID_REQUEST request_validation: p_patient.date_of_birth is not a date', 'April has 30 days');
select is(pg_temp.book_born('4', '2023-00-10'),
  'PT400 INVALID_REQUEST request_validation: p_patient.date_of_birth is not a date', 'there is no month 0');
select is(pg_temp.book_born('5', '2023-1-10'),
  'PT400 INVALID_REQUEST request_validation: p_patient.date_of_birth must be YYYY-MM-DD', 'the shape is checked first');
select is(tests.new_rows(), '{}', 'refused dates of birth leave no row behind');
select is(
  (public.book_appointment('req-dob-6', tests.id('rivera'), 'cash-payment', tests.slot(12), 'telehealth',
     p_patient => tests.new_patient('dob-6') || '{"date_of_birth": "2000-02-29"}')->'patient'->>'date_of_birth'),
  '2000-02-29', '2000 was a leap year');

-- Errors the steps did not raise themselves are named after the step they arose in, with their diagnostic.
reset role;  -- creating triggers needs the owner
create function pg_temp.book_with_failing(p_table text, p_events text, p_sqlstate text, p_patient text, p_days integer)
returns text
language plpgsql as $$
declare
  v_result text;
begin
  execute format('create trigger injected_failure before %s on public.%I
                  for each row execute function tests.injected_failure(%L)', p_events, p_table, p_sqlstate);
  v_result := pg_temp.error_detail(format(
    $f$select public.book_appointment('req-corner', tests.id('okafor'), tests.id('summit')::text, tests.slot(%s),
         'in_person', p_patient => tests.new_patient(%L) || '{"date_of_birth": "1980-01-02"}', p_idempotency_key => %L)$f$,
    p_days, p_patient, 'key-corner-' || p_table || '-' || p_sqlstate || '-' || p_days));
  execute format('drop trigger injected_failure on public.%I', p_table);
  return v_result;
end;
$$;
select tests.remember_counts();
select is(pg_temp.book_with_failing('patients', 'insert', 'P0001', 'corner-1', 13),
  'PT500 PATIENT_CREATION_FAILED patient_resolution: patient insert failed: P0001', 'a failed patient insert, with its SQLSTATE');
select is(pg_temp.book_with_failing('appointments', 'insert', '23505', 'corner-2', 13),
  'PT500 APPOINTMENT_INSERT_FAILED appointment_insert: appointment insert failed: 23505', 'a failed appointment insert, with its SQLSTATE');
select is(pg_temp.book_with_failing('appointments', 'insert', '23P01', 'corner-3', 13),
  'PT409 SLOT_TAKEN conflict_check: the provider has another appointment overlapping this time',
  'an exclusion violation, wherever it comes from, never leaves as 23P01');
select is(pg_temp.book_with_failing('sync_retry_queue', 'insert', '40001', 'corner-4', 13),
  'PT503 DATABASE_UNAVAILABLE appointment_insert: database unavailable: 40001', 'a serialization failure, worth retrying');
select is(pg_temp.book_with_failing('idempotency_keys', 'update', 'P0001', 'corner-5', 13),
  'PT500 INTERNAL_ERROR appointment_insert: unexpected error: P0001',
  'an error while answering a new booking belongs to appointment_insert');
select ok(public.book_appointment('req-corner-first', tests.id('okafor'), tests.id('summit')::text, tests.slot(14),
            'in_person', p_patient => tests.new_patient('corner-6') || '{"date_of_birth": "1980-01-02"}')->>'appointment_id' is not null,
  'a slot is booked (with a date of birth: the same request again is a duplicate)');
select is(pg_temp.book_with_failing('idempotency_keys', 'update', 'P0001', 'corner-6', 14),
  'PT500 INTERNAL_ERROR conflict_check: unexpected error: P0001',
  'an error while answering the same patient''s same slot belongs to conflict_check');
select is(tests.new_rows(), '{"patients": 1, "appointments": 1, "sync_retry_queue": 1}',
  'only the booking that succeeded left rows behind');

select * from finish();
rollback;
