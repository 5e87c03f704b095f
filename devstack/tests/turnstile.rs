//! The Turnstile stand-in as a site's server sees it: siteverify's verdicts for each secret and token, single-use
//! tokens, both body encodings, the recorded verifications, reset, and injected faults.

use std::time::Duration;

use devstack::turnstile::{self, TurnstileConfig, DUMMY_TOKEN};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "test-site-secret";

struct Turnstile {
    base: String,
    http: Client,
}

impl Turnstile {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = TurnstileConfig { secret: SECRET.into(), ..TurnstileConfig::default() };
        tokio::spawn(turnstile::serve(listener, config, std::future::pending()));
        Turnstile { base, http: Client::new() }
    }

    fn siteverify_url(&self) -> String {
        format!("{}/turnstile/v0/siteverify", self.base)
    }

    /// A form-urlencoded siteverify, as Cloudflare's examples send it.
    async fn post_form(&self, fields: &[(&str, &str)]) -> Response {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let request = self.http.post(self.siteverify_url()).header("content-type", "application/x-www-form-urlencoded");
        request.body(body).send().await.unwrap()
    }

    /// A form siteverify that must be answered 200; its JSON answer.
    async fn verify(&self, fields: &[(&str, &str)]) -> Value {
        let response = self.post_form(fields).await;
        assert_eq!(response.status(), StatusCode::OK, "{fields:?}");
        response.json().await.unwrap()
    }

    async fn verify_token(&self, token: &str) -> Value {
        self.verify(&[("secret", SECRET), ("response", token)]).await
    }

    async fn verifications(&self) -> Vec<Value> {
        let response = self.http.get(format!("{}/_turnstile/verifications", self.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap().as_array().unwrap().clone()
    }

    async fn fault(&self, fault: Value) {
        let response = self.http.post(format!("{}/_turnstile/faults", self.base)).json(&fault).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "fault accepted: {fault}");
    }
}

fn failed_with(code: &str) -> Value {
    json!({"success": false, "error-codes": [code]})
}

fn assert_passed(answer: &Value) {
    assert_eq!(answer["success"], json!(true), "{answer}");
    assert_eq!(answer["error-codes"], json!([]), "{answer}");
    assert_eq!(answer["hostname"], json!("localhost"), "{answer}");
    let at = chrono::DateTime::parse_from_rfc3339(answer["challenge_ts"].as_str().unwrap()).unwrap();
    assert!((chrono::Utc::now().timestamp_millis() - at.timestamp_millis()).abs() < 60_000, "{answer}");
    assert!(answer["action"].is_string() && answer["cdata"].is_string(), "{answer}");
}

#[tokio::test]
async fn a_pass_token_passes_once_then_is_timeout_or_duplicate() {
    let turnstile = Turnstile::start().await;
    assert_passed(&turnstile.verify_token("pass-1234").await);
    assert_eq!(turnstile.verify_token("pass-1234").await, failed_with("timeout-or-duplicate"));
    assert_eq!(turnstile.verify_token("pass-1234").await, failed_with("timeout-or-duplicate"), "still spent");
    assert_passed(&turnstile.verify_token("pass").await);
    assert_passed(&turnstile.verify_token("pass-5678").await);
}

#[tokio::test]
async fn the_dummy_token_passes_every_time() {
    let turnstile = Turnstile::start().await;
    for _ in 0..3 {
        assert_passed(&turnstile.verify_token(DUMMY_TOKEN).await);
    }
}

#[tokio::test]
async fn any_other_token_is_invalid_input_response() {
    let turnstile = Turnstile::start().await;
    let too_long = format!("pass-{}", "x".repeat(2044));
    for token in ["fail-1234", "xpass", "PASS-1", "XXXX.DUMMY.TOKEN.XXXY", too_long.as_str()] {
        assert_eq!(turnstile.verify_token(token).await, failed_with("invalid-input-response"), "{token}");
    }
    assert_passed(&turnstile.verify_token(&format!("pass-{}", "x".repeat(2043))).await);
}

