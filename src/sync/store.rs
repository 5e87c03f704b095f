//! What the IntakeQ sync needs from the database (the outbox functions of
//! `supabase/migrations/20261124001000_intakeq_sync.sql`), as a trait: tested against fakes, implemented over
//! PostgREST (`crate::postgrest`).

use serde_json::Value;
use uuid::Uuid;

use super::job::{SyncJob, SyncReport};
use crate::booking::store::StoreError;

#[allow(async_fn_in_trait)]
pub trait SyncStore {
    async fn claim_sync_jobs(&self, runner: &str, limit: u32, lease_seconds: u32) -> Result<Vec<SyncJob>, StoreError>;
    async fn record_sync_result(&self, job_id: Uuid, runner: &str, report: SyncReport<'_>, max_attempts: u32) -> Result<SyncJob, StoreError>;
    async fn sync_health(&self) -> Result<Value, StoreError>;
    async fn requeue_sync_job(&self, appointment_id: Uuid, requested_by: &str) -> Result<SyncJob, StoreError>;
}
