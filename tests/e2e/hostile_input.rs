//! Hostile and broken input: each gets a 4xx naming what is wrong, and nothing is written.

use serde_json::{json, Value};

use crate::support::{booking, new_provider, start, unique, Stack};

async fn assert_refused(stack: &Stack, body: Vec<u8>, status: u16, code: &str, fields: &[&str], email: &str) {
    let answer = stack.post_raw(body, "application/json", &[]).await;
    assert_eq!((answer.status, answer.body["code"].as_str()), (status, Some(code)), "{}", answer.body);
    let named: Vec<&str> = answer.body["fieldErrors"].as_array().map(|e| e.iter().filter_map(|f| f["field"].as_str()).collect()).unwrap_or_default();
    for field in fields {
        assert!(named.contains(field), "{field} among {named:?}");
    }
    assert_eq!(stack.rows_for_email(email).await, (0, 0, 0), "nothing written");
}

fn with(mut body: Value, path: &[&str], value: Value) -> Vec<u8> {
    let (last, parents) = path.split_last().unwrap();
    let mut target = &mut body;
    for key in parents {
        target = &mut target[*key];
    }
    target[*last] = value;
    body.to_string().into_bytes()
}

#[tokio::test]
async fn broken_and_hostile_bodies_are_refused_with_field_errors() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("hostile"));
    let good = booking(&provider, &email, 12, 9);

    assert_refused(&stack, b"{\"patient\": ".to_vec(), 400, "INVALID_REQUEST", &["body"], &email).await;
    assert_refused(&stack, b"[1, 2, 3]".to_vec(), 400, "INVALID_REQUEST", &["body"], &email).await;
    assert_refused(&stack, with(good.clone(), &["providerId"], json!(42)), 400, "INVALID_REQUEST", &["providerId"], &email).await;
    assert_refused(&stack, with(good.clone(), &["patient", "email"], json!(["a"])), 400, "INVALID_REQUEST", &["patient.email"], &email).await;
    assert_refused(&stack, b"{}".to_vec(), 400, "INVALID_REQUEST", &["patient", "providerId", "payerId", "start", "locationType"], &email).await;
    assert_refused(&stack, with(good.clone(), &["patient", "firstName"], json!("A".repeat(10_000))), 400, "INVALID_REQUEST", &["patient.firstName"], &email).await;
    assert_refused(&stack, with(good.clone(), &["notes"], json!("n".repeat(2_001))), 400, "INVALID_REQUEST", &["notes"], &email).await;
    for bad_date in ["2026-02-30T09:00:00Z", "tomorrow at nine", "2026-12-01", "2026-12-01T09:00:00"] {
        assert_refused(&stack, with(good.clone(), &["start"], json!(bad_date)), 400, "INVALID_REQUEST", &["start"], &email).await;
    }
    assert_refused(&stack, with(good.clone(), &["patient", "dateOfBirth"], json!("1990-13-45")), 400, "INVALID_REQUEST", &["patient.dateOfBirth"], &email).await;
    for name in ["Robert'); DROP TABLE patients;--", "1' OR '1'='1", "Ana\u{202E}evil", "Ana\u{200B}", "😀😀", "<script>x</script>"] {
        assert_refused(&stack, with(good.clone(), &["patient", "lastName"], json!(name)), 400, "INVALID_REQUEST", &["patient.lastName"], &email).await;
    }
    assert_refused(&stack, with(good.clone(), &["payerId"], json!("'; delete from payers; --")), 400, "INVALID_REQUEST", &["payerId"], &email).await;
    let mut over = good.clone();
    over["notes"] = json!("x".repeat(20 * 1024));
    assert_refused(&stack, over.to_string().into_bytes(), 413, "PAYLOAD_TOO_LARGE", &[], &email).await;
    // A megabyte: the worker reads no further than the limit and answers 413 at once. The client may still be
    // sending then, and may see the connection closed instead of the answer: refused either way, nothing stored.
    let mut megabyte = good.clone();
    megabyte["notes"] = json!("x".repeat(1024 * 1024));
    let sent = stack.http.post(format!("{}{}", stack.worker, crate::support::BOOKING_PATH))
        .header("content-type", "application/json").body(megabyte.to_string()).send().await;
    match sent {
        Ok(response) => assert_eq!(response.status().as_u16(), 413),
        Err(error) => assert!(error.is_request(), "refused while it was still being sent: {error}"),
    }

    let as_text = stack.post_raw(good.to_string().into_bytes(), "text/plain", &[]).await;
    assert_eq!((as_text.status, as_text.body["code"].as_str()), (415, Some("UNSUPPORTED_MEDIA_TYPE")));
    let get = stack.http.get(format!("{}{}", stack.worker, crate::support::BOOKING_PATH)).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(stack.rows_for_email(&email).await, (0, 0, 0));
}

#[tokio::test]
async fn names_of_any_script_are_booked() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("unicode"));
    let mut body = booking(&provider, &email, 12, 14);
    body["patient"]["firstName"] = json!("José Ñúñez");
    body["patient"]["lastName"] = json!("O'Brien-李");
    let answer = stack.post(&body, &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let stored: String = stack.db.query_one("select first_name from patients where email = $1", &[&email]).await.unwrap().get(0);
    assert_eq!(stored, "José Ñúñez");
}
