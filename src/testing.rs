//! Fakes for the native unit tests: a clock that does not move and a store that answers what a test says.

use std::cell::RefCell;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::store::{Booked, BookingStore, FailureRecord, StoreError};

pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }
}

/// A store answering what the test says, remembering what it was asked.
#[derive(Default)]
pub struct FakeStore {
    pub answer: RefCell<Option<Result<Booked, StoreError>>>,
    pub booked_with: RefCell<Vec<Value>>,
    pub failures: RefCell<Vec<FailureRecord>>,
    pub failing_record: bool,
    pub unhealthy: bool,
}

impl FakeStore {
    pub fn answering(answer: Result<Booked, StoreError>) -> Self {
        FakeStore { answer: RefCell::new(Some(answer)), ..FakeStore::default() }
    }
}

impl BookingStore for FakeStore {
    async fn book(&self, arguments: &Value) -> Result<Booked, StoreError> {
        self.booked_with.borrow_mut().push(arguments.clone());
        self.answer.borrow_mut().take().expect("one booking per test")
    }

    async fn record_failure(&self, failure: &FailureRecord) -> Result<(), StoreError> {
        self.failures.borrow_mut().push(failure.clone());
        if self.failing_record {
            Err(StoreError::Unavailable { detail: "down".into() })
        } else {
            Ok(())
        }
    }

    async fn health(&self) -> Result<(), StoreError> {
        if self.unhealthy {
            Err(StoreError::Unavailable { detail: "connection refused".into() })
        } else {
            Ok(())
        }
    }
}

/// What `book_appointment` answers for a new booking.
pub fn booked() -> Booked {
    serde_json::from_value(json!({
        "appointment_id": "3ca6a61f-dbfb-4c18-9db1-3e0589df99e3", "status": "pending_sync", "sync_status": "pending",
        "pq_appointment_id": null, "start": "2026-12-01T16:00:00Z", "end": "2026-12-01T17:00:00Z",
        "duration_minutes": 60, "patient": {"id": "a0d2c8b0-7896-46af-9aca-ea5177939b1a"},
        "provider": {"id": "a1000000-0000-4000-8000-000000000001", "name": "Ana Rivera, MD"},
        "is_duplicate": false, "replayed": false, "patient_created": true, "intakeq": {}
    }))
    .unwrap()
}

/// The booking form's body for a new self-pay patient.
pub fn form() -> Vec<u8> {
    json!({
        "patient": {"firstName": "Riley", "lastName": "Quinn", "email": "riley@example.com"},
        "providerId": "a1000000-0000-4000-8000-000000000001", "payerId": "cash-payment",
        "start": "2026-12-01T09:00:00-07:00", "locationType": "telehealth"
    })
    .to_string()
    .into_bytes()
}
