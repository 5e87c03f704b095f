//! Fakes for the native unit tests: a clock that does not move and a store that answers what a test says.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::abuse::{AttemptStore, EmailAttempt, Gatekeeper};
use crate::inbound::{AppliedNudge, CatchUpClaim, CatchUpEnd, ClaimedNudge, InboundSettings, InboundStore, Noted, Nudge};
use crate::booking::error::{ErrorCode, Step};
use crate::booking::change::{Cancelled, ChangeStore, ChangedBy, Rescheduled};
use crate::booking::model::{AppointmentStatus, BookingOutcome, JobState, SyncStatus};
use crate::booking::request::start_time::StartTime;
use crate::booking::request::BookingRequest;
use crate::booking::store::{BookingStore, FailureRecord, StoreError};
use crate::intakeq::wire::{self, Appointment, Client};
use crate::intakeq::{Intakeq, IntakeqError};
use crate::support::clock::Clock;
use crate::support::request_id::RequestId;
use crate::sync::job::{CallBudget, CallsMade, RecordedJob, Reservation, RetryPolicy, SyncJob, SyncOutcome};
use crate::sync::store::SyncStore;

pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }
}

/// A store answering what the test says, remembering what it was asked.
#[derive(Default)]
pub struct FakeStore {
    pub answer: RefCell<Option<Result<BookingOutcome, StoreError>>>,
    /// What the flow asked to book: (the request, its request id, the sync lease in seconds).
    pub booked_with: RefCell<Vec<(BookingRequest, String, u32)>>,
    pub failures: RefCell<Vec<FailureRecord>>,
    pub failing_record: bool,
    pub unhealthy: bool,
    /// What `booking_by_request` finds: a booking whose transaction committed after `book` timed out.
    pub committed_after_timeout: RefCell<Option<BookingOutcome>>,
    /// The request ids it was asked about.
    pub asked_after_timeout: RefCell<Vec<String>>,
    /// IntakeQ's webhooks kept.
    pub nudges: RefCell<Vec<Nudge>>,
    /// The IntakeQ appointment ids waiting to be re-read (`claim_intakeq_inbound_events` hands them out).
    pub waiting_nudges: RefCell<Vec<String>>,
    /// What re-reads handed to the rules: (IntakeQ's id, its appointment now).
    pub applied: RefCell<Vec<(String, Option<Appointment>)>>,
    /// IntakeQ ids whose re-read the database refuses to apply.
    pub refuse_apply_of: RefCell<Vec<String>>,
    /// Nudges whose re-read failed: (IntakeQ's id, the wait asked for).
    pub released: RefCell<Vec<(String, Option<u64>)>>,
    /// The catch-up's pages handed to the rules.
    pub applied_pages: RefCell<Vec<Vec<Appointment>>>,
    /// The catch-up's turn has not come.
    pub catch_up_not_due: Cell<bool>,
    /// Where the catch-up's next turn begins (`None`: page 1).
    pub catch_up_next_page: Cell<Option<u32>>,
    /// How each catch-up turn ended: (completed, the page to go on from, error), and the date to which it read
    /// the whole window.
    pub catch_up_finished: RefCell<Vec<(bool, Option<u32>, Option<String>)>>,
    pub catch_up_listed_until: RefCell<Vec<Option<NaiveDate>>>,
    /// Cancels and reschedules asked of the database: (appointment, what, who), and the refusal it answers.
    pub changes: RefCell<Vec<(Uuid, String, &'static str)>>,
    pub change_refusal: RefCell<Option<StoreError>>,
    /// The calls reported for each call reserved outside sync jobs, and the 429 pauses reported.
    pub budget_reports: RefCell<Vec<u32>>,
    pub rate_limits_reported: RefCell<Vec<u64>>,
    /// The emails of the attempts counted (`note_booking_attempt`).
    pub email_attempts: RefCell<Vec<String>>,
    /// Jobs `claim_sync_jobs` hands out.
    pub due_jobs: RefCell<Vec<SyncJob>>,
    /// The limit of each claim.
    pub claims: RefCell<Vec<u32>>,
    /// What runners reported: (job id, runner, report as text).
    pub reports: RefCell<Vec<(String, String, String)>>,
    /// What they said of their IntakeQ calls, report by report.
    pub calls_reported: RefCell<Vec<CallsMade>>,
    /// IntakeQ calls the budget still grants; `None`: as many as asked.
    pub budget_left: Cell<Option<u32>>,
    /// The calls each reservation asked for (`None`: what the job needs, here 3).
    pub reservations: RefCell<Vec<Option<u32>>>,
    /// What `intakeq_budget_wait` answers, one after the other (then `None`: nothing due).
    pub budget_waits: RefCell<VecDeque<u64>>,
    /// Jobs whose calls fit only once the runner has waited for the budget (they join `due_jobs` at the wait).
    pub due_after_a_wait: RefCell<Vec<SyncJob>>,
}

impl FakeStore {
    pub fn answering(answer: Result<BookingOutcome, StoreError>) -> Self {
        FakeStore { answer: RefCell::new(Some(answer)), ..FakeStore::default() }
    }
}

impl BookingStore for FakeStore {
    async fn book(&self, booking: &BookingRequest, request_id: &RequestId, _call: Uuid, sync_lease_seconds: u32) -> Result<BookingOutcome, StoreError> {
        self.booked_with.borrow_mut().push((booking.clone(), request_id.as_str().to_owned(), sync_lease_seconds));
        self.answer.borrow_mut().take().expect("one booking per test")
    }

