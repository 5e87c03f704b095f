//! A sync job and what can come of it: the job as the outbox hands it to a runner, the outcome of one attempt
//! (synced, or failed in one of three ways that decide what happens next), and what a runner reports.

use serde::Deserialize;
use uuid::Uuid;

use crate::booking::model::Booking;

/// A job as `claim_sync_jobs` and `record_sync_result` answer it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SyncJob {
    pub job_id: Uuid,
    /// The attempt about to be made (1 for the first).
    pub attempt: u32,
    pub max_attempts: u32,
    /// An earlier attempt may have created the IntakeQ appointment: look it up before creating one.
    pub needs_reconcile: bool,
    pub booking: Booking,
}

/// What a runner reports about a job it held.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncReport<'a> {
    Attempted(&'a SyncOutcome),
    /// Not attempted (the batch stopped after a 429): no attempt counted, not due before `retry_after_seconds`.
    Released { retry_after_seconds: Option<u64> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing reached IntakeQ, or it said no for now: retry.
    Transient,
    /// The appointment may exist in IntakeQ: retry, looking it up first.
    Ambiguous,
    /// IntakeQ refused the booking as it is: retrying will not help; staff must fix and requeue.
    Permanent,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Ambiguous => "ambiguous",
            FailureKind::Permanent => "permanent",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SyncOutcome {
    Synced { pq_appointment_id: String, client_id: String },
    Failed {
        kind: FailureKind,
        /// What went wrong, for staff: no patient data.
        error: String,
        /// The IntakeQ client, when it was found or created before the failure.
        client_id: Option<String>,
        retry_after_seconds: Option<u64>,
        rate_limited: bool,
    },
}
