-- =============================================================================================================
-- Patients. One row per person, found again by a normalised identity: email, first name, last name and date
-- of birth (NULL when the form did not give one). A unique index on that identity is what makes concurrent
-- first bookings of one new patient end with ONE row: the second insert waits for the first and then finds it.
-- =============================================================================================================

-- How names compare: case folded, whitespace trimmed and runs of it collapsed ("  Mary  Ann " = "mary ann").
create function private.name_key(p_name text)
returns text
language sql
immutable
set search_path = ''
as $$
  select lower(btrim(regexp_replace(p_name, '\s+', ' ', 'g')));
$$;

create table public.patients (
  id                    uuid primary key default gen_random_uuid(),
  first_name            text not null check (char_length(first_name) between 1 and 100),
  last_name             text not null check (char_length(last_name) between 1 and 100),
  email                 text not null check (char_length(email) <= 254 and email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
  phone                 text check (char_length(phone) between 1 and 32),
  date_of_birth         date check (date_of_birth >= date '1900-01-01'),
  -- IntakeQ's ClientId, kept once the sync has found or created the client.
  intakeq_client_id     text check (char_length(intakeq_client_id) between 1 and 64),
  created_by_request_id public.request_id not null,
  created_at            timestamptz not null default now(),
  updated_at            timestamptz not null default now(),

  -- The normalised identity.
  email_key      text not null generated always as (lower(email)) stored,
  first_name_key text not null generated always as (private.name_key(first_name)) stored,
  last_name_key  text not null generated always as (private.name_key(last_name)) stored
);
comment on table public.patients is 'Health data: never log names, emails, phones or dates of birth in clear.';

create unique index patients_identity
  on public.patients (email_key, first_name_key, last_name_key, date_of_birth) nulls not distinct;

select private.close_to_browser_roles('public.patients');

create trigger patients_updated_at before update on public.patients
  for each row execute function private.set_updated_at();
