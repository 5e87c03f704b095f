use futures::executor::block_on;
use serde_json::json;

use super::*;
use crate::abuse::Open;
use crate::booking::store::StoreError;
use crate::testing::{booked, form, FakeIntakeq, FakeStore, FixedClock};

fn config() -> Result<Config, Vec<&'static str>> {
    Config::from_lookup(|name| match name {
        "SUPABASE_URL" => Some("http://127.0.0.1:54321".into()),
        "SUPABASE_SERVICE_ROLE_KEY" => Some("key".into()),
        "ALLOWED_ORIGINS" => Some("https://book.example.com".into()),
        "ADMIN_TOKEN" => Some("staff-secret".into()),
        "INTAKEQ_WEBHOOK_SECRET" => Some("hook-secret-1".into()),
        "PARTNER_API_TOKEN" => Some("partner-secret".into()),
        "MANAGE_TOKEN_SECRET" => Some("manage-secret".into()),
        _ => None,
    })
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        path: path.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: body.to_vec(),
    }
}

fn send(store: &FakeStore, request: &HttpRequest) -> HttpResponse {
    let request_id = RequestId::from_header(request.header("x-request-id"));
    let config = config();
    let handled = block_on(handle(request, &request_id, &config, Some(store), None::<&FakeIntakeq>, &Open, &FixedClock));
    handled.response
}

fn json_body(response: &HttpResponse) -> Value {
    serde_json::from_str(&response.body).unwrap()
}

#[test]
fn a_booking_answers_with_the_request_id_in_header_and_body() {
    let store = FakeStore::answering(Ok(booked()));
    let response = send(&store, &request("POST", BOOKING_PATH, &[("Content-Type", "application/json"), ("X-Request-Id", "abc-1")], &form()));
    assert_eq!(response.status, 201);
    assert_eq!(response.header("x-request-id"), Some("abc-1"));
    assert_eq!(json_body(&response)["requestId"], "abc-1");
    assert_eq!(response.header("content-type"), Some("application/json; charset=utf-8"));
}

