//! A stand-in for Cloudflare Turnstile's siteverify endpoint. `POST /turnstile/v0/siteverify` takes the fields
//! Cloudflare takes (`secret`, `response`, optional `remoteip` and `idempotency_key`), form-urlencoded or JSON, and
//! answers Cloudflare's JSON: a token starting with `pass` passes once (a second verification is
//! `timeout-or-duplicate`), the test sites' dummy token passes every time, anything else is
//! `invalid-input-response`. Cloudflare's three test secret keys behave as documented. Under `/_turnstile` a
//! control API lists the verifications, makes the next ones fail or hang, and resets. Everything is held in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The secret the stand-in accepts unless told otherwise.
pub const DEFAULT_SECRET: &str = "local-turnstile-secret";
/// The token Cloudflare's test site keys produce. It passes every time: it is never spent.
pub const DUMMY_TOKEN: &str = "XXXX.DUMMY.TOKEN.XXXX";
/// Cloudflare's test secret key that always passes.
pub const TEST_SECRET_ALWAYS_PASSES: &str = "1x0000000000000000000000000000000AA";
/// Cloudflare's test secret key that always fails (`invalid-input-response`).
pub const TEST_SECRET_ALWAYS_FAILS: &str = "2x0000000000000000000000000000000AA";
/// Cloudflare's test secret key that always answers "token already spent" (`timeout-or-duplicate`).
pub const TEST_SECRET_TOKEN_SPENT: &str = "3x0000000000000000000000000000000AA";
/// Turnstile tokens are at most this many characters; a longer one is `invalid-input-response`.
pub const MAX_TOKEN_LEN: usize = 2048;

#[derive(Debug, Clone)]
pub struct TurnstileConfig {
    /// The site's secret key: any other `secret` (but Cloudflare's test secrets) is `invalid-input-secret`.
    pub secret: String,
    /// The `hostname` a passing answer names (where the widget was solved).
    pub hostname: String,
    /// How long a `hang` fault keeps the caller waiting when it names no `delayMs`.
    pub default_delay: Duration,
}

impl Default for TurnstileConfig {
    fn default() -> Self {
        TurnstileConfig {
            secret: DEFAULT_SECRET.to_string(),
            hostname: "localhost".to_string(),
            default_delay: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 500 `internal-error`, nothing recorded, no token spent.
    ServerError,
    /// Nothing recorded, no token spent; the answer (a 504) comes only after `delayMs`, past the caller's timeout.
    Hang,
}

/// `POST /_turnstile/faults`: the next `count` verifications (default 1) get `fault`. Plans are used in the order
/// made.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRequest {
    pub fault: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
    pub delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

/// The fields of a siteverify request, as Cloudflare names them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields {
    secret: Option<String>,
    response: Option<String>,
    remoteip: Option<String>,
    idempotency_key: Option<String>,
}

/// A token that passed: the answer given, and the idempotency key it was verified with (a retry with the same key
/// gets the same answer again).
struct Spent {
    idempotency_key: Option<String>,
    answer: Value,
}

#[derive(Default)]
struct Ledger {
    verifications: Vec<Value>,
    spent: HashMap<String, Spent>,
    faults: Vec<FaultRequest>,
}

impl Ledger {
    /// The fault the next verification gets, if any, counted off its plan.
    fn take_fault(&mut self) -> Option<FaultRequest> {
        let fault = self.faults.iter_mut().find(|f| f.count > 0)?;
        fault.count -= 1;
        let taken = fault.clone();
        self.faults.retain(|f| f.count > 0);
        Some(taken)
    }
}

struct Turnstile {
    config: TurnstileConfig,
    ledger: Mutex<Ledger>,
}

pub async fn serve(
    listener: TcpListener,
    config: TurnstileConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config)).with_graceful_shutdown(shutdown).await
}

