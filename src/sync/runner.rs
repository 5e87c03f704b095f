//! The cron's work: claim due sync jobs, attempt each within IntakeQ's rate limit, record every outcome.
//! After a 429 the rest of the batch is released untried until IntakeQ's `Retry-After` (or a minute).

use serde::Serialize;
use tracing::{info, warn};

use super::job::{SyncOutcome, SyncReport};
use super::record::attempt_and_record;
use super::store::SyncStore;
use crate::booking::store::StoreError;
use crate::intakeq::Intakeq;

pub struct RunnerSettings {
    pub batch_size: u32,
    pub lease_seconds: u32,
    pub max_attempts: u32,
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub claimed: usize,
    pub synced: usize,
    pub failed: usize,
    pub released: usize,
}

/// Without a `Retry-After`, how long the rest of a batch waits after a 429.
const DEFAULT_RATE_LIMIT_PAUSE_SECONDS: u64 = 60;

pub async fn run_once(
    store: &impl SyncStore,
    intakeq: &impl Intakeq,
    runner: &str,
    settings: &RunnerSettings,
) -> Result<RunSummary, StoreError> {
    let jobs = store.claim_sync_jobs(runner, settings.batch_size, settings.lease_seconds).await?;
    let mut summary = RunSummary { claimed: jobs.len(), ..RunSummary::default() };
    info!(step = "sync_claim", outcome = "ok", runner, claimed = jobs.len());
    let mut paused_for: Option<u64> = None;
    for job in jobs {
        if let Some(seconds) = paused_for {
            summary.released += 1;
            info!(step = "sync_attempt", outcome = "released", request_id = %job.booking.request_id, job_id = %job.job_id,
                  runner, retry_after_seconds = seconds);
            let report = SyncReport::Released { retry_after_seconds: Some(seconds) };
            if let Err(error) = store.record_sync_result(job.job_id, runner, report, settings.max_attempts).await {
                warn!(step = "sync_record", outcome = "failed", job_id = %job.job_id, runner, debug = %error.debug());
            }
            continue;
        }
        match attempt_and_record(store, intakeq, &job, runner, settings.max_attempts).await.outcome {
            SyncOutcome::Synced { .. } => summary.synced += 1,
            SyncOutcome::Failed { retry_after_seconds, rate_limited, .. } => {
                summary.failed += 1;
                if rate_limited {
                    paused_for = Some(retry_after_seconds.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE_SECONDS));
                }
            }
        }
    }
    info!(step = "sync_run", outcome = "done", runner, claimed = summary.claimed, synced = summary.synced,
          failed = summary.failed, released = summary.released);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::intakeq::IntakeqError;
    use crate::testing::{job, FakeIntakeq, FakeStore};

    fn settings() -> RunnerSettings {
        RunnerSettings { batch_size: 10, lease_seconds: 60, max_attempts: 5 }
    }

    #[test]
    fn due_jobs_are_synced_and_recorded() {
        let store = FakeStore::default();
        store.due_jobs.borrow_mut().extend([job(false), job(true)]);
        let summary = block_on(run_once(&store, &FakeIntakeq::default(), "cron-1", &settings())).unwrap();
        assert_eq!(summary, RunSummary { claimed: 2, synced: 2, failed: 0, released: 0 });
        assert!(store.reports.borrow().iter().all(|(_, runner, report)| runner == "cron-1" && report.contains("Synced")));
    }

    #[test]
    fn after_a_429_the_rest_of_the_batch_is_released_untried() {
        let store = FakeStore::default();
        store.due_jobs.borrow_mut().extend([job(false), job(false), job(false)]);
        let intakeq = FakeIntakeq::default();
        intakeq.fail_next("search_clients", IntakeqError::RateLimited { retry_after_seconds: Some(30) });
        let summary = block_on(run_once(&store, &intakeq, "cron-1", &settings())).unwrap();
        assert_eq!(summary, RunSummary { claimed: 3, synced: 0, failed: 1, released: 2 });
        assert_eq!(intakeq.calls.borrow().len(), 1, "no call after the 429");
        let reports = store.reports.borrow();
        assert!(reports[1].2.contains("Released { retry_after_seconds: Some(30) }"), "{reports:?}");
    }

    #[test]
    fn the_batch_size_bounds_the_claim() {
        let store = FakeStore::default();
        store.due_jobs.borrow_mut().extend([job(false), job(false), job(false)]);
        let small = RunnerSettings { batch_size: 2, ..settings() };
        assert_eq!(block_on(run_once(&store, &FakeIntakeq::default(), "cron-1", &small)).unwrap().claimed, 2);
    }
}
