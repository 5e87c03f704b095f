//! `POST /api/patient-booking/book-v2`, from the request body to the answer: parse (`booking::request`) ->
//! `book_appointment` (a `BookingStore`) -> the first IntakeQ sync attempt (`sync::record`) -> the answer,
//! with each step's start and outcome logged (the request id comes from the enclosing span) and, after any
//! failure past parsing, a failure record. The booking stands whatever IntakeQ does: a failed sync leaves it
//! `pending_sync` (or `failed`) with a warning, and its job for the cron. The answer waits for the attempt at
//! most `inline_sync_budget`; an attempt still running then goes on after the answer (`Answered::after_answer`,
//! which the runtime keeps alive) under its lease, and records its result itself.

use std::time::Duration;

use futures::future::{select, Either, LocalBoxFuture};
use futures::FutureExt;
use serde_json::json;
use tracing::{error, info, warn};

use super::answer::{booking_error, Answer, Answered};
use crate::booking::error::BookingError;
use crate::booking::model::{rfc3339, BookingOutcome, SyncStatus};
use crate::booking::request::BookingRequest;
use crate::booking::store::{BookingStore, FailureRecord, StoreError};
use crate::intakeq::Intakeq;
use crate::support::clock::Clock;
use crate::support::request_id::RequestId;
use crate::sync::job::{RecordedJob, SyncJob};
use crate::sync::record::{attempt_and_record, AttemptSettings};
use crate::sync::store::SyncStore;

pub struct FlowSettings {
    pub expose_error_debug: bool,
    pub sync_lease_seconds: u32,
    pub sync_attempt: AttemptSettings,
    /// How long the answer waits for the first sync attempt (INLINE_SYNC_BUDGET_MS).
    pub inline_sync_budget: Duration,
}

/// `intakeq` is `None` when the worker has no IntakeQ key: the booking then waits in the outbox.
pub async fn book<'a>(
    store: &'a (impl BookingStore + SyncStore),
    intakeq: Option<&'a impl Intakeq>,
    clock: &'a impl Clock,
    request_id: &'a RequestId,
    body: &[u8],
    idempotency_header: Option<&str>,
    settings: &FlowSettings,
) -> Answered<'a> {
    let answered = Answered::from;
    info!(step = "request_validation", outcome = "started", bytes = body.len());
    let booking = match BookingRequest::parse(body, idempotency_header, clock.now()) {
        Ok(booking) => booking,
        Err(field_errors) => {
            let fields: Vec<&str> = field_errors.iter().map(|e| e.field.as_str()).collect();
            warn!(step = "request_validation", outcome = "rejected", code = "INVALID_REQUEST", fields = ?fields);
            return answered(Answer::error(&BookingError::invalid(field_errors), request_id, clock, settings.expose_error_debug));
        }
    };
    info!(step = "request_validation", outcome = "ok", booking = %booking.masked_summary());

    let started = clock.now();
    info!(step = "book_appointment", outcome = "started");
    let result = store.book(&booking, request_id, settings.sync_lease_seconds).await;
    let duration_ms = (clock.now() - started).num_milliseconds();
    match result {
        Ok(mut booked) => {
            let booking = &booked.booking;
            info!(
                step = "book_appointment", outcome = "ok", duration_ms,
                appointment_id = %booking.appointment_id, patient_id = %booking.patient.id,
                patient_created = booked.patient_created, is_duplicate = booked.is_duplicate, replayed = booked.replayed,
                status = booking.status.as_str(), sync_status = booking.sync_status.as_str()
            );
            let Some(attempt) = intakeq.filter(|_| !booked.is_duplicate && !booked.replayed)
                .and_then(|intakeq| first_attempt(store, intakeq, clock, request_id, &booked, settings.sync_attempt))
            else {
                return answered(success(&booked, request_id));
            };
            match select(attempt, futures_timer::Delay::new(settings.inline_sync_budget)).await {
                Either::Left((recorded, _)) => {
                    if let Some(recorded) = recorded {
                        let now = &recorded.job.booking;
                        booked.booking.status = now.status;
                        booked.booking.sync_status = now.sync_status;
                        booked.booking.pq_appointment_id = now.pq_appointment_id.clone();
                        booked.booking.intake_forms = now.intake_forms.clone();
                    }
                    answered(success(&booked, request_id))
                }
                Either::Right(((), still_running)) => {
                    info!(step = "sync_attempt", outcome = "continues_after_answer", budget_ms = settings.inline_sync_budget.as_millis() as u64);
                    Answered { answer: success(&booked, request_id), after_answer: Some(still_running.map(drop).boxed_local()) }
                }
            }
        }
        Err(store_error) => {
            let error = booking_error(&store_error);
            let code = error.code.as_str();
            let step = error.step.as_str();
            if error.code.status() >= 500 {
                error!(step = %step, outcome = "failed", code = %code, duration_ms, debug = %store_error.debug());
            } else {
                warn!(step = %step, outcome = "refused", code = %code, duration_ms, debug = %store_error.debug());
            }
            record_failure(store, request_id, &error, &store_error).await;
            answered(Answer::error(&error, request_id, clock, settings.expose_error_debug))
        }
    }
}