    async fn booking_by_request(&self, request_id: &RequestId, _booking: &BookingRequest, _call: Uuid, _wait_ms: u64)
        -> Result<Option<BookingOutcome>, StoreError> {
        self.asked_after_timeout.borrow_mut().push(request_id.as_str().to_owned());
        Ok(self.committed_after_timeout.borrow_mut().take())
    }

    async fn record_failure(&self, failure: &FailureRecord) -> Result<(), StoreError> {
        self.failures.borrow_mut().push(failure.clone());
        if self.failing_record {
            Err(StoreError::Unavailable { detail: "down".into() })
        } else {
            Ok(())
        }
    }

    async fn health(&self) -> Result<(), StoreError> {
        if self.unhealthy {
            Err(StoreError::Unavailable { detail: "connection refused".into() })
        } else {
            Ok(())
        }
    }
}

impl FakeStore {
    /// `wanted` calls of the budget (`budget_left`), all or none.
    fn take_from_budget(&self, wanted: u32) -> Reservation {
        match self.budget_left.get() {
            Some(left) if left < wanted => Reservation { reserved: false, calls: 0, wait_ms: Some(1000) },
            left => {
                self.budget_left.set(left.map(|l| l - wanted));
                Reservation { reserved: true, calls: wanted, wait_ms: None }
            }
        }
    }
}

impl InboundStore for FakeStore {
    async fn note_intakeq_webhook(&self, nudge: &Nudge, _request_id: &str) -> Result<Noted, StoreError> {
        let mut nudges = self.nudges.borrow_mut();
        let duplicate = nudges.iter().any(|n| n.pq_appointment_id == nudge.pq_appointment_id);
        nudges.push(nudge.clone());
        Ok(Noted { event_id: Uuid::nil(), duplicate })
    }

    async fn claim_intakeq_inbound_events(&self, _runner: &str, limit: u32, _lease_seconds: u32) -> Result<Vec<ClaimedNudge>, StoreError> {
        let mut waiting = self.waiting_nudges.borrow_mut();
        let take = (limit as usize).min(waiting.len());
        Ok(waiting
            .drain(..take)
            .map(|id| ClaimedNudge { event_id: Uuid::new_v4(), pq_appointment_id: id, lease_token: Uuid::new_v4(), lease_seconds_left: Some(30) })
            .collect())
    }

    async fn apply_intakeq_event(&self, nudge: &ClaimedNudge, now: Option<&Appointment>) -> Result<AppliedNudge, StoreError> {
        if self.refuse_apply_of.borrow().contains(&nudge.pq_appointment_id) {
            return Err(StoreError::Refused { code: ErrorCode::InvalidRequest, step: Step::RequestValidation, detail: Some("another Id".into()) });
        }
        self.applied.borrow_mut().push((nudge.pq_appointment_id.clone(), now.cloned()));
        Ok(AppliedNudge { result: Some("unchanged".into()), recorded: true, processed: true })
    }

    async fn release_intakeq_event(&self, nudge: &ClaimedNudge, _error: &str, retry_after_seconds: Option<u64>) -> Result<(), StoreError> {
        self.released.borrow_mut().push((nudge.pq_appointment_id.clone(), retry_after_seconds));
        Ok(())
    }

