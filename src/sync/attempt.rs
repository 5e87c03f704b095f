//! One attempt to put a booking into IntakeQ, safe to repeat: reuse an IntakeQ client only when it is the same
//! person (IntakeQ's search is partial, and a family may share an email); when an earlier attempt may have
//! created the appointment, look it up before posting (IntakeQ has no idempotency key); then send the intake
//! questionnaire, looking for an earlier send the same way. Every call goes through the job's `Lease` (its time
//! and IntakeQ's call budget). No I/O of its own: IntakeQ is a trait.

use std::cell::Cell;
use std::future::Future;

use chrono::{DateTime, Days, Utc};
use futures::future::LocalBoxFuture;
use tracing::{info, warn};

use super::job::{FailureKind, IntakeOutcome, Operation, SyncJob, SyncOutcome};
use crate::booking::model::{AppointmentStatus, BookedPatient, IntakeFormsStatus};
use crate::intakeq::wire::{Appointment, AppointmentMove, Cancellation, Client, Intake, NewAppointment, NewClient, NewIntake, PAGE_SIZE};
use crate::intakeq::{Intakeq, IntakeqError};
use crate::support::clock::Clock;

/// How many pages of one search an attempt reads at most (100 records a page).
const MAX_PAGES: u32 = 20;

/// Asks the call budget for one more call when an attempt has made every call reserved for it (a search that
/// ran to a second page, say); answers whether it was granted.
pub type TopUp<'a> = Box<dyn Fn() -> LocalBoxFuture<'a, bool> + 'a>;

/// The lease an attempt runs under, through which every IntakeQ call goes: no call starts unless it can finish
/// (and be recorded) before the lease runs out, so no other runner can be working on the job at the same time;
/// and none without a call of IntakeQ's budget (reserved for the attempt, or topped up). It also notes whether
/// IntakeQ answered any call (so our key works) and how many calls were made.
pub struct Lease<'a, C> {
    clock: &'a C,
    /// The last moment a call may start: the lease's end less one call and one database call.
    last_call_start: DateTime<Utc>,
    answered: Cell<bool>,
    /// The calls the budget granted this attempt, and the calls made.
    granted: Cell<u32>,
    made: Cell<u32>,
    top_up: Option<TopUp<'a>>,
}

impl<'a, C: Clock> Lease<'a, C> {
    pub fn new(clock: &'a C, last_call_start: DateTime<Utc>, granted: u32, top_up: Option<TopUp<'a>>) -> Self {
        Lease { clock, last_call_start, answered: Cell::new(false), granted: Cell::new(granted), made: Cell::new(0), top_up }
    }

    /// Makes `call` if the lease and the budget allow it.
    async fn call<T>(&self, call: impl Future<Output = Result<T, IntakeqError>>) -> Result<T, IntakeqError> {
        if self.clock.now() > self.last_call_start {
            return Err(IntakeqError::LeaseTooShort);
        }
        if self.made.get() >= self.granted.get() {
            match &self.top_up {
                Some(top_up) if top_up().await => self.granted.set(self.granted.get() + 1),
                _ => return Err(IntakeqError::NoBudget),
            }
            // The top-up was a database call: the lease may have run short meanwhile.
            if self.clock.now() > self.last_call_start {
                return Err(IntakeqError::LeaseTooShort);
            }
        }
        self.made.set(self.made.get() + 1);
        let result = call.await;
        if result.as_ref().map_or_else(IntakeqError::accepted_our_key, |_| true) {
            self.answered.set(true);
        }
        result
    }

    /// IntakeQ answered at least one call of this attempt without refusing our key.
    pub fn intakeq_answered(&self) -> bool {
        self.answered.get()
    }

    /// The IntakeQ calls this attempt made.
    pub fn calls_made(&self) -> u32 {
        self.made.get()
    }
}

fn failed(kind: FailureKind, error: String, client_id: Option<String>) -> SyncOutcome {
    SyncOutcome::Failed { kind, error, client_id, retry_after_seconds: None, lookup_completed: false }
}

