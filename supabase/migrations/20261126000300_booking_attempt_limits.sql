-- =============================================================================================================
-- Booking attempts per email (issue 12, "Abuse limits"; the database half). BOOKING_LIMIT_PER_EMAIL_PER_HOUR
-- (default 5, 0 = off) bounds the booking attempts made for one patient email in any hour, whichever isolate
-- serves them. The worker calls note_booking_attempt before a booking (not for trusted callers, not when the
-- limit is 0) and answers 429 RATE_LIMITED with Retry-After when it is refused.
--
--   identity        the email as book_appointment compares it: trimmed, then private.email_key (NFC, lower
--                   case). Only its SHA-256 is stored, never the email.
--   sliding hour    an attempt counts while it is less than an hour old. An allowed attempt is recorded; a
--                   refused one writes nothing (so a flood of refused attempts never extends its own wait).
--   exact           one database decides for every isolate: attempts for one email are serialised on an
--                   advisory lock named after its hash (held until the transaction ends), so two concurrent
--                   attempts never both take the last place. Call it in READ COMMITTED (PostgREST does): the
--                   count after the lock must see what the previous holder committed.
--   small           an allowed attempt also deletes up to 1000 attempts older than a day (any email), skipping
--                   rows a concurrent cleanup holds, so the table holds about a day of attempts.
-- =============================================================================================================

-- (The identity column is not the first: an UPDATE of an always-generated column fails before the privilege
-- check, which would hide what 010-access.test.sql probes by updating each table's first column.)
create table public.booking_attempts (
  email_hash   bytea not null check (octet_length(email_hash) = 32),   -- sha256 of the email's identity key
  attempted_at timestamptz not null default now(),
  request_id   public.request_id,                                      -- the attempt's request (1-64 characters)
  id           bigint generated always as identity primary key
);
create index booking_attempts_email_hash_attempted_at on public.booking_attempts (email_hash, attempted_at);
create index booking_attempts_attempted_at on public.booking_attempts (attempted_at);  -- the cleanup
select private.close_to_browser_roles('public.booking_attempts');

comment on table public.booking_attempts is
  'Booking attempts allowed per patient email (its SHA-256 only), for BOOKING_LIMIT_PER_EMAIL_PER_HOUR; about a day of them.';
comment on column public.booking_attempts.email_hash is
  'sha256 of private.email_key(btrim(email)) in UTF-8: the email as book_appointment compares it, never stored in clear.';

-- The hash an email is counted under: the email as book_appointment stores and compares it (trimmed, NFC, lower
-- case), in UTF-8.
create function private.booking_attempt_email_hash(p_email text)
returns bytea
language sql
immutable
set search_path = ''
as $$
  select sha256(convert_to(private.email_key(btrim(p_email)), 'UTF8'));
$$;

-- note_booking_attempt ----------------------------------------------------------------------------------------
-- Counts a booking attempt for p_email against p_limit_per_hour attempts in any hour: {"allowed": true,
-- "retry_after_seconds": null} and the attempt recorded; or {"allowed": false, "retry_after_seconds": n}, n the
-- whole seconds (at least 1) until enough counted attempts have left the hour for one more, and nothing written.
create function public.note_booking_attempt(p_email text, p_request_id text, p_limit_per_hour integer)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_hash  bytea;
  v_count integer;
  v_frees timestamptz;    -- when the attempt whose leaving makes room leaves the hour
begin
  perform private.require_request_id(p_request_id);
  if p_limit_per_hour is null or p_limit_per_hour not between 1 and 10000 then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_limit_per_hour must be between 1 and 10000');
  end if;
  if p_email is null or char_length(btrim(p_email)) not between 1 and 254 then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_email must be 1-254 characters');
  end if;
  v_hash := private.booking_attempt_email_hash(p_email);

  -- One attempt per email at a time, until the transaction ends; the statements after it see what the previous
  -- holder committed.
  perform pg_advisory_xact_lock(hashtextextended('booking_attempts:' || encode(v_hash, 'hex'), 0));

  select count(*) into v_count
  from public.booking_attempts
  where email_hash = v_hash and attempted_at > now() - interval '1 hour';
  if v_count >= p_limit_per_hour then
    -- Room for one more once all but p_limit_per_hour - 1 of them have left: the (v_count - limit + 1)th oldest
    -- (the oldest, unless the limit was lowered).
    select a.attempted_at + interval '1 hour' into v_frees
    from public.booking_attempts a
    where a.email_hash = v_hash and a.attempted_at > now() - interval '1 hour'
    order by a.attempted_at, a.id
    offset v_count - p_limit_per_hour
    limit 1;
    return jsonb_build_object('allowed', false,
      'retry_after_seconds', greatest(1, ceil(extract(epoch from v_frees - now())))::integer);
  end if;

  insert into public.booking_attempts (email_hash, request_id) values (v_hash, p_request_id);
  delete from public.booking_attempts
  where id = any(array(select o.id from public.booking_attempts o
                       where o.attempted_at < now() - interval '1 day'
                       limit 1000
                       for update skip locked))
    and attempted_at < now() - interval '1 day';
  return jsonb_build_object('allowed', true, 'retry_after_seconds', null);
end;
$$;

comment on function public.note_booking_attempt is
  'Counts a booking attempt for an email against p_limit_per_hour in a sliding hour: {allowed, retry_after_seconds}; a refusal writes nothing.';

revoke all on function public.note_booking_attempt(text, text, integer) from public, anon, authenticated;
grant execute on function public.note_booking_attempt(text, text, integer) to service_role;
revoke all on function private.booking_attempt_email_hash(text) from public, anon, authenticated, service_role;
