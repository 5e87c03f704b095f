//! The cron's work: up to `batch_size` jobs, each claimed only when the runner is ready to work it (one at a
//! time, so no job waits in a batch while its lease runs out) and only with the IntakeQ calls it needs reserved
//! from the budget, oldest booking first; attempted and recorded. When the oldest due job's calls do not fit
//! yet, the run waits for them while it has time left (its `run_for`, the cron's period), so the budget is spent
//! as it frees rather than at the next cron. A 429 or a refused key stops the run: the next job would meet the
//! same answer.

use std::time::Duration;

use serde::Serialize;
use tracing::info;

use super::job::{IntakeOutcome, SyncOutcome};
use super::record::{attempt_and_record, AttemptSettings};
use super::store::SyncStore;
use crate::booking::store::StoreError;
use crate::intakeq::Intakeq;
use crate::support::clock::Clock;
use crate::support::deadline::pause;

pub struct RunnerSettings {
    pub batch_size: u32,
    pub lease_seconds: u32,
    pub attempt: AttemptSettings,
    /// How long a run may go on waiting for the budget (no wait would end later than this after its start).
    pub run_for: Duration,
}

/// The shortest wait for the budget: a wait of 0 with nothing claimed is a race lost, not a reason to ask again at once.
const SHORTEST_WAIT: Duration = Duration::from_millis(200);

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub claimed: usize,
    pub synced: usize,
    /// Cancels and moves done in IntakeQ (or found done).
    pub applied: usize,
    pub cancelled: usize,
    pub failed: usize,
    /// Stopped untried (a 429, a refused key, a lease too short, no budget): no attempt spent.
    pub released: usize,
    /// How long the run waited for IntakeQ's budget.
    pub waited_ms: u64,
}

