-- A failed booking can be found by its request id.
begin;
select plan(6);
set local role service_role;

select isnt(public.record_booking_failure('req-f1', 'conflict_check', 'SLOT_TAKEN',
  'That time is no longer available.', 409, 'the provider has another appointment overlapping this time'), null,
  'a failure is recorded');
select results_eq(
  $$select step, code, message, http_status, detail from public.booking_failures where request_id = 'req-f1'$$,
  $$values ('conflict_check', 'SLOT_TAKEN', 'That time is no longer available.', 409,
            'the provider has another appointment overlapping this time')$$,
  'with its step, code, message, status and diagnostic');
select public.record_booking_failure('req-f2', 'appointment_insert', 'APPOINTMENT_INSERT_FAILED', repeat('m', 5000));
select is((select char_length(message) from public.booking_failures where request_id = 'req-f2'),
  1000, 'an over-long message is cut, not refused');
select public.record_booking_failure('req-f3', 'payer_lookup', 'INVALID_PAYER', null);
select is((select message from public.booking_failures where request_id = 'req-f3'),
  'INVALID_PAYER', 'a missing message falls back to the code');
select is(tests.booking_error($$select public.record_booking_failure('bad id!', 'payer_lookup', 'INVALID_PAYER', 'm')$$),
  'PT400 INVALID_REQUEST request_validation', 'a malformed request id is refused');
select is(tests.booking_error($$select public.record_booking_failure('req-f4', 'Payer Lookup', 'invalid', 'm')$$),
  'PT400 INVALID_REQUEST request_validation', 'a step or code outside the naming scheme is refused');

select * from finish();
rollback;
