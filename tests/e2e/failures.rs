//! Every failure of a booking as the patient sees it (status, code, step) and as the practice finds it (a
//! failure record under the request id), and that it left no patient, appointment or sync job behind.
//! Failures data cannot provoke are injected with a trigger that fires only for this test's request ids.

use serde_json::{json, Value};

use crate::support::{booking, new_provider, start, unique, Stack};

async fn assert_failed_cleanly(stack: &Stack, body: &Value, request_id: &str, email: &str, expected: (u16, &str, &str)) {
    let answer = stack.post(body, &[("X-Request-Id", request_id)]).await;
    let (status, code, step) = expected;
    assert_eq!((answer.status, answer.body["code"].as_str(), answer.body["step"].as_str()), (status, Some(code), Some(step)), "{}", answer.body);
    assert_eq!((answer.body["success"].clone(), answer.body["requestId"].clone()), (json!(false), json!(request_id)));
    assert!(answer.body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(answer.body.get("debug").is_none(), "no debug unless EXPOSE_ERROR_DEBUG");
    assert_eq!(stack.failure_record(request_id).await, Some((step.to_owned(), code.to_owned(), i32::from(status))), "failure record");
    assert_eq!(stack.rows_for_email(email).await, (0, 0, 0), "no patient, appointment or sync job left behind");
}

/// Installs a trigger on `table` that fails inserts whose `column` starts with `prefix`; returns its name.
async fn inject_failure(stack: &Stack, table: &str, column: &str, prefix: &str) -> String {
    let name = format!("inject_{}", unique("t").replace('-', "_"));
    stack
        .db
        .batch_execute(&format!(
            "create function public.{name}() returns trigger language plpgsql as $$
             begin raise exception 'injected failure for a test'; end $$;
             create trigger {name} before insert on public.{table} for each row
               when (new.{column} like '{prefix}%') execute function public.{name}();"
        ))
        .await
        .unwrap();
    name
}

async fn remove_injection(stack: &Stack, table: &str, name: &str) {
    stack.db.batch_execute(&format!("drop trigger {name} on public.{table}; drop function public.{name}();")).await.unwrap();
}

#[tokio::test]
async fn patient_creation_failure() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let request_id = unique("inject-patient");
    let trigger = inject_failure(&stack, "patients", "created_by_request_id", &request_id).await;
    let email = format!("{}@example.com", unique("patient-fails"));
    assert_failed_cleanly(&stack, &booking(&provider, &email, 10, 9), &request_id, &email, (500, "PATIENT_CREATION_FAILED", "patient_resolution")).await;
    remove_injection(&stack, "patients", &trigger).await;
}

#[tokio::test]
async fn appointment_insert_failure_leaves_no_orphan_patient() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let request_id = unique("inject-appointment");
    let trigger = inject_failure(&stack, "appointments", "request_id", &request_id).await;
    let email = format!("{}@example.com", unique("insert-fails"));
    assert_failed_cleanly(&stack, &booking(&provider, &email, 10, 10), &request_id, &email, (500, "APPOINTMENT_INSERT_FAILED", "appointment_insert")).await;
    remove_injection(&stack, "appointments", &trigger).await;
}

#[tokio::test]
async fn slot_taken() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let first = stack.post(&booking(&provider, &format!("{}@example.com", unique("first")), 10, 11), &[]).await;
    assert_eq!(first.status, 201);
    let email = format!("{}@example.com", unique("second"));
    assert_failed_cleanly(&stack, &booking(&provider, &email, 10, 11), &unique("slot-taken"), &email, (409, "SLOT_TAKEN", "conflict_check")).await;
}

#[tokio::test]
async fn payer_lookup_failure() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("payer"));
    let mut body = booking(&provider, &email, 10, 12);
    body["payerId"] = json!("b2000000-0000-4000-8000-00000000dead");
    assert_failed_cleanly(&stack, &body, &unique("bad-payer"), &email, (404, "INVALID_PAYER", "payer_lookup")).await;
}

#[tokio::test]
async fn provider_failures() {
    let stack = start(module_path!()).await;
    let email = format!("{}@example.com", unique("provider"));
    let unknown = booking("a1000000-0000-4000-8000-00000000dead", &email, 10, 13);
    assert_failed_cleanly(&stack, &unknown, &unique("no-provider"), &email, (404, "PROVIDER_NOT_FOUND", "provider_lookup")).await;
    let on_leave = booking("a1000000-0000-4000-8000-000000000004", &email, 10, 13);
    assert_failed_cleanly(&stack, &on_leave, &unique("on-leave"), &email, (422, "PROVIDER_NOT_BOOKABLE", "provider_lookup")).await;
}

#[tokio::test]
async fn a_start_in_the_past() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("past"));
    let mut body = booking(&provider, &email, 0, 0);
    body["start"] = json!("2020-01-01T09:00:00Z");
    assert_failed_cleanly(&stack, &body, &unique("past"), &email, (422, "SLOT_IN_PAST", "conflict_check")).await;
}
