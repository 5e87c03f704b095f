use futures::executor::block_on;

use super::*;
use crate::intakeq::wire::Client;
use crate::testing::{job, FakeIntakeq};

const START_MS: i64 = 1_796_140_800_000; // 2026-12-01T16:00:00Z, booked()'s start

fn existing(id: &str, status: &str) -> Appointment {
    Appointment {
        id: id.into(),
        practitioner_id: Some("5f1a00000000000000000001".into()),
        service_id: Some("7c1e0000-0000-4000-8000-000000000001".into()),
        start_date: Some(START_MS),
        status: Some(status.into()),
    }
}

fn failure_kind(outcome: &SyncOutcome) -> Option<FailureKind> {
    match outcome {
        SyncOutcome::Failed { kind, .. } => Some(*kind),
        SyncOutcome::Synced { .. } => None,
    }
}

#[test]
fn a_new_patient_gets_a_client_then_a_confirmed_appointment_with_the_email_on() {
    let intakeq = FakeIntakeq::default();
    let outcome = block_on(sync_booking(&intakeq, &job(false)));
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
    intakeq.clients.borrow_mut().push(Client { client_id: 77, email: Some("riley@example.com.au".into()) });
    intakeq.clients.borrow_mut().push(Client { client_id: 42, email: Some("Riley@Example.com".into()) });
    let outcome = block_on(sync_booking(&intakeq, &job(false)));
    assert!(matches!(&outcome, SyncOutcome::Synced { client_id, .. } if client_id == "42"), "{outcome:?}");
    assert!(!intakeq.calls.borrow().contains(&"create_client"), "the partial match is not taken, the exact one is");
}

#[test]
fn a_known_client_id_skips_the_search() {
    let intakeq = FakeIntakeq::default();
    let mut with_client = job(false);
    with_client.booking.patient.intakeq_client_id = Some("555".into());
    block_on(sync_booking(&intakeq, &with_client));
    assert_eq!(*intakeq.calls.borrow(), ["create_appointment"]);
    assert_eq!(intakeq.created.borrow()[0].client_id, 555);
}

#[test]
fn a_job_that_may_have_been_created_adopts_the_existing_appointment() {
    let intakeq = FakeIntakeq::default();
    intakeq.appointments.borrow_mut().push(existing("aaaaaaaaaaaaaaaaaaaaaaaa", "Canceled"));
    intakeq.appointments.borrow_mut().push(existing("bbbbbbbbbbbbbbbbbbbbbbbb", "Confirmed"));
    let outcome = block_on(sync_booking(&intakeq, &job(true)));
    assert!(matches!(&outcome, SyncOutcome::Synced { pq_appointment_id, .. } if pq_appointment_id == "bbbbbbbbbbbbbbbbbbbbbbbb"));
    assert!(!intakeq.calls.borrow().contains(&"create_appointment"), "never a second appointment");
}

#[test]
fn a_reconciling_job_creates_when_nothing_matches() {
    let intakeq = FakeIntakeq::default();
    intakeq.appointments.borrow_mut().push(existing("cccccccccccccccccccccccc", "Canceled"));
    let outcome = block_on(sync_booking(&intakeq, &job(true)));
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
        ("create_appointment", IntakeqError::RateLimited { retry_after_seconds: Some(9) }, Transient),
        ("create_appointment", IntakeqError::Rejected { status: 400, message: "Invalid ServiceId.".into() }, Permanent),
    ];
    for (call, error, kind) in cases {
        let intakeq = FakeIntakeq::default();
        intakeq.fail_next(call, error.clone());
        let outcome = block_on(sync_booking(&intakeq, &job(false)));
        assert_eq!(failure_kind(&outcome), Some(kind), "{call} {error:?}");
    }
    let intakeq = FakeIntakeq::default();
    intakeq.fail_next("create_appointment", IntakeqError::RateLimited { retry_after_seconds: Some(9) });
    match block_on(sync_booking(&intakeq, &job(false))) {
        SyncOutcome::Failed { retry_after_seconds, rate_limited, client_id, error, .. } => {
            assert_eq!((retry_after_seconds, rate_limited, client_id.as_deref()), (Some(9), true, Some("1001")));
            assert!(!error.contains("riley"), "no patient data in the error: {error}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_booking_without_intakeq_ids_is_a_permanent_failure() {
    let mut broken = job(false);
    broken.booking.intakeq.service_id = None;
    assert_eq!(failure_kind(&block_on(sync_booking(&FakeIntakeq::default(), &broken))), Some(FailureKind::Permanent));
}
