//! The IntakeQ sandbox as a client sees it: each endpoint's happy path, IntakeQ's errors and rate limit, dates
//! in the practice's time zone, paging, and every fault the control API can inject, including the succeed-late
//! trap.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use devstack::intakeq_sandbox::{self, SandboxConfig, Tz};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use support::{start_sandbox, SANDBOX_KEY};

struct Sandbox {
    base: String,
    http: Client,
}

impl Sandbox {
    async fn start(rate_limit_per_minute: u32) -> Self {
        Sandbox { base: start_sandbox(rate_limit_per_minute).await, http: Client::new() }
    }

    /// A sandbox whose practice is in `zone` (`start` uses the default, America/Denver).
    async fn start_in(zone: Tz) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = SandboxConfig {
            api_key: SANDBOX_KEY.into(),
            rate_limit_per_minute: 100,
            default_delay: Duration::from_secs(30),
            practice_time_zone: zone,
        };
        tokio::spawn(intakeq_sandbox::serve(listener, config, std::future::pending()));
        Sandbox { base, http: Client::new() }
    }

    fn api(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}/api/v1{path}", self.base)).header("X-Auth-Key", SANDBOX_KEY)
    }

    async fn get(&self, path: &str) -> Response {
        self.api(reqwest::Method::GET, path).send().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.api(reqwest::Method::POST, path).json(&body).send().await.unwrap()
    }

    /// `GET /appointments?<query>`: the appointments found.
    async fn list(&self, query: &str) -> Value {
        status_and_json(self.get(&format!("/appointments?{query}")).await).await.1
    }

    async fn fault(&self, fault: Value) {
        let response = self.http.post(format!("{}/_sandbox/faults", self.base)).json(&fault).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "fault accepted: {fault}");
    }

    async fn state(&self) -> Value {
        self.http.get(format!("{}/_sandbox/state", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// `PUT /_sandbox/rate-limit` with `body`: its status.
    async fn set_rate_limit(&self, body: Value) -> StatusCode {
        self.http.put(format!("{}/_sandbox/rate-limit", self.base)).json(&body).send().await.unwrap().status()
    }

    /// `GET /_sandbox/stats`: the calls and rate-limited calls since the last reset.
    async fn stats(&self) -> Value {
        self.http.get(format!("{}/_sandbox/stats", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// The request log's entries for calls of `path` (under `/api/v1`), in order.
    async fn requests_to(&self, path: &str) -> Vec<Value> {
        let path = format!("/api/v1{path}");
        self.state().await["requests"].as_array().unwrap().iter().filter(|r| r["path"] == path).cloned().collect()
    }

    /// `POST /appointments` of `Sandbox::appointment(client)` starting at `start_ms`: the appointment.
    async fn appointment_at(&self, client: &Value, start_ms: i64) -> Value {
        let mut body = Sandbox::appointment(client);
        body["UtcDateTime"] = start_ms.into();
        let (status, created) = status_and_json(self.post("/appointments", body).await).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        created
    }

    async fn new_client(&self, email: &str) -> Value {
        let response = self.post("/clients", json!({"FirstName": "Pat", "LastName": "Sample", "Email": email})).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// A confirmed appointment for `client` with Ana Rivera's self-pay intake on 2032-05-12 at 15:00 UTC.
    fn appointment(client: &Value) -> Value {
        json!({
            "PractitionerId": "5f1a00000000000000000001",
            "ClientId": client["ClientId"],
            "ServiceId": "7c1e0000-0000-4000-8000-000000000001",
            "LocationId": "1",
            "Status": "Confirmed",
            "UtcDateTime": 1_967_986_800_000_i64,
            "SendClientEmailNotification": true,
            "ReminderType": "Email"
        })
    }
}

/// The Unix milliseconds of a wall-clock time in Denver (the default practice's zone).
fn denver_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    chrono_tz::America::Denver.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap().timestamp_millis()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|a| a["Id"].as_str().unwrap().to_owned()).collect()
}

async fn status_and_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn every_call_needs_the_api_key() {
    let sandbox = Sandbox::start(10).await;
    let without = sandbox.http.get(format!("{}/api/v1/appointments/settings", sandbox.base)).send().await.unwrap();
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    let wrong = sandbox
        .http
        .get(format!("{}/api/v1/appointments/settings", sandbox.base))
        .header("X-Auth-Key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn settings_name_every_intakeq_id_the_seeded_practice_uses() {
    let sandbox = Sandbox::start(10).await;
    let (status, settings) = status_and_json(sandbox.get("/appointments/settings").await).await;
    assert_eq!(status, StatusCode::OK);
    let ids = |list: &str| -> BTreeSet<String> {
        settings[list].as_array().unwrap().iter().map(|x| x["Id"].as_str().unwrap().to_owned()).collect()
    };
    let seeded = |sql: &'static str| async move {
        let rows = support::database().await.query(sql, &[]).await.unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect::<BTreeSet<String>>()
    };
    let practitioners = seeded("select intakeq_practitioner_id from providers where intakeq_practitioner_id is not null").await;
    let services = seeded("select intakeq_service_id from service_instances where intakeq_service_id is not null").await;
    let locations = seeded(
        "select intakeq_location_id from payers union select self_pay_intakeq_location_id from practice_settings",
    )
    .await;
    assert!(!practitioners.is_empty() && !services.is_empty() && !locations.is_empty());
    assert!(practitioners.is_subset(&ids("Practitioners")), "{practitioners:?}");
    assert!(services.is_subset(&ids("Services")), "{services:?}");
    assert!(locations.is_subset(&ids("Locations")), "{locations:?}");
}

#[tokio::test]
async fn clients_are_created_found_by_partial_search_and_updated() {
    let sandbox = Sandbox::start(100).await;
    let created = sandbox.new_client("Pat.Sample@Example.com").await;
    let id = created["ClientId"].as_u64().expect("an integer ClientId");

    let (_, found) = status_and_json(sandbox.get("/clients?search=pat.sample&includeProfile=true").await).await;
    assert_eq!(found[0]["ClientId"], id, "search is a partial, case-insensitive match");
    assert_eq!(found[0]["FirstName"], "Pat", "the profile has the names");
    let (_, basic) = status_and_json(sandbox.get("/clients?search=sample").await).await;
    assert_eq!(basic[0]["Name"], "Pat Sample");
    assert!(basic[0].get("FirstName").is_none(), "without includeProfile only the summary");
    let (_, by_id) = status_and_json(sandbox.get(&format!("/clients?search={id}")).await).await;
    assert_eq!(by_id.as_array().unwrap().len(), 1, "a number matches the id");
    let (_, none) = status_and_json(sandbox.get("/clients?search=nobody").await).await;
    assert_eq!(none, json!([]));

    let (status, updated) =
        status_and_json(sandbox.post("/clients", json!({"ClientId": id, "Phone": "+1 555 0199"})).await).await;
    assert_eq!((status, &updated["Phone"], &updated["Email"]), (StatusCode::OK, &json!("+1 555 0199"), &json!("Pat.Sample@Example.com")));
    let (status, error) = status_and_json(sandbox.post("/clients", json!({"ClientId": 999_999})).await).await;
    assert_eq!((status, error), (StatusCode::BAD_REQUEST, json!({"Message": "Client not found"})));
}

#[tokio::test]
async fn appointments_are_created_listed_updated_and_cancelled() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("lister@example.com").await;
    let (status, created) = status_and_json(sandbox.post("/appointments", Sandbox::appointment(&client)).await).await;
    assert_eq!(status, StatusCode::OK);
    let id = created["Id"].as_str().unwrap().to_owned();
    assert!(id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit()), "an IntakeQ id: {id}");
    assert_eq!(created["StartDate"], 1_967_986_800_000_i64, "UtcDateTime is milliseconds");
    assert_eq!(created["EndDate"], 1_967_986_800_000_i64 + 60 * 60_000, "ends after the service's duration");
    assert_eq!(created["StartDateIso"], "2032-05-12T15:00:00.000Z");
    assert_eq!((&created["Status"], &created["SendClientEmailNotification"]), (&json!("Confirmed"), &json!(true)));

    let same_day = sandbox.list("client=lister@example.com&startDate=2032-05-12&endDate=2032-05-12").await;
    assert_eq!(same_day.as_array().unwrap().len(), 1, "found by client email and day");
    assert!(sandbox.list("client=lister@example.com&startDate=2032-05-13&endDate=2032-05-14").await.as_array().unwrap().is_empty());
    assert!(sandbox.list("client=someone.else@example.com").await.as_array().unwrap().is_empty());

    let updated = sandbox.api(reqwest::Method::PUT, "/appointments").json(&json!({"Id": id, "Notes": "moved"})).send();
    let (status, updated) = status_and_json(updated.await.unwrap()).await;
    assert_eq!((status, &updated["Notes"]), (StatusCode::OK, &json!("moved")));
    let (status, cancelled) =
        status_and_json(sandbox.post("/appointments/cancellation", json!({"AppointmentId": id, "Reason": "test"})).await).await;
    assert_eq!((status, &cancelled["Status"]), (StatusCode::OK, &json!("Canceled")));
    assert_eq!(sandbox.list("status=Canceled").await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_ids_are_rejected_as_intakeq_does() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("invalid@example.com").await;
    for (field, value, message) in [
        ("ServiceId", json!("not-a-service"), "Invalid ServiceId."),
        ("PractitionerId", json!("000000000000000000000000"), "Invalid PractitionerId."),
        ("LocationId", json!("99"), "Invalid LocationId."),
        ("ClientId", json!(424_242), "Client not found"),
    ] {
        let mut body = Sandbox::appointment(&client);
        body[field] = value;
        let (status, error) = status_and_json(sandbox.post("/appointments", body).await).await;
        assert_eq!((status, error), (StatusCode::BAD_REQUEST, json!({"Message": message})), "{field}");
    }
    assert!(sandbox.state().await["appointments"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_rate_limit_answers_429_past_its_count() {
    let sandbox = Sandbox::start(3).await;
    for _ in 0..3 {
        assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK);
    }
    let refused = sandbox.get("/appointments/settings").await;
    let retry_after = retry_after(&refused);
    assert!((1..=60).contains(&retry_after), "a place frees within the (real) minute: {retry_after}");
    let (status, body) = status_and_json(refused).await;
    assert_eq!((status, body), (StatusCode::TOO_MANY_REQUESTS, json!({"Message": "API rate limit exceeded."})));

    assert_eq!(sandbox.set_rate_limit(json!({"perMinute": 50})).await, StatusCode::NO_CONTENT);
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK, "the limit is configurable");
    let state = sandbox.state().await;
    let limits = (&state["rateLimitPerMinute"], &state["rateLimitPerDay"], &state["rateLimitMinuteMs"]);
    assert_eq!(limits, (&json!(50), &json!(500), &json!(60_000)), "IntakeQ's day and a real minute by default");
}

/// The `Retry-After` of a 429, in seconds.
fn retry_after(response: &Response) -> u64 {
    let header = response.headers().get("retry-after").expect("a Retry-After");
    header.to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn with_a_fast_minute_a_place_frees_once_it_has_passed() {
    let sandbox = Sandbox::start(100).await;
    assert_eq!(sandbox.set_rate_limit(json!({"perMinute": 2, "minuteMs": 300})).await, StatusCode::NO_CONTENT);
    let state = sandbox.state().await;
    assert_eq!((&state["rateLimitPerMinute"], &state["rateLimitMinuteMs"]), (&json!(2), &json!(300)));

    let started = Instant::now();
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK);
    // The second call comes later, so that its place is still taken when the first one's frees.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK);
    let refused = sandbox.get("/appointments/settings").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&refused), 1, "under 300 ms, rounded up to a whole second");

    // Poll: the first call's place frees 300 ms after it arrived (which was after `started`).
    let mut refusals = 1;
    loop {
        let response = sandbox.get("/appointments/settings").await;
        if response.status() == StatusCode::OK {
            break;
        }
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(started.elapsed() < Duration::from_secs(2), "a place frees after the 300 ms minute");
        refusals += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let freed_after = started.elapsed();
    assert!(freed_after >= Duration::from_millis(300), "not before the minute passed: {freed_after:?}");
    let next = sandbox.get("/appointments/settings").await;
    assert_eq!(next.status(), StatusCode::TOO_MANY_REQUESTS, "one place freed, not two");
    refusals += 1;

    assert_eq!(sandbox.stats().await, json!({"calls": 3 + refusals, "rateLimited": refusals}));
}

#[tokio::test]
async fn the_daily_limit_holds_when_the_minute_has_room() {
    let sandbox = Sandbox::start(100).await;
    assert_eq!(sandbox.set_rate_limit(json!({"perDay": 3, "minuteMs": 100})).await, StatusCode::NO_CONTENT);
    let state = sandbox.state().await;
    let limits = (&state["rateLimitPerMinute"], &state["rateLimitPerDay"], &state["rateLimitMinuteMs"]);
    assert_eq!(limits, (&json!(100), &json!(3), &json!(100)), "fields not given keep their value");

    for _ in 0..3 {
        assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK);
    }
    // Past a (100 ms) minute the per-minute window is empty, but the day (144 s) still holds all three.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let refused = sandbox.get("/appointments/settings").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = retry_after(&refused);
    assert!((140..=144).contains(&retry_after), "the day's first call leaves it after 1440 fast minutes: {retry_after}");
    let (_, body) = status_and_json(refused).await;
    assert_eq!(body, json!({"Message": "API rate limit exceeded."}), "the same answer as the minute's");

    assert_eq!(sandbox.set_rate_limit(json!({"perDay": 4})).await, StatusCode::NO_CONTENT);
    let next = sandbox.get("/appointments/settings").await;
    assert_eq!(next.status(), StatusCode::OK, "changing the limit empties the windows");
    assert_eq!(sandbox.stats().await, json!({"calls": 5, "rateLimited": 1}));
}

#[tokio::test]
async fn the_counts_take_every_call_but_only_the_rate_limit_s_refusals_and_reset_with_the_limits() {
    let sandbox = Sandbox::start(1).await;
    assert_eq!(sandbox.stats().await, json!({"calls": 0, "rateLimited": 0}));
    assert_eq!(sandbox.set_rate_limit(json!({"perMinute": 1, "perDay": 7, "minuteMs": 5000})).await, StatusCode::NO_CONTENT);
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK);
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::TOO_MANY_REQUESTS);
    let no_key = sandbox.http.get(format!("{}/api/v1/appointments/settings", sandbox.base)).send().await.unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    sandbox.fault(json!({"endpoint": "*", "fault": "rate_limited"})).await;
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sandbox.stats().await, json!({"calls": 4, "rateLimited": 1}), "a rate_limited fault is not the rate limit");
    assert_eq!(sandbox.state().await["requests"].as_array().unwrap().len(), 4, "calls is the request log's length");

    for (body, error) in [
        (json!({"minuteMs": 0}), "minuteMs must be at least 1"),
        (json!({"perHour": 3}), "unknown field"),
        (json!({"perDay": -1}), "invalid value"),
    ] {
        let response = sandbox.http.put(format!("{}/_sandbox/rate-limit", sandbox.base)).json(&body).send().await.unwrap();
        let (status, answer) = status_and_json(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer["error"].as_str().unwrap().contains(error), "{body}: {answer}");
    }

    let reset = sandbox.http.post(format!("{}/_sandbox/reset", sandbox.base)).send().await.unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(sandbox.stats().await, json!({"calls": 0, "rateLimited": 0}));
    let state = sandbox.state().await;
    let limits = (&state["rateLimitPerMinute"], &state["rateLimitPerDay"], &state["rateLimitMinuteMs"]);
    assert_eq!(limits, (&json!(1), &json!(500), &json!(60_000)), "the start values again");
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK, "the windows are empty");
}