/// The first sync attempt, by the request that booked (it holds the job's lease); `None` when the lease is
/// another's. It answers the job as recorded (`None` when the result could not be recorded: the job stays leased
/// to this request; when the lease runs out the cron takes it, and reconciles).
fn first_attempt<'a>(
    store: &'a impl SyncStore,
    intakeq: &'a impl Intakeq,
    clock: &'a impl Clock,
    request_id: &'a RequestId,
    booked: &BookingOutcome,
    settings: AttemptSettings,
) -> Option<LocalBoxFuture<'a, Option<RecordedJob>>> {
    let booking = &booked.booking;
    let lease = booking.sync_job.as_ref().filter(|j| j.locked_by.as_deref() == Some(request_id.as_str()))?;
    let job = SyncJob {
        job_id: lease.id,
        attempt: 1,
        max_attempts: settings.policy.max_attempts.unwrap_or(0),
        needs_reconcile: false,
        needs_intake_lookup: false,
        booked_at: clock.now(),
        state: lease.state,
        lease_token: lease.lease_token,
        lease_seconds_left: lease.lease_seconds_left,
        intakeq_calls_reserved: None,
        booking: booking.clone(),
    };
    Some(async move { attempt_and_record(store, intakeq, clock, &job, request_id.as_str(), &settings).await.recorded.ok() }.boxed_local())
}

/// Keeps the failure findable by request id. A failure here is logged, never shown to the patient.
async fn record_failure(store: &impl BookingStore, request_id: &RequestId, error: &BookingError, cause: &StoreError) {
    let detail = match cause {
        StoreError::Refused { detail, .. } => detail.clone(),
        StoreError::Unavailable { detail } | StoreError::Unexpected { detail, .. } => Some(detail.clone()),
    };
    let record = FailureRecord {
        request_id: request_id.as_str().to_owned(),
        step: error.step,
        code: error.code,
        message: error.code.message().to_owned(),
        http_status: error.code.status(),
        detail,
    };
    match store.record_failure(&record).await {
        Ok(()) => info!(step = "record_failure", outcome = "ok"),
        Err(e) => error!(step = "record_failure", outcome = "failed", debug = %e.debug()),
    }
}

fn success(booked: &BookingOutcome, request_id: &RequestId) -> Answer {
    let booking = &booked.booking;
    let mut warnings = Vec::new();
    if booked.is_duplicate {
        warnings.push("You already have this appointment; nothing new was booked.");
    }
    match booking.sync_status {
        SyncStatus::Pending => warnings.push(
            "The appointment is saved, but the practice's records system has not confirmed it yet; \
             we keep trying, and the confirmation email will follow once it has.",
        ),
        SyncStatus::Failed => warnings.push(
            "The appointment is saved, but the practice's records system refused it; the practice will contact you.",
        ),
        SyncStatus::Synced => {}
    }
    let mut headers = Vec::new();
    if booked.replayed {
        headers.push(("Idempotent-Replayed", "true".to_owned()));
    }
    Answer {
        status: if booked.replayed || booked.is_duplicate { 200 } else { 201 },
        headers,
        body: json!({
            "success": true,
            "requestId": request_id.as_str(),
            "data": {
                "appointmentId": booking.appointment_id,
                "patientId": booking.patient.id,
                "pqAppointmentId": booking.pq_appointment_id,
                "status": booking.status,
                "syncStatus": booking.sync_status,
                "start": rfc3339(&booking.start),
                "end": rfc3339(&booking.end),
                "duration": booking.duration_minutes,
                "provider": { "id": booking.provider.id, "name": booking.provider.name },
                "isDuplicate": booked.is_duplicate,
                "intakeFormsStatus": booking.intake_forms.status,
            },
            "warnings": warnings,
        }),
    }
}

#[cfg(test)]
mod tests;
