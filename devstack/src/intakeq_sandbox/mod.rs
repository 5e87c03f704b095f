//! A sandbox of IntakeQ's API on `/api/v1`, following `docs/intakeq.md`: the client and appointment endpoints
//! the sync uses, sending intake questionnaires and listing their summaries, `X-Auth-Key`, the per-minute and
//! per-day rate limits (over a minute whose length is configurable, so tests can speed it up), in-memory state,
//! and IntakeQ-shaped ids, timestamps and errors. Under `/_sandbox` (a path IntakeQ does not have) a control API
//! lets tests inject faults, read back everything held and how many calls came and were rate limited, change the
//! rate limit, submit a sent intake as its client would, act as a staff member working in IntakeQ (book, cancel,
//! reschedule), send IntakeQ's appointment webhooks to a URL (with lost, repeated and held-back deliveries), and
//! reset.
//!
//! The practice has a time zone (`SandboxConfig::practice_time_zone`): `GET /appointments` and
//! `GET /intakes/summary` read their `startDate`/`endDate` as dates there, and appointments carry
//! `StartDateLocal` in it.

pub mod faults;
pub mod practice;
pub mod records;
pub mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub use chrono_tz::Tz;

use faults::{FaultKind, FaultRequest, Faults, RateLimit};
use practice::Settings;
use records::{
    AppointmentInput, AppointmentQuery, ClientInput, IntakeInput, IntakeQuery, Records, Rejection, StaffAppointmentInput,
    StaffRefusal, APPOINTMENT_NOT_FOUND,
};
use webhooks::{Event, Origin, Webhooks};

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The `X-Auth-Key` the sandbox accepts.
    pub api_key: String,
    pub rate_limit_per_minute: u32,
    /// How long `hang`, `succeed_late` and `slow` keep the caller waiting when the fault names no `delayMs`.
    pub default_delay: Duration,
    /// The practice's time zone: `GET /appointments` reads `startDate`/`endDate` as dates in it.
    pub practice_time_zone: Tz,
}

/// The practice's time zone unless told otherwise (`INTAKEQ_SANDBOX_TIME_ZONE`).
pub const DEFAULT_PRACTICE_TIME_ZONE: Tz = chrono_tz::America::Denver;

/// The rate limit's start values beyond `SandboxConfig::rate_limit_per_minute` (kept apart so that code building a
/// `SandboxConfig` needs no change): the daily limit, and how long the sandbox's minute lasts. `serve` and `router`
/// use the default, IntakeQ's: 500 a day, a real minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests in any sliding day, a day being `faults::MINUTES_PER_DAY` of the sandbox's minutes.
    pub per_day: u32,
    /// How long the sandbox's minute lasts (at least 1 ms). Shorter than 60 s, the clock runs fast: with 3 s, a
    /// place under the per-minute limit frees 3 s after each request, and the day lasts 72 minutes.
    pub minute: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { per_day: DEFAULT_RATE_LIMIT_PER_DAY, minute: Duration::from_secs(60) }
    }
}

/// IntakeQ's daily limit on a standard subscription.
pub const DEFAULT_RATE_LIMIT_PER_DAY: u32 = 500;

struct Sandbox {
    config: SandboxConfig,
    rate_limit_config: RateLimitConfig,
    settings: Settings,
    records: Mutex<Records>,
    faults: Mutex<Faults>,
    rate_limit: Mutex<RateLimit>,
    requests: Mutex<Vec<Value>>,
    /// API calls since the last reset, and how many of them the rate limit answered 429.
    calls: AtomicU64,
    rate_limited: AtomicU64,
    /// Where appointment changes are posted, and every delivery's fate. Locked after `records` when both are.
    webhooks: Mutex<Webhooks>,
    /// Held while posting webhooks, so that they go out one at a time, in order.
    delivery_turn: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

tokio::task_local! {
    /// The request log's entry for the call being served (set by `log_request` around the call).
    static LOG_ENTRY: usize;
}

/// What the gate in front of every endpoint decided.
enum Gate {
    Proceed { answer_after: Option<Duration> },
    Answer(Response),
}

pub async fn serve(
    listener: TcpListener,
    config: SandboxConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_rate_limit(listener, config, RateLimitConfig::default(), shutdown).await
}

/// `serve`, with the daily limit and the minute's length given.
pub async fn serve_with_rate_limit(
    listener: TcpListener,
    config: SandboxConfig,
    rate_limit: RateLimitConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router_with_rate_limit(config, rate_limit)).with_graceful_shutdown(shutdown).await
}