pub fn router(config: TurnstileConfig) -> Router {
    let turnstile = Arc::new(Turnstile { config, ledger: Mutex::new(Ledger::default()) });
    let control = Router::new()
        .route("/verifications", get(verifications))
        .route("/faults", post(plan_fault))
        .route("/reset", post(reset));
    Router::new()
        .route("/turnstile/v0/siteverify", post(siteverify))
        .nest("/_turnstile", control)
        .with_state(turnstile)
}

fn failure(codes: &[&str]) -> Value {
    json!({ "success": false, "error-codes": codes })
}

/// Reads the body as JSON when the content type says so, else as a form. `None` when it cannot be read.
fn parse_fields(headers: &HeaderMap, body: &[u8]) -> Option<Fields> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"));
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    if is_json {
        let Value::Object(object) = serde_json::from_slice::<Value>(body).ok()? else {
            return None;
        };
        let field = |name: &str| -> Result<Option<String>, ()> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(non_empty(Some(s.clone()))),
                Some(_) => Err(()),
            }
        };
        Some(Fields {
            secret: field("secret").ok()?,
            response: field("response").ok()?,
            remoteip: field("remoteip").ok()?,
            idempotency_key: field("idempotency_key").ok()?,
        })
    } else {
        let mut fields = Fields::default();
        for (name, value) in form_urlencoded::parse(body) {
            let slot = match name.as_ref() {
                "secret" => &mut fields.secret,
                "response" => &mut fields.response,
                "remoteip" => &mut fields.remoteip,
                "idempotency_key" => &mut fields.idempotency_key,
                _ => continue,
            };
            if slot.is_none() {
                *slot = non_empty(Some(value.into_owned()));
            }
        }
        Some(fields)
    }
}

impl Turnstile {
    fn passed(&self) -> Value {
        let challenge_ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        json!({
            "success": true,
            "error-codes": [],
            "challenge_ts": challenge_ts,
            "hostname": self.config.hostname,
            "action": "",
            "cdata": "",
        })
    }

    /// Cloudflare's verdict on one request, spending the token if it passes.
    fn verdict(&self, ledger: &mut Ledger, fields: &Fields) -> Value {
        let secret = match fields.secret.as_deref() {
            None => return failure(&["missing-input-secret"]),
            Some(secret) => secret,
        };
        let test_secrets = [TEST_SECRET_ALWAYS_PASSES, TEST_SECRET_ALWAYS_FAILS, TEST_SECRET_TOKEN_SPENT];
        let test_secret = test_secrets.contains(&secret);
        if secret != self.config.secret && !test_secret {
            return failure(&["invalid-input-secret"]);
        }
        let Some(token) = fields.response.as_deref() else {
            return failure(&["missing-input-response"]);
        };
        match secret {
            TEST_SECRET_ALWAYS_PASSES => return self.passed(),
            TEST_SECRET_ALWAYS_FAILS => return failure(&["invalid-input-response"]),
            TEST_SECRET_TOKEN_SPENT => return failure(&["timeout-or-duplicate"]),
            _ => {}
        }
        if token == DUMMY_TOKEN {
            return self.passed();
        }
        if !token.starts_with("pass") || token.len() > MAX_TOKEN_LEN {
            return failure(&["invalid-input-response"]);
        }
        if let Some(spent) = ledger.spent.get(token) {
            return match (&spent.idempotency_key, &fields.idempotency_key) {
                (Some(then), Some(now)) if then == now => spent.answer.clone(),
                _ => failure(&["timeout-or-duplicate"]),
            };
        }
        let answer = self.passed();
        let spent = Spent { idempotency_key: fields.idempotency_key.clone(), answer: answer.clone() };
        ledger.spent.insert(token.to_string(), spent);
        answer
    }
}

