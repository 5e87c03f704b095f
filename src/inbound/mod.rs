//! What IntakeQ tells us of what staff did there (cancel, move, book by phone), and how it reaches our
//! appointments. IntakeQ's appointment webhooks (`{EventType, ActionPerformedByClient, Appointment}`) are signed
//! by nothing, so a webhook is only a nudge: its appointment id is kept in an inbound outbox (`InboundStore`,
//! deduplicated by the database), and the cron re-reads that appointment from IntakeQ (`reread`) and hands what
//! IntakeQ says NOW to the database's rules (`apply_intakeq_appointment`: cancel ours, move ours, or block the
//! provider's time), so repeated and out-of-order webhooks come to the same state. Webhooks get lost, so the cron
//! also reads the practice's upcoming appointments page by page now and then (`catch_up`) and applies the same
//! rules. Every IntakeQ call is made under the shared call budget. No I/O of its own.

pub mod catch_up;
pub mod reread;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::booking::request::FieldError;
use crate::booking::store::StoreError;
use crate::intakeq::wire::{is_appointment_id, Appointment};
use crate::intakeq::IntakeqError;
use crate::sync::job::{CallBudget, Reservation};

/// A webhook, as far as we trust it: which IntakeQ appointment, what IntakeQ says happened, and whether the client
/// (not staff) did it. The rest of the payload (the client's name and email among it) is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nudge {
    pub pq_appointment_id: String,
    pub event_type: String,
    pub by_client: bool,
}

impl Nudge {
    /// Reads IntakeQ's payload; the field errors name what is missing or malformed.
    pub fn parse(body: &[u8]) -> Result<Nudge, Vec<FieldError>> {
        let field = |name: &str, message: &str| vec![FieldError { field: name.into(), message: message.into() }];
        let payload: Value = serde_json::from_slice(body).map_err(|_| field("body", "must be IntakeQ's webhook JSON"))?;
        fn text(value: Option<&Value>) -> Option<&str> {
            value.and_then(Value::as_str).map(str::trim).filter(|s| (1..=64).contains(&s.len()))
        }
        // One spelling per appointment (IntakeQ writes its ids in lower case): no twin nudges, no id the database
        // would find differs from IntakeQ's answer.
        let pq_appointment_id = text(payload.pointer("/Appointment/Id"))
            .filter(|id| is_appointment_id(id))
            .ok_or_else(|| field("Appointment.Id", "is required: IntakeQ's id, 24 hexadecimal characters"))?
            .to_ascii_lowercase();
        let event_type = text(payload.get("EventType")).ok_or_else(|| field("EventType", "is required: 1-64 characters"))?;
        Ok(Nudge {
            pq_appointment_id,
            event_type: event_type.to_owned(),
            by_client: payload.get("ActionPerformedByClient").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// What the database answers for a nudge kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Noted {
    pub event_id: Uuid,
    /// The appointment was already waiting to be re-read: this webhook was folded into that.
    pub duplicate: bool,
}

/// A waiting nudge, leased to a runner (`claim_intakeq_inbound_events`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClaimedNudge {
    pub event_id: Uuid,
    pub pq_appointment_id: String,
    pub lease_token: Uuid,
    pub lease_seconds_left: Option<i64>,
}

/// What the database made of IntakeQ's appointment (`apply_intakeq_event`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AppliedNudge {
    /// `cancelled`, `moved`, `reinstated`, `blocked`, `unblocked`, `conflict`, `unchanged` or `ignored`; `None` when
    /// nothing was applied (the lease was lost, or ours was written since the claim: it waits to be re-read).
    #[serde(default)]
    pub result: Option<String>,
    /// The lease was still this runner's: the rules ran.
    pub recorded: bool,
    /// The nudge is done (`false`: another webhook for it came meanwhile, and it waits to be re-read again).
    #[serde(default)]
    pub processed: bool,
}

/// The catch-up's turn (`claim_intakeq_catchup`): due, and leased to this runner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CatchUpClaim {
    pub due: bool,
    #[serde(default)]
    pub lease_token: Option<Uuid>,
    /// The page to read first: where a run the budget stopped left off (1: from the start).
    #[serde(default)]
    pub next_page: Option<u32>,
}

