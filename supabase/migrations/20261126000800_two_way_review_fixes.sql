-- =============================================================================================================
-- Two-way with IntakeQ, after review (issue 13). Five faults of 20261126000500_intakeq_two_way_inbound.sql and
-- 20261126000600_intakeq_two_way_outbound.sql, each fixed where it lives (whole functions redefined):
--
--   1. The catch-up resumes.   A practice with more pages than one minute's budget never completed a catch-up: a
--                              run the budget stopped was recorded as failed, backed off, and the next run read
--                              page 1 again, spending the day's calls on the same first pages.
--                              intakeq_catchup_state.next_page keeps where a pass stopped; claim_intakeq_catchup
--                              answers it; finish_intakeq_catchup(..., p_next_page) records an unfinished run that
--                              did not fail (no failure counted, no backoff, due at the next claim). A completed
--                              pass starts the next from page 1; a failed run backs off and keeps next_page.
--   2. A catch-up page is fenced.  apply_intakeq_appointments(..., p_lease_token) applies nothing for a runner
--                              whose catch-up lease is not current (ran out and taken over, or finished).
--   3. No reschedule while staff have a move to settle.  An open move_collides conflict means IntakeQ has a staff
--                              move we could not apply, and no move of ours is pushed over it: a reschedule then
--                              would be taken here and never reach IntakeQ. reschedule_appointment refuses it
--                              (409 APPOINTMENT_IN_REVIEW); a cancel stays allowed.
--   4. A reinstatement in IntakeQ is followed.  Ours cancelled, IntakeQ's cancelled as we last knew it (staff
--                              cancelled it there, or our cancellation landed), and active there again: staff
--                              reinstated it, and ours is reinstated at IntakeQ's start ('reinstated'), or, when
--                              its time is taken here, stays cancelled with the base still cancelled (so no cancel
--                              is owed) and a 'reinstate_collides' conflict for staff ('conflict'). Before, the base
--                              became active while ours stayed cancelled, and the sync posted a cancellation nobody
--                              asked for. A cancellation made here that has not reached IntakeQ is still owed.
--   5. A transient error in record_sync_result, while it stores a 'synced' answer or adopts what a lookup found
--                              (a 'cancelled' report), is raised, so the report is retried, instead of ending the
--                              job dead or losing the adoption.
--   6. A move whose write never landed ends.  A re-read ('applied', not written by the attempt) that finds what we
--                              owe still owed leaves the same job pending, due now, its attempts and retry window
--                              kept: a PUT that keeps failing dies (and alerts) instead of starting afresh each
--                              minute.
--   7. Our own move landing is ours.  The claim adds a move's start to posted_starts; a re-read finding IntakeQ at
--                              one of them makes it the base before the rules run, so a patient's later reschedule
--                              is not taken for a staff move back to the earlier one.
--   8. What IntakeQ no longer lists is re-read.  IntakeQ sends no webhook when an appointment is deleted: a pass
--                              that read its whole window nudges ours and the busy blocks in it that it did not
--                              see (intakeq_catchup_listed), so a deletion is found within a catch-up period.
-- =============================================================================================================

-- 1. The catch-up resumes -------------------------------------------------------------------------------------
alter table public.intakeq_catchup_state
  add column next_page integer not null default 1 check (next_page between 1 and 1000);
comment on column public.intakeq_catchup_state.next_page is
  'The page the next catch-up run reads first: 1 after a completed pass; where an unfinished run stopped (the budget ran out) otherwise.';

-- Takes the catch-up's lease when it is due, as 20261126000500 did: not leased, and never completed or completed
-- p_every_minutes ago (0: every time); after failed runs, not before a backoff of 1, 2, 4 ... minutes (at most 30,
-- at most the period). And: a pass under way (next_page past 1) is due whatever the period, so that it finishes
-- (only a failure's backoff holds it back). Answers {due, lease_token, lease_seconds_left, next_page} (all but due
-- null when not due): next_page is the page to read first.
-- 8. What IntakeQ no longer lists -----------------------------------------------------------------------------------
alter table public.intakeq_catchup_state add column pass_started_at timestamptz;
comment on column public.intakeq_catchup_state.pass_started_at is
  'When the current (or last) pass began at page 1: what it lists from then on is what IntakeQ still has.';
create table public.intakeq_catchup_listed (
  pq_appointment_id text primary key check (char_length(pq_appointment_id) between 1 and 64),
  listed_at         timestamptz not null
);
select private.close_to_browser_roles('public.intakeq_catchup_listed');
comment on table public.intakeq_catchup_listed is
  'IntakeQ appointment ids the catch-up saw listed, and when: what a whole pass did not list is re-read. Ids only.';

create or replace function public.claim_intakeq_catchup(p_runner text, p_every_minutes integer, p_lease_seconds integer)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_state public.intakeq_catchup_state;
begin
  if p_runner is null or char_length(p_runner) not between 1 and 100
     or p_every_minutes is null or p_every_minutes not between 0 and 10080
     or p_lease_seconds is null or p_lease_seconds not between 1 and 3600 then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_catchup',
      'p_runner (1-100 characters), p_every_minutes (0-10080) and p_lease_seconds (1-3600) are required');
  end if;
  select * into v_state from public.intakeq_catchup_state for update;
  if (v_state.locked_until is not null and v_state.locked_until > now())
     or (p_every_minutes > 0 and v_state.next_page = 1
         and v_state.last_completed_at + make_interval(mins => p_every_minutes) > now())
     or (p_every_minutes > 0 and v_state.failures > 0
         and v_state.last_started_at + make_interval(mins => least(p_every_minutes, 30, power(2, least(v_state.failures, 10) - 1)::integer)) > now()) then
    return jsonb_build_object('due', false, 'lease_token', null, 'lease_seconds_left', null, 'next_page', null);
  end if;
  update public.intakeq_catchup_state
  set locked_by = p_runner, lease_token = gen_random_uuid(), locked_until = now() + make_interval(secs => p_lease_seconds),
      last_started_at = now(), updated_at = now(),
      -- a pass from page 1 begins: what it lists from now on is what IntakeQ still has (fix 8)
      pass_started_at = case when next_page = 1 then now() else pass_started_at end
  returning * into v_state;
  return jsonb_build_object('due', true, 'lease_token', v_state.lease_token,
                            'lease_seconds_left', private.seconds_left(v_state.locked_until),
                            'next_page', v_state.next_page);
end;
$$;

