//! A sync job and what can come of it: the job as the outbox hands it to a runner (under a lease with a token),
//! the outcome of one attempt, and the retry policy the database applies to it.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::booking::model::{Booking, JobState};
use crate::intakeq::wire::Appointment;

/// What the job owes IntakeQ now, as the database works it out from the appointment (ours) and what IntakeQ
/// last had (`private.owed_intakeq_operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// The appointment (and its paperwork) into IntakeQ; for a booking cancelled first, the lookup of what an
    /// earlier attempt may have created.
    Create,
    /// Our appointment was cancelled: cancel IntakeQ's.
    Cancel,
    /// Our appointment has a new start: move IntakeQ's.
    Move,
}

/// A job as `claim_sync_jobs` and `record_sync_result` answer it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SyncJob {
    pub job_id: Uuid,
    /// The attempt being made (1 for the first): attempts count when a lease is taken.
    pub attempt: u32,
    pub max_attempts: u32,
    /// An earlier attempt may have created the IntakeQ appointment: look it up before creating one.
    pub needs_reconcile: bool,
    /// An earlier attempt may have sent the intake questionnaire: look for it before sending again.
    pub needs_intake_lookup: bool,
    /// When the booking was made: an intake of its questionnaire sent since then is its own.
    pub booked_at: DateTime<Utc>,
    pub state: JobState,
    /// The current lease's token: a report is recorded only with it. `None` when nobody holds the job.
    pub lease_token: Option<Uuid>,
    /// How long the lease had left when the database answered (its clock, not ours).
    pub lease_seconds_left: Option<i64>,
    /// The IntakeQ calls reserved for this lease from the call budget (the claim reserves them); `None`: none
    /// yet (the booking request's lease reserves its own before its first call).
    #[serde(default)]
    pub intakeq_calls_reserved: Option<u32>,
    /// What the attempt is to do (`None` from a database that predates it: a create).
    #[serde(default)]
    pub operation: Option<Operation>,
    /// Every start an earlier attempt may have posted the appointment with (the booking may have moved since):
    /// the reconcile lookup looks for each.
    #[serde(default)]
    pub posted_starts: Vec<DateTime<Utc>>,
    /// Why the appointment was cancelled, for IntakeQ's cancellation.
    #[serde(default)]
    pub cancellation_reason: Option<String>,
    pub booking: Booking,
}

/// What `record_sync_result` answers: the job as it now stands, and whether the report was recorded (a runner
/// whose lease was taken over is refused).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordedJob {
    #[serde(flatten)]
    pub job: SyncJob,
    pub recorded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing reached IntakeQ, or it failed for now (5xx, timeout before posting): retry with backoff.
    Transient,
    /// The appointment may exist in IntakeQ: retry, looking it up first.
    Ambiguous,
    /// IntakeQ refused the booking as it is: retrying will not help; staff must fix and requeue.
    Permanent,
    /// IntakeQ refused our key (401/403): not this booking's fault. The queue pauses; no attempt is spent.
    Authentication,
    /// A 429: not processed. The job waits for `Retry-After`; no attempt is spent.
    RateLimited,
    /// The lease would run out before another call could finish: stopped untried; no attempt is spent.
    LeaseTooShort,
    /// IntakeQ's call budget (shared by every runner) has no call left for now: stopped untried; no attempt is
    /// spent, and the job waits for the cron, which serves the oldest booking first.
    NoBudget,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Ambiguous => "ambiguous",
            FailureKind::Permanent => "permanent",
            FailureKind::Authentication => "authentication",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::LeaseTooShort => "lease_too_short",
            FailureKind::NoBudget => "no_budget",
        }
    }

    /// Stopped before anything could happen upstream, or refused for reasons not the job's: the attempt is
    /// given back.
    pub fn spends_no_attempt(self) -> bool {
        matches!(self, FailureKind::Authentication | FailureKind::RateLimited | FailureKind::LeaseTooShort | FailureKind::NoBudget)
    }

    /// The whole queue should stop for now (IntakeQ will refuse the next job too).
    pub fn stops_the_queue(self) -> bool {
        matches!(self, FailureKind::Authentication | FailureKind::RateLimited)
    }
}

/// What came of sending the intake questionnaire, after the appointment was in IntakeQ.
#[derive(Debug, Clone, PartialEq)]
pub enum IntakeOutcome {
    Sent { intake_id: String },
    Failed {
        kind: FailureKind,
        error: String,
        /// A lookup for an earlier send completed (and found nothing) before the failure.
        lookup_completed: bool,
        retry_after_seconds: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SyncOutcome {
    /// The appointment is in IntakeQ; `intake` is what came of the paperwork, when it was due. `appointment` is
    /// IntakeQ's, as this attempt created or found it (`None`: it was in IntakeQ before this attempt).
    Synced { pq_appointment_id: String, client_id: String, intake: Option<IntakeOutcome>, appointment: Option<Appointment> },
    /// The booking was cancelled before it reached IntakeQ: nothing was posted. `found_upstream` is an
    /// appointment an earlier attempt had created after all: the database adopts it, and its cancellation is owed.
    Cancelled { found_upstream: Option<Appointment>, client_id: Option<String> },
    /// A cancel or a move is done in IntakeQ, or found done. `now` is IntakeQ's appointment as it stands (`None`:
    /// IntakeQ has it no more); `written`: this attempt made that change (so it is what IntakeQ last had from us),
    /// rather than finding it on a re-read.
    Applied { pq_appointment_id: String, now: Option<Appointment>, written: bool },
    Failed {
        kind: FailureKind,
        /// What went wrong, for staff: no patient data.
        error: String,
        /// The IntakeQ client, when it was found or created before the failure.
        client_id: Option<String>,
        retry_after_seconds: Option<u64>,
        /// A lookup for an earlier attempt's appointment completed (and found nothing) before the failure.
        lookup_completed: bool,
    },
}

/// How long and how often the database keeps a job trying (`SYNC_*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// A cap on attempts; `None`: the retry window alone decides.
    pub max_attempts: Option<u32>,
    pub max_backoff_minutes: u32,
    pub retry_window_hours: u32,
}

/// One budget for every IntakeQ call (INTAKEQ_CALLS_PER_MINUTE, INTAKEQ_CALLS_PER_DAY), kept by the database so
/// that every isolate draws on the same one. `minute_ms` is how long the budget's minute lasts: 60000, except
/// in tests and benches that speed up the clock (INTAKEQ_BUDGET_MINUTE_MS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudget {
    pub per_minute: u32,
    pub per_day: u32,
    pub minute_ms: u32,
}

impl CallBudget {
    /// How long a 429 without `Retry-After` pauses every caller: one of the budget's minutes, in whole seconds.
    /// At most a day (a longer `Retry-After` is waited out a day at a time).
    pub fn pause_after_429_seconds(&self, retry_after_seconds: Option<u64>) -> u64 {
        retry_after_seconds.unwrap_or_else(|| u64::from(self.minute_ms).div_ceil(1000)).clamp(1, 86_400)
    }
}

/// What `reserve_intakeq_calls` answers: the calls granted now, or how long until they would fit (`None`: not
/// for this caller; the cron will serve the job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Reservation {
    pub reserved: bool,
    pub calls: u32,
    pub wait_ms: Option<u64>,
}

/// What an attempt tells the database about its IntakeQ calls, beside its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallsMade {
    /// IntakeQ answered at least one call without refusing our key (a paused queue resumes).
    pub intakeq_answered: bool,
    /// The calls made (the rest of the reservation goes back to the budget).
    pub made: u32,
    /// A 429: every caller waits this long.
    pub rate_limited_seconds: Option<u64>,
}
