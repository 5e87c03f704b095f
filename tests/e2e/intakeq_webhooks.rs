//! IntakeQ's appointment webhooks reach us at a secret path (IntakeQ signs nothing): the right secret keeps the
//! nudge, once per appointment waiting to be re-read; a wrong one is 404 with nothing stored; the secret is in no
//! log line.

use serde_json::json;

use crate::support::{start_with, Stack};

const SECRET: &str = "e2e-webhook-secret-7f3a";

async fn post_webhook(stack: &Stack, secret: &str, appointment: &str, event: &str) -> (u16, serde_json::Value) {
    let body = json!({"EventType": event, "ActionPerformedByClient": false,
                      "Appointment": {"Id": appointment, "ClientName": "Riley Quinn", "ClientEmail": "riley@example.com"}});
    let response = stack.http.post(format!("{}/api/intakeq/webhooks/{secret}", stack.worker)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// An IntakeQ appointment id (24 hexadecimal characters) no other test uses.
fn iq_id() -> String {
    format!("{:024x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

async fn waiting(stack: &Stack, appointment: &str) -> (i64, i32) {
    let row = stack.db.query_one(
        "select count(*), coalesce(max(times_received), 0) from intakeq_inbound_events where pq_appointment_id = $1 and processed_at is null",
        &[&appointment],
    ).await.unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_webhook_to_the_secret_path_is_kept_once_and_a_wrong_secret_stores_nothing() {
    let stack = start_with(module_path!(), None, false, &[("INTAKEQ_WEBHOOK_SECRET", SECRET)]).await;
    let appointment = iq_id();

    let (status, body) = post_webhook(&stack, SECRET, &appointment, "AppointmentCanceled").await;
    assert_eq!((status, &body["data"]["duplicate"]), (200, &json!(false)), "{body}");
    let (status, body) = post_webhook(&stack, SECRET, &appointment, "AppointmentCanceled").await;
    assert_eq!((status, &body["data"]["duplicate"]), (200, &json!(true)), "the same webhook again: {body}");
    assert_eq!(waiting(&stack, &appointment).await, (1, 2), "one appointment to re-read, received twice");

    let other = iq_id();
    let (status, body) = post_webhook(&stack, "not-the-secret", &other, "AppointmentCanceled").await;
    assert_eq!((status, &body["code"]), (404, &json!("NOT_FOUND")));
    assert_eq!(waiting(&stack, &other).await.0, 0, "nothing stored");

    let raw = stack.raw_logs();
    assert!(!raw.contains(SECRET), "the secret is in no log line");
    assert!(!raw.contains("riley@example.com") && !raw.contains("Riley Quinn"), "nor the payload's patient data");
    let stored: i64 = stack.db.query_one(
        "select count(*) from intakeq_inbound_events e where row_to_json(e)::text ~* 'riley|quinn'", &[],
    ).await.unwrap().get(0);
    assert_eq!(stored, 0, "the payload's patient data is not kept");
}