#[tokio::test]
async fn the_daily_limit_and_the_minute_start_as_configured() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = SandboxConfig {
        api_key: SANDBOX_KEY.into(),
        rate_limit_per_minute: 10,
        default_delay: Duration::from_secs(30),
        practice_time_zone: intakeq_sandbox::DEFAULT_PRACTICE_TIME_ZONE,
    };
    let rate_limit = intakeq_sandbox::RateLimitConfig { per_day: 2, minute: Duration::from_millis(3000) };
    tokio::spawn(intakeq_sandbox::serve_with_rate_limit(listener, config, rate_limit, std::future::pending()));
    let sandbox = Sandbox { base, http: Client::new() };

    let state = sandbox.state().await;
    let limits = (&state["rateLimitPerMinute"], &state["rateLimitPerDay"], &state["rateLimitMinuteMs"]);
    assert_eq!(limits, (&json!(10), &json!(2), &json!(3000)));
    for _ in 0..2 {
        assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK);
    }
    let refused = sandbox.get("/appointments/settings").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((4300..=4320).contains(&retry_after(&refused)), "a day of 3 s minutes is 72 minutes");
}

#[tokio::test]
async fn injected_faults_look_like_intakeq_s_bad_days_then_pass() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("faults@example.com").await;
    let endpoint = "POST /appointments";

    sandbox.fault(json!({"endpoint": endpoint, "fault": "server_error", "count": 2})).await;
    for _ in 0..2 {
        let (status, error) = status_and_json(sandbox.post("/appointments", Sandbox::appointment(&client)).await).await;
        assert_eq!((status, error), (StatusCode::INTERNAL_SERVER_ERROR, json!({"Message": "An error has occurred."})));
    }

    sandbox.fault(json!({"endpoint": endpoint, "fault": "rate_limited", "retryAfterSeconds": 7})).await;
    let limited = sandbox.post("/appointments", Sandbox::appointment(&client)).await;
    assert_eq!((limited.status(), limited.headers()["retry-after"].to_str().unwrap()), (StatusCode::TOO_MANY_REQUESTS, "7"));
    sandbox.fault(json!({"endpoint": endpoint, "fault": "rate_limited"})).await;
    let limited = sandbox.post("/appointments", Sandbox::appointment(&client)).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_none());

    sandbox.fault(json!({"endpoint": endpoint, "fault": "non_json"})).await;
    let outage = sandbox.post("/appointments", Sandbox::appointment(&client)).await;
    assert_eq!(outage.headers()["content-type"], "text/html");
    assert!(serde_json::from_str::<Value>(&outage.text().await.unwrap()).is_err(), "the body is not JSON");

    sandbox.fault(json!({"endpoint": endpoint, "fault": "invalid_service_id"})).await;
    let (status, error) = status_and_json(sandbox.post("/appointments", Sandbox::appointment(&client)).await).await;
    assert_eq!((status, error), (StatusCode::BAD_REQUEST, json!({"Message": "Invalid ServiceId."})));

    assert!(sandbox.state().await["appointments"].as_array().unwrap().is_empty(), "no fault created anything");
    let (status, _) = status_and_json(sandbox.post("/appointments", Sandbox::appointment(&client)).await).await;
    assert_eq!(status, StatusCode::OK, "once the faults are used up, calls succeed");

    let statuses: Vec<Value> = sandbox.state().await["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/api/v1/appointments")
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!(500), json!(500), json!(429), json!(429), json!(503), json!(400), json!(200)]);
}

#[tokio::test]
async fn a_hung_call_does_nothing_but_a_late_success_is_real() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("late@example.com").await;
    let impatient = |body: Value| {
        sandbox.api(reqwest::Method::POST, "/appointments").json(&body).timeout(Duration::from_millis(300)).send()
    };

    sandbox.fault(json!({"endpoint": "POST /appointments", "fault": "hang", "delayMs": 1000})).await;
    assert!(impatient(Sandbox::appointment(&client)).await.unwrap_err().is_timeout(), "the caller times out");
    assert!(sandbox.state().await["appointments"].as_array().unwrap().is_empty(), "a hang creates nothing");

    sandbox.fault(json!({"endpoint": "POST /appointments", "fault": "succeed_late", "delayMs": 1000})).await;
    assert!(impatient(Sandbox::appointment(&client)).await.unwrap_err().is_timeout(), "the caller times out");
    let appointments = sandbox.state().await["appointments"].clone();
    assert_eq!(appointments.as_array().unwrap().len(), 1, "yet the appointment exists");
    let (_, listed) = status_and_json(sandbox.get("/appointments?client=late@example.com").await).await;
    assert_eq!(listed[0]["Id"], appointments[0]["Id"], "and a lookup finds it, so a careful retry can adopt it");
}