/// How a catch-up turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUpEnd {
    pub completed: bool,
    /// The budget stopped it before this page (not a failure).
    pub next_page: Option<u32>,
    /// It read the whole window, to this date.
    pub listed_until: Option<NaiveDate>,
    pub error: Option<String>,
}

/// How the cron re-reads nudges and catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundSettings {
    /// Nudges re-read in one run at most (SYNC_BATCH_SIZE).
    pub batch_size: u32,
    /// How long a runner holds a nudge (SYNC_LEASE_SECONDS).
    pub lease_seconds: u32,
    pub budget: CallBudget,
    /// One IntakeQ call at most (INTAKEQ_TIMEOUT_MS): how long a call reserved from the budget is held.
    pub call_timeout_ms: u64,
    /// The catch-up reads IntakeQ's appointments from yesterday to this many days ahead (INTAKEQ_CATCHUP_DAYS).
    pub catch_up_days: u32,
    /// The catch-up runs at most this often (INTAKEQ_CATCHUP_MINUTES; 0: every cron run).
    pub catch_up_every_minutes: u32,
}

impl InboundSettings {
    /// How long a call reserved from the budget is held: the call's timeout and a margin, in whole seconds.
    fn hold_seconds(&self) -> u32 {
        u32::try_from(self.call_timeout_ms.div_ceil(1000) + 5).unwrap_or(u32::MAX)
    }
}

/// One call of IntakeQ's shared budget, for a call outside a sync job (a re-read, a catch-up page), reserved
/// under a token of its own. `None`: the budget has no call for it now.
async fn reserve_call(store: &impl InboundStore, runner: &str, settings: &InboundSettings) -> Result<Option<Uuid>, StoreError> {
    let token = Uuid::new_v4();
    let reservation = store.reserve_intakeq_budget(runner, token, 1, settings.hold_seconds(), &settings.budget).await?;
    if reservation.reserved {
        return Ok(Some(token));
    }
    tracing::info!(step = "intakeq_budget", outcome = "no_calls_left", runner, wait_ms = ?reservation.wait_ms);
    Ok(None)
}

/// Reports the calls made under `token` (0: the call was not needed after all, and goes back), and a 429's pause
/// for every caller. A report that fails leaves the reservation counted until it is held no more: conservative.
async fn report_calls(store: &impl InboundStore, runner: &str, settings: &InboundSettings, token: Uuid, made: u32, error: Option<&IntakeqError>) {
    let rate_limited = error.and_then(|error| pause_after(settings, error));
    if let Err(error) = store.report_intakeq_calls(token, made, rate_limited).await {
        tracing::warn!(step = "intakeq_budget", outcome = "report_failed", runner, debug = %error.debug());
    }
}

/// How long a 429 pauses every caller (`None`: the failure is not a 429).
fn pause_after(settings: &InboundSettings, error: &IntakeqError) -> Option<u64> {
    match error {
        IntakeqError::RateLimited { retry_after_seconds } => Some(settings.budget.pause_after_429_seconds(*retry_after_seconds)),
        _ => None,
    }
}

/// A failure after which the run's next call would meet the same answer (a 429, a refused key).
fn stops_the_run(error: &IntakeqError) -> bool {
    matches!(error, IntakeqError::RateLimited { .. } | IntakeqError::Rejected { status: 401 | 403, .. })
}

