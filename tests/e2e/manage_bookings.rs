//! A patient cancels or moves their own booking with its manage token: our slot frees (or moves) at once, and
//! the sync outbox carries the change to IntakeQ exactly once, with the same fencing and look-before-writing as
//! the create. Another appointment's token opens nothing; a taken slot changes nothing.

use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

use crate::support::{booking, new_provider, start_synced, unique, Stack, ADMIN_TOKEN};

/// One test at a time: a cron run claims every due job in this module's database, whichever test made it, and
/// calls its own test's IntakeQ sandbox with it.
async fn alone() -> MutexGuard<'static, ()> {
    static CRON: Mutex<()> = Mutex::const_new(());
    CRON.lock().await
}

fn email(tag: &str) -> String {
    format!("{}@example.com", unique(tag))
}

struct Booked {
    id: String,
    pq: Option<String>,
    token: String,
}

async fn book(stack: &Stack, provider: &str, days: i64, hour: u32) -> Booked {
    let answer = stack.post(&booking(provider, &email("patient"), days, hour), &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let data = &answer.body["data"];
    Booked {
        id: data["appointmentId"].as_str().unwrap().to_owned(),
        pq: data["pqAppointmentId"].as_str().map(str::to_owned),
        token: data["manageToken"].as_str().expect("a new booking's answer carries its manage token").to_owned(),
    }
}

/// IntakeQ's appointment `pq`, as the sandbox holds it.
async fn upstream(stack: &Stack, pq: &str) -> Value {
    let state = stack.intakeq_state().await;
    state["appointments"].as_array().unwrap().iter().find(|a| a["Id"] == pq).cloned().expect("IntakeQ has it")
}

fn starts_at(days: i64, hour: u32) -> String {
    let day = (chrono::Utc::now() + chrono::Duration::days(days)).format("%Y-%m-%d");
    format!("{day}T{hour:02}:00:00Z")
}

#[tokio::test]
async fn a_patient_cancels_with_the_manage_token_the_slot_frees_and_intakeq_cancels_once() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    let booked = book(&stack, &provider, 9, 15).await;
    let pq = booked.pq.clone().expect("synced at once here");

    let answer = stack.change(&booked.id, "cancel", Some(&booked.token), &json!({"reason": "Feeling better"})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["data"], json!({"appointmentId": booked.id, "status": "cancelled", "changed": true, "intakeq": "cancellation_queued"}));
    assert_eq!(stack.post(&booking(&provider, &email("next"), 9, 15), &[]).await.status, 201, "the slot is free at once");

    stack.run_cron().await;
    assert_eq!(upstream(&stack, &pq).await["Status"], "Canceled", "IntakeQ cancelled it (and tells the patient)");
    let again = stack.change(&booked.id, "cancel", Some(&booked.token), &json!({})).await;
    assert_eq!((again.status, &again.body["data"]["changed"]), (200, &json!(false)), "a second cancel changes nothing");
    stack.run_cron().await;
    assert_eq!(stack.intakeq_calls("POST", "/appointments/cancellation").await, 1, "exactly once");
    assert_eq!(stack.job_state(&booked.id).await.0.split('/').next(), Some("cancelled"), "the job ends with the appointment");
}

#[tokio::test]
async fn a_cancel_before_the_booking_reached_intakeq_posts_nothing() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    // IntakeQ's client search fails: the first attempt posts nothing, and the job waits.
    stack.intakeq_fault(json!({"endpoint": "GET /clients", "fault": "server_error"})).await;
    let booked = book(&stack, &provider, 10, 15).await;
    assert_eq!(booked.pq, None);

    let answer = stack.change(&booked.id, "cancel", Some(&booked.token), &json!({})).await;
    assert_eq!((answer.status, &answer.body["data"]["intakeq"]), (200, &json!("create_stopped")), "{}", answer.body);
    stack.make_sync_jobs_due(&[&booked.id]).await;
    stack.run_cron().await;

    assert_eq!(stack.job_state(&booked.id).await.0.split('/').next(), Some("cancelled"));
    assert_eq!(stack.intakeq_calls("POST", "/appointments").await, 0, "never posted");
    assert_eq!(stack.intakeq_calls("POST", "/appointments/cancellation").await, 0, "nothing to cancel");
}