    async fn apply_intakeq_appointments(&self, page: &[Appointment], _lease_token: Uuid) -> Result<Value, StoreError> {
        self.applied_pages.borrow_mut().push(page.to_vec());
        Ok(json!({"unchanged": page.len()}))
    }

    async fn claim_intakeq_catchup(&self, _runner: &str, _every_minutes: u32, _lease_seconds: u32) -> Result<CatchUpClaim, StoreError> {
        let due = !self.catch_up_not_due.get();
        Ok(CatchUpClaim { due, lease_token: due.then(Uuid::new_v4), next_page: self.catch_up_next_page.get() })
    }

    async fn finish_intakeq_catchup(&self, _lease_token: Uuid, end: &CatchUpEnd, _counts: &Value) -> Result<(), StoreError> {
        self.catch_up_finished.borrow_mut().push((end.completed, end.next_page, end.error.clone()));
        self.catch_up_listed_until.borrow_mut().push(end.listed_until);
        Ok(())
    }

    async fn reserve_intakeq_budget(&self, _holder: &str, _lease_token: Uuid, calls: u32, _hold_seconds: u32, _budget: &CallBudget)
        -> Result<Reservation, StoreError> {
        Ok(self.take_from_budget(calls))
    }

    async fn report_intakeq_calls(&self, _lease_token: Uuid, made: u32, rate_limited_seconds: Option<u64>) -> Result<(), StoreError> {
        self.budget_reports.borrow_mut().push(made);
        self.rate_limits_reported.borrow_mut().extend(rate_limited_seconds);
        Ok(())
    }
}

impl ChangeStore for FakeStore {
    async fn cancel_appointment(&self, appointment_id: Uuid, reason: Option<&str>, by: ChangedBy, _request_id: &str) -> Result<Cancelled, StoreError> {
        self.changes.borrow_mut().push((appointment_id, format!("cancel {reason:?}"), by.as_str()));
        if let Some(refusal) = self.change_refusal.borrow().clone() {
            return Err(refusal);
        }
        Ok(Cancelled { appointment_id, status: AppointmentStatus::Cancelled, changed: true, intakeq: "cancellation_queued".into() })
    }

    async fn reschedule_appointment(&self, appointment_id: Uuid, start: &StartTime, by: ChangedBy, _request_id: &str) -> Result<Rescheduled, StoreError> {
        self.changes.borrow_mut().push((appointment_id, format!("reschedule {}", start.utc_rfc3339()), by.as_str()));
        if let Some(refusal) = self.change_refusal.borrow().clone() {
            return Err(refusal);
        }
        let start: DateTime<Utc> = start.utc_rfc3339().parse().unwrap();
        Ok(Rescheduled {
            appointment_id, start, end: start + chrono::Duration::minutes(60), status: AppointmentStatus::Scheduled,
            sync_status: SyncStatus::Synced, changed: true,
        })
    }
}

/// The cron's settings for re-reads and the catch-up, as the defaults have them.
pub fn inbound_settings() -> InboundSettings {
    InboundSettings {
        batch_size: 10,
        lease_seconds: 30,
        budget: CallBudget { per_minute: 10, per_day: 500, minute_ms: 60_000 },
        call_timeout_ms: 8_000,
        catch_up_days: 60,
        catch_up_every_minutes: 360,
    }
}

impl AttemptStore for FakeStore {
    async fn note_booking_attempt(&self, email: &str, _request_id: &str, limit_per_hour: u32) -> Result<EmailAttempt, StoreError> {
        let mut attempts = self.email_attempts.borrow_mut();
        let so_far = attempts.iter().filter(|e| e.as_str() == email).count();
        if so_far >= limit_per_hour as usize {
            return Ok(EmailAttempt { allowed: false });
        }
        attempts.push(email.to_owned());
        Ok(EmailAttempt { allowed: true })
    }
}

/// Gate checks a test sets: the per-address answer, Turnstile's verdict, and what they were asked.
#[derive(Default)]
pub struct FakeGate {
    pub address_refused: bool,
    pub siteverify_down: bool,
    pub addresses: RefCell<Vec<String>>,
    pub tokens: RefCell<Vec<String>>,
}

impl Gatekeeper for FakeGate {
    async fn address_allowed(&self, address: &str) -> Result<bool, String> {
        self.addresses.borrow_mut().push(address.to_owned());
        Ok(!self.address_refused)
    }

