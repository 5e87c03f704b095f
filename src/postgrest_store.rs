//! The `BookingStore` over PostgREST RPC (the `postgrest` crate, reqwest over workerd's fetch), with the
//! service role key, the request id sent upstream as `X-Request-Id`, and a timeout per call.

use std::time::Duration;

use futures::future::{select, Either};
use postgrest::Postgrest;
use serde_json::{json, Value};

use crate::config::Config;
use crate::request_id::RequestId;
use crate::store::{error_from_postgrest, Booked, BookingStore, FailureRecord, StoreError};

pub struct PostgrestStore {
    client: Postgrest,
    timeout: Duration,
}

impl PostgrestStore {
    pub fn new(config: &Config, request_id: &RequestId) -> Self {
        let client = Postgrest::new(format!("{}/rest/v1", config.supabase_url))
            .insert_header("apikey", &config.service_role_key)
            .insert_header("Authorization", format!("Bearer {}", config.service_role_key))
            .insert_header("X-Request-Id", request_id.as_str());
        PostgrestStore { client, timeout: Duration::from_millis(config.database_timeout_ms) }
    }

    /// Calls `function`; answers the body of a 2xx, or the error in the store's terms.
    async fn rpc(&self, function: &str, arguments: &Value) -> Result<String, StoreError> {
        let call = Box::pin(self.client.rpc(function, arguments.to_string()).execute());
        let deadline = futures_timer::Delay::new(self.timeout);
        let response = match select(call, deadline).await {
            Either::Left((Ok(response), _)) => response,
            Either::Left((Err(error), _)) => return Err(StoreError::Unavailable { detail: format!("{function}: {error}") }),
            Either::Right(_) => {
                return Err(StoreError::Unavailable { detail: format!("{function}: no answer within {:?}", self.timeout) })
            }
        };
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|error| StoreError::Unavailable { detail: format!("{function}: reading the answer: {error}") })?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(error_from_postgrest(status, &body))
        }
    }
}

impl BookingStore for PostgrestStore {
    async fn book(&self, arguments: &Value) -> Result<Booked, StoreError> {
        let body = self.rpc("book_appointment", arguments).await?;
        serde_json::from_str(&body).map_err(|error| StoreError::Unexpected {
            status: Some(200),
            detail: format!("book_appointment answered an unexpected shape: {error}"),
        })
    }

    async fn record_failure(&self, failure: &FailureRecord) -> Result<(), StoreError> {
        let arguments = json!({
            "p_request_id": failure.request_id,
            "p_step": failure.step,
            "p_code": failure.code,
            "p_message": failure.message,
            "p_http_status": failure.http_status,
            "p_detail": failure.detail,
        });
        self.rpc("record_booking_failure", &arguments).await.map(|_| ())
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.rpc("health_check", &json!({})).await.map(|_| ())
    }
}
