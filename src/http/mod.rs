//! The worker's HTTP surface, independent of the runtime: routes, CORS, the request id header, content
//! type and size limits, and turning answers into responses.
//!
//!   POST /api/patient-booking/book-v2              a booking (booking_route)
//!   GET  /health                                   the database, through an RPC
//!   GET  /api/patient-booking/sync-health          staff: the IntakeQ sync's state (bearer ADMIN_TOKEN; staff)
//!   POST /api/patient-booking/sync-jobs/requeue    staff: {"appointmentId"} puts a dead sync job back (staff)
//!   GET  /openapi.json                             the OpenAPI document (openapi.json in the repository)
//!   POST /api/patient-booking/appointments/<id>/cancel       a booking cancelled (manage_route; bearer: the
//!   POST /api/patient-booking/appointments/<id>/reschedule   booking's manage token, the partner or staff token)
//!   POST /api/intakeq/webhooks/<secret>            IntakeQ's appointment webhooks (webhook_route); a wrong
//!                                                  secret is 404, and the path is never logged
//!   OPTIONS on any route                           CORS preflight, for origins in ALLOWED_ORIGINS only
//! Another method on a known route is 405 with `Allow`.

mod answer;
pub mod booking_route;
mod manage_route;
mod staff;
mod webhook_route;

use std::time::Duration;

use futures::future::LocalBoxFuture;
use serde_json::{json, Value};
use tracing::{info, warn, Instrument};

use answer::{Answer, Answered};
use booking_route::FlowSettings;
use crate::abuse::{AttemptStore, Gatekeeper};
use crate::inbound::InboundStore;
use crate::booking::change::ChangeStore;
use crate::booking::error::{BookingError, ErrorCode, Step};
use crate::booking::store::BookingStore;
use crate::config::Config;
use crate::intakeq::Intakeq;
use crate::support::clock::Clock;
use crate::support::request_id::RequestId;
use crate::support::secret::Secret;
use crate::sync::record::AttemptSettings;
use crate::sync::store::SyncStore;

pub const BOOKING_PATH: &str = "/api/patient-booking/book-v2";
pub const HEALTH_PATH: &str = "/health";
pub const SYNC_HEALTH_PATH: &str = "/api/patient-booking/sync-health";
pub const REQUEUE_PATH: &str = "/api/patient-booking/sync-jobs/requeue";
pub const OPENAPI_PATH: &str = "/openapi.json";
/// IntakeQ's webhooks come to this prefix followed by INTAKEQ_WEBHOOK_SECRET.
pub const WEBHOOK_PREFIX: &str = "/api/intakeq/webhooks/";
/// The OpenAPI 3.1 document of these routes.
pub const OPENAPI_DOCUMENT: &str = include_str!("../../openapi.json");

/// The methods a known route answers (OPTIONS included), or `None` for an unknown path.
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        BOOKING_PATH | REQUEUE_PATH => Some("POST, OPTIONS"),
        HEALTH_PATH | OPENAPI_PATH | SYNC_HEALTH_PATH => Some("GET, OPTIONS"),
        _ if manage_route::parse_path(path).is_some() => Some("POST, OPTIONS"),
        _ => None,
    }
}
/// How long workerd lets a request's work go on after its answer (`waitUntil`); counted from the sync attempt's
/// start, which comes before the answer, so it is on the safe side.
const AFTER_ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// The largest booking body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Header names in any case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Empty for 204.
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A request handled: the response, and work that must go on after it has been sent (a booking's first sync
/// attempt past its budget; the runtime keeps it alive).
pub struct Handled<'a> {
    pub response: HttpResponse,
    pub after_response: Option<LocalBoxFuture<'a, ()>>,
}

