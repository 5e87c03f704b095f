//! The contract's errors (`docs/http-contract.md`): each code with its HTTP status and the
//! message a patient reads, each step by name, and the JSON body
//! `{ success: false, requestId, code, message, step, timestamp, fieldErrors?, debug? }`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::request::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidRequest,
    UnsupportedMediaType,
    PayloadTooLarge,
    MethodNotAllowed,
    NotFound,
    IdempotencyKeyReused,
    PatientNotFound,
    PatientCreationFailed,
    ProviderNotFound,
    ProviderNotBookable,
    InvalidPayer,
    ServiceInstanceNotFound,
    SlotInPast,
    SlotTaken,
    AppointmentInsertFailed,
    DatabaseUnavailable,
    InternalError,
    /// The staff routes: no or a wrong bearer token.
    Unauthorized,
    SyncJobNotFound,
    SyncJobNotDead,
    /// A trusted caller's patient details contradict the patient's record.
    PatientMismatch,
    /// The patient already holds an appointment overlapping this one.
    PatientSlotTaken,
    /// The start is not one the practice offers (not on its slot grid, or too soon).
    SlotNotOffered,
    /// `patientId` without the partner token.
    PatientIdNotAllowed,
    /// Too many booking attempts from one address or for one email.
    RateLimited,
    /// Turnstile did not vouch for the request.
    BotCheckFailed,
    /// A cancel or reschedule without a token that may change this appointment.
    ChangeNotAllowed,
    AppointmentNotFound,
    /// A reschedule of a cancelled appointment.
    AppointmentCancelled,
    /// A cancel or reschedule of an appointment that has started.
    AppointmentStarted,
    /// A reschedule while staff must first settle a change made in IntakeQ that collides here.
    AppointmentInReview,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 31] = [
        ErrorCode::InvalidRequest,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotFound,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::PatientNotFound,
        ErrorCode::PatientCreationFailed,
        ErrorCode::ProviderNotFound,
        ErrorCode::ProviderNotBookable,
        ErrorCode::InvalidPayer,
        ErrorCode::ServiceInstanceNotFound,
        ErrorCode::SlotInPast,
        ErrorCode::SlotTaken,
        ErrorCode::AppointmentInsertFailed,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::InternalError,
        ErrorCode::Unauthorized,
        ErrorCode::SyncJobNotFound,
        ErrorCode::SyncJobNotDead,
        ErrorCode::PatientMismatch,
        ErrorCode::PatientSlotTaken,
        ErrorCode::SlotNotOffered,
        ErrorCode::PatientIdNotAllowed,
        ErrorCode::RateLimited,
        ErrorCode::BotCheckFailed,
        ErrorCode::ChangeNotAllowed,
        ErrorCode::AppointmentNotFound,
        ErrorCode::AppointmentCancelled,
        ErrorCode::AppointmentStarted,
        ErrorCode::AppointmentInReview,
    ];

    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest => 400,
            UnsupportedMediaType => 415,
            PayloadTooLarge => 413,
            MethodNotAllowed => 405,
            NotFound | PatientNotFound | ProviderNotFound | InvalidPayer | SyncJobNotFound | AppointmentNotFound => 404,
            IdempotencyKeyReused | ProviderNotBookable | ServiceInstanceNotFound | SlotInPast | PatientMismatch
            | SlotNotOffered | AppointmentStarted => 422,
            SlotTaken | SyncJobNotDead | PatientSlotTaken | AppointmentCancelled | AppointmentInReview => 409,
            Unauthorized => 401,
            PatientIdNotAllowed | BotCheckFailed | ChangeNotAllowed => 403,
            RateLimited => 429,
            PatientCreationFailed | AppointmentInsertFailed | InternalError => 500,
            DatabaseUnavailable => 503,
        }
    }

    /// What the patient reads. Never internals.
    pub fn message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "Some booking details are missing or invalid.",
            UnsupportedMediaType => "Send the booking as JSON (Content-Type: application/json).",
            PayloadTooLarge => "The booking request is too large.",
            MethodNotAllowed => "This address only accepts POST requests.",
            NotFound => "There is nothing at this address.",
            IdempotencyKeyReused => "This request key was already used for a different booking.",
            PatientNotFound => "We could not find that patient record.",
            PatientCreationFailed => "We could not save the patient details. Please try again or call the practice.",
            ProviderNotFound => "That provider could not be found.",
            ProviderNotBookable => "That provider cannot be booked for this insurance. Please choose another provider.",
            InvalidPayer => "That insurance could not be found.",
            ServiceInstanceNotFound => "Intake appointments are not available for this insurance. Please call the practice.",
            SlotInPast => "That time has already passed. Please choose another time.",
            SlotTaken => "That time was just booked by someone else. Please choose another time.",
            AppointmentInsertFailed => "We could not save the appointment. Please try again or call the practice.",
            DatabaseUnavailable => "Booking is temporarily unavailable. Please try again in a few minutes.",
            InternalError => "Something went wrong on our side. Please try again or call the practice.",
            Unauthorized => "A valid staff token is required.",
            SyncJobNotFound => "That appointment has no IntakeQ sync job.",
            SyncJobNotDead => "Only a sync that has failed for good can be requeued.",
            PatientMismatch => "The patient details do not match the patient record.",
            PatientSlotTaken => "You already have an appointment at an overlapping time. Please choose another time.",
            SlotNotOffered => "That time is not offered. Please choose one of the times shown.",
            PatientIdNotAllowed => "Booking for an existing patient record is only open to the practice's own tools.",
            RateLimited => "Too many booking attempts. Please wait a little and try again, or call the practice.",
            BotCheckFailed => "We could not confirm that a person sent this booking. Please reload the page and try again.",
            ChangeNotAllowed => "This link cannot change that appointment. Please use the link from your booking, or call the practice.",
            AppointmentNotFound => "We could not find that appointment.",
            AppointmentCancelled => "That appointment was cancelled. Please book a new one.",
            AppointmentStarted => "That appointment has already started and can no longer be changed online. Please call the practice.",
            AppointmentInReview => "The practice is updating this appointment's time. Please call the practice to change it.",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        serde_json::from_value(Value::String(code.to_owned())).ok()
    }

    pub fn as_str(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

/// Where a request was when it failed: the database function's steps, and the worker's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    RequestValidation,
    Idempotency,
    PatientResolution,
    ProviderLookup,
    PayerLookup,
    ServiceInstanceResolution,
    ConflictCheck,
    AppointmentInsert,
    /// The worker's call of `book_appointment`, when the failure is not one of the function's own steps.
    BookingRpc,
    Configuration,
    Routing,
    Health,
    Authorization,
    SyncClaim,
    SyncRecord,
    SyncRequeue,
    SyncHealth,
    /// The limits on booking attempts: per client address and per patient email.
    RateLimit,
    /// Turnstile's verdict on the request.
    BotCheck,
    /// Finding the appointment a cancel or reschedule names.
    AppointmentLookup,
    /// Cancelling or moving it.
    AppointmentChange,
}