/// What a failed call means. Before something is created nothing can have been; when creating it, or looking
/// for what an earlier attempt may have created, anything but a clear answer is ambiguous.
fn kind_of(error: &IntakeqError, may_have_created: bool) -> FailureKind {
    match error {
        IntakeqError::RateLimited { .. } => FailureKind::RateLimited,
        IntakeqError::LeaseTooShort => FailureKind::LeaseTooShort,
        IntakeqError::NoBudget => FailureKind::NoBudget,
        IntakeqError::Rejected { status: 401 | 403, .. } => FailureKind::Authentication,
        IntakeqError::Rejected { .. } | IntakeqError::NotFound => FailureKind::Permanent,
        _ if may_have_created => FailureKind::Ambiguous,
        _ => FailureKind::Transient,
    }
}

fn retry_after(error: &IntakeqError) -> Option<u64> {
    match error {
        IntakeqError::RateLimited { retry_after_seconds } => *retry_after_seconds,
        _ => None,
    }
}

/// A failed call of the appointment's part, as the attempt's outcome.
fn call_failed(call: &str, error: IntakeqError, may_have_created: bool, client_id: Option<String>) -> SyncOutcome {
    SyncOutcome::Failed {
        kind: kind_of(&error, may_have_created),
        retry_after_seconds: retry_after(&error),
        error: format!("{call}: {error}"),
        client_id,
        lookup_completed: false,
    }
}

/// Reads page after page (IntakeQ answers 100 records a page) until `wanted` finds one, or a page is short.
async fn first_on_any_page<T: Clone, Page: Future<Output = Result<Vec<T>, IntakeqError>>>(
    mut page: impl FnMut(u32) -> Page,
    wanted: impl Fn(&&T) -> bool,
) -> Result<Option<T>, IntakeqError> {
    for number in 1..=MAX_PAGES {
        let items = page(number).await?;
        if let Some(found) = items.iter().find(&wanted) {
            return Ok(Some(found.clone()));
        }
        if items.len() < PAGE_SIZE {
            return Ok(None);
        }
    }
    Err(IntakeqError::TooManyPages)
}

/// A name as the database compares names (`private.name_key`): white space collapsed and trimmed, lower case.
fn name_key(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Is `client` this patient? The same email (in any case), the same first and last names, and the same date of
/// birth when both sides know it. Anything less is another person's chart.
fn same_person(client: &Client, patient: &BookedPatient) -> bool {
    let same = |theirs: &Option<String>, ours: &str| theirs.as_deref().is_some_and(|t| name_key(t) == name_key(ours));
    let same_birth_date = match (client.date_of_birth, patient.date_of_birth) {
        (Some(ms), Some(ours)) => DateTime::<Utc>::from_timestamp_millis(ms).is_some_and(|t| t.date_naive() == ours),
        _ => true,
    };
    client.email.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case(patient.email.trim()))
        && same(&client.first_name, &patient.first_name)
        && same(&client.last_name, &patient.last_name)
        && same_birth_date
}

/// The patient's IntakeQ client, reading every page of the (partial) search by email.
async fn find_client(intakeq: &impl Intakeq, lease: &Lease<'_, impl Clock>, patient: &BookedPatient) -> Result<Option<Client>, IntakeqError> {
    first_on_any_page(|page| lease.call(intakeq.search_clients(&patient.email, page)), |c| same_person(c, patient)).await
}

/// The booking's appointment in IntakeQ, if an earlier attempt created it: the same client, practitioner and
/// service, starting the same minute as one of `starts` (the booking's, and any an earlier attempt may have posted
/// before it moved), not cancelled. IntakeQ filters by dates in a zone it does not name, so the window runs from
/// the day before the earliest start's UTC date to the day after the latest (every zone's date of each), and
/// every page is read.
async fn find_appointment(
    intakeq: &impl Intakeq,
    lease: &Lease<'_, impl Clock>,
    email: &str,
    client: u64,
    (practitioner, service): (&str, &str),
    starts: &[DateTime<Utc>],
) -> Result<Option<Appointment>, IntakeqError> {
    let (Some(first), Some(last)) = (starts.iter().min(), starts.iter().max()) else { return Ok(None) };
    let (from, to) = (first.date_naive() - Days::new(1), last.date_naive() + Days::new(1));
    let minutes: Vec<i64> = starts.iter().map(|start| start.timestamp() / 60).collect();
    let is_ours = |a: &&Appointment| {
        a.client_id == Some(client)
            && a.practitioner_id.as_deref() == Some(practitioner)
            && a.service_id.as_deref() == Some(service)
            && a.start_date.is_some_and(|ms| minutes.contains(&ms.div_euclid(60_000)))
            && !a.is_cancelled()
    };
    first_on_any_page(|page| lease.call(intakeq.appointments_between(email, from, to, page)), is_ours).await
}

