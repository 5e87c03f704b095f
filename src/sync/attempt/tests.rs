use futures::executor::block_on;

use super::*;
use crate::intakeq::wire::{self, Client};
use crate::testing::{job, FakeIntakeq, FixedClock};

/// A lease that allows every call (the fixed clock never reaches it, and the budget is unbounded).
fn lease() -> Lease<'static, FixedClock> {
    Lease::new(&FixedClock, "2026-11-24T12:00:30Z".parse().unwrap(), u32::MAX, None)
}

const START_MS: i64 = 1_796_140_800_000; // 2026-12-01T16:00:00Z, booked()'s start

/// An appointment IntakeQ holds for the client the attempt creates (1001), at the booking's start.
fn existing(id: &str, status: &str) -> Appointment {
    Appointment {
        id: id.into(),
        client_id: Some(1001),
        practitioner_id: Some("5f1a00000000000000000001".into()),
        service_id: Some("7c1e0000-0000-4000-8000-000000000001".into()),
        start_date: Some(START_MS),
        status: Some(status.into()),
        ..Appointment::default()
    }
}

/// An IntakeQ client with these details.
fn client(client_id: u64, email: &str, first_name: &str, last_name: &str, date_of_birth: Option<&str>) -> Client {
    Client {
        client_id,
        email: Some(email.into()),
        first_name: Some(first_name.into()),
        last_name: Some(last_name.into()),
        date_of_birth: date_of_birth.map(|d| format!("{d}T00:00:00Z").parse::<chrono::DateTime<chrono::Utc>>().unwrap().timestamp_millis()),
    }
}

fn adopted(outcome: &SyncOutcome) -> Option<&str> {
    match outcome {
        SyncOutcome::Synced { pq_appointment_id, .. } => Some(pq_appointment_id),
        _ => None,
    }
}

fn failure_kind(outcome: &SyncOutcome) -> Option<FailureKind> {
    match outcome {
        SyncOutcome::Failed { kind, .. } => Some(*kind),
        SyncOutcome::Synced { .. } | SyncOutcome::Cancelled { .. } | SyncOutcome::Applied { .. } => None,
    }
}

#[test]
fn a_new_patient_gets_a_client_then_a_confirmed_appointment_with_the_email_on() {
    let intakeq = FakeIntakeq::default();
    let outcome = block_on(sync_booking(&intakeq, &lease(), &job(false)));
    assert!(matches!(&outcome, SyncOutcome::Synced { client_id, .. } if client_id == "1001"), "{outcome:?}");
    assert_eq!(*intakeq.calls.borrow(), ["search_clients", "create_client", "create_appointment"]);
    let created = &intakeq.created.borrow()[0];
    assert_eq!(
        (created.practitioner_id.as_str(), created.service_id.as_str(), created.location_id.as_str(), created.client_id),
        ("5f1a00000000000000000001", "7c1e0000-0000-4000-8000-000000000001", "1", 1001)
    );
    assert_eq!((created.utc_date_time, created.status, created.send_client_email_notification), (START_MS, "Confirmed", true));
}

#[test]
fn an_existing_client_is_found_by_exact_email_whatever_its_case() {
    let intakeq = FakeIntakeq::default();
    intakeq.clients.borrow_mut().push(client(77, "riley@example.com.au", "Riley", "Quinn", None));
    intakeq.clients.borrow_mut().push(client(42, "Riley@Example.com", " riley ", "QUINN", Some("1991-02-03")));
    let outcome = block_on(sync_booking(&intakeq, &lease(), &job(false)));
    assert!(matches!(&outcome, SyncOutcome::Synced { client_id, .. } if client_id == "42"), "{outcome:?}");
    assert!(!intakeq.calls.borrow().contains(&"create_client"), "the partial match is not taken, the exact one is");
}

#[test]
fn a_known_client_id_skips_the_search() {
    let intakeq = FakeIntakeq::default();
    let mut with_client = job(false);
    with_client.booking.patient.intakeq_client_id = Some("555".into());
    block_on(sync_booking(&intakeq, &lease(), &with_client));
    assert_eq!(*intakeq.calls.borrow(), ["create_appointment"]);
    assert_eq!(intakeq.created.borrow()[0].client_id, 555);
}

