use futures::executor::block_on;
use serde_json::json;

use super::*;
use crate::abuse::{AbuseSettings, Open};
use crate::booking::error::{ErrorCode, Step};
use crate::intakeq::IntakeqError;
use crate::sync::job::RetryPolicy;
use crate::testing::{booked, form, FakeIntakeq, FakeStore, FixedClock};

fn settings(expose_error_debug: bool) -> FlowSettings {
    let sync_attempt = AttemptSettings {
        policy: RetryPolicy { max_attempts: None, max_backoff_minutes: 30, retry_window_hours: 72 },
        call_and_record: std::time::Duration::from_secs(10),
        budget: crate::sync::job::CallBudget { per_minute: 10, per_day: 500, minute_ms: 60_000 }, runtime_limit: None,
    };
    FlowSettings {
        expose_error_debug, sync_lease_seconds: 60, sync_attempt, inline_sync_budget: std::time::Duration::from_secs(2),
        trusted_caller: false, booking_wait_ms: 1000, abuse: AbuseSettings::OFF, client_address: None, turnstile_header: None,
        manage_token_secret: Some(crate::support::secret::Secret::new("manage-secret")),
    }
}

/// A booking without IntakeQ configured.
fn run(store: &FakeStore, body: &[u8], expose_error_debug: bool) -> Answer {
    run_with(store, None, body, expose_error_debug)
}

fn run_with(store: &FakeStore, intakeq: Option<&FakeIntakeq>, body: &[u8], expose_error_debug: bool) -> Answer {
    let request_id = RequestId::from_header(Some("req-1"));
    let booked = block_on(book(store, intakeq, &Open, &FixedClock, &request_id, body, None, &settings(expose_error_debug)));
    assert!(booked.after_answer.is_none(), "the attempt ended within its budget");
    booked.answer
}

#[test]
fn a_new_booking_is_201_pending_sync_with_a_warning() {
    let store = FakeStore::answering(Ok(booked()));
    let answer = run(&store, &form(), false);
    assert_eq!(answer.status, 201);
    assert_eq!(answer.body["requestId"], "req-1");
    assert_eq!(
        answer.body["data"],
        json!({"appointmentId": "3ca6a61f-dbfb-4c18-9db1-3e0589df99e3", "patientId": "a0d2c8b0-7896-46af-9aca-ea5177939b1a",
               "pqAppointmentId": null, "status": "pending_sync", "syncStatus": "pending",
               "start": "2026-12-01T16:00:00Z", "end": "2026-12-01T17:00:00Z", "duration": 60,
               "provider": {"id": "a1000000-0000-4000-8000-000000000001", "name": "Ana Rivera, MD"}, "isDuplicate": false,
               "intakeFormsStatus": "not_required",
               "manageToken": crate::support::manage_token::issue(&crate::support::secret::Secret::new("manage-secret"), booked().booking.appointment_id)})
    );
    assert_eq!(answer.body["warnings"].as_array().unwrap().len(), 1, "sync is pending");
    assert_eq!(store.booked_with.borrow()[0].1, "req-1", "the request id reaches the database");
    assert!(store.failures.borrow().is_empty());
}

#[test]
fn a_replay_and_a_duplicate_are_200() {
    let replay = FakeStore::answering(Ok(BookingOutcome { replayed: true, ..booked() }));
    let answer = run(&replay, &form(), false);
    assert_eq!((answer.status, answer.headers.clone()), (200, vec![("Idempotent-Replayed", "true".to_owned())]));
    assert!(answer.body["data"]["manageToken"].is_string(), "a replay is the same caller: the same token");
    let duplicate = FakeStore::answering(Ok(BookingOutcome { is_duplicate: true, ..booked() }));
    let answer = run(&duplicate, &form(), false);
    assert_eq!(answer.body["data"]["manageToken"], json!(null), "knowing a patient's details opens no appointment");
    assert_eq!((answer.status, answer.body["data"]["isDuplicate"].clone()), (200, json!(true)));
    assert!(answer.headers.is_empty());
}

#[test]
fn bad_input_never_reaches_the_database() {
    let store = FakeStore::default();
    let answer = run(&store, b"{\"providerId\": 5}", false);
    assert_eq!((answer.status, &answer.body["code"], &answer.body["step"]), (400, &json!("INVALID_REQUEST"), &json!("request_validation")));
    assert!(answer.body["fieldErrors"].as_array().unwrap().len() >= 4);
    assert!(store.booked_with.borrow().is_empty() && store.failures.borrow().is_empty(), "nothing asked, nothing written");
}