/// A verification: a fault if one is planned, else Cloudflare's verdict, recorded. Verdicts are answered 200, as
/// Cloudflare answers them, `success` saying whether the token passed.
async fn siteverify(State(t): State<Arc<Turnstile>>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = t.ledger.lock().unwrap().take_fault();
    if let Some(fault) = fault {
        return match fault.fault {
            FaultKind::ServerError => {
                (StatusCode::INTERNAL_SERVER_ERROR, Json(failure(&["internal-error"]))).into_response()
            }
            FaultKind::Hang => {
                let delay = fault.delay_ms.map(Duration::from_millis).unwrap_or(t.config.default_delay);
                tokio::time::sleep(delay).await;
                (StatusCode::GATEWAY_TIMEOUT, Json(failure(&["internal-error"]))).into_response()
            }
        };
    }
    let fields = parse_fields(&headers, &body);
    let mut ledger = t.ledger.lock().unwrap();
    let answer = match &fields {
        Some(fields) => t.verdict(&mut ledger, fields),
        None => failure(&["bad-request"]),
    };
    let fields = fields.unwrap_or_default();
    let at = chrono::Utc::now().timestamp_millis();
    ledger.verifications.push(json!({
        "token": fields.response,
        "remoteip": fields.remoteip,
        "idempotencyKey": fields.idempotency_key,
        "result": answer,
        "at": at,
    }));
    (StatusCode::OK, Json(answer)).into_response()
}

/// Every verification answered, in order (newest last): `token`, `remoteip`, `idempotencyKey` (each null when not
/// sent), `result` (the answer given) and `at` (Unix ms).
async fn verifications(State(t): State<Arc<Turnstile>>) -> Json<Value> {
    Json(Value::Array(t.ledger.lock().unwrap().verifications.clone()))
}

async fn plan_fault(State(t): State<Arc<Turnstile>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRequest>(&body) {
        Ok(request) => {
            t.ledger.lock().unwrap().faults.push(request);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({ "error": error.to_string() }))).into_response(),
    }
}

/// Forgets the verifications, the spent tokens and the planned faults.
async fn reset(State(t): State<Arc<Turnstile>>) -> StatusCode {
    *t.ledger.lock().unwrap() = Ledger::default();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        headers
    }

    fn json_type() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        headers
    }

    #[test]
    fn faults_are_used_in_order_for_their_count() {
        let mut ledger = Ledger::default();
        for request in [json!({"fault": "server_error", "count": 2}), json!({"fault": "hang", "delayMs": 5})] {
            ledger.faults.push(serde_json::from_value(request).unwrap());
        }
        let taken: Vec<Option<FaultKind>> = (0..4).map(|_| ledger.take_fault().map(|f| f.fault)).collect();
        assert_eq!(taken, [Some(FaultKind::ServerError), Some(FaultKind::ServerError), Some(FaultKind::Hang), None]);
    }

    #[test]
    fn form_fields_are_read_first_one_winning_and_empty_ones_missing() {
        let fields = parse_fields(&form(), b"secret=s&response=pass-1&response=pass-2&remoteip=&extra=1").unwrap();
        let expected =
            Fields { secret: Some("s".into()), response: Some("pass-1".into()), remoteip: None, idempotency_key: None };
        assert_eq!(fields, expected);
        let untyped = parse_fields(&HeaderMap::new(), b"secret=s").unwrap();
        assert_eq!(untyped.secret.as_deref(), Some("s"), "no content type: a form");
    }

    #[test]
    fn json_fields_must_be_strings_or_null_in_an_object() {
        let fields = parse_fields(&json_type(), br#"{"secret": "s", "response": "t", "remoteip": null}"#).unwrap();
        let read = (fields.secret.as_deref(), fields.response.as_deref(), fields.remoteip);
        assert_eq!(read, (Some("s"), Some("t"), None));
        assert!(parse_fields(&json_type(), br#"{"secret": 5}"#).is_none());
        assert!(parse_fields(&json_type(), br#"["secret"]"#).is_none());
        assert!(parse_fields(&json_type(), b"secret=s").is_none());
    }
}
