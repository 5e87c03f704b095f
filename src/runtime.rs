//! The Worker's entry points, a thin layer between workerd and the plain Rust: `fetch` hands the request to
//! `http::handle`, `scheduled` runs the sync's cron (`sync::runner`) and delivers staff alerts (`alerts`), `start` installs the log output. Also
//! what the core needs from workerd: the time (JavaScript's `Date`) and log lines through `console.log`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::channel::oneshot;
use futures::StreamExt;
use tracing_subscriber::prelude::*;
use worker::{event, Context, Env, Headers, Request, Response, Result, ScheduleContext, ScheduledEvent};

use crate::abuse::turnstile::Turnstile;
use crate::abuse::Gatekeeper;
use crate::alerts::{self, webhook::Webhook};
use crate::config::Config;
use crate::http::{self, HttpRequest};
use crate::inbound::catch_up::catch_up;
use crate::inbound::reread::reread_nudges;
use crate::intakeq::fetch::IntakeqFetch;
use crate::postgrest::client::PostgrestStore;
use crate::support::clock::Clock;
use crate::support::json_logs::JsonLines;
use crate::support::request_id::RequestId;
use crate::sync::runner::{run_once, RunnerSettings};

fn config(env: &Env) -> Result<Config, Vec<&'static str>> {
    Config::from_lookup(|name| {
        env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string())).ok()
    })
}

#[event(start)]
fn start() {
    install_logging();
}

#[event(fetch)]
async fn fetch(mut request: Request, env: Env, context: Context) -> Result<Response> {
    let incoming = HttpRequest {
        // From the JavaScript request: workers-rs reads a method it does not know (QUERY, say) as GET.
        method: request.inner().method().to_ascii_uppercase(),
        path: request.path(),
        headers: request.headers().entries().collect(),
        body: body_up_to(&mut request, http::MAX_BODY_BYTES + 1).await,
    };
    let config = config(&env);
    // The whole request runs under waitUntil, and its response comes back through a channel as soon as it is
    // ready: what goes on after it (a sync attempt past its budget) is kept alive until it ends.
    let (respond, response) = oneshot::channel();
    let gate = EdgeGate {
        limiter: env.rate_limiter("BOOKING_IP_LIMITER").ok(),
        turnstile: config.as_ref().ok().and_then(|c| {
            let secret = c.turnstile_secret_key.clone()?;
            Some(Turnstile::new(c.turnstile_verify_url.clone(), secret, Duration::from_secs(5)))
        }),
    };
    context.wait_until(async move {
        // The adapters are made per request: they send this request's id upstream.
        let request_id = RequestId::from_header(incoming.header("x-request-id"));
        let store = config.as_ref().ok().map(|config| PostgrestStore::new(config, &request_id));
        let intakeq = config.as_ref().ok().and_then(|c| c.intakeq.as_ref()).map(|s| IntakeqFetch::new(s, request_id.as_str()));
        let handled = http::handle(&incoming, &request_id, &config, store.as_ref(), intakeq.as_ref(), &gate, &JsClock).await;
        let _ = respond.send(handled.response);
        if let Some(rest) = handled.after_response {
            rest.await;
        }
    });
    let answer = response.await.map_err(|_| worker::Error::RustError("the request ended without a response".into()))?;

    let headers = Headers::new();
    for (name, value) in &answer.headers {
        headers.append(name, value)?;
    }
    let body = if answer.body.is_empty() { Response::empty()? } else { Response::from_bytes(answer.body.into_bytes())? };
    Ok(body.with_status(answer.status).with_headers(headers))
}

/// The request's body, read up to `limit` bytes and no further (a longer one is refused for its size without
/// the rest being read); empty when there is none or it cannot be read.
async fn body_up_to(request: &mut Request, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let Ok(mut stream) = request.stream() else { return body };
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= limit {
            body.truncate(limit);
            break;
        }
    }
    body
}

/// Drains the IntakeQ sync outbox, brings back what staff did in IntakeQ, and delivers staff alerts.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _context: ScheduleContext) {
    let runner = format!("cron-{}", uuid::Uuid::new_v4());
    let config = match config(&env) {
        Ok(config) => config,
        Err(missing) => return tracing::error!(step = "configuration", outcome = "failed", missing = ?missing, runner),
    };
    let runner_id = RequestId::from_header(Some(&runner));
    let store = PostgrestStore::new(&config, &runner_id);
    match &config.intakeq {
        None => tracing::error!(step = "sync_run", outcome = "skipped", reason = "INTAKEQ_API_KEY is not set", runner),
        Some(intakeq_settings) => {
            let intakeq = IntakeqFetch::new(intakeq_settings, &runner);
            let settings = RunnerSettings {
                batch_size: config.sync_batch_size,
                lease_seconds: config.sync_lease_seconds,
                attempt: config.attempt_settings(),
                // The cron comes every minute: a run waits for the budget until about the next one (a shortened
                // budget minute, in tests and benches, shortens it).
                run_for: Duration::from_millis(u64::from(config.intakeq_budget.minute_ms).min(60_000)),
            };
            if let Err(error) = run_once(&store, &intakeq, &JsClock, &runner, &settings).await {
                tracing::error!(step = "sync_claim", outcome = "failed", runner, debug = %error.debug());
            }
            // Then what staff did in IntakeQ: the nudges webhooks left, and now and then the whole window.
            let inbound = config.inbound_settings();
            match reread_nudges(&store, &intakeq, &runner, &inbound).await {
                Ok(summary) => tracing::info!(step = "intakeq_reread", outcome = "done", runner, applied = summary.applied,
                                              failed = summary.failed, out_of_budget = summary.out_of_budget),
                Err(error) => tracing::error!(step = "intakeq_reread", outcome = "failed", runner, debug = %error.debug()),
            }
            if let Err(error) = catch_up(&store, &intakeq, &JsClock, &runner, &inbound).await {
                tracing::error!(step = "intakeq_catch_up", outcome = "failed", runner, debug = %error.debug());
            }
        }
    }
    // After the sync, so that what this run caused goes out now.
    let webhook = config.staff_alert_webhook_url.clone().map(|url| Webhook::new(url, Duration::from_secs(10)));
    if let Err(error) = alerts::deliver(&store, webhook.as_ref(), &runner, config.sync_lease_seconds).await {
        tracing::error!(step = "staff_alert", outcome = "failed", runner, debug = %error.debug());
    }
}

/// The booking route's gate at the edge: workerd's rate limiting binding (`BOOKING_IP_LIMITER` in
/// wrangler.toml) per client address, and Turnstile's siteverify when TURNSTILE_SECRET_KEY is set.
struct EdgeGate {
    limiter: Option<worker::RateLimiter>,
    turnstile: Option<Turnstile>,
}

impl Gatekeeper for EdgeGate {
    async fn address_allowed(&self, address: &str) -> std::result::Result<bool, String> {
        let limiter = self.limiter.as_ref().ok_or("the BOOKING_IP_LIMITER binding is missing")?;
        limiter.limit(address.to_owned()).await.map(|outcome| outcome.success).map_err(|e| e.to_string())
    }

    async fn person_sent(&self, token: &str, address: Option<&str>) -> std::result::Result<bool, String> {
        self.turnstile.as_ref().ok_or("TURNSTILE_SECRET_KEY is not set")?.verify(token, address).await
    }
}

/// The time in workerd (`SystemTime` panics there).
struct JsClock;

impl Clock for JsClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default()
    }
}

/// Installs the log subscriber once per isolate.
fn install_logging() {
    let layer = JsonLines::new(|line| worker::console_log!("{}", line), || JsClock.rfc3339());
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
