//! IntakeQ as the sync sees it (the facts it relies on: `docs/intakeq.md`): where and how to reach it
//! (`IntakeqSettings`), a small trait the sync is tested against with a fake, the wire shapes (`wire`), how an
//! answer is read (`answer`), and the client over workerd's fetch (`fetch`, wasm32 only).

pub mod answer;
#[cfg(target_arch = "wasm32")]
pub mod fetch;
pub mod wire;

use std::fmt;

use chrono::NaiveDate;

use crate::support::secret::Secret;

/// Where and how the worker reaches IntakeQ.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeqSettings {
    pub base_url: String,
    pub api_key: Secret,
    /// Per call.
    pub timeout_ms: u64,
}

/// How a call to IntakeQ failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeqError {
    /// 429: not processed; retry after the wait when IntakeQ gives one.
    RateLimited { retry_after_seconds: Option<u64> },
    /// No answer within INTAKEQ_TIMEOUT_MS: the request may or may not have been carried out.
    TimedOut,
    /// The connection failed.
    Unreachable(String),
    /// 5xx.
    ServerError { status: u16 },
    /// An answer that is not the JSON expected (an outage page, say).
    NotJson { status: u16 },
    /// Any other 4xx ("Invalid ServiceId.", a bad key): retrying will not help.
    Rejected { status: u16, message: String },
    /// 404 with IntakeQ's own JSON error: IntakeQ has no such thing. (A 404 page that is not IntakeQ's JSON, from
    /// a proxy or a wrong base URL, says nothing about the appointment: it is `NotJson`.)
    NotFound,
    /// A search went on for more pages than an attempt reads: it could not be completed.
    TooManyPages,
    /// Not sent: the caller's lease would run out before the call could finish.
    LeaseTooShort,
    /// Not sent: IntakeQ's call budget has no call left for the caller now.
    NoBudget,
}

impl IntakeqError {
    /// IntakeQ answered without refusing our key (a 429, a 5xx or a rejection of the request is still an answer).
    pub fn accepted_our_key(&self) -> bool {
        match self {
            IntakeqError::RateLimited { .. } | IntakeqError::ServerError { .. } | IntakeqError::NotJson { .. }
            | IntakeqError::NotFound => true,
            IntakeqError::Rejected { status, .. } => !matches!(status, 401 | 403),
            IntakeqError::TimedOut | IntakeqError::Unreachable(_) | IntakeqError::TooManyPages | IntakeqError::LeaseTooShort
            | IntakeqError::NoBudget => false,
        }
    }
}

impl fmt::Display for IntakeqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntakeqError::RateLimited { retry_after_seconds: Some(s) } => write!(f, "rate limited (429), retry after {s} s"),
            IntakeqError::RateLimited { retry_after_seconds: None } => write!(f, "rate limited (429)"),
            IntakeqError::TimedOut => write!(f, "no answer in time"),
            IntakeqError::Unreachable(why) => write!(f, "unreachable: {why}"),
            IntakeqError::ServerError { status } => write!(f, "server error ({status})"),
            IntakeqError::NotJson { status } => write!(f, "an answer that is not JSON ({status})"),
            IntakeqError::Rejected { status, message } => write!(f, "rejected ({status}): {message}"),
            IntakeqError::NotFound => write!(f, "not found (404)"),
            IntakeqError::TooManyPages => write!(f, "more pages than an attempt reads"),
            IntakeqError::LeaseTooShort => write!(f, "not sent: the lease would run out first"),
            IntakeqError::NoBudget => write!(f, "not sent: IntakeQ's call budget has no call left for now"),
        }
    }
}

#[allow(async_fn_in_trait)]
pub trait Intakeq {
    /// `GET /clients?search=<text>&includeProfile=true&page=<page>`: a partial match, `wire::PAGE_SIZE` a page
    /// (the first page is 1).
    async fn search_clients(&self, search: &str, page: u32) -> Result<Vec<wire::Client>, IntakeqError>;
    /// `POST /clients` without `ClientId`.
    async fn create_client(&self, client: &wire::NewClient) -> Result<wire::Client, IntakeqError>;
    /// `GET /appointments?client=<email>&startDate=<from>&endDate=<to>&page=<page>`: dates (`yyyy-MM-dd`) in a
    /// time zone IntakeQ does not document, `wire::PAGE_SIZE` a page (the first page is 1).
    async fn appointments_between(&self, client_email: &str, from: NaiveDate, to: NaiveDate, page: u32)
        -> Result<Vec<wire::Appointment>, IntakeqError>;
    /// `GET /appointments?startDate=<from>&endDate=<to>&page=<page>`: every appointment of the practice in the
    /// window (the catch-up), whatever its status; dates as for `appointments_between`.
    async fn appointments_of_practice(&self, from: NaiveDate, to: NaiveDate, page: u32)
        -> Result<Vec<wire::Appointment>, IntakeqError>;
    /// `GET /appointments/{id}`: the appointment as IntakeQ has it now; `None` when IntakeQ has none (404).
    async fn appointment(&self, id: &str) -> Result<Option<wire::Appointment>, IntakeqError>;
    /// `POST /appointments`.
    async fn create_appointment(&self, appointment: &wire::NewAppointment) -> Result<wire::Appointment, IntakeqError>;
    /// `PUT /appointments`: a new start.
    async fn move_appointment(&self, change: &wire::AppointmentMove) -> Result<wire::Appointment, IntakeqError>;
    /// `POST /appointments/cancellation`.
    async fn cancel_appointment(&self, cancellation: &wire::Cancellation) -> Result<(), IntakeqError>;
    /// `POST /intakes/send`.
    async fn send_intake(&self, intake: &wire::NewIntake) -> Result<wire::Intake, IntakeqError>;
    /// `GET /intakes/summary?clientId=<id>&all=true&page=<page>`: every intake of the client, whatever its status.
    async fn intakes_of(&self, client_id: u64, page: u32) -> Result<Vec<wire::Intake>, IntakeqError>;
}
