//! The catch-up: webhooks get lost, so now and then (INTAKEQ_CATCHUP_MINUTES) the cron reads every appointment
//! IntakeQ has from yesterday to INTAKEQ_CATCHUP_DAYS ahead, page after page (one call of the shared budget each),
//! and hands each page to the same rules as a re-read. IntakeQ's `updatedSince` is not documented by IntakeQ, so
//! the window is read whole. A turn that cannot finish (no budget, a failed page) is not counted as done: the
//! next cron run starts it again.

use std::collections::BTreeMap;

use chrono::Days;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{report_calls, reserve_call, InboundSettings, InboundStore};
use crate::booking::store::StoreError;
use crate::intakeq::wire::PAGE_SIZE;
use crate::intakeq::Intakeq;
use crate::support::clock::Clock;

/// How long a runner holds the catch-up's turn.
const LEASE_SECONDS: u32 = 300;
/// Pages read at most in one turn (100 appointments a page).
const MAX_PAGES: u32 = 100;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct CatchUpSummary {
    pub pages: u32,
    pub completed: bool,
    /// How many appointments came to each result of the rules.
    pub results: BTreeMap<String, u64>,
}

/// Runs the catch-up if its turn has come; `None` when it has not (or another runner has it).
pub async fn catch_up(
    store: &impl InboundStore,
    intakeq: &impl Intakeq,
    clock: &impl Clock,
    runner: &str,
    settings: &InboundSettings,
) -> Result<Option<CatchUpSummary>, StoreError> {
    let claim = store.claim_intakeq_catchup(runner, settings.catch_up_every_minutes, LEASE_SECONDS).await?;
    let (true, Some(token)) = (claim.due, claim.lease_token) else { return Ok(None) };
    let today = clock.now().date_naive();
    // IntakeQ reads the dates in a zone it does not name: a day either side covers every zone's.
    let (from, to) = (today - Days::new(1), today + Days::new(u64::from(settings.catch_up_days) + 1));
    let mut summary = CatchUpSummary::default();
    let mut error = None;
    for page in 1..=MAX_PAGES {
        let Some(call) = reserve_call(store, runner, settings).await? else {
            error = Some("IntakeQ's call budget had no call left; the catch-up starts again at the next run".to_owned());
            break;
        };
        let appointments = intakeq.appointments_of_practice(from, to, page).await;
        report_calls(store, runner, settings, call, 1, appointments.as_ref().err()).await;
        let appointments = match appointments {
            Ok(appointments) => appointments,
            Err(failure) => {
                error = Some(format!("GET /appointments (page {page}): {failure}"));
                break;
            }
        };
        summary.pages = page;
        let counts = store.apply_intakeq_appointments(&appointments).await?;
        for (result, count) in counts.as_object().into_iter().flatten() {
            *summary.results.entry(result.clone()).or_default() += count.as_u64().unwrap_or(0);
        }
        if appointments.len() < PAGE_SIZE {
            summary.completed = true;
            break;
        }
    }
    if !summary.completed && error.is_none() {
        error = Some(format!("more than {MAX_PAGES} pages of appointments"));
    }
    let counts: Value = json!({"pages": summary.pages, "results": summary.results});
    store.finish_intakeq_catchup(token, summary.completed, &counts, error.as_deref()).await?;
    match &error {
        None => info!(step = "intakeq_catch_up", outcome = "completed", runner, pages = summary.pages, results = ?summary.results),
        Some(error) => warn!(step = "intakeq_catch_up", outcome = "unfinished", runner, pages = summary.pages, error = %error),
    }
    Ok(Some(summary))
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::intakeq::wire::Appointment;
    use crate::intakeq::IntakeqError;
    use crate::testing::{inbound_settings, FakeIntakeq, FakeStore, FixedClock};

    fn intakeq_with(count: usize) -> FakeIntakeq {
        let intakeq = FakeIntakeq::default();
        intakeq.appointments.borrow_mut().extend((0..count).map(|n| Appointment {
            id: format!("{n:024x}"), status: Some("Confirmed".into()), ..Appointment::default()
        }));
        intakeq
    }

    #[test]
    fn every_page_of_the_window_is_read_and_applied_and_the_turn_is_done() {
        let store = FakeStore::default();
        let intakeq = intakeq_with(250);
        let summary = block_on(catch_up(&store, &intakeq, &FixedClock, "cron-1", &inbound_settings())).unwrap().unwrap();
        assert_eq!((summary.pages, summary.completed), (3, true), "100 + 100 + 50");
        assert_eq!(store.applied_pages.borrow().iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        let window = intakeq.lookups.borrow()[0];
        assert_eq!((window.0.to_string(), window.1.to_string()), ("2026-11-23".into(), "2027-01-24".into()), "yesterday to 60 days and one ahead");
        assert_eq!(store.catch_up_finished.borrow().as_slice(), [(true, None)]);
    }

    #[test]
    fn a_turn_not_due_reads_nothing_and_a_failed_page_leaves_it_unfinished() {
        let store = FakeStore::default();
        store.catch_up_not_due.set(true);
        let intakeq = intakeq_with(10);
        assert_eq!(block_on(catch_up(&store, &intakeq, &FixedClock, "cron-1", &inbound_settings())).unwrap(), None);
        assert!(intakeq.calls.borrow().is_empty());

        let store = FakeStore::default();
        let intakeq = intakeq_with(150);
        intakeq.fail_next("appointments_of_practice", IntakeqError::ServerError { status: 503 });
        let summary = block_on(catch_up(&store, &intakeq, &FixedClock, "cron-1", &inbound_settings())).unwrap().unwrap();
        assert!(!summary.completed);
        let finished = store.catch_up_finished.borrow();
        assert!(!finished[0].0 && finished[0].1.as_deref().is_some_and(|e| e.contains("503")), "{finished:?}");
    }
}