#[test]
fn every_refusal_of_the_database_keeps_its_code_status_and_step_and_is_recorded() {
    for code in ErrorCode::ALL {
        let store = FakeStore::answering(Err(StoreError::Refused { code, step: Step::ConflictCheck, detail: Some("diag".into()) }));
        let answer = run(&store, &form(), false);
        assert_eq!(answer.status, code.status(), "{code:?}");
        assert_eq!((answer.body["code"].clone(), answer.body["step"].clone()), (json!(code), json!("conflict_check")));
        assert_eq!(answer.body["message"], code.message());
        let failures = store.failures.borrow();
        assert_eq!(failures.len(), 1, "{code:?} is recorded");
        assert_eq!((failures[0].request_id.as_str(), failures[0].code, failures[0].step), ("req-1", code, Step::ConflictCheck));
        assert_eq!(failures[0].detail.as_deref(), Some("diag"));
    }
}

#[test]
fn an_unreachable_database_is_503_and_anything_unexpected_500() {
    let unavailable = FakeStore::answering(Err(StoreError::Unavailable { detail: "timed out after 10000 ms".into() }));
    let answer = run(&unavailable, &form(), false);
    assert_eq!((answer.status, &answer.body["code"], &answer.body["step"]), (503, &json!("DATABASE_UNAVAILABLE"), &json!("booking_rpc")));
    let unexpected = FakeStore::answering(Err(StoreError::Unexpected { status: Some(401), detail: "Invalid API key".into() }));
    let answer = run(&unexpected, &form(), false);
    assert_eq!((answer.status, &answer.body["code"]), (500, &json!("INTERNAL_ERROR")));
    assert!(!answer.body.to_string().contains("Invalid API key"), "internals stay inside");
}

#[test]
fn debug_details_show_only_where_allowed() {
    let refused = || FakeStore::answering(Err(StoreError::Refused { code: ErrorCode::SlotTaken, step: Step::ConflictCheck, detail: Some("overlap".into()) }));
    assert!(run(&refused(), &form(), false).body.get("debug").is_none());
    assert_eq!(run(&refused(), &form(), true).body["debug"], json!({"detail": "overlap"}));
}

#[test]
fn a_failure_record_that_cannot_be_written_does_not_change_the_answer() {
    let store = FakeStore {
        failing_record: true,
        ..FakeStore::answering(Err(StoreError::Refused { code: ErrorCode::SlotTaken, step: Step::ConflictCheck, detail: None }))
    };
    assert_eq!(run(&store, &form(), false).status, 409);
}

#[test]
fn a_booking_synced_right_away_is_201_scheduled_synced_without_warnings() {
    let store = FakeStore::answering(Ok(booked()));
    let intakeq = FakeIntakeq::default();
    let answer = run_with(&store, Some(&intakeq), &form(), false);
    assert_eq!(answer.status, 201);
    assert_eq!((&answer.body["data"]["status"], &answer.body["data"]["syncStatus"]), (&json!("scheduled"), &json!("synced")));
    assert!(answer.body["data"]["pqAppointmentId"].is_string());
    assert_eq!(answer.body["warnings"], json!([]));
    let reports = store.reports.borrow();
    assert_eq!((reports.len(), reports[0].1.as_str()), (1, "req-1"), "the request reports its attempt under its lease");
}

#[test]
fn when_intakeq_fails_the_booking_still_stands_pending_with_a_warning() {
    let store = FakeStore::answering(Ok(booked()));
    let intakeq = FakeIntakeq::default();
    intakeq.fail_next("create_appointment", IntakeqError::ServerError { status: 500 });
    let answer = run_with(&store, Some(&intakeq), &form(), false);
    assert_eq!((answer.status, &answer.body["data"]["syncStatus"]), (201, &json!("pending")));
    assert_eq!(answer.body["warnings"].as_array().unwrap().len(), 1);
    assert!(store.reports.borrow()[0].2.contains("Ambiguous"), "a 500 on the create call may have created it");
}

#[test]
fn a_duplicate_or_a_replay_is_not_synced_again() {
    for flags in [BookingOutcome { is_duplicate: true, ..booked() }, BookingOutcome { replayed: true, ..booked() }] {
        let store = FakeStore::answering(Ok(flags));
        let intakeq = FakeIntakeq::default();
        run_with(&store, Some(&intakeq), &form(), false);
        assert!(intakeq.calls.borrow().is_empty());
    }
}

#[test]
fn a_job_held_by_another_runner_is_left_to_it() {
    let mut held = booked();
    held.booking.sync_job.as_mut().unwrap().locked_by = Some("cron-9".into());
    let store = FakeStore::answering(Ok(held));
    let intakeq = FakeIntakeq::default();
    run_with(&store, Some(&intakeq), &form(), false);
    assert!(intakeq.calls.borrow().is_empty());
}