/// Handles one request under `request_id` (see `RequestId::from_header`). `store` is `None` when the
/// configuration is unusable (`config` then says why); `intakeq` when IntakeQ is not configured.
pub async fn handle<'a, S: BookingStore + SyncStore + AttemptStore + InboundStore + ChangeStore, Q: Intakeq>(
    request: &'a HttpRequest,
    request_id: &'a RequestId,
    config: &'a Result<Config, Vec<&'static str>>,
    store: Option<&'a S>,
    intakeq: Option<&'a Q>,
    gate: &impl Gatekeeper,
    clock: &'a impl Clock,
) -> Handled<'a> {
    let span = tracing::info_span!("request", request_id = %request_id.as_str());
    async {
        info!(step = "request", outcome = "started", method = %request.method, path = %loggable_path(&request.path));
        let allowed_origin = request
            .header("origin")
            .filter(|origin| config.as_ref().is_ok_and(|c| c.allowed_origins.iter().any(|o| o == origin)));
        let Answered { answer, after_answer } = route(request, config, store, intakeq, gate, clock, request_id).await;
        info!(step = "request", outcome = "answered", status = answer.status);
        Handled { response: respond(answer, request_id, allowed_origin, request.method == "OPTIONS"), after_response: after_answer }
    }
    .instrument(span)
    .await
}

async fn route<'a, S: BookingStore + SyncStore + AttemptStore + InboundStore + ChangeStore, Q: Intakeq>(
    request: &'a HttpRequest,
    config: &'a Result<Config, Vec<&'static str>>,
    store: Option<&'a S>,
    intakeq: Option<&'a Q>,
    gate: &impl Gatekeeper,
    clock: &'a impl Clock,
    request_id: &'a RequestId,
) -> Answered<'a> {
    let expose_debug = config.as_ref().is_ok_and(|c| c.expose_error_debug);
    let fail = |code, step| Answer::error(&BookingError::new(code, step), request_id, clock, expose_debug).into();
    // IntakeQ's webhook route is its secret: a wrong one (or none configured) is an unknown path, whatever the
    // method. It is server to server: POST only, no CORS preflight.
    let allowed = match request.path.strip_prefix(WEBHOOK_PREFIX) {
        Some(secret) => config.as_ref().ok().and_then(|c| c.intakeq_webhook_secret.as_ref())
            .filter(|expected| expected.matches(secret))
            .map(|_| "POST"),
        None => allowed_methods(&request.path),
    };
    let Some(allowed) = allowed else {
        return fail(ErrorCode::NotFound, Step::Routing);
    };
    if request.method == "OPTIONS" && allowed.contains("OPTIONS") {
        return Answer { status: 204, headers: Vec::new(), body: Value::Null }.into();
    }
    if !allowed.split(", ").any(|m| m == request.method) {
        let mut answer = Answer::error(&BookingError::new(ErrorCode::MethodNotAllowed, Step::RequestValidation), request_id, clock, expose_debug);
        answer.headers.push(("Allow", allowed.into()));
        return answer.into();
    }
    if request.path == OPENAPI_PATH {
        return Answer { status: 200, headers: Vec::new(), body: serde_json::from_str(OPENAPI_DOCUMENT).unwrap_or(Value::Null) }.into();
    }
    let (config, store) = match (config, store) {
        (Ok(config), Some(store)) => (config, store),
        (Err(missing), _) => {
            tracing::error!(step = "configuration", outcome = "failed", missing = ?missing);
            return fail(ErrorCode::InternalError, Step::Configuration);
        }
        (Ok(_), None) => return fail(ErrorCode::InternalError, Step::Configuration),
    };
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", path) if path.starts_with(WEBHOOK_PREFIX) => {
            webhook_route::receive(store, request, request_id, clock, config.expose_error_debug).await.into()
        }
        ("POST", BOOKING_PATH) => {
            if !is_json(request) {
                warn!(step = "request_validation", outcome = "rejected", code = "UNSUPPORTED_MEDIA_TYPE");
                return fail(ErrorCode::UnsupportedMediaType, Step::RequestValidation);
            }
            let declared = request.header("content-length").and_then(|l| l.trim().parse::<usize>().ok()).unwrap_or(0);
            if request.body.len() > MAX_BODY_BYTES || declared > MAX_BODY_BYTES {
                warn!(step = "request_validation", outcome = "rejected", code = "PAYLOAD_TOO_LARGE", bytes = request.body.len());
                return fail(ErrorCode::PayloadTooLarge, Step::RequestValidation);
            }
            let settings = FlowSettings {
                expose_error_debug: config.expose_error_debug,
                sync_lease_seconds: config.sync_lease_seconds,
                // workerd keeps work going after the answer for about 30 s: the attempt plans for that.
                sync_attempt: AttemptSettings { runtime_limit: Some(AFTER_ANSWER_LIMIT), ..config.attempt_settings() },
                inline_sync_budget: Duration::from_millis(config.inline_sync_budget_ms),
                trusted_caller: bearer_is(request, config.partner_api_token.as_ref()),
                // Within the database call's own limit.
                booking_wait_ms: config.database_timeout_ms.saturating_sub(1_000).max(100),
                abuse: config.abuse,
                client_address: request.header("cf-connecting-ip").map(|a| a.trim().to_owned()),
                turnstile_header: request.header("cf-turnstile-response").map(str::to_owned),
                manage_token_secret: config.manage_token_secret.clone(),
            };
            let idempotency_key = request.header("idempotency-key");
            booking_route::book(store, intakeq, gate, clock, request_id, &request.body, idempotency_key, &settings).await
        }
        ("GET", HEALTH_PATH) => match store.health().await {
            Ok(()) => Answer { status: 200, headers: Vec::new(), body: json!({"status": "ok", "database": "ok"}) }.into(),
            Err(error) => {
                warn!(step = "health", outcome = "failed", debug = %error.debug());
                Answer { status: 503, headers: Vec::new(), body: json!({"status": "unavailable", "database": "unavailable"}) }.into()
            }
        },
        ("GET", SYNC_HEALTH_PATH) | ("POST", REQUEUE_PATH) => staff::route(request, config, store, clock, request_id).await.into(),
        ("POST", path) => match manage_route::parse_path(path) {
            Some(target) => manage_route::change(store, gate, request, config, clock, request_id, target).await.into(),
            None => fail(ErrorCode::NotFound, Step::Routing),
        },
        _ => fail(ErrorCode::NotFound, Step::Routing),
    }
}