#[allow(async_fn_in_trait)]
pub trait InboundStore {
    /// Keeps `nudge` in the inbound outbox (`note_intakeq_webhook`).
    async fn note_intakeq_webhook(&self, nudge: &Nudge, request_id: &str) -> Result<Noted, StoreError>;
    /// Leases up to `limit` waiting nudges, oldest first.
    async fn claim_intakeq_inbound_events(&self, runner: &str, limit: u32, lease_seconds: u32) -> Result<Vec<ClaimedNudge>, StoreError>;
    /// Applies IntakeQ's appointment as it is now (`None`: IntakeQ has it no more) for a leased nudge.
    async fn apply_intakeq_event(&self, nudge: &ClaimedNudge, now: Option<&Appointment>) -> Result<AppliedNudge, StoreError>;
    /// The re-read failed: the nudge waits (with backoff, or until `retry_after_seconds`).
    async fn release_intakeq_event(&self, nudge: &ClaimedNudge, error: &str, retry_after_seconds: Option<u64>) -> Result<(), StoreError>;
    /// Applies a page of the catch-up, if `lease_token` still holds its turn; answers the count of each result.
    async fn apply_intakeq_appointments(&self, page: &[Appointment], lease_token: Uuid) -> Result<Value, StoreError>;
    /// The catch-up's turn, when it is due (every `every_minutes`; 0: every run) and nobody holds it.
    async fn claim_intakeq_catchup(&self, runner: &str, every_minutes: u32, lease_seconds: u32) -> Result<CatchUpClaim, StoreError>;
    /// Ends the catch-up's turn: `completed` when every page was read and applied; else stopped at `next_page` by
    /// the budget (not a failure: the next run goes on from there), or failed with `error` (it backs off).
    /// `listed_until`: the pass read its whole window, to that date: what we hold in it and IntakeQ did not list
    /// is then re-read (IntakeQ sends no webhook for a deletion).
    async fn finish_intakeq_catchup(&self, lease_token: Uuid, end: &CatchUpEnd, counts: &Value) -> Result<(), StoreError>;
    /// Reserves `calls` of IntakeQ's budget under `lease_token` for `hold_seconds` (never ahead of a due booking).
    async fn reserve_intakeq_budget(&self, holder: &str, lease_token: Uuid, calls: u32, hold_seconds: u32, budget: &CallBudget)
        -> Result<Reservation, StoreError>;
    /// The calls made under `lease_token` (the rest goes back), and IntakeQ's 429, if any.
    async fn report_intakeq_calls(&self, lease_token: Uuid, made: u32, rate_limited_seconds: Option<u64>) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_keeps_the_appointment_id_the_event_and_who_acted_and_nothing_else() {
        let body = br#"{"EventType": "AppointmentCanceled", "ActionPerformedByClient": true,
                        "Appointment": {"Id": "5f9a00000000000000000001", "ClientName": "Riley Quinn", "ClientEmail": "r@example.com"}}"#;
        assert_eq!(
            Nudge::parse(body).unwrap(),
            Nudge { pq_appointment_id: "5f9a00000000000000000001".into(), event_type: "AppointmentCanceled".into(), by_client: true }
        );
    }

    #[test]
    fn a_payload_without_an_appointment_id_or_event_is_refused_by_field() {
        let names = |body: &[u8]| Nudge::parse(body).unwrap_err().into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(names(b"not json"), ["body"]);
        assert_eq!(names(br#"{"EventType": "AppointmentCanceled", "Appointment": {}}"#), ["Appointment.Id"]);
        assert_eq!(names(br#"{"Appointment": {"Id": "5f9a00000000000000000001"}}"#), ["EventType"]);
        assert_eq!(names(format!(r#"{{"EventType": "X", "Appointment": {{"Id": "{}"}}}}"#, "a".repeat(25)).as_bytes()), ["Appointment.Id"]);
        assert_eq!(names(br#"{"EventType": "X", "Appointment": {"Id": "../../clients?x=5f9a0000000000000001"}}"#), ["Appointment.Id"]);
        let upper = br#"{"EventType": "X", "Appointment": {"Id": "5F9A00000000000000000001"}}"#;
        assert_eq!(Nudge::parse(upper).unwrap().pq_appointment_id, "5f9a00000000000000000001", "one spelling per appointment");
    }
}
