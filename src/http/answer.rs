//! An answer before it becomes an HTTP response, and the contract's error answer for a `BookingError` or for
//! the way a database call failed.

use futures::future::LocalBoxFuture;
use serde_json::Value;

use crate::booking::error::{BookingError, ErrorCode, Step};
use crate::booking::store::StoreError;
use crate::support::clock::Clock;
use crate::support::request_id::RequestId;

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

impl Answer {
    pub fn error(error: &BookingError, request_id: &RequestId, clock: &impl Clock, expose_debug: bool) -> Self {
        Answer { status: error.code.status(), headers: Vec::new(), body: error.body(request_id.as_str(), &clock.rfc3339(), expose_debug) }
    }
}

/// An answer, and work that must go on after it has been sent (a booking's first sync attempt past its budget).
pub struct Answered<'a> {
    pub answer: Answer,
    pub after_answer: Option<LocalBoxFuture<'a, ()>>,
}

impl From<Answer> for Answered<'_> {
    fn from(answer: Answer) -> Self {
        Answered { answer, after_answer: None }
    }
}

/// The database's answer in the contract's terms: a refusal names its own step; a call that failed as such names
/// `call_step`, the step of the calling route.
pub fn booking_error(store_error: &StoreError, call_step: Step) -> BookingError {
    match store_error {
        StoreError::Refused { code, step, .. } => BookingError::new(*code, *step),
        StoreError::Unavailable { .. } => BookingError::new(ErrorCode::DatabaseUnavailable, call_step),
        StoreError::Unexpected { .. } => BookingError::new(ErrorCode::InternalError, call_step),
    }
    .with_debug(store_error.debug())
}
