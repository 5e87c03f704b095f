-- =============================================================================================================
-- The practice: who can be booked, which payers they take, and which intake service a booking becomes.
-- Every IntakeQ id the sync needs lives here, so a booking can be synced without asking IntakeQ for settings.
-- =============================================================================================================

-- Providers ---------------------------------------------------------------------------------------------------
create table public.providers (
  id                      uuid primary key default gen_random_uuid(),
  first_name              text not null check (char_length(first_name) between 1 and 100),
  last_name               text not null check (char_length(last_name) between 1 and 100),
  title                   text check (char_length(title) between 1 and 50),
  is_bookable             boolean not null default false,
  intakeq_practitioner_id text check (char_length(intakeq_practitioner_id) between 1 and 64),
  created_at              timestamptz not null default now(),
  updated_at              timestamptz not null default now(),
  -- A provider patients can book must exist in IntakeQ, or the booking could never sync.
  constraint providers_bookable_needs_intakeq check (not is_bookable or intakeq_practitioner_id is not null)
);
comment on table public.providers is 'Clinicians. Only is_bookable ones can be booked from the form.';

-- Payers ------------------------------------------------------------------------------------------------------
-- Self pay is not a payer: the form sends "cash-payment" and the appointment stores payer_id NULL.
create table public.payers (
  id                  uuid primary key default gen_random_uuid(),
  name                text not null unique check (char_length(name) between 1 and 200),
  intakeq_location_id text not null check (char_length(intakeq_location_id) between 1 and 64),
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now()
);
comment on column public.payers.intakeq_location_id is 'IntakeQ location an appointment billed to this payer is filed under.';

-- Which payers a provider is in network with. Any bookable provider takes self pay.
create table public.provider_payer_networks (
  provider_id uuid not null references public.providers (id) on delete cascade,
  payer_id    uuid not null references public.payers (id) on delete cascade,
  created_at  timestamptz not null default now(),
  primary key (provider_id, payer_id)
);
create index provider_payer_networks_payer_id on public.provider_payer_networks (payer_id);

-- Practice-wide settings: one row.
create table public.practice_settings (
  singleton                    boolean primary key default true check (singleton),
  self_pay_intakeq_location_id text not null check (char_length(self_pay_intakeq_location_id) between 1 and 64),
  updated_at                   timestamptz not null default now()
);

-- Services and their instances ---------------------------------------------------------------------------------
create table public.services (
  id               uuid primary key default gen_random_uuid(),
  name             text not null unique check (char_length(name) between 1 and 200),
  duration_minutes integer not null check (duration_minutes between 5 and 480),
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now()
);

-- A service as offered under one payer (payer_id set) or to everyone (payer_id NULL: the global instance, used
-- for self pay and for any payer without an instance of its own).
create table public.service_instances (
  id                 uuid primary key default gen_random_uuid(),
  service_id         uuid not null references public.services (id),
  payer_id           uuid references public.payers (id) on delete cascade,
  is_intake          boolean not null default false,
  is_active          boolean not null default true,
  intakeq_service_id text check (char_length(intakeq_service_id) between 1 and 64),
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now()
);
create index service_instances_service_id on public.service_instances (service_id);
-- The form does not choose a service: for each payer (and for the global slot) at most one active intake
-- instance may exist, so resolution is never a guess.
create unique index service_instances_one_active_intake_per_payer
  on public.service_instances (payer_id) nulls not distinct
  where is_active and is_intake;

-- Access ------------------------------------------------------------------------------------------------------
select private.close_to_browser_roles('public.providers');
select private.close_to_browser_roles('public.payers');
select private.close_to_browser_roles('public.provider_payer_networks');
select private.close_to_browser_roles('public.practice_settings');
select private.close_to_browser_roles('public.services');
select private.close_to_browser_roles('public.service_instances');

create trigger providers_updated_at before update on public.providers
  for each row execute function private.set_updated_at();
create trigger payers_updated_at before update on public.payers
  for each row execute function private.set_updated_at();
create trigger practice_settings_updated_at before update on public.practice_settings
  for each row execute function private.set_updated_at();
create trigger services_updated_at before update on public.services
  for each row execute function private.set_updated_at();
create trigger service_instances_updated_at before update on public.service_instances
  for each row execute function private.set_updated_at();
