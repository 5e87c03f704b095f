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
use uuid::Uuid;
use tracing::{error, info, warn};

use super::answer::{booking_error, Answer, Answered};
use crate::abuse::{address_refused, AbuseSettings, AttemptStore, Gatekeeper, PER_IP_RETRY_AFTER};
use crate::booking::error::{BookingError, ErrorCode, Step};
use crate::booking::model::{rfc3339, BookingOutcome, SyncStatus};
use crate::booking::request::{BookingRequest, Patient};
use crate::booking::store::{BookingStore, FailureRecord, StoreError};
use crate::intakeq::Intakeq;
use crate::support::clock::Clock;
use crate::support::manage_token;
use crate::support::request_id::RequestId;
use crate::support::secret::Secret;
use crate::sync::job::{RecordedJob, SyncJob, Operation};
use crate::sync::record::{attempt_and_record, AttemptSettings};
use crate::sync::store::SyncStore;

pub struct FlowSettings {
    pub expose_error_debug: bool,
    pub sync_lease_seconds: u32,
    pub sync_attempt: AttemptSettings,
    /// How long, from the request's arrival, the answer may wait for the first sync attempt
    /// (INLINE_SYNC_BUDGET_MS).
    pub inline_sync_budget: Duration,
    /// The caller showed the partner token: it may name a patient record by `patientId`.
    pub trusted_caller: bool,
    /// After a booking call that timed out, how long the database may wait for its transaction to end.
    pub booking_wait_ms: u64,
    /// The limits on attempts, and whether Turnstile is on.
    pub abuse: AbuseSettings,
    /// The client's address, as Cloudflare's edge gives it (`CF-Connecting-IP`).
    pub client_address: Option<String>,
    /// A Turnstile token sent as the `CF-Turnstile-Response` header (the body's `turnstileToken` wins).
    pub turnstile_header: Option<String>,
    /// MANAGE_TOKEN_SECRET: a new booking's answer carries its manage token.
    pub manage_token_secret: Option<Secret>,
}

/// `intakeq` is `None` when the worker has no IntakeQ key: the booking then waits in the outbox.
#[allow(clippy::too_many_arguments)]
pub async fn book<'a>(
    store: &'a (impl BookingStore + SyncStore + AttemptStore),
    intakeq: Option<&'a impl Intakeq>,
    gate: &impl Gatekeeper,
    clock: &'a impl Clock,
    request_id: &'a RequestId,
    body: &[u8],
    idempotency_header: Option<&str>,
    settings: &FlowSettings,
) -> Answered<'a> {
    let received = clock.now();
    let answered = Answered::from;
    let refuse = |code, step, retry_after: Option<u64>| {
        let mut answer = Answer::error(&BookingError::new(code, step), request_id, clock, settings.expose_error_debug);
        if let Some(seconds) = retry_after {
            answer.headers.push(("Retry-After", seconds.to_string()));
        }
        Answered::from(answer)
    };
    // The per-address limit, before the body is even parsed (the practice's own tools pass).
    if !settings.trusted_caller && address_refused(gate, &settings.abuse, settings.client_address.as_deref()).await {
        return refuse(ErrorCode::RateLimited, Step::RateLimit, Some(PER_IP_RETRY_AFTER.as_secs()));
    }
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

    if matches!(booking.patient, Patient::Existing { .. }) && !settings.trusted_caller {
        warn!(step = "authorization", outcome = "refused", code = "PATIENT_ID_NOT_ALLOWED");
        return refuse(ErrorCode::PatientIdNotAllowed, Step::Authorization, None);
    }

    if let Some(refusal) = screen(store, gate, request_id, &booking, settings).await {
        return refuse(refusal.code, refusal.step, refusal.retry_after);
    }

    let started = clock.now();
    info!(step = "book_appointment", outcome = "started");
    let call = Uuid::new_v4();
    let mut result = store.book(&booking, request_id, call, settings.sync_lease_seconds).await;
    if let Err(StoreError::Unavailable { .. }) = &result {
        // No answer in time, yet the transaction may still commit: ask what became of it before answering.
        result = committed_after_all(store, request_id, &booking, call, settings.booking_wait_ms).await.ok_or_else(|| result.unwrap_err());
    }
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
                return answered(success(&booked, request_id, settings.manage_token_secret.as_ref()));
            };
            // The budget runs from the request's arrival: the answer comes within it (and the rest of the way).
            let spent = (clock.now() - received).to_std().unwrap_or_default();
            match select(attempt, futures_timer::Delay::new(settings.inline_sync_budget.saturating_sub(spent))).await {
                Either::Left((recorded, _)) => {
                    if let Some(recorded) = recorded {
                        let now = &recorded.job.booking;
                        booked.booking.status = now.status;
                        booked.booking.sync_status = now.sync_status;
                        booked.booking.pq_appointment_id = now.pq_appointment_id.clone();
                        booked.booking.intake_forms = now.intake_forms.clone();
                    }
                    answered(success(&booked, request_id, settings.manage_token_secret.as_ref()))
                }
                Either::Right(((), still_running)) => {
                    info!(step = "sync_attempt", outcome = "continues_after_answer", budget_ms = settings.inline_sync_budget.as_millis() as u64);
                    Answered { answer: success(&booked, request_id, settings.manage_token_secret.as_ref()), after_answer: Some(still_running.map(drop).boxed_local()) }
                }
            }
        }
        Err(store_error) => {
            let error = booking_error(&store_error, Step::BookingRpc);
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
        operation: Some(Operation::Create),
        posted_starts: Vec::new(),
        cancellation_reason: None,
        booking: booking.clone(),
    };
    Some(async move { attempt_and_record(store, intakeq, clock, &job, request_id.as_str(), &settings).await.recorded.ok() }.boxed_local())
}