#[tokio::test]
async fn a_reschedule_onto_a_free_slot_moves_it_in_both_systems_and_onto_a_taken_one_changes_nothing() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    let booked = book(&stack, &provider, 11, 15).await;
    let other = book(&stack, &provider, 11, 17).await;
    let pq = booked.pq.clone().unwrap();

    let taken = stack.change(&booked.id, "reschedule", Some(&booked.token), &json!({"start": starts_at(11, 17)})).await;
    assert_eq!((taken.status, &taken.body["code"]), (409, &json!("SLOT_TAKEN")), "{}", taken.body);
    assert_eq!(stack.appointment_start(&booked.id).await, starts_at(11, 15), "nothing changed");
    assert_eq!(stack.job_state(&booked.id).await.0.split('/').next(), Some("done"), "nothing queued");

    let moved = stack.change(&booked.id, "reschedule", Some(&booked.token), &json!({"start": starts_at(11, 19)})).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!((&moved.body["data"]["start"], &moved.body["data"]["changed"]), (&json!(starts_at(11, 19)), &json!(true)));
    assert_eq!(stack.post(&booking(&provider, &email("next"), 11, 15), &[]).await.status, 201, "the old slot is free");

    stack.run_cron().await;
    let start_ms = chrono::DateTime::parse_from_rfc3339(&starts_at(11, 19)).unwrap().timestamp_millis();
    assert_eq!(upstream(&stack, &pq).await["StartDate"], start_ms, "IntakeQ has the new start");
    assert_eq!(stack.intakeq_calls("PUT", "/appointments").await, 1, "written once");
    assert_eq!(stack.job_state(&booked.id).await.0.split('/').next(), Some("done"));
    assert_eq!(stack.appointment_start(&other.id).await, starts_at(11, 17), "the other booking is untouched");
}

#[tokio::test]
async fn another_appointment_s_manage_token_is_refused_and_staff_may_change_any() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    let mine = book(&stack, &provider, 12, 15).await;
    let theirs = book(&stack, &provider, 12, 17).await;

    for token in [Some(mine.token.as_str()), None, Some("m1.not-a-real-token")] {
        let answer = stack.change(&theirs.id, "cancel", token, &json!({})).await;
        assert_eq!((answer.status, &answer.body["code"]), (403, &json!("CHANGE_NOT_ALLOWED")), "{token:?}");
    }
    assert!(stack.appointment_state(&theirs.id).await.starts_with("scheduled/"), "untouched");
    let staff = stack.change(&theirs.id, "reschedule", Some(ADMIN_TOKEN), &json!({"start": starts_at(12, 19)})).await;
    assert_eq!(staff.status, 200, "{}", staff.body);
}

#[tokio::test]
async fn a_cancel_or_a_move_that_may_have_reached_intakeq_is_looked_up_before_it_is_written_again() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    let cancelled = book(&stack, &provider, 13, 15).await;
    let moved = book(&stack, &provider, 13, 17).await;

    // IntakeQ carries out each change but answers after the worker gave up.
    stack.intakeq_fault(json!({"endpoint": "POST /appointments/cancellation", "fault": "succeed_late", "delayMs": 8000})).await;
    stack.intakeq_fault(json!({"endpoint": "PUT /appointments", "fault": "succeed_late", "delayMs": 8000})).await;
    assert_eq!(stack.change(&cancelled.id, "cancel", Some(&cancelled.token), &json!({})).await.status, 200);
    assert_eq!(stack.change(&moved.id, "reschedule", Some(&moved.token), &json!({"start": starts_at(13, 20)})).await.status, 200);
    stack.run_cron().await;
    for booked in [&cancelled, &moved] {
        let (state, error) = stack.job_state(&booked.id).await;
        assert_eq!(state.split('/').next_back(), Some("true"), "ambiguous: look before writing again ({error:?})");
    }

    stack.make_sync_jobs_due(&[&cancelled.id, &moved.id]).await;
    stack.run_cron().await;
    assert_eq!(stack.intakeq_calls("POST", "/appointments/cancellation").await, 1, "found cancelled: not posted again");
    assert_eq!(stack.intakeq_calls("PUT", "/appointments").await, 1, "found moved: not written again");
    assert_eq!(stack.intakeq_calls("GET", &format!("/appointments/{}", cancelled.pq.clone().unwrap())).await, 1);
    assert_eq!(stack.job_state(&cancelled.id).await.0.split('/').next(), Some("cancelled"));
    assert_eq!(stack.job_state(&moved.id).await.0.split('/').next(), Some("done"));
}

#[tokio::test]
async fn a_move_that_never_reached_intakeq_is_written_after_the_reread_finds_it_where_it_was() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    let booked = book(&stack, &provider, 14, 15).await;
    let pq = booked.pq.clone().unwrap();

    // IntakeQ never answers the PUT, and never carries it out.
    stack.intakeq_fault(json!({"endpoint": "PUT /appointments", "fault": "hang", "delayMs": 8000})).await;
    assert_eq!(stack.change(&booked.id, "reschedule", Some(&booked.token), &json!({"start": starts_at(14, 18)})).await.status, 200);
    stack.run_cron().await;
    assert!(stack.job_state(&booked.id).await.0.ends_with("/true"), "ambiguous: look first");

    stack.make_sync_jobs_due(&[&booked.id]).await;
    stack.run_cron().await;
    let start_ms = chrono::DateTime::parse_from_rfc3339(&starts_at(14, 18)).unwrap().timestamp_millis();
    assert_eq!(upstream(&stack, &pq).await["StartDate"], start_ms, "found where it was, then moved");
    assert_eq!(stack.appointment_start(&booked.id).await, starts_at(14, 18), "ours stays where the patient put it");
    assert_eq!(stack.intakeq_calls("PUT", "/appointments").await, 2, "the hung one, and the one that landed");
    assert_eq!(stack.job_state(&booked.id).await.0.split('/').next(), Some("done"));
}