    async fn person_sent(&self, token: &str, _address: Option<&str>) -> Result<bool, String> {
        self.tokens.borrow_mut().push(token.to_owned());
        if self.siteverify_down {
            return Err("unreachable".into());
        }
        Ok(token.starts_with("pass"))
    }
}

impl SyncStore for FakeStore {
    async fn claim_sync_jobs(&self, _runner: &str, limit: u32, _lease_seconds: u32, _policy: &RetryPolicy, _budget: &CallBudget) -> Result<Vec<SyncJob>, StoreError> {
        self.claims.borrow_mut().push(limit);
        let mut due = self.due_jobs.borrow_mut();
        let take = (limit as usize).min(due.len());
        Ok(due.drain(..take).collect())
    }

    async fn reserve_intakeq_calls(&self, _job: &SyncJob, _runner: &str, calls: Option<u32>, _budget: &CallBudget) -> Result<Reservation, StoreError> {
        self.reservations.borrow_mut().push(calls);
        Ok(self.take_from_budget(calls.unwrap_or(3)))
    }

    async fn intakeq_budget_wait(&self, _budget: &CallBudget) -> Result<Option<u64>, StoreError> {
        let wait = self.budget_waits.borrow_mut().pop_front();
        if wait.is_some() {
            self.due_jobs.borrow_mut().append(&mut self.due_after_a_wait.borrow_mut());
        }
        Ok(wait)
    }

    async fn record_sync_result(&self, job: &SyncJob, runner: &str, outcome: &SyncOutcome, calls: &CallsMade, _policy: &RetryPolicy) -> Result<RecordedJob, StoreError> {
        self.reports.borrow_mut().push((job.job_id.to_string(), runner.into(), format!("{outcome:?}")));
        self.calls_reported.borrow_mut().push(*calls);
        let mut recorded = job.clone();
        if let SyncOutcome::Synced { pq_appointment_id, .. } = outcome {
            recorded.booking.status = AppointmentStatus::Scheduled;
            recorded.booking.sync_status = SyncStatus::Synced;
            recorded.booking.pq_appointment_id = Some(pq_appointment_id.clone());
        }
        Ok(RecordedJob { job: SyncJob { lease_token: None, ..recorded }, recorded: true })
    }

    async fn sync_health(&self) -> Result<Value, StoreError> {
        Ok(json!({"pending_jobs": 0}))
    }

    async fn requeue_sync_job(&self, _appointment_id: Uuid, _requested_by: &str) -> Result<SyncJob, StoreError> {
        Ok(job(false))
    }

