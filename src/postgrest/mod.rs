//! The only code that knows PostgREST: the named arguments of our functions (`arguments`), their error answers
//! (`errors`), decoding their answers into domain types (`decode`), and the client over workerd's fetch that
//! implements the store traits (`client`, wasm32 only).

pub mod arguments;
#[cfg(target_arch = "wasm32")]
pub mod client;
pub mod errors;

use serde::de::DeserializeOwned;

use crate::booking::store::StoreError;

/// Reads `function`'s answer into `T`; a shape the code does not know is an error here, not later.
pub fn decode<T: DeserializeOwned>(function: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|error| StoreError::Unexpected {
        status: Some(200),
        detail: format!("{function} answered an unexpected shape: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::booking::model::{BookingOutcome, SyncStatus};
    use crate::sync::job::SyncJob;

    #[test]
    fn answers_decode_into_domain_types() {
        let outcome: BookingOutcome = decode("book_appointment", &crate::testing::booked_json().to_string()).unwrap();
        assert_eq!(outcome.booking.sync_status, SyncStatus::Pending);
        let job = serde_json::json!({"job_id": outcome.booking.sync_job.as_ref().unwrap().id, "attempt": 1, "max_attempts": 5,
                                     "needs_reconcile": false, "needs_intake_lookup": false, "booked_at": "2026-11-24T12:00:00.000Z",
                                     "state": "pending", "booking": crate::testing::booked_json()});
        assert!(decode::<SyncJob>("claim_sync_jobs", &job.to_string()).is_ok());
    }

    #[test]
    fn a_malformed_answer_is_an_unexpected_error_naming_the_function() {
        let mut answer = crate::testing::booked_json();
        answer["sync_status"] = "sent".into();
        match decode::<BookingOutcome>("book_appointment", &answer.to_string()) {
            Err(StoreError::Unexpected { status: Some(200), detail }) => assert!(detail.starts_with("book_appointment answered"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }
}
