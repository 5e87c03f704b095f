//! A booking's cancel and reschedule:
//!   POST /api/patient-booking/appointments/<id>/cancel       {"reason"?}
//!   POST /api/patient-booking/appointments/<id>/reschedule   {"start"}
//! behind `Authorization: Bearer <token>`: the booking's own manage token (from its 201 answer), the partner token,
//! or the staff token. The database frees or checks the slot in one transaction and queues IntakeQ's side in the
//! sync outbox (the cron carries it out); IntakeQ tells the patient.

use chrono::SecondsFormat;
use serde_json::json;
use tracing::{info, warn};
use uuid::Uuid;

use super::answer::{booking_error, Answer};
use crate::abuse::{address_refused, Gatekeeper, PER_IP_RETRY_AFTER};
use super::{bearer, bearer_is, is_json, HttpRequest, MAX_BODY_BYTES};
use crate::booking::change::{Change, ChangeStore, ChangedBy};
use crate::booking::error::{BookingError, ErrorCode, Step};
use crate::config::Config;
use crate::support::clock::Clock;
use crate::support::manage_token;
use crate::support::request_id::RequestId;

pub const APPOINTMENTS_PREFIX: &str = "/api/patient-booking/appointments/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cancel,
    Reschedule,
}

/// The appointment and the action a path names (`None`: not a change route).
pub fn parse_path(path: &str) -> Option<(Uuid, Action)> {
    let (id, action) = path.strip_prefix(APPOINTMENTS_PREFIX)?.split_once('/')?;
    let action = match action {
        "cancel" => Action::Cancel,
        "reschedule" => Action::Reschedule,
        _ => return None,
    };
    // The canonical form only: one appointment, one path.
    let id = Uuid::try_parse(id).ok().filter(|uuid| uuid.as_hyphenated().to_string() == id)?;
    Some((id, action))
}

/// Who may change `appointment_id`, by the bearer token shown.
fn changed_by(request: &HttpRequest, config: &Config, appointment_id: Uuid) -> Option<ChangedBy> {
    if bearer_is(request, config.admin_token.as_ref()) {
        return Some(ChangedBy::Staff);
    }
    if bearer_is(request, config.partner_api_token.as_ref()) {
        return Some(ChangedBy::Partner);
    }
    let token = bearer(request)?;
    let secret = config.manage_token_secret.as_ref()?;
    manage_token::allows(secret, appointment_id, token.trim()).then_some(ChangedBy::Patient)
}

pub async fn change(
    store: &impl ChangeStore,
    gate: &impl Gatekeeper,
    request: &HttpRequest,
    config: &Config,
    clock: &impl Clock,
    request_id: &RequestId,
    (appointment_id, action): (Uuid, Action),
) -> Answer {
    let refuse = |error: BookingError| Answer::error(&error, request_id, clock, config.expose_error_debug);
    let by = changed_by(request, config, appointment_id);
    // The booking route's per-address limit, for everyone but the practice's tools and staff: no one guesses
    // tokens, or moves an appointment (an email to the patient each time), as fast as they like.
    if !matches!(by, Some(ChangedBy::Partner | ChangedBy::Staff))
        && address_refused(gate, &config.abuse, request.header("cf-connecting-ip")).await
    {
        let mut answer = refuse(BookingError::new(ErrorCode::RateLimited, Step::RateLimit));
        answer.headers.push(("Retry-After", PER_IP_RETRY_AFTER.as_secs().to_string()));
        return answer;
    }
    // Then the token: a stranger learns nothing, not even whether the body would have been valid.
    let Some(by) = by else {
        warn!(step = "authorization", outcome = "refused", appointment_id = %appointment_id, action = ?action);
        return refuse(BookingError::new(ErrorCode::ChangeNotAllowed, Step::Authorization));
    };
    if request.body.len() > MAX_BODY_BYTES {
        return refuse(BookingError::new(ErrorCode::PayloadTooLarge, Step::RequestValidation));
    }
    if !is_json(request) && !(action == Action::Cancel && request.body.is_empty()) {
        return refuse(BookingError::new(ErrorCode::UnsupportedMediaType, Step::RequestValidation));
    }
    let parsed = match action {
        Action::Cancel => Change::parse_cancel(&request.body),
        Action::Reschedule => Change::parse_reschedule(&request.body, clock.now()),
    };
    let change = match parsed {
        Ok(change) => change,
        Err(field_errors) => return refuse(BookingError::invalid(field_errors)),
    };
    let data = match &change {
        Change::Cancel { reason } => store.cancel_appointment(appointment_id, reason.as_deref(), by, request_id.as_str()).await.map(|done| {
            info!(step = "appointment_change", outcome = "cancelled", appointment_id = %appointment_id, by = by.as_str(),
                  changed = done.changed, intakeq = %done.intakeq);
            json!({"appointmentId": done.appointment_id, "status": done.status, "changed": done.changed, "intakeq": done.intakeq})
        }),
        Change::Reschedule { start } => store.reschedule_appointment(appointment_id, start, by, request_id.as_str()).await.map(|done| {
            info!(step = "appointment_change", outcome = "rescheduled", appointment_id = %appointment_id, by = by.as_str(), changed = done.changed);
            json!({
                "appointmentId": done.appointment_id,
                "start": done.start.to_rfc3339_opts(SecondsFormat::Secs, true),
                "end": done.end.to_rfc3339_opts(SecondsFormat::Secs, true),
                "status": done.status, "syncStatus": done.sync_status, "changed": done.changed,
            })
        }),
    };
    match data {
        Ok(data) => Answer { status: 200, headers: Vec::new(), body: json!({"success": true, "requestId": request_id.as_str(), "data": data}) },
        Err(store_error) => {
            let error = booking_error(&store_error, Step::AppointmentChange);
            warn!(step = %error.step.as_str(), outcome = "refused", code = %error.code.as_str(), appointment_id = %appointment_id,
                  debug = %store_error.debug());
            refuse(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_canonical_appointment_id_and_a_known_action_make_a_change_route() {
        let id = "3ca6a61f-dbfb-4c18-9db1-3e0589df99e3";
        assert_eq!(parse_path(&format!("{APPOINTMENTS_PREFIX}{id}/cancel")), Some((id.parse().unwrap(), Action::Cancel)));
        assert_eq!(parse_path(&format!("{APPOINTMENTS_PREFIX}{id}/reschedule")), Some((id.parse().unwrap(), Action::Reschedule)));
        for path in [
            format!("{APPOINTMENTS_PREFIX}{id}/delete"),
            format!("{APPOINTMENTS_PREFIX}{id}"),
            format!("{APPOINTMENTS_PREFIX}{}/cancel", id.to_uppercase()),
            format!("{APPOINTMENTS_PREFIX}{}/cancel", id.replace('-', "")),
            format!("{APPOINTMENTS_PREFIX}{id}/cancel/"),
            format!("{APPOINTMENTS_PREFIX}not-an-id/cancel"),
        ] {
            assert_eq!(parse_path(&path), None, "{path}");
        }
    }
}
