-- Gives a plain PostgreSQL database the shape of a Supabase one, so that migrations, grants and row level
-- security behave here as they do on a hosted project or under `supabase start`. Idempotent; run as a
-- superuser. Never applied to a real Supabase database (it already has all of this).

-- Cluster-wide roles, as Supabase creates them.
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit password 'postgres';
  end if;
end
$$;
grant anon, authenticated, service_role to authenticator;

-- Per-database shape: the extensions schema, the API roles' usage of public, and Supabase's default
-- privileges, which hand every new table and function in public to anon and authenticated. Migrations must
-- take those grants back explicitly, exactly as they must on a hosted project.
create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;

do $$
begin
  execute format('alter database %I set search_path to "$user", public, extensions', current_database());
end
$$;
