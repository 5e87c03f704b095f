//! A stand-in for a Slack-style incoming webhook, where staff alerts are posted. `POST /hooks/<anything>` with a
//! JSON body holding a string `text` is recorded and answered 200 `ok` (as Slack answers); any other body is a
//! 400. Under `/_receiver` a control API lists what was received, makes the next posts fail or hang, and resets.
//! Everything is held in memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct AlertReceiverConfig {
    /// How long a `hang` fault keeps the caller waiting when it names no `delayMs`.
    pub default_delay: Duration,
}

impl Default for AlertReceiverConfig {
    fn default() -> Self {
        AlertReceiverConfig { default_delay: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 500, nothing recorded.
    ServerError,
    /// Nothing recorded; the answer (a 504) comes only after `delayMs`, past the caller's timeout.
    Hang,
}

/// `POST /_receiver/faults`: the next `count` posts (default 1) get `fault`. Plans are used in the order made.
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

struct Receiver {
    config: AlertReceiverConfig,
    messages: Mutex<Vec<Value>>,
    faults: Mutex<Vec<FaultRequest>>,
}

impl Receiver {
    /// The fault the next post gets, if any, counted off its plan.
    fn take_fault(&self) -> Option<FaultRequest> {
        let mut faults = self.faults.lock().unwrap();
        let fault = faults.iter_mut().find(|f| f.count > 0)?;
        fault.count -= 1;
        let taken = fault.clone();
        faults.retain(|f| f.count > 0);
        Some(taken)
    }
}

pub async fn serve(
    listener: TcpListener,
    config: AlertReceiverConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config)).with_graceful_shutdown(shutdown).await
}

pub fn router(config: AlertReceiverConfig) -> Router {
    let receiver = Arc::new(Receiver { config, messages: Mutex::new(Vec::new()), faults: Mutex::new(Vec::new()) });
    let control = Router::new()
        .route("/messages", get(messages))
        .route("/faults", post(plan_fault))
        .route("/reset", post(reset));
    Router::new()
        .route("/hooks/{*hook}", post(receive))
        .nest("/_receiver", control)
        .with_state(receiver)
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// A post to a hook: a fault if one is planned, else the body is checked and recorded.
async fn receive(State(r): State<Arc<Receiver>>, OriginalUri(uri): OriginalUri, body: Bytes) -> Response {
    if let Some(fault) = r.take_fault() {
        return match fault.fault {
            FaultKind::ServerError => text(StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            FaultKind::Hang => {
                let delay = fault.delay_ms.map(Duration::from_millis).unwrap_or(r.config.default_delay);
                tokio::time::sleep(delay).await;
                text(StatusCode::GATEWAY_TIMEOUT, "timeout")
            }
        };
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return text(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    if !body.get("text").is_some_and(Value::is_string) {
        return text(StatusCode::BAD_REQUEST, "no_text");
    }
    let at = chrono::Utc::now().timestamp_millis();
    r.messages.lock().unwrap().push(json!({ "path": uri.path(), "body": body, "at": at }));
    text(StatusCode::OK, "ok")
}

/// Every post recorded, in order: `path`, `body` (the JSON posted) and `at` (Unix ms).
async fn messages(State(r): State<Arc<Receiver>>) -> Json<Value> {
    Json(Value::Array(r.messages.lock().unwrap().clone()))
}

async fn plan_fault(State(r): State<Arc<Receiver>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRequest>(&body) {
        Ok(request) => {
            r.faults.lock().unwrap().push(request);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({ "error": error.to_string() }))).into_response(),
    }
}

/// Forgets the messages and the planned faults.
async fn reset(State(r): State<Arc<Receiver>>) -> StatusCode {
    r.messages.lock().unwrap().clear();
    r.faults.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_used_in_order_for_their_count() {
        let receiver = Receiver {
            config: AlertReceiverConfig::default(),
            messages: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
        };
        for request in [json!({"fault": "server_error", "count": 2}), json!({"fault": "hang", "delayMs": 5})] {
            receiver.faults.lock().unwrap().push(serde_json::from_value(request).unwrap());
        }
        let taken: Vec<Option<FaultKind>> = (0..4).map(|_| receiver.take_fault().map(|f| f.fault)).collect();
        assert_eq!(taken, [Some(FaultKind::ServerError), Some(FaultKind::ServerError), Some(FaultKind::Hang), None]);
    }

    #[test]
    fn a_fault_request_needs_a_known_fault() {
        assert!(serde_json::from_value::<FaultRequest>(json!({"fault": "teapot"})).is_err());
        assert!(serde_json::from_value::<FaultRequest>(json!({"fault": "hang", "extra": 1})).is_err());
        let request: FaultRequest = serde_json::from_value(json!({"fault": "hang"})).unwrap();
        assert_eq!((request.fault, request.count, request.delay_ms), (FaultKind::Hang, 1, None));
    }
}
