//! The `Intakeq` trait over workerd's fetch: `X-Auth-Key`, JSON, the request id upstream, and a timeout per
//! call (INTAKEQ_TIMEOUT_MS). A call that times out is abandoned here, but IntakeQ may still carry it out:
//! the sync treats that as ambiguous.

use std::time::Duration;

use chrono::NaiveDate;

use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::{Fetch, Headers, Method, Request, RequestInit, Url};

use super::wire::{is_appointment_id, Appointment, AppointmentMove, Cancellation, Client, Intake, NewAppointment, NewClient, NewIntake};
use super::{answer, Intakeq, IntakeqError, IntakeqSettings};
use crate::support::deadline::within;
use crate::support::secret::Secret;

pub struct IntakeqFetch {
    base_url: String,
    api_key: Secret,
    timeout: Duration,
    request_id: String,
}

impl IntakeqFetch {
    pub fn new(settings: &IntakeqSettings, request_id: &str) -> Self {
        IntakeqFetch {
            base_url: settings.base_url.clone(),
            api_key: settings.api_key.clone(),
            timeout: Duration::from_millis(settings.timeout_ms),
            request_id: request_id.to_owned(),
        }
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, query: &[(&str, &str)], body: Option<String>) -> Result<T, IntakeqError> {
        let (status, retry_after, text) = self.exchange(method, path, query, body).await?;
        answer::read(status, retry_after.as_deref(), &text)
    }

    /// One request and its whole answer (status, `Retry-After`, body), within the timeout.
    async fn exchange(&self, method: Method, path: &str, query: &[(&str, &str)], body: Option<String>)
        -> Result<(u16, Option<String>, String), IntakeqError> {
        let url = Url::parse_with_params(&format!("{}{path}", self.base_url), query)
            .map_err(|e| IntakeqError::Unreachable(format!("bad INTAKEQ_BASE_URL: {e}")))?;
        let headers = Headers::new();
        let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| IntakeqError::Unreachable(e.to_string()));
        set("X-Auth-Key", self.api_key.expose())?;
        set("Accept", "application/json")?;
        set("X-Request-Id", &self.request_id)?;
        let mut init = RequestInit::new();
        init.with_method(method);
        if let Some(body) = body {
            set("Content-Type", "application/json")?;
            init.with_body(Some(JsValue::from_str(&body)));
        }
        init.with_headers(headers);
        let request = Request::new_with_init(url.as_str(), &init).map_err(|e| IntakeqError::Unreachable(e.to_string()))?;
        let exchange = async {
            let mut response = Fetch::Request(request).send().await.map_err(|e| IntakeqError::Unreachable(e.to_string()))?;
            let retry_after = response.headers().get("retry-after").ok().flatten();
            let text = response.text().await.map_err(|e| IntakeqError::Unreachable(e.to_string()))?;
            Ok((response.status_code(), retry_after, text))
        };
        // The whole exchange, the answer's body included, within the timeout: a lease is sized by it.
        within(self.timeout, exchange).await.ok_or(IntakeqError::TimedOut)?
    }
}

fn json<T: serde::Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

impl Intakeq for IntakeqFetch {
    async fn search_clients(&self, search: &str, page: u32) -> Result<Vec<Client>, IntakeqError> {
        let page = page.to_string();
        self.call(Method::Get, "/clients", &[("search", search), ("includeProfile", "true"), ("page", &page)], None).await
    }

    async fn create_client(&self, client: &NewClient) -> Result<Client, IntakeqError> {
        self.call(Method::Post, "/clients", &[], json(client)).await
    }

    async fn appointments_between(&self, client_email: &str, from: NaiveDate, to: NaiveDate, page: u32) -> Result<Vec<Appointment>, IntakeqError> {
        let (from, to, page) = (from.format("%Y-%m-%d").to_string(), to.format("%Y-%m-%d").to_string(), page.to_string());
        let query = [("client", client_email), ("startDate", &from), ("endDate", &to), ("page", &page)];
        self.call(Method::Get, "/appointments", &query, None).await
    }

    async fn appointments_of_practice(&self, from: NaiveDate, to: NaiveDate, page: u32) -> Result<Vec<Appointment>, IntakeqError> {
        let (from, to, page) = (from.format("%Y-%m-%d").to_string(), to.format("%Y-%m-%d").to_string(), page.to_string());
        self.call(Method::Get, "/appointments", &[("startDate", &from), ("endDate", &to), ("page", &page)], None).await
    }

    async fn appointment(&self, id: &str) -> Result<Option<Appointment>, IntakeqError> {
        if !is_appointment_id(id) {
            return Err(IntakeqError::Rejected { status: 400, message: "not an IntakeQ appointment id".into() });
        }
        match self.call(Method::Get, &format!("/appointments/{id}"), &[], None).await {
            Err(IntakeqError::NotFound) => Ok(None),
            answer => answer.map(Some),
        }
    }

    async fn create_appointment(&self, appointment: &NewAppointment) -> Result<Appointment, IntakeqError> {
        self.call(Method::Post, "/appointments", &[], json(appointment)).await
    }

    async fn move_appointment(&self, change: &AppointmentMove) -> Result<Appointment, IntakeqError> {
        self.call(Method::Put, "/appointments", &[], json(change)).await
    }

    async fn cancel_appointment(&self, cancellation: &Cancellation) -> Result<(), IntakeqError> {
        let (status, retry_after, text) = self.exchange(Method::Post, "/appointments/cancellation", &[], json(cancellation)).await?;
        answer::read_done(status, retry_after.as_deref(), &text)
    }

    async fn send_intake(&self, intake: &NewIntake) -> Result<Intake, IntakeqError> {
        self.call(Method::Post, "/intakes/send", &[], json(intake)).await
    }

    async fn intakes_of(&self, client_id: u64, page: u32) -> Result<Vec<Intake>, IntakeqError> {
        let (client_id, page) = (client_id.to_string(), page.to_string());
        self.call(Method::Get, "/intakes/summary", &[("clientId", &client_id), ("all", "true"), ("page", &page)], None).await
    }
}