impl Step {
    pub const ALL: [Step; 21] = [
        Step::RequestValidation,
        Step::Idempotency,
        Step::PatientResolution,
        Step::ProviderLookup,
        Step::PayerLookup,
        Step::ServiceInstanceResolution,
        Step::ConflictCheck,
        Step::AppointmentInsert,
        Step::BookingRpc,
        Step::Configuration,
        Step::Routing,
        Step::Health,
        Step::Authorization,
        Step::SyncClaim,
        Step::SyncRecord,
        Step::SyncRequeue,
        Step::SyncHealth,
        Step::RateLimit,
        Step::BotCheck,
        Step::AppointmentLookup,
        Step::AppointmentChange,
    ];

    pub fn parse(step: &str) -> Option<Self> {
        serde_json::from_value(Value::String(step.to_owned())).ok()
    }

    pub fn as_str(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BookingError {
    pub code: ErrorCode,
    pub step: Step,
    pub field_errors: Vec<FieldError>,
    /// Shown only where `EXPOSE_ERROR_DEBUG` is on: SQLSTATE, upstream status, diagnostics. Never patient data.
    pub debug: Option<Value>,
}

impl BookingError {
    pub fn new(code: ErrorCode, step: Step) -> Self {
        BookingError { code, step, field_errors: Vec::new(), debug: None }
    }

    pub fn invalid(field_errors: Vec<FieldError>) -> Self {
        BookingError { field_errors, ..BookingError::new(ErrorCode::InvalidRequest, Step::RequestValidation) }
    }

    pub fn with_debug(mut self, debug: Value) -> Self {
        self.debug = Some(debug);
        self
    }

    pub fn body(&self, request_id: &str, timestamp: &str, expose_debug: bool) -> Value {
        let mut body = json!({
            "success": false,
            "requestId": request_id,
            "code": self.code,
            "message": self.code.message(),
            "step": self.step,
            "timestamp": timestamp,
        });
        if !self.field_errors.is_empty() {
            body["fieldErrors"] = json!(self.field_errors);
        }
        if let (true, Some(debug)) = (expose_debug, &self.debug) {
            body["debug"] = debug.clone();
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_the_contract_s_status() {
        let contract = [
            ("INVALID_REQUEST", 400), ("UNSUPPORTED_MEDIA_TYPE", 415), ("PAYLOAD_TOO_LARGE", 413),
            ("METHOD_NOT_ALLOWED", 405), ("NOT_FOUND", 404), ("IDEMPOTENCY_KEY_REUSED", 422),
            ("PATIENT_NOT_FOUND", 404), ("PATIENT_CREATION_FAILED", 500), ("PROVIDER_NOT_FOUND", 404),
            ("PROVIDER_NOT_BOOKABLE", 422), ("INVALID_PAYER", 404), ("SERVICE_INSTANCE_NOT_FOUND", 422),
            ("SLOT_IN_PAST", 422), ("SLOT_TAKEN", 409), ("APPOINTMENT_INSERT_FAILED", 500),
            ("DATABASE_UNAVAILABLE", 503), ("INTERNAL_ERROR", 500), ("UNAUTHORIZED", 401),
            ("SYNC_JOB_NOT_FOUND", 404), ("SYNC_JOB_NOT_DEAD", 409), ("PATIENT_MISMATCH", 422),
            ("PATIENT_SLOT_TAKEN", 409), ("SLOT_NOT_OFFERED", 422), ("PATIENT_ID_NOT_ALLOWED", 403),
            ("RATE_LIMITED", 429), ("BOT_CHECK_FAILED", 403), ("CHANGE_NOT_ALLOWED", 403),
            ("APPOINTMENT_NOT_FOUND", 404), ("APPOINTMENT_CANCELLED", 409), ("APPOINTMENT_STARTED", 422),
            ("APPOINTMENT_IN_REVIEW", 409),
        ];
        assert_eq!(contract.len(), ErrorCode::ALL.len());
        for (name, status) in contract {
            let code = ErrorCode::parse(name).unwrap_or_else(|| panic!("{name} is a code"));
            assert_eq!((code.as_str(), code.status()), (name.to_owned(), status));
            assert!(!code.message().is_empty());
        }
        assert_eq!(ErrorCode::parse("SOMETHING_ELSE"), None);
    }

    #[test]
    fn the_body_has_field_errors_only_when_there_are_some_and_debug_only_when_allowed() {
        let error = BookingError::new(ErrorCode::SlotTaken, Step::ConflictCheck).with_debug(json!({"sqlstate": "PT409"}));
        let body = error.body("req-1", "2026-11-24T12:00:00Z", false);
        assert_eq!(
            body,
            json!({"success": false, "requestId": "req-1", "code": "SLOT_TAKEN", "step": "conflict_check",
                   "message": ErrorCode::SlotTaken.message(), "timestamp": "2026-11-24T12:00:00Z"})
        );
        assert_eq!(error.body("req-1", "t", true)["debug"], json!({"sqlstate": "PT409"}));
        let invalid = BookingError::invalid(vec![FieldError { field: "start".into(), message: "is required".into() }]);
        assert_eq!(invalid.body("r", "t", false)["fieldErrors"], json!([{"field": "start", "message": "is required"}]));
    }
}