pub async fn run_once(
    store: &impl SyncStore,
    intakeq: &impl Intakeq,
    clock: &impl Clock,
    runner: &str,
    settings: &RunnerSettings,
) -> Result<RunSummary, StoreError> {
    let mut summary = RunSummary::default();
    let deadline = clock.now() + chrono::Duration::from_std(settings.run_for).unwrap_or(chrono::Duration::zero());
    while summary.claimed < settings.batch_size as usize {
        let attempt = &settings.attempt;
        let Some(job) = store.claim_sync_jobs(runner, 1, settings.lease_seconds, &attempt.policy, &attempt.budget).await?.pop() else {
            // Nothing due, or the oldest due job's calls do not fit yet: wait for them if this run has the time.
            let Some(wait_ms) = store.intakeq_budget_wait(&attempt.budget).await? else { break };
            let wait = Duration::from_millis(wait_ms).max(SHORTEST_WAIT);
            if clock.now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX) > deadline {
                info!(step = "intakeq_budget", outcome = "left_for_next_run", runner, wait_ms);
                break;
            }
            info!(step = "intakeq_budget", outcome = "waiting", runner, wait_ms);
            summary.waited_ms += wait.as_millis() as u64;
            pause(wait).await;
            continue;
        };
        summary.claimed += 1;
        match attempt_and_record(store, intakeq, clock, &job, runner, &settings.attempt).await.outcome {
            SyncOutcome::Synced { intake: Some(IntakeOutcome::Failed { kind, .. }), .. } if kind.stops_the_queue() => {
                summary.synced += 1;
                break;
            }
            SyncOutcome::Synced { .. } => summary.synced += 1,
            SyncOutcome::Applied { .. } => summary.applied += 1,
            SyncOutcome::Cancelled { .. } => summary.cancelled += 1,
            SyncOutcome::Failed { kind, .. } if kind.spends_no_attempt() => {
                summary.released += 1;
                if kind.stops_the_queue() {
                    break;
                }
            }
            SyncOutcome::Failed { .. } => summary.failed += 1,
        }
    }
    info!(step = "sync_run", outcome = "done", runner, claimed = summary.claimed, synced = summary.synced,
          applied = summary.applied, cancelled = summary.cancelled, failed = summary.failed, released = summary.released, waited_ms = summary.waited_ms);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::intakeq::IntakeqError;
    use crate::sync::job::RetryPolicy;
    use crate::testing::{job, FakeIntakeq, FakeStore, FixedClock};

    fn settings() -> RunnerSettings {
        let policy = RetryPolicy { max_attempts: None, max_backoff_minutes: 30, retry_window_hours: 72 };
        RunnerSettings { batch_size: 10, lease_seconds: 60, attempt: AttemptSettings { policy, call_and_record: std::time::Duration::from_secs(10), budget: crate::sync::job::CallBudget { per_minute: 10, per_day: 500, minute_ms: 60_000 }, runtime_limit: None }, run_for: Duration::from_secs(60) }
    }

    fn run(store: &FakeStore, intakeq: &FakeIntakeq, settings: &RunnerSettings) -> RunSummary {
        block_on(run_once(store, intakeq, &FixedClock, "cron-1", settings)).unwrap()
    }

    #[test]
    fn due_jobs_are_synced_and_recorded() {
        let store = FakeStore::default();
        store.due_jobs.borrow_mut().extend([job(false), job(true)]);
        let summary = run(&store, &FakeIntakeq::default(), &settings());
        assert_eq!(summary, RunSummary { claimed: 2, synced: 2, ..RunSummary::default() });
        assert!(store.reports.borrow().iter().all(|(_, runner, report)| runner == "cron-1" && report.contains("Synced")));
    }

    #[test]
    fn jobs_are_claimed_one_at_a_time_as_the_runner_gets_to_them() {
        let store = FakeStore::default();
        store.due_jobs.borrow_mut().extend([job(false), job(false)]);
        run(&store, &FakeIntakeq::default(), &settings());
        assert_eq!(*store.claims.borrow(), [1, 1, 1], "one job per claim, and a last claim that found none");
    }

    #[test]
    fn a_429_stops_the_run_and_the_job_gives_its_attempt_back() {
        let store = FakeStore::default();
        store.due_jobs.borrow_mut().extend([job(false), job(false), job(false)]);
        let intakeq = FakeIntakeq::default();
        intakeq.fail_next("search_clients", IntakeqError::RateLimited { retry_after_seconds: Some(30) });
        let summary = run(&store, &intakeq, &settings());
        assert_eq!(summary, RunSummary { claimed: 1, released: 1, ..RunSummary::default() });
        assert_eq!(intakeq.calls.borrow().len(), 1, "no call after the 429");
        assert_eq!(store.due_jobs.borrow().len(), 2, "the rest were never claimed");
        assert!(store.reports.borrow()[0].2.contains("RateLimited"), "{:?}", store.reports.borrow());
        let calls = store.calls_reported.borrow()[0];
        assert_eq!((calls.made, calls.rate_limited_seconds), (1, Some(30)), "one call made; every caller waits out the Retry-After");
    }

    #[test]
    fn a_refused_key_stops_the_run() {
        let store = FakeStore::default();
        store.due_jobs.borrow_mut().extend([job(false), job(false)]);
        let intakeq = FakeIntakeq::default();
        intakeq.fail_next("search_clients", IntakeqError::Rejected { status: 401, message: "HTTP 401".into() });
        let summary = run(&store, &intakeq, &settings());
        assert_eq!(summary, RunSummary { claimed: 1, released: 1, ..RunSummary::default() });
        assert!(store.reports.borrow()[0].2.contains("Authentication"));
    }

    #[test]
    fn a_run_waits_for_the_budget_while_it_has_time_and_stops_when_the_wait_is_longer() {
        let store = FakeStore::default();
        // Nothing fits at first; after a wait of 20 ms the job does; then the budget says 5 minutes.
        store.due_after_a_wait.borrow_mut().push(job(false));
        store.budget_waits.borrow_mut().extend([20, 300_000]);
        let summary = run(&store, &FakeIntakeq::default(), &settings());
        assert_eq!((summary.claimed, summary.synced), (1, 1), "the job was claimed after the wait");
        assert_eq!(summary.waited_ms, 200, "one short wait (at least SHORTEST_WAIT), none of 5 minutes past the run's end");
        assert_eq!(*store.claims.borrow(), [1, 1, 1], "a claim, the wait, a claim that got the job, a claim, then the end");
    }

    #[test]
    fn the_batch_size_bounds_the_claims() {
        let store = FakeStore::default();
        store.due_jobs.borrow_mut().extend([job(false), job(false), job(false)]);
        let small = RunnerSettings { batch_size: 2, ..settings() };
        assert_eq!(run(&store, &FakeIntakeq::default(), &small).claimed, 2);
    }
}
