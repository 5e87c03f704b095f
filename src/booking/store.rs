//! What a booking needs from the database, as a trait: the booking flow is tested against fakes, and the
//! worker implements it over PostgREST (`crate::postgrest`). Also the ways a database call can fail.

use serde_json::{json, Value};
use uuid::Uuid;

use super::error::{ErrorCode, Step};
use super::model::BookingOutcome;
use super::request::BookingRequest;
use crate::support::request_id::RequestId;

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
    /// The whole database half of a booking, in one transaction (`book_appointment`): the patient, the
    /// appointment, and its sync job leased to `request_id` for `sync_lease_seconds`. `call` names this call
    /// (a retry is another call): once `booking_by_request` has found nothing for it, it can never book.
    async fn book(&self, booking: &BookingRequest, request_id: &RequestId, call: Uuid, sync_lease_seconds: u32)
        -> Result<BookingOutcome, StoreError>;
    /// After `book` gave no answer in time: waits (at most `wait_ms`) for that booking's transaction to end,
    /// then answers the booking `request_id` made for `booking` (the same provider, start and patient), or `None`
    /// when it made none (`booking_by_request`).
    async fn booking_by_request(&self, request_id: &RequestId, booking: &BookingRequest, call: Uuid, wait_ms: u64)
        -> Result<Option<BookingOutcome>, StoreError>;
    async fn record_failure(&self, failure: &FailureRecord) -> Result<(), StoreError>;
    async fn health(&self) -> Result<(), StoreError>;
}