/// Why a booking is refused before anything is written, and the wait it advises (`Retry-After`).
struct Refusal {
    code: ErrorCode,
    step: Step,
    retry_after: Option<u64>,
}

/// The checks after parsing, before anything is written: Turnstile's verdict (when on), then the per-email limit
/// (which counts the attempt). The practice's own tools pass both. `Some`: the refusal to answer.
async fn screen(
    store: &impl AttemptStore,
    gate: &impl Gatekeeper,
    request_id: &RequestId,
    booking: &BookingRequest,
    settings: &FlowSettings,
) -> Option<Refusal> {
    if settings.trusted_caller {
        return None;
    }
    let limits = &settings.abuse;
    if limits.turnstile {
        let token = booking.turnstile_token.as_deref().or(settings.turnstile_header.as_deref());
        let verdict = match token {
            None => Err("no Turnstile token".to_owned()),
            Some(token) => match gate.person_sent(token, settings.client_address.as_deref()).await {
                Ok(true) => Ok(()),
                Ok(false) => Err("Turnstile refused the token".to_owned()),
                Err(error) => Err(format!("siteverify could not be asked: {error}")),
            },
        };
        if let Err(why) = verdict {
            warn!(step = "bot_check", outcome = "refused", code = "BOT_CHECK_FAILED", why = %why);
            return Some(Refusal { code: ErrorCode::BotCheckFailed, step: Step::BotCheck, retry_after: None });
        }
    }
    let email = match &booking.patient {
        Patient::New(patient) => patient.email.as_str(),
        Patient::Existing { .. } => return None,
    };
    if limits.per_email_per_hour > 0 {
        match store.note_booking_attempt(email, request_id.as_str(), limits.per_email_per_hour).await {
            Ok(attempt) if attempt.allowed => {}
            Ok(_) => {
                warn!(step = "rate_limit", outcome = "refused", code = "RATE_LIMITED", limit = "per_email");
                // The whole hour, not the database's exact wait: that would tell anyone who types the email when
                // its owner tried to book.
                return Some(Refusal { code: ErrorCode::RateLimited, step: Step::RateLimit, retry_after: Some(3600) });
            }
            // The booking call that follows meets the same database, and answers for it.
            Err(error) => warn!(step = "rate_limit", outcome = "unchecked", limit = "per_email", debug = %error.debug()),
        }
    }
    None
}

/// The booking this request made after all, once its transaction has ended (a commit after the worker stopped
/// waiting); `None` when it made none, or the database cannot say.
async fn committed_after_all(store: &impl BookingStore, request_id: &RequestId, booking: &BookingRequest, call: Uuid, wait_ms: u64)
    -> Option<BookingOutcome> {
    match store.booking_by_request(request_id, booking, call, wait_ms).await {
        Ok(Some(booked)) => {
            warn!(step = "book_appointment", outcome = "committed_after_timeout", appointment_id = %booked.booking.appointment_id);
            Some(booked)
        }
        Ok(None) => {
            info!(step = "book_appointment", outcome = "not_committed");
            None
        }
        Err(error) => {
            warn!(step = "book_appointment", outcome = "outcome_unknown", debug = %error.debug());
            None
        }
    }
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

/// The booking's answer. Its manage token goes to the request that made the booking (and its replays), never with
/// a duplicate's answer: knowing a patient's details is not a key to their appointment.
fn success(booked: &BookingOutcome, request_id: &RequestId, manage_token_secret: Option<&Secret>) -> Answer {
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
                "manageToken": manage_token_secret.filter(|_| !booked.is_duplicate)
                    .map(|secret| manage_token::issue(secret, booking.appointment_id)),
            },
            "warnings": warnings,
        }),
    }
}

#[cfg(test)]
mod tests;