#[tokio::test]
async fn the_control_api_refuses_unknown_faults_and_resets_everything() {
    let sandbox = Sandbox::start(100).await;
    let unknown = sandbox.http.post(format!("{}/_sandbox/faults", sandbox.base));
    let response = unknown.json(&json!({"endpoint": "DELETE /clients", "fault": "server_error"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    sandbox.new_client("reset@example.com").await;
    sandbox.fault(json!({"endpoint": "*", "fault": "server_error", "count": 5})).await;
    let reset = sandbox.http.post(format!("{}/_sandbox/reset", sandbox.base)).send().await.unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let state = sandbox.state().await;
    assert_eq!((&state["clients"], &state["appointments"], &state["requests"]), (&json!([]), &json!([]), &json!([])));
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK, "faults are gone too");
}

/// 2032-05-12T03:00:00Z: an evening appointment, 2032-05-11 21:00 in Denver (MDT, UTC-6).
const EVENING_UTC_MS: i64 = 1_967_943_600_000;

#[tokio::test]
async fn appointment_dates_are_days_in_the_practice_time_zone() {
    let sandbox = Sandbox::start(100).await;
    assert_eq!(EVENING_UTC_MS, denver_ms(2032, 5, 11, 21, 0));
    let client = sandbox.new_client("evening@example.com").await;
    let evening = sandbox.appointment_at(&client, EVENING_UTC_MS).await;
    assert_eq!(evening["StartDateIso"], "2032-05-12T03:00:00.000Z");
    assert_eq!(evening["StartDateLocal"], "2032-05-11T21:00:00", "local times are in the practice's zone");
    assert_eq!(evening["EndDateLocal"], "2032-05-11T22:00:00");
    assert_eq!(evening["StartDateLocalFormatted"], "Tuesday, May 11, 2032 9:00 PM");

    let found = |query: &'static str| {
        let sandbox = &sandbox;
        async move { ids(&sandbox.list(&format!("client=evening@example.com&{query}")).await) }
    };
    let id = evening["Id"].as_str().unwrap().to_owned();
    assert!(found("startDate=2032-05-12&endDate=2032-05-12").await.is_empty(), "the UTC date misses it");
    assert_eq!(found("startDate=2032-05-11&endDate=2032-05-11").await, std::slice::from_ref(&id), "the practice's date finds it");
    assert_eq!(found("startDate=2032-05-10&endDate=2032-05-12").await, std::slice::from_ref(&id), "a window around it finds it");

    // Both bounds are inclusive, to the first and the last minute of the practice's day.
    let first = sandbox.appointment_at(&client, denver_ms(2032, 5, 11, 0, 0)).await;
    let last = sandbox.appointment_at(&client, denver_ms(2032, 5, 11, 23, 59)).await;
    let day: BTreeSet<String> = found("startDate=2032-05-11&endDate=2032-05-11").await.into_iter().collect();
    let all: BTreeSet<String> = [&first, &last, &evening].iter().map(|a| a["Id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(day, all, "startDate and endDate both include their day");
    assert_eq!(found("startDate=2032-05-11").await.len(), 3, "startDate alone is a lower bound");
    assert_eq!(found("endDate=2032-05-11").await.len(), 3, "endDate alone is an upper bound");
    assert!(found("startDate=2032-05-10&endDate=2032-05-10").await.is_empty(), "the day before holds none");
    assert!(found("startDate=2032-05-12&endDate=2032-05-12").await.is_empty(), "the day after holds none");
    assert!(found("endDate=2032-05-10").await.is_empty());

    // Moving an appointment moves its local times with it.
    let moved = sandbox.api(reqwest::Method::PUT, "/appointments").json(&json!({"Id": id, "UtcDateTime": 1_967_986_800_000_i64}));
    let (status, moved) = status_and_json(moved.send().await.unwrap()).await;
    assert_eq!((status, &moved["StartDateLocal"]), (StatusCode::OK, &json!("2032-05-12T09:00:00")));
    assert_eq!(found("startDate=2032-05-12&endDate=2032-05-12").await, [id]);

    let (status, error) = status_and_json(sandbox.get("/appointments?startDate=05/11/2032").await).await;
    assert_eq!((status, error), (StatusCode::BAD_REQUEST, json!({"Message": "Invalid date 05/11/2032. Use yyyy-MM-dd."})));
}

#[tokio::test]
async fn the_practice_time_zone_is_configurable() {
    let sandbox = Sandbox::start_in(chrono_tz::UTC).await;
    let client = sandbox.new_client("utc@example.com").await;
    let evening = sandbox.appointment_at(&client, EVENING_UTC_MS).await;
    assert_eq!(evening["StartDateLocal"], "2032-05-12T03:00:00");
    let on = |day: &str| format!("client=utc@example.com&startDate={day}&endDate={day}");
    assert_eq!(sandbox.list(&on("2032-05-12")).await.as_array().unwrap().len(), 1, "in UTC, the UTC date finds it");
    assert!(sandbox.list(&on("2032-05-11")).await.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn appointment_pages_hold_100_each_within_a_date_window() {
    let sandbox = Sandbox::start(1000).await;
    let client = sandbox.new_client("pager@example.com").await;
    let other = sandbox.new_client("other.pager@example.com").await;
    let mut inside = BTreeSet::new();
    for n in 0..105 {
        // 2032-05-11 from 18:00 to 19:44 in Denver: the evening, so already 2032-05-12 in UTC.
        let created = sandbox.appointment_at(&client, denver_ms(2032, 5, 11, 18, 0) + n * 60_000).await;
        inside.insert(created["Id"].as_str().unwrap().to_owned());
    }
    for start in [denver_ms(2032, 5, 10, 23, 59), denver_ms(2032, 5, 13, 0, 0)] {
        sandbox.appointment_at(&client, start).await; // outside the window
    }
    sandbox.appointment_at(&other, denver_ms(2032, 5, 11, 12, 0)).await; // someone else's

    let window = "client=pager@example.com&startDate=2032-05-11&endDate=2032-05-12";
    let first = ids(&sandbox.list(window).await);
    let page_1 = ids(&sandbox.list(&format!("{window}&page=1")).await);
    let page_2 = ids(&sandbox.list(&format!("{window}&page=2")).await);
    let page_3 = ids(&sandbox.list(&format!("{window}&page=3")).await);
    assert_eq!((first.len(), page_2.len(), page_3.len()), (100, 5, 0), "100 a page, then the rest");
    assert_eq!(first, page_1, "without `page`, page 1");
    let listed: BTreeSet<String> = page_1.into_iter().chain(page_2).collect();
    assert_eq!(listed, inside, "the pages together hold every match once, and only matches");
}

#[tokio::test]
async fn a_slow_fault_delays_calls_then_answers_them_as_if_healthy() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("slow@example.com").await;
    let delay = Duration::from_millis(1000);
    sandbox.fault(json!({"endpoint": "*", "fault": "slow", "delayMs": 1000, "count": 2})).await;

    let started = Instant::now();
    let (status, settings) = status_and_json(sandbox.get("/appointments/settings").await).await;
    assert!(started.elapsed() >= delay, "answered after the delay: {:?}", started.elapsed());
    assert_eq!(status, StatusCode::OK);
    assert!(!settings["Services"].as_array().unwrap().is_empty(), "a normal answer");

    let started = Instant::now();
    let (status, created) = status_and_json(sandbox.post("/appointments", Sandbox::appointment(&client)).await).await;
    assert!(started.elapsed() >= delay, "\"*\" slows every endpoint: {:?}", started.elapsed());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sandbox.state().await["appointments"][0]["Id"], created["Id"], "and the call was carried out");

    let (status, listed) = status_and_json(sandbox.get("/appointments?client=slow@example.com").await).await;
    assert_eq!((status, ids(&listed)), (StatusCode::OK, vec![created["Id"].as_str().unwrap().to_owned()]));

    let log = sandbox.state().await["requests"].as_array().unwrap().clone();
    let last_three: Vec<(Value, Value)> = log[log.len() - 3..].iter().map(|r| (r["fault"].clone(), r["status"].clone())).collect();
    assert_eq!(last_three, [(json!("slow"), json!(200)), (json!("slow"), json!(200)), (json!(null), json!(200))]);
    let took = |r: &Value| r["durationMs"].as_u64().unwrap();
    assert!(took(&log[log.len() - 3]) >= 1000 && took(&log[log.len() - 2]) >= 1000, "{log:#?}");
    assert!(took(&log[log.len() - 1]) < 1000, "the call after the count is not delayed: {log:#?}");
}

#[tokio::test]
async fn a_caller_that_gives_up_on_a_slow_call_leaves_nothing_carried_out() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("impatient@example.com").await;
    sandbox.fault(json!({"endpoint": "POST /appointments", "fault": "slow", "delayMs": 1000})).await;
    let impatient = sandbox.api(reqwest::Method::POST, "/appointments").json(&Sandbox::appointment(&client));
    assert!(impatient.timeout(Duration::from_millis(300)).send().await.unwrap_err().is_timeout());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sandbox.state().await["appointments"].as_array().unwrap().is_empty(), "the wait came before the work");
    let logged = &sandbox.requests_to("/appointments").await[0];
    assert_eq!((&logged["fault"], &logged["status"], &logged["durationMs"]), (&json!("slow"), &json!(null), &json!(null)));
}

#[tokio::test]
async fn an_unauthorized_fault_answers_as_a_bad_key_does_and_carries_out_nothing() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("rotated@example.com").await;
    let wrong_key = sandbox.http.get(format!("{}/api/v1/appointments/settings", sandbox.base)).header("X-Auth-Key", "wrong");
    let (status, bad_key) = status_and_json(wrong_key.send().await.unwrap()).await;
    assert_eq!((status, &bad_key), (StatusCode::UNAUTHORIZED, &json!({"Message": "Authorization has been denied for this request."})));

    sandbox.fault(json!({"endpoint": "*", "fault": "unauthorized", "count": 2})).await;
    let new_client = json!({"FirstName": "Rae", "LastName": "Sample", "Email": "rae@example.com"});
    assert_eq!(status_and_json(sandbox.post("/clients", new_client).await).await, (StatusCode::UNAUTHORIZED, bad_key.clone()));
    let refused = sandbox.post("/appointments", Sandbox::appointment(&client)).await;
    assert_eq!(status_and_json(refused).await, (StatusCode::UNAUTHORIZED, bad_key));
    let state = sandbox.state().await;
    assert_eq!(state["clients"].as_array().unwrap().len(), 1, "no client created");
    assert!(state["appointments"].as_array().unwrap().is_empty(), "no appointment created");

    let (status, _) = status_and_json(sandbox.post("/appointments", Sandbox::appointment(&client)).await).await;
    assert_eq!(status, StatusCode::OK, "once the count is spent, the key works again");
    assert_eq!(sandbox.state().await["appointments"].as_array().unwrap().len(), 1);
    let faults: Vec<Value> = sandbox.requests_to("/appointments").await.iter().map(|r| r["fault"].clone()).collect();
    assert_eq!(faults, [json!("unauthorized"), json!(null)]);
}