/// One attempt at `job` under `lease`: the appointment (unless an earlier attempt put it in IntakeQ), then the
/// intake questionnaire when it is due.
pub async fn sync_booking(intakeq: &impl Intakeq, lease: &Lease<'_, impl Clock>, job: &SyncJob) -> SyncOutcome {
    match (job.operation, &job.booking.pq_appointment_id) {
        (Some(Operation::Cancel), Some(id)) => return cancel_upstream(intakeq, lease, job, id).await,
        (Some(Operation::Move), Some(id)) => return move_upstream(intakeq, lease, job, id).await,
        (Some(Operation::Cancel | Operation::Move), None) => {
            return failed(FailureKind::Permanent, "a cancel or move is owed, but the appointment is not in IntakeQ".into(), None)
        }
        (Some(Operation::Create) | None, _) => {}
    }
    let outcome = match (&job.booking.pq_appointment_id, &job.booking.patient.intakeq_client_id) {
        (Some(pq_appointment_id), Some(client_id)) => SyncOutcome::Synced {
            pq_appointment_id: pq_appointment_id.clone(), client_id: client_id.clone(), intake: None, appointment: None,
        },
        // In IntakeQ already: never posted again, and its paperwork goes to no chart but the patient's own.
        (Some(_), None) => {
            return failed(FailureKind::Permanent, "the appointment is in IntakeQ, but the patient's IntakeQ client is unknown".into(), None)
        }
        (None, _) => sync_appointment(intakeq, lease, job).await,
    };
    let paperwork_due = job.booking.intake_forms.status == IntakeFormsStatus::Pending && job.booking.status != AppointmentStatus::Cancelled;
    match outcome {
        SyncOutcome::Synced { pq_appointment_id, client_id, intake: None, appointment } if paperwork_due => {
            let intake = Some(send_intake(intakeq, lease, job, &client_id).await);
            SyncOutcome::Synced { pq_appointment_id, client_id, intake, appointment }
        }
        other => other,
    }
}

/// How far before the booking an intake found by the lookup may have been created and still be this booking's
/// (IntakeQ's clock, and its rounding, are not ours).
const INTAKE_CLOCK_MARGIN_MS: i64 = 60 * 60 * 1000;

