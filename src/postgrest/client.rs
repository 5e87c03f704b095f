//! The store traits over PostgREST RPC (the `postgrest` crate, reqwest over workerd's fetch), with the service
//! role key, the request id sent upstream as `X-Request-Id`, and a timeout per call.

use std::time::Duration;

use chrono::{DateTime, Utc};
use postgrest::Postgrest;
use serde_json::{json, Value};
use uuid::Uuid;

use super::errors::error_from_postgrest;
use super::{arguments, decode};
use crate::abuse::{AttemptStore, EmailAttempt};
use crate::alerts::{Alert, AlertStore};
use crate::booking::change::{Cancelled, ChangeStore, ChangedBy, Rescheduled};
use crate::booking::request::start_time::StartTime;
use crate::inbound::{AppliedNudge, CatchUpClaim, CatchUpEnd, ClaimedNudge, InboundStore, Noted, Nudge};
use crate::intakeq::wire::Appointment;
use crate::booking::model::BookingOutcome;
use crate::booking::request::BookingRequest;
use crate::booking::store::{BookingStore, FailureRecord, StoreError};
use crate::config::Config;
use crate::support::deadline::within;
use crate::support::request_id::RequestId;
use crate::sync::job::{CallBudget, CallsMade, RecordedJob, Reservation, RetryPolicy, SyncJob, SyncOutcome};
use crate::sync::store::SyncStore;

pub struct PostgrestStore {
    client: Postgrest,
    timeout: Duration,
}

impl PostgrestStore {
    /// `request_id` goes upstream as `X-Request-Id` (a cron run passes its runner id).
    pub fn new(config: &Config, request_id: &RequestId) -> Self {
        let key = config.service_role_key.expose();
        let client = Postgrest::new(format!("{}/rest/v1", config.supabase_url))
            .insert_header("apikey", key)
            .insert_header("Authorization", format!("Bearer {key}"))
            .insert_header("X-Request-Id", request_id.as_str());
        PostgrestStore { client, timeout: Duration::from_millis(config.database_timeout_ms) }
    }

    /// Calls `function`; answers the body of a 2xx, or the error in the store's terms.
    async fn rpc(&self, function: &str, arguments: &Value) -> Result<String, StoreError> {
        let exchange = async {
            let response = self.client.rpc(function, arguments.to_string()).execute().await
                .map_err(|error| StoreError::Unavailable { detail: format!("{function}: {error}") })?;
            let status = response.status().as_u16();
            let body = response.text().await
                .map_err(|error| StoreError::Unavailable { detail: format!("{function}: reading the answer: {error}") })?;
            Ok((status, body))
        };
        let timed_out = || StoreError::Unavailable { detail: format!("{function}: no answer within {:?}", self.timeout) };
        let (status, body) = within(self.timeout, exchange).await.ok_or_else(timed_out)??;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(error_from_postgrest(status, &body))
        }
    }

    /// Calls `function` and decodes its answer.
    async fn call<T: serde::de::DeserializeOwned>(&self, function: &str, arguments: &Value) -> Result<T, StoreError> {
        decode(function, &self.rpc(function, arguments).await?)
    }
}

impl BookingStore for PostgrestStore {
    async fn book(&self, booking: &BookingRequest, request_id: &RequestId, call: Uuid, sync_lease_seconds: u32)
        -> Result<BookingOutcome, StoreError> {
        self.call("book_appointment", &arguments::book_appointment(booking, request_id, call, sync_lease_seconds)).await
    }

    async fn booking_by_request(&self, request_id: &RequestId, booking: &BookingRequest, call: Uuid, wait_ms: u64)
        -> Result<Option<BookingOutcome>, StoreError> {
        self.call("booking_by_request", &arguments::booking_by_request(request_id, booking, call, wait_ms)).await
    }

    async fn record_failure(&self, failure: &FailureRecord) -> Result<(), StoreError> {
        self.rpc("record_booking_failure", &arguments::record_booking_failure(failure)).await.map(|_| ())
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.rpc("health_check", &json!({})).await.map(|_| ())
    }
}

impl AttemptStore for PostgrestStore {
    async fn note_booking_attempt(&self, email: &str, request_id: &str, limit_per_hour: u32) -> Result<EmailAttempt, StoreError> {
        self.call("note_booking_attempt", &arguments::note_booking_attempt(email, request_id, limit_per_hour)).await
    }
}

impl InboundStore for PostgrestStore {
    async fn note_intakeq_webhook(&self, nudge: &Nudge, request_id: &str) -> Result<Noted, StoreError> {
        self.call("note_intakeq_webhook", &arguments::note_intakeq_webhook(nudge, request_id)).await
    }

    async fn claim_intakeq_inbound_events(&self, runner: &str, limit: u32, lease_seconds: u32) -> Result<Vec<ClaimedNudge>, StoreError> {
        let arguments = json!({"p_runner": runner, "p_limit": limit, "p_lease_seconds": lease_seconds});
        self.call("claim_intakeq_inbound_events", &arguments).await
    }

    async fn apply_intakeq_event(&self, nudge: &ClaimedNudge, now: Option<&Appointment>) -> Result<AppliedNudge, StoreError> {
        self.call("apply_intakeq_event", &arguments::apply_intakeq_event(nudge, now)).await
    }