#[tokio::test]
async fn a_wrong_or_missing_secret_fails_and_spends_nothing() {
    let turnstile = Turnstile::start().await;
    let wrong = turnstile.verify(&[("secret", "not-the-secret"), ("response", "pass-1")]).await;
    assert_eq!(wrong, failed_with("invalid-input-secret"));
    assert_eq!(turnstile.verify(&[("response", "pass-1")]).await, failed_with("missing-input-secret"));
    assert_eq!(turnstile.verify(&[("secret", ""), ("response", "pass-1")]).await, failed_with("missing-input-secret"));
    assert_eq!(turnstile.verify(&[]).await, failed_with("missing-input-secret"));
    assert_passed(&turnstile.verify_token("pass-1").await);
}

#[tokio::test]
async fn a_missing_response_is_missing_input_response() {
    let turnstile = Turnstile::start().await;
    assert_eq!(turnstile.verify(&[("secret", SECRET)]).await, failed_with("missing-input-response"));
    assert_eq!(turnstile.verify(&[("secret", SECRET), ("response", "")]).await, failed_with("missing-input-response"));
    let with_ip_only = turnstile.verify(&[("secret", SECRET), ("remoteip", "203.0.113.7")]).await;
    assert_eq!(with_ip_only, failed_with("missing-input-response"));
}

#[tokio::test]
async fn a_json_body_is_read_as_a_form_is() {
    let turnstile = Turnstile::start().await;
    let post = |body: Value| turnstile.http.post(turnstile.siteverify_url()).json(&body).send();
    let response = post(json!({"secret": SECRET, "response": "pass-json", "remoteip": "203.0.113.7"})).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_passed(&response.json().await.unwrap());
    let again = post(json!({"secret": SECRET, "response": "pass-json"})).await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap(), failed_with("timeout-or-duplicate"));
    let wrong = post(json!({"secret": "nope", "response": "pass-2"})).await.unwrap();
    assert_eq!(wrong.json::<Value>().await.unwrap(), failed_with("invalid-input-secret"));
    let no_response = post(json!({"secret": SECRET, "response": null})).await.unwrap();
    assert_eq!(no_response.json::<Value>().await.unwrap(), failed_with("missing-input-response"));

    for body in [json!({"secret": SECRET, "response": 5}), json!(["pass-3"])] {
        let response = post(body.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{body}");
        assert_eq!(response.json::<Value>().await.unwrap(), failed_with("bad-request"), "{body}");
    }
    let not_json = turnstile.http.post(turnstile.siteverify_url()).header("content-type", "application/json");
    let not_json = not_json.body("secret=x&response=pass-4").send().await.unwrap();
    assert_eq!(not_json.json::<Value>().await.unwrap(), failed_with("bad-request"));
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_gets_the_same_answer() {
    let turnstile = Turnstile::start().await;
    let first = turnstile.verify(&[("secret", SECRET), ("response", "pass-1"), ("idempotency_key", "key-a")]).await;
    assert_passed(&first);
    let retry = turnstile.verify(&[("secret", SECRET), ("response", "pass-1"), ("idempotency_key", "key-a")]).await;
    assert_eq!(retry, first, "the same answer, challenge_ts and all");
    let other_key = turnstile.verify(&[("secret", SECRET), ("response", "pass-1"), ("idempotency_key", "key-b")]).await;
    assert_eq!(other_key, failed_with("timeout-or-duplicate"));
    assert_eq!(turnstile.verify_token("pass-1").await, failed_with("timeout-or-duplicate"), "no key: a duplicate");
}

#[tokio::test]
async fn cloudflares_test_secret_keys_behave_as_documented() {
    let turnstile = Turnstile::start().await;
    for token in ["anything", "pass-1", DUMMY_TOKEN] {
        for _ in 0..2 {
            let passes = [("secret", "1x0000000000000000000000000000000AA"), ("response", token)];
            assert_passed(&turnstile.verify(&passes).await);
        }
        let fails = turnstile.verify(&[("secret", "2x0000000000000000000000000000000AA"), ("response", token)]).await;
        assert_eq!(fails, failed_with("invalid-input-response"), "{token}");
        let spent = turnstile.verify(&[("secret", "3x0000000000000000000000000000000AA"), ("response", token)]).await;
        assert_eq!(spent, failed_with("timeout-or-duplicate"), "{token}");
    }
    assert_passed(&turnstile.verify_token("pass-1").await);
    let no_token = turnstile.verify(&[("secret", "1x0000000000000000000000000000000AA")]).await;
    assert_eq!(no_token, failed_with("missing-input-response"));
}

#[tokio::test]
async fn verifications_are_recorded_newest_last_and_reset_forgets_them_and_the_spent_tokens() {
    let turnstile = Turnstile::start().await;
    turnstile.verify(&[("secret", SECRET), ("response", "pass-1"), ("remoteip", "203.0.113.7")]).await;
    turnstile.verify(&[("secret", SECRET), ("response", "pass-1"), ("idempotency_key", "k")]).await;
    turnstile.verify(&[("secret", "wrong"), ("response", "nope")]).await;
    turnstile.verify(&[("secret", SECRET)]).await;

    let recorded = turnstile.verifications().await;
    let summary: Vec<Value> = recorded
        .iter()
        .map(|v| {
            let result = &v["result"];
            json!([v["token"], v["remoteip"], v["idempotencyKey"], result["success"], result["error-codes"]])
        })
        .collect();
    assert_eq!(
        summary,
        [
            json!(["pass-1", "203.0.113.7", null, true, []]),
            json!(["pass-1", null, "k", false, ["timeout-or-duplicate"]]),
            json!(["nope", null, null, false, ["invalid-input-secret"]]),
            json!([null, null, null, false, ["missing-input-response"]]),
        ]
    );
    assert!(recorded[0]["result"]["challenge_ts"].is_string());
    let now = chrono::Utc::now().timestamp_millis();
    assert!(recorded.iter().all(|v| (now - v["at"].as_i64().unwrap()).abs() < 60_000), "{recorded:?}");
    assert!(recorded.iter().all(|v| !v.to_string().contains(SECRET)), "the secret is not recorded");

    turnstile.fault(json!({"fault": "server_error"})).await;
    let reset = turnstile.http.post(format!("{}/_turnstile/reset", turnstile.base)).send().await.unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert!(turnstile.verifications().await.is_empty(), "reset forgets the verifications");
    assert_passed(&turnstile.verify_token("pass-1").await);
}

#[tokio::test]
async fn a_server_error_fault_fails_its_count_of_verifications_then_they_succeed() {
    let turnstile = Turnstile::start().await;
    turnstile.fault(json!({"fault": "server_error", "count": 2})).await;
    for attempt in 1..=2 {
        let response = turnstile.post_form(&[("secret", SECRET), ("response", "pass-1")]).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "attempt {attempt}");
        assert_eq!(response.json::<Value>().await.unwrap(), failed_with("internal-error"));
    }
    assert!(turnstile.verifications().await.is_empty(), "failed verifications are not recorded");
    assert_passed(&turnstile.verify_token("pass-1").await);
    assert_eq!(turnstile.verifications().await.len(), 1, "the token was not spent by the faults");
}

