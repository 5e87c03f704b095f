-- Booking attempts per email (20261126000300_booking_attempt_limits.sql): a limit per sliding hour, a refusal
-- that writes nothing and says when to retry, one email however it is typed, the email never stored in clear,
-- a table that keeps about a day, argument validation, and who may call it. Time stands still in a transaction
-- (now() does not move), so it passes by moving attempted_at back, as the owner.
-- (Two concurrent attempts need two connections; here: the attempt holds its email's advisory lock.)
begin;
select plan(50);

-- As the owner (it moves time): attempted_at of one attempt (by its request id) moved to now() - p_age.
create function pg_temp.age(p_request_id text, p_age interval) returns void
language sql security definer as $$
  update public.booking_attempts set attempted_at = now() - p_age where request_id = p_request_id
$$;

set local role service_role;

-- "<SQLSTATE> <code> <step>: <detail>", or 'no error'.
create function pg_temp.answer(p_sql text) returns text
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
create function pg_temp.note(p_email text, p_request_id text default 'req-limit', p_limit integer default 5) returns jsonb
language sql as $$ select public.note_booking_attempt(p_email, p_request_id, p_limit) $$;
-- The hash an email is counted under, computed here independently: sha256 of the NFC, lower-case email in UTF-8.
create function pg_temp.hash(p_email text) returns bytea
language sql as $$ select sha256(convert_to(lower(normalize(p_email, nfc)), 'UTF8')) $$;
create function pg_temp.stored(p_email text) returns bigint
language sql as $$ select count(*) from public.booking_attempts where email_hash = pg_temp.hash(p_email) $$;

-- Five an hour, the sixth refused -----------------------------------------------------------------------------
select is(pg_temp.note('ada.limit@example.com', 'req-ada-1'), '{"allowed": true, "retry_after_seconds": null}',
  'a first attempt is allowed');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-2'), '{"allowed": true, "retry_after_seconds": null}',
  'a second');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-3'), '{"allowed": true, "retry_after_seconds": null}',
  'a third');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-4'), '{"allowed": true, "retry_after_seconds": null}',
  'a fourth');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-5'), '{"allowed": true, "retry_after_seconds": null}',
  'a fifth: the limit reached');
select is(pg_temp.stored('ada.limit@example.com'), 5::bigint, 'each allowed attempt is recorded under the email''s hash');
select is((select array_agg(request_id::text order by id) from public.booking_attempts
           where email_hash = pg_temp.hash('ada.limit@example.com')),
  '{req-ada-1,req-ada-2,req-ada-3,req-ada-4,req-ada-5}', 'with its request id');

create temp table sixth as select pg_temp.note('ada.limit@example.com', 'req-ada-6') as r;
select is((select r->'allowed' from sixth), 'false', 'the sixth attempt in the hour is refused');
select ok((select (r->>'retry_after_seconds')::integer between 1 and 3600 from sixth),
  'with a retry_after_seconds between 1 and 3600');
select is((select (r->>'retry_after_seconds')::integer from sixth), 3600,
  'exactly until the oldest counted attempt leaves the hour (all five made now)');
select is(pg_temp.stored('ada.limit@example.com'), 5::bigint, 'a refused attempt writes nothing');
select is((select count(*) from public.booking_attempts where request_id = 'req-ada-6'), 0::bigint,
  'not even under its request id');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-7') -> 'allowed', 'false',
  'and refusals do not add up: still refused, still five stored');

select is(pg_temp.note('bo.limit@example.com', 'req-bo-1'), '{"allowed": true, "retry_after_seconds": null}',
  'another email is unaffected');

-- One email however it is typed ------------------------------------------------------------------------------
select is(pg_temp.note('ADA.Limit@Example.COM', 'req-ada-case') -> 'allowed', 'false',
  'the same email in another case counts together');
select is(pg_temp.note('  ada.limit@example.com ', 'req-ada-spaces') -> 'allowed', 'false',
  'and with spaces around it (book_appointment trims them)');
select is(pg_temp.note(U&'jos\00E9.limit@example.com', 'req-jose-1'), '{"allowed": true, "retry_after_seconds": null}',
  'José with a composed é (NFC): allowed');
