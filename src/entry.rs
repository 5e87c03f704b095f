//! The Worker's entry points: a thin layer between workerd and `http::handle`.

use worker::{event, Context, Env, Headers, Request, Response, Result, ScheduleContext, ScheduledEvent};

use crate::config::Config;
use crate::http::{self, HttpRequest};
use crate::postgrest_store::PostgrestStore;
use crate::request_id::RequestId;
use crate::runtime::{install_logging, JsClock};

#[event(start)]
fn start() {
    install_logging();
}

#[event(fetch)]
async fn fetch(mut request: Request, env: Env, _context: Context) -> Result<Response> {
    let incoming = HttpRequest {
        method: request.method().to_string(),
        path: request.path(),
        headers: request.headers().entries().collect(),
        body: request.bytes().await.unwrap_or_default(),
    };
    let config = Config::from_lookup(|name| {
        env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string())).ok()
    });
    // The store is made per request: it sends this request's id upstream.
    let request_id = RequestId::from_header(incoming.header("x-request-id"));
    let store = config.as_ref().ok().map(|config| PostgrestStore::new(config, &request_id));
    let answer = http::handle(&incoming, &request_id, &config, store.as_ref(), &JsClock).await;

    let headers = Headers::new();
    for (name, value) in &answer.headers {
        headers.append(name, value)?;
    }
    let body = if answer.body.is_empty() { Response::empty()? } else { Response::from_bytes(answer.body.into_bytes())? };
    Ok(body.with_status(answer.status).with_headers(headers))
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, _env: Env, _context: ScheduleContext) {
    tracing::info!(step = "sync_runner", outcome = "skipped", reason = "the IntakeQ sync runner is not built yet");
}
