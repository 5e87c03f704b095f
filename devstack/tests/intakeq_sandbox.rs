//! The IntakeQ sandbox as a client sees it: each endpoint's happy path, IntakeQ's errors and rate limit, and
//! every fault the control API can inject, including the succeed-late trap.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

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
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().get("retry-after").is_none(), "IntakeQ does not promise a Retry-After");

    let raised = sandbox.http.put(format!("{}/_sandbox/rate-limit", sandbox.base)).json(&json!({"perMinute": 50}));
    assert_eq!(raised.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(sandbox.get("/appointments/settings").await.status(), StatusCode::OK, "the limit is configurable");
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
