//! What a browser and an on-call engineer see: CORS for the practice's site only, and logs that follow a
//! request by its id without ever showing a patient's email.

use crate::support::{booking, new_provider, start, unique, ALLOWED_ORIGIN, BOOKING_PATH};

#[tokio::test]
async fn a_preflight_from_the_practice_s_site_passes_and_others_get_no_cors_headers() {
    let stack = start(module_path!()).await;
    let preflight = |origin: &'static str| {
        stack
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{BOOKING_PATH}", stack.worker))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type, idempotency-key")
            .send()
    };
    let allowed = preflight(ALLOWED_ORIGIN).await.unwrap();
    assert_eq!(allowed.status().as_u16(), 204);
    assert_eq!(allowed.headers()["access-control-allow-origin"], ALLOWED_ORIGIN);
    assert!(allowed.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "{:?}", other.headers());
}

#[tokio::test]
async fn every_log_line_of_a_booking_has_its_request_id_and_no_raw_email() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("logged"));
    let request_id = unique("logged");
    let answer = stack.post(&booking(&provider, &email, 13, 10), &[("X-Request-Id", &request_id)]).await;
    assert_eq!(answer.status, 201);
    let refused = stack.post(&booking(&provider, &email, 13, 10), &[("X-Request-Id", &format!("{request_id}-again"))]).await;
    assert_eq!(refused.status, 200, "a duplicate");

    let lines: Vec<_> = stack.logs().into_iter().filter(|l| l["request_id"].as_str().is_some_and(|id| id.starts_with(&request_id))).collect();
    let steps: Vec<&str> = lines.iter().filter(|l| l["request_id"] == request_id.as_str()).filter_map(|l| l["step"].as_str()).collect();
    assert!(steps.contains(&"request_validation") && steps.contains(&"book_appointment"), "{steps:?}");
    assert!(lines.iter().all(|l| l["outcome"].is_string()), "every line says its outcome");
    let raw = stack.raw_logs();
    assert!(!raw.contains(&email), "an email in clear in the logs");
    assert!(!raw.contains("Robin") && !raw.contains("1988-07-06") && !raw.contains("555 010 0199"), "patient data in clear");
    assert!(stack.logs().iter().all(|l| l.is_object()), "every line is one JSON object:\n{raw}");
    assert!(stack.logs().iter().filter(|l| l.get("step").is_some()).all(|l| l["request_id"].is_string()), "every step line has a request id");
}