    async fn release_intakeq_event(&self, nudge: &ClaimedNudge, error: &str, retry_after_seconds: Option<u64>) -> Result<(), StoreError> {
        self.rpc("release_intakeq_event", &arguments::release_intakeq_event(nudge, error, retry_after_seconds)).await.map(|_| ())
    }

    async fn apply_intakeq_appointments(&self, page: &[Appointment], lease_token: Uuid) -> Result<Value, StoreError> {
        self.call("apply_intakeq_appointments", &json!({"p_appointments": page, "p_lease_token": lease_token})).await
    }

    async fn claim_intakeq_catchup(&self, runner: &str, every_minutes: u32, lease_seconds: u32) -> Result<CatchUpClaim, StoreError> {
        let arguments = json!({"p_runner": runner, "p_every_minutes": every_minutes, "p_lease_seconds": lease_seconds});
        self.call("claim_intakeq_catchup", &arguments).await
    }

    async fn finish_intakeq_catchup(&self, lease_token: Uuid, end: &CatchUpEnd, counts: &Value) -> Result<(), StoreError> {
        let arguments = json!({"p_lease_token": lease_token, "p_completed": end.completed, "p_next_page": end.next_page,
                               "p_listed_until": end.listed_until, "p_counts": counts, "p_error": end.error});
        self.rpc("finish_intakeq_catchup", &arguments).await.map(|_| ())
    }

    async fn reserve_intakeq_budget(&self, holder: &str, lease_token: Uuid, calls: u32, hold_seconds: u32, budget: &CallBudget)
        -> Result<Reservation, StoreError> {
        self.call("reserve_intakeq_budget", &arguments::reserve_intakeq_budget(holder, lease_token, calls, hold_seconds, budget)).await
    }

    async fn report_intakeq_calls(&self, lease_token: Uuid, made: u32, rate_limited_seconds: Option<u64>) -> Result<(), StoreError> {
        let arguments = json!({"p_lease_token": lease_token, "p_calls_made": made, "p_rate_limited_seconds": rate_limited_seconds});
        self.rpc("report_intakeq_calls", &arguments).await.map(|_| ())
    }
}

impl ChangeStore for PostgrestStore {
    async fn cancel_appointment(&self, appointment_id: Uuid, reason: Option<&str>, by: ChangedBy, request_id: &str)
        -> Result<Cancelled, StoreError> {
        self.call("cancel_appointment", &arguments::cancel_appointment(appointment_id, reason, by, request_id)).await
    }

    async fn reschedule_appointment(&self, appointment_id: Uuid, start: &StartTime, by: ChangedBy, request_id: &str)
        -> Result<Rescheduled, StoreError> {
        self.call("reschedule_appointment", &arguments::reschedule_appointment(appointment_id, start, by, request_id)).await
    }
}

impl AlertStore for PostgrestStore {
    async fn claim_staff_alerts(&self, runner: &str, limit: u32, lease_seconds: u32) -> Result<Vec<Alert>, StoreError> {
        self.call("claim_staff_alerts", &arguments::claim_staff_alerts(runner, limit, lease_seconds)).await
    }

    async fn record_staff_alert(&self, alert: Uuid, delivered: Result<(), &str>) -> Result<(), StoreError> {
        self.rpc("record_staff_alert", &arguments::record_staff_alert(alert, delivered)).await.map(|_| ())
    }
}

impl SyncStore for PostgrestStore {
    async fn claim_sync_jobs(&self, runner: &str, limit: u32, lease_seconds: u32, policy: &RetryPolicy, budget: &CallBudget)
        -> Result<Vec<SyncJob>, StoreError> {
        self.call("claim_sync_jobs", &arguments::claim_sync_jobs(runner, limit, lease_seconds, policy, budget)).await
    }

    async fn reserve_intakeq_calls(&self, job: &SyncJob, runner: &str, calls: Option<u32>, budget: &CallBudget)
        -> Result<Reservation, StoreError> {
        self.call("reserve_intakeq_calls", &arguments::reserve_intakeq_calls(job, runner, calls, budget)).await
    }

    async fn intakeq_budget_wait(&self, budget: &CallBudget) -> Result<Option<u64>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Wait {
            wait_ms: Option<u64>,
        }
        let wait: Wait = self.call("intakeq_budget_wait", &arguments::intakeq_budget(budget)).await?;
        Ok(wait.wait_ms)
    }

    async fn record_sync_result(&self, job: &SyncJob, runner: &str, outcome: &SyncOutcome, calls: &CallsMade, policy: &RetryPolicy)
        -> Result<RecordedJob, StoreError> {
        self.call("record_sync_result", &arguments::record_sync_result(job, runner, outcome, calls, policy)).await
    }

    async fn sync_health(&self) -> Result<Value, StoreError> {
        self.call("sync_health", &json!({})).await
    }

    async fn requeue_sync_job(&self, appointment_id: Uuid, requested_by: &str) -> Result<SyncJob, StoreError> {
        self.call("requeue_sync_job", &arguments::requeue_sync_job(appointment_id, requested_by)).await
    }

    async fn requeue_dead_sync_jobs(&self, since: DateTime<Utc>, requested_by: &str) -> Result<Value, StoreError> {
        self.call("requeue_dead_sync_jobs", &arguments::requeue_dead_sync_jobs(since, requested_by)).await
    }
}