/// The intake questionnaire, once: after a send that may have reached IntakeQ, look for it first (IntakeQ has
/// no idempotency key): an intake of the same questionnaire for the client, created since the booking (give or
/// take the clocks' margin; the database refuses an intake another booking holds).
async fn send_intake(intakeq: &impl Intakeq, lease: &Lease<'_, impl Clock>, job: &SyncJob, client_id: &str) -> IntakeOutcome {
    let intake_failed = |error: &IntakeqError, call: &str, lookup_completed| IntakeOutcome::Failed {
        kind: kind_of(error, true),
        error: format!("{call}: {error}"),
        lookup_completed,
        retry_after_seconds: retry_after(error),
    };
    let forms = &job.booking.intake_forms;
    let (Some(questionnaire_id), Ok(client_number)) = (&forms.questionnaire_id, client_id.parse::<u64>()) else {
        let error = "the booking's questionnaire or IntakeQ client is unknown".into();
        return IntakeOutcome::Failed { kind: FailureKind::Permanent, error, lookup_completed: false, retry_after_seconds: None };
    };
    let mut lookup_completed = false;
    if job.needs_intake_lookup {
        info!(step = "intakeq_intake_lookup", outcome = "started");
        let since = job.booked_at.timestamp_millis() - INTAKE_CLOCK_MARGIN_MS;
        let ours = |i: &&Intake| i.questionnaire_id.as_deref() == Some(questionnaire_id) && i.date_created.is_some_and(|t| t >= since);
        match first_on_any_page(|page| lease.call(intakeq.intakes_of(client_number, page)), ours).await {
            Ok(Some(found)) => {
                info!(step = "intakeq_intake_lookup", outcome = "adopted", intake_id = %found.id);
                return IntakeOutcome::Sent { intake_id: found.id };
            }
            Ok(None) => lookup_completed = true,
            Err(error) => return intake_failed(&error, "GET /intakes/summary", false),
        }
    }
    let intake = NewIntake {
        questionnaire_id: questionnaire_id.clone(),
        client_id: client_number,
        practitioner_id: job.booking.intakeq.practitioner_id.clone(),
    };
    info!(step = "intakeq_intake", outcome = "started");
    match lease.call(intakeq.send_intake(&intake)).await {
        // An answer without an id cannot be recorded, yet IntakeQ may have sent it.
        Ok(sent) if sent.id.is_empty() => intake_failed(&IntakeqError::NotJson { status: 200 }, "POST /intakes/send", lookup_completed),
        Ok(sent) => {
            info!(step = "intakeq_intake", outcome = "sent", intake_id = %sent.id);
            IntakeOutcome::Sent { intake_id: sent.id }
        }
        Err(error) => {
            let outcome = intake_failed(&error, "POST /intakes/send", lookup_completed);
            warn!(step = "intakeq_intake", outcome = "failed", error = ?outcome);
            outcome
        }
    }
}

/// The appointment: the client, a lookup when an earlier attempt may have created it, then the post.
async fn sync_appointment(intakeq: &impl Intakeq, lease: &Lease<'_, impl Clock>, job: &SyncJob) -> SyncOutcome {
    let booking = &job.booking;
    let (Some(practitioner), Some(service), Some(location)) =
        (&booking.intakeq.practitioner_id, &booking.intakeq.service_id, &booking.intakeq.location_id)
    else {
        return failed(FailureKind::Permanent, "the booking lacks an IntakeQ practitioner, service or location id".into(), None);
    };
    let patient = &booking.patient;
    let cancelled = booking.status == AppointmentStatus::Cancelled;
    if cancelled && !job.needs_reconcile {
        info!(step = "intakeq_appointment", outcome = "cancelled");
        return SyncOutcome::Cancelled { found_upstream: None, client_id: None };
    }

    info!(step = "intakeq_client", outcome = "started", known = patient.intakeq_client_id.is_some());
    let client_id = match &patient.intakeq_client_id {
        Some(id) => id.clone(),
        None => match find_client(intakeq, lease, patient).await {
            Ok(Some(client)) => client.client_id.to_string(),
            // A cancelled booking gets no chart; without one, no earlier attempt can have created its appointment.
            Ok(None) if cancelled => return SyncOutcome::Cancelled { found_upstream: None, client_id: None },
            Ok(None) => match create_client(intakeq, lease, patient).await {
                Ok(client) => client.client_id.to_string(),
                Err(error) => return call_failed("POST /clients", error, false, None),
            },
            Err(error) => return call_failed("GET /clients", error, false, None),
        },
    };
    info!(step = "intakeq_client", outcome = "ok", intakeq_client_id = %client_id);
    let Ok(client_number) = client_id.parse::<u64>() else {
        return failed(FailureKind::Permanent, "the stored IntakeQ client id is not a number".into(), None);
    };

    let mut lookup_completed = false;
    if job.needs_reconcile {
        info!(step = "intakeq_reconcile", outcome = "started");
        let mut starts = job.posted_starts.clone();
        starts.push(booking.start);
        match find_appointment(intakeq, lease, &patient.email, client_number, (practitioner, service), &starts).await {
            Ok(Some(existing)) if cancelled => {
                warn!(step = "intakeq_reconcile", outcome = "found_for_cancelled", pq_appointment_id = %existing.id);
                return SyncOutcome::Cancelled { found_upstream: Some(existing), client_id: Some(client_id) };
            }
            Ok(Some(existing)) => {
                info!(step = "intakeq_reconcile", outcome = "adopted", pq_appointment_id = %existing.id);
                return SyncOutcome::Synced { pq_appointment_id: existing.id.clone(), client_id, intake: None, appointment: Some(existing) };
            }
            Ok(None) if cancelled => return SyncOutcome::Cancelled { found_upstream: None, client_id: Some(client_id) },
            Ok(None) => {
                info!(step = "intakeq_reconcile", outcome = "not_found");
                lookup_completed = true;
            }
            // Cannot tell whether it exists: try again later rather than risk a second appointment.
            Err(error) => return call_failed("GET /appointments", error, !cancelled, Some(client_id)),
        }
    }

    info!(step = "intakeq_appointment", outcome = "started");
    let appointment = NewAppointment {
        practitioner_id: practitioner.clone(),
        client_id: client_number,
        service_id: service.clone(),
        location_id: location.clone(),
        status: "Confirmed",
        utc_date_time: booking.start.timestamp_millis(),
        send_client_email_notification: true,
        reminder_type: "Email",
        notes: booking.notes.clone(),
    };
    match lease.call(intakeq.create_appointment(&appointment)).await {
        Ok(created) => {
            info!(step = "intakeq_appointment", outcome = "ok", pq_appointment_id = %created.id);
            SyncOutcome::Synced { pq_appointment_id: created.id.clone(), client_id, intake: None, appointment: Some(created) }
        }
        Err(error) => {
            let mut outcome = call_failed("POST /appointments", error, true, Some(client_id));
            if let SyncOutcome::Failed { lookup_completed: completed, .. } = &mut outcome {
                *completed = lookup_completed;
            }
            warn!(step = "intakeq_appointment", outcome = "failed", error = ?outcome);
            outcome
        }
    }
}