    async fn requeue_dead_sync_jobs(&self, since: DateTime<Utc>, _requested_by: &str) -> Result<Value, StoreError> {
        Ok(json!({"requeued": 0, "appointment_ids": [], "since": since}))
    }
}

/// What `book_appointment` answers for a new booking, its sync job leased to request "req-1".
pub fn booked() -> BookingOutcome {
    serde_json::from_value(booked_json()).unwrap()
}

/// `booked()` as the database writes it.
pub fn booked_json() -> Value {
    json!({
        "appointment_id": "3ca6a61f-dbfb-4c18-9db1-3e0589df99e3", "request_id": "req-1",
        "status": "pending_sync", "sync_status": "pending",
        "pq_appointment_id": null, "start": "2026-12-01T16:00:00Z", "end": "2026-12-01T17:00:00Z",
        "duration_minutes": 60, "notes": null,
        "patient": {"id": "a0d2c8b0-7896-46af-9aca-ea5177939b1a", "first_name": "Riley", "last_name": "Quinn",
                    "email": "riley@example.com", "phone": null, "date_of_birth": "1991-02-03", "intakeq_client_id": null},
        "provider": {"id": "a1000000-0000-4000-8000-000000000001", "name": "Ana Rivera, MD"},
        "intakeq": {"practitioner_id": "5f1a00000000000000000001", "service_id": "7c1e0000-0000-4000-8000-000000000001",
                    "location_id": "1", "client_id": null},
        "intake_forms": {"status": "not_required", "questionnaire_id": null, "intake_id": null},
        "sync_job": {"id": "5e7a0000-0000-4000-8000-000000000001", "state": "pending", "locked_by": "req-1",
                     "lease_token": "1ea5e000-0000-4000-8000-000000000001", "lease_seconds_left": 60,
                     "retry_count": 0, "locked_until": "2026-11-24T12:01:00Z"},
        "is_duplicate": false, "replayed": false, "patient_created": true
    })
}

/// A job for `booked()`.
pub fn job(needs_reconcile: bool) -> SyncJob {
    let booking = booked().booking;
    let lease = booking.sync_job.as_ref().unwrap();
    SyncJob {
        job_id: lease.id,
        attempt: 1,
        max_attempts: 5,
        needs_reconcile,
        needs_intake_lookup: false,
        booked_at: "2026-11-24T11:59:59Z".parse().unwrap(),
        state: JobState::Pending,
        lease_token: lease.lease_token,
        lease_seconds_left: Some(60),
        intakeq_calls_reserved: None,
        operation: Some(crate::sync::job::Operation::Create),
        posted_starts: Vec::new(),
        cancellation_reason: None,
        booking,
    }
}

/// IntakeQ in memory: clients and appointments it holds, failures queued per call, every call remembered.
#[derive(Default)]
pub struct FakeIntakeq {
    pub clients: RefCell<Vec<Client>>,
    pub appointments: RefCell<Vec<Appointment>>,
    pub created: RefCell<Vec<wire::NewAppointment>>,
    /// The intakes it holds (sent through it, or put there by a test).
    pub intakes: RefCell<Vec<wire::Intake>>,
    pub calls: RefCell<Vec<&'static str>>,
    /// The date windows of the appointment lookups.
    pub lookups: RefCell<Vec<(NaiveDate, NaiveDate)>>,
    failures: RefCell<HashMap<&'static str, VecDeque<IntakeqError>>>,
    next_id: Cell<u64>,
    /// How long each call takes (on a real timer); none: it answers at once.
    pub slowness: Cell<Option<std::time::Duration>>,
    /// `PUT /appointments` answers without moving anything (an appointment IntakeQ will not move).
    pub keep_start_on_move: Cell<bool>,
}

impl FakeIntakeq {
    /// The next call of `call` ("search_clients", "create_client", "appointments_between", "create_appointment")
    /// fails.
    pub fn fail_next(&self, call: &'static str, error: IntakeqError) {
        self.failures.borrow_mut().entry(call).or_default().push_back(error);
    }

    async fn enter(&self, call: &'static str) -> Result<(), IntakeqError> {
        self.calls.borrow_mut().push(call);
        if let Some(slowness) = self.slowness.get() {
            crate::support::deadline::pause(slowness).await;
        }
        match self.failures.borrow_mut().get_mut(call).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn new_id(&self) -> u64 {
        self.next_id.set(self.next_id.get() + 1);
        self.next_id.get()
    }
}

impl Intakeq for FakeIntakeq {
    async fn send_intake(&self, intake: &wire::NewIntake) -> Result<wire::Intake, IntakeqError> {
        self.enter("send_intake").await?;
        let sent = wire::Intake {
            id: format!("1a7a0000-0000-4000-8000-{:012}", self.new_id()),
            client_id: Some(intake.client_id),
            questionnaire_id: Some(intake.questionnaire_id.clone()),
            date_created: Some(FixedClock.now().timestamp_millis()),
            status: Some("Sent".into()),
        };
        self.intakes.borrow_mut().push(sent.clone());
        Ok(sent)
    }

    async fn intakes_of(&self, client_id: u64, page: u32) -> Result<Vec<wire::Intake>, IntakeqError> {
        self.enter("intakes_of").await?;
        let intakes = self.intakes.borrow();
        let of_client = intakes.iter().filter(|i| i.client_id == Some(client_id));
        Ok(of_client.skip((page as usize - 1) * wire::PAGE_SIZE).take(wire::PAGE_SIZE).cloned().collect())
    }

    async fn search_clients(&self, search: &str, page: u32) -> Result<Vec<Client>, IntakeqError> {
        self.enter("search_clients").await?;
        let needle = search.to_lowercase();
        let clients = self.clients.borrow();
        let found = clients.iter().filter(|c| c.email.as_deref().is_some_and(|e| e.to_lowercase().contains(&needle)));
        Ok(found.skip((page as usize - 1) * wire::PAGE_SIZE).take(wire::PAGE_SIZE).cloned().collect())
    }

    async fn create_client(&self, client: &wire::NewClient) -> Result<Client, IntakeqError> {
        self.enter("create_client").await?;
        let created = Client {
            client_id: 1000 + self.new_id(),
            email: Some(client.email.clone()),
            first_name: Some(client.first_name.clone()),
            last_name: Some(client.last_name.clone()),
            date_of_birth: client.date_of_birth,
        };
        self.clients.borrow_mut().push(created.clone());
        Ok(created)
    }