-- Ends the catch-up's lease, one of three ways:
--   completed     every page read and applied (p_counts its totals): last_completed_at now, the next pass starts
--                 at page 1, and blocks that ended more than three days ago are forgotten (the catch-up reads from
--                 yesterday in IntakeQ's zone: anything older is never read again, and no booking can be in the past)
--   unfinished    not completed, p_next_page given: the run stopped without failing (the call budget ran out)
--                 and the pass resumes at p_next_page. No failure is counted and no backoff follows: due at the next
--                 claim. p_error, if any, is kept as a note.
--   failed        not completed, no p_next_page (a page that failed): failures + 1 and the backoff, last_error
--                 (p_error, no patient data); next_page is kept, so the next run resumes where the last unfinished
--                 one stopped (the pages this run read are read again).
-- p_next_page is ignored when completed. Answers {recorded, last_completed_at, next_page}; recorded false (nothing
-- changed) unless p_lease_token is current. The old signature goes, so that PostgREST sees one function.
drop function public.finish_intakeq_catchup(uuid, boolean, jsonb, text);
create function public.finish_intakeq_catchup(
  p_lease_token  uuid,
  p_completed    boolean,
  p_counts       jsonb,
  p_error        text,
  p_next_page    integer default null,
  p_listed_until date    default null    -- a pass that read its whole window: the window's last date (fix 8)
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_state      public.intakeq_catchup_state;
  v_unfinished boolean := not p_completed and p_next_page is not null;
  v_pass_start timestamptz;
  v_unlisted   integer := 0;
begin
  if p_lease_token is null or p_completed is null
     or (p_counts is not null and jsonb_typeof(p_counts) not in ('object', 'null'))
     or (p_next_page is not null and p_next_page not between 1 and 1000) then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_catchup',
      'p_lease_token and p_completed are required; p_counts is an object; p_next_page is 1-1000');
  end if;
  select * into v_state from public.intakeq_catchup_state for update;
  if v_state.lease_token is distinct from p_lease_token then
    return jsonb_build_object('recorded', false, 'last_completed_at', private.rfc3339(v_state.last_completed_at),
                              'next_page', v_state.next_page);
  end if;
  v_pass_start := v_state.pass_started_at;
  update public.intakeq_catchup_state
  set last_completed_at = case when p_completed then now() else last_completed_at end,
      failures = case when p_completed or v_unfinished then 0 else failures + 1 end,
      last_error = case when p_completed or v_unfinished then left(p_error, 500)
                        else coalesce(left(p_error, 500), 'not completed') end,
      next_page = case when p_completed then 1 when v_unfinished then p_next_page else next_page end,
      last_counts = case when jsonb_typeof(p_counts) = 'object' then p_counts end,
      locked_by = null, lease_token = null, locked_until = null, updated_at = now()
  returning * into v_state;
  if p_completed then
    delete from public.intakeq_busy_blocks where end_time < now() - interval '3 days';
  end if;
  if p_completed and p_listed_until is not null and v_pass_start is not null then
    -- IntakeQ sends no webhook when an appointment is deleted, and a lost webhook leaves no trace: what we hold
    -- for the window the pass read whole (from its start to a day before its last date, clear of any time zone's
    -- dates), unchanged here since the pass began, and not listed by it, is re-read like a webhook's nudge (one
    -- call each). A 404 there then cancels ours or lifts the block; anything else is applied as it stands.
    with unlisted as (
      select a.pq_appointment_id from public.appointments a
      where a.pq_appointment_id is not null and a.status <> 'cancelled'
        and a.start_time >= v_pass_start and a.start_time < (p_listed_until - 1)::timestamp at time zone 'UTC'
        and a.updated_at < v_pass_start
      union
      select b.pq_appointment_id from public.intakeq_busy_blocks b
      where b.start_time >= v_pass_start and b.start_time < (p_listed_until - 1)::timestamp at time zone 'UTC'
        and b.updated_at < v_pass_start
    ), nudged as (
      select public.note_intakeq_webhook(u.pq_appointment_id, 'NotListedByCatchUp') from unlisted u
      where not exists (select from public.intakeq_catchup_listed l
                        where l.pq_appointment_id = u.pq_appointment_id and l.listed_at >= v_pass_start)
    )
    select count(*) into v_unlisted from nudged;
    delete from public.intakeq_catchup_listed where listed_at < v_pass_start;
  end if;
  return jsonb_build_object('recorded', true, 'last_completed_at', private.rfc3339(v_state.last_completed_at),
                            'next_page', v_state.next_page, 'unlisted', v_unlisted);
end;
$$;