// Intake questionnaires -----------------------------------------------------------------------------------------

const GENERAL_INTAKE: &str = "61a000000000000000000001";
const MEDICAID_INTAKE: &str = "61a000000000000000000002";

impl Sandbox {
    /// `POST /intakes/send` of `body`: the status and the answer.
    async fn send_intake(&self, body: Value) -> (StatusCode, Value) {
        status_and_json(self.post("/intakes/send", body).await).await
    }

    /// `GET /intakes/summary?<query>`: the summaries found.
    async fn summary(&self, query: &str) -> Value {
        let (status, found) = status_and_json(self.get(&format!("/intakes/summary?{query}")).await).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        found
    }

    async fn intakes_held(&self) -> Vec<Value> {
        self.state().await["intakes"].as_array().unwrap().clone()
    }
}

fn is_guid(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test]
async fn the_questionnaires_include_the_seed_s_general_and_medicaid_intakes() {
    let sandbox = Sandbox::start(100).await;
    let (status, listed) = status_and_json(sandbox.get("/questionnaires").await).await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed.as_array().unwrap();
    for id in [GENERAL_INTAKE, MEDICAID_INTAKE] {
        let found = listed.iter().find(|q| q["Id"] == id).unwrap_or_else(|| panic!("{id} listed: {listed:?}"));
        assert!(found["Name"].is_string() && found["Archived"] == json!(false), "{found}");
    }
}

/// Whatever column of the seeded schema holds a questionnaire id (none may exist yet), its ids are here.
#[tokio::test]
async fn the_questionnaires_include_every_questionnaire_id_the_seed_uses() {
    let sandbox = Sandbox::start(100).await;
    let (_, listed) = status_and_json(sandbox.get("/questionnaires").await).await;
    let known: BTreeSet<String> = ids(&listed).into_iter().collect();
    let database = support::database().await;
    let columns = database
        .query(
            "select format('%I.%I', table_schema, table_name), quote_ident(column_name) from information_schema.columns
              where table_schema = 'public' and column_name like '%questionnaire_id%'
                and data_type in ('text', 'character varying')",
            &[],
        )
        .await
        .unwrap();
    for column in columns {
        let (table, name): (String, String) = (column.get(0), column.get(1));
        let rows = database.query(&format!("select distinct {name} from {table} where {name} is not null"), &[]).await.unwrap();
        let seeded: BTreeSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        assert!(seeded.is_subset(&known), "{table}.{name}: {seeded:?} not all in {known:?}");
    }
}

#[tokio::test]
async fn intakes_are_sent_by_client_id_or_by_name_and_email() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("intake.pat@example.com").await;

    let (status, sent) = sandbox.send_intake(json!({"QuestionnaireId": GENERAL_INTAKE, "ClientId": client["ClientId"],
                                                     "ClientName": "Ignored Name", "ClientEmail": "ignored@example.com"})).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert!(is_guid(sent["Id"].as_str().unwrap()), "an intake id is a GUID: {sent}");
    assert_eq!((&sent["ClientId"], &sent["ClientEmail"], &sent["ClientName"]), (&client["ClientId"], &json!("intake.pat@example.com"), &json!("Pat Sample")),
               "with ClientId, name and email are ignored");
    assert_eq!((&sent["Status"], &sent["QuestionnaireId"], &sent["QuestionnaireName"]), (&json!("Sent"), &json!(GENERAL_INTAKE), &json!("General intake")));
    assert_eq!(sent["PractitionerId"], "5f1a00000000000000000001", "the main account's practitioner by default");
    let created = sent["DateCreated"].as_i64().expect("DateCreated in ms");
    assert!((chrono::Utc::now().timestamp_millis() - created).abs() < 60_000, "{created}");

    let (status, by_name) = sandbox.send_intake(json!({"QuestionnaireId": MEDICAID_INTAKE, "ClientName": "Rae Sample",
        "ClientEmail": "rae.sample@example.com", "ClientPhone": "+1 555 0100", "PractitionerId": "5f1a00000000000000000002"})).await;
    assert_eq!(status, StatusCode::OK, "{by_name}");
    assert_eq!((&by_name["ClientName"], &by_name["ClientEmail"], &by_name["PractitionerId"]),
               (&json!("Rae Sample"), &json!("rae.sample@example.com"), &json!("5f1a00000000000000000002")));
    assert_ne!(by_name["ClientId"], client["ClientId"]);
    assert_ne!(by_name["Id"], sent["Id"], "each intake has its own id");
    let state = sandbox.state().await;
    let rae = state["clients"].as_array().unwrap().iter().find(|c| c["ClientId"] == by_name["ClientId"]).cloned();
    assert_eq!(rae.map(|c| (c["FirstName"].clone(), c["LastName"].clone())), Some((json!("Rae"), json!("Sample"))), "a new email makes a client");

    let (status, again) = sandbox.send_intake(json!({"QuestionnaireId": GENERAL_INTAKE, "ClientName": "Pat Sample",
                                                      "ClientEmail": "Intake.Pat@example.com"})).await;
    assert_eq!((status, &again["ClientId"]), (StatusCode::OK, &client["ClientId"]), "a known email reuses its client");
    assert_eq!(sandbox.state().await["clients"].as_array().unwrap().len(), 2);
    let held: Vec<Value> = sandbox.intakes_held().await.iter().map(|i| i["Id"].clone()).collect();
    assert_eq!(held, [sent["Id"].clone(), by_name["Id"].clone(), again["Id"].clone()], "/_sandbox/state holds every intake sent");
}

#[tokio::test]
async fn an_unknown_client_or_questionnaire_is_rejected_and_sends_nothing() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("rejected@example.com").await;
    for (body, expected) in [
        (json!({"QuestionnaireId": GENERAL_INTAKE, "ClientId": 424_242}), "Client not found"),
        (json!({"QuestionnaireId": "61a0000000000000000000ff", "ClientId": client["ClientId"]}), "Invalid QuestionnaireId."),
        (json!({"ClientId": client["ClientId"]}), "Invalid QuestionnaireId."),
        (json!({"QuestionnaireId": GENERAL_INTAKE, "ClientId": client["ClientId"], "PractitionerId": "nobody"}), "Invalid PractitionerId."),
        (json!({"QuestionnaireId": GENERAL_INTAKE, "ClientName": "No Email"}), "ClientName and ClientEmail are required when ClientId is not given."),
    ] {
        let (status, error) = sandbox.send_intake(body.clone()).await;
        assert_eq!((status, error), (StatusCode::BAD_REQUEST, json!({"Message": expected})), "{body}");
    }
    assert!(sandbox.intakes_held().await.is_empty());
    assert_eq!(sandbox.state().await["clients"].as_array().unwrap().len(), 1, "no client made by a rejected send");
}

#[tokio::test]
async fn the_summary_lists_submitted_intakes_unless_all_and_filters_them() {
    let sandbox = Sandbox::start(1000).await;
    let pat = sandbox.new_client("summary.pat@example.com").await;
    let lee = sandbox.new_client("summary.lee@example.com").await;
    let (_, to_pat) = sandbox.send_intake(json!({"QuestionnaireId": GENERAL_INTAKE, "ClientId": pat["ClientId"]})).await;
    let (_, to_lee) = sandbox.send_intake(json!({"QuestionnaireId": MEDICAID_INTAKE, "ClientId": lee["ClientId"]})).await;

    assert_eq!(sandbox.summary("").await, json!([]), "a sent form is not listed without all=true");
    let all = sandbox.summary("all=true").await;
    assert_eq!(ids(&all), [to_pat["Id"].as_str().unwrap(), to_lee["Id"].as_str().unwrap()]);
    let first = &all[0];
    assert_eq!((&first["ClientId"], &first["ClientEmail"], &first["Status"]), (&pat["ClientId"], &json!("summary.pat@example.com"), &json!("Sent")));
    assert_eq!((&first["QuestionnaireId"], &first["DateCreated"]), (&json!(GENERAL_INTAKE), &to_pat["DateCreated"]));
    assert_eq!((&first["DateSubmitted"], &first["AppointmentId"]), (&Value::Null, &Value::Null));

    let for_lee = sandbox.summary(&format!("all=true&clientId={}", lee["ClientId"])).await;
    assert_eq!(ids(&for_lee), [to_lee["Id"].as_str().unwrap()], "clientId filters");
    assert_eq!(ids(&sandbox.summary("all=true&client=summary.pat").await), [to_pat["Id"].as_str().unwrap()], "client is part of an email or name");
    assert_eq!(sandbox.summary("all=true&clientId=999999").await, json!([]));

    // startDate/endDate: the creation's date in the practice's zone, both inclusive.
    let created = chrono::DateTime::from_timestamp_millis(to_pat["DateCreated"].as_i64().unwrap()).unwrap();
    let day = created.with_timezone(&chrono_tz::America::Denver).date_naive();
    let (yesterday, tomorrow) = (day.pred_opt().unwrap(), day.succ_opt().unwrap());
    assert_eq!(sandbox.summary(&format!("all=true&clientId={}&startDate={day}&endDate={day}", pat["ClientId"])).await.as_array().unwrap().len(), 1);
    assert_eq!(sandbox.summary(&format!("all=true&startDate={yesterday}&endDate={tomorrow}")).await.as_array().unwrap().len(), 2);
    assert_eq!(sandbox.summary(&format!("all=true&startDate={tomorrow}")).await, json!([]));
    assert_eq!(sandbox.summary(&format!("all=true&endDate={yesterday}")).await, json!([]));
    let (status, error) = status_and_json(sandbox.get("/intakes/summary?clientId=pat").await).await;
    assert_eq!((status, error), (StatusCode::BAD_REQUEST, json!({"Message": "Invalid clientId pat."})));

    // The control API stands in for the client filling the form in.
    let submit = sandbox.http.post(format!("{}/_sandbox/intakes/submit", sandbox.base)).json(&json!({"id": to_lee["Id"]}));
    assert_eq!(submit.send().await.unwrap().status(), StatusCode::OK);
    let submitted = sandbox.summary("").await;
    assert_eq!(ids(&submitted), [to_lee["Id"].as_str().unwrap()], "a submitted form is listed by default");
    assert_eq!(submitted[0]["Status"], "Completed");
    assert!(submitted[0]["DateSubmitted"].as_i64().is_some());

    // 100 a page.
    for _ in 0..100 {
        sandbox.send_intake(json!({"QuestionnaireId": GENERAL_INTAKE, "ClientId": pat["ClientId"]})).await;
    }
    let mut sizes = Vec::new();
    for n in 1..=3 {
        sizes.push(sandbox.summary(&format!("all=true&page={n}")).await.as_array().unwrap().len());
    }
    assert_eq!(sizes, [100, 2, 0]);

    let reset = sandbox.http.post(format!("{}/_sandbox/reset", sandbox.base)).send().await.unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert!(sandbox.intakes_held().await.is_empty(), "reset forgets the intakes");
}

