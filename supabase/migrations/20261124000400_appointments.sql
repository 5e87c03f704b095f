-- =============================================================================================================
-- Appointments. Two states travel together:
--   status       pending_sync -> scheduled (or cancelled)   what the practice may rely on
--   sync_status  pending -> synced | failed                 whether IntakeQ has it
-- An appointment is `scheduled` only once IntakeQ has it, and `synced` only with IntakeQ's id: the constraints
-- below make the original failure (scheduled, no IntakeQ id, no confirmation email) impossible to store.
-- A provider cannot hold two active appointments that overlap: an exclusion constraint enforces it under
-- concurrency, whatever the caller checked before.
-- =============================================================================================================

create table public.appointments (
  id                  uuid primary key default gen_random_uuid(),
  patient_id          uuid not null references public.patients (id),
  provider_id         uuid not null references public.providers (id),
  payer_id            uuid references public.payers (id),          -- NULL: self pay
  service_instance_id uuid not null references public.service_instances (id),
  start_time          timestamptz not null,
  end_time            timestamptz not null,
  location_type       text not null check (location_type in ('telehealth', 'in_person')),
  status              text not null default 'pending_sync' check (status in ('pending_sync', 'scheduled', 'cancelled')),
  sync_status         text not null default 'pending' check (sync_status in ('pending', 'synced', 'failed')),
  pq_appointment_id   text check (char_length(pq_appointment_id) between 1 and 64),
  notes               text check (char_length(notes) <= 2000),
  -- What the form said, as it said it, at booking time (the patient row may change later).
  patient_info        jsonb not null check (jsonb_typeof(patient_info) = 'object'),
  insurance_info      jsonb not null check (jsonb_typeof(insurance_info) = 'object'),
  request_id          public.request_id not null,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),

  constraint appointments_ends_after_start check (end_time > start_time),
  constraint appointments_scheduled_only_when_synced check (status <> 'scheduled' or sync_status = 'synced'),
  constraint appointments_pending_sync_not_synced check (status <> 'pending_sync' or sync_status <> 'synced'),
  constraint appointments_synced_has_intakeq_id check (sync_status <> 'synced' or pq_appointment_id is not null),
  constraint appointments_no_provider_overlap exclude using gist (
    provider_id with =,
    tstzrange(start_time, end_time, '[)') with &&
  ) where (status <> 'cancelled')
);
create index appointments_patient_id on public.appointments (patient_id, start_time);
create index appointments_payer_id on public.appointments (payer_id);
create index appointments_service_instance_id on public.appointments (service_instance_id);
create index appointments_request_id on public.appointments (request_id);
-- One IntakeQ appointment is never adopted by two of ours.
create unique index appointments_pq_appointment_id on public.appointments (pq_appointment_id)
  where pq_appointment_id is not null;

select private.close_to_browser_roles('public.appointments');

create trigger appointments_updated_at before update on public.appointments
  for each row execute function private.set_updated_at();