#[test]
fn an_attempt_past_its_budget_goes_on_after_the_answer_and_records_its_result() {
    let store = FakeStore::answering(Ok(booked()));
    let intakeq = FakeIntakeq::default();
    intakeq.slowness.set(Some(std::time::Duration::from_millis(30)));
    let settings = FlowSettings { inline_sync_budget: std::time::Duration::from_millis(10), ..settings(false) };
    let request_id = RequestId::from_header(Some("req-1"));
    let booked = block_on(book(&store, Some(&intakeq), &Open, &FixedClock, &request_id, &form(), None, &settings));
    assert_eq!(booked.answer.status, 201);
    assert_eq!(booked.answer.body["data"]["syncStatus"], "pending", "answered before IntakeQ did");
    assert!(store.reports.borrow().is_empty(), "nothing recorded yet");
    block_on(booked.after_answer.expect("the attempt goes on"));
    let reports = store.reports.borrow();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].2.starts_with("Synced"), "{reports:?}");
    assert_eq!(intakeq.created.borrow().len(), 1, "one appointment");
}

#[test]
fn a_booking_without_a_call_of_the_budget_is_left_to_the_cron_untried() {
    let store = FakeStore::answering(Ok(booked()));
    store.budget_left.set(Some(0));
    let intakeq = FakeIntakeq::default();
    let answer = run_with(&store, Some(&intakeq), &form(), false);
    assert_eq!((answer.status, &answer.body["data"]["syncStatus"]), (201, &json!("pending")));
    assert!(intakeq.calls.borrow().is_empty(), "no IntakeQ call: {:?}", intakeq.calls.borrow());
    assert!(store.reports.borrow()[0].2.contains("NoBudget"), "released untried: {:?}", store.reports.borrow());
    assert_eq!(store.calls_reported.borrow()[0].made, 0, "and it reports no IntakeQ call made");
    assert_eq!(*store.reservations.borrow(), [None], "it asked for what the job needs");
}

#[test]
fn a_booking_that_committed_after_the_call_timed_out_is_201_with_no_failure_record() {
    let store = FakeStore::answering(Err(StoreError::Unavailable { detail: "book_appointment: no answer within 10s".into() }));
    *store.committed_after_timeout.borrow_mut() = Some(booked());
    let answer = run(&store, &form(), false);
    assert_eq!((answer.status, &answer.body["data"]["appointmentId"]), (201, &json!("3ca6a61f-dbfb-4c18-9db1-3e0589df99e3")));
    assert_eq!(*store.asked_after_timeout.borrow(), ["req-1"], "it asked what became of its own request");
    assert!(store.failures.borrow().is_empty(), "no failure record for a booking that exists");

    let rolled_back = FakeStore::answering(Err(StoreError::Unavailable { detail: "book_appointment: no answer within 10s".into() }));
    let answer = run(&rolled_back, &form(), false);
    assert_eq!(answer.status, 503, "no booking was made: the patient is told so");
    assert_eq!(rolled_back.failures.borrow().len(), 1);
}

#[test]
fn a_patient_id_needs_the_partner_token() {
    let mut body: serde_json::Value = serde_json::from_slice(&form()).unwrap();
    body["patientId"] = json!("a0d2c8b0-7896-46af-9aca-ea5177939b1a");
    let body = body.to_string().into_bytes();
    let store = FakeStore::answering(Ok(booked()));
    let answer = run(&store, &body, false);
    assert_eq!((answer.status, &answer.body["code"], &answer.body["step"]), (403, &json!("PATIENT_ID_NOT_ALLOWED"), &json!("authorization")));
    assert!(store.booked_with.borrow().is_empty() && store.failures.borrow().is_empty(), "nothing written");

    let trusted = FlowSettings { trusted_caller: true, ..settings(false) };
    let request_id = RequestId::from_header(Some("req-1"));
    let booked = block_on(book(&store, None::<&FakeIntakeq>, &Open, &FixedClock, &request_id, &body, None, &trusted));
    assert_eq!(booked.answer.status, 201);
    assert!(matches!(store.booked_with.borrow()[0].0.patient, crate::booking::request::Patient::Existing { details: Some(_), .. }),
            "the details go with the id, for the database to compare");
}

fn guarded(abuse: AbuseSettings) -> FlowSettings {
    FlowSettings { abuse, client_address: Some("203.0.113.7".into()), ..settings(false) }
}

