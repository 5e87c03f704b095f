//! `POST /api/intakeq/webhooks/<INTAKEQ_WEBHOOK_SECRET>`: IntakeQ's appointment webhooks. The secret path is
//! their only credential (IntakeQ signs nothing): a wrong one is 404 like any unknown path (`http::route`), and
//! the path is never logged (`http::loggable_path`). A webhook is kept as a nudge (`inbound`) and acknowledged
//! at once; the appointment is re-read from IntakeQ before anything is changed.

use serde_json::json;
use tracing::{info, warn};

use super::answer::{booking_error, Answer};
use super::{HttpRequest, MAX_BODY_BYTES};
use crate::booking::error::{BookingError, ErrorCode, Step};
use crate::inbound::{InboundStore, Nudge};
use crate::support::clock::Clock;
use crate::support::request_id::RequestId;

pub async fn receive(store: &impl InboundStore, request: &HttpRequest, request_id: &RequestId, clock: &impl Clock, expose_debug: bool) -> Answer {
    if request.body.len() > MAX_BODY_BYTES {
        warn!(step = "intakeq_webhook", outcome = "rejected", code = "PAYLOAD_TOO_LARGE");
        return Answer::error(&BookingError::new(ErrorCode::PayloadTooLarge, Step::RequestValidation), request_id, clock, expose_debug);
    }
    let nudge = match Nudge::parse(&request.body) {
        Ok(nudge) => nudge,
        Err(field_errors) => {
            warn!(step = "intakeq_webhook", outcome = "rejected", code = "INVALID_REQUEST");
            return Answer::error(&BookingError::invalid(field_errors), request_id, clock, expose_debug);
        }
    };
    match store.note_intakeq_webhook(&nudge, request_id.as_str()).await {
        Ok(noted) => {
            info!(step = "intakeq_webhook", outcome = "kept", event_type = %nudge.event_type, by_client = nudge.by_client,
                  pq_appointment_id = %nudge.pq_appointment_id, duplicate = noted.duplicate);
            Answer {
                status: 200,
                headers: Vec::new(),
                body: json!({"success": true, "requestId": request_id.as_str(),
                             "data": {"eventId": noted.event_id, "duplicate": noted.duplicate}}),
            }
        }
        Err(store_error) => {
            let error = booking_error(&store_error, Step::BookingRpc);
            warn!(step = "intakeq_webhook", outcome = "failed", code = %error.code.as_str(), debug = %store_error.debug());
            Answer::error(&error, request_id, clock, expose_debug)
        }
    }
}
