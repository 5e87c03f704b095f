//! The staff routes, behind `Authorization: Bearer <ADMIN_TOKEN>`:
//!   GET  /api/patient-booking/sync-health          the IntakeQ sync's state
//!   POST /api/patient-booking/sync-jobs/requeue    {"appointmentId"}: a dead sync job back in the queue;
//!                                                  {"deadSince"}: every job that died at or after that time

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tracing::{info, warn};
use uuid::Uuid;

use super::answer::{booking_error, Answer};
use super::{bearer_is, HttpRequest, REQUEUE_PATH, SYNC_HEALTH_PATH};
use crate::booking::error::{BookingError, ErrorCode, Step};
use crate::booking::request::FieldError;
use crate::booking::store::StoreError;
use crate::config::Config;
use crate::support::clock::Clock;
use crate::support::request_id::RequestId;
use crate::sync::store::SyncStore;

pub async fn route(request: &HttpRequest, config: &Config, store: &impl SyncStore, clock: &impl Clock, request_id: &RequestId) -> Answer {
    let expose_debug = config.expose_error_debug;
    if !is_staff(request, config) {
        warn!(step = "authorization", outcome = "refused", path = %request.path);
        return Answer::error(&BookingError::new(ErrorCode::Unauthorized, Step::Authorization), request_id, clock, expose_debug);
    }
    match request.path.as_str() {
        SYNC_HEALTH_PATH => match store.sync_health().await {
            Ok(health) => staff_answer(request_id, health),
            Err(error) => staff_failure(&error, Step::SyncHealth, request_id, clock, expose_debug),
        },
        REQUEUE_PATH => {
            let body = serde_json::from_slice::<Value>(&request.body).unwrap_or(Value::Null);
            let requested_by = format!("staff via request {}", request_id.as_str());
            let refuse = |field: &str, message: &str| {
                let field = FieldError { field: field.into(), message: message.into() };
                Answer::error(&BookingError::invalid(vec![field]), request_id, clock, expose_debug)
            };
            match (body.get("appointmentId"), body.get("deadSince")) {
                (Some(_), Some(_)) => refuse("deadSince", "give either appointmentId or deadSince, not both"),
                (None, Some(since)) => {
                    let Some(since) = since.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()) else {
                        return refuse("deadSince", "must be an RFC 3339 time");
                    };
                    match store.requeue_dead_sync_jobs(since.with_timezone(&Utc), &requested_by).await {
                        Ok(requeued) => {
                            info!(step = "sync_requeue", outcome = "ok", dead_since = %since, requeued = %requeued["requeued"]);
                            staff_answer(request_id, requeued)
                        }
                        Err(error) => staff_failure(&error, Step::SyncRequeue, request_id, clock, expose_debug),
                    }
                }
                (appointment_id, None) => {
                    let Some(appointment_id) = appointment_id.and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok()) else {
                        return refuse("appointmentId", "must be a UUID (or give deadSince)");
                    };
                    match store.requeue_sync_job(appointment_id, &requested_by).await {
                        Ok(job) => {
                            info!(step = "sync_requeue", outcome = "ok", appointment_id = %appointment_id);
                            staff_answer(request_id, json!({"appointmentId": appointment_id, "syncStatus": job.booking.sync_status}))
                        }
                        Err(error) => staff_failure(&error, Step::SyncRequeue, request_id, clock, expose_debug),
                    }
                }
            }
        }
        _ => Answer::error(&BookingError::new(ErrorCode::NotFound, Step::Routing), request_id, clock, expose_debug),
    }
}

/// `Authorization: Bearer <ADMIN_TOKEN>`.
fn is_staff(request: &HttpRequest, config: &Config) -> bool {
    bearer_is(request, config.admin_token.as_ref())
}

fn staff_answer(request_id: &RequestId, data: Value) -> Answer {
    Answer { status: 200, headers: Vec::new(), body: json!({"success": true, "requestId": request_id.as_str(), "data": data}) }
}

fn staff_failure(error: &StoreError, step: Step, request_id: &RequestId, clock: &impl Clock, expose_debug: bool) -> Answer {
    warn!(step = %step.as_str(), outcome = "failed", debug = %error.debug());
    let mut failure = booking_error(error, Step::BookingRpc);
    if failure.step == Step::BookingRpc {
        failure.step = step;
    }
    Answer::error(&failure, request_id, clock, expose_debug)
}
