-- =============================================================================================================
-- record_booking_failure: called by the worker after a booking failed (and its transaction rolled back), so
-- that the failed request can be found by its id. It keeps the step, the contract code, a message and the
-- HTTP status: never patient data. Over-long text is cut, never refused: a failure record must not fail.
-- =============================================================================================================

create function public.record_booking_failure(
  p_request_id  text,
  p_step        text,
  p_code        text,
  p_message     text,
  p_http_status integer default null,
  p_detail      text    default null
)
returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_id uuid;
begin
  perform private.require_request_id(p_request_id);
  if p_step is null or p_step !~ '^[a-z][a-z_]{0,63}$' or p_code is null or p_code !~ '^[A-Z][A-Z_]{0,63}$' then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_step must be snake_case and p_code UPPER_SNAKE_CASE');
  end if;
  if p_http_status not between 400 and 599 then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_http_status must be an HTTP error status');
  end if;

  insert into public.booking_failures (request_id, step, code, message, http_status, detail)
  values (p_request_id, p_step, p_code,
          left(coalesce(nullif(btrim(p_message), ''), p_code), 1000), p_http_status, left(p_detail, 1000))
  returning id into v_id;
  return v_id;
end;
$$;

revoke all on function public.record_booking_failure from public, anon, authenticated;
grant execute on function public.record_booking_failure to service_role;
