//! The catch-up: webhooks get lost, so now and then (INTAKEQ_CATCHUP_MINUTES) the cron reads every appointment
//! IntakeQ has from yesterday to INTAKEQ_CATCHUP_DAYS ahead, page after page (one call of the shared budget each),
//! and hands each page to the same rules as a re-read. IntakeQ's `updatedSince` is not documented by IntakeQ, so
//! the window is read whole. A turn the budget stops goes on from its page at the next cron run (IntakeQ allows 10
//! calls a minute, and a practice's window may hold many more pages); a turn whose page fails backs off.

use std::collections::BTreeMap;

use chrono::Days;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{report_calls, reserve_call, CatchUpEnd, InboundSettings, InboundStore};
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
    /// Pages read in this run.
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
    let first_page = claim.next_page.unwrap_or(1).clamp(1, MAX_PAGES);
    let today = clock.now().date_naive();
    // IntakeQ reads the dates in a zone it does not name: a day either side covers every zone's.
    let (from, to) = (today - Days::new(1), today + Days::new(u64::from(settings.catch_up_days) + 1));
    let mut summary = CatchUpSummary::default();
    let (mut error, mut stopped_at) = (None, None);
    for page in first_page..=MAX_PAGES {
        let Some(call) = reserve_call(store, runner, settings).await? else {
            stopped_at = Some(page);
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
        summary.pages += 1;
        let counts = store.apply_intakeq_appointments(&appointments, token).await?;
        if counts.get("recorded") == Some(&Value::Bool(false)) {
            // The turn's lease ran out and another runner has it now: this one stops, and ends nothing.
            warn!(step = "intakeq_catch_up", outcome = "lease_lost", runner, pages = summary.pages);
            return Ok(Some(summary));
        }
        for (result, count) in counts.as_object().into_iter().flatten().filter_map(|(r, c)| Some((r, c.as_u64()?))) {
            *summary.results.entry(result.clone()).or_default() += count;
        }
        if appointments.len() < PAGE_SIZE {
            summary.completed = true;
            break;
        }
    }
    if !summary.completed && error.is_none() && stopped_at.is_none() {
        // As far as a pass reads: the pass ends there (done, with a note for staff), so the next one starts again
        // at page 1 (the nearest appointments) rather than rereading its last pages for ever.
        summary.completed = true;
        error = Some(format!("more than {MAX_PAGES} pages of appointments: the pass read the first {MAX_PAGES}"));
    }
    let counts: Value = json!({"pages": summary.pages, "results": summary.results});
    // Only a pass that saw the end of IntakeQ's list can tell what IntakeQ no longer has.
    let listed_until = (summary.completed && error.is_none()).then_some(to);
    let end = CatchUpEnd { completed: summary.completed, next_page: stopped_at, listed_until, error: error.clone() };
    store.finish_intakeq_catchup(token, &end, &counts).await?;
    match (&error, stopped_at) {
        (Some(error), _) if summary.completed => warn!(step = "intakeq_catch_up", outcome = "completed", runner, pages = summary.pages, error = %error),
        (Some(error), _) => warn!(step = "intakeq_catch_up", outcome = "failed", runner, pages = summary.pages, error = %error),
        (None, Some(page)) => info!(step = "intakeq_catch_up", outcome = "goes_on_next_run", runner, pages = summary.pages, next_page = page),
        (None, None) => info!(step = "intakeq_catch_up", outcome = "completed", runner, pages = summary.pages, results = ?summary.results),
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
        assert_eq!(store.catch_up_finished.borrow().as_slice(), [(true, None, None)]);
        assert_eq!(store.catch_up_listed_until.borrow().as_slice(), [Some("2027-01-24".parse().unwrap())],
                   "the whole window read: what IntakeQ did not list there is to be re-read");
    }

    #[test]
    fn a_turn_the_budget_stops_goes_on_from_its_page_at_the_next_run() {
        let store = FakeStore::default();
        store.budget_left.set(Some(2));
        let intakeq = intakeq_with(450);
        let summary = block_on(catch_up(&store, &intakeq, &FixedClock, "cron-1", &inbound_settings())).unwrap().unwrap();
        assert_eq!((summary.pages, summary.completed), (2, false));
        assert_eq!(store.catch_up_finished.borrow()[0], (false, Some(3), None), "not a failure: page 3 is next");

        store.budget_left.set(None);
        store.catch_up_next_page.set(Some(3));
        let summary = block_on(catch_up(&store, &intakeq, &FixedClock, "cron-1", &inbound_settings())).unwrap().unwrap();
        assert_eq!((summary.pages, summary.completed), (3, true), "pages 3, 4 and 5");
        assert_eq!(store.applied_pages.borrow().iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 100, 100, 50], "each page once");
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
        assert!(!finished[0].0 && finished[0].1.is_none() && finished[0].2.as_deref().is_some_and(|e| e.contains("503")), "{finished:?}");
        assert_eq!(store.catch_up_listed_until.borrow()[0], None, "a pass that did not see the end tells nothing of what is gone");
    }
}