#[tokio::test]
async fn a_hang_fault_keeps_the_caller_waiting_and_records_nothing() {
    let turnstile = Turnstile::start().await;
    turnstile.fault(json!({"fault": "hang", "delayMs": 1000})).await;
    let body = json!({"secret": SECRET, "response": "pass-1"});
    let impatient = turnstile.http.post(turnstile.siteverify_url()).json(&body);
    assert!(impatient.timeout(Duration::from_millis(300)).send().await.unwrap_err().is_timeout());
    assert!(turnstile.verifications().await.is_empty());
    assert_passed(&turnstile.verify_token("pass-1").await);
    assert_eq!(turnstile.verifications().await.len(), 1, "one verification only");
}

#[tokio::test]
async fn a_hang_fault_answers_504_after_its_delay() {
    let turnstile = Turnstile::start().await;
    turnstile.fault(json!({"fault": "hang", "delayMs": 200})).await;
    let started = std::time::Instant::now();
    let response = turnstile.post_form(&[("secret", SECRET), ("response", "pass-1")]).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_passed(&turnstile.verify_token("pass-1").await);
}

#[tokio::test]
async fn an_unknown_or_malformed_fault_is_refused() {
    let turnstile = Turnstile::start().await;
    for fault in [json!({"fault": "teapot"}), json!({"fault": "hang", "extra": 1}), json!({"count": 2})] {
        let request = turnstile.http.post(format!("{}/_turnstile/faults", turnstile.base)).json(&fault);
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{fault}");
    }
    assert_passed(&turnstile.verify_token("pass-1").await);
}

#[tokio::test]
async fn siteverify_takes_only_post() {
    let turnstile = Turnstile::start().await;
    let response = turnstile.http.get(turnstile.siteverify_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
