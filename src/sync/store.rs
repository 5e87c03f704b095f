//! What the IntakeQ sync needs from the database (the outbox functions of `supabase/migrations/`:
//! `claim_sync_jobs`, `record_sync_result`, `sync_health`, the requeues), as a trait: tested against fakes,
//! implemented over PostgREST (`crate::postgrest`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::job::{RecordedJob, RetryPolicy, SyncJob, SyncOutcome};
use crate::booking::store::StoreError;

#[allow(async_fn_in_trait)]
pub trait SyncStore {
    /// Leases up to `limit` due jobs to `runner` (each with a fresh token), ending first the jobs that can end
    /// without IntakeQ (cancelled, or out of the retry window). A paused queue hands out one probe job a minute.
    async fn claim_sync_jobs(&self, runner: &str, limit: u32, lease_seconds: u32, policy: &RetryPolicy) -> Result<Vec<SyncJob>, StoreError>;
    /// Records an attempt's outcome, if `job`'s lease token is still the current one. `intakeq_answered`: IntakeQ
    /// answered a call of the attempt without refusing our key (a paused queue resumes).
    async fn record_sync_result(&self, job: &SyncJob, runner: &str, outcome: &SyncOutcome, intakeq_answered: bool, policy: &RetryPolicy)
        -> Result<RecordedJob, StoreError>;
    async fn sync_health(&self) -> Result<Value, StoreError>;
    async fn requeue_sync_job(&self, appointment_id: Uuid, requested_by: &str) -> Result<SyncJob, StoreError>;
    /// Every job that died at or after `since`; answers the database's `{requeued, appointment_ids}`.
    async fn requeue_dead_sync_jobs(&self, since: DateTime<Utc>, requested_by: &str) -> Result<Value, StoreError>;
}
