//! One booking, from the request body to the answer: parse -> `book_appointment` -> IntakeQ sync -> answer,
//! with each step's start and outcome logged (the request id comes from the enclosing span) and, after any
//! failure past parsing, a failure record. The booking stands whatever IntakeQ does: a failed sync leaves it
//! `pending_sync` (or `failed`) with a warning, and its job for the cron. No I/O of its own: the database is a
//! `BookingStore` + `SyncStore`, IntakeQ an `Intakeq`.

use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::booking_error::{BookingError, ErrorCode, Step};
use crate::booking_request::BookingRequest;
use crate::clock::Clock;
use crate::intakeq::Intakeq;
use crate::request_id::RequestId;
use crate::store::{Booked, BookingStore, FailureRecord, StoreError};
use crate::sync::sync_booking;
use crate::sync_store::{SyncJob, SyncReport, SyncStore};

/// An answer before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

impl Answer {
    pub fn error(error: &BookingError, request_id: &RequestId, clock: &impl Clock, expose_debug: bool) -> Self {
        Answer { status: error.code.status(), headers: Vec::new(), body: error.body(request_id.as_str(), &clock.rfc3339(), expose_debug) }
    }
}

pub struct FlowSettings {
    pub expose_error_debug: bool,
    pub sync_lease_seconds: u32,
    pub sync_max_attempts: u32,
}

/// `intakeq` is `None` when the worker has no IntakeQ key: the booking then waits in the outbox.
pub async fn book(
    store: &(impl BookingStore + SyncStore),
    intakeq: Option<&impl Intakeq>,
    clock: &impl Clock,
    request_id: &RequestId,
    body: &[u8],
    idempotency_header: Option<&str>,
    settings: &FlowSettings,
) -> Answer {
    info!(step = "request_validation", outcome = "started", bytes = body.len());
    let booking = match BookingRequest::parse(body, idempotency_header, clock.now()) {
        Ok(booking) => booking,
        Err(field_errors) => {
            let fields: Vec<&str> = field_errors.iter().map(|e| e.field.as_str()).collect();
            warn!(step = "request_validation", outcome = "rejected", code = "INVALID_REQUEST", fields = ?fields);
            return Answer::error(&BookingError::invalid(field_errors), request_id, clock, settings.expose_error_debug);
        }
    };
    info!(step = "request_validation", outcome = "ok", booking = %booking.masked_summary());

    let started = clock.now();
    info!(step = "book_appointment", outcome = "started");
    let result = store.book(&booking.rpc_arguments(request_id, settings.sync_lease_seconds)).await;
    let duration_ms = (clock.now() - started).num_milliseconds();
    match result {
        Ok(booked) => {
            info!(
                step = "book_appointment", outcome = "ok", duration_ms,
                appointment_id = %booked.appointment_id, patient_id = %booked.patient.id,
                patient_created = booked.patient_created, is_duplicate = booked.is_duplicate, replayed = booked.replayed,
                status = %booked.status, sync_status = %booked.sync_status
            );
            let booked = match intakeq {
                Some(intakeq) if !booked.is_duplicate && !booked.replayed => {
                    sync_now(store, intakeq, clock, request_id, booked, settings.sync_max_attempts).await
                }
                _ => booked,
            };
            success(&booked, request_id)
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
            Answer::error(&error, request_id, clock, settings.expose_error_debug)
        }
    }
}

/// The first sync attempt, by the request that booked (it holds the job's lease). Whatever happens, the answer
/// is what the database then says about the appointment.
async fn sync_now(
    store: &impl SyncStore,
    intakeq: &impl Intakeq,
    clock: &impl Clock,
    request_id: &RequestId,
    booked: Booked,
    max_attempts: u32,
) -> Booked {
    let Some(job) = booked.sync_job.as_ref().filter(|j| j.locked_by.as_deref() == Some(request_id.as_str())) else {
        return booked;
    };
    let job = SyncJob { job_id: job.id.clone(), attempt: 1, max_attempts, needs_reconcile: false, booking: booked.clone() };
    let started = clock.now();
    info!(step = "intakeq_sync", outcome = "started", job_id = %job.job_id);
    let outcome = sync_booking(intakeq, &job).await;
    let duration_ms = (clock.now() - started).num_milliseconds();
    match store.record_sync_result(&job.job_id, request_id.as_str(), SyncReport::Attempted(&outcome), max_attempts).await {
        Ok(recorded) => {
            info!(
                step = "intakeq_sync", outcome = %recorded.booking.sync_status, duration_ms,
                pq_appointment_id = ?recorded.booking.pq_appointment_id, attempt_outcome = ?outcome
            );
            Booked {
                status: recorded.booking.status,
                sync_status: recorded.booking.sync_status,
                pq_appointment_id: recorded.booking.pq_appointment_id,
                ..booked
            }
        }
        Err(error) => {
            // The job stays leased to this request; when the lease runs out the cron takes it, and reconciles.
            error!(step = "intakeq_sync", outcome = "unrecorded", duration_ms, debug = %error.debug());
            booked
        }
    }
}

/// The database's answer in the contract's terms.
pub fn booking_error(store_error: &StoreError) -> BookingError {
    match store_error {
        StoreError::Refused { code, step, .. } => BookingError::new(*code, *step),
        StoreError::Unavailable { .. } => BookingError::new(ErrorCode::DatabaseUnavailable, Step::BookingRpc),
        StoreError::Unexpected { .. } => BookingError::new(ErrorCode::InternalError, Step::BookingRpc),
    }
    .with_debug(store_error.debug())
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

fn success(booked: &Booked, request_id: &RequestId) -> Answer {
    let mut warnings = Vec::new();
    if booked.is_duplicate {
        warnings.push("You already have this appointment; nothing new was booked.");
    }
    match booked.sync_status.as_str() {
        "pending" => warnings.push(
            "The appointment is saved, but the practice's records system has not confirmed it yet; \
             we keep trying, and the confirmation email will follow once it has.",
        ),
        "failed" => warnings.push(
            "The appointment is saved, but the practice's records system refused it; the practice will contact you.",
        ),
        _ => {}
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
                "appointmentId": booked.appointment_id,
                "patientId": booked.patient.id,
                "pqAppointmentId": booked.pq_appointment_id,
                "status": booked.status,
                "syncStatus": booked.sync_status,
                "start": booked.start,
                "end": booked.end,
                "duration": booked.duration_minutes,
                "provider": { "id": booked.provider.id, "name": booked.provider.name },
                "isDuplicate": booked.is_duplicate,
            },
            "warnings": warnings,
        }),
    }
}

#[cfg(test)]
mod tests;