/// The path as logs may show it: the webhook route's secret segment is never written anywhere.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix(WEBHOOK_PREFIX) {
        Some(_) => format!("{WEBHOOK_PREFIX}[redacted]").into(),
        None => path.into(),
    }
}

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer(request: &HttpRequest) -> Option<&str> {
    request.header("authorization").and_then(|h| h.strip_prefix("Bearer "))
}

/// `Authorization: Bearer <expected>`, compared in constant time; never when no token is configured.
fn bearer_is(request: &HttpRequest, expected: Option<&Secret>) -> bool {
    matches!((expected, bearer(request)), (Some(expected), Some(given)) if expected.matches(given))
}

/// The body is declared JSON (`Content-Type: application/json`, any parameters).
fn is_json(request: &HttpRequest) -> bool {
    request.header("content-type").is_some_and(|t| {
        t.split(';').next().is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    })
}

fn respond(answer: Answer, request_id: &RequestId, allowed_origin: Option<&str>, preflight: bool) -> HttpResponse {
    let mut headers = vec![("X-Request-Id".to_owned(), request_id.as_str().to_owned())];
    headers.extend(answer.headers.into_iter().map(|(k, v)| (k.to_owned(), v)));
    if let Some(origin) = allowed_origin {
        headers.push(("Access-Control-Allow-Origin".into(), origin.to_owned()));
        headers.push(("Vary".into(), "Origin".into()));
        if preflight {
            headers.push(("Access-Control-Allow-Methods".into(), "POST, GET, OPTIONS".into()));
            headers.push(("Access-Control-Allow-Headers".into(), "Content-Type, X-Request-Id, Idempotency-Key, CF-Turnstile-Response, Authorization".into()));
            headers.push(("Access-Control-Max-Age".into(), "600".into()));
        } else {
            headers.push(("Access-Control-Expose-Headers".into(), "X-Request-Id, Idempotent-Replayed, Retry-After".into()));
        }
    }
    let body = if answer.status == 204 {
        String::new()
    } else {
        headers.push(("Content-Type".into(), "application/json; charset=utf-8".into()));
        answer.body.to_string()
    };
    HttpResponse { status: answer.status, headers, body }
}

#[cfg(test)]
mod tests;
