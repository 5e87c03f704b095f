//! One budget for every IntakeQ call: twenty new patients booking at once against an IntakeQ that allows 10
//! calls a minute (the sandbox's and the budget's minute both last 3 s here) are all synced, paperwork sent,
//! with no 429 and no call made twice: the booking requests take what the budget has, the rest wait for the
//! cron, which serves the oldest booking first and waits for the budget as it frees.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{booking, new_provider, start_synced, unique};

const MINUTE_MS: &str = "3000";
const BOOKINGS: usize = 20;
/// A new patient's calls: the client search, the new client, the appointment, the questionnaire.
const CALLS_PER_NEW_PATIENT: usize = 4;

#[tokio::test]
async fn twenty_new_patients_at_once_are_paced_to_intakeq_s_limit_with_no_429_and_no_call_twice() {
    let stack = start_synced(module_path!(), &[
        ("INTAKEQ_CALLS_PER_MINUTE", "10"),
        ("INTAKEQ_BUDGET_MINUTE_MS", MINUTE_MS),
        ("INLINE_SYNC_BUDGET_MS", "2000"),
    ]).await;
    let limit = json!({"perMinute": 10, "minuteMs": MINUTE_MS.parse::<u64>().unwrap()});
    let response = stack.http.put(format!("{}/_sandbox/rate-limit", stack.intakeq)).json(&limit).send().await.unwrap();
    assert!(response.status().is_success(), "the sandbox took the limit");
    let provider = new_provider(&stack).await;
    let tag = unique("burst");

    let answers = futures::future::join_all((0..BOOKINGS).map(|i| {
        let form = booking(&provider, &format!("{tag}-{i}@example.com"), 27 + (i / 8) as i64, 8 + (i % 8) as u32);
        let stack = &stack;
        async move { stack.post(&form, &[]).await }
    }))
    .await;
    let mut appointments = Vec::new();
    for answer in &answers {
        assert_eq!(answer.status, 201, "{}", answer.body);
        appointments.push(answer.body["data"]["appointmentId"].as_str().unwrap().to_owned());
    }

    // The cron, every (3-second) minute, until every booking is synced with its paperwork sent.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 = stack.db.query_one(
            "select count(*) from appointments where id::text = any($1) and sync_status = 'synced' and intake_forms_status = 'sent'",
            &[&appointments],
        ).await.unwrap().get(0);
        if done as usize == BOOKINGS {
            break;
        }
        assert!(Instant::now() < deadline, "{done} of {BOOKINGS} synced after two minutes");
        stack.run_cron().await;
    }

    let state = stack.intakeq_state().await;
    let requests: Vec<&Value> = state["requests"].as_array().unwrap().iter().collect();
    let refused = requests.iter().filter(|r| r["status"] == 429).count();
    assert_eq!(refused, 0, "no call was refused with 429");
    assert_eq!(requests.len(), BOOKINGS * CALLS_PER_NEW_PATIENT, "every call needed, none made twice");
    let mine = |list: &str| state[list].as_array().unwrap().iter().filter(|r| r["ClientEmail"].as_str().is_some_and(|e| e.starts_with(&tag))).count();
    assert_eq!((mine("appointments"), mine("intakes")), (BOOKINGS, BOOKINGS), "one appointment and one questionnaire each");
}