fn run_gated(store: &FakeStore, gate: &crate::testing::FakeGate, body: &[u8], settings: &FlowSettings) -> Answer {
    let request_id = RequestId::from_header(Some("req-1"));
    let booked = block_on(book(store, None::<&FakeIntakeq>, gate, &FixedClock, &request_id, body, None, settings));
    booked.answer
}

#[test]
fn an_address_over_its_limit_is_429_with_retry_after_and_nothing_written() {
    let store = FakeStore::answering(Ok(booked()));
    let gate = crate::testing::FakeGate { address_refused: true, ..Default::default() };
    let limits = AbuseSettings { per_ip_per_minute: 10, ..AbuseSettings::OFF };
    let answer = run_gated(&store, &gate, &form(), &guarded(limits));
    assert_eq!((answer.status, &answer.body["code"], &answer.body["step"]), (429, &json!("RATE_LIMITED"), &json!("rate_limit")));
    assert_eq!(answer.headers, [("Retry-After", "60".to_owned())]);
    assert_eq!(*gate.addresses.borrow(), ["203.0.113.7"]);
    assert!(store.booked_with.borrow().is_empty() && store.failures.borrow().is_empty(), "nothing written");

    let trusted = FlowSettings { trusted_caller: true, ..guarded(limits) };
    assert_eq!(run_gated(&store, &gate, &form(), &trusted).status, 201, "the practice's own tools are not limited");
}

#[test]
fn an_email_over_its_hourly_limit_is_429_and_the_refused_attempt_is_not_counted() {
    let limits = AbuseSettings { per_email_per_hour: 2, ..AbuseSettings::OFF };
    let store = FakeStore::default();
    store.email_attempts.borrow_mut().extend(["riley@example.com".to_owned(), "riley@example.com".to_owned()]);
    let answer = run_gated(&store, &crate::testing::FakeGate::default(), &form(), &guarded(limits));
    assert_eq!((answer.status, &answer.body["code"]), (429, &json!("RATE_LIMITED")));
    assert_eq!(answer.headers, [("Retry-After", "3600".to_owned())], "the whole hour: the exact wait would tell when its owner tried");
    assert_eq!(store.email_attempts.borrow().len(), 2, "not counted");
    assert!(store.booked_with.borrow().is_empty());
}

#[test]
fn with_turnstile_on_a_booking_needs_a_token_siteverify_accepts() {
    let limits = AbuseSettings { turnstile: true, ..AbuseSettings::OFF };
    let gate = crate::testing::FakeGate::default();
    let with_token = |token: &str| {
        let mut body: serde_json::Value = serde_json::from_slice(&form()).unwrap();
        body["turnstileToken"] = json!(token);
        body.to_string().into_bytes()
    };
    for (what, body) in [("missing", form()), ("refused", with_token("bot-1"))] {
        let store = FakeStore::answering(Ok(booked()));
        let answer = run_gated(&store, &gate, &body, &guarded(limits));
        assert_eq!((answer.status, &answer.body["code"], &answer.body["step"]), (403, &json!("BOT_CHECK_FAILED"), &json!("bot_check")), "{what}");
        assert!(store.booked_with.borrow().is_empty(), "{what}: nothing written");
    }
    let store = FakeStore::answering(Ok(booked()));
    assert_eq!(run_gated(&store, &gate, &with_token("pass-1"), &guarded(limits)).status, 201);
    let store = FakeStore::answering(Ok(booked()));
    let header = FlowSettings { turnstile_header: Some("pass-2".into()), ..guarded(limits) };
    assert_eq!(run_gated(&store, &gate, &form(), &header).status, 201, "or in the CF-Turnstile-Response header");
    let down = crate::testing::FakeGate { siteverify_down: true, ..Default::default() };
    let store = FakeStore::answering(Ok(booked()));
    assert_eq!(run_gated(&store, &down, &with_token("pass-3"), &guarded(limits)).status, 403, "no verdict, no booking");
}

#[test]
fn an_ipv6_client_is_counted_by_its_64_and_an_ipv4_one_by_its_address() {
    assert_eq!(crate::abuse::address_key(Some("2001:db8:1:2:aaaa::1")), crate::abuse::address_key(Some("2001:db8:1:2:ffff:ffff:ffff:ffff")));
    assert_ne!(crate::abuse::address_key(Some("2001:db8:1:2::1")), crate::abuse::address_key(Some("2001:db8:1:3::1")));
    assert_eq!(crate::abuse::address_key(Some("203.0.113.7")), "203.0.113.7");
    assert_eq!(crate::abuse::address_key(None), "unknown");
}