-- 2. A catch-up page is fenced --------------------------------------------------------------------------------
-- As in 20261126000500 (each element under its own Id; while the catch-up holds its lease, an appointment whose row
-- or block was written after that catch-up began is skipped; waiting inbound events stay waiting), and:
--   * p_lease_token (the catch-up's, from claim_intakeq_catchup): unless it is the current lease's, nothing is
--     applied and the counts are all 0 with recorded false. A runner whose lease ran out and was taken over (or
--     that already finished) cannot write a page it read long ago over what the new holder or a re-read wrote
--     since. The catch-up's row is held (FOR SHARE) while the page is applied, so the lease is not taken over
--     meanwhile. Without a token (staff, tests), the page is applied as before.
--   * 'reinstated' is counted (fix 4), and recorded says whether the page was applied.
-- Answers {cancelled, moved, reinstated, blocked, unblocked, conflict, unchanged, ignored, skipped, recorded}.
drop function public.apply_intakeq_appointments(jsonb);
create function public.apply_intakeq_appointments(p_appointments jsonb, p_lease_token uuid default null)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_state  public.intakeq_catchup_state;
  v_since  timestamptz;
  v_appt   jsonb;
  v_id     text;
  v_result text;
  v_counts jsonb := jsonb_build_object('cancelled', 0, 'moved', 0, 'reinstated', 0, 'blocked', 0, 'unblocked', 0,
                                       'conflict', 0, 'unchanged', 0, 'ignored', 0, 'skipped', 0);
begin
  if jsonb_typeof(p_appointments) is distinct from 'array' or jsonb_array_length(p_appointments) > 1000 then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_catchup', 'p_appointments must be an array of at most 1000 appointments');
  end if;
  if p_lease_token is not null then
    select * into v_state from public.intakeq_catchup_state for share;
    if v_state.lease_token is distinct from p_lease_token then
      return v_counts || jsonb_build_object('recorded', false);
    end if;
    v_since := v_state.last_started_at;
  else
    select last_started_at into v_since from public.intakeq_catchup_state where locked_until > now();
  end if;
  for v_appt in select value from jsonb_array_elements(p_appointments) loop
    v_id := case when jsonb_typeof(v_appt) = 'object' then nullif(v_appt->>'Id', '') end;
    if v_id is null or char_length(v_id) > 64 then
      v_result := 'ignored';
    else
      perform private.lock_intakeq_appointment(v_id);
      if v_since is not null and private.intakeq_written_since(v_id, v_since) then
        v_result := 'skipped';
      else
        v_result := private.apply_intakeq_appointment(v_id, v_appt);
      end if;
    end if;
    v_counts := jsonb_set(v_counts, array[v_result], to_jsonb((v_counts->>v_result)::integer + 1));
  end loop;
  if p_lease_token is not null then
    -- What this pass saw IntakeQ list (fix 8): at its end, ours and the blocks it did not see are re-read.
    insert into public.intakeq_catchup_listed (pq_appointment_id, listed_at)
    select distinct e.value->>'Id', now() from jsonb_array_elements(p_appointments) e
    where jsonb_typeof(e.value) = 'object' and char_length(e.value->>'Id') between 1 and 64
    on conflict (pq_appointment_id) do update set listed_at = excluded.listed_at;
  end if;
  return v_counts || jsonb_build_object('recorded', true);
end;
$$;

-- 4. A reinstatement in IntakeQ is followed ---------------------------------------------------------------------
-- A reinstatement whose time is taken here is a conflict of its own kind: staff are told something else than for
-- a move (ours stays cancelled, and IntakeQ's appointment is not cancelled again), and an open one must not stop
-- a move the way move_collides does (ours is cancelled: nothing moves).
alter table public.intakeq_conflicts drop constraint intakeq_conflicts_kind_check;
alter table public.intakeq_conflicts add constraint intakeq_conflicts_kind_check
  check (kind in ('move_collides', 'block_overlaps', 'reinstate_collides'));
comment on table public.intakeq_conflicts is
  'IntakeQ changes that could not be applied (move_collides, reinstate_collides) and double bookings across the two systems (block_overlaps); open while resolved_at is null. Ids and times only.';

-- A new conflict reaches staff: ids, the provider and times, never the patient (as in 20261126000500, and the
-- reinstatement's text).
create or replace function private.alert_on_intakeq_conflict()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform private.raise_staff_alert('intakeq_conflict', format('intakeq_conflict:%s', new.id), new.appointment_id,
    case new.kind
      when 'move_collides' then format(
        'A change made in IntakeQ could not be applied here: IntakeQ appointment %s was moved to %s UTC, which overlaps another appointment (%s). Ours, %s, is left as it was, and its IntakeQ move is not undone. Move one of them in IntakeQ; the next sync applies it.',
        new.pq_appointment_id, to_char(new.intakeq_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
        coalesce(new.detail, 'no detail'), coalesce(private.alert_appointment(new.appointment_id), 'an appointment'))
      when 'reinstate_collides' then format(
        'A change made in IntakeQ could not be applied here: IntakeQ appointment %s, cancelled in IntakeQ, is active there again at %s UTC, which overlaps another appointment (%s). Ours, %s, stays cancelled, and IntakeQ''s appointment is not cancelled again. Cancel it in IntakeQ, or move it there to a free time; the next sync applies it.',
        new.pq_appointment_id, to_char(new.intakeq_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
        coalesce(new.detail, 'no detail'), coalesce(private.alert_appointment(new.appointment_id), 'an appointment'))
      else format(
        'Double booking across IntakeQ and the web: IntakeQ appointment %s (booked in IntakeQ, from %s UTC) overlaps %s. Cancel or move one of them.',
        new.pq_appointment_id, to_char(new.intakeq_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
        coalesce(private.alert_appointment(new.appointment_id), 'an appointment of ours'))
    end);
  return new;
end;
$$;

-- Appointments the old rule left owing a cancel nobody asked for (cancelled in IntakeQ, then active there, the
-- base set active): the base goes back to cancelled, so no cancel is owed (a pending job ends at its claim), and
-- the next re-read or catch-up reinstates them under the rule below.
update public.appointments
set intakeq_status = 'Canceled'
where status = 'cancelled' and cancelled_by = 'intakeq' and pq_appointment_id is not null
  and coalesce(intakeq_status, '') not in ('Canceled', 'Declined');

-- The inbound rules, as in 20261126000500, but for ours cancelled in IntakeQ and active there again:
--
--   cancelled upstream (Canceled, Declined, gone)     ours cancelled (by 'intakeq')                  'cancelled'
--                                                     already cancelled: the base noted (and an
--                                                     open reinstate_collides conflict resolved)     'unchanged'
--   active upstream, ours cancelled, the base active  our cancellation is owed upstream              'unchanged'
--     (cancelled here; it has not reached IntakeQ)
--   active upstream, ours cancelled, the base         staff reinstated it: ours is scheduled again at
--     cancelled (cancelled there, or ours landed)
--                                                     IntakeQ's start, our length; the base follows  'reinstated'
--     ... onto a taken time (23P01)                   nothing of ours changes, the base stays
--                                                     cancelled (no cancel owed); a conflict
--                                                     (reinstate_collides)                           'conflict'
--   theirs = ours / theirs = base / staff moved it    as before                   'unchanged' / 'moved' / 'conflict'
-- Not ours: as before.
create or replace function private.apply_intakeq_appointment(p_pq_appointment_id text, p_appointment jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_appt       jsonb := case when jsonb_typeof(p_appointment) = 'object' then p_appointment end;
  v_status     text;
  v_cancelled  boolean;
  v_start      timestamptz;
  v_end        timestamptz;
  v_ours       public.appointments;
  v_provider   uuid;
  v_overlap    uuid;
  v_constraint text;
  v_rows       integer;
begin
  if p_pq_appointment_id is null or char_length(p_pq_appointment_id) not between 1 and 64 then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_inbound', 'an IntakeQ appointment id of 1-64 characters is required');
  end if;
  if p_appointment is not null and jsonb_typeof(p_appointment) not in ('object', 'null') then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_inbound', 'IntakeQ''s appointment must be an object (or null: gone)');
  end if;
  if nullif(v_appt->>'Id', '') is distinct from p_pq_appointment_id and nullif(v_appt->>'Id', '') is not null then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_inbound', 'IntakeQ''s appointment has another Id than the one applied');
  end if;
  v_status := left(nullif(btrim(v_appt->>'Status'), ''), 32);
  v_cancelled := v_appt is null or v_status in ('Canceled', 'Declined');
  v_start := private.intakeq_time(v_appt->'StartDate');
  v_end := coalesce(private.intakeq_time(v_appt->'EndDate'),
                    v_start + make_interval(mins => case when v_appt->>'Duration' ~ '^[0-9]{1,4}$'
                                                         then (v_appt->>'Duration')::integer end));

  -- Ours --------------------------------------------------------------------------------------------------------
  select * into v_ours from public.appointments where pq_appointment_id = p_pq_appointment_id for update;
  if found then
    -- A block under this id was ours all along (its re-read raced our recording of the id).
    delete from public.intakeq_busy_blocks where pq_appointment_id = p_pq_appointment_id;
    perform private.resolve_intakeq_conflict(p_pq_appointment_id, 'block_overlaps');

    if v_cancelled then
      if v_ours.status <> 'cancelled' then
        update public.appointments
        set status = 'cancelled', cancelled_at = now(), cancelled_by = 'intakeq',
            intakeq_status = coalesce(v_status, 'Canceled')
        where id = v_ours.id;                       -- (its conflicts end with it: appointments_settle_intakeq_conflicts)
        return 'cancelled';
      end if;
      update public.appointments set intakeq_status = coalesce(v_status, 'Canceled')
      where id = v_ours.id and intakeq_status is distinct from coalesce(v_status, 'Canceled');
      -- Cancelled in IntakeQ again: a reinstatement that could not be applied is settled.
      perform private.resolve_intakeq_conflict(p_pq_appointment_id, 'reinstate_collides');
      return 'unchanged';
    end if;

    if v_start is null then
      return 'ignored';                             -- active, but no start we can read: nothing to compare
    end if;
    if v_ours.status = 'cancelled' and coalesce(v_ours.intakeq_status, '') not in ('Canceled', 'Declined') then
      -- Cancelled here (the patient, the partner, staff through our API or by hand), and IntakeQ, as far as we
      -- know, never had it cancelled: our cancellation is owed upstream (the sync job posts it).
      update public.appointments set intakeq_status = coalesce(v_status, intakeq_status)
      where id = v_ours.id and intakeq_status is distinct from coalesce(v_status, intakeq_status);
      return 'unchanged';
    end if;
    if v_ours.status = 'cancelled' then
      -- IntakeQ had it cancelled (staff cancelled it there, or our cancellation landed), and it is active there
      -- again: staff reinstated it ("I cancelled by mistake"), whoever cancelled it first. No cancellation may be
      -- owed for it again: ours follows, at IntakeQ's start with our length, checked like a booking (its locks,
      -- in book_appointment's order; the exclusion constraints and the busy blocks decide). The base becomes
      -- IntakeQ's only with ours: were it set active while ours stays cancelled, a cancel would be owed, and the
      -- sync would post a cancellation the patient never asked for.
      perform private.lock_booking_slots(v_ours.provider_id, v_ours.patient_id);
      begin
        update public.appointments
        set status = 'scheduled', sync_status = 'synced',
            start_time = v_start, end_time = v_start + (v_ours.end_time - v_ours.start_time),
            intakeq_start_time = v_start, intakeq_status = coalesce(v_status, 'Confirmed'),
            cancelled_at = null, cancelled_by = null, cancellation_reason = null
        where id = v_ours.id;
      exception when exclusion_violation then
        -- Its time was taken here meanwhile: nothing of ours changes, and nothing is owed (the base still says
        -- cancelled). Staff settle it in IntakeQ (cancel it again, or move it to a free time).
        get stacked diagnostics v_constraint = constraint_name;
        perform private.note_intakeq_conflict(p_pq_appointment_id, v_ours.id, 'reinstate_collides', v_start,
          format('reinstated in IntakeQ at %s UTC; that time is taken here (%s)',
                 to_char(v_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                 case v_constraint
                   when 'appointments_no_provider_overlap' then 'the provider has another appointment'
                   when 'appointments_no_patient_overlap' then 'the patient has another appointment'
                   when 'appointments_no_busy_block_overlap' then 'the provider is busy in IntakeQ'
                   else coalesce(v_constraint, 'an exclusion constraint') end));
        return 'conflict';
      end;
      perform private.resolve_intakeq_conflict(p_pq_appointment_id, 'reinstate_collides');
      return 'reinstated';
    end if;
    if v_start = v_ours.start_time or v_start = v_ours.intakeq_start_time then
      -- In step, or our move is owed upstream (theirs is still the base): nothing of staff's to apply, so no
      -- move conflict stands in the way any more.
      update public.appointments
      set intakeq_start_time = case when v_start = v_ours.start_time then v_start else intakeq_start_time end,
          intakeq_status = coalesce(v_status, intakeq_status)
      where id = v_ours.id
        and (intakeq_start_time is distinct from case when v_start = v_ours.start_time then v_start else intakeq_start_time end
             or intakeq_status is distinct from coalesce(v_status, intakeq_status));
      perform private.resolve_intakeq_conflict(p_pq_appointment_id, 'move_collides');
      return 'unchanged';
    end if;

    -- Staff moved it in IntakeQ: ours follows, checked like a booking (its locks, in book_appointment's order;
    -- the exclusion constraints and the busy blocks decide).
    perform private.lock_booking_slots(v_ours.provider_id, v_ours.patient_id);
    begin
      update public.appointments
      set start_time = v_start, end_time = v_start + (v_ours.end_time - v_ours.start_time),
          intakeq_start_time = v_start, intakeq_status = coalesce(v_status, intakeq_status)
      where id = v_ours.id;
    exception when exclusion_violation then
      -- Nothing of ours is overwritten: staff see it, and our start is not pushed back over their change.
      get stacked diagnostics v_constraint = constraint_name;
      perform private.note_intakeq_conflict(p_pq_appointment_id, v_ours.id, 'move_collides', v_start,
        format('moved in IntakeQ from %s to %s UTC; that time is taken here (%s)',
               to_char(coalesce(v_ours.intakeq_start_time, v_ours.start_time) at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
               to_char(v_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
               case v_constraint
                 when 'appointments_no_provider_overlap' then 'the provider has another appointment'
                 when 'appointments_no_patient_overlap' then 'the patient has another appointment'
                 when 'appointments_no_busy_block_overlap' then 'the provider is busy in IntakeQ'
                 else coalesce(v_constraint, 'an exclusion constraint') end));
      return 'conflict';
    end;
    perform private.resolve_intakeq_conflict(p_pq_appointment_id, 'move_collides');
    return 'moved';
  end if;

  -- Not ours ----------------------------------------------------------------------------------------------------
  select pr.id into v_provider
  from public.providers pr
  where pr.intakeq_practitioner_id = v_appt->>'PractitionerId'
  order by pr.is_bookable desc, pr.id
  limit 1;
  if v_cancelled or v_provider is null then
    -- Cancelled, or now with a practitioner we do not know (reassigned): the provider is not busy then any more.
    -- (Deleting frees time: no lock needed.)
    delete from public.intakeq_busy_blocks where pq_appointment_id = p_pq_appointment_id;
    if found then
      perform private.resolve_intakeq_conflict(p_pq_appointment_id, 'block_overlaps');
      return 'unblocked';
    end if;
    -- Nothing held: an unknown practitioner's appointment is none of ours ('ignored'); else nothing changed.
    return case when v_provider is null and v_appt is not null then 'ignored' else 'unchanged' end;
  end if;
  if v_start is null or v_end is null or v_end <= v_start then
    return 'ignored';                               -- no time we can read: a block would be a guess
  end if;

  perform private.lock_provider_slots(v_provider);
  -- A create of ours still waiting to be recorded (posted, its id not stored yet): the same provider and start.
  -- Recording the id makes it ours; a block now would double-book us against ourselves.
  if exists (select from public.appointments a
             where a.provider_id = v_provider and a.start_time = v_start and a.status <> 'cancelled'
               and (a.pq_appointment_id is null or a.pq_appointment_id = p_pq_appointment_id)) then
    return 'ignored';
  end if;
  insert into public.intakeq_busy_blocks as b (pq_appointment_id, provider_id, start_time, end_time, intakeq_status)
  values (p_pq_appointment_id, v_provider, v_start, v_end, v_status)
  on conflict (pq_appointment_id) do update
  set provider_id = excluded.provider_id, start_time = excluded.start_time, end_time = excluded.end_time,
      intakeq_status = excluded.intakeq_status, updated_at = now()
  where (b.provider_id, b.start_time, b.end_time, b.intakeq_status)
        is distinct from (excluded.provider_id, excluded.start_time, excluded.end_time, excluded.intakeq_status);
  get diagnostics v_rows = row_count;

  -- A double booking across the two systems: the block stands (IntakeQ has it), staff decide.
  select a.id into v_overlap
  from public.appointments a
  where a.provider_id = v_provider and a.status <> 'cancelled'
    and tstzrange(a.start_time, a.end_time, '[)') && tstzrange(v_start, v_end, '[)')
  order by a.start_time, a.id
  limit 1;
  if v_overlap is not null then
    perform private.note_intakeq_conflict(p_pq_appointment_id, v_overlap, 'block_overlaps', v_start,
      format('booked in IntakeQ from %s to %s UTC over appointment %s',
             to_char(v_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI'), to_char(v_end at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
             v_overlap));
    return 'conflict';
  end if;
  perform private.resolve_intakeq_conflict(p_pq_appointment_id, 'block_overlaps');
  return case when v_rows > 0 then 'blocked' else 'unchanged' end;
end;
$$;

comment on function private.apply_intakeq_appointment(text, jsonb) is
  'Applies what IntakeQ says now about one appointment (NULL: gone): cancelled, moved, reinstated, blocked, unblocked, conflict, unchanged or ignored.';

-- 3. No reschedule while staff have a move to settle -----------------------------------------------------------
-- reschedule_appointment as in 20261126000600, and: while an open move_collides conflict stands for the
-- appointment, 409 APPOINTMENT_IN_REVIEW (step appointment_change), nothing changed. A cancel stays allowed: it
-- ends the conflict (appointments_settle_intakeq_conflicts) and owes IntakeQ a cancel as before.
create or replace function public.reschedule_appointment(
  p_appointment_id uuid,
  p_start          timestamptz,
  p_requested_by   text,   -- 'patient' | 'partner' | 'staff'
  p_request_id     text
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_step        text := 'request_validation';
  v_appointment public.appointments%rowtype;
  v_start       timestamptz := p_start;
  v_changed     boolean := false;
  v_sqlstate    text;
  v_constraint  text;
begin
  perform private.check_change_arguments(p_appointment_id, p_requested_by, p_request_id);
  if v_start is null then
    perform private.fail(400, 'INVALID_REQUEST', 'request_validation', 'p_start is required');
  end if;

  v_step := 'appointment_lookup';
  -- The job's row, the appointment's, then the booking locks: the order record_sync_result and the inbound rules
  -- take them in.
  perform 1 from public.sync_retry_queue where appointment_id = p_appointment_id for update;
  select * into v_appointment from public.appointments where id = p_appointment_id for update;
  if not found then
    perform private.fail(404, 'APPOINTMENT_NOT_FOUND', 'appointment_lookup', 'no appointment has this id');
  end if;

  v_step := 'appointment_change';
  if v_appointment.status = 'cancelled' then
    perform private.fail(409, 'APPOINTMENT_CANCELLED', 'appointment_change', 'the appointment is cancelled');
  end if;
  if v_appointment.start_time <= now() then
    perform private.fail(422, 'APPOINTMENT_STARTED', 'appointment_change', 'the appointment has started or is over');
  end if;
  -- Staff moved it in IntakeQ to a time taken here: until they settle that in IntakeQ, no move of ours is pushed
  -- there (private.owed_intakeq_operation), so a reschedule taken now would never reach IntakeQ. (Read under the
  -- appointment's lock, which the inbound rules hold when they open a conflict.)
  if exists (select from public.intakeq_conflicts c
             where c.appointment_id = p_appointment_id and c.kind = 'move_collides' and c.resolved_at is null) then
    perform private.fail(409, 'APPOINTMENT_IN_REVIEW', 'appointment_change',
      'staff moved this appointment in IntakeQ to a time taken here; it can be moved once they settle that in IntakeQ');
  end if;

  if v_start <> v_appointment.start_time then
    v_step := 'conflict_check';
    perform private.check_slot_offered(v_start);
    perform private.lock_booking_slots(v_appointment.provider_id, v_appointment.patient_id);
    begin
      update public.appointments
      set start_time = v_start, end_time = v_start + (v_appointment.end_time - v_appointment.start_time)
      where id = p_appointment_id
      returning * into v_appointment;
    exception
      when exclusion_violation then
        get stacked diagnostics v_constraint = constraint_name;
        if v_constraint = 'appointments_no_patient_overlap' then
          perform private.fail(409, 'PATIENT_SLOT_TAKEN', 'conflict_check', 'the patient has another appointment overlapping this time');
        end if;
        perform private.fail(409, 'SLOT_TAKEN', 'conflict_check', 'the provider has another appointment overlapping this time');
    end;
    v_step := 'appointment_change';
    perform private.reopen_sync_job(p_appointment_id);
    v_changed := true;
  end if;

  return jsonb_build_object(
    'appointment_id', v_appointment.id,
    'start',          private.rfc3339(v_appointment.start_time),
    'end',            private.rfc3339(v_appointment.end_time),
    'status',         v_appointment.status,
    'sync_status',    v_appointment.sync_status,
    'changed',        v_changed);

exception
  when others then
    get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
    if v_sqlstate like 'PT%' then
      raise;
    end if;
    perform private.raise_unexpected_change_error(v_sqlstate, v_constraint, v_step);
end;
$$;

-- 5. A transient error in the adoption is raised --------------------------------------------------------------
-- record_sync_result as in 20261126000600, but for the storing of a 'synced' answer and the adoption of what a
-- lookup found ('cancelled' with p_pq_appointment_id): a transient error of the database (private.is_transient: SQLSTATE classes 40, 53, 57 and
-- 55P03) is raised, so the worker's report fails and is retried; only an error of the answer itself (one that
-- will fail again) is still left to staff as a possible duplicate.
create or replace function public.record_sync_result(
  p_job_id               uuid,
  p_runner               text,
  p_lease_token          uuid,
  p_outcome              text,              -- 'synced' | 'applied' | 'failed' | 'released' | 'auth_failed' | 'cancelled'
  p_pq_appointment_id    text    default null, -- synced: ours; cancelled: what a lookup found upstream
  p_intakeq_client_id    text    default null,
  p_error                text    default null,
  p_error_kind           text    default null, -- 'transient' | 'ambiguous' | 'permanent', with 'failed'
  p_retry_after_seconds  integer default null,
  p_max_attempts         integer default null, -- a cap on attempts; null: the retry window alone decides
  p_lookup_completed     boolean default false, -- this attempt completed a lookup upstream (found or not)
  p_max_backoff_minutes  integer default 30,
  p_retry_window_hours   integer default 72,
  p_intakeq_answered     boolean default false, -- IntakeQ answered a call of this attempt (our key works)
  -- The intake questionnaire, with 'synced': 'sent' + its IntakeQ id, or 'failed' + kind; null: not attempted.
  p_intake_outcome       text    default null,
  p_intakeq_intake_id    text    default null,
  p_intake_error         text    default null,
  p_intake_error_kind    text    default null,
  p_intake_lookup_completed boolean default false,
  p_intake_retry_after_seconds integer default null, -- with 'released' / 'auth_failed' for the paperwork
  -- IntakeQ's call budget: the calls this attempt made (null: not said), and IntakeQ's 429 (its Retry-After)
  p_intakeq_calls_made   integer default null,
  p_rate_limited_seconds integer default null,
  -- IntakeQ's appointment as the attempt last saw it ({Id, Status, StartDate (Unix ms), ...}): with 'synced' the
  -- one posted or adopted, with 'cancelled' the one found, with 'applied' the one changed or re-read (null with
  -- 'applied': IntakeQ answered 404, it is gone).
  p_intakeq_appointment  jsonb   default null,
  p_intakeq_written      boolean default false  -- with 'applied': this attempt made the change (not a re-read)
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_job        public.sync_retry_queue%rowtype;
  v_recorded   text;
  v_holder     uuid;
  v_backoff    interval;
  v_sqlstate   text;
  v_constraint text;
  v_status     text;          -- p_intakeq_appointment's Status
  v_start      timestamptz;   -- p_intakeq_appointment's StartDate
  v_adopted    boolean;
begin
  if p_outcome is null or p_outcome not in ('synced', 'applied', 'failed', 'released', 'auth_failed', 'cancelled')
     or (p_outcome = 'synced' and p_pq_appointment_id is null)
     or (p_outcome = 'failed' and (p_error_kind is null or p_error_kind not in ('transient', 'ambiguous', 'permanent')))
     or (p_outcome = 'auth_failed' and p_error is null)
     or p_max_backoff_minutes is null or p_max_backoff_minutes not between 1 and 1440
     or p_retry_window_hours is null or p_retry_window_hours not between 1 and 8760
     or (p_max_attempts is not null and p_max_attempts not between 1 and 10000)
     or (p_intake_outcome is not null and (p_outcome <> 'synced' or p_intake_outcome not in ('sent', 'failed', 'released', 'auth_failed')))
     or (p_intake_outcome = 'sent' and p_intakeq_intake_id is null)
     or (p_intake_outcome = 'failed' and (p_intake_error_kind is null or p_intake_error_kind not in ('transient', 'ambiguous', 'permanent')))
     or (p_intakeq_calls_made is not null and p_intakeq_calls_made not between 0 and 1000)
     or (p_rate_limited_seconds is not null and p_rate_limited_seconds not between 1 and 86400)
     or jsonb_typeof(p_intakeq_appointment) not in ('object', 'null') then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_record',
      'an outcome with what it needs: synced + id, failed + kind, auth_failed + error; bounds on the knobs; '
      || 'p_intakeq_appointment an object when given');
  end if;
  -- Read as the inbound rules read it (private.apply_intakeq_appointment): a Status of at most 32 characters, a
  -- StartDate in Unix ms (unreadable: none).
  v_status := left(nullif(btrim(p_intakeq_appointment->>'Status'), ''), 32);
  v_start := private.intakeq_time(p_intakeq_appointment->'StartDate');

  select * into v_job from public.sync_retry_queue where id = p_job_id for update;
  if not found then
    perform private.fail(404, 'SYNC_JOB_NOT_FOUND', 'sync_record', 'no sync job has this id');
  end if;
  select pq_appointment_id into v_recorded from public.appointments where id = v_job.appointment_id;
  if p_outcome = 'applied' and (v_recorded is null
                                or coalesce(nullif(p_intakeq_appointment->>'Id', ''), v_recorded) <> v_recorded
                                or coalesce(p_pq_appointment_id, v_recorded) <> v_recorded) then
    perform private.fail(400, 'INVALID_REQUEST', 'sync_record',
      'applied is for the IntakeQ appointment the booking has: the booking has none, or another one');
  end if;

  -- IntakeQ's call budget, before the fencing: a holder that lost its lease made its calls all the same. Its
  -- reservation becomes the calls made, counted from now (the report comes after its last call; a late report
  -- after the lease's end counts them later still, never earlier); calls made without a reservation count from
  -- now. A 429 makes every caller wait.
  if p_intakeq_calls_made is not null then
    update public.intakeq_call_reservations
    set calls = p_intakeq_calls_made, held_until = now(), reported_at = now()
    where lease_token = p_lease_token and reported_at is null;
    if not found and p_intakeq_calls_made > 0 then
      insert into public.intakeq_call_reservations (job_id, lease_token, holder, calls, held_until, reported_at)
      values (p_job_id, coalesce(p_lease_token, gen_random_uuid()), left(p_runner, 100), p_intakeq_calls_made, now(), now())
      on conflict (lease_token) do nothing;
    end if;
  end if;
  if p_rate_limited_seconds is not null then
    update public.sync_queue_state
    set rate_limited_until = greatest(coalesce(rate_limited_until, now()), now() + make_interval(secs => p_rate_limited_seconds)),
        updated_at = now();
  end if;

  -- Fencing: a report without the current lease's token is refused, whoever sends it.
  if p_lease_token is null or v_job.lease_token is distinct from p_lease_token then
    if p_outcome in ('synced', 'cancelled') and p_pq_appointment_id is not null
       and p_pq_appointment_id is distinct from v_recorded then
      -- Staff see it at once, whatever becomes of the job (recorded_pq_appointment_id is filled in if the job
      -- syncs later, and the row goes if that is this very appointment, adopted).
      perform private.note_possible_duplicate(v_job, v_recorded, p_pq_appointment_id,
        'a runner that had lost its lease reported this IntakeQ appointment for the booking', p_runner);
      if v_job.state <> 'done' then
        -- Every later attempt (a requeue's included) must find it rather than post again.
        update public.sync_retry_queue
        set needs_reconcile = true,
            stale_pq_appointment_ids = array_append(stale_pq_appointment_ids, p_pq_appointment_id)
        where id = p_job_id;
      end if;
    end if;
    if p_outcome = 'applied' then
      -- A stale holder's cancel or move may have reached IntakeQ: whoever changes it next re-reads it first.
      update public.sync_retry_queue set needs_reconcile = true where id = p_job_id;
    end if;
    if (p_intake_outcome = 'sent' or p_intake_error_kind = 'ambiguous') and v_job.state <> 'done' then
      -- A stale holder may have sent the paperwork: whoever sends next looks for it first.
      update public.sync_retry_queue set needs_intake_lookup = true where id = p_job_id;
    end if;
    return private.sync_job(p_job_id) || jsonb_build_object('recorded', false);
  end if;

  -- IntakeQ's client id is worth keeping whatever happened next: the next attempt will not create another.
  if p_intakeq_client_id is not null then
    update public.patients p set intakeq_client_id = p_intakeq_client_id
    from public.appointments a
    where a.id = v_job.appointment_id and p.id = a.patient_id and p.intakeq_client_id is null;
  end if;

  if p_intakeq_answered and p_outcome <> 'auth_failed' then
    perform private.resume_sync_queue();   -- IntakeQ took our key again
  end if;

  if p_outcome = 'synced' then
    if v_recorded is not null and v_recorded <> p_pq_appointment_id then
      -- The appointment already has its IntakeQ id: another one is never written over it.
      perform private.note_possible_duplicate(v_job, v_recorded, p_pq_appointment_id,
        'an attempt reported another IntakeQ appointment for a booking already synced', p_runner);
      p_pq_appointment_id := v_recorded;
    end if;
    select a.id into v_holder from public.appointments a
    where a.pq_appointment_id = p_pq_appointment_id and a.id <> v_job.appointment_id;
    if v_holder is not null then
      perform private.kill_sync_job(p_job_id,
        format('IntakeQ appointment %s is already held by appointment %s', p_pq_appointment_id, v_holder), 'permanent');
      return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
    end if;
    begin
      -- What IntakeQ has (the base), when it is new to us: the appointment posted or adopted, as IntakeQ answered
      -- it; without its answer, the start this lease posted (the last of posted_starts), which a reschedule
      -- during the lease has not changed. A base we knew is kept: only a re-read (the inbound rules) changes it.
      update public.appointments
      set status = case when status = 'cancelled' then status else 'scheduled' end,
          sync_status = 'synced', pq_appointment_id = p_pq_appointment_id,
          intakeq_status = case when v_recorded is null or intakeq_status is null
                                then coalesce(v_status, 'Confirmed') else intakeq_status end,
          intakeq_start_time = case when v_recorded is null or intakeq_start_time is null
                                    then coalesce(v_start, v_job.posted_starts[cardinality(v_job.posted_starts)], start_time)
                                    else intakeq_start_time end
      where id = v_job.appointment_id;
      if p_intake_outcome = 'sent' then
        update public.appointments set intake_forms_status = 'sent', intakeq_intake_id = p_intakeq_intake_id
        where id = v_job.appointment_id and intake_forms_status in ('pending', 'failed');
      end if;
    exception when others then
      get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
      if private.is_transient(v_sqlstate) then
        raise;                                      -- the database, not the answer: the report is worth retrying
      end if;
      -- An answer the database refuses for good: the job ends, visibly, instead of coming back every minute.
      perform private.kill_sync_job(p_job_id,
        format('IntakeQ''s answer could not be stored (%s %s)', v_sqlstate, coalesce(v_constraint, '')), 'permanent');
      return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
    end;
    -- The id a stale holder reported is no duplicate if it is the one adopted; the others now know ours.
    delete from public.sync_possible_duplicates
    where appointment_id = v_job.appointment_id and other_pq_appointment_id = p_pq_appointment_id and recorded_pq_appointment_id is null;
    update public.sync_possible_duplicates set recorded_pq_appointment_id = p_pq_appointment_id
    where appointment_id = v_job.appointment_id and recorded_pq_appointment_id is null;
    -- The intake questionnaire: the job is done when the appointment is in IntakeQ AND the paperwork sent (or
    -- none is required); a paperwork failure keeps the appointment synced and the job going, or ends it dead.
    -- A booking cancelled meanwhile needs no paperwork: its job ends cancelled (and reopens for the cancel).
    update public.sync_retry_queue
    set needs_reconcile = false,
        needs_intake_lookup = (needs_intake_lookup and not p_intake_lookup_completed) or coalesce(p_intake_error_kind = 'ambiguous', false)
    where id = p_job_id;
    if p_intake_outcome = 'auth_failed' then
      update public.sync_queue_state
      set paused_reason = left(coalesce(p_intake_error, 'IntakeQ refused the key'), 2000), paused_at = coalesce(paused_at, now()),
          next_probe_at = now() + interval '1 minute', updated_at = now();
    end if;
    if exists (select 1 from public.appointments where id = v_job.appointment_id
               and (intake_forms_status in ('sent', 'not_required') or status = 'cancelled')) then
      update public.sync_retry_queue
      set state = case when (select status from public.appointments where id = v_job.appointment_id) = 'cancelled'
                       then 'cancelled' else 'done' end,
          completed_at = now(), needs_intake_lookup = false,
          error_message = null, last_error_kind = null, locked_by = null, locked_until = null
      where id = p_job_id;
    elsif p_intake_outcome in ('released', 'auth_failed') then
      -- The paperwork was not tried (a 429, a refused key, a lease too short): the attempt is given back.
      update public.sync_retry_queue
      set retry_count = greatest(retry_count - 1, 0), locked_by = null, locked_until = null,
          error_message = left('intake questionnaire: ' || coalesce(p_intake_error, 'not sent yet'), 2000),
          next_retry_at = now() + make_interval(secs => coalesce(p_intake_retry_after_seconds, 0))
      where id = p_job_id;
    elsif p_intake_error_kind = 'permanent' then
      update public.appointments set intake_forms_status = 'failed' where id = v_job.appointment_id;
      perform private.kill_sync_job(p_job_id, 'intake questionnaire: ' || coalesce(p_intake_error, 'refused'), 'permanent');
    else
      update public.sync_retry_queue
      set error_message = left('intake questionnaire: ' || coalesce(p_intake_error, 'not sent yet'), 2000),
          last_error_kind = coalesce(p_intake_error_kind, 'transient'),
          next_retry_at = now() + private.sync_backoff(retry_count, p_max_backoff_minutes),
          locked_by = null, locked_until = null
      where id = p_job_id;
    end if;

  elsif p_outcome = 'applied' then
    begin
      if p_intakeq_written and p_intakeq_appointment is not null then
        -- This attempt wrote it: what IntakeQ answered is what it has from us.
        update public.appointments
        set intakeq_status = coalesce(v_status, intakeq_status), intakeq_start_time = coalesce(v_start, intakeq_start_time)
        where id = v_job.appointment_id;
      elsif v_start is not null and v_start = any(v_job.posted_starts) and not coalesce(v_status in ('Canceled', 'Declined'), false) then
        -- A re-read finding IntakeQ at a start we sent it ourselves (an earlier move whose answer was lost, the
        -- patient having moved again since): that is ours landing, not staff moving it, and the base.
        update public.appointments set intakeq_start_time = v_start
        where id = v_job.appointment_id and intakeq_start_time is distinct from v_start;
      end if;
      perform private.apply_intakeq_appointment(v_recorded, p_intakeq_appointment);
    exception when others then
      get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name;
      if private.is_transient(v_sqlstate) then
        raise;                                      -- the database, not the answer: the report is worth retrying
      end if;
      perform private.kill_sync_job(p_job_id,
        format('IntakeQ''s answer could not be applied (%s %s)', v_sqlstate, coalesce(v_constraint, '')), 'permanent');
      return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
    end;
    if not p_intakeq_written and private.owed_intakeq_operation(p_job_id) is not null then
      -- A re-read found what we owe still owed (our earlier write never landed): the same job goes on, due now,
      -- its attempts and its retry window kept, so a write that keeps failing ends, visibly, instead of starting
      -- afresh every minute.
      update public.sync_retry_queue
      set needs_reconcile = false, next_retry_at = now(), locked_by = null, locked_until = null
      where id = p_job_id;
    else
      update public.sync_retry_queue
      set state = case when (select status from public.appointments where id = v_job.appointment_id) = 'cancelled'
                       then 'cancelled' else 'done' end,
          completed_at = now(), needs_reconcile = false,
          error_message = null, last_error_kind = null, locked_by = null, locked_until = null
      where id = p_job_id;
    end if;

  elsif p_outcome = 'cancelled' then
    if p_pq_appointment_id is not null then
      v_adopted := false;
      if v_recorded is null and not exists (select from public.appointments a where a.pq_appointment_id = p_pq_appointment_id) then
        -- What an earlier attempt created is ours: adopted, so its cancellation is owed (and posted).
        begin
          update public.appointments
          set pq_appointment_id = p_pq_appointment_id, sync_status = 'synced',
              status = case when status = 'pending_sync' then 'scheduled' else status end,
              intakeq_status = coalesce(v_status, 'Confirmed'), intakeq_start_time = coalesce(v_start, start_time)
          where id = v_job.appointment_id;
          v_adopted := true;
        exception when others then
          -- The database, not the answer (a deadlock, a serialization failure, a lock timeout, a shutdown): the
          -- report fails and is worth retrying, rather than losing the adoption to a possible-duplicate note.
          get stacked diagnostics v_sqlstate = returned_sqlstate;
          if private.is_transient(v_sqlstate) then
            raise;
          end if;
          -- Not storable for good: staff are shown it below instead.
        end;
      end if;
      if v_adopted then
        delete from public.sync_possible_duplicates
        where appointment_id = v_job.appointment_id and other_pq_appointment_id = p_pq_appointment_id and recorded_pq_appointment_id is null;
        update public.sync_possible_duplicates set recorded_pq_appointment_id = p_pq_appointment_id
        where appointment_id = v_job.appointment_id and recorded_pq_appointment_id is null;
      elsif p_pq_appointment_id is distinct from v_recorded then
        perform private.note_possible_duplicate(v_job, v_recorded, p_pq_appointment_id,
          'the booking was cancelled before it synced, but IntakeQ has this appointment for it', p_runner);
      end if;
    end if;
    update public.sync_retry_queue
    set state = 'cancelled', completed_at = now(), needs_reconcile = false, locked_by = null, locked_until = null
    where id = p_job_id;

  elsif p_outcome in ('released', 'auth_failed') then
    -- Not tried (or refused before anything could happen): the attempt is given back, the reason kept.
    if p_outcome = 'auth_failed' then
      update public.sync_queue_state
      set paused_reason = left(p_error, 2000), paused_at = coalesce(paused_at, now()),
          next_probe_at = now() + interval '1 minute', updated_at = now();
    end if;
    update public.sync_retry_queue
    set retry_count = greatest(retry_count - 1, 0), locked_by = null, locked_until = null,
        error_message = coalesce(left(p_error, 2000), error_message),
        next_retry_at = now() + make_interval(secs => coalesce(p_retry_after_seconds, 0))
    where id = p_job_id;

  elsif p_error_kind = 'permanent' or v_job.retry_count >= coalesce(p_max_attempts, v_job.retry_count + 1) then
    update public.sync_retry_queue
    set needs_reconcile = (needs_reconcile and not p_lookup_completed) or p_error_kind = 'ambiguous'
                          or cardinality(stale_pq_appointment_ids) > 0
    where id = p_job_id;
    perform private.kill_sync_job(p_job_id, p_error, p_error_kind);

  else
    -- 1, 2, 4, 8 ... minutes up to the cap, +-20% jitter, never sooner than IntakeQ's Retry-After.
    v_backoff := greatest(private.sync_backoff(v_job.retry_count, p_max_backoff_minutes),
                          make_interval(secs => coalesce(p_retry_after_seconds, 0)));
    if now() + v_backoff > v_job.window_started_at + make_interval(hours => p_retry_window_hours) then
      perform private.kill_sync_job(p_job_id,
        format('no success within %s hours of booking; last error: %s', p_retry_window_hours, p_error), p_error_kind);
      update public.sync_retry_queue
      set needs_reconcile = (needs_reconcile and not p_lookup_completed) or p_error_kind = 'ambiguous'
                          or cardinality(stale_pq_appointment_ids) > 0
      where id = p_job_id;
    else
      update public.sync_retry_queue
      set error_message = left(p_error, 2000), last_error_kind = p_error_kind,
          needs_reconcile = (needs_reconcile and not p_lookup_completed) or p_error_kind = 'ambiguous'
                          or cardinality(stale_pq_appointment_ids) > 0,
          next_retry_at = now() + v_backoff, locked_by = null, locked_until = null
      where id = p_job_id;
    end if;
  end if;

  -- Ended, yet IntakeQ is still owed something (a change made while the lease was held): the job goes on.
  if (select state from public.sync_retry_queue where id = p_job_id) in ('done', 'cancelled') then
    perform private.reopen_sync_job(v_job.appointment_id);
  end if;
  return private.sync_job(p_job_id) || jsonb_build_object('recorded', true);
end;
$$;

-- Access ------------------------------------------------------------------------------------------------------
revoke all on function
  public.claim_intakeq_catchup(text, integer, integer),
  public.finish_intakeq_catchup(uuid, boolean, jsonb, text, integer, date),
  public.apply_intakeq_appointments(jsonb, uuid),
  public.reschedule_appointment(uuid, timestamptz, text, text),
  public.record_sync_result(uuid, text, uuid, text, text, text, text, text, integer, integer, boolean, integer,
    integer, boolean, text, text, text, text, boolean, integer, integer, integer, jsonb, boolean)
from public, anon, authenticated;
grant execute on function
  public.claim_intakeq_catchup(text, integer, integer),
  public.finish_intakeq_catchup(uuid, boolean, jsonb, text, integer, date),
  public.apply_intakeq_appointments(jsonb, uuid),
  public.reschedule_appointment(uuid, timestamptz, text, text),
  public.record_sync_result(uuid, text, uuid, text, text, text, text, text, integer, integer, boolean, integer,
    integer, boolean, text, text, text, text, boolean, integer, integer, integer, jsonb, boolean)
to service_role;
revoke all on function private.apply_intakeq_appointment(text, jsonb), private.alert_on_intakeq_conflict()
from public, anon, authenticated, service_role;