/// Why IntakeQ's cancellation says it was cancelled, when the patient gave no reason.
const DEFAULT_CANCELLATION_REASON: &str = "Cancelled online";

/// Our cancellation, in IntakeQ. After an attempt that may have reached IntakeQ, or when IntakeQ refuses the
/// cancellation (staff may have cancelled it already), IntakeQ's appointment is re-read: found cancelled (or
/// gone), the cancel is done.
async fn cancel_upstream(intakeq: &impl Intakeq, lease: &Lease<'_, impl Clock>, job: &SyncJob, id: &str) -> SyncOutcome {
    if job.needs_reconcile {
        match reread(intakeq, lease, id, |_| false).await {
            Ok(Some(done)) => return done,
            Ok(None) => {}
            Err(outcome) => return outcome,
        }
    }
    let reason = job.cancellation_reason.clone().filter(|r| !r.trim().is_empty()).unwrap_or_else(|| DEFAULT_CANCELLATION_REASON.into());
    info!(step = "intakeq_cancel", outcome = "started", pq_appointment_id = %id);
    match lease.call(intakeq.cancel_appointment(&Cancellation { appointment_id: id.to_owned(), reason })).await {
        Ok(()) => {
            info!(step = "intakeq_cancel", outcome = "ok", pq_appointment_id = %id);
            let now = Appointment { id: id.to_owned(), status: Some("Canceled".into()), ..Appointment::default() };
            SyncOutcome::Applied { pq_appointment_id: id.to_owned(), now: Some(now), written: true }
        }
        Err(error) => refused_or_failed(intakeq, lease, id, "POST /appointments/cancellation", error).await,
    }
}

