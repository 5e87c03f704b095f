//! What IntakeQ tells us: its appointment webhooks (`{EventType, ActionPerformedByClient, Appointment}`), which
//! carry what staff did in IntakeQ (cancel, move, book by phone). IntakeQ signs nothing, so a webhook is only a
//! nudge: its appointment id is kept in an inbound outbox (`InboundStore`, deduplicated by the database) and the
//! appointment is to be re-read from IntakeQ before anything is changed. No I/O of its own.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::booking::request::FieldError;
use crate::booking::store::StoreError;

/// A webhook, as far as we trust it: which IntakeQ appointment, what IntakeQ says happened, and whether the client
/// (not staff) did it. The rest of the payload (the client's name and email among it) is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nudge {
    pub pq_appointment_id: String,
    pub event_type: String,
    pub by_client: bool,
}

impl Nudge {
    /// Reads IntakeQ's payload; the field errors name what is missing or malformed.
    pub fn parse(body: &[u8]) -> Result<Nudge, Vec<FieldError>> {
        let field = |name: &str, message: &str| vec![FieldError { field: name.into(), message: message.into() }];
        let payload: Value = serde_json::from_slice(body).map_err(|_| field("body", "must be IntakeQ's webhook JSON"))?;
        fn text(value: Option<&Value>) -> Option<&str> {
            value.and_then(Value::as_str).map(str::trim).filter(|s| (1..=64).contains(&s.len()))
        }
        let pq_appointment_id = text(payload.pointer("/Appointment/Id"))
            .ok_or_else(|| field("Appointment.Id", "is required: 1-64 characters"))?;
        let event_type = text(payload.get("EventType")).ok_or_else(|| field("EventType", "is required: 1-64 characters"))?;
        Ok(Nudge {
            pq_appointment_id: pq_appointment_id.to_owned(),
            event_type: event_type.to_owned(),
            by_client: payload.get("ActionPerformedByClient").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// What the database answers for a nudge kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Noted {
    pub event_id: Uuid,
    /// The appointment was already waiting to be re-read: this webhook was folded into that.
    pub duplicate: bool,
}

#[allow(async_fn_in_trait)]
pub trait InboundStore {
    /// Keeps `nudge` in the inbound outbox (`note_intakeq_webhook`).
    async fn note_intakeq_webhook(&self, nudge: &Nudge, request_id: &str) -> Result<Noted, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_keeps_the_appointment_id_the_event_and_who_acted_and_nothing_else() {
        let body = br#"{"EventType": "AppointmentCanceled", "ActionPerformedByClient": true,
                        "Appointment": {"Id": "5f9a00000000000000000001", "ClientName": "Riley Quinn", "ClientEmail": "r@example.com"}}"#;
        assert_eq!(
            Nudge::parse(body).unwrap(),
            Nudge { pq_appointment_id: "5f9a00000000000000000001".into(), event_type: "AppointmentCanceled".into(), by_client: true }
        );
    }

    #[test]
    fn a_payload_without_an_appointment_id_or_event_is_refused_by_field() {
        let names = |body: &[u8]| Nudge::parse(body).unwrap_err().into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(names(b"not json"), ["body"]);
        assert_eq!(names(br#"{"EventType": "AppointmentCanceled", "Appointment": {}}"#), ["Appointment.Id"]);
        assert_eq!(names(br#"{"Appointment": {"Id": "a"}}"#), ["EventType"]);
        assert_eq!(names(format!(r#"{{"EventType": "X", "Appointment": {{"Id": "{}"}}}}"#, "a".repeat(65)).as_bytes()), ["Appointment.Id"]);
    }
}
