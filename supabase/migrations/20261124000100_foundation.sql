-- =============================================================================================================
-- Foundation: extensions, the private schema for internals, and small shared pieces.
--
-- Access model for the whole database (hosted Supabase, `supabase start` and the local stack alike):
--   * Every table has row level security on, a policy refusing `anon` and `authenticated` everything, and
--     their table privileges revoked (private.close_to_browser_roles): the browser-facing keys can neither
--     read nor write anything.
--   * The worker calls API functions in `public` through PostgREST with the `service_role` key. Those functions
--     are `security definer` with an empty `search_path` (every name is schema-qualified) and EXECUTE is
--     granted to `service_role` only.
--   * Internals live in schema `private`, which PostgREST does not expose and the API roles cannot use.
-- =============================================================================================================

-- Exclusion constraints mixing `uuid =` with range overlap need btree_gist. Supabase keeps extensions out of
-- `public`.
create schema if not exists extensions;
create extension if not exists btree_gist with schema extensions;

create schema if not exists private;
revoke all on schema private from public, anon, authenticated, service_role;

-- A request id travels from the HTTP request to every row it writes: a UUID, or 1-64 characters of
-- [A-Za-z0-9._-] chosen by the client (the same rule the worker applies to X-Request-Id).
create domain public.request_id as text
  check (value ~ '^[A-Za-z0-9._-]{1,64}$');

-- Booking errors are raised in one scheme, documented with book_appointment: SQLSTATE 'PT' || HTTP status,
-- message = the contract's code, hint = the step, detail = a diagnostic without patient data.
create function private.fail(p_status integer, p_code text, p_step text, p_detail text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'PT' || p_status::text,
    message = p_code,
    hint    = p_step,
    detail  = p_detail;
end;
$$;

-- Every API function takes the caller's request id first and refuses a malformed one.
create function private.require_request_id(p_request_id text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_request_id is null or p_request_id !~ '^[A-Za-z0-9._-]{1,64}$' then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation',
      'p_request_id must be 1-64 characters of [A-Za-z0-9._-]');
  end if;
end;
$$;

-- Closes a table to the browser-facing roles: row level security on, their privileges revoked, and one policy
-- that says so (a table with RLS and no policy at all reads as an oversight; this one is deliberate).
-- service_role, which bypasses RLS, keeps Supabase's default table privileges for staff tooling.
create function private.close_to_browser_roles(p_table regclass) returns void
language plpgsql
set search_path = ''
as $$
begin
  execute format('alter table %s enable row level security', p_table);
  execute format('revoke all on table %s from anon, authenticated', p_table);
  execute format('create policy "no access for browser roles" on %s as restrictive for all to anon, authenticated '
                 'using (false) with check (false)', p_table);
end;
$$;

-- Keeps updated_at honest on every table that has one.
create function private.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;
