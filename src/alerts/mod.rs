//! Staff alerts: a dead sync job, a paused or resumed queue, a possible duplicate in IntakeQ. The database writes
//! each alert in the transaction that caused it (`staff_alerts`, once per event); the cron delivers them to the
//! practice's chat webhook (`STAFF_ALERT_WEBHOOK_URL`, JSON `{"text"}` as Slack takes it), retrying with backoff
//! until it answers. Without a webhook they are only logged. An alert's text carries the appointment id, the
//! provider, the time and the reason: never patient data.

#[cfg(target_arch = "wasm32")]
pub mod webhook;

use serde::Deserialize;
use tracing::{info, warn};
use uuid::Uuid;

use crate::booking::store::StoreError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Alert {
    pub id: Uuid,
    pub kind: String,
    pub text: String,
    pub appointment_id: Option<Uuid>,
}

/// What delivering alerts needs from the database.
#[allow(async_fn_in_trait)]
pub trait AlertStore {
    /// Leases up to `limit` due, undelivered alerts to `runner`.
    async fn claim_staff_alerts(&self, runner: &str, limit: u32, lease_seconds: u32) -> Result<Vec<Alert>, StoreError>;
    /// Delivered, or failed with `error` (then due again after a backoff).
    async fn record_staff_alert(&self, alert: Uuid, delivered: Result<(), &str>) -> Result<(), StoreError>;
}

/// Where alerts go: the practice's chat webhook.
#[allow(async_fn_in_trait)]
pub trait AlertSender {
    async fn send(&self, text: &str) -> Result<(), String>;
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub failed: usize,
}

/// How many alerts one cron run delivers at most.
const ALERTS_PER_RUN: u32 = 20;

/// Delivers the due alerts through `sender`; without one, logs them (and counts them delivered).
pub async fn deliver(store: &impl AlertStore, sender: Option<&impl AlertSender>, runner: &str, lease_seconds: u32) -> Result<Delivered, StoreError> {
    let mut delivered = Delivered::default();
    for alert in store.claim_staff_alerts(runner, ALERTS_PER_RUN, lease_seconds).await? {
        let result = match sender {
            Some(sender) => sender.send(&alert.text).await,
            None => Ok(()),
        };
        match &result {
            Ok(()) => {
                delivered.sent += 1;
                info!(step = "staff_alert", outcome = if sender.is_some() { "sent" } else { "logged" },
                      kind = %alert.kind, alert_id = %alert.id, text = %alert.text);
            }
            Err(error) => {
                delivered.failed += 1;
                warn!(step = "staff_alert", outcome = "failed", kind = %alert.kind, alert_id = %alert.id, error = %error);
            }
        }
        if let Err(error) = store.record_staff_alert(alert.id, result.as_ref().map(|_| ()).map_err(String::as_str)).await {
            warn!(step = "staff_alert", outcome = "unrecorded", alert_id = %alert.id, debug = %error.debug());
        }
    }
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use futures::executor::block_on;

    use super::*;

    #[derive(Default)]
    struct Store {
        due: RefCell<Vec<Alert>>,
        recorded: RefCell<Vec<(Uuid, Result<(), String>)>>,
    }

    impl AlertStore for Store {
        async fn claim_staff_alerts(&self, _runner: &str, limit: u32, _lease: u32) -> Result<Vec<Alert>, StoreError> {
            let mut due = self.due.borrow_mut();
            let take = (limit as usize).min(due.len());
            Ok(due.drain(..take).collect())
        }

        async fn record_staff_alert(&self, alert: Uuid, delivered: Result<(), &str>) -> Result<(), StoreError> {
            self.recorded.borrow_mut().push((alert, delivered.map_err(str::to_owned)));
            Ok(())
        }
    }

    struct Webhook {
        fail: bool,
        sent: RefCell<Vec<String>>,
    }

    impl AlertSender for Webhook {
        async fn send(&self, text: &str) -> Result<(), String> {
            if self.fail {
                return Err("the webhook answered 500".into());
            }
            self.sent.borrow_mut().push(text.to_owned());
            Ok(())
        }
    }

    fn alert(n: u128) -> Alert {
        Alert { id: Uuid::from_u128(n), kind: "sync_dead".into(), text: format!("alert {n}"), appointment_id: None }
    }

    #[test]
    fn due_alerts_are_sent_and_recorded() {
        let store = Store::default();
        store.due.borrow_mut().extend([alert(1), alert(2)]);
        let webhook = Webhook { fail: false, sent: RefCell::default() };
        let delivered = block_on(deliver(&store, Some(&webhook), "cron-1", 60)).unwrap();
        assert_eq!(delivered, Delivered { sent: 2, failed: 0 });
        assert_eq!(*webhook.sent.borrow(), ["alert 1", "alert 2"]);
        assert!(store.recorded.borrow().iter().all(|(_, result)| result.is_ok()));
    }

    #[test]
    fn a_webhook_that_fails_leaves_the_alert_for_a_retry() {
        let store = Store::default();
        store.due.borrow_mut().push(alert(1));
        let webhook = Webhook { fail: true, sent: RefCell::default() };
        assert_eq!(block_on(deliver(&store, Some(&webhook), "cron-1", 60)).unwrap(), Delivered { sent: 0, failed: 1 });
        assert_eq!(store.recorded.borrow()[0], (Uuid::from_u128(1), Err("the webhook answered 500".into())));
    }

    #[test]
    fn without_a_webhook_alerts_are_logged() {
        let store = Store::default();
        store.due.borrow_mut().push(alert(1));
        assert_eq!(block_on(deliver(&store, None::<&Webhook>, "cron-1", 60)).unwrap(), Delivered { sent: 1, failed: 0 });
        assert!(store.recorded.borrow()[0].1.is_ok());
    }
}