/// Our new start, in IntakeQ (which tells the patient). After an attempt that may have reached IntakeQ, the
/// appointment is re-read and nothing is written: what IntakeQ has now goes to the database's rules, which tell
/// our earlier move landing (done), nothing having changed there (the move is still owed: the job comes back at
/// once and writes it) and staff having moved or cancelled it meanwhile (ours follows) apart.
async fn move_upstream(intakeq: &impl Intakeq, lease: &Lease<'_, impl Clock>, job: &SyncJob, id: &str) -> SyncOutcome {
    let target = job.booking.start.timestamp_millis();
    if job.needs_reconcile {
        match reread(intakeq, lease, id, |_| true).await {
            Ok(Some(now)) => return now,
            Ok(None) => {}
            Err(outcome) => return outcome,
        }
    }
    info!(step = "intakeq_move", outcome = "started", pq_appointment_id = %id);
    let change = AppointmentMove { id: id.to_owned(), utc_date_time: target, send_client_email_notification: true };
    match lease.call(intakeq.move_appointment(&change)).await {
        // IntakeQ answered with another start than ours: read it again before believing that (an answer may show
        // the appointment as it was). Moved after all: done. Moved elsewhere, or cancelled, by staff meanwhile: the
        // rules take it. Still where it was: IntakeQ kept it (a locked appointment, say); written again, it would
        // do the same, and the patient would get an email each time: staff must look.
        Ok(now) if now.start_date.is_some_and(|start| start != target) => {
            warn!(step = "intakeq_move", outcome = "other_start_answered", pq_appointment_id = %id);
            let kept = now.start_date;
            match reread(intakeq, lease, id, |again| again.start_date != kept).await {
                Ok(Some(done)) => done,
                Ok(None) | Err(_) => {
                    failed(FailureKind::Permanent, "PUT /appointments: IntakeQ kept another start than the one sent".into(), None)
                }
            }
        }
        Ok(now) => {
            info!(step = "intakeq_move", outcome = "ok", pq_appointment_id = %id);
            // What IntakeQ answers is what it has now; an answer without the start still has ours.
            let now = Appointment { id: id.to_owned(), start_date: now.start_date.or(Some(target)), ..now };
            SyncOutcome::Applied { pq_appointment_id: id.to_owned(), now: Some(now), written: true }
        }
        Err(error) => refused_or_failed(intakeq, lease, id, "PUT /appointments", error).await,
    }
}

/// IntakeQ's appointment re-read: `Some` when nothing is to be written now (it is cancelled or gone there, or
/// `done` says so of what IntakeQ has).
async fn reread(intakeq: &impl Intakeq, lease: &Lease<'_, impl Clock>, id: &str, done: impl Fn(&Appointment) -> bool)
    -> Result<Option<SyncOutcome>, SyncOutcome> {
    info!(step = "intakeq_reread", outcome = "started", pq_appointment_id = %id);
    match lease.call(intakeq.appointment(id)).await {
        Ok(Some(now)) if now.is_cancelled() || done(&now) => Ok(Some(SyncOutcome::Applied { pq_appointment_id: id.to_owned(), now: Some(now), written: false })),
        Ok(None) => Ok(Some(SyncOutcome::Applied { pq_appointment_id: id.to_owned(), now: None, written: false })),
        Ok(Some(_)) => Ok(None),
        Err(error) => Err(call_failed("GET /appointments/{id}", error, true, None)),
    }
}

/// A cancel or move IntakeQ refused (4xx, not our key): staff may have cancelled or removed the appointment there
/// meanwhile, so it is re-read before the refusal is taken as final. Any other failure may have reached IntakeQ.
async fn refused_or_failed(intakeq: &impl Intakeq, lease: &Lease<'_, impl Clock>, id: &str, call: &str, error: IntakeqError) -> SyncOutcome {
    warn!(step = "intakeq_change", outcome = "failed", call, error = %error);
    if kind_of(&error, true) != FailureKind::Permanent {
        return call_failed(call, error, true, None);
    }
    match reread(intakeq, lease, id, |_| false).await {
        Ok(Some(done)) => done,
        // Still there and active: the refusal stands (a failed re-read says nothing more).
        Ok(None) | Err(_) => call_failed(call, error, true, None),
    }
}

async fn create_client(intakeq: &impl Intakeq, lease: &Lease<'_, impl Clock>, patient: &BookedPatient) -> Result<Client, IntakeqError> {
    let new_client = NewClient {
        first_name: patient.first_name.clone(),
        last_name: patient.last_name.clone(),
        email: patient.email.clone(),
        phone: patient.phone.clone(),
        date_of_birth: patient.date_of_birth.map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis()),
    };
    lease.call(intakeq.create_client(&new_client)).await
}

#[cfg(test)]
mod tests;