#[test]
fn a_job_that_may_have_been_created_adopts_the_existing_appointment() {
    let intakeq = FakeIntakeq::default();
    intakeq.appointments.borrow_mut().push(existing("aaaaaaaaaaaaaaaaaaaaaaaa", "Canceled"));
    intakeq.appointments.borrow_mut().push(existing("bbbbbbbbbbbbbbbbbbbbbbbb", "Confirmed"));
    let outcome = block_on(sync_booking(&intakeq, &lease(), &job(true)));
    assert!(matches!(&outcome, SyncOutcome::Synced { pq_appointment_id, .. } if pq_appointment_id == "bbbbbbbbbbbbbbbbbbbbbbbb"));
    assert!(!intakeq.calls.borrow().contains(&"create_appointment"), "never a second appointment");
}

#[test]
fn a_reconciling_job_creates_when_nothing_matches() {
    let intakeq = FakeIntakeq::default();
    intakeq.appointments.borrow_mut().push(existing("cccccccccccccccccccccccc", "Canceled"));
    let outcome = block_on(sync_booking(&intakeq, &lease(), &job(true)));
    assert!(matches!(outcome, SyncOutcome::Synced { .. }));
    assert_eq!(intakeq.calls.borrow().last(), Some(&"create_appointment"));
}

