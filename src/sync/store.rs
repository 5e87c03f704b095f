//! What the IntakeQ sync needs from the database (the outbox functions of `supabase/migrations/`:
//! `claim_sync_jobs`, `record_sync_result`, `sync_health`, the requeues), as a trait: tested against fakes,
//! implemented over PostgREST (`crate::postgrest`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::job::{CallBudget, CallsMade, RecordedJob, Reservation, RetryPolicy, SyncJob, SyncOutcome};
use crate::booking::store::StoreError;

#[allow(async_fn_in_trait)]
pub trait SyncStore {
    /// Leases up to `limit` due jobs to `runner` (each with a fresh token), oldest booking first, each only when
    /// `budget` has all the IntakeQ calls it needs (reserved for its lease), stopping at the first that does not
    /// fit; ending first the jobs that can end without IntakeQ (cancelled, or out of the retry window). A paused
    /// queue hands out one probe job a minute.
    async fn claim_sync_jobs(&self, runner: &str, limit: u32, lease_seconds: u32, policy: &RetryPolicy, budget: &CallBudget)
        -> Result<Vec<SyncJob>, StoreError>;
    /// Reserves IntakeQ calls for `job`'s current lease: `None` asks for every call the job needs (refused while
    /// an older booking waits: the cron serves the oldest first); `Some(n)` tops up a running attempt.
    async fn reserve_intakeq_calls(&self, job: &SyncJob, runner: &str, calls: Option<u32>, budget: &CallBudget)
        -> Result<Reservation, StoreError>;
    /// How long until the calls of the oldest due job fit in `budget` (`None`: no job is due).
    async fn intakeq_budget_wait(&self, budget: &CallBudget) -> Result<Option<u64>, StoreError>;
    /// Records an attempt's outcome, if `job`'s lease token is still the current one, and in any case its IntakeQ
    /// calls (the unused rest of its reservation goes back to the budget; a 429 pauses every caller).
    async fn record_sync_result(&self, job: &SyncJob, runner: &str, outcome: &SyncOutcome, calls: &CallsMade, policy: &RetryPolicy)
        -> Result<RecordedJob, StoreError>;
    async fn sync_health(&self) -> Result<Value, StoreError>;
    async fn requeue_sync_job(&self, appointment_id: Uuid, requested_by: &str) -> Result<SyncJob, StoreError>;
    /// Every job that died at or after `since`; answers the database's `{requeued, appointment_ids}`.
    async fn requeue_dead_sync_jobs(&self, since: DateTime<Utc>, requested_by: &str) -> Result<Value, StoreError>;
}
