//! One sync attempt and its record, the same whoever makes it: the request that booked (holding the job's first
//! lease) and the cron runner both come here, so both log `step: sync_attempt` and `step: sync_record` with the
//! job and the booking's request id, and a fix to the protocol is made once.

use std::time::Duration;

use tracing::{info, warn, Instrument};

use super::attempt::{sync_booking, Lease};
use super::job::{RecordedJob, RetryPolicy, SyncJob, SyncOutcome};
use super::store::SyncStore;
use crate::booking::store::StoreError;
use crate::intakeq::Intakeq;
use crate::support::clock::Clock;

/// How a runner works a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptSettings {
    pub policy: RetryPolicy,
    /// What one IntakeQ call and the recording of its result may take at most: no call starts later than this
    /// before the lease runs out.
    pub call_and_record: Duration,
}

/// What came of an attempt: IntakeQ's side, and the database's record of it (an error when the result could
/// not be recorded: the job stays leased to `runner` until the lease runs out, then it is retried, reconciling).
pub struct Attempted {
    pub outcome: SyncOutcome,
    pub recorded: Result<RecordedJob, StoreError>,
}

/// Attempts `job` under `runner`'s lease and records the outcome.
pub async fn attempt_and_record(
    store: &impl SyncStore,
    intakeq: &impl Intakeq,
    clock: &impl Clock,
    job: &SyncJob,
    runner: &str,
    settings: &AttemptSettings,
) -> Attempted {
    let span = tracing::info_span!("sync_job", request_id = %job.booking.request_id, job_id = %job.job_id, runner);
    async {
        info!(step = "sync_attempt", outcome = "started", attempt = job.attempt, needs_reconcile = job.needs_reconcile);
        // The lease's end on this runner's clock (the database says how long it has left, not when it ends).
        let margin = chrono::Duration::from_std(settings.call_and_record).unwrap_or(chrono::Duration::MAX);
        let left = chrono::Duration::seconds(job.lease_seconds_left.unwrap_or(0));
        let lease = Lease::new(clock, clock.now() + left - margin);
        let outcome = sync_booking(intakeq, &lease, job).await;
        match &outcome {
            SyncOutcome::Synced { pq_appointment_id, .. } => {
                info!(step = "sync_attempt", outcome = "synced", pq_appointment_id = %pq_appointment_id)
            }
            SyncOutcome::Cancelled { found_upstream, .. } => {
                info!(step = "sync_attempt", outcome = "cancelled", found_upstream = ?found_upstream)
            }
            SyncOutcome::Failed { kind, error, .. } => {
                warn!(step = "sync_attempt", outcome = "failed", kind = kind.as_str(), error = %error)
            }
        }
        let recorded = store.record_sync_result(job, runner, &outcome, lease.intakeq_answered(), &settings.policy).await;
        match &recorded {
            Ok(recorded) if recorded.recorded => info!(
                step = "sync_record", outcome = "ok", state = ?recorded.job.state,
                status = recorded.job.booking.status.as_str(), sync_status = recorded.job.booking.sync_status.as_str()
            ),
            // Another runner holds the job now: this result was not recorded (a success with another IntakeQ
            // id is kept for staff as a possible duplicate).
            Ok(_) => warn!(step = "sync_record", outcome = "stale_lease"),
            Err(error) => warn!(step = "sync_record", outcome = "failed", debug = %error.debug()),
        }
        Attempted { outcome, recorded }
    }
    .instrument(span)
    .await
}