    /// Every appointment it holds, whatever the dates (the sync filters them itself), a page at a time.
    async fn appointments_between(&self, _client_email: &str, from: NaiveDate, to: NaiveDate, page: u32) -> Result<Vec<Appointment>, IntakeqError> {
        self.enter("appointments_between").await?;
        self.lookups.borrow_mut().push((from, to));
        Ok(self.appointments.borrow().iter().skip((page as usize - 1) * wire::PAGE_SIZE).take(wire::PAGE_SIZE).cloned().collect())
    }

    async fn create_appointment(&self, appointment: &wire::NewAppointment) -> Result<Appointment, IntakeqError> {
        self.enter("create_appointment").await?;
        self.created.borrow_mut().push(appointment.clone());
        let created = Appointment {
            id: format!("{:024x}", self.new_id()),
            client_id: Some(appointment.client_id),
            practitioner_id: Some(appointment.practitioner_id.clone()),
            service_id: Some(appointment.service_id.clone()),
            start_date: Some(appointment.utc_date_time),
            status: Some("Confirmed".into()),
            ..Appointment::default()
        };
        self.appointments.borrow_mut().push(created.clone());
        Ok(created)
    }

    /// Every appointment it holds, whatever the dates, a page at a time.
    async fn appointments_of_practice(&self, from: NaiveDate, to: NaiveDate, page: u32) -> Result<Vec<Appointment>, IntakeqError> {
        self.enter("appointments_of_practice").await?;
        self.lookups.borrow_mut().push((from, to));
        Ok(self.appointments.borrow().iter().skip((page as usize - 1) * wire::PAGE_SIZE).take(wire::PAGE_SIZE).cloned().collect())
    }

    async fn appointment(&self, id: &str) -> Result<Option<Appointment>, IntakeqError> {
        self.enter("appointment").await?;
        Ok(self.appointments.borrow().iter().find(|a| a.id == id).cloned())
    }

    async fn move_appointment(&self, change: &wire::AppointmentMove) -> Result<Appointment, IntakeqError> {
        self.enter("move_appointment").await?;
        let mut appointments = self.appointments.borrow_mut();
        let Some(appointment) = appointments.iter_mut().find(|a| a.id == change.id) else {
            return Err(IntakeqError::Rejected { status: 400, message: "Appointment not found.".into() });
        };
        if !self.keep_start_on_move.get() {
            appointment.start_date = Some(change.utc_date_time);
        }
        Ok(appointment.clone())
    }

    async fn cancel_appointment(&self, cancellation: &wire::Cancellation) -> Result<(), IntakeqError> {
        self.enter("cancel_appointment").await?;
        let mut appointments = self.appointments.borrow_mut();
        let Some(appointment) = appointments.iter_mut().find(|a| a.id == cancellation.appointment_id) else {
            return Err(IntakeqError::Rejected { status: 400, message: "Appointment not found.".into() });
        };
        appointment.status = Some("Canceled".into());
        Ok(())
    }
}

/// The booking form's body for a new self-pay patient.
pub fn form() -> Vec<u8> {
    json!({
        "patient": {"firstName": "Riley", "lastName": "Quinn", "email": "riley@example.com"},
        "providerId": "a1000000-0000-4000-8000-000000000001", "payerId": "cash-payment",
        "start": "2026-12-01T09:00:00-07:00", "locationType": "telehealth"
    })
    .to_string()
    .into_bytes()
}

/// The booking form's body with every field filled in (and one the worker does not know).
pub fn full_form() -> Value {
    json!({
        "patient": {"firstName": "Riley", "lastName": "Quinn", "email": "riley@example.com",
                    "phone": "+1 555 010 0101", "dateOfBirth": "1991-02-03"},
        "providerId": "a1000000-0000-4000-8000-000000000001",
        "payerId": "b2000000-0000-4000-8000-000000000001",
        "start": "2026-12-01T09:00:00-07:00",
        "locationType": "telehealth",
        "notes": "Prefers afternoons",
        "memberId": "M-1", "groupNumber": "G-2",
        "contact": {"name": "Casey Manager", "email": "cm@example.com"},
        "somethingTheFormAddedLater": true
    })
}
