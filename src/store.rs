//! What the booking flow needs from the database, as a trait the flow is tested against with fakes and the
//! worker implements over PostgREST (`postgrest_store`). Also: reading PostgREST's answers, which is pure.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::booking_error::{ErrorCode, Step};

/// What `book_appointment` answers: the booking as the database holds it, with everything the response and
/// the IntakeQ sync need. (The sync functions answer the same shape, without the three flags.)
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Booked {
    pub appointment_id: String,
    pub request_id: String,
    pub status: String,
    pub sync_status: String,
    pub pq_appointment_id: Option<String>,
    pub start: String,
    pub end: String,
    pub duration_minutes: u32,
    pub notes: Option<String>,
    pub patient: BookedPatient,
    pub provider: BookedProvider,
    pub intakeq: BookedIntakeq,
    pub sync_job: Option<BookedSyncJob>,
    #[serde(default)]
    pub is_duplicate: bool,
    #[serde(default)]
    pub replayed: bool,
    #[serde(default)]
    pub patient_created: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BookedPatient {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: Option<String>,
    pub date_of_birth: Option<String>,
    pub intakeq_client_id: Option<String>,
}

/// The IntakeQ ids the booking maps to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BookedIntakeq {
    pub practitioner_id: Option<String>,
    pub service_id: Option<String>,
    pub location_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BookedSyncJob {
    pub id: String,
    pub state: String,
    pub locked_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BookedProvider {
    pub id: String,
    pub name: String,
}

/// A failed booking, as `record_booking_failure` keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRecord {
    pub request_id: String,
    pub step: Step,
    pub code: ErrorCode,
    pub message: String,
    pub http_status: u16,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// The database refused the booking in the contract's scheme (SQLSTATE PTxyz, message = code, hint = step).
    Refused { code: ErrorCode, step: Step, detail: Option<String> },
    /// The database could not be reached, timed out, or said it is unavailable.
    Unavailable { detail: String },
    /// An answer outside the scheme: a bug or a misconfiguration.
    Unexpected { status: Option<u16>, detail: String },
}

impl StoreError {
    /// For logs and the `debug` object: never patient data (the database's diagnostics carry none).
    pub fn debug(&self) -> Value {
        match self {
            StoreError::Refused { detail, .. } => json!({ "detail": detail }),
            StoreError::Unavailable { detail } => json!({ "upstream": detail }),
            StoreError::Unexpected { status, detail } => json!({ "upstreamStatus": status, "upstream": detail }),
        }
    }
}

#[allow(async_fn_in_trait)]
pub trait BookingStore {
    /// Calls `book_appointment` with `arguments` (its named arguments).
    async fn book(&self, arguments: &Value) -> Result<Booked, StoreError>;
    async fn record_failure(&self, failure: &FailureRecord) -> Result<(), StoreError>;
    async fn health(&self) -> Result<(), StoreError>;
}

/// Reads a PostgREST error answer: our functions' scheme becomes `Refused`, 503/504 `Unavailable`.
pub fn error_from_postgrest(status: u16, body: &str) -> StoreError {
    #[derive(Deserialize)]
    struct PostgrestError {
        code: Option<String>,
        message: Option<String>,
        details: Option<String>,
        hint: Option<String>,
    }
    let parsed: Option<PostgrestError> = serde_json::from_str(body).ok();
    if let Some(error) = &parsed {
        let in_scheme = error.code.as_deref().is_some_and(|c| c.starts_with("PT"));
        let code = error.message.as_deref().and_then(ErrorCode::parse);
        let step = error.hint.as_deref().and_then(Step::parse);
        if let (true, Some(code), Some(step)) = (in_scheme, code, step) {
            return StoreError::Refused { code, step, detail: error.details.clone() };
        }
    }
    let detail = match &parsed {
        Some(e) => format!("{}: {}", e.code.as_deref().unwrap_or("?"), e.message.as_deref().unwrap_or("")),
        None => format!("a non-JSON answer of {} bytes", body.len()),
    };
    match status {
        503 | 504 => StoreError::Unavailable { detail },
        _ => StoreError::Unexpected { status: Some(status), detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_errors_are_refusals_with_code_and_step() {
        let body = r#"{"code":"PT409","message":"SLOT_TAKEN","details":"overlap","hint":"conflict_check"}"#;
        assert_eq!(
            error_from_postgrest(409, body),
            StoreError::Refused { code: ErrorCode::SlotTaken, step: Step::ConflictCheck, detail: Some("overlap".into()) }
        );
        let unavailable = r#"{"code":"PT503","message":"DATABASE_UNAVAILABLE","details":"40P01","hint":"appointment_insert"}"#;
        assert!(matches!(error_from_postgrest(503, unavailable), StoreError::Refused { code: ErrorCode::DatabaseUnavailable, .. }));
    }

    #[test]
    fn other_answers_are_unavailable_or_unexpected() {
        assert!(matches!(error_from_postgrest(503, r#"{"code":"PGRST000","message":"down"}"#), StoreError::Unavailable { .. }));
        assert!(matches!(error_from_postgrest(504, "<html>timeout</html>"), StoreError::Unavailable { .. }));
        assert!(matches!(
            error_from_postgrest(401, r#"{"message":"Invalid API key"}"#),
            StoreError::Unexpected { status: Some(401), .. }
        ));
        assert!(matches!(
            error_from_postgrest(400, r#"{"code":"PT400","message":"NOT_A_CODE","hint":"conflict_check"}"#),
            StoreError::Unexpected { .. }
        ));
    }
}
