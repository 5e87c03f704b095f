-- IntakeQ's appointment webhooks, received: one waiting row per IntakeQ appointment (a repeat folds into it), no
-- patient data kept, and only the service role may write them.
begin;
select plan(9);
set local role service_role;

select is((public.note_intakeq_webhook('5f9a00000000000000000001', 'AppointmentCanceled', false, 'req-hook-1'))->>'duplicate',
  'false', 'a first webhook for an appointment opens a waiting row');
select is((public.note_intakeq_webhook('5f9a00000000000000000001', 'AppointmentRescheduled', true))->>'duplicate',
  'true', 'the same appointment again, before it is re-read: folded into that row');
select results_eq($$select count(*)::int, max(times_received), max(last_event_type), bool_or(by_client)
                    from public.intakeq_inbound_events where pq_appointment_id = '5f9a00000000000000000001'$$,
  $$values (1, 2, 'AppointmentRescheduled', true)$$, 'one row: received twice, the last event kept');
select is((public.note_intakeq_webhook('5f9a00000000000000000002', 'AppointmentCreated'))->>'duplicate', 'false',
  'another appointment: a row of its own');

reset role;
update public.intakeq_inbound_events set processed_at = now() where pq_appointment_id = '5f9a00000000000000000001';
set local role service_role;
select is((public.note_intakeq_webhook('5f9a00000000000000000001', 'AppointmentCanceled'))->>'duplicate', 'false',
  'once re-read, the next webhook opens a new row');
select is((select count(*)::int from public.intakeq_inbound_events where pq_appointment_id = '5f9a00000000000000000001'), 2,
  'the re-read row stays, as history');

select throws_ok($$select public.note_intakeq_webhook('', 'AppointmentCanceled')$$, 'PT400', 'INVALID_REQUEST',
  'an empty appointment id is refused');
select is(array(select column_name::text from information_schema.columns
                where table_schema = 'public' and table_name = 'intakeq_inbound_events'
                  and column_name ~* 'name|email|phone|birth|payload|^client'),
  '{}'::text[], 'no column for patient data or the payload');

reset role;
set local role anon;
select throws_ok($$select public.note_intakeq_webhook('x', 'AppointmentCanceled')$$, '42501', null,
  'anon cannot write webhooks');

select * from finish();
rollback;
