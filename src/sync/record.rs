//! One sync attempt and its record, the same whoever makes it: the request that booked (holding the job's first
//! lease) and the cron runner both come here, so both log `step: sync_attempt` and `step: sync_record` with the
//! job and the booking's request id, and a fix to the protocol is made once.

use tracing::{info, warn, Instrument};

use super::attempt::sync_booking;
use super::job::{SyncJob, SyncOutcome, SyncReport};
use super::store::SyncStore;
use crate::booking::store::StoreError;
use crate::intakeq::Intakeq;

/// What came of an attempt: IntakeQ's side, and the database's record of it (an error when the result could
/// not be recorded: the job stays leased to `runner` until the lease runs out, then it is retried, reconciling).
pub struct Attempted {
    pub outcome: SyncOutcome,
    pub recorded: Result<SyncJob, StoreError>,
}

/// Attempts `job` under `runner`'s lease and records the outcome.
pub async fn attempt_and_record(
    store: &impl SyncStore,
    intakeq: &impl Intakeq,
    job: &SyncJob,
    runner: &str,
    max_attempts: u32,
) -> Attempted {
    let span = tracing::info_span!("sync_job", request_id = %job.booking.request_id, job_id = %job.job_id, runner);
    async {
        info!(step = "sync_attempt", outcome = "started", attempt = job.attempt, needs_reconcile = job.needs_reconcile);
        let outcome = sync_booking(intakeq, job).await;
        match &outcome {
            SyncOutcome::Synced { pq_appointment_id, .. } => {
                info!(step = "sync_attempt", outcome = "synced", pq_appointment_id = %pq_appointment_id)
            }
            SyncOutcome::Failed { kind, error, .. } => {
                warn!(step = "sync_attempt", outcome = "failed", kind = kind.as_str(), error = %error)
            }
        }
        let recorded = store.record_sync_result(job.job_id, runner, SyncReport::Attempted(&outcome), max_attempts).await;
        match &recorded {
            Ok(recorded) => info!(
                step = "sync_record", outcome = "ok",
                status = recorded.booking.status.as_str(), sync_status = recorded.booking.sync_status.as_str()
            ),
            Err(error) => warn!(step = "sync_record", outcome = "failed", debug = %error.debug()),
        }
        Attempted { outcome, recorded }
    }
    .instrument(span)
    .await
}