pub fn router(config: SandboxConfig) -> Router {
    router_with_rate_limit(config, RateLimitConfig::default())
}

/// `router`, with the daily limit and the minute's length given. Panics on a minute shorter than 1 ms.
pub fn router_with_rate_limit(config: SandboxConfig, rate_limit: RateLimitConfig) -> Router {
    assert!(rate_limit.minute >= Duration::from_millis(1), "the sandbox's minute lasts at least 1 ms");
    let sandbox = Arc::new(Sandbox {
        rate_limit: Mutex::new(RateLimit::new(config.rate_limit_per_minute, rate_limit.per_day, rate_limit.minute)),
        rate_limit_config: rate_limit,
        settings: practice::demo_practice(config.practice_time_zone),
        config,
        records: Mutex::new(Records::default()),
        faults: Mutex::new(Faults::default()),
        requests: Mutex::new(Vec::new()),
        calls: AtomicU64::new(0),
        rate_limited: AtomicU64::new(0),
        webhooks: Mutex::new(Webhooks::default()),
        delivery_turn: tokio::sync::Mutex::new(()),
        http: webhooks::client(),
    });
    let api = Router::new()
        .route("/clients", get(search_clients).post(save_client))
        .route("/appointments/settings", get(appointment_settings))
        .route("/appointments", get(list_appointments).post(create_appointment).put(update_appointment))
        .route("/appointments/cancellation", post(cancel_appointment))
        .route("/appointments/{id}", get(get_appointment))
        .route("/intakes/send", post(send_intake))
        .route("/intakes/summary", get(intake_summary))
        .route("/questionnaires", get(list_questionnaires))
        .layer(middleware::from_fn_with_state(sandbox.clone(), log_request));
    let control = Router::new()
        .route("/faults", post(plan_fault).delete(clear_faults))
        .route("/state", get(state))
        .route("/stats", get(stats))
        .route("/intakes/submit", post(submit_intake))
        .route("/rate-limit", put(set_rate_limit))
        .route("/staff/appointments", post(staff_book))
        .route("/staff/appointments/{id}", delete(staff_delete))
        .route("/staff/appointments/{id}/cancel", post(staff_cancel))
        .route("/staff/appointments/{id}/reschedule", post(staff_reschedule))
        .route("/webhooks", get(list_deliveries).put(configure_webhooks))
        .route("/webhooks/faults", post(plan_webhook_fault).delete(clear_webhook_faults))
        .route("/webhooks/release", post(release_webhooks))
        .route("/reset", post(reset));
    Router::new().nest("/api/v1", api).nest("/_sandbox", control).with_state(sandbox)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "Message": text }))).into_response()
}

