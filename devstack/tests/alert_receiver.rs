//! The staff-alert receiver as a poster sees it: a post is recorded and listed, a bad body is refused, and
//! injected faults fail or hang the next posts without recording them.

use std::time::Duration;

use devstack::alert_receiver::{self, AlertReceiverConfig};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

struct Receiver {
    base: String,
    http: Client,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = AlertReceiverConfig { default_delay: Duration::from_secs(30) };
        tokio::spawn(alert_receiver::serve(listener, config, std::future::pending()));
        Receiver { base, http: Client::new() }
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap()
    }

    async fn messages(&self) -> Vec<Value> {
        let response = self.http.get(format!("{}/_receiver/messages", self.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap().as_array().unwrap().clone()
    }

    async fn fault(&self, fault: Value) {
        let response = self.http.post(format!("{}/_receiver/faults", self.base)).json(&fault).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "fault accepted: {fault}");
    }
}

async fn status_and_text(response: Response) -> (StatusCode, String) {
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_post_is_answered_ok_recorded_and_listed_in_order() {
    let receiver = Receiver::start().await;
    let first = json!({"text": "Booking 42 is dead: Invalid ServiceId."});
    assert_eq!(status_and_text(receiver.post("/hooks/T000/B000/secret", first.clone()).await).await, (StatusCode::OK, "ok".into()));
    let second = json!({"text": "IntakeQ refuses the key", "blocks": []});
    assert_eq!(receiver.post("/hooks/staff", second.clone()).await.status(), StatusCode::OK);

    let messages = receiver.messages().await;
    assert_eq!(messages.len(), 2);
    assert_eq!((&messages[0]["path"], &messages[0]["body"]), (&json!("/hooks/T000/B000/secret"), &first));
    assert_eq!((&messages[1]["path"], &messages[1]["body"]), (&json!("/hooks/staff"), &second));
    let now = chrono::Utc::now().timestamp_millis();
    assert!(messages.iter().all(|m| (now - m["at"].as_i64().unwrap()).abs() < 60_000), "{messages:?}");

    let reset = receiver.http.post(format!("{}/_receiver/reset", receiver.base)).send().await.unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert!(receiver.messages().await.is_empty(), "reset forgets the messages");
}

#[tokio::test]
async fn a_body_without_a_string_text_is_refused_and_not_recorded() {
    let receiver = Receiver::start().await;
    let not_json = receiver.http.post(format!("{}/hooks/staff", receiver.base)).body("text=hello").send().await.unwrap();
    assert_eq!(status_and_text(not_json).await, (StatusCode::BAD_REQUEST, "invalid_payload".into()));
    for body in [json!({"message": "hello"}), json!({"text": 5}), json!(["text"])] {
        assert_eq!(status_and_text(receiver.post("/hooks/staff", body.clone()).await).await, (StatusCode::BAD_REQUEST, "no_text".into()), "{body}");
    }
    assert!(receiver.messages().await.is_empty());
    let unknown = receiver.http.post(format!("{}/_receiver/faults", receiver.base)).json(&json!({"fault": "teapot"}));
    assert_eq!(unknown.send().await.unwrap().status(), StatusCode::BAD_REQUEST, "an unknown fault is refused");
}

#[tokio::test]
async fn a_server_error_fault_fails_its_count_of_posts_then_posts_succeed() {
    let receiver = Receiver::start().await;
    receiver.fault(json!({"fault": "server_error", "count": 2})).await;
    for attempt in 1..=2 {
        let response = receiver.post("/hooks/staff", json!({"text": format!("attempt {attempt}")})).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "attempt {attempt}");
    }
    assert!(receiver.messages().await.is_empty(), "failed posts are not recorded");
    assert_eq!(receiver.post("/hooks/staff", json!({"text": "attempt 3"})).await.status(), StatusCode::OK);
    let messages = receiver.messages().await;
    assert_eq!(messages.iter().map(|m| m["body"]["text"].clone()).collect::<Vec<_>>(), [json!("attempt 3")]);
}

#[tokio::test]
async fn a_hang_fault_keeps_the_poster_waiting_and_records_nothing() {
    let receiver = Receiver::start().await;
    receiver.fault(json!({"fault": "hang", "delayMs": 1000})).await;
    let impatient = receiver.http.post(format!("{}/hooks/staff", receiver.base)).json(&json!({"text": "hello"}));
    assert!(impatient.timeout(Duration::from_millis(300)).send().await.unwrap_err().is_timeout());
    assert!(receiver.messages().await.is_empty());
    assert_eq!(receiver.post("/hooks/staff", json!({"text": "hello"})).await.status(), StatusCode::OK, "one post only");
    assert_eq!(receiver.messages().await.len(), 1);
}