#[tokio::test]
async fn a_late_intake_send_is_carried_out_and_the_caller_that_gave_up_finds_it() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("late.intake@example.com").await;
    let body = json!({"QuestionnaireId": MEDICAID_INTAKE, "ClientId": client["ClientId"]});
    sandbox.fault(json!({"endpoint": "POST /intakes/send", "fault": "succeed_late", "delayMs": 1000})).await;
    let impatient = sandbox.api(reqwest::Method::POST, "/intakes/send").json(&body).timeout(Duration::from_millis(300));
    assert!(impatient.send().await.unwrap_err().is_timeout(), "the caller times out");

    let found = sandbox.summary(&format!("all=true&clientId={}", client["ClientId"])).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "yet the intake was sent: {found}");
    assert_eq!((&found[0]["QuestionnaireId"], &found[0]["Status"]), (&json!(MEDICAID_INTAKE), &json!("Sent")));
    assert_eq!(sandbox.requests_to("/intakes/send").await[0]["fault"], "succeed_late");
}

#[tokio::test]
async fn the_questionnaire_endpoints_take_the_usual_faults_and_an_unauthorized_send_creates_nothing() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("intake.faults@example.com").await;
    let body = json!({"QuestionnaireId": GENERAL_INTAKE, "ClientId": client["ClientId"]});

    sandbox.fault(json!({"endpoint": "POST /intakes/send", "fault": "unauthorized"})).await;
    let (status, error) = sandbox.send_intake(body.clone()).await;
    assert_eq!((status, error), (StatusCode::UNAUTHORIZED, json!({"Message": "Authorization has been denied for this request."})));
    assert!(sandbox.intakes_held().await.is_empty(), "an unauthorized send creates nothing");

    sandbox.fault(json!({"endpoint": "POST /intakes/send", "fault": "invalid_service_id"})).await;
    let (status, error) = sandbox.send_intake(body.clone()).await;
    assert_eq!((status, error), (StatusCode::BAD_REQUEST, json!({"Message": "Invalid QuestionnaireId."})), "the send's permanent 400");
    sandbox.fault(json!({"endpoint": "POST /intakes/send", "fault": "server_error"})).await;
    assert_eq!(sandbox.send_intake(body.clone()).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    sandbox.fault(json!({"endpoint": "POST /intakes/send", "fault": "hang", "delayMs": 1000})).await;
    let impatient = sandbox.api(reqwest::Method::POST, "/intakes/send").json(&body).timeout(Duration::from_millis(300));
    assert!(impatient.send().await.unwrap_err().is_timeout());
    assert!(sandbox.intakes_held().await.is_empty(), "no fault but succeed_late and slow carries a send out");

    sandbox.fault(json!({"endpoint": "GET /intakes/summary", "fault": "rate_limited", "retryAfterSeconds": 3})).await;
    let limited = sandbox.get("/intakes/summary?all=true").await;
    assert_eq!((limited.status(), limited.headers()["retry-after"].to_str().unwrap()), (StatusCode::TOO_MANY_REQUESTS, "3"));
    sandbox.fault(json!({"endpoint": "GET /questionnaires", "fault": "non_json"})).await;
    let outage = sandbox.get("/questionnaires").await;
    assert_eq!((outage.status(), outage.headers()["content-type"].to_str().unwrap()), (StatusCode::SERVICE_UNAVAILABLE, "text/html"));

    let (status, sent) = sandbox.send_intake(body).await;
    assert_eq!(status, StatusCode::OK, "once the faults are used up, sends succeed: {sent}");
    assert_eq!(sandbox.intakes_held().await.len(), 1);
}

// One appointment, moves and cancellations, staff actions and webhooks -----------------------------------------

/// Ana Rivera, IntakeQ's id for her.
const ANA: &str = "5f1a00000000000000000001";
/// The 30-minute "Medication management" service.
const MEDICATION_MANAGEMENT: &str = "7c1e0000-0000-4000-8000-000000000006";
/// 2032-05-12T15:00:00Z, the start `Sandbox::appointment` books.
const MAY_12_15H: i64 = 1_967_986_800_000;
const HOUR_MS: i64 = 3_600_000;

impl Sandbox {
    /// A control API call (under `/_sandbox`) with an optional JSON body: its status and answer.
    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}/_sandbox{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        status_and_json(request.send().await.unwrap()).await
    }

    /// `POST /_sandbox/staff/appointments` with `body`: the appointment, which must have been created.
    async fn staff_book(&self, body: Value) -> Value {
        let (status, booked) = self.control(reqwest::Method::POST, "/staff/appointments", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{booked}");
        booked
    }

    /// `POST /_sandbox/staff/appointments/{id}/{action}` with `body`: the status and answer.
    async fn staff(&self, id: &Value, action: &str, body: Option<Value>) -> (StatusCode, Value) {
        let path = format!("/staff/appointments/{}/{action}", id.as_str().unwrap());
        self.control(reqwest::Method::POST, &path, body).await
    }

    async fn put(&self, body: Value) -> (StatusCode, Value) {
        status_and_json(self.api(reqwest::Method::PUT, "/appointments").json(&body).send().await.unwrap()).await
    }

    /// `GET /appointments/{id}`: the status and answer.
    async fn by_id(&self, id: &Value) -> (StatusCode, Value) {
        status_and_json(self.get(&format!("/appointments/{}", id.as_str().unwrap())).await).await
    }

    /// `PUT /_sandbox/webhooks` with `body`: its status.
    async fn webhooks_to(&self, body: Value) -> StatusCode {
        self.control(reqwest::Method::PUT, "/webhooks", Some(body)).await.0
    }

    async fn webhook_fault(&self, fault: Value) {
        let (status, answer) = self.control(reqwest::Method::POST, "/webhooks/faults", Some(fault.clone())).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{fault}: {answer}");
    }

    /// `GET /_sandbox/webhooks`: every delivery.
    async fn deliveries(&self) -> Vec<Value> {
        let (status, list) = self.control(reqwest::Method::GET, "/webhooks", None).await;
        assert_eq!(status, StatusCode::OK);
        list.as_array().unwrap().clone()
    }
}

/// Each delivery's `(event_type, fate, status)`.
fn fates(deliveries: &[Value]) -> Vec<(String, String, Value)> {
    deliveries
        .iter()
        .map(|d| (d["event_type"].as_str().unwrap().to_owned(), d["fate"].as_str().unwrap().to_owned(), d["status"].clone()))
        .collect()
}

fn fate(event_type: &str, fate: &str, status: Value) -> (String, String, Value) {
    (event_type.to_owned(), fate.to_owned(), status)
}

/// A webhook receiver of the test's own: it records each JSON body posted to `/hooks/secret-path` and answers
/// `status` (200 unless changed). While closed, it keeps each post waiting until it is opened.
struct Receiver {
    url: String,
    got: tokio::sync::watch::Receiver<Vec<Value>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    open: tokio::sync::watch::Sender<bool>,
}

#[derive(Clone)]
struct ReceiverState {
    got: std::sync::Arc<tokio::sync::watch::Sender<Vec<Value>>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    open: tokio::sync::watch::Receiver<bool>,
}

