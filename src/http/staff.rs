//! The staff routes, behind `Authorization: Bearer <ADMIN_TOKEN>`:
//!   GET  /api/patient-booking/sync-health          the IntakeQ sync's state
//!   POST /api/patient-booking/sync-jobs/requeue    {"appointmentId"}: a dead sync job back in the queue

use serde_json::{json, Value};
use tracing::{info, warn};
use uuid::Uuid;

use super::answer::{booking_error, Answer};
use super::{HttpRequest, REQUEUE_PATH, SYNC_HEALTH_PATH};
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
            let appointment_id = serde_json::from_slice::<Value>(&request.body)
                .ok()
                .and_then(|body| body.get("appointmentId").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok()));
            let Some(appointment_id) = appointment_id else {
                let field = FieldError { field: "appointmentId".into(), message: "must be a UUID".into() };
                return Answer::error(&BookingError::invalid(vec![field]), request_id, clock, expose_debug);
            };
            match store.requeue_sync_job(appointment_id, &format!("staff via request {}", request_id.as_str())).await {
                Ok(job) => {
                    info!(step = "sync_requeue", outcome = "ok", appointment_id = %appointment_id);
                    staff_answer(request_id, json!({"appointmentId": appointment_id, "syncStatus": job.booking.sync_status}))
                }
                Err(error) => staff_failure(&error, Step::SyncRequeue, request_id, clock, expose_debug),
            }
        }
        _ => Answer::error(&BookingError::new(ErrorCode::NotFound, Step::Routing), request_id, clock, expose_debug),
    }
}

/// `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time.
fn is_staff(request: &HttpRequest, config: &Config) -> bool {
    let given = request.header("authorization").and_then(|h| h.strip_prefix("Bearer "));
    matches!((&config.admin_token, given), (Some(expected), Some(given)) if expected.matches(given))
}

fn staff_answer(request_id: &RequestId, data: Value) -> Answer {
    Answer { status: 200, headers: Vec::new(), body: json!({"success": true, "requestId": request_id.as_str(), "data": data}) }
}

fn staff_failure(error: &StoreError, step: Step, request_id: &RequestId, clock: &impl Clock, expose_debug: bool) -> Answer {
    warn!(step = %step.as_str(), outcome = "failed", debug = %error.debug());
    let mut failure = booking_error(error);
    if failure.step == Step::BookingRpc {
        failure.step = step;
    }
    Answer::error(&failure, request_id, clock, expose_debug)
}