#[test]
fn wrong_method_media_type_size_and_path_get_the_contract_s_codes() {
    let store = FakeStore::default();
    let cases = [
        (request("GET", BOOKING_PATH, &[], b""), 405, "METHOD_NOT_ALLOWED"),
        (request("POST", HEALTH_PATH, &[], b""), 405, "METHOD_NOT_ALLOWED"),
        (request("DELETE", REQUEUE_PATH, &[], b""), 405, "METHOD_NOT_ALLOWED"),
        (request("POST", BOOKING_PATH, &[("Content-Type", "text/plain")], &form()), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (request("POST", BOOKING_PATH, &[], &form()), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (request("POST", BOOKING_PATH, &[("Content-Type", "application/json")], &vec![b' '; MAX_BODY_BYTES + 1]), 413, "PAYLOAD_TOO_LARGE"),
        (request("POST", BOOKING_PATH, &[("Content-Type", "application/json"), ("Content-Length", "1048576")], b"{}"), 413, "PAYLOAD_TOO_LARGE"),
        (request("POST", "/api/patient-booking/book-v1", &[("Content-Type", "application/json")], &form()), 404, "NOT_FOUND"),
    ];
    for (request, status, code) in cases {
        let response = send(&store, &request);
        assert_eq!((response.status, json_body(&response)["code"].as_str().unwrap()), (status, code), "{} {}", request.method, request.path);
        assert!(response.header("x-request-id").is_some());
    }
    assert!(store.booked_with.borrow().is_empty(), "none of them reached the database");
    let method = send(&store, &request("PUT", BOOKING_PATH, &[], b""));
    assert_eq!(method.header("allow"), Some("POST, OPTIONS"));
}

#[test]
fn a_json_content_type_with_parameters_is_json() {
    let store = FakeStore::answering(Ok(booked()));
    let response = send(&store, &request("POST", BOOKING_PATH, &[("content-type", "application/json; charset=utf-8")], &form()));
    assert_eq!(response.status, 201);
}

#[test]
fn cors_is_granted_to_allowed_origins_only() {
    let store = FakeStore::default();
    let preflight = |origin| request("OPTIONS", BOOKING_PATH, &[("Origin", origin), ("Access-Control-Request-Method", "POST")], b"");
    let allowed = send(&store, &preflight("https://book.example.com"));
    assert_eq!(allowed.status, 204);
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://book.example.com"));
    assert!(allowed.header("access-control-allow-headers").unwrap().contains("Idempotency-Key"));
    assert!(allowed.header("access-control-allow-headers").unwrap().contains("CF-Turnstile-Response"));
    assert_eq!(allowed.body, "");
    let other = send(&store, &preflight("https://evil.example.net"));
    assert_eq!(other.status, 204);
    assert!(other.headers.iter().all(|(k, _)| !k.to_lowercase().starts_with("access-control")), "{:?}", other.headers);

    let booking = FakeStore::answering(Ok(booked()));
    let response = send(&booking, &request("POST", BOOKING_PATH, &[("Content-Type", "application/json"), ("Origin", "https://book.example.com")], &form()));
    assert_eq!(response.header("access-control-expose-headers"), Some("X-Request-Id, Idempotent-Replayed, Retry-After"));
}

#[test]
fn health_reports_the_database() {
    let healthy = send(&FakeStore::default(), &request("GET", HEALTH_PATH, &[], b""));
    assert_eq!((healthy.status, json_body(&healthy)), (200, json!({"status": "ok", "database": "ok"})));
    let down = send(&FakeStore { unhealthy: true, ..FakeStore::default() }, &request("GET", HEALTH_PATH, &[], b""));
    assert_eq!((down.status, json_body(&down)["database"].clone()), (503, json!("unavailable")));
}

#[test]
fn a_missing_setting_is_an_internal_error_that_names_nothing_to_the_client() {
    let broken: Result<Config, Vec<&'static str>> = Err(vec!["SUPABASE_SERVICE_ROLE_KEY"]);
    let request = request("POST", BOOKING_PATH, &[("Content-Type", "application/json")], &form());
    let request_id = RequestId::from_header(None);
    let response = block_on(handle::<FakeStore, FakeIntakeq>(&request, &request_id, &broken, None, None, &Open, &FixedClock)).response;
    let body = json_body(&response);
    assert_eq!((response.status, body["code"].as_str(), body["step"].as_str()), (500, Some("INTERNAL_ERROR"), Some("configuration")));
    assert!(!response.body.contains("SUPABASE_SERVICE_ROLE_KEY"));
}

#[test]
fn staff_routes_need_the_admin_token() {
    let store = FakeStore::default();
    for headers in [vec![], vec![("Authorization", "Bearer wrong-secret")], vec![("Authorization", "staff-secret")]] {
        let response = send(&store, &request("GET", SYNC_HEALTH_PATH, &headers, b""));
        assert_eq!((response.status, json_body(&response)["code"].clone()), (401, json!("UNAUTHORIZED")), "{headers:?}");
    }
    let health = send(&store, &request("GET", SYNC_HEALTH_PATH, &[("Authorization", "Bearer staff-secret")], b""));
    assert_eq!((health.status, json_body(&health)["data"].clone()), (200, json!({"pending_jobs": 0})));

    let body = json!({"appointmentId": "3ca6a61f-dbfb-4c18-9db1-3e0589df99e3"}).to_string();
    let requeued = send(&store, &request("POST", REQUEUE_PATH, &[("Authorization", "Bearer staff-secret")], body.as_bytes()));
    assert_eq!((requeued.status, json_body(&requeued)["data"]["syncStatus"].clone()), (200, json!("pending")));
    let bad = send(&store, &request("POST", REQUEUE_PATH, &[("Authorization", "Bearer staff-secret")], b"{}"));
    assert_eq!((bad.status, json_body(&bad)["fieldErrors"][0]["field"].clone()), (400, json!("appointmentId")));
}

#[test]
fn the_openapi_document_is_served_and_names_every_code_and_step() {
    let response = send(&FakeStore::default(), &request("GET", OPENAPI_PATH, &[], b""));
    assert_eq!(response.status, 200);
    let document = json_body(&response);
    assert_eq!(document["openapi"], "3.1.0");
    let listed = |schema: &str, field: &str| -> Vec<String> {
        document["components"]["schemas"][schema]["properties"][field]["enum"]
            .as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    let codes: Vec<String> = crate::booking::error::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed("Error", "code"), codes, "the document lists exactly the worker's error codes");
    let steps: Vec<String> = crate::booking::error::Step::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(listed("Error", "step"), steps, "and exactly its steps");
    for code in crate::booking::error::ErrorCode::ALL {
        let status = code.status().to_string();
        let documented = document["paths"].as_object().unwrap().values().flat_map(|p| p.as_object().unwrap().values())
            .any(|op| op["responses"][&status]["description"].as_str().is_some_and(|d| d.contains(&code.as_str())));
        assert!(documented || code == crate::booking::error::ErrorCode::NotFound, "{code:?} documented with status {status}");
    }
}

#[test]
fn a_requeue_names_one_job_or_a_time_never_both() {
    let store = FakeStore::default();
    let staff = [("Authorization", "Bearer staff-secret")];
    let post = |body: Value| send(&store, &request("POST", REQUEUE_PATH, &staff, body.to_string().as_bytes()));
    let since = post(json!({"deadSince": "2026-11-24T08:00:00Z"}));
    assert_eq!((since.status, json_body(&since)["data"]["requeued"].clone()), (200, json!(0)));
    for (body, field) in [
        (json!({"deadSince": "yesterday"}), "deadSince"),
        (json!({"appointmentId": "", "deadSince": "2000-01-01T00:00:00Z"}), "deadSince"),
        (json!({"appointmentId": 42}), "appointmentId"),
        (json!({}), "appointmentId"),
    ] {
        let refused = post(body.clone());
        assert_eq!((refused.status, json_body(&refused)["fieldErrors"][0]["field"].clone()), (400, json!(field)), "{body}");
    }
}

#[test]
fn an_intakeq_webhook_to_the_secret_path_is_kept_and_any_other_secret_is_an_unknown_path() {
    let store = FakeStore::default();
    let body = br#"{"EventType": "AppointmentCanceled", "ActionPerformedByClient": false, "Appointment": {"Id": "5f9a00000000000000000001"}}"#;
    let kept = send(&store, &request("POST", "/api/intakeq/webhooks/hook-secret-1", &[], body));
    assert_eq!((kept.status, &json_body(&kept)["data"]["duplicate"]), (200, &json!(false)));
    let again = send(&store, &request("POST", "/api/intakeq/webhooks/hook-secret-1", &[], body));
    assert_eq!(json_body(&again)["data"]["duplicate"], json!(true), "the same appointment again is folded in");

    for path in ["/api/intakeq/webhooks/hook-secret-2", "/api/intakeq/webhooks/", "/api/intakeq/webhooks/hook-secret-1x"] {
        for method in ["POST", "GET"] {
            let refused = send(&store, &request(method, path, &[], body));
            assert_eq!((refused.status, &json_body(&refused)["code"]), (404, &json!("NOT_FOUND")), "{method} {path}");
        }
    }
    assert_eq!(store.nudges.borrow().len(), 2, "only the two to the right secret were kept");
    for method in ["GET", "OPTIONS"] {
        let refused = send(&store, &request(method, "/api/intakeq/webhooks/hook-secret-1", &[], b""));
        assert_eq!((refused.status, refused.header("allow")), (405, Some("POST")), "{method}: server to server, POST only");
    }
    let malformed = send(&store, &request("POST", "/api/intakeq/webhooks/hook-secret-1", &[], b"{}"));
    assert_eq!((malformed.status, &json_body(&malformed)["code"]), (400, &json!("INVALID_REQUEST")));
}

#[test]
fn the_webhook_secret_never_reaches_a_log_line() {
    assert_eq!(loggable_path("/api/intakeq/webhooks/hook-secret-1"), "/api/intakeq/webhooks/[redacted]");
    assert_eq!(loggable_path("/api/patient-booking/book-v2"), "/api/patient-booking/book-v2");
}

const APPOINTMENT: &str = "3ca6a61f-dbfb-4c18-9db1-3e0589df99e3";
const OTHER_APPOINTMENT: &str = "3ca6a61f-dbfb-4c18-9db1-3e0589df99e4";

fn manage_token(appointment: &str) -> String {
    crate::support::manage_token::issue(&crate::support::secret::Secret::new("manage-secret"), appointment.parse().unwrap())
}

fn change(store: &FakeStore, action: &str, bearer: Option<&str>, body: &[u8]) -> HttpResponse {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(authorization.as_deref().map(|a| ("Authorization", a)));
    send(store, &request("POST", &format!("/api/patient-booking/appointments/{APPOINTMENT}/{action}"), &headers, body))
}

#[test]
fn a_booking_s_manage_token_the_partner_token_or_the_staff_token_may_change_it_and_nothing_else() {
    let store = FakeStore::default();
    let own = manage_token(APPOINTMENT);
    for (bearer, by) in [(own.as_str(), "patient"), ("partner-secret", "partner"), ("staff-secret", "staff")] {
        let response = change(&store, "cancel", Some(bearer), br#"{"reason": "Feeling better"}"#);
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(json_body(&response)["data"], json!({"appointmentId": APPOINTMENT, "status": "cancelled", "changed": true, "intakeq": "cancellation_queued"}));
        assert_eq!(store.changes.borrow().last().unwrap().2, by);
    }
    let others = manage_token(OTHER_APPOINTMENT);
    for bearer in [None, Some(others.as_str()), Some("m1.forged"), Some("hook-secret-1")] {
        let response = change(&store, "reschedule", bearer, br#"{"start": "2026-12-02T09:00:00-07:00"}"#);
        assert_eq!((response.status, json_body(&response)["code"].clone()), (403, json!("CHANGE_NOT_ALLOWED")), "{bearer:?}");
    }
    assert_eq!(store.changes.borrow().len(), 3, "nothing reached the database for a refused token");
}

#[test]
fn a_reschedule_answers_the_new_times_and_the_database_s_refusals_in_the_contract_s_shape() {
    let store = FakeStore::default();
    let own = manage_token(APPOINTMENT);
    let response = change(&store, "reschedule", Some(&own), br#"{"start": "2026-12-02T09:00:00-07:00"}"#);
    assert_eq!(response.status, 200);
    assert_eq!(json_body(&response)["data"]["start"], "2026-12-02T16:00:00Z");
    assert_eq!(store.changes.borrow()[0].1, "reschedule 2026-12-02T16:00:00Z");

    *store.change_refusal.borrow_mut() = Some(StoreError::Refused { code: ErrorCode::SlotTaken, step: Step::ConflictCheck, detail: None });
    let response = change(&store, "reschedule", Some(&own), br#"{"start": "2026-12-02T10:00:00-07:00"}"#);
    assert_eq!((response.status, json_body(&response)["code"].clone()), (409, json!("SLOT_TAKEN")));

    let response = change(&store, "reschedule", Some(&own), br#"{"start": "tomorrow"}"#);
    assert_eq!((response.status, json_body(&response)["fieldErrors"][0]["field"].clone()), (400, json!("start")));
    let response = send(&store, &request("POST", &format!("/api/patient-booking/appointments/{APPOINTMENT}/reschedule"),
                                         &[("Authorization", &format!("Bearer {own}"))], br#"{"start": "2026-12-02T10:00:00Z"}"#));
    assert_eq!(response.status, 415, "a reschedule is JSON");
    let response = send(&store, &request("GET", &format!("/api/patient-booking/appointments/{APPOINTMENT}/cancel"), &[], b""));
    assert_eq!(response.status, 405);
    let response = send(&store, &request("POST", "/api/patient-booking/appointments/not-an-id/cancel", &[], b""));
    assert_eq!(response.status, 404);
}

#[test]
fn the_per_address_limit_holds_for_manage_tokens_and_guesses_but_not_for_the_practice_s_tools() {
    let store = FakeStore::default();
    let gate = crate::testing::FakeGate { address_refused: true, ..Default::default() };
    let config = config();
    let change = |bearer: &str| {
        let authorization = format!("Bearer {bearer}");
        let request = request("POST", &format!("/api/patient-booking/appointments/{APPOINTMENT}/cancel"),
                              &[("Authorization", authorization.as_str()), ("CF-Connecting-IP", "203.0.113.9")], b"");
        let request_id = RequestId::from_header(None);
        let response = block_on(handle(&request, &request_id, &config, Some(&store), None::<&FakeIntakeq>, &gate, &FixedClock)).response;
        response
    };
    for bearer in [manage_token(APPOINTMENT), "m1.guess".to_owned()] {
        let response = change(&bearer);
        assert_eq!((response.status, response.header("retry-after")), (429, Some("60")), "{bearer}");
    }
    assert_eq!(change("staff-secret").status, 200, "staff are not limited");
    assert_eq!(change("partner-secret").status, 200, "nor the practice's tools");
    assert_eq!(*gate.addresses.borrow(), ["203.0.113.9", "203.0.113.9"], "counted by the client's address");
}