select is(pg_temp.note(U&'jose\0301.limit@example.com', 'req-jose-2'), '{"allowed": true, "retry_after_seconds": null}',
  'José with a combining accent (NFD): allowed');
select is(pg_temp.stored(U&'jos\00E9.limit@example.com'), 2::bigint, 'NFC and NFD are one email: both counted under one hash');
select pg_temp.note(U&'JOSE\0301.limit@example.com', 'req-jose-3');
select pg_temp.note(U&'jos\00E9.limit@example.com', 'req-jose-4');
select pg_temp.note(U&'jose\0301.limit@example.com', 'req-jose-5');
select is(pg_temp.note(U&'jos\00C9.LIMIT@example.com', 'req-jose-6') -> 'allowed', 'false',
  'five of them, in either form and case: the sixth is refused');

-- The email is not stored in clear ----------------------------------------------------------------------------
select is((select array_agg(column_name::text order by ordinal_position) from information_schema.columns
           where table_schema = 'public' and table_name = 'booking_attempts'),
  '{email_hash,attempted_at,request_id,id}', 'booking_attempts has the email''s hash, a time, a request id and an id');
select is((select count(*) from public.booking_attempts a
           where to_jsonb(a)::text ilike '%limit@example%' or to_jsonb(a)::text ilike '%example.com%'
              or encode(a.email_hash, 'escape') ilike '%example%'),
  0::bigint, 'no column holds the email (or any part of it) in clear');
select is((select distinct octet_length(email_hash) from public.booking_attempts where request_id like 'req-ada-%'), 32,
  'the hash is a SHA-256');

-- A sliding hour ---------------------------------------------------------------------------------------------
select pg_temp.age('req-ada-1', interval '50 minutes');
select pg_temp.age('req-ada-2', interval '40 minutes');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-8'), '{"allowed": false, "retry_after_seconds": 600}',
  'the oldest attempt 50 minutes old: refused, retry in 600 seconds');
select pg_temp.age('req-ada-1', interval '59 minutes 59.5 seconds');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-9'), '{"allowed": false, "retry_after_seconds": 1}',
  'half a second left: retry_after_seconds rounds up, to 1');
select pg_temp.age('req-ada-1', interval '1 hour');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-10'), '{"allowed": true, "retry_after_seconds": null}',
  'an attempt an hour old no longer counts: allowed again');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-11'), '{"allowed": false, "retry_after_seconds": 1200}',
  'which took the place: refused until the next oldest (40 minutes old) leaves');
select is(pg_temp.stored('ada.limit@example.com'), 6::bigint, 'the attempt an hour old is still stored (for a day)');

-- A lowered limit: room only once enough have left
select pg_temp.age('req-ada-3', interval '30 minutes');
select pg_temp.age('req-ada-4', interval '20 minutes');
select pg_temp.age('req-ada-5', interval '10 minutes');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-12', 3), '{"allowed": false, "retry_after_seconds": 2400}',
  'five counted (40, 30, 20, 10, 0 minutes old) against a limit of 3: retry once three have left, the third in 40 minutes');
select is(pg_temp.note('ada.limit@example.com', 'req-ada-13', 6), '{"allowed": true, "retry_after_seconds": null}',
  'a raised limit makes room at once');

-- About a day kept --------------------------------------------------------------------------------------------
reset role;
insert into public.booking_attempts (email_hash, attempted_at, request_id)
values (pg_temp.hash('old.one@example.com'), now() - interval '25 hours', 'req-old-25h'),
       (pg_temp.hash('old.two@example.com'), now() - interval '23 hours', 'req-old-23h');
set local role service_role;
select pg_temp.note('ada.limit@example.com', 'req-ada-14', 6);
select is((select count(*) from public.booking_attempts where request_id = 'req-old-25h'), 1::bigint,
  'a refused attempt deletes nothing either');
select is(pg_temp.note('cy.limit@example.com', 'req-cy-1') -> 'allowed', 'true', 'an allowed attempt (another email)');
select is((select count(*) from public.booking_attempts where request_id = 'req-old-25h'), 0::bigint,
  'deletes attempts older than a day, of any email');
select is((select count(*) from public.booking_attempts where request_id = 'req-old-23h'), 1::bigint,
  'and keeps younger ones');

