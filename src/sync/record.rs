//! One sync attempt and its record, the same whoever makes it: the request that booked (holding the job's first
//! lease) and the cron runner both come here, so both log `step: sync_attempt` and `step: sync_record` with the
//! job and the booking's request id, and a fix to the protocol is made once.

use std::time::Duration;

use tracing::{info, warn, Instrument};

use super::attempt::{sync_booking, Lease, TopUp};
use super::job::{CallBudget, CallsMade, FailureKind, IntakeOutcome, RecordedJob, RetryPolicy, SyncJob, SyncOutcome};
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
    /// IntakeQ's call budget, shared by every runner.
    pub budget: CallBudget,
    /// How long the runtime lets the attempt run at all, from its start, when that is shorter than its lease:
    /// the booking request's attempt goes on after the answer only as long as workerd's waitUntil allows.
    pub runtime_limit: Option<Duration>,
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
        // The lease's end on this runner's clock (the database says how long it has left, not when it ends),
        // counted from before the reservation, which takes time of its own; and no later than the runtime allows.
        let started = clock.now();
        let margin = chrono::Duration::from_std(settings.call_and_record).unwrap_or(chrono::Duration::MAX);
        let mut left = chrono::Duration::seconds(job.lease_seconds_left.unwrap_or(0));
        if let Some(limit) = settings.runtime_limit.and_then(|l| chrono::Duration::from_std(l).ok()) {
            left = left.min(limit);
        }
        let top_up: TopUp = Box::new(|| {
            Box::pin(async { store.reserve_intakeq_calls(job, runner, Some(1), &settings.budget).await.is_ok_and(|r| r.reserved) })
        });
        let (outcome, calls) = match reserved_calls(store, job, runner, &settings.budget).await {
            Some(granted) => {
                let lease = Lease::new(clock, started + left - margin, granted, Some(top_up));
                let outcome = sync_booking(intakeq, &lease, job).await;
                let rate_limited_seconds = retry_after_429(&outcome).map(|after| settings.budget.pause_after_429_seconds(after));
                (outcome, CallsMade { intakeq_answered: lease.intakeq_answered(), made: lease.calls_made(), rate_limited_seconds })
            }
            None => {
                let error = "IntakeQ's call budget has no calls left for this job now: it waits for the cron".to_owned();
                let outcome = SyncOutcome::Failed { kind: FailureKind::NoBudget, error, client_id: None, retry_after_seconds: None, lookup_completed: false };
                (outcome, CallsMade::default())
            }
        };
        match &outcome {
            SyncOutcome::Synced { pq_appointment_id, .. } => {
                info!(step = "sync_attempt", outcome = "synced", pq_appointment_id = %pq_appointment_id)
            }
            SyncOutcome::Cancelled { found_upstream, .. } => {
                info!(step = "sync_attempt", outcome = "cancelled", found_upstream = ?found_upstream.as_ref().map(|a| &a.id))
            }
            SyncOutcome::Applied { pq_appointment_id, now, written } => info!(
                step = "sync_attempt", outcome = "applied", operation = ?job.operation, pq_appointment_id = %pq_appointment_id,
                intakeq_status = ?now.as_ref().and_then(|a| a.status.as_deref()), written
            ),
            SyncOutcome::Failed { kind, error, .. } => {
                warn!(step = "sync_attempt", outcome = "failed", kind = kind.as_str(), error = %error)
            }
        }
        let recorded = store.record_sync_result(job, runner, &outcome, &calls, &settings.policy).await;
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

/// The calls granted for this attempt: those the claim reserved, else a reservation of every call the job needs
/// (the booking request's own lease). `None`: none now.
async fn reserved_calls(store: &impl SyncStore, job: &SyncJob, runner: &str, budget: &CallBudget) -> Option<u32> {
    if let Some(calls) = job.intakeq_calls_reserved {
        return Some(calls);
    }
    match store.reserve_intakeq_calls(job, runner, None, budget).await {
        Ok(reservation) if reservation.reserved => Some(reservation.calls),
        Ok(reservation) => {
            info!(step = "intakeq_budget", outcome = "no_calls_left", wait_ms = ?reservation.wait_ms);
            None
        }
        Err(error) => {
            warn!(step = "intakeq_budget", outcome = "failed", debug = %error.debug());
            None
        }
    }
}

/// IntakeQ answered 429 (with its `Retry-After`, if any).
fn retry_after_429(outcome: &SyncOutcome) -> Option<Option<u64>> {
    match outcome {
        SyncOutcome::Failed { kind: FailureKind::RateLimited, retry_after_seconds, .. }
        | SyncOutcome::Synced {
            intake: Some(IntakeOutcome::Failed { kind: FailureKind::RateLimited, retry_after_seconds, .. }), ..
        } => Some(*retry_after_seconds),
        _ => None,
    }
}
