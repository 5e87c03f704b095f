//! Alerts to the practice's chat webhook over workerd's fetch: `POST {"text": ...}` (what Slack's incoming
//! webhooks and most chat tools take), within a timeout.

use std::time::Duration;

use wasm_bindgen::JsValue;
use worker::{Fetch, Headers, Method, Request, RequestInit};

use super::AlertSender;
use crate::support::deadline::within;
use crate::support::secret::Secret;

pub struct Webhook {
    url: Secret,
    timeout: Duration,
}

impl Webhook {
    pub fn new(url: Secret, timeout: Duration) -> Self {
        Webhook { url, timeout }
    }
}

impl AlertSender for Webhook {
    async fn send(&self, text: &str) -> Result<(), String> {
        let headers = Headers::new();
        headers.set("Content-Type", "application/json").map_err(|e| e.to_string())?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers);
        init.with_body(Some(JsValue::from_str(&serde_json::json!({ "text": text }).to_string())));
        let request = Request::new_with_init(self.url.expose(), &init).map_err(|e| e.to_string())?;
        let exchange = async {
            let response = Fetch::Request(request).send().await.map_err(|e| e.to_string())?;
            match response.status_code() {
                200..=299 => Ok(()),
                status => Err(format!("the webhook answered {status}")),
            }
        };
        within(self.timeout, exchange).await.unwrap_or_else(|| Err("the webhook did not answer in time".into()))
    }
}
