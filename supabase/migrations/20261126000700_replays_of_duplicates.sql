-- =============================================================================================================
-- A replay of a duplicate is a duplicate. An idempotency key claimed by a request that was answered as the
-- duplicate of an existing appointment points at that appointment; its replay was answered as a plain replay
-- (is_duplicate false), and so got what only the request that made the booking may get: the booking's manage
-- token (the key to cancel or move it). Someone who knew a patient's details could ask twice with one key and
-- receive it. A replay now says whether the key's first request made the appointment: when it did not, the
-- replay is a duplicate too. Only private.claim_idempotency_key changes (as 20261125000100 wrote it, but this).
-- =============================================================================================================

create or replace function private.claim_idempotency_key(
  p_idempotency_key text,
  p_request_id      text,
  p_patient_id      uuid,
  p_patient         jsonb,
  p_provider_id     uuid,
  p_payer_id        text,
  p_start           timestamptz,
  p_location_type   text,
  p_notes           text,
  p_insurance       jsonb,
  p_contact         jsonb
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_request_hash text;
  v_key          public.idempotency_keys%rowtype;
begin
  if p_idempotency_key is null then
    return null;
  end if;
  -- Everything that makes the request, in a form that does not depend on the session (the start as epoch). The
  -- same hash as before: keys claimed by the previous version still recognise their requests.
  v_request_hash := encode(sha256(convert_to(jsonb_build_object(
    'patient_id', p_patient_id, 'patient', p_patient, 'provider_id', p_provider_id, 'payer_id', p_payer_id,
    'start', extract(epoch from p_start), 'location_type', p_location_type, 'notes', p_notes,
    'insurance', p_insurance, 'contact', p_contact)::text, 'UTF8')), 'hex');
  -- Claim the key. A concurrent claim of the same key waits here until the first transaction ends.
  insert into public.idempotency_keys (key, request_hash, request_id)
  values (p_idempotency_key, v_request_hash, p_request_id)
  on conflict (key) do nothing;
  if found then
    return null;
  end if;
  select * into v_key from public.idempotency_keys where key = p_idempotency_key;
  if v_key.request_hash <> v_request_hash then
    perform private.fail(422, 'IDEMPOTENCY_KEY_REUSED', 'idempotency',
      'this idempotency key was used by request ' || v_key.request_id || ' with a different request');
  end if;
  -- The key's first request made the appointment only if the appointment carries that request's id.
  return private.booking_result(v_key.appointment_id)
    || jsonb_build_object(
         'is_duplicate', not exists (select 1 from public.appointments a
                                     where a.id = v_key.appointment_id and a.request_id = v_key.request_id),
         'replayed', true, 'patient_created', false);
end;
$$;
