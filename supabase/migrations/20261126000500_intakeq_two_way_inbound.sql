-- =============================================================================================================
-- Two-way with IntakeQ, the inbound half (issue 13): what staff do in IntakeQ comes back to us, by comparing three
-- versions of an appointment rather than by trusting events.
--
--   ours     the row (status, start_time)
--   base     what IntakeQ had, as we last knew it (appointments.intakeq_status, intakeq_start_time)
--   theirs   what IntakeQ says now: a re-read (GET /appointments/{id}) after a webhook, or a catch-up page
--
--   theirs <> base      staff changed it in IntakeQ: ours follows (private.apply_intakeq_appointment)
--   ours <> base        we owe IntakeQ a change (a cancel or a move): the sync job does it
--                       (20261126000600_intakeq_two_way_outbound.sql)
--
-- Since every rule compares against what IntakeQ says now, never against what an event said, applying a re-read
-- twice, or re-reads of events that arrived out of order, ends in one state.
--
--   busy blocks      an IntakeQ appointment that is not ours (booked by staff in IntakeQ) and not cancelled holds
--                    its provider's time: intakeq_busy_blocks, enforced on appointments like the exclusion
--                    constraints (a trigger raising 23P01 appointments_no_busy_block_overlap), so the web cannot
--                    book over it (SLOT_TAKEN). Written under the provider's booking lock, as bookings are.
--   conflicts        what cannot be applied without overwriting something (a staff move, or a staff reinstatement,
--                    onto a taken slot), and a double booking across the two systems (a block over one of ours):
--                    intakeq_conflicts, one open row per IntakeQ appointment and kind, a staff alert when one
--                    opens, sync-health lists them. An open move conflict stops our own move of that appointment
--                    from being pushed upstream, and a reschedule of it here (20261126000600).
--   reinstatement    ours cancelled, IntakeQ's cancelled as we last knew it (staff cancelled it there, or our
--                    cancellation landed), and active there again: staff reinstated it, and ours follows at
--                    IntakeQ's start; its time taken here, ours stays cancelled with the base still cancelled (no
--                    cancel is owed) and a reinstate_collides conflict opens. A cancellation made here that has not
--                    reached IntakeQ is still owed.
--   inbound outbox   intakeq_inbound_events (20261126000400) gains leases: claim, apply (fenced by the lease
--                    token), release with backoff. A webhook that arrives after the claim keeps the row waiting:
--                    the re-read may predate the change it announces.
--   catch-up         webhooks get lost: every INTAKEQ_CATCHUP_MINUTES the cron reads the upcoming appointments
--                    and applies the same rules (intakeq_catchup_state: one lease, when it last completed). A pass
--                    longer than one run's call budget resumes where the budget stopped it (next_page: not a
--                    failure, no backoff); a page is applied only under the current lease. IntakeQ sends no
--                    webhook when an appointment is deleted: what a pass that read its whole window did not list
--                    (intakeq_catchup_listed) is re-read, so a deletion is found within a catch-up period.
--   call budget      the re-reads and catch-up pages draw on IntakeQ's call budget (intakeq_call_reservations)
--                    with a token of their own, never taking the calls the oldest due booking needs.
--
-- No patient data: blocks, conflicts, events and alerts hold IntakeQ ids, provider ids and times only.
-- =============================================================================================================

-- Appointments: the base, and how a cancellation happened --------------------------------------------------------
alter table public.appointments
  add column intakeq_status      text check (char_length(intakeq_status) between 1 and 32),
  add column intakeq_start_time  timestamptz,
  add column cancelled_at        timestamptz,
  add column cancelled_by        text check (cancelled_by in ('patient', 'partner', 'staff', 'intakeq')),
  add column cancellation_reason text check (char_length(cancellation_reason) <= 500);

comment on column public.appointments.intakeq_status is
  'IntakeQ''s Status of this appointment as we last knew it (Confirmed, WaitingConfirmation, Declined, Canceled, Missed): the base of the three-way comparison.';
comment on column public.appointments.intakeq_start_time is
  'The start IntakeQ has, as we last knew it: differs from start_time while our move is owed upstream.';
comment on column public.appointments.cancelled_by is
  'Who cancelled: patient, partner, staff (through our API) or intakeq (staff in IntakeQ).';
comment on column public.appointments.cancellation_reason is
  'Why, as given with the cancellation (at most 500 characters; posted to IntakeQ with it).';

-- Everything already in IntakeQ was posted Confirmed at its start (nothing could change it there before now).
update public.appointments
set intakeq_status = 'Confirmed', intakeq_start_time = start_time
where pq_appointment_id is not null;

-- Busy blocks -------------------------------------------------------------------------------------------------------
-- Active IntakeQ appointments that are not ours: the provider is busy then. A block is deleted when IntakeQ
-- cancels it (or it turns out to be ours: an appointment adopts its id).
create table public.intakeq_busy_blocks (
  pq_appointment_id text primary key check (char_length(pq_appointment_id) between 1 and 64),
  provider_id       uuid not null references public.providers (id),
  start_time        timestamptz not null,
  end_time          timestamptz not null,
  intakeq_status    text check (char_length(intakeq_status) between 1 and 32),
  first_seen_at     timestamptz not null default now(),
  updated_at        timestamptz not null default now(),
  constraint intakeq_busy_blocks_ends_after_start check (end_time > start_time)
);
create index intakeq_busy_blocks_provider_time on public.intakeq_busy_blocks
  using gist (provider_id, tstzrange(start_time, end_time, '[)'));