/// The rate limit's 429, with the same body as IntakeQ's. `retry_after` (whole seconds) when known: IntakeQ does
/// not document whether it sends one, the sandbox may.
fn rate_limited(retry_after: Option<u64>) -> Response {
    let mut response = message(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded.");
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

/// A wait as `Retry-After` says it: whole seconds, rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX).max(1)
}

/// IntakeQ's answer to a missing or wrong `X-Auth-Key`.
fn unauthorized() -> Response {
    message(StatusCode::UNAUTHORIZED, "Authorization has been denied for this request.")
}

impl Sandbox {
    /// Authentication, then an injected fault if one is planned, then the rate limit. A `slow` fault only
    /// delays the call: the rest of the gate, and the call, then go on as if it were healthy.
    async fn gate(&self, endpoint: &str, headers: &HeaderMap) -> Gate {
        if headers.get("x-auth-key").and_then(|v| v.to_str().ok()) != Some(self.config.api_key.as_str()) {
            return Gate::Answer(unauthorized());
        }
        let fault = self.faults.lock().unwrap().take(endpoint);
        if let Some(fault) = fault {
            self.log_fault(fault.fault);
            let delay = fault.delay_ms.map(Duration::from_millis).unwrap_or(self.config.default_delay);
            let decided = match fault.fault {
                FaultKind::ServerError => Some(Gate::Answer(message(StatusCode::INTERNAL_SERVER_ERROR, "An error has occurred."))),
                FaultKind::RateLimited => Some(Gate::Answer(rate_limited(fault.retry_after_seconds))),
                FaultKind::NonJson => Some(Gate::Answer(html(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable"))),
                FaultKind::InvalidServiceId => Some(Gate::Answer(message(StatusCode::BAD_REQUEST, permanent_rejection(endpoint)))),
                FaultKind::Unauthorized => Some(Gate::Answer(unauthorized())),
                FaultKind::Hang => {
                    tokio::time::sleep(delay).await;
                    Some(Gate::Answer(html(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out")))
                }
                FaultKind::SucceedLate => Some(Gate::Proceed { answer_after: Some(delay) }),
                FaultKind::Slow => {
                    tokio::time::sleep(delay).await;
                    None
                }
            };
            if let Some(gate) = decided {
                return gate;
            }
        }
        let admitted = self.rate_limit.lock().unwrap().admit(Instant::now());
        if let Err(wait) = admitted {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Gate::Answer(rate_limited(Some(whole_seconds(wait))));
        }
        Gate::Proceed { answer_after: None }
    }

    /// Notes on the call's request log entry the fault it got, as soon as it gets it (so a call whose caller
    /// gives up still shows its fault).
    fn log_fault(&self, fault: FaultKind) {
        if let Ok(index) = LOG_ENTRY.try_with(|index| *index) {
            if let Some(entry) = self.requests.lock().unwrap().get_mut(index) {
                entry["fault"] = to_json(fault);
            }
        }
    }

    /// One endpoint call: the gate, then `operation` on the records, answered (late, if a fault says so).
    async fn run(
        self: &Arc<Self>,
        endpoint: &str,
        headers: &HeaderMap,
        operation: impl FnOnce(&mut Records, &Settings) -> Result<Value, Rejection>,
    ) -> Response {
        self.run_changing(endpoint, headers, |records, settings| Ok((operation(records, settings)?, Vec::new()))).await
    }

    /// `run`, for an operation that answers its own errors and may change appointments: the webhook events of its
    /// changes are queued at once (in the order the changes were made) and sent in the background, not awaited by
    /// the call, as IntakeQ sends them.
    async fn run_changing(
        self: &Arc<Self>,
        endpoint: &str,
        headers: &HeaderMap,
        operation: impl FnOnce(&mut Records, &Settings) -> Result<(Value, Vec<Event>), Failure>,
    ) -> Response {
        let answer_after = match self.gate(endpoint, headers).await {
            Gate::Answer(response) => return response,
            Gate::Proceed { answer_after } => answer_after,
        };
        let response = {
            let mut records = self.records.lock().unwrap();
            match operation(&mut records, &self.settings) {
                Ok((value, events)) => {
                    if !events.is_empty() && self.webhooks.lock().unwrap().fire(Origin::Api, events, now_ms()) {
                        let sandbox = self.clone();
                        tokio::spawn(async move { sandbox.deliver_webhooks().await });
                    }
                    Json(value).into_response()
                }
                Err(Failure(status, text)) => message(status, &text),
            }
        };
        if let Some(delay) = answer_after {
            tokio::time::sleep(delay).await;
        }
        response
    }

    /// Posts every webhook queued (in order, one at a time).
    async fn deliver_webhooks(&self) {
        webhooks::deliver_queued(&self.webhooks, &self.delivery_turn, &self.http, now_ms).await;
    }

    /// A staff member's change: `change` on the records, its events' webhooks posted before this answers (those a
    /// fault loses or holds are not), then the appointment answered.
    async fn staff_change(
        &self,
        change: impl FnOnce(&mut Records, &Settings) -> Result<(records::Appointment, Option<&'static str>), StaffRefusal>,
    ) -> Response {
        let result = {
            let mut records = self.records.lock().unwrap();
            change(&mut records, &self.settings).map(|(appointment, event)| {
                let events: Vec<Event> =
                    event.map(|event_type| Event { event_type, appointment: appointment.clone() }).into_iter().collect();
                let queued = !events.is_empty() && self.webhooks.lock().unwrap().fire(Origin::Staff, events, now_ms());
                (appointment, queued)
            })
        };
        match result {
            Ok((appointment, queued)) => {
                if queued {
                    self.deliver_webhooks().await;
                }
                Json(to_json(appointment)).into_response()
            }
            Err(StaffRefusal::Invalid(error)) => control_error(StatusCode::BAD_REQUEST, error),
            Err(StaffRefusal::NotFound(error)) => control_error(StatusCode::NOT_FOUND, error),
            Err(StaffRefusal::Conflict(error)) => control_error(StatusCode::CONFLICT, error),
        }
    }
}

/// An endpoint's error answer: its status and IntakeQ's `Message`.
struct Failure(StatusCode, String);

/// A rejection is IntakeQ's 400.
impl From<Rejection> for Failure {
    fn from(Rejection(text): Rejection) -> Self {
        Failure(StatusCode::BAD_REQUEST, text)
    }
}

/// The control API's errors: `{"error": "..."}`.
fn control_error(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(json!({ "error": error.into() }))).into_response()
}

/// A control API body that may be left out: `T` from JSON, or its default when the body is empty.
fn optional_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// What the `invalid_service_id` fault answers: the endpoint's permanent 400.
fn permanent_rejection(endpoint: &str) -> &'static str {
    match endpoint {
        "POST /intakes/send" => "Invalid QuestionnaireId.",
        _ => "Invalid ServiceId.",
    }
}

fn html(status: StatusCode, title: &str) -> Response {
    let page = format!("<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>");
    (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Rejection> {
    serde_json::from_slice(body).map_err(|e| Rejection(format!("The request is invalid. {e}")))
}

fn to_json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).expect("records serialize")
}

/// Every API call, in order, with the fault it got (null for none), and the status it got and how long it
/// took to answer (both null while unanswered, or if the caller gave up).
async fn log_request(
    State(sandbox): State<Arc<Sandbox>>,
    OriginalUri(uri): OriginalUri,
    request: Request,
    next: Next,
) -> Response {
    let entry = json!({
        "method": request.method().as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "at": now_ms(),
        "status": null,
        "durationMs": null,
        "fault": null,
    });
    let started = Instant::now();
    sandbox.calls.fetch_add(1, Ordering::Relaxed);
    let index = {
        let mut requests = sandbox.requests.lock().unwrap();
        requests.push(entry);
        requests.len() - 1
    };
    let response = LOG_ENTRY.scope(index, next.run(request)).await;
    if let Some(entry) = sandbox.requests.lock().unwrap().get_mut(index) {
        entry["status"] = response.status().as_u16().into();
        entry["durationMs"] = (started.elapsed().as_millis() as u64).into();
    }
    response
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientSearch {
    search: Option<String>,
    include_profile: Option<bool>,
    page: Option<usize>,
}

async fn search_clients(State(s): State<Arc<Sandbox>>, headers: HeaderMap, Query(q): Query<ClientSearch>) -> Response {
    s.run("GET /clients", &headers, |records, _| {
        let clients = records.search_clients(q.search.as_deref(), q.page);
        Ok(Value::Array(
            clients
                .into_iter()
                .map(|c| {
                    if q.include_profile == Some(true) {
                        to_json(c)
                    } else {
                        json!({ "ClientId": c.client_id, "Name": c.name, "Email": c.email, "Phone": c.phone,
                                "DateCreated": c.date_created, "LastActivityDate": c.last_activity_date })
                    }
                })
                .collect(),
        ))
    })
    .await
}

async fn save_client(State(s): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    s.run("POST /clients", &headers, |records, _| {
        Ok(to_json(records.save_client(parse::<ClientInput>(&body)?, now_ms())?))
    })
    .await
}

async fn appointment_settings(State(s): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    s.run("GET /appointments/settings", &headers, |_, settings| Ok(to_json(settings))).await
}

async fn create_appointment(State(s): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    s.run_changing("POST /appointments", &headers, |records, settings| {
        let appointment = records.create_appointment(parse::<AppointmentInput>(&body)?, settings, now_ms())?;
        Ok((to_json(&appointment), vec![Event { event_type: "AppointmentCreated", appointment }]))
    })
    .await
}

/// `GET /appointments/{id}`: the appointment, or 404 `{"Message": "Appointment not found."}`.
async fn get_appointment(State(s): State<Arc<Sandbox>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    s.run_changing("GET /appointments/{id}", &headers, |records, _| match records.appointment(&id) {
        Some(appointment) => Ok((to_json(appointment), Vec::new())),
        None => Err(Failure(StatusCode::NOT_FOUND, APPOINTMENT_NOT_FOUND.into())),
    })
    .await
}

async fn list_appointments(State(s): State<Arc<Sandbox>>, headers: HeaderMap, Query(q): Query<AppointmentQuery>) -> Response {
    s.run("GET /appointments", &headers, |records, settings| {
        Ok(to_json(records.list_appointments(&q, settings.time_zone)?))
    })
    .await
}

async fn update_appointment(State(s): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    s.run_changing("PUT /appointments", &headers, |records, settings| {
        let (appointment, event_types) = records.update_appointment(parse::<AppointmentInput>(&body)?, settings)?;
        let events = event_types.into_iter().map(|event_type| Event { event_type, appointment: appointment.clone() }).collect();
        Ok((to_json(appointment), events))
    })
    .await
}

async fn cancel_appointment(State(s): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    s.run_changing("POST /appointments/cancellation", &headers, |records, _| {
        let (appointment, changed) = records.cancel_appointment(&parse::<Value>(&body)?)?;
        let events = if changed { vec![Event { event_type: "AppointmentCanceled", appointment: appointment.clone() }] } else { Vec::new() };
        Ok((to_json(appointment), events))
    })
    .await
}

async fn send_intake(State(s): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    s.run("POST /intakes/send", &headers, |records, settings| {
        Ok(to_json(records.send_intake(parse::<IntakeInput>(&body)?, settings, now_ms())?))
    })
    .await
}

async fn intake_summary(State(s): State<Arc<Sandbox>>, headers: HeaderMap, Query(q): Query<IntakeQuery>) -> Response {
    s.run("GET /intakes/summary", &headers, |records, settings| {
        let summaries = records.intake_summaries(&q, settings.time_zone)?;
        Ok(Value::Array(
            summaries
                .into_iter()
                .map(|i| {
                    json!({ "Id": i.id, "ClientId": i.client_id, "ClientName": i.client_name, "ClientEmail": i.client_email,
                            "Status": i.status, "QuestionnaireId": i.questionnaire_id, "QuestionnaireName": i.questionnaire_name,
                            "PractitionerId": i.practitioner_id, "PractitionerName": i.practitioner_name,
                            "DateCreated": i.date_created, "DateSubmitted": i.date_submitted, "AppointmentId": i.appointment_id })
                })
                .collect(),
        ))
    })
    .await
}

async fn list_questionnaires(State(s): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    s.run("GET /questionnaires", &headers, |_, settings| Ok(to_json(&settings.questionnaires))).await
}

// The control API ---------------------------------------------------------------------------------------------

async fn plan_fault(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let planned = serde_json::from_slice::<FaultRequest>(&body)
        .map_err(|e| e.to_string())
        .and_then(|request| s.faults.lock().unwrap().plan(request));
    match planned {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response(),
    }
}

async fn clear_faults(State(s): State<Arc<Sandbox>>) -> StatusCode {
    s.faults.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}

async fn state(State(s): State<Arc<Sandbox>>) -> Json<Value> {
    let records = s.records.lock().unwrap();
    let limit = s.rate_limit.lock().unwrap();
    let staff: Vec<&str> = records.appointments.iter().filter(|a| a.staff).map(|a| a.id.as_str()).collect();
    Json(json!({
        "clients": to_json(&records.clients),
        "appointments": to_json(&records.appointments),
        "staffAppointments": staff,
        "webhooks": s.webhooks.lock().unwrap().summary(),
        "intakes": to_json(&records.intakes),
        "requests": *s.requests.lock().unwrap(),
        "rateLimitPerMinute": limit.per_minute,
        "rateLimitPerDay": limit.per_day,
        "rateLimitMinuteMs": limit.minute.as_millis() as u64,
    }))
}

/// `GET /_sandbox/stats`: since the last reset, how many API calls came (every one, whatever it was answered:
/// the request log's length) and how many of them the rate limit answered 429 (not counting `rate_limited` faults).
async fn stats(State(s): State<Arc<Sandbox>>) -> Json<Value> {
    Json(json!({
        "calls": s.calls.load(Ordering::Relaxed),
        "rateLimited": s.rate_limited.load(Ordering::Relaxed),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubmitRequest {
    id: String,
}

/// `POST /_sandbox/intakes/submit` `{"id": "..."}`: the client fills in the form. IntakeQ has no such call.
async fn submit_intake(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let request = match serde_json::from_slice::<SubmitRequest>(&body) {
        Ok(request) => request,
        Err(error) => return (StatusCode::BAD_REQUEST, Json(json!({ "error": error.to_string() }))).into_response(),
    };
    match s.records.lock().unwrap().submit_intake(&request.id, now_ms()) {
        Some(intake) => Json(to_json(intake)).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": format!("no intake {}", request.id) }))).into_response(),
    }
}

/// `PUT /_sandbox/rate-limit`: each field given replaces its value (the others stay), and both windows empty.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RateLimitRequest {
    per_minute: Option<u32>,
    per_day: Option<u32>,
    minute_ms: Option<u64>,
}

async fn set_rate_limit(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let request = match serde_json::from_slice::<RateLimitRequest>(&body) {
        Ok(request) => request,
        Err(error) => return (StatusCode::BAD_REQUEST, Json(json!({ "error": error.to_string() }))).into_response(),
    };
    if request.minute_ms == Some(0) {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "minuteMs must be at least 1" }))).into_response();
    }
    let mut limit = s.rate_limit.lock().unwrap();
    limit.per_minute = request.per_minute.unwrap_or(limit.per_minute);
    limit.per_day = request.per_day.unwrap_or(limit.per_day);
    limit.minute = request.minute_ms.map(Duration::from_millis).unwrap_or(limit.minute);
    limit.reset();
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_sandbox/staff/appointments`: a staff member books in IntakeQ (see `StaffAppointmentInput`); answers the
/// appointment after its `AppointmentCreated` webhook went out.
async fn staff_book(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let input = match serde_json::from_slice::<StaffAppointmentInput>(&body) {
        Ok(input) => input,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error.to_string()),
    };
    s.staff_change(|records, settings| {
        let appointment = records.create_staff_appointment(input, settings, now_ms())?;
        Ok((appointment, Some("AppointmentCreated")))
    })
    .await
}

/// `POST /_sandbox/staff/appointments/{id}/cancel` with an optional `{"Reason": "..."}`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct StaffCancelRequest {
    reason: Option<String>,
}

/// A staff member cancels any appointment (ours too) in IntakeQ: `Canceled`, its `AppointmentCanceled` webhook
/// sent before answering. An appointment already `Canceled` is answered as it is, and nothing is sent.
async fn staff_cancel(State(s): State<Arc<Sandbox>>, Path(id): Path<String>, body: Bytes) -> Response {
    let request = match optional_body::<StaffCancelRequest>(&body) {
        Ok(request) => request,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error),
    };
    s.staff_change(|records, _| {
        let (appointment, changed) = records.staff_cancel(&id, request.reason.as_deref())?;
        Ok((appointment, changed.then_some("AppointmentCanceled")))
    })
    .await
}

/// `DELETE /_sandbox/staff/appointments/{id}`: a staff member deletes an appointment in IntakeQ. IntakeQ's webhooks
/// have no event for a deletion: none is sent.
async fn staff_delete(State(s): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    s.staff_change(|records, _| Ok((records.staff_delete(&id)?, None))).await
}

/// `POST /_sandbox/staff/appointments/{id}/reschedule` `{"UtcDateTime": <ms>}`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct StaffRescheduleRequest {
    utc_date_time: i64,
}

/// A staff member moves any appointment (ours too) in IntakeQ: the same duration from the new start, its
/// `AppointmentRescheduled` webhook sent before answering. The same start changes and sends nothing; a cancelled
/// appointment cannot be moved (409).
async fn staff_reschedule(State(s): State<Arc<Sandbox>>, Path(id): Path<String>, body: Bytes) -> Response {
    let request = match serde_json::from_slice::<StaffRescheduleRequest>(&body) {
        Ok(request) => request,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error.to_string()),
    };
    s.staff_change(|records, settings| {
        let (appointment, moved) = records.staff_reschedule(&id, request.utc_date_time, settings.time_zone)?;
        Ok((appointment, moved.then_some("AppointmentRescheduled")))
    })
    .await
}

/// `GET /_sandbox/webhooks`: every delivery, in the order the changes were made.
async fn list_deliveries(State(s): State<Arc<Sandbox>>) -> Json<Value> {
    Json(to_json(s.webhooks.lock().unwrap().log()))
}

/// `PUT /_sandbox/webhooks` `{"url": "http://..." | null, "apiChanges": true}`.
async fn configure_webhooks(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let request = match serde_json::from_slice::<webhooks::ConfigRequest>(&body) {
        Ok(request) => request,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error.to_string()),
    };
    match s.webhooks.lock().unwrap().configure(request) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => control_error(StatusCode::BAD_REQUEST, error),
    }
}

/// `POST /_sandbox/webhooks/faults` `{"lose": n}`, `{"repeat": n}` or `{"hold": n}`.
async fn plan_webhook_fault(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let planned = serde_json::from_slice::<webhooks::FaultRequest>(&body)
        .map_err(|e| e.to_string())
        .and_then(|request| request.planned());
    match planned {
        Ok((fault, count)) => {
            s.webhooks.lock().unwrap().plan(fault, count);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => control_error(StatusCode::BAD_REQUEST, error),
    }
}

async fn clear_webhook_faults(State(s): State<Arc<Sandbox>>) -> StatusCode {
    s.webhooks.lock().unwrap().clear_faults();
    StatusCode::NO_CONTENT
}

/// `POST /_sandbox/webhooks/release` `{"order": "sent" | "reverse"}` (or no body: `sent`): posts the held
/// deliveries before answering them, as logged.
async fn release_webhooks(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let request = match optional_body::<webhooks::ReleaseRequest>(&body) {
        Ok(request) => request,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error),
    };
    let released = webhooks::release(&s.webhooks, &s.delivery_turn, &s.http, request.order, now_ms).await;
    Json(to_json(released)).into_response()
}

async fn reset(State(s): State<Arc<Sandbox>>) -> StatusCode {
    *s.records.lock().unwrap() = Records::default();
    s.webhooks.lock().unwrap().reset();
    s.faults.lock().unwrap().clear();
    s.requests.lock().unwrap().clear();
    s.calls.store(0, Ordering::Relaxed);
    s.rate_limited.store(0, Ordering::Relaxed);
    let mut limit = s.rate_limit.lock().unwrap();
    limit.per_minute = s.config.rate_limit_per_minute;
    limit.per_day = s.rate_limit_config.per_day;
    limit.minute = s.rate_limit_config.minute;
    limit.reset();
    StatusCode::NO_CONTENT
}
