//! Cloudflare Turnstile's siteverify over workerd's fetch: `POST` form-encoded `secret`, `response` (the token)
//! and `remoteip`; the answer's `success` is the verdict.

use std::time::Duration;

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{Fetch, Headers, Method, Request, RequestInit};

use crate::support::deadline::within;
use crate::support::secret::Secret;

pub struct Turnstile {
    verify_url: String,
    secret: Secret,
    timeout: Duration,
}

impl Turnstile {
    pub fn new(verify_url: String, secret: Secret, timeout: Duration) -> Self {
        Turnstile { verify_url, secret, timeout }
    }

    pub async fn verify(&self, token: &str, address: Option<&str>) -> Result<bool, String> {
        #[derive(Deserialize)]
        struct Verdict {
            success: bool,
        }
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("secret", self.secret.expose()).append_pair("response", token);
        if let Some(address) = address {
            form.append_pair("remoteip", address);
        }
        let headers = Headers::new();
        headers.set("Content-Type", "application/x-www-form-urlencoded").map_err(|e| e.to_string())?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(JsValue::from_str(&form.finish())));
        let request = Request::new_with_init(&self.verify_url, &init).map_err(|e| e.to_string())?;
        let exchange = async {
            let mut response = Fetch::Request(request).send().await.map_err(|e| e.to_string())?;
            if !(200..300).contains(&response.status_code()) {
                return Err(format!("siteverify answered {}", response.status_code()));
            }
            let verdict: Verdict = response.json().await.map_err(|e| format!("siteverify's answer: {e}"))?;
            Ok(verdict.success)
        };
        within(self.timeout, exchange).await.unwrap_or_else(|| Err("siteverify did not answer in time".into()))
    }
}