create index intakeq_busy_blocks_end_time on public.intakeq_busy_blocks (end_time);
select private.close_to_browser_roles('public.intakeq_busy_blocks');
comment on table public.intakeq_busy_blocks is
  'IntakeQ appointments that are not ours and not cancelled: the web cannot book over them (appointments_no_busy_block_overlap).';
comment on column public.intakeq_busy_blocks.updated_at is
  'When the block last changed (a re-read read before then may be stale).';

-- Conflicts ---------------------------------------------------------------------------------------------------------
-- A reinstatement whose time is taken here is a conflict of its own kind: staff are told something else than for
-- a move (ours stays cancelled, and IntakeQ's appointment is not cancelled again), and an open one does not stop a
-- move the way move_collides does (ours is cancelled: nothing moves).
create table public.intakeq_conflicts (
  id                uuid primary key default gen_random_uuid(),
  pq_appointment_id text not null check (char_length(pq_appointment_id) between 1 and 64),
  appointment_id    uuid references public.appointments (id) on delete set null,
  kind              text not null check (kind in ('move_collides', 'block_overlaps', 'reinstate_collides')),
  detail            text check (char_length(detail) <= 500),
  intakeq_start     timestamptz,
  detected_at       timestamptz not null default now(),
  last_seen_at      timestamptz not null default now(),
  resolved_at       timestamptz
);
-- One open conflict per IntakeQ appointment and kind: seeing it again bumps last_seen_at.
create unique index intakeq_conflicts_one_open on public.intakeq_conflicts (pq_appointment_id, kind)
  where resolved_at is null;
create index intakeq_conflicts_appointment on public.intakeq_conflicts (appointment_id) where resolved_at is null;
select private.close_to_browser_roles('public.intakeq_conflicts');
comment on table public.intakeq_conflicts is
  'IntakeQ changes that could not be applied (move_collides, reinstate_collides) and double bookings across the two systems (block_overlaps); open while resolved_at is null. Ids and times only.';
comment on column public.intakeq_conflicts.appointment_id is
  'Ours: the appointment staff moved (move_collides) or reinstated (reinstate_collides), or the one the block overlaps (block_overlaps).';

-- A new conflict is a staff alert; so is a webhook whose appointment cannot be re-read for hours.
alter table public.staff_alerts drop constraint staff_alerts_kind_check;
alter table public.staff_alerts add constraint staff_alerts_kind_check
  check (kind in ('sync_dead', 'queue_paused', 'queue_resumed', 'possible_duplicate', 'intakeq_conflict',
                  'intakeq_reread_failing'));

-- Small pieces ------------------------------------------------------------------------------------------------------

-- IntakeQ's times are Unix milliseconds (a JSON number, or a string of digits); anything else is NULL. Computed in
-- whole days plus seconds (so that no float rounding moves a millisecond), on a timestamp without time zone (so
-- that the session's time zone and its daylight saving changes play no part), read as UTC.
create function private.intakeq_time(p_value jsonb)
returns timestamptz
language sql
immutable
set search_path = ''
as $$
  select (timestamp '1970-01-01 00:00:00'
          + make_interval(days => (v.ms / 86400000)::integer, secs => (v.ms % 86400000) / 1000.0)) at time zone 'UTC'
  from (select case when jsonb_typeof(p_value) in ('number', 'string') and p_value #>> '{}' ~ '^[0-9]{1,15}(\.0+)?$'
                    then trunc((p_value #>> '{}')::numeric)::bigint end as ms) v;
$$;

-- The provider's booking lock (the key private.lock_booking_slots takes for it): blocks are written under it, so
-- a booking and a block for one provider never both see the other missing.
create function private.lock_provider_slots(p_provider_id uuid)
returns void
language sql
set search_path = ''
as $$
  select pg_advisory_xact_lock(hashtextextended('booking-provider:' || p_provider_id, 0));
$$;

-- Opens a conflict, or bumps the open one of that appointment and kind (the alert goes out on opening only).
create function private.note_intakeq_conflict(
  p_pq_appointment_id text,
  p_appointment_id    uuid,
  p_kind              text,
  p_intakeq_start     timestamptz,
  p_detail            text
)
returns void
language sql
set search_path = ''
as $$
  insert into public.intakeq_conflicts (pq_appointment_id, appointment_id, kind, intakeq_start, detail)
  values (p_pq_appointment_id, p_appointment_id, p_kind, p_intakeq_start, left(p_detail, 500))
  on conflict (pq_appointment_id, kind) where resolved_at is null do update
  set last_seen_at = now(), appointment_id = excluded.appointment_id, intakeq_start = excluded.intakeq_start,
      detail = excluded.detail;
$$;

create function private.resolve_intakeq_conflict(p_pq_appointment_id text, p_kind text)
returns void
language sql
set search_path = ''
as $$
  update public.intakeq_conflicts set resolved_at = now()
  where pq_appointment_id = p_pq_appointment_id and kind = p_kind and resolved_at is null;
$$;

-- The busy blocks on appointments ---------------------------------------------------------------------------------
-- Like an exclusion constraint: an appointment may not be written into a time its provider is busy in IntakeQ
-- (23P01 appointments_no_busy_block_overlap, which book_appointment answers SLOT_TAKEN). Only a write that puts
-- the appointment into a time it did not hold is checked (inserted, moved, given another provider, or made active
-- again): a block that arrived over an existing appointment is a conflict for staff (block_overlaps), and must
-- not stop that appointment's unrelated updates (its sync recording `scheduled`, say). A block with the
-- appointment's own IntakeQ id was ours all along: it is deleted when the appointment adopts the id.
-- (No private.* call in here: service_role's staff tooling writes appointments without usage on that schema.)
create function private.appointments_busy_blocks()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_block public.intakeq_busy_blocks;
begin
  if new.pq_appointment_id is not null and (tg_op = 'INSERT' or new.pq_appointment_id is distinct from old.pq_appointment_id) then
    delete from public.intakeq_busy_blocks where pq_appointment_id = new.pq_appointment_id;
    update public.intakeq_conflicts set resolved_at = now()
    where pq_appointment_id = new.pq_appointment_id and kind = 'block_overlaps' and resolved_at is null;
  end if;
  if new.status <> 'cancelled'
     and (tg_op = 'INSERT' or old.status = 'cancelled' or new.provider_id <> old.provider_id
          or new.start_time <> old.start_time or new.end_time <> old.end_time) then
    select * into v_block
    from public.intakeq_busy_blocks b
    where b.provider_id = new.provider_id
      and tstzrange(b.start_time, b.end_time, '[)') && tstzrange(new.start_time, new.end_time, '[)')
      and b.pq_appointment_id is distinct from new.pq_appointment_id
    order by b.start_time
    limit 1;
    if found then
      raise exception 'conflicting key value violates exclusion constraint "appointments_no_busy_block_overlap"'
        using errcode = 'exclusion_violation', constraint = 'appointments_no_busy_block_overlap',
              schema = 'public', table = 'appointments',
              detail = format('the provider is busy in IntakeQ from %s to %s (IntakeQ appointment %s)',
                              v_block.start_time, v_block.end_time, v_block.pq_appointment_id);
    end if;
  end if;
  return new;
end;
$$;
create trigger appointments_no_busy_block_overlap
  before insert or update of start_time, end_time, status, provider_id, pq_appointment_id on public.appointments
  for each row execute function private.appointments_busy_blocks();

-- A conflict ends with what it was about: a cancelled appointment has none left, and a block that no longer
-- overlaps the appointment it was recorded against is no double booking any more (whoever cancelled or moved it:
-- IntakeQ, the patient, staff).
create function private.appointments_settle_intakeq_conflicts()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status = 'cancelled' then
    update public.intakeq_conflicts set resolved_at = now() where appointment_id = new.id and resolved_at is null;
  else
    update public.intakeq_conflicts c set resolved_at = now()
    where c.appointment_id = new.id and c.kind = 'block_overlaps' and c.resolved_at is null
      and not exists (select from public.intakeq_busy_blocks b
                      where b.pq_appointment_id = c.pq_appointment_id and b.provider_id = new.provider_id
                        and tstzrange(b.start_time, b.end_time, '[)') && tstzrange(new.start_time, new.end_time, '[)'));
  end if;
  return new;
end;
$$;
create trigger appointments_settle_intakeq_conflicts
  after update of start_time, end_time, status, provider_id on public.appointments
  for each row
  when (new.status is distinct from old.status or new.start_time <> old.start_time or new.end_time <> old.end_time
        or new.provider_id <> old.provider_id)
  execute function private.appointments_settle_intakeq_conflicts();

-- A new conflict reaches staff: ids, the provider and times, never the patient.
create function private.alert_on_intakeq_conflict()
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
create trigger intakeq_conflicts_alert after insert on public.intakeq_conflicts
  for each row execute function private.alert_on_intakeq_conflict();

-- The inbound rules -------------------------------------------------------------------------------------------------
-- Applies what IntakeQ says now about one of its appointments (p_appointment: its JSON, fields Id, Status,
-- StartDate and EndDate in Unix ms, Duration in minutes, PractitionerId; NULL: IntakeQ answered 404, gone, taken
-- as Canceled). Answers 'cancelled', 'moved', 'reinstated', 'blocked', 'unblocked', 'conflict', 'unchanged' or
-- 'ignored'.
--
-- Ours (our appointment holds its id), locked:
--   cancelled upstream (Canceled, Declined, gone)     ours cancelled (by 'intakeq')                  'cancelled'
--                                                     already cancelled: the base noted (and an
--                                                     open reinstate_collides conflict resolved)     'unchanged'
--   active upstream, ours cancelled, the base active  our cancellation is owed upstream              'unchanged'
--     (cancelled here; it has not reached IntakeQ)
--   active upstream, ours cancelled, the base         staff reinstated it: ours is scheduled again at
--     cancelled (cancelled there, or ours landed)     IntakeQ's start, our length; the base follows  'reinstated'
--     ... onto a taken time (23P01)                   nothing of ours changes, the base stays
--                                                     cancelled (no cancel owed); a conflict
--                                                     (reinstate_collides)                           'conflict'
--   theirs = ours                                     the base noted; a move conflict resolved       'unchanged'
--   theirs = base, <> ours                            our move is owed upstream                      'unchanged'
--   theirs differs from both                          staff moved it: ours follows, same length      'moved'
--     ... onto a taken time (23P01)                   nothing of ours changes; a conflict            'conflict'
-- Not ours (PractitionerId mapped to a provider, else 'ignored'):
--   cancelled upstream                                its block deleted                   'unblocked' / 'unchanged'
--   active, ours at that provider and start without an IntakeQ id yet (our create, not recorded)  'ignored'
--   active                                            its block written                    'blocked' / 'unchanged'
--     ... overlapping an active appointment of ours   the block kept; a conflict                     'conflict'
-- An active appointment whose StartDate cannot be read changes nothing ('ignored').
create function private.apply_intakeq_appointment(p_pq_appointment_id text, p_appointment jsonb)
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

-- Whether anything we hold for this IntakeQ appointment was written after p_since: a re-read made before then may
-- be older than what is stored, and must not be applied over it.
create function private.intakeq_written_since(p_pq_appointment_id text, p_since timestamptz)
returns boolean
language sql
stable
set search_path = ''
as $$
  select exists (select from public.appointments where pq_appointment_id = p_pq_appointment_id and updated_at > p_since)
      or exists (select from public.intakeq_busy_blocks where pq_appointment_id = p_pq_appointment_id and updated_at > p_since);
$$;

-- The rows an inbound apply writes, locked in the order the outbound side takes them (20261126000600: the sync
-- job's row, then the appointment's, then the booking locks), so an apply and a sync job's record never wait for
-- each other in a circle. Answers our appointment's id (null: not ours).
create function private.lock_intakeq_appointment(p_pq_appointment_id text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
begin
  select a.id into v_id from public.appointments a where a.pq_appointment_id = p_pq_appointment_id;
  if v_id is not null then
    perform from public.sync_retry_queue where appointment_id = v_id for update;
    select a.id into v_id from public.appointments a where a.id = v_id and a.pq_appointment_id = p_pq_appointment_id for update;
  end if;
  return v_id;
end;
$$;

revoke all on function private.lock_intakeq_appointment(text) from public, anon, authenticated, service_role;
revoke all on function private.intakeq_time(jsonb), private.lock_provider_slots(uuid),
  private.note_intakeq_conflict(text, uuid, text, timestamptz, text), private.resolve_intakeq_conflict(text, text),
  private.appointments_busy_blocks(), private.appointments_settle_intakeq_conflicts(), private.alert_on_intakeq_conflict(),
  private.apply_intakeq_appointment(text, jsonb), private.intakeq_written_since(text, timestamptz)
from public, anon, authenticated, service_role;

-- The inbound outbox: leases ----------------------------------------------------------------------------------------
alter table public.intakeq_inbound_events
  add column locked_by       text check (char_length(locked_by) between 1 and 100),
  add column lease_token     uuid,
  add column locked_until    timestamptz,
  add column claimed_at      timestamptz,
  add column attempts        integer not null default 0 check (attempts >= 0),
  add column next_attempt_at timestamptz,
  add column last_error      text check (char_length(last_error) <= 500),
  add constraint intakeq_inbound_events_lease_whole
    check ((locked_by is null) = (lease_token is null) and (lease_token is null) = (locked_until is null)
           and (lease_token is null) = (claimed_at is null));
comment on column public.intakeq_inbound_events.lease_token is 'The current lease''s token: only an apply or release carrying it is recorded.';
comment on column public.intakeq_inbound_events.claimed_at is 'When the current lease was taken: the re-read is no older than this.';
comment on column public.intakeq_inbound_events.attempts is 'Re-reads that failed (released with an error).';
comment on column public.intakeq_inbound_events.last_error is 'Why the last re-read failed (no patient data).';

-- Leases up to p_limit waiting events that are due, the longest waiting first (FOR UPDATE SKIP LOCKED): answers
-- [{event_id, pq_appointment_id, lease_token, lease_seconds_left}].
create function public.claim_intakeq_inbound_events(p_runner text, p_limit integer, p_lease_seconds integer)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_claimed jsonb;
begin
  if p_runner is null or char_length(p_runner) not between 1 and 100
     or p_limit is null or p_limit not between 1 and 100
     or p_lease_seconds is null or p_lease_seconds not between 1 and 3600 then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_inbound',
      'p_runner (1-100 characters), p_limit (1-100) and p_lease_seconds (1-3600) are required');
  end if;
  with due as (
    select e.id from public.intakeq_inbound_events e
    where e.processed_at is null
      and (e.next_attempt_at is null or e.next_attempt_at <= now())
      and (e.locked_until is null or e.locked_until <= now())
    order by e.first_received_at, e.id
    limit p_limit
    for update skip locked
  ), claimed as (
    update public.intakeq_inbound_events e
    set locked_by = p_runner, lease_token = gen_random_uuid(), claimed_at = now(),
        locked_until = now() + make_interval(secs => p_lease_seconds)
    from due where e.id = due.id
    returning e.id, e.pq_appointment_id, e.lease_token, e.locked_until, e.first_received_at
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'event_id', id, 'pq_appointment_id', pq_appointment_id, 'lease_token', lease_token,
           'lease_seconds_left', private.seconds_left(locked_until)) order by first_received_at, id), '[]')
  into v_claimed from claimed;
  return v_claimed;
end;
$$;

-- The lease's end without success: given up (the token cleared), due again at p_due.
create function private.release_intakeq_event_row(p_event_id uuid, p_due timestamptz)
returns void
language sql
set search_path = ''
as $$
  update public.intakeq_inbound_events
  set locked_by = null, lease_token = null, locked_until = null, claimed_at = null, next_attempt_at = p_due
  where id = p_event_id;
$$;

-- Applies the re-read of a claimed event (p_appointment: IntakeQ's appointment now; NULL: it answered 404):
-- answers {result, recorded, processed}. Refused (recorded false, nothing applied) unless p_lease_token is the
-- current lease's. The event is processed, unless it may not be: a webhook arrived after the claim (the re-read
-- may predate the change it announces), or what we hold for that appointment was written after the claim (by a
-- sync job's result or a catch-up: the re-read may be older than it, and is not applied, result null). Then the
-- row is released, due now, to be re-read again.
create function public.apply_intakeq_event(p_event_id uuid, p_lease_token uuid, p_appointment jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_event  public.intakeq_inbound_events;
  v_result text;
begin
  if p_event_id is null or p_lease_token is null then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_inbound', 'p_event_id and p_lease_token are required');
  end if;
  select * into v_event from public.intakeq_inbound_events where id = p_event_id for update;
  if not found or v_event.lease_token is distinct from p_lease_token then
    return jsonb_build_object('result', null, 'recorded', false, 'processed', false);
  end if;
  -- Ours (its job, then the row) locked first, then the question.
  perform private.lock_intakeq_appointment(v_event.pq_appointment_id);
  if private.intakeq_written_since(v_event.pq_appointment_id, v_event.claimed_at) then
    perform private.release_intakeq_event_row(p_event_id, now());
    return jsonb_build_object('result', null, 'recorded', true, 'processed', false);
  end if;
  v_result := private.apply_intakeq_appointment(v_event.pq_appointment_id, p_appointment);
  if v_event.last_received_at > v_event.claimed_at then
    perform private.release_intakeq_event_row(p_event_id, now());
    return jsonb_build_object('result', v_result, 'recorded', true, 'processed', false);
  end if;
  update public.intakeq_inbound_events
  set processed_at = now(), locked_by = null, lease_token = null, locked_until = null, claimed_at = null,
      next_attempt_at = null
  where id = p_event_id;
  return jsonb_build_object('result', v_result, 'recorded', true, 'processed', true);
end;
$$;

-- The re-read failed (IntakeQ unreachable, a 5xx, a 429, no budget): the event waits 1, 2, 4 ... minutes (at most
-- 30) by its failures, or IntakeQ's Retry-After when given; p_error is kept (no patient data). Answers
-- {recorded, attempts, next_attempt_at}; recorded false (nothing changed) unless p_lease_token is current.
create function public.release_intakeq_event(p_event_id uuid, p_lease_token uuid, p_error text, p_retry_after_seconds integer)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_event public.intakeq_inbound_events;
begin
  if p_event_id is null or p_lease_token is null
     or (p_retry_after_seconds is not null and p_retry_after_seconds not between 1 and 86400) then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_inbound',
      'p_event_id and p_lease_token are required; p_retry_after_seconds is 1-86400');
  end if;
  select * into v_event from public.intakeq_inbound_events where id = p_event_id for update;
  if not found or v_event.lease_token is distinct from p_lease_token then
    return jsonb_build_object('recorded', false, 'attempts', v_event.attempts, 'next_attempt_at', null);
  end if;
  update public.intakeq_inbound_events
  set attempts = attempts + 1,
      last_error = coalesce(left(p_error, 500), 'the re-read failed'),
      next_attempt_at = now() + make_interval(secs => coalesce(p_retry_after_seconds,
                                                                least(1800, 60 * power(2, least(attempts, 10))))),
      locked_by = null, lease_token = null, locked_until = null, claimed_at = null
  where id = p_event_id
  returning * into v_event;
  -- It goes on trying (what IntakeQ did is not applied until it succeeds), but after about two hours of failures
  -- (1, 2, 4, 8, 16, 30, 30, 30 minutes) a person is told, once: nothing fails silently. Ids only.
  if v_event.attempts = 8 then
    perform private.raise_staff_alert('intakeq_reread_failing', 'intakeq-reread-failing:' || v_event.id::text,
      (select a.id from public.appointments a where a.pq_appointment_id = v_event.pq_appointment_id),
      format('A change made in IntakeQ could not be read back for %s attempts (about two hours): IntakeQ appointment %s. It is still tried every 30 minutes; until then a cancel, move or booking made there is not applied here. The last error is in sync-health (intakeq_inbound).',
             v_event.attempts, v_event.pq_appointment_id));
  end if;
  return jsonb_build_object('recorded', true, 'attempts', v_event.attempts,
                            'next_attempt_at', private.rfc3339(v_event.next_attempt_at));
end;
$$;

-- The catch-up ------------------------------------------------------------------------------------------------------
create table public.intakeq_catchup_state (
  id                boolean primary key default true check (id),
  last_started_at   timestamptz,
  last_completed_at timestamptz,
  locked_by         text check (char_length(locked_by) between 1 and 100),
  lease_token       uuid,
  locked_until      timestamptz,
  failures          integer not null default 0 check (failures >= 0),
  last_error        text check (char_length(last_error) <= 500),
  last_counts       jsonb check (jsonb_typeof(last_counts) = 'object'),
  updated_at        timestamptz not null default now(),
  next_page         integer not null default 1 check (next_page between 1 and 1000),
  pass_started_at   timestamptz,
  constraint intakeq_catchup_state_lease_whole
    check ((locked_by is null) = (lease_token is null) and (lease_token is null) = (locked_until is null))
);
insert into public.intakeq_catchup_state default values;
select private.close_to_browser_roles('public.intakeq_catchup_state');
comment on table public.intakeq_catchup_state is
  'The catch-up (re-reading IntakeQ''s upcoming appointments, for lost webhooks): one row, its lease, when it last completed.';
comment on column public.intakeq_catchup_state.failures is
  'Runs that failed since the last completed one: the next waits 1, 2, 4 ... minutes (at most 30, at most the period).';
comment on column public.intakeq_catchup_state.next_page is
  'The page the next catch-up run reads first: 1 after a completed pass; where an unfinished run stopped (the budget ran out) otherwise.';
comment on column public.intakeq_catchup_state.pass_started_at is
  'When the current (or last) pass began at page 1: what it lists from then on is what IntakeQ still has.';

-- What a pass saw IntakeQ list: IntakeQ sends no webhook when an appointment is deleted (and a lost webhook leaves
-- no trace), so what a pass that read its whole window did not list is re-read (finish_intakeq_catchup).
create table public.intakeq_catchup_listed (
  pq_appointment_id text primary key check (char_length(pq_appointment_id) between 1 and 64),
  listed_at         timestamptz not null
);
select private.close_to_browser_roles('public.intakeq_catchup_listed');
comment on table public.intakeq_catchup_listed is
  'IntakeQ appointment ids the catch-up saw listed, and when: what a whole pass did not list is re-read. Ids only.';

-- The catch-up applies a page of IntakeQ's appointments (each with its own Id): answers the count of each result
-- ({cancelled, moved, reinstated, blocked, unblocked, conflict, unchanged, ignored, skipped}) and recorded (whether
-- the page was applied). While a catch-up holds its lease, an appointment whose row or block was written after
-- that catch-up began is skipped: the page may be older than that write (a re-read or a sync job's result), and
-- the next catch-up reads it again. Waiting inbound events for the page's appointments stay waiting (a re-read is
-- cheap, and may be newer than the page).
-- p_lease_token (the catch-up's, from claim_intakeq_catchup): unless it is the current lease's, nothing is applied
-- and the counts are all 0 with recorded false. A runner whose lease ran out and was taken over (or that already
-- finished) cannot write a page it read long ago over what the new holder or a re-read wrote since. The catch-up's
-- row is held (FOR SHARE) while the page is applied, so the lease is not taken over meanwhile; the page's ids are
-- noted as listed (intakeq_catchup_listed). Without a token (staff, tests), the page is applied, and nothing noted.
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
    -- What this pass saw IntakeQ list: at its end, ours and the blocks it did not see are re-read.
    insert into public.intakeq_catchup_listed (pq_appointment_id, listed_at)
    select distinct e.value->>'Id', now() from jsonb_array_elements(p_appointments) e
    where jsonb_typeof(e.value) = 'object' and char_length(e.value->>'Id') between 1 and 64
    on conflict (pq_appointment_id) do update set listed_at = excluded.listed_at;
  end if;
  return v_counts || jsonb_build_object('recorded', true);
end;
$$;

-- Takes the catch-up's lease when it is due: not leased, and never completed or completed p_every_minutes ago
-- (0: every time), or a pass under way (next_page past 1) whatever the period, so that it finishes; after failed
-- runs, not before a backoff of 1, 2, 4 ... minutes (at most 30, at most the period), so a failing IntakeQ is not
-- asked every minute of the day. A claim at page 1 begins a pass (pass_started_at). Answers {due, lease_token,
-- lease_seconds_left, next_page} (all but due null when not due): next_page is the page to read first.
create function public.claim_intakeq_catchup(p_runner text, p_every_minutes integer, p_lease_seconds integer)
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
      -- a pass from page 1 begins: what it lists from now on is what IntakeQ still has
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
-- p_next_page is ignored when completed. p_listed_until, with a completed pass that read its whole window (the
-- window's last date): what it did not list is re-read (below). Answers {recorded, last_completed_at, next_page,
-- unlisted}; recorded false (nothing changed, no unlisted) unless p_lease_token is current.
create function public.finish_intakeq_catchup(
  p_lease_token  uuid,
  p_completed    boolean,
  p_counts       jsonb,
  p_error        text,
  p_next_page    integer default null,
  p_listed_until date    default null    -- a pass that read its whole window: the window's last date
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

-- IntakeQ's call budget outside sync jobs ---------------------------------------------------------------------------
-- Reserves p_calls for the re-reads or catch-up pages made under p_lease_token (an event's or the catch-up's
-- lease), held p_hold_seconds: all or nothing, serialised on sync_queue_state's row like reserve_intakeq_calls.
-- Refused while IntakeQ's 429 pause lasts, and unless p_calls AND the calls of the oldest due sync job fit (a
-- booking waiting for the cron is never starved by re-reads; not while the queue is paused: no job is claimed
-- then). Answers {reserved, calls, wait_ms}: wait_ms is how long until they would fit, null when they never fit
-- together in one window (the booking is served first; ask again later). Reserving again under a
-- token adds to its reservation; after a report, the reported calls keep counting on a row of their own.
create function public.reserve_intakeq_budget(
  p_holder           text,
  p_lease_token      uuid,
  p_calls            integer,
  p_hold_seconds     integer,
  p_calls_per_minute integer,
  p_calls_per_day    integer,
  p_minute_ms        integer
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_paused    timestamptz;
  v_oldest    uuid;
  v_job_calls integer := 0;
  v_wait      bigint;
  v_row       public.intakeq_call_reservations;
begin
  if p_holder is null or char_length(p_holder) not between 1 and 100 or p_lease_token is null
     or p_calls is null or p_calls < 1 or p_hold_seconds is null or p_hold_seconds not between 1 and 3600 then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_budget',
      'p_holder (1-100 characters), p_lease_token, p_calls (at least 1) and p_hold_seconds (1-3600) are required');
  end if;
  perform private.check_intakeq_budget('intakeq_budget', p_calls_per_minute, p_calls_per_day, p_minute_ms);
  if p_calls > least(p_calls_per_minute, p_calls_per_day) then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_budget', 'p_calls is more than a minute''s budget: it could never fit');
  end if;

  select paused_at into v_paused from public.sync_queue_state for update;
  if v_paused is null then
    v_oldest := private.oldest_due_sync_job(false);
    if v_oldest is not null then
      -- (as the claim counts them: at most a minute's and a day's budget)
      v_job_calls := least(coalesce(private.intakeq_calls_needed(v_oldest, true), 0), p_calls_per_minute, p_calls_per_day);
    end if;
  end if;
  if v_job_calls > 0 and p_calls + v_job_calls > least(p_calls_per_minute, p_calls_per_day) then
    -- Both can never fit in one window: the booking goes first (the cron claims it as soon as its calls fit).
    return jsonb_build_object('reserved', false, 'calls', 0, 'wait_ms', null);
  end if;
  v_wait := private.intakeq_budget_wait_ms(p_calls + v_job_calls, p_calls_per_minute, p_calls_per_day, p_minute_ms);
  if v_wait > 0 then
    return jsonb_build_object('reserved', false, 'calls', 0, 'wait_ms', v_wait);
  end if;

  select * into v_row from public.intakeq_call_reservations where lease_token = p_lease_token for update;
  if not found then
    insert into public.intakeq_call_reservations (lease_token, holder, calls, held_until)
    values (p_lease_token, p_holder, p_calls, now() + make_interval(secs => p_hold_seconds));
  elsif v_row.reported_at is not null then
    -- What was reported keeps counting, on a row of its own; the token's row holds the new reservation.
    insert into public.intakeq_call_reservations (job_id, lease_token, holder, calls, taken_at, held_until, reported_at)
    values (v_row.job_id, gen_random_uuid(), v_row.holder, v_row.calls, v_row.taken_at, v_row.held_until, v_row.reported_at);
    update public.intakeq_call_reservations
    set holder = p_holder, calls = p_calls, taken_at = now(), held_until = now() + make_interval(secs => p_hold_seconds),
        reported_at = null
    where id = v_row.id;
  else
    update public.intakeq_call_reservations
    set holder = p_holder, calls = least(calls + p_calls, 1000),
        held_until = greatest(held_until, now() + make_interval(secs => p_hold_seconds))
    where id = v_row.id;
  end if;
  return jsonb_build_object('reserved', true, 'calls', p_calls, 'wait_ms', null);
end;
$$;

-- Reports the calls made under p_lease_token since its last reservation, as record_sync_result does for a job:
-- the reservation becomes the calls made, counted from now; calls made with no reservation open count from now
-- too. A 429 (p_rate_limited_seconds, IntakeQ's Retry-After) pauses every caller.
create function public.report_intakeq_calls(p_lease_token uuid, p_calls_made integer, p_rate_limited_seconds integer)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  if p_lease_token is null or p_calls_made is null or p_calls_made not between 0 and 1000
     or (p_rate_limited_seconds is not null and p_rate_limited_seconds not between 1 and 86400) then
    perform private.fail(400, 'INVALID_REQUEST', 'intakeq_budget',
      'p_lease_token and p_calls_made (0-1000) are required; p_rate_limited_seconds is 1-86400');
  end if;
  update public.intakeq_call_reservations
  set calls = p_calls_made, held_until = now(), reported_at = now()
  where lease_token = p_lease_token and reported_at is null;
  if not found and p_calls_made > 0 then
    insert into public.intakeq_call_reservations (lease_token, calls, held_until, reported_at)
    values (case when exists (select from public.intakeq_call_reservations where lease_token = p_lease_token)
                 then gen_random_uuid() else p_lease_token end,
            p_calls_made, now(), now());
  end if;
  if p_rate_limited_seconds is not null then
    update public.sync_queue_state
    set rate_limited_until = greatest(coalesce(rate_limited_until, now()), now() + make_interval(secs => p_rate_limited_seconds)),
        updated_at = now();
  end if;
end;
$$;

-- sync_health --------------------------------------------------------------------------------------------------
-- As before, and IntakeQ's side: open conflicts, the inbound outbox, the catch-up, the future busy blocks.
create or replace function public.sync_health()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'appointments_by_sync_status', (
      select jsonb_build_object(
        'pending', count(*) filter (where sync_status = 'pending'),
        'synced',  count(*) filter (where sync_status = 'synced'),
        'failed',  count(*) filter (where sync_status = 'failed'))
      from public.appointments),
    'jobs_by_state', (
      select jsonb_build_object(
        'pending',   count(*) filter (where state = 'pending'),
        'done',      count(*) filter (where state = 'done'),
        'dead',      count(*) filter (where state = 'dead'),
        'cancelled', count(*) filter (where state = 'cancelled'))
      from public.sync_retry_queue),
    'queue', (
      select jsonb_build_object('paused', paused_at is not null, 'reason', paused_reason,
                                'paused_since', private.rfc3339(paused_at))
      from public.sync_queue_state),
    'dead_jobs', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'job_id', q.id, 'appointment_id', q.appointment_id, 'request_id', q.request_id,
               'attempts', q.retry_count, 'error', q.error_message, 'error_kind', q.last_error_kind,
               'dead_since', private.rfc3339(q.completed_at)) order by q.completed_at desc), '[]')
      from public.sync_retry_queue q where q.state = 'dead'),
    'possible_duplicates', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'appointment_id', d.appointment_id, 'provider_id', a.provider_id, 'start', private.rfc3339(a.start_time),
               'recorded_pq_appointment_id', d.recorded_pq_appointment_id,
               'other_pq_appointment_id', d.other_pq_appointment_id, 'reason', d.reason,
               'detected_at', private.rfc3339(d.detected_at)) order by d.detected_at desc), '[]')
      from public.sync_possible_duplicates d join public.appointments a on a.id = d.appointment_id),
    'intakeq_conflicts', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'pq_appointment_id', c.pq_appointment_id, 'appointment_id', c.appointment_id,
               'provider_id', coalesce(a.provider_id, b.provider_id), 'kind', c.kind,
               'start', private.rfc3339(a.start_time), 'intakeq_start', private.rfc3339(c.intakeq_start),
               'detected_at', private.rfc3339(c.detected_at)) order by c.detected_at desc), '[]')
      from public.intakeq_conflicts c
      left join public.appointments a on a.id = c.appointment_id
      left join public.intakeq_busy_blocks b on b.pq_appointment_id = c.pq_appointment_id
      where c.resolved_at is null),
    'intakeq_inbound', (
      select jsonb_build_object(
        'waiting', count(*),
        'oldest_waiting_seconds', coalesce(extract(epoch from now() - min(first_received_at))::integer, 0),
        'failing', count(*) filter (where attempts > 0))
      from public.intakeq_inbound_events where processed_at is null),
    'intakeq_catchup', (
      select jsonb_build_object('last_completed_at', private.rfc3339(last_completed_at), 'last_error', last_error)
      from public.intakeq_catchup_state),
    'busy_blocks', (select count(*) from public.intakeq_busy_blocks where end_time > now()),
    'intakeq_budget', (
      select jsonb_build_object(
        'calls_last_minute', (select coalesce(sum(calls), 0) from private.intakeq_reservations_in_window(interval '1 minute')),
        'calls_last_day',    (select coalesce(sum(calls), 0) from private.intakeq_reservations_in_window(interval '1 day')),
        'rate_limited_until', case when rate_limited_until > now() then private.rfc3339(rate_limited_until) end)
      from public.sync_queue_state),
    'pending_jobs', (select count(*) from public.sync_retry_queue where state = 'pending'),
    'oldest_pending_seconds', (
      select coalesce(extract(epoch from now() - min(created_at))::integer, 0)
      from public.sync_retry_queue where state = 'pending'),
    'last_24h', (
      select jsonb_build_object(
        'bookings', count(*),
        'synced_first_try', count(*) filter (where state = 'done' and retry_count = 1),
        'first_try_share', case when count(*) = 0 then null
                           else round(count(*) filter (where state = 'done' and retry_count = 1)::numeric / count(*), 3) end)
      from public.sync_retry_queue where created_at > now() - interval '24 hours'));
