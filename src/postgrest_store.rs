//! The `BookingStore` over PostgREST RPC (the `postgrest` crate, reqwest over workerd's fetch), with the
//! service role key, the request id sent upstream as `X-Request-Id`, and a timeout per call.

use std::time::Duration;

use futures::future::{select, Either};
use postgrest::Postgrest;
use serde_json::{json, Value};

use crate::config::Config;
use crate::request_id::RequestId;
use crate::store::{error_from_postgrest, Booked, BookingStore, FailureRecord, StoreError};
use crate::sync::SyncOutcome;
use crate::sync_store::{SyncJob, SyncReport, SyncStore};

pub struct PostgrestStore {
    client: Postgrest,
    timeout: Duration,
}

impl PostgrestStore {
    /// `request_id` goes upstream as `X-Request-Id` (a cron run passes its runner id).
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
        parsed("book_appointment", &self.rpc("book_appointment", arguments).await?)
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

fn parsed<T: serde::de::DeserializeOwned>(function: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|error| StoreError::Unexpected {
        status: Some(200),
        detail: format!("{function} answered an unexpected shape: {error}"),
    })
}

impl SyncStore for PostgrestStore {
    async fn claim_sync_jobs(&self, runner: &str, limit: u32, lease_seconds: u32) -> Result<Vec<SyncJob>, StoreError> {
        let arguments = json!({"p_runner": runner, "p_limit": limit, "p_lease_seconds": lease_seconds});
        parsed("claim_sync_jobs", &self.rpc("claim_sync_jobs", &arguments).await?)
    }

    async fn record_sync_result(&self, job_id: &str, runner: &str, report: SyncReport<'_>, max_attempts: u32) -> Result<SyncJob, StoreError> {
        let mut arguments = json!({"p_job_id": job_id, "p_runner": runner, "p_max_attempts": max_attempts});
        match report {
            SyncReport::Attempted(SyncOutcome::Synced { pq_appointment_id, client_id }) => {
                arguments["p_outcome"] = json!("synced");
                arguments["p_pq_appointment_id"] = json!(pq_appointment_id);
                arguments["p_intakeq_client_id"] = json!(client_id);
            }
            SyncReport::Attempted(SyncOutcome::Failed { kind, error, client_id, retry_after_seconds, .. }) => {
                arguments["p_outcome"] = json!("failed");
                arguments["p_error_kind"] = json!(kind.as_str());
                arguments["p_error"] = json!(error);
                arguments["p_intakeq_client_id"] = json!(client_id);
                arguments["p_retry_after_seconds"] = json!(retry_after_seconds);
            }
            SyncReport::Released { retry_after_seconds } => {
                arguments["p_outcome"] = json!("released");
                arguments["p_retry_after_seconds"] = json!(retry_after_seconds);
            }
        }
        parsed("record_sync_result", &self.rpc("record_sync_result", &arguments).await?)
    }

    async fn sync_health(&self) -> Result<Value, StoreError> {
        parsed("sync_health", &self.rpc("sync_health", &json!({})).await?)
    }

    async fn requeue_sync_job(&self, appointment_id: &str, requested_by: &str) -> Result<SyncJob, StoreError> {
        let arguments = json!({"p_appointment_id": appointment_id, "p_requested_by": requested_by});
        parsed("requeue_sync_job", &self.rpc("requeue_sync_job", &arguments).await?)
    }
}
