//! A booking changed after it was made: cancelled, or moved to a new start, by the patient (with the booking's
//! manage token), the practice's tools (the partner token) or staff. The request's body parsed into a `Change`
//! that cannot hold bad data, who asks, what the database answers, and what a change needs from it (`ChangeStore`:
//! `cancel_appointment`, `reschedule_appointment`, which free the slot or check the new one like a booking, in one
//! transaction, and leave IntakeQ's side to the sync outbox).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::model::{AppointmentStatus, SyncStatus};
use super::request::start_time::StartTime;
use super::request::FieldError;
use super::store::StoreError;

/// The longest cancellation reason kept (it goes to IntakeQ with the cancellation).
pub const MAX_REASON_CHARS: usize = 500;

/// Who changes the booking (kept with a cancellation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangedBy {
    /// With the booking's own manage token.
    Patient,
    /// The practice's tools, with the partner token.
    Partner,
    /// Staff, with the staff token.
    Staff,
}

impl ChangedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangedBy::Patient => "patient",
            ChangedBy::Partner => "partner",
            ChangedBy::Staff => "staff",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `{"reason"?}`: an empty body is a cancel without a reason.
    Cancel { reason: Option<String> },
    /// `{"start"}`: an RFC 3339 timestamp with its offset, like a booking's.
    Reschedule { start: StartTime },
}

impl Change {
    pub fn parse_cancel(body: &[u8]) -> Result<Change, Vec<FieldError>> {
        let object = object(body, true)?;
        let reason = match object.get("reason") {
            None | Some(Value::Null) => None,
            // Lines and tabs are the patient's; other control characters are not text (and NUL cannot be stored).
            Some(Value::String(reason))
                if reason.chars().count() <= MAX_REASON_CHARS
                    && reason.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')) =>
            {
                Some(reason.trim().to_owned()).filter(|r| !r.is_empty())
            }
            Some(_) => return Err(field("reason", "must be text of at most 500 characters, without control characters")),
        };
        Ok(Change::Cancel { reason })
    }

    pub fn parse_reschedule(body: &[u8], now: DateTime<Utc>) -> Result<Change, Vec<FieldError>> {
        let object = object(body, false)?;
        let start = match object.get("start") {
            Some(Value::String(raw)) => StartTime::parse(raw, now).map_err(|message| field("start", &message))?,
            _ => return Err(field("start", "is required: an RFC 3339 timestamp with an offset, e.g. 2026-12-01T09:00:00-07:00")),
        };
        Ok(Change::Reschedule { start })
    }
}

fn field(name: &str, message: &str) -> Vec<FieldError> {
    vec![FieldError { field: name.into(), message: message.into() }]
}

/// The body as a JSON object (an empty body is `{}` when `empty_allowed`).
fn object(body: &[u8], empty_allowed: bool) -> Result<serde_json::Map<String, Value>, Vec<FieldError>> {
    if empty_allowed && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(field("body", "must be a JSON object")),
    }
}

/// What `cancel_appointment` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Cancelled {
    pub appointment_id: Uuid,
    pub status: AppointmentStatus,
    /// `false`: it was cancelled already; nothing changed.
    pub changed: bool,
    /// What becomes of IntakeQ's appointment: `cancellation_queued`, `create_stopped` or `nothing_to_do`.
    pub intakeq: String,
}

/// What `reschedule_appointment` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Rescheduled {
    pub appointment_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: AppointmentStatus,
    pub sync_status: SyncStatus,
    /// `false`: it already started then; nothing changed.
    pub changed: bool,
}

#[allow(async_fn_in_trait)]
pub trait ChangeStore {
    async fn cancel_appointment(&self, appointment_id: Uuid, reason: Option<&str>, by: ChangedBy, request_id: &str)
        -> Result<Cancelled, StoreError>;
    async fn reschedule_appointment(&self, appointment_id: Uuid, start: &StartTime, by: ChangedBy, request_id: &str)
        -> Result<Rescheduled, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_cancel_takes_an_optional_reason_and_nothing_else_is_required() {
        assert_eq!(Change::parse_cancel(b""), Ok(Change::Cancel { reason: None }));
        assert_eq!(Change::parse_cancel(b"{}"), Ok(Change::Cancel { reason: None }));
        assert_eq!(Change::parse_cancel(br#"{"reason": "  Feeling better "}"#), Ok(Change::Cancel { reason: Some("Feeling better".into()) }));
        assert_eq!(Change::parse_cancel(br#"{"reason": "   "}"#), Ok(Change::Cancel { reason: None }));
        let fields = |body: &[u8]| Change::parse_cancel(body).unwrap_err().into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(fields(br#"{"reason": 5}"#), ["reason"]);
        assert_eq!(fields(format!(r#"{{"reason": "{}"}}"#, "x".repeat(501)).as_bytes()), ["reason"]);
        assert_eq!(fields(b"[1]"), ["body"]);
        assert_eq!(fields(br#"{"reason": "a\u0000b"}"#), ["reason"], "NUL cannot be stored");
        assert_eq!(fields(br#"{"reason": "bell\u0007"}"#), ["reason"]);
        assert_eq!(Change::parse_cancel(br#"{"reason": "Feeling better\nThanks"}"#), Ok(Change::Cancel { reason: Some("Feeling better\nThanks".into()) }));
    }

    #[test]
    fn a_reschedule_needs_a_start_with_its_offset() {
        let Change::Reschedule { start } = Change::parse_reschedule(br#"{"start": "2026-12-02T09:00:00-07:00"}"#, now()).unwrap() else {
            panic!("a reschedule")
        };
        assert_eq!(start.utc_rfc3339(), "2026-12-02T16:00:00Z");
        let fields = |body: &[u8]| Change::parse_reschedule(body, now()).unwrap_err().into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(fields(b""), ["body"]);
        assert_eq!(fields(b"{}"), ["start"]);
        assert_eq!(fields(br#"{"start": "2026-12-02T09:00:00"}"#), ["start"], "no offset");
        assert_eq!(fields(br#"{"start": "2029-12-02T09:00:00Z"}"#), ["start"], "more than a year ahead");
    }
}