$$;

-- Access ------------------------------------------------------------------------------------------------------------
revoke all on function
  public.claim_intakeq_inbound_events(text, integer, integer),
  public.apply_intakeq_event(uuid, uuid, jsonb),
  public.release_intakeq_event(uuid, uuid, text, integer),
  public.apply_intakeq_appointments(jsonb, uuid),
  public.claim_intakeq_catchup(text, integer, integer),
  public.finish_intakeq_catchup(uuid, boolean, jsonb, text, integer, date),
  public.reserve_intakeq_budget(text, uuid, integer, integer, integer, integer, integer),
  public.report_intakeq_calls(uuid, integer, integer)
from public, anon, authenticated;
grant execute on function
  public.claim_intakeq_inbound_events(text, integer, integer),
  public.apply_intakeq_event(uuid, uuid, jsonb),
  public.release_intakeq_event(uuid, uuid, text, integer),
  public.apply_intakeq_appointments(jsonb, uuid),
  public.claim_intakeq_catchup(text, integer, integer),
  public.finish_intakeq_catchup(uuid, boolean, jsonb, text, integer, date),
  public.reserve_intakeq_budget(text, uuid, integer, integer, integer, integer, integer),
  public.report_intakeq_calls(uuid, integer, integer)
to service_role;
revoke all on function private.release_intakeq_event_row(uuid, timestamptz) from public, anon, authenticated, service_role;