async fn receive(
    axum::extract::State(state): axum::extract::State<ReceiverState>,
    axum::Json(body): axum::Json<Value>,
) -> axum::http::StatusCode {
    let mut open = state.open.clone();
    let _ = open.wait_for(|open| *open).await;
    state.got.send_modify(|got| got.push(body));
    axum::http::StatusCode::from_u16(state.status.load(std::sync::atomic::Ordering::SeqCst)).unwrap()
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/secret-path", listener.local_addr().unwrap());
        let (got_tx, got) = tokio::sync::watch::channel(Vec::new());
        let (open, open_rx) = tokio::sync::watch::channel(true);
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
        let state = ReceiverState { got: std::sync::Arc::new(got_tx), status: status.clone(), open: open_rx };
        let app = axum::Router::new().route("/hooks/secret-path", axum::routing::post(receive)).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got, status, open }
    }

    /// Every body received so far.
    fn received(&self) -> Vec<Value> {
        self.got.borrow().clone()
    }

    /// Waits (at most 10 s) until `count` bodies have been received; answers them all.
    async fn wait_for(&self, count: usize) -> Vec<Value> {
        let mut got = self.got.clone();
        let waited = tokio::time::timeout(Duration::from_secs(10), got.wait_for(|got| got.len() >= count)).await;
        let received = waited.unwrap_or_else(|_| panic!("{count} webhooks within 10 s; got {:?}", self.received())).unwrap().clone();
        received
    }

    fn answer(&self, status: u16) {
        self.status.store(status, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `(EventType, Appointment.Id)` of each webhook body.
fn events(bodies: &[Value]) -> Vec<(String, String)> {
    bodies
        .iter()
        .map(|b| (b["EventType"].as_str().unwrap().to_owned(), b["Appointment"]["Id"].as_str().unwrap().to_owned()))
        .collect()
}

fn event(event_type: &str, appointment: &Value) -> (String, String) {
    (event_type.to_owned(), appointment["Id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn one_appointment_is_read_by_id_in_full_and_an_unknown_id_is_404() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("by.id@example.com").await;
    let created = sandbox.appointment_at(&client, MAY_12_15H).await;

    let (status, read) = sandbox.by_id(&created["Id"]).await;
    assert_eq!((status, &read), (StatusCode::OK, &created), "the same shape as the create's and the list's answers");
    let (_, listed) = status_and_json(sandbox.get("/appointments?client=by.id@example.com").await).await;
    assert_eq!(listed[0], read);
    for field in ["ClientName", "ClientEmail", "PractitionerId", "PractitionerEmail", "StartDate", "EndDate", "Duration", "Status", "DateCreated", "CreatedBy"] {
        assert!(!read[field].is_null(), "{field}: {read}");
    }
    assert_eq!((&read["ClientName"], &read["ClientEmail"]), (&json!("Pat Sample"), &json!("by.id@example.com")));
    assert_eq!((&read["PractitionerId"], &read["PractitionerEmail"]), (&json!(ANA), &json!("ana.rivera@example.com")));
    assert_eq!((&read["Duration"], &read["EndDate"]), (&json!(60), &json!(MAY_12_15H + HOUR_MS)));
    assert_eq!((&read["BookedByClient"], &read["CreatedBy"], &read["IntakeId"]), (&json!(false), &json!("API"), &Value::Null));

    let (status, error) = sandbox.by_id(&json!("0123456789abcdef01234567")).await;
    assert_eq!((status, error), (StatusCode::NOT_FOUND, json!({"Message": "Appointment not found."})));
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK, "settings is still settings");
}

#[tokio::test]
async fn reading_one_appointment_goes_through_the_key_the_faults_the_rate_limit_and_the_counts() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("gate@example.com").await;
    let created = sandbox.appointment_at(&client, MAY_12_15H).await;
    let path = format!("/appointments/{}", created["Id"].as_str().unwrap());

    let no_key = sandbox.http.get(format!("{}/api/v1{path}", sandbox.base)).send().await.unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    sandbox.fault(json!({"endpoint": "GET /appointments/{id}", "fault": "server_error"})).await;
    assert_eq!(sandbox.get(&path).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
    sandbox.fault(json!({"endpoint": "GET /appointments/{id}", "fault": "non_json"})).await;
    assert_eq!(sandbox.get(&path).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    sandbox.fault(json!({"endpoint": "GET /appointments", "fault": "server_error"})).await;
    assert_eq!(sandbox.get(&path).await.status(), StatusCode::OK, "the list's faults are the list's");

    let logged: Vec<(Value, Value)> = sandbox.requests_to(&path).await.iter().map(|r| (r["fault"].clone(), r["status"].clone())).collect();
    assert_eq!(logged, [(json!(null), json!(401)), (json!("server_error"), json!(500)), (json!("non_json"), json!(503)), (json!(null), json!(200))]);

    assert_eq!(sandbox.set_rate_limit(json!({"perMinute": 1})).await, StatusCode::NO_CONTENT);
    assert_eq!(sandbox.get(&path).await.status(), StatusCode::OK);
    let refused = sandbox.get(&path).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "counted by the rate limit");
    // The client, the appointment, the four reads above and these two.
    assert_eq!(sandbox.stats().await, json!({"calls": 8, "rateLimited": 1}));
}

#[tokio::test]
async fn without_client_the_list_holds_every_appointment_in_the_window_of_every_status_newest_first() {
    let sandbox = Sandbox::start(1000).await;
    let pat = sandbox.new_client("window.pat@example.com").await;
    let lee = sandbox.new_client("window.lee@example.com").await;
    let early = sandbox.appointment_at(&pat, denver_ms(2032, 5, 11, 9, 0)).await;
    let late = sandbox.appointment_at(&lee, denver_ms(2032, 5, 12, 16, 0)).await;
    let middle = sandbox.appointment_at(&pat, denver_ms(2032, 5, 12, 8, 0)).await;
    let staff = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": denver_ms(2032, 5, 11, 13, 0)})).await;
    sandbox.appointment_at(&lee, denver_ms(2032, 5, 10, 23, 59)).await; // the day before the window
    sandbox.appointment_at(&lee, denver_ms(2032, 5, 13, 0, 0)).await; // the day after
    let (status, _) = status_and_json(sandbox.post("/appointments/cancellation", json!({"AppointmentId": middle["Id"], "Reason": "x"})).await).await;
    assert_eq!(status, StatusCode::OK);

    let window = sandbox.list("startDate=2032-05-11&endDate=2032-05-12").await;
    let expected: Vec<String> = [&late, &middle, &staff, &early].iter().map(|a| a["Id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids(&window), expected, "every client's, the staff's and the cancelled one, the latest start first");
    assert_eq!(window[1]["Status"], "Canceled");
    assert_eq!(ids(&sandbox.list("startDate=2032-05-11&endDate=2032-05-12&status=Confirmed").await).len(), 3);

    // 100 a page, newest first across the pages.
    for n in 0..99 {
        sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": denver_ms(2032, 5, 11, 0, 0) + n * 60_000})).await;
    }
    let page_1 = sandbox.list("startDate=2032-05-11&endDate=2032-05-12").await;
    let page_2 = sandbox.list("startDate=2032-05-11&endDate=2032-05-12&page=2").await;
    assert_eq!((page_1.as_array().unwrap().len(), page_2.as_array().unwrap().len()), (100, 3));
    let starts: Vec<i64> = page_1.as_array().unwrap().iter().chain(page_2.as_array().unwrap()).map(|a| a["StartDate"].as_i64().unwrap()).collect();
    assert!(starts.windows(2).all(|pair| pair[0] >= pair[1]), "newest first: {starts:?}");
    assert_eq!(page_2[2]["StartDate"], denver_ms(2032, 5, 11, 0, 0), "the earliest last");
}

#[tokio::test]
async fn a_put_moves_an_appointment_keeping_its_duration_and_a_cancellation_answers_it_canceled() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("mover@example.com").await;
    let mut body = Sandbox::appointment(&client);
    body["ServiceId"] = json!(MEDICATION_MANAGEMENT);
    let (_, created) = status_and_json(sandbox.post("/appointments", body).await).await;
    assert_eq!(created["Duration"], 30);

    let (status, moved) = sandbox.put(json!({"Id": created["Id"], "UtcDateTime": MAY_12_15H + 2 * HOUR_MS, "SendClientEmailNotification": false})).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!((&moved["StartDate"], &moved["EndDate"], &moved["Duration"]), (&json!(MAY_12_15H + 2 * HOUR_MS), &json!(MAY_12_15H + 2 * HOUR_MS + 30 * 60_000), &json!(30)));
    assert_eq!((&moved["StartDateIso"], &moved["Status"], &moved["SendClientEmailNotification"]), (&json!("2032-05-12T17:00:00.000Z"), &json!("Confirmed"), &json!(false)));
    assert_eq!(sandbox.by_id(&created["Id"]).await.1, moved, "GET /appointments/{{id}} reads the move");

    // Everything is checked before anything changes.
    let (status, error) = sandbox.put(json!({"Id": created["Id"], "UtcDateTime": MAY_12_15H, "Status": "Postponed"})).await;
    assert_eq!((status, error), (StatusCode::BAD_REQUEST, json!({"Message": "Invalid Status."})));
    let (status, error) = sandbox.put(json!({"Id": created["Id"], "UtcDateTime": MAY_12_15H, "ServiceId": "nope"})).await;
    assert_eq!((status, error), (StatusCode::BAD_REQUEST, json!({"Message": "Invalid ServiceId."})));
    assert_eq!(sandbox.by_id(&created["Id"]).await.1["StartDate"], MAY_12_15H + 2 * HOUR_MS, "a rejected PUT moves nothing");

    let (status, cancelled) = status_and_json(sandbox.post("/appointments/cancellation", json!({"AppointmentId": created["Id"], "Reason": "cannot make it"})).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&cancelled["Id"], &cancelled["Status"], &cancelled["CancellationReason"]), (&created["Id"], &json!("Canceled"), &json!("cannot make it")));
    assert_eq!(cancelled["StartDate"], MAY_12_15H + 2 * HOUR_MS, "the whole appointment is answered");
    assert_eq!(sandbox.by_id(&created["Id"]).await.1, cancelled);
    let (status, again) = status_and_json(sandbox.post("/appointments/cancellation", json!({"AppointmentId": created["Id"], "Reason": "twice"})).await).await;
    assert_eq!((status, &again["Status"], &again["CancellationReason"]), (StatusCode::OK, &json!("Canceled"), &json!("cannot make it")), "a second cancellation changes nothing");

    let unknown = json!("0123456789abcdef01234567");
    let not_found = json!({"Message": "Appointment not found."});
    assert_eq!(sandbox.put(json!({"Id": unknown, "UtcDateTime": MAY_12_15H})).await, (StatusCode::BAD_REQUEST, not_found.clone()));
    let cancel_unknown = sandbox.post("/appointments/cancellation", json!({"AppointmentId": unknown, "Reason": "x"})).await;
    assert_eq!(status_and_json(cancel_unknown).await, (StatusCode::BAD_REQUEST, not_found));
}

#[tokio::test]
async fn staff_bookings_are_marked_as_staff_ones_and_take_defaults() {
    let sandbox = Sandbox::start(100).await;
    let booked = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    let id = booked["Id"].as_str().unwrap();
    assert!(id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit()), "an IntakeQ id: {id}");
    assert_eq!((&booked["CreatedBy"], &booked["BookedByClient"], &booked["Status"]), (&json!("Staff"), &json!(false), &json!("Confirmed")));
    assert_eq!((&booked["StartDate"], &booked["EndDate"], &booked["Duration"]), (&json!(MAY_12_15H), &json!(MAY_12_15H + HOUR_MS), &json!(60)));
    assert_eq!((&booked["PractitionerId"], &booked["PractitionerName"]), (&json!(ANA), &json!("Ana Rivera, MD")));
    assert!(!booked["ClientName"].as_str().unwrap().is_empty() && booked["ClientEmail"].as_str().unwrap().contains('@'), "a made-up client: {booked}");
    assert_eq!(sandbox.by_id(&booked["Id"]).await.1, booked, "IntakeQ's API sees it like any other");

    let service = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H, "ServiceId": MEDICATION_MANAGEMENT,
        "ClientName": "Rae Caller", "ClientEmail": "rae.caller@example.com", "Status": "WaitingConfirmation"})).await;
    assert_eq!((&service["Duration"], &service["EndDate"], &service["ServiceId"]), (&json!(30), &json!(MAY_12_15H + 30 * 60_000), &json!(MEDICATION_MANAGEMENT)));
    assert_eq!((&service["ClientName"], &service["ClientEmail"], &service["Status"]), (&json!("Rae Caller"), &json!("rae.caller@example.com"), &json!("WaitingConfirmation")));
    let longer = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H, "ServiceId": MEDICATION_MANAGEMENT, "Duration": 45})).await;
    assert_eq!((&longer["Duration"], &longer["EndDate"]), (&json!(45), &json!(MAY_12_15H + 45 * 60_000)));
    let client = sandbox.new_client("api.booked@example.com").await;
    let api_booked = sandbox.appointment_at(&client, MAY_12_15H).await;

    let state = sandbox.state().await;
    let staff: Vec<Value> = [&booked, &service, &longer].iter().map(|a| a["Id"].clone()).collect();
    assert_eq!(state["staffAppointments"], json!(staff), "the state tells the staff ones apart");
    assert!(!state["staffAppointments"].as_array().unwrap().contains(&api_booked["Id"]));
    assert_eq!(state["appointments"].as_array().unwrap().len(), 4);

    for (body, error) in [
        (json!({"PractitionerId": "000000000000000000000000", "UtcDateTime": MAY_12_15H}), "unknown PractitionerId"),
        (json!({"PractitionerId": ANA}), "UtcDateTime"),
        (json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H, "ServiceId": "nope"}), "unknown ServiceId"),
        (json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H, "Status": "Canceld"}), "Status must be one of"),
        (json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H, "Duration": 0}), "Duration"),
        (json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H, "Notes": "x"}), "unknown field"),
    ] {
        let (status, answer) = sandbox.control(reqwest::Method::POST, "/staff/appointments", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer["error"].as_str().unwrap().contains(error), "{body}: {answer}");
    }
    assert_eq!(sandbox.state().await["appointments"].as_array().unwrap().len(), 4, "refused bookings make nothing");
    assert_eq!(sandbox.stats().await, json!({"calls": 3, "rateLimited": 0}), "staff actions are not API calls");
}