-- Serialised per email ---------------------------------------------------------------------------------------
select ok(exists (
    select from pg_locks l
    where l.locktype = 'advisory' and l.pid = pg_backend_pid() and l.granted and l.objsubid = 1
      and ((l.classid::bigint << 32) | l.objid::bigint)
          = hashtextextended('booking_attempts:' || encode(pg_temp.hash('cy.limit@example.com'), 'hex'), 0)),
  'an attempt holds its email''s advisory lock until its transaction ends');

-- Argument validation ----------------------------------------------------------------------------------------
create temp table before_validation as select count(*) as n from public.booking_attempts;
select is(pg_temp.answer($$select public.note_booking_attempt(null, 'req-v', 5)$$),
  'PT400 INVALID_REQUEST request_validation: p_email must be 1-254 characters', 'no email: 400');
select is(pg_temp.answer($$select public.note_booking_attempt('', 'req-v', 5)$$),
  'PT400 INVALID_REQUEST request_validation: p_email must be 1-254 characters', 'an empty email: 400');
select is(pg_temp.answer($$select public.note_booking_attempt('   ', 'req-v', 5)$$),
  'PT400 INVALID_REQUEST request_validation: p_email must be 1-254 characters', 'an email of spaces: 400');
select is(pg_temp.answer(format('select public.note_booking_attempt(%L, %L, 5)', repeat('a', 243) || '@example.com', 'req-v')),
  'PT400 INVALID_REQUEST request_validation: p_email must be 1-254 characters', 'an email of 255 characters: 400');
select is(pg_temp.answer(format('select public.note_booking_attempt(%L, %L, 5)', repeat('a', 242) || '@example.com', 'req-v-254')),
  'no error', 'one of 254 characters is counted');
select is(pg_temp.answer($$select public.note_booking_attempt('v@example.com', 'req-v', null)$$),
  'PT400 INVALID_REQUEST request_validation: p_limit_per_hour must be between 1 and 10000', 'no limit: 400');
select is(pg_temp.answer($$select public.note_booking_attempt('v@example.com', 'req-v', 0)$$),
  'PT400 INVALID_REQUEST request_validation: p_limit_per_hour must be between 1 and 10000',
  'a limit of 0: 400 (0 means off: the worker does not call)');
select is(pg_temp.answer($$select public.note_booking_attempt('v@example.com', 'req-v', 10001)$$),
  'PT400 INVALID_REQUEST request_validation: p_limit_per_hour must be between 1 and 10000', 'a limit over 10000: 400');
select is(pg_temp.answer($$select public.note_booking_attempt('v@example.com', null, 5)$$),
  'PT400 INVALID_REQUEST request_validation: p_request_id must be 1-64 characters of [A-Za-z0-9._-]', 'no request id: 400');
select is(pg_temp.answer($$select public.note_booking_attempt('v@example.com', 'v@example.com', 5)$$),
  'PT400 INVALID_REQUEST request_validation: p_request_id must be 1-64 characters of [A-Za-z0-9._-]',
  'a malformed request id (one that could carry an email): 400');
select is((select count(*) from public.booking_attempts) - (select n from before_validation), 1::bigint,
  'refused arguments write nothing (only the valid 254-character email was counted)');

-- Who may call it --------------------------------------------------------------------------------------------
select ok(has_function_privilege('service_role', 'public.note_booking_attempt(text, text, integer)', 'execute'),
  'service_role can execute note_booking_attempt');
select ok(not has_function_privilege('anon', 'public.note_booking_attempt(text, text, integer)', 'execute')
          and not has_function_privilege('authenticated', 'public.note_booking_attempt(text, text, integer)', 'execute'),
  'anon and authenticated cannot');
reset role;
set local role anon;
select is(tests.booking_error($$select public.note_booking_attempt('x@example.com', 'req-anon', 5)$$),
  '42501 permission denied for function note_booking_attempt', 'anon is refused when it calls');
select is(tests.booking_error($$select count(*) from public.booking_attempts$$),
  '42501 permission denied for table booking_attempts', 'anon cannot read booking_attempts');
reset role;

select * from finish();
rollback;
