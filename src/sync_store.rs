//! What the IntakeQ sync needs from the database (the outbox functions of
//! `supabase/migrations/20261124001000_intakeq_sync.sql`), as a trait with the same fakes-and-adapter split as
//! `store`.

use serde::Deserialize;
use serde_json::Value;

use crate::store::{Booked, StoreError};
use crate::sync::SyncOutcome;

/// A job as `claim_sync_jobs` and `record_sync_result` answer it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SyncJob {
    pub job_id: String,
    /// The attempt about to be made (1 for the first).
    pub attempt: u32,
    pub max_attempts: u32,
    /// An earlier attempt may have created the IntakeQ appointment: look it up before creating one.
    pub needs_reconcile: bool,
    pub booking: Booked,
}

/// What a runner reports about a job it held.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncReport<'a> {
    Attempted(&'a SyncOutcome),
    /// Not attempted (the batch stopped after a 429): no attempt counted, not due before `retry_after_seconds`.
    Released { retry_after_seconds: Option<u64> },
}

#[allow(async_fn_in_trait)]
pub trait SyncStore {
    async fn claim_sync_jobs(&self, runner: &str, limit: u32, lease_seconds: u32) -> Result<Vec<SyncJob>, StoreError>;
    async fn record_sync_result(&self, job_id: &str, runner: &str, report: SyncReport<'_>, max_attempts: u32) -> Result<SyncJob, StoreError>;
    async fn sync_health(&self) -> Result<Value, StoreError>;
    async fn requeue_sync_job(&self, appointment_id: &str, requested_by: &str) -> Result<SyncJob, StoreError>;
}
