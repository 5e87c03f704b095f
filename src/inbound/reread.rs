//! The cron's re-reads: each waiting nudge, oldest first, leased, its appointment read from IntakeQ (one call of
//! the shared budget, reserved before the nudge is claimed, so no nudge waits leased for the budget) and handed to
//! the database's rules as IntakeQ has it now. A re-read that fails leaves the nudge waiting, with backoff; a 429
//! or a refused key ends the run (the next call would meet the same answer).

use serde::Serialize;
use tracing::{info, warn};

use super::{pause_after, report_calls, reserve_call, stops_the_run, InboundSettings, InboundStore};
use crate::booking::store::StoreError;
use crate::intakeq::Intakeq;

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct RereadSummary {
    /// Nudges re-read and handed to the rules.
    pub applied: usize,
    /// Re-reads that failed: the nudge waits.
    pub failed: usize,
    /// The run stopped because the budget had no call left.
    pub out_of_budget: bool,
}

pub async fn reread_nudges(
    store: &impl InboundStore,
    intakeq: &impl Intakeq,
    runner: &str,
    settings: &InboundSettings,
) -> Result<RereadSummary, StoreError> {
    let mut summary = RereadSummary::default();
    while summary.applied + summary.failed < settings.batch_size as usize {
        let Some(token) = reserve_call(store, runner, settings).await? else {
            summary.out_of_budget = true;
            break;
        };
        let Some(nudge) = store.claim_intakeq_inbound_events(runner, 1, settings.lease_seconds).await?.pop() else {
            report_calls(store, runner, settings, token, 0, None).await;
            break;
        };
        let now = intakeq.appointment(&nudge.pq_appointment_id).await;
        report_calls(store, runner, settings, token, 1, now.as_ref().err()).await;
        match now {
            Ok(now) => match store.apply_intakeq_event(&nudge, now.as_ref()).await {
                Ok(applied) => {
                    info!(step = "intakeq_reread", outcome = "applied", pq_appointment_id = %nudge.pq_appointment_id,
                          result = ?applied.result, recorded = applied.recorded, processed = applied.processed);
                    summary.applied += 1;
                }
                // The database is away: so is every other nudge's apply.
                Err(error @ StoreError::Unavailable { .. }) => return Err(error),
                // The database refused what IntakeQ answered: this nudge waits (with backoff, visible in sync
                // health) and the others go on, so no one nudge holds up the queue.
                Err(error) => {
                    warn!(step = "intakeq_reread", outcome = "not_applied", pq_appointment_id = %nudge.pq_appointment_id, debug = %error.debug());
                    store.release_intakeq_event(&nudge, &format!("IntakeQ's answer could not be applied: {}", error.debug()), None).await?;
                    summary.failed += 1;
                }
            },
            Err(error) => {
                warn!(step = "intakeq_reread", outcome = "failed", pq_appointment_id = %nudge.pq_appointment_id, error = %error);
                store.release_intakeq_event(&nudge, &format!("GET /appointments/{{id}}: {error}"), pause_after(settings, &error)).await?;
                summary.failed += 1;
                if stops_the_run(&error) {
                    break;
                }
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::intakeq::wire::Appointment;
    use crate::intakeq::IntakeqError;
    use crate::testing::{inbound_settings, FakeIntakeq, FakeStore};

    fn upstream(id: &str, status: &str) -> Appointment {
        Appointment { id: id.into(), status: Some(status.into()), start_date: Some(1_796_140_800_000), ..Appointment::default() }
    }

    #[test]
    fn each_waiting_nudge_is_reread_and_handed_to_the_rules_as_intakeq_has_it_now() {
        let store = FakeStore::default();
        store.waiting_nudges.borrow_mut().extend(["aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"].map(String::from));
        let intakeq = FakeIntakeq::default();
        intakeq.appointments.borrow_mut().push(upstream("aaaaaaaaaaaaaaaaaaaaaaaa", "Canceled"));
        let summary = block_on(reread_nudges(&store, &intakeq, "cron-1", &inbound_settings())).unwrap();
        assert_eq!(summary, RereadSummary { applied: 2, failed: 0, out_of_budget: false });
        let applied = store.applied.borrow();
        assert_eq!(applied[0].0, "aaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(applied[0].1.as_ref().and_then(|a| a.status.as_deref()), Some("Canceled"), "what IntakeQ says now");
        assert_eq!(applied[1], ("bbbbbbbbbbbbbbbbbbbbbbbb".into(), None), "gone from IntakeQ: applied as such");
        assert_eq!(*store.budget_reports.borrow(), [1, 1, 0], "one call each; the last reservation, unused, goes back");
    }

    #[test]
    fn a_nudge_the_database_refuses_waits_and_the_others_go_on() {
        let store = FakeStore::default();
        store.waiting_nudges.borrow_mut().extend(["aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"].map(String::from));
        store.refuse_apply_of.borrow_mut().push("aaaaaaaaaaaaaaaaaaaaaaaa".into());
        let intakeq = FakeIntakeq::default();
        let summary = block_on(reread_nudges(&store, &intakeq, "cron-1", &inbound_settings())).unwrap();
        assert_eq!((summary.applied, summary.failed), (1, 1));
        assert_eq!(store.released.borrow()[0].0, "aaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(store.applied.borrow().last().unwrap().0, "bbbbbbbbbbbbbbbbbbbbbbbb", "the next one was applied");
    }

    #[test]
    fn no_budget_no_claim_and_a_429_ends_the_run_with_the_nudge_waiting() {
        let store = FakeStore::default();
        store.waiting_nudges.borrow_mut().push("aaaaaaaaaaaaaaaaaaaaaaaa".into());
        store.budget_left.set(Some(0));
        let summary = block_on(reread_nudges(&store, &FakeIntakeq::default(), "cron-1", &inbound_settings())).unwrap();
        assert!(summary.out_of_budget);
        assert_eq!(store.waiting_nudges.borrow().len(), 1, "not claimed without a call of the budget");

        let store = FakeStore::default();
        store.waiting_nudges.borrow_mut().extend(["aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"].map(String::from));
        let intakeq = FakeIntakeq::default();
        intakeq.fail_next("appointment", IntakeqError::RateLimited { retry_after_seconds: Some(20) });
        let summary = block_on(reread_nudges(&store, &intakeq, "cron-1", &inbound_settings())).unwrap();
        assert_eq!((summary.applied, summary.failed), (0, 1));
        assert_eq!(*store.released.borrow(), [("aaaaaaaaaaaaaaaaaaaaaaaa".to_owned(), Some(20))], "waits out the Retry-After");
        assert_eq!(store.waiting_nudges.borrow().len(), 1, "the second was not claimed after the 429");
        assert_eq!(*store.rate_limits_reported.borrow(), [20], "every caller pauses");
    }
}