#[tokio::test]
async fn staff_move_and_cancel_any_appointment_the_api_s_too() {
    let sandbox = Sandbox::start(100).await;
    let client = sandbox.new_client("ours@example.com").await;
    let mut body = Sandbox::appointment(&client);
    body["ServiceId"] = json!(MEDICATION_MANAGEMENT);
    let (_, ours) = status_and_json(sandbox.post("/appointments", body).await).await;

    let (status, moved) = sandbox.staff(&ours["Id"], "reschedule", Some(json!({"UtcDateTime": MAY_12_15H + 3 * HOUR_MS}))).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!((&moved["StartDate"], &moved["EndDate"], &moved["Duration"]), (&json!(MAY_12_15H + 3 * HOUR_MS), &json!(MAY_12_15H + 3 * HOUR_MS + 30 * 60_000), &json!(30)));
    assert_eq!(moved["CreatedBy"], "API", "still the API's appointment");
    assert_eq!(sandbox.by_id(&ours["Id"]).await.1, moved, "the API reads the staff's move");

    let (status, cancelled) = sandbox.staff(&ours["Id"], "cancel", None).await;
    assert_eq!((status, &cancelled["Status"]), (StatusCode::OK, &json!("Canceled")));
    assert_eq!(sandbox.by_id(&ours["Id"]).await.1["Status"], "Canceled");
    let (status, again) = sandbox.staff(&ours["Id"], "cancel", Some(json!({"Reason": "duplicate"}))).await;
    assert_eq!((status, &again["Status"], &again["CancellationReason"]), (StatusCode::OK, &json!("Canceled"), &Value::Null), "already cancelled: unchanged");
    let (status, refused) = sandbox.staff(&ours["Id"], "reschedule", Some(json!({"UtcDateTime": MAY_12_15H}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "a cancelled appointment is not moved: {refused}");
    assert!(refused["error"].as_str().unwrap().contains("Canceled"));

    let staff_one = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    let (status, reason) = sandbox.staff(&staff_one["Id"], "cancel", Some(json!({"Reason": "called in sick"}))).await;
    assert_eq!((status, &reason["CancellationReason"]), (StatusCode::OK, &json!("called in sick")));

    let unknown = json!("0123456789abcdef01234567");
    assert_eq!(sandbox.staff(&unknown, "cancel", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(sandbox.staff(&unknown, "reschedule", Some(json!({"UtcDateTime": MAY_12_15H}))).await.0, StatusCode::NOT_FOUND);
    assert_eq!(sandbox.staff(&staff_one["Id"], "reschedule", Some(json!({}))).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(sandbox.stats().await, json!({"calls": 4, "rateLimited": 0}), "the client, the create, two reads: staff actions are not API calls");
}

#[tokio::test]
async fn a_staff_deletion_is_gone_from_the_api_and_sends_no_webhook() {
    let sandbox = Sandbox::start(100).await;
    let receiver = Receiver::start().await;
    assert_eq!(sandbox.webhooks_to(json!({"url": receiver.url})).await, StatusCode::NO_CONTENT);
    let staff_one = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    let before = receiver.received().len();
    let path = format!("/staff/appointments/{}", staff_one["Id"].as_str().unwrap());
    let (status, deleted) = sandbox.control(reqwest::Method::DELETE, &path, None).await;
    assert_eq!((status, &deleted["Id"]), (StatusCode::OK, &staff_one["Id"]), "{deleted}");
    assert_eq!(sandbox.by_id(&staff_one["Id"]).await.0, StatusCode::NOT_FOUND, "IntakeQ has it no more");
    assert_eq!(receiver.received().len(), before, "IntakeQ's webhooks have no event for a deletion");
    assert_eq!(sandbox.control(reqwest::Method::DELETE, &path, None).await.0, StatusCode::NOT_FOUND, "nor a second time");
}

#[tokio::test]
async fn staff_actions_post_intakeq_s_webhook_before_they_answer() {
    let sandbox = Sandbox::start(100).await;
    let receiver = Receiver::start().await;
    assert_eq!(sandbox.webhooks_to(json!({"url": receiver.url})).await, StatusCode::NO_CONTENT);

    let booked = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "delivered before the control call answered: {received:?}");
    assert_eq!(received[0], json!({"EventType": "AppointmentCreated", "ActionPerformedByClient": false, "Appointment": booked}));

    let (_, moved) = sandbox.staff(&booked["Id"], "reschedule", Some(json!({"UtcDateTime": MAY_12_15H + HOUR_MS}))).await;
    assert_eq!(receiver.received()[1], json!({"EventType": "AppointmentRescheduled", "ActionPerformedByClient": false, "Appointment": moved}));
    assert_eq!(receiver.received()[1]["Appointment"]["StartDate"], MAY_12_15H + HOUR_MS);
    sandbox.staff(&booked["Id"], "reschedule", Some(json!({"UtcDateTime": MAY_12_15H + HOUR_MS}))).await;
    assert_eq!(receiver.received().len(), 2, "the same start is no change, and sends nothing");
    let (_, cancelled) = sandbox.staff(&booked["Id"], "cancel", None).await;
    assert_eq!(receiver.received()[2], json!({"EventType": "AppointmentCanceled", "ActionPerformedByClient": false, "Appointment": cancelled}));
    sandbox.staff(&booked["Id"], "cancel", None).await;
    assert_eq!(receiver.received().len(), 3, "cancelling a cancelled one sends nothing");

    let deliveries = sandbox.deliveries().await;
    assert_eq!(fates(&deliveries), [
        fate("AppointmentCreated", "delivered", json!(200)),
        fate("AppointmentRescheduled", "delivered", json!(200)),
        fate("AppointmentCanceled", "delivered", json!(200)),
    ]);
    assert!(deliveries.iter().all(|d| d["appointment_id"] == booked["Id"] && d["at"].is_i64() && d["error"].is_null()), "{deliveries:?}");
    assert_eq!(sandbox.state().await["webhooks"]["url"], json!(receiver.url));

    // A staff action on an appointment made through the API is sent too.
    let client = sandbox.new_client("hooked@example.com").await;
    assert_eq!(sandbox.webhooks_to(json!({"url": receiver.url, "apiChanges": false})).await, StatusCode::NO_CONTENT);
    let ours = sandbox.appointment_at(&client, MAY_12_15H).await;
    let (_, moved) = sandbox.staff(&ours["Id"], "reschedule", Some(json!({"UtcDateTime": MAY_12_15H - HOUR_MS}))).await;
    assert_eq!(events(&receiver.received()[3..]), [event("AppointmentRescheduled", &ours)], "the API's create was not sent, the staff's move was");
    assert_eq!(receiver.received()[3]["Appointment"], moved);
}

#[tokio::test]
async fn api_changes_are_sent_in_the_background_after_the_call_unless_turned_off() {
    let sandbox = Sandbox::start(100).await;
    let receiver = Receiver::start().await;
    assert_eq!(sandbox.webhooks_to(json!({"url": receiver.url})).await, StatusCode::NO_CONTENT, "apiChanges defaults to true");
    let client = sandbox.new_client("background@example.com").await;

    // The receiver keeps the post waiting: the API call answers all the same.
    receiver.open.send_replace(false);
    let created = tokio::time::timeout(Duration::from_secs(5), sandbox.appointment_at(&client, MAY_12_15H)).await.expect("not held up by the webhook");
    assert!(receiver.received().is_empty());
    assert_eq!(fates(&sandbox.deliveries().await), [fate("AppointmentCreated", "pending", Value::Null)], "decided at once, posted in the background");
    receiver.open.send_replace(true);
    let received = receiver.wait_for(1).await;
    assert_eq!(received[0], json!({"EventType": "AppointmentCreated", "ActionPerformedByClient": false, "Appointment": created}));

    let (_, moved) = sandbox.put(json!({"Id": created["Id"], "UtcDateTime": MAY_12_15H + HOUR_MS})).await;
    sandbox.put(json!({"Id": created["Id"], "Notes": "no event for notes"})).await;
    let (_, cancelled) = status_and_json(sandbox.post("/appointments/cancellation", json!({"AppointmentId": created["Id"], "Reason": "x"})).await).await;
    sandbox.post("/appointments/cancellation", json!({"AppointmentId": created["Id"], "Reason": "x"})).await;
    let received = receiver.wait_for(3).await;
    assert_eq!(events(&received), [event("AppointmentCreated", &created), event("AppointmentRescheduled", &created), event("AppointmentCanceled", &created)]);
    assert_eq!((&received[1]["Appointment"]["StartDate"], &received[1]["Appointment"]["Status"]), (&moved["StartDate"], &json!("Confirmed")));
    assert_eq!(received[2]["Appointment"]["Status"], cancelled["Status"]);

    // apiChanges false: API changes send nothing (decided at the call: nothing is logged), staff ones still go out.
    assert_eq!(sandbox.webhooks_to(json!({"url": receiver.url, "apiChanges": false})).await, StatusCode::NO_CONTENT);
    let quiet = sandbox.appointment_at(&client, MAY_12_15H + 2 * HOUR_MS).await;
    sandbox.put(json!({"Id": quiet["Id"], "UtcDateTime": MAY_12_15H + 3 * HOUR_MS})).await;
    assert_eq!(sandbox.deliveries().await.len(), 3);
    sandbox.staff(&quiet["Id"], "cancel", None).await;
    assert_eq!(events(&receiver.received()[3..]), [event("AppointmentCanceled", &quiet)], "deliveries go in order: nothing API-made came before");

    // No URL: nothing at all.
    assert_eq!(sandbox.webhooks_to(json!({"url": null})).await, StatusCode::NO_CONTENT);
    sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    assert_eq!((receiver.received().len(), sandbox.deliveries().await.len()), (4, 4));
}

#[tokio::test]
async fn a_receiver_that_fails_or_cannot_be_reached_is_logged_and_not_retried() {
    let sandbox = Sandbox::start(100).await;
    let receiver = Receiver::start().await;
    sandbox.webhooks_to(json!({"url": receiver.url})).await;
    receiver.answer(500);
    let booked = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    receiver.answer(200);
    sandbox.staff(&booked["Id"], "cancel", None).await;
    assert_eq!(events(&receiver.received()), [event("AppointmentCreated", &booked), event("AppointmentCanceled", &booked)], "the failed one was not posted again");

    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let unreachable = format!("http://{}/hooks/secret-path", gone.local_addr().unwrap());
    drop(gone);
    sandbox.webhooks_to(json!({"url": unreachable})).await;
    let (status, _) = sandbox.staff(&booked["Id"], "reschedule", Some(json!({"UtcDateTime": MAY_12_15H}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "a cancelled one cannot move");
    let other = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    assert_eq!(other["Status"], "Confirmed", "the staff action succeeds whatever the receiver does");

    let deliveries = sandbox.deliveries().await;
    assert_eq!(fates(&deliveries), [
        fate("AppointmentCreated", "delivered", json!(500)),
        fate("AppointmentCanceled", "delivered", json!(200)),
        fate("AppointmentCreated", "delivered", Value::Null),
    ]);
    let error = deliveries[2]["error"].as_str().expect("why it got no answer");
    assert!(error.starts_with("could not connect"), "{error}");
    assert!(!error.contains("secret-path"), "the URL (and its secret) is not logged: {error}");
}

#[tokio::test]
async fn deliveries_can_be_lost_repeated_or_held_and_released_out_of_order() {
    let sandbox = Sandbox::start(100).await;
    let receiver = Receiver::start().await;
    sandbox.webhooks_to(json!({"url": receiver.url})).await;

    sandbox.webhook_fault(json!({"lose": 1})).await;
    let booked = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    assert!(receiver.received().is_empty(), "lost");

    sandbox.webhook_fault(json!({"repeat": 1})).await;
    sandbox.staff(&booked["Id"], "reschedule", Some(json!({"UtcDateTime": MAY_12_15H + HOUR_MS}))).await;
    let received = receiver.received();
    assert_eq!(received.len(), 2, "repeated: delivered twice before the answer");
    assert_eq!(received[0], received[1]);

    sandbox.webhook_fault(json!({"hold": 2})).await;
    let (_, moved) = sandbox.staff(&booked["Id"], "reschedule", Some(json!({"UtcDateTime": MAY_12_15H + 2 * HOUR_MS}))).await;
    sandbox.staff(&booked["Id"], "cancel", None).await;
    assert_eq!(receiver.received().len(), 2, "held back");
    assert_eq!(sandbox.state().await["webhooks"]["held"], 2);

    let (status, released) = sandbox.control(reqwest::Method::POST, "/webhooks/release", Some(json!({"order": "reverse"}))).await;
    assert_eq!(status, StatusCode::OK, "{released}");
    let released: Vec<Value> = released.as_array().unwrap().clone();
    assert_eq!(fates(&released), [fate("AppointmentCanceled", "released", json!(200)), fate("AppointmentRescheduled", "released", json!(200))]);
    let received = receiver.received();
    assert_eq!(events(&received[2..]), [event("AppointmentCanceled", &booked), event("AppointmentRescheduled", &booked)], "delivered before the release answered, out of order");
    assert_eq!(received[3]["Appointment"], moved, "the late one carries the appointment as it was then");
    assert_eq!(received[3]["Appointment"]["Status"], "Confirmed");

    assert_eq!(fates(&sandbox.deliveries().await), [
        fate("AppointmentCreated", "lost", Value::Null),
        fate("AppointmentRescheduled", "delivered", json!(200)),
        fate("AppointmentRescheduled", "delivered", json!(200)),
        fate("AppointmentRescheduled", "released", json!(200)),
        fate("AppointmentCanceled", "released", json!(200)),
    ]);

    // Held ones released in the order sent (the default), and a release with nothing held.
    sandbox.webhook_fault(json!({"hold": 2})).await;
    let first = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    let second = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H + HOUR_MS})).await;
    let (status, released) = sandbox.control(reqwest::Method::POST, "/webhooks/release", None).await;
    assert_eq!((status, released.as_array().unwrap().len()), (StatusCode::OK, 2));
    assert_eq!(events(&receiver.received()[4..]), [event("AppointmentCreated", &first), event("AppointmentCreated", &second)]);
    assert_eq!(sandbox.control(reqwest::Method::POST, "/webhooks/release", Some(json!({"order": "sent"}))).await, (StatusCode::OK, json!([])));

    // Faults apply to API changes too, and can be cleared.
    sandbox.webhook_fault(json!({"lose": 5})).await;
    let (status, _) = sandbox.control(reqwest::Method::DELETE, "/webhooks/faults", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    sandbox.webhook_fault(json!({"hold": 1})).await;
    let client = sandbox.new_client("held.api@example.com").await;
    let ours = sandbox.appointment_at(&client, MAY_12_15H).await;
    assert_eq!(fates(&sandbox.deliveries().await).last().unwrap(), &fate("AppointmentCreated", "held", Value::Null));
    sandbox.control(reqwest::Method::POST, "/webhooks/release", None).await;
    assert_eq!(events(&receiver.received()[6..]), [event("AppointmentCreated", &ours)]);

    for (path, body) in [
        ("/webhooks/faults", json!({"lose": 1, "hold": 1})),
        ("/webhooks/faults", json!({"drop": 1})),
        ("/webhooks/faults", json!({})),
        ("/webhooks/release", json!({"order": "random"})),
    ] {
        let (status, answer) = sandbox.control(reqwest::Method::POST, path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert!(answer["error"].is_string(), "{answer}");
    }
}

#[tokio::test]
async fn the_webhook_target_is_checked_and_a_reset_forgets_it_with_its_faults_and_log() {
    let sandbox = Sandbox::start(100).await;
    let receiver = Receiver::start().await;
    for body in [json!({"url": "https://example.com/hook"}), json!({"url": "not a url"}), json!({"url": receiver.url, "secret": "x"}), json!({"url": 5})] {
        let (status, answer) = sandbox.control(reqwest::Method::PUT, "/webhooks", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!(sandbox.state().await["webhooks"], json!({"url": null, "apiChanges": true, "faults": [], "held": 0}));

    sandbox.webhooks_to(json!({"url": receiver.url, "apiChanges": false})).await;
    sandbox.webhook_fault(json!({"hold": 1})).await;
    sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    sandbox.webhook_fault(json!({"lose": 3})).await;
    let state = sandbox.state().await;
    assert_eq!(state["webhooks"], json!({"url": receiver.url, "apiChanges": false, "faults": [{"fault": "lose", "count": 3}], "held": 1}));
    assert_eq!(state["staffAppointments"].as_array().unwrap().len(), 1);

    let (status, _) = sandbox.control(reqwest::Method::POST, "/reset", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sandbox.deliveries().await.is_empty(), "the log is gone");
    let state = sandbox.state().await;
    assert_eq!(state["webhooks"], json!({"url": null, "apiChanges": true, "faults": [], "held": 0}));
    assert_eq!(state["staffAppointments"], json!([]));
    assert_eq!(sandbox.control(reqwest::Method::POST, "/webhooks/release", None).await, (StatusCode::OK, json!([])), "the held one is gone");

    sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    assert!(sandbox.deliveries().await.is_empty(), "no URL after a reset");
    sandbox.webhooks_to(json!({"url": receiver.url})).await;
    let booked = sandbox.staff_book(json!({"PractitionerId": ANA, "UtcDateTime": MAY_12_15H})).await;
    assert_eq!(events(&receiver.received()), [event("AppointmentCreated", &booked)], "no fault left: delivered");
}