#[test]
fn failures_are_classified_by_what_they_may_have_left_in_intakeq() {
    use FailureKind::*;
    let cases: Vec<(&'static str, IntakeqError, FailureKind)> = vec![
        ("search_clients", IntakeqError::ServerError { status: 500 }, Transient),
        ("create_client", IntakeqError::TimedOut, Transient),
        ("create_appointment", IntakeqError::TimedOut, Ambiguous),
        ("create_appointment", IntakeqError::Unreachable("reset".into()), Ambiguous),
        ("create_appointment", IntakeqError::ServerError { status: 502 }, Ambiguous),
        ("create_appointment", IntakeqError::NotJson { status: 503 }, Ambiguous),
        ("create_appointment", IntakeqError::RateLimited { retry_after_seconds: Some(9) }, RateLimited),
        ("search_clients", IntakeqError::Rejected { status: 401, message: "HTTP 401".into() }, Authentication),
        ("create_appointment", IntakeqError::Rejected { status: 403, message: "HTTP 403".into() }, Authentication),
        ("create_appointment", IntakeqError::Rejected { status: 400, message: "Invalid ServiceId.".into() }, Permanent),
    ];
    for (call, error, kind) in cases {
        let intakeq = FakeIntakeq::default();
        intakeq.fail_next(call, error.clone());
        let outcome = block_on(sync_booking(&intakeq, &lease(), &job(false)));
        assert_eq!(failure_kind(&outcome), Some(kind), "{call} {error:?}");
    }
    let intakeq = FakeIntakeq::default();
    intakeq.fail_next("create_appointment", IntakeqError::RateLimited { retry_after_seconds: Some(9) });
    match block_on(sync_booking(&intakeq, &lease(), &job(false))) {
        SyncOutcome::Failed { retry_after_seconds, kind, client_id, error, .. } => {
            assert_eq!((retry_after_seconds, kind, client_id.as_deref()), (Some(9), FailureKind::RateLimited, Some("1001")));
            assert!(!error.contains("riley"), "no patient data in the error: {error}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_booking_without_intakeq_ids_is_a_permanent_failure() {
    let mut broken = job(false);
    broken.booking.intakeq.service_id = None;
    assert_eq!(failure_kind(&block_on(sync_booking(&FakeIntakeq::default(), &lease(), &broken))), Some(FailureKind::Permanent));
}

#[test]
fn a_family_sharing_an_email_gets_a_chart_each() {
    // booked()'s patient is Riley Quinn, born 1991-02-03, riley@example.com.
    for other in [
        client(50, "riley@example.com", "Jane", "Quinn", Some("1980-01-01")),
        client(51, "riley@example.com", "Riley", "Quinn", Some("2015-06-01")),
        client(52, "riley@example.com", "Riley", "Doe", None),
    ] {
        let intakeq = FakeIntakeq::default();
        intakeq.clients.borrow_mut().push(other.clone());
        let outcome = block_on(sync_booking(&intakeq, &lease(), &job(false)));
        assert!(matches!(&outcome, SyncOutcome::Synced { client_id, .. } if client_id == "1001"), "{other:?} is another person: {outcome:?}");
        assert!(intakeq.calls.borrow().contains(&"create_client"));
    }
    let intakeq = FakeIntakeq::default();
    intakeq.clients.borrow_mut().push(client(53, "riley@example.com", "Riley", "Quinn", None));
    let outcome = block_on(sync_booking(&intakeq, &lease(), &job(false)));
    assert!(matches!(&outcome, SyncOutcome::Synced { client_id, .. } if client_id == "53"), "no date of birth on file is no contradiction");
}

#[test]
fn the_client_search_reads_every_page() {
    let intakeq = FakeIntakeq::default();
    for n in 0..100 {
        intakeq.clients.borrow_mut().push(client(200 + n, &format!("x{n}riley@example.com"), "Riley", "Quinn", None));
    }
    intakeq.clients.borrow_mut().push(client(42, "riley@example.com", "Riley", "Quinn", None));
    let outcome = block_on(sync_booking(&intakeq, &lease(), &job(false)));
    assert!(matches!(&outcome, SyncOutcome::Synced { client_id, .. } if client_id == "42"), "{outcome:?}");
    assert_eq!(intakeq.calls.borrow().iter().filter(|c| **c == "search_clients").count(), 2);
}

#[test]
fn the_lookup_covers_the_start_s_date_in_every_zone_and_matches_to_the_minute() {
    let intakeq = FakeIntakeq::default();
    block_on(sync_booking(&intakeq, &lease(), &job(true)));
    let windows = intakeq.lookups.borrow();
    assert_eq!(windows[0], ("2026-11-30".parse().unwrap(), "2026-12-02".parse().unwrap()), "the day before to the day after");

    let cases: Vec<(Appointment, bool)> = vec![
        (Appointment { start_date: Some(START_MS + 59_000), ..existing("aaaaaaaaaaaaaaaaaaaaaaaa", "Confirmed") }, true),
        (Appointment { start_date: Some(START_MS + 60_000), ..existing("bbbbbbbbbbbbbbbbbbbbbbbb", "Confirmed") }, false),
        (Appointment { client_id: Some(9), ..existing("cccccccccccccccccccccccc", "Confirmed") }, false),
        (Appointment { service_id: Some("another".into()), ..existing("dddddddddddddddddddddddd", "Confirmed") }, false),
        (existing("eeeeeeeeeeeeeeeeeeeeeeee", "Canceled"), false),
    ];
    for (appointment, adopt) in cases {
        let intakeq = FakeIntakeq::default();
        intakeq.appointments.borrow_mut().push(appointment.clone());
        let outcome = block_on(sync_booking(&intakeq, &lease(), &job(true)));
        assert_eq!(adopted(&outcome) == Some(appointment.id.as_str()), adopt, "{appointment:?}");
    }
}

#[test]
fn the_lookup_reads_every_page() {
    let intakeq = FakeIntakeq::default();
    for n in 0..100 {
        intakeq.appointments.borrow_mut().push(Appointment { client_id: Some(n), ..existing(&format!("{n:024x}"), "Confirmed") });
    }
    intakeq.appointments.borrow_mut().push(existing("ffffffffffffffffffffffff", "Confirmed"));
    let outcome = block_on(sync_booking(&intakeq, &lease(), &job(true)));
    assert_eq!(adopted(&outcome), Some("ffffffffffffffffffffffff"));
    assert!(!intakeq.calls.borrow().contains(&"create_appointment"));
}

#[test]
fn no_call_starts_once_the_lease_could_run_out_during_it() {
    let intakeq = FakeIntakeq::default();
    let spent = Lease::new(&FixedClock, "2026-11-24T11:59:59Z".parse().unwrap(), u32::MAX, None);
    let outcome = block_on(sync_booking(&intakeq, &spent, &job(false)));
    assert_eq!(failure_kind(&outcome), Some(FailureKind::LeaseTooShort));
    assert!(intakeq.calls.borrow().is_empty(), "nothing sent");
}

#[test]
fn a_lookup_that_completed_is_reported_with_a_later_failure() {
    let intakeq = FakeIntakeq::default();
    intakeq.fail_next("create_appointment", IntakeqError::ServerError { status: 502 });
    match block_on(sync_booking(&intakeq, &lease(), &job(true))) {
        SyncOutcome::Failed { kind, lookup_completed, .. } => assert_eq!((kind, lookup_completed), (FailureKind::Ambiguous, true)),
        other => panic!("{other:?}"),
    }
    let intakeq = FakeIntakeq::default();
    intakeq.fail_next("appointments_between", IntakeqError::RateLimited { retry_after_seconds: None });
    match block_on(sync_booking(&intakeq, &lease(), &job(true))) {
        SyncOutcome::Failed { kind, lookup_completed, .. } => assert_eq!((kind, lookup_completed), (FailureKind::RateLimited, false)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cancelled_booking_is_never_posted_and_an_earlier_creation_is_found() {
    let mut cancelled = job(false);
    cancelled.booking.status = crate::booking::model::AppointmentStatus::Cancelled;
    let intakeq = FakeIntakeq::default();
    let outcome = block_on(sync_booking(&intakeq, &lease(), &cancelled));
    assert_eq!(outcome, SyncOutcome::Cancelled { found_upstream: None, client_id: None });
    assert!(intakeq.calls.borrow().is_empty(), "nothing to look up, nothing sent");

    cancelled.needs_reconcile = true;
    cancelled.booking.patient.intakeq_client_id = Some("1001".into());
    let intakeq = FakeIntakeq::default();
    intakeq.appointments.borrow_mut().push(existing("bbbbbbbbbbbbbbbbbbbbbbbb", "Confirmed"));
    let outcome = block_on(sync_booking(&intakeq, &lease(), &cancelled));
    assert_eq!(outcome, SyncOutcome::Cancelled { found_upstream: Some(existing("bbbbbbbbbbbbbbbbbbbbbbbb", "Confirmed")), client_id: Some("1001".into()) });
    assert_eq!(*intakeq.calls.borrow(), ["appointments_between"], "looked up, never posted");

    cancelled.booking.patient.intakeq_client_id = None;
    let intakeq = FakeIntakeq::default();
    let outcome = block_on(sync_booking(&intakeq, &lease(), &cancelled));
    assert_eq!(outcome, SyncOutcome::Cancelled { found_upstream: None, client_id: None });
    assert!(!intakeq.calls.borrow().contains(&"create_client"), "a cancelled booking gets no chart");
}

#[test]
fn the_lease_notes_whether_intakeq_answered_without_refusing_the_key() {
    for (error, answered) in [
        (IntakeqError::TimedOut, false),
        (IntakeqError::Unreachable("reset".into()), false),
        (IntakeqError::Rejected { status: 401, message: "HTTP 401".into() }, false),
        (IntakeqError::ServerError { status: 500 }, true),
        (IntakeqError::RateLimited { retry_after_seconds: None }, true),
    ] {
        let intakeq = FakeIntakeq::default();
        intakeq.fail_next("search_clients", error.clone());
        let lease = lease();
        block_on(sync_booking(&intakeq, &lease, &job(false)));
        assert_eq!(lease.intakeq_answered(), answered, "{error:?}");
    }
    let lease = lease();
    block_on(sync_booking(&FakeIntakeq::default(), &lease, &job(false)));
    assert!(lease.intakeq_answered());
}

/// `job()` with intake paperwork due (the practice's questionnaire).
fn with_paperwork(mut job: SyncJob) -> SyncJob {
    job.booking.intake_forms = crate::booking::model::IntakeForms {
        status: IntakeFormsStatus::Pending,
        questionnaire_id: Some("61a000000000000000000001".into()),
        intake_id: None,
    };
    job
}

fn intake_of(outcome: &SyncOutcome) -> Option<IntakeOutcome> {
    match outcome {
        SyncOutcome::Synced { intake, .. } => intake.clone(),
        _ => None,
    }
}

#[test]
fn the_questionnaire_is_sent_once_the_appointment_is_in_intakeq() {
    let intakeq = FakeIntakeq::default();
    let outcome = block_on(sync_booking(&intakeq, &lease(), &with_paperwork(job(false))));
    assert!(matches!(intake_of(&outcome), Some(IntakeOutcome::Sent { .. })), "{outcome:?}");
    assert_eq!(*intakeq.calls.borrow(), ["search_clients", "create_client", "create_appointment", "send_intake"]);
    let sent = &intakeq.intakes.borrow()[0];
    assert_eq!((sent.questionnaire_id.as_deref(), sent.client_id), (Some("61a000000000000000000001"), Some(1001)));

    let intakeq = FakeIntakeq::default();
    block_on(sync_booking(&intakeq, &lease(), &job(false)));
    assert!(!intakeq.calls.borrow().contains(&"send_intake"), "nothing configured, nothing sent");
}

#[test]
fn an_appointment_already_in_intakeq_gets_only_its_paperwork() {
    let mut synced = with_paperwork(job(false));
    synced.booking.pq_appointment_id = Some("bbbbbbbbbbbbbbbbbbbbbbbb".into());
    synced.booking.patient.intakeq_client_id = Some("42".into());
    let intakeq = FakeIntakeq::default();
    let outcome = block_on(sync_booking(&intakeq, &lease(), &synced));
    assert!(matches!(&outcome, SyncOutcome::Synced { pq_appointment_id, intake: Some(IntakeOutcome::Sent { .. }), .. }
                     if pq_appointment_id == "bbbbbbbbbbbbbbbbbbbbbbbb"), "{outcome:?}");
    assert_eq!(*intakeq.calls.borrow(), ["send_intake"]);
}

#[test]
fn a_send_that_may_have_reached_intakeq_is_looked_up_first() {
    let mut looking = with_paperwork(job(false));
    looking.booking.pq_appointment_id = Some("bbbbbbbbbbbbbbbbbbbbbbbb".into());
    looking.booking.patient.intakeq_client_id = Some("42".into());
    looking.needs_intake_lookup = true;
    let booked_ms = looking.booked_at.timestamp_millis();
    let earlier = wire::Intake { id: "old".into(), client_id: Some(42), questionnaire_id: Some("61a000000000000000000001".into()),
                                 date_created: Some(booked_ms - 86_400_000), status: Some("Completed".into()) };
    let intakeq = FakeIntakeq::default();
    intakeq.intakes.borrow_mut().push(earlier.clone());
    let outcome = block_on(sync_booking(&intakeq, &lease(), &looking));
    assert!(matches!(intake_of(&outcome), Some(IntakeOutcome::Sent { intake_id }) if intake_id != "old"), "an older intake is another booking's");
    assert_eq!(*intakeq.calls.borrow(), ["intakes_of", "send_intake"]);

    let intakeq = FakeIntakeq::default();
    intakeq.intakes.borrow_mut().push(wire::Intake { id: "ours".into(), date_created: Some(booked_ms + 1000), ..earlier });
    let outcome = block_on(sync_booking(&intakeq, &lease(), &looking));
    assert_eq!(intake_of(&outcome), Some(IntakeOutcome::Sent { intake_id: "ours".into() }), "adopted");
    assert_eq!(*intakeq.calls.borrow(), ["intakes_of"], "never sent twice");
}

#[test]
fn a_failed_send_keeps_the_appointment_and_says_how_it_failed() {
    for (error, kind) in [
        (IntakeqError::TimedOut, FailureKind::Ambiguous),
        (IntakeqError::ServerError { status: 500 }, FailureKind::Ambiguous),
        (IntakeqError::Rejected { status: 400, message: "Invalid QuestionnaireId.".into() }, FailureKind::Permanent),
        (IntakeqError::RateLimited { retry_after_seconds: None }, FailureKind::RateLimited),
    ] {
        let intakeq = FakeIntakeq::default();
        intakeq.fail_next("send_intake", error.clone());
        let outcome = block_on(sync_booking(&intakeq, &lease(), &with_paperwork(job(false))));
        assert!(matches!(&outcome, SyncOutcome::Synced { intake: Some(IntakeOutcome::Failed { kind: k, .. }), .. } if *k == kind), "{error:?}: {outcome:?}");
    }
}

#[test]
fn an_appointment_in_intakeq_without_a_known_client_is_never_posted_again() {
    let mut synced = with_paperwork(job(false));
    synced.booking.pq_appointment_id = Some("bbbbbbbbbbbbbbbbbbbbbbbb".into());
    let intakeq = FakeIntakeq::default();
    let outcome = block_on(sync_booking(&intakeq, &lease(), &synced));
    assert_eq!(failure_kind(&outcome), Some(FailureKind::Permanent));
    assert!(intakeq.calls.borrow().is_empty(), "no client searched or made, nothing posted, no paperwork sent");
}

#[test]
fn a_cancelled_booking_gets_no_paperwork() {
    let mut cancelled = with_paperwork(job(false));
    cancelled.booking.status = crate::booking::model::AppointmentStatus::Cancelled;
    cancelled.booking.pq_appointment_id = Some("bbbbbbbbbbbbbbbbbbbbbbbb".into());
    cancelled.booking.patient.intakeq_client_id = Some("42".into());
    let intakeq = FakeIntakeq::default();
    block_on(sync_booking(&intakeq, &lease(), &cancelled));
    assert!(!intakeq.calls.borrow().contains(&"send_intake"));
}

#[test]
fn no_call_is_made_without_a_call_of_the_budget_and_a_top_up_grants_one_more() {
    let intakeq = FakeIntakeq::default();
    let two_calls = Lease::new(&FixedClock, "2026-11-24T12:00:30Z".parse().unwrap(), 2, None);
    match block_on(sync_booking(&intakeq, &two_calls, &job(false))) {
        SyncOutcome::Failed { kind: FailureKind::NoBudget, client_id: Some(client), .. } => assert_eq!(client, "1001"),
        other => panic!("{other:?}"),
    }
    assert_eq!(intakeq.calls.borrow().len(), 2, "the search and the new client, then no post: {:?}", intakeq.calls.borrow());
    assert_eq!(two_calls.calls_made(), 2);

    let intakeq = FakeIntakeq::default();
    let top_ups = Cell::new(0);
    let top_up: TopUp = Box::new(|| {
        top_ups.set(top_ups.get() + 1);
        Box::pin(async { true })
    });
    let topped_up = Lease::new(&FixedClock, "2026-11-24T12:00:30Z".parse().unwrap(), 2, Some(top_up));
    assert!(matches!(block_on(sync_booking(&intakeq, &topped_up, &job(false))), SyncOutcome::Synced { .. }));
    assert_eq!((topped_up.calls_made(), top_ups.get()), (3, 1), "the third call (the appointment) was topped up");
}

/// A clock a test moves.
struct MovingClock(Cell<DateTime<Utc>>);

impl Clock for MovingClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.get()
    }
}

#[test]
fn a_top_up_that_took_the_lease_s_last_moments_sends_nothing() {
    let clock = MovingClock(Cell::new("2026-11-24T12:00:00Z".parse().unwrap()));
    let intakeq = FakeIntakeq::default();
    // The top-up (a database call) takes 40 s: the last moment a call could start has passed when it answers.
    let slow_top_up: TopUp = Box::new(|| {
        clock.0.set(clock.0.get() + chrono::Duration::seconds(40));
        Box::pin(async { true })
    });
    let lease = Lease::new(&clock, "2026-11-24T12:00:30Z".parse().unwrap(), 0, Some(slow_top_up));
    assert_eq!(failure_kind(&block_on(sync_booking(&intakeq, &lease, &job(false)))), Some(FailureKind::LeaseTooShort));
    assert!(intakeq.calls.borrow().is_empty(), "nothing sent: {:?}", intakeq.calls.borrow());
}

const IQ_ID: &str = "cccccccccccccccccccccccc";

/// A job owing IntakeQ `operation` for an appointment IntakeQ has (`IQ_ID`, at the booking's start).
fn owed(operation: Operation, needs_reconcile: bool) -> (SyncJob, FakeIntakeq) {
    let mut owed = job(needs_reconcile);
    owed.operation = Some(operation);
    owed.booking.pq_appointment_id = Some(IQ_ID.into());
    owed.booking.patient.intakeq_client_id = Some("1001".into());
    if operation == Operation::Cancel {
        owed.booking.status = AppointmentStatus::Cancelled;
        owed.cancellation_reason = Some("Feeling better".into());
    }
    let intakeq = FakeIntakeq::default();
    intakeq.appointments.borrow_mut().push(existing(IQ_ID, "Confirmed"));
    (owed, intakeq)
}

fn status_upstream(intakeq: &FakeIntakeq) -> Option<String> {
    intakeq.appointments.borrow()[0].status.clone()
}

#[test]
fn a_cancel_posts_the_cancellation_once_and_reports_what_it_wrote() {
    let (cancel, intakeq) = owed(Operation::Cancel, false);
    let outcome = block_on(sync_booking(&intakeq, &lease(), &cancel));
    assert!(
        matches!(&outcome, SyncOutcome::Applied { pq_appointment_id, now: Some(now), written: true }
                 if pq_appointment_id == IQ_ID && now.status.as_deref() == Some("Canceled")),
        "{outcome:?}"
    );
    assert_eq!(*intakeq.calls.borrow(), ["cancel_appointment"], "no client search, no post, nothing else");
    assert_eq!(status_upstream(&intakeq).as_deref(), Some("Canceled"));
}

#[test]
fn a_cancel_that_may_have_reached_intakeq_rereads_first_and_posts_nothing_when_it_is_cancelled_there() {
    let (cancel, intakeq) = owed(Operation::Cancel, true);
    intakeq.appointments.borrow_mut()[0].status = Some("Canceled".into());
    let outcome = block_on(sync_booking(&intakeq, &lease(), &cancel));
    assert!(matches!(outcome, SyncOutcome::Applied { written: false, .. }), "{outcome:?}");
    assert_eq!(*intakeq.calls.borrow(), ["appointment"]);

    // Still active there: the re-read is followed by the cancellation.
    let (cancel, intakeq) = owed(Operation::Cancel, true);
    block_on(sync_booking(&intakeq, &lease(), &cancel));
    assert_eq!(*intakeq.calls.borrow(), ["appointment", "cancel_appointment"]);
}

#[test]
fn a_refused_cancel_is_done_when_staff_cancelled_it_already_and_permanent_otherwise() {
    let (cancel, intakeq) = owed(Operation::Cancel, false);
    intakeq.appointments.borrow_mut()[0].status = Some("Canceled".into());
    intakeq.fail_next("cancel_appointment", IntakeqError::Rejected { status: 400, message: "Appointment already cancelled.".into() });
    let outcome = block_on(sync_booking(&intakeq, &lease(), &cancel));
    assert!(matches!(outcome, SyncOutcome::Applied { written: false, .. }), "{outcome:?}");

    let (cancel, intakeq) = owed(Operation::Cancel, false);
    intakeq.fail_next("cancel_appointment", IntakeqError::Rejected { status: 400, message: "Invalid reason.".into() });
    assert_eq!(failure_kind(&block_on(sync_booking(&intakeq, &lease(), &cancel))), Some(FailureKind::Permanent));

    // A timeout may have cancelled it: ambiguous, so the next attempt re-reads first.
    let (cancel, intakeq) = owed(Operation::Cancel, false);
    intakeq.fail_next("cancel_appointment", IntakeqError::TimedOut);
    assert_eq!(failure_kind(&block_on(sync_booking(&intakeq, &lease(), &cancel))), Some(FailureKind::Ambiguous));
}

#[test]
fn a_move_puts_the_new_start_and_reports_it() {
    let (mut moving, intakeq) = owed(Operation::Move, false);
    moving.booking.start = "2026-12-02T18:00:00Z".parse().unwrap();
    let target = moving.booking.start.timestamp_millis();
    let outcome = block_on(sync_booking(&intakeq, &lease(), &moving));
    assert!(
        matches!(&outcome, SyncOutcome::Applied { now: Some(now), written: true, .. } if now.start_date == Some(target)),
        "{outcome:?}"
    );
    assert_eq!(*intakeq.calls.borrow(), ["move_appointment"]);
    assert_eq!(intakeq.appointments.borrow()[0].start_date, Some(target));
}

#[test]
fn a_move_that_may_have_reached_intakeq_is_not_written_twice() {
    let (mut moving, intakeq) = owed(Operation::Move, true);
    moving.booking.start = "2026-12-02T18:00:00Z".parse().unwrap();
    intakeq.appointments.borrow_mut()[0].start_date = Some(moving.booking.start.timestamp_millis());
    let outcome = block_on(sync_booking(&intakeq, &lease(), &moving));
    assert!(matches!(outcome, SyncOutcome::Applied { written: false, .. }), "{outcome:?}");
    assert_eq!(*intakeq.calls.borrow(), ["appointment"], "found there already: no PUT");

    // Still where it was, or moved by staff meanwhile: nothing is written either; the database's rules tell the
    // two apart (the move is still owed, or ours follows staff's).
    let (mut moving, intakeq) = owed(Operation::Move, true);
    moving.booking.start = "2026-12-02T18:00:00Z".parse().unwrap();
    intakeq.appointments.borrow_mut()[0].start_date = Some(START_MS + 3_600_000);
    let outcome = block_on(sync_booking(&intakeq, &lease(), &moving));
    assert!(
        matches!(&outcome, SyncOutcome::Applied { now: Some(now), written: false, .. } if now.start_date == Some(START_MS + 3_600_000)),
        "{outcome:?}"
    );
    assert_eq!(*intakeq.calls.borrow(), ["appointment"], "no PUT over a change staff may have made");

    // Cancelled by staff meanwhile: nothing is written; the database's rules cancel ours.
    let (moving, intakeq) = owed(Operation::Move, true);
    intakeq.appointments.borrow_mut()[0].status = Some("Canceled".into());
    let outcome = block_on(sync_booking(&intakeq, &lease(), &moving));
    assert!(matches!(&outcome, SyncOutcome::Applied { now: Some(now), written: false, .. } if now.is_cancelled()), "{outcome:?}");
    assert_eq!(*intakeq.calls.borrow(), ["appointment"]);
}

#[test]
fn a_reconcile_looks_for_every_start_a_post_may_have_used() {
    // Posted at 16:00 (timed out), then the patient moved the booking to 18:00 the same day.
    let mut moved = job(true);
    moved.posted_starts = vec!["2026-12-01T16:00:00Z".parse().unwrap()];
    moved.booking.start = "2026-12-01T18:00:00Z".parse().unwrap();
    let intakeq = FakeIntakeq::default();
    intakeq.appointments.borrow_mut().push(existing("dddddddddddddddddddddddd", "Confirmed"));
    let outcome = block_on(sync_booking(&intakeq, &lease(), &moved));
    assert_eq!(adopted(&outcome), Some("dddddddddddddddddddddddd"), "adopted at the old start, not posted again");
    assert!(!intakeq.calls.borrow().contains(&"create_appointment"));
}

#[test]
fn a_move_intakeq_answers_with_another_start_is_not_written_again_and_again() {
    // An IntakeQ that takes the PUT but keeps the old start.
    let (mut moving, intakeq) = owed(Operation::Move, false);
    moving.booking.start = "2026-12-02T18:00:00Z".parse().unwrap();
    intakeq.keep_start_on_move.set(true);
    let outcome = block_on(sync_booking(&intakeq, &lease(), &moving));
    assert_eq!(failure_kind(&outcome), Some(FailureKind::Permanent), "{outcome:?}");
    assert_eq!(*intakeq.calls.borrow(), ["move_appointment", "appointment"], "read again before it is believed");
}
