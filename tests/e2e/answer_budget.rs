//! The patient's answer never waits on IntakeQ past INLINE_SYNC_BUDGET_MS: a booking whose first sync attempt is
//! still running then is answered `pending`, and the attempt goes on after the answer (workerd's waitUntil),
//! under its lease, to its end: the booking syncs without the cron, with one appointment and one questionnaire.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{booking, new_provider, start_synced, unique};

#[tokio::test]
async fn a_slow_intakeq_gets_the_answer_sent_first_and_the_attempt_syncs_after_it_without_the_cron() {
    // The real default: the answer waits at most 2 s for IntakeQ.
    let stack = start_synced(module_path!(), &[
        ("INLINE_SYNC_BUDGET_MS", "2000"),
        // Production's IntakeQ timeout (and a lease long enough for it), so a 5 s search is slow, not failed.
        ("INTAKEQ_TIMEOUT_MS", "8000"),
        ("SYNC_LEASE_SECONDS", "60"),
    ]).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("slow-intakeq"));
    // The client search takes 5 s (under the worker's 8 s timeout per call): longer than the budget.
    stack.intakeq_fault(json!({"endpoint": "GET /clients", "fault": "slow", "delayMs": 5000})).await;

    let asked = Instant::now();
    let answer = stack.post(&booking(&provider, &email, 26, 9), &[]).await;
    let waited = asked.elapsed();
    assert_eq!(answer.status, 201, "{}", answer.body);
    let data = &answer.body["data"];
    assert_eq!((&data["syncStatus"], &data["intakeFormsStatus"]), (&json!("pending"), &json!("pending")), "{}", answer.body);
    assert!(answer.body["warnings"][0].as_str().unwrap().contains("not confirmed it yet"), "{}", answer.body);
    // Answered while IntakeQ was still holding the search (the bench measures how soon: bench/REPORT.md).
    assert!(waited < Duration::from_millis(5000), "answered after {waited:?}, before IntakeQ's answer");
    let appointment = data["appointmentId"].as_str().unwrap().to_owned();

    // No cron runs in this module: only the attempt that went on after the answer can sync it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = stack.appointment_state(&appointment).await;
        if state.starts_with("scheduled/synced/") {
            break;
        }
        assert!(Instant::now() < deadline, "not synced after the answer: {state} {:?}", stack.job_state(&appointment).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (job, _) = stack.job_state(&appointment).await;
    assert_eq!(job, "done/1/false", "one attempt, the booking request's own");
    let sandbox = stack.intakeq_state().await;
    let mine = |list: &str| sandbox[list].as_array().unwrap().iter().filter(|r| r["ClientEmail"] == email.as_str()).count();
    assert_eq!((mine("appointments"), mine("intakes")), (1, 1), "one appointment and one questionnaire");
    let forms: String = stack.db.query_one("select intake_forms_status from appointments where id::text = $1", &[&appointment])
        .await.unwrap().get(0);
    assert_eq!(forms, "sent");
}
