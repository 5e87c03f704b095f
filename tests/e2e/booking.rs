//! The booking endpoint end to end: the built worker in workerd, the RPC API, the real Postgres. Each story
//! checks what the patient gets back and what the database keeps.

use serde_json::json;

use crate::support::{booking, new_provider, start, unique, PARTNER_TOKEN};

#[tokio::test]
async fn a_booking_is_201_and_its_request_id_is_on_every_row() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("happy"));
    let answer = stack.post(&booking(&provider, &email, 5, 15), &[("X-Request-Id", "e2e-happy-1")]).await;

    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.header("x-request-id"), Some("e2e-happy-1"));
    assert_eq!(answer.body["requestId"], "e2e-happy-1");
    let data = &answer.body["data"];
    assert_eq!((&data["status"], &data["syncStatus"], &data["duration"]), (&json!("pending_sync"), &json!("pending"), &json!(60)));
    assert_eq!(data["provider"]["id"], json!(provider));
    assert_eq!(answer.body["warnings"].as_array().unwrap().len(), 1, "not in IntakeQ (not configured here): a warning");

    let appointment = data["appointmentId"].as_str().unwrap();
    assert_eq!(stack.count("appointments", "id::text = $1 and request_id = 'e2e-happy-1'", appointment).await, 1);
    assert_eq!(stack.count("patients", "email = $1 and created_by_request_id = 'e2e-happy-1'", &email).await, 1);
    assert_eq!(stack.count("sync_retry_queue", "appointment_id::text = $1 and request_id = 'e2e-happy-1'", appointment).await, 1);
}

#[tokio::test]
async fn a_generated_request_id_is_used_alike_in_header_body_and_rows() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let answer = stack.post(&booking(&provider, &format!("{}@example.com", unique("genid")), 5, 9), &[("X-Request-Id", "not valid!")]).await;
    let id = answer.header("x-request-id").unwrap().to_owned();
    assert_eq!(id.len(), 36, "a new UUID replaces an unusable one");
    assert_eq!(answer.body["requestId"], json!(id));
    assert_eq!(stack.count("appointments", "request_id = $1", &id).await, 1);
}

#[tokio::test]
async fn an_existing_patient_and_self_pay() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let mut body = booking(&provider, "unused@example.com", 6, 10);
    body.as_object_mut().unwrap().remove("patient");
    body["patientId"] = json!("e5000000-0000-4000-8000-000000000001");
    body["payerId"] = json!("cash-payment");
    let refused = stack.post(&body, &[]).await;
    assert_eq!((refused.status, &refused.body["code"]), (403, &json!("PATIENT_ID_NOT_ALLOWED")), "a patientId needs the partner token");
    let bearer = format!("Bearer {PARTNER_TOKEN}");
    let answer = stack.post(&body, &[("authorization", &bearer)]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["data"]["patientId"], "e5000000-0000-4000-8000-000000000001");
    let appointment = answer.body["data"]["appointmentId"].as_str().unwrap();
    assert_eq!(stack.count("appointments", "id::text = $1 and payer_id is null", appointment).await, 1, "self pay is payer NULL");
}

#[tokio::test]
async fn the_same_patient_asking_again_gets_the_same_appointment() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("repeat"));
    let first = stack.post(&booking(&provider, &email, 7, 11), &[]).await;
    let again = stack.post(&booking(&provider, &email, 7, 11), &[]).await;
    assert_eq!((first.status, again.status), (201, 200));
    assert_eq!(again.body["data"]["isDuplicate"], true);
    assert_eq!(again.body["data"]["appointmentId"], first.body["data"]["appointmentId"]);
    assert_eq!(stack.rows_for_email(&email).await, (1, 1, 1));
}

#[tokio::test]
async fn a_second_booking_of_a_new_patient_reuses_the_patient() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("twice"));
    let first = stack.post(&booking(&provider, &email, 8, 9), &[]).await;
    let second = stack.post(&booking(&provider, &email, 8, 13), &[]).await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(first.body["data"]["patientId"], second.body["data"]["patientId"]);
    assert_eq!(stack.count("patients", "email = $1", &email).await, 1, "one patient row");
}

#[tokio::test]
async fn an_idempotent_replay_and_a_reused_key() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("idem"));
    let key = unique("key");
    let body = booking(&provider, &email, 9, 10);
    let first = stack.post(&body, &[("Idempotency-Key", &key)]).await;
    let replay = stack.post(&body, &[("Idempotency-Key", &key)]).await;
    assert_eq!((first.status, replay.status), (201, 200));
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body["data"]["appointmentId"], first.body["data"]["appointmentId"]);

    let other = booking(&provider, &email, 9, 14);
    let reused = stack.post(&other, &[("Idempotency-Key", &key), ("X-Request-Id", "e2e-reused-key")]).await;
    assert_eq!((reused.status, &reused.body["code"], &reused.body["step"]), (422, &json!("IDEMPOTENCY_KEY_REUSED"), &json!("idempotency")));
    assert_eq!(stack.failure_record("e2e-reused-key").await, Some(("idempotency".into(), "IDEMPOTENCY_KEY_REUSED".into(), 422)));
    assert_eq!(stack.rows_for_email(&email).await, (1, 1, 1), "only the first booking wrote");
}
