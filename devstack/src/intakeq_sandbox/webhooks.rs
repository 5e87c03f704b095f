//! IntakeQ's appointment webhooks, as the sandbox sends them. IntakeQ posts
//! `{"EventType": "...", "ActionPerformedByClient": false, "Appointment": {...}}` to the practice's URL when an
//! appointment changes; nothing is signed, and deliveries may be lost, repeated or come out of order. The control
//! API sets the URL (`PUT /_sandbox/webhooks`), plans delivery faults (lose, repeat, hold), releases held
//! deliveries in order or reversed, and lists every delivery with its fate.
//!
//! Deliveries go out one at a time, in the order the changes were made: a change queues its deliveries (under the
//! records' lock, so the queue's order is the changes' order), and `deliver_queued` posts whatever is queued. Staff
//! actions await it before answering; API calls spawn it. A receiver that fails or cannot be reached is noted in
//! the log and never retried, as IntakeQ does not promise retries.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::records::Appointment;

/// How long a receiver has to answer a delivery.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// An appointment change to tell the receiver about: the event type and the appointment as it is after the change.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: &'static str,
    pub appointment: Appointment,
}

/// Who made a change. Staff changes are always sent (when a URL is set); API changes only with `apiChanges`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Api,
    Staff,
}

/// `PUT /_sandbox/webhooks`: where deliveries go (`null`, or no `url`, stops them), and whether changes made
/// through the API are sent too (default true; IntakeQ sends them).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigRequest {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default = "yes")]
    pub api_changes: bool,
}

fn yes() -> bool {
    true
}

/// What a planned delivery fault does to the next deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFault {
    /// Dropped: the receiver never gets it.
    Lose,
    /// Delivered twice, one right after the other.
    Repeat,
    /// Kept back until `POST /_sandbox/webhooks/release`.
    Hold,
}

/// `POST /_sandbox/webhooks/faults`: exactly one of `{"lose": n}`, `{"repeat": n}`, `{"hold": n}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    lose: Option<u32>,
    repeat: Option<u32>,
    hold: Option<u32>,
}

impl FaultRequest {
    pub fn planned(&self) -> Result<(DeliveryFault, u32), String> {
        match (self.lose, self.repeat, self.hold) {
            (Some(n), None, None) => Ok((DeliveryFault::Lose, n)),
            (None, Some(n), None) => Ok((DeliveryFault::Repeat, n)),
            (None, None, Some(n)) => Ok((DeliveryFault::Hold, n)),
            _ => Err("give exactly one of lose, repeat or hold, with a count".into()),
        }
    }
}

/// `POST /_sandbox/webhooks/release`: the held deliveries go out in the order their changes were made (`sent`, the
/// default) or the other way round (`reverse`: out of order).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseRequest {
    #[serde(default)]
    pub order: ReleaseOrder,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseOrder {
    #[default]
    Sent,
    Reverse,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Queued, not posted yet (an API change's delivery, in the moment before it goes out).
    Pending,
    /// Posted when the change was made.
    Delivered,
    /// Dropped by a `lose` fault.
    Lost,
    /// Kept back by a `hold` fault, not released yet.
    Held,
    /// Held, then posted by a release.
    Released,
}

/// One delivery in `GET /_sandbox/webhooks`. `status` is the receiver's HTTP status, `error` why there is none
/// (unreachable, timed out); both null until posted. `at` is when the fate was last settled (ms): when it was
/// posted, lost, held or queued.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub event_type: &'static str,
    pub appointment_id: String,
    pub fate: Fate,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at: i64,
}

/// A delivery waiting to be posted.
#[derive(Debug)]
struct Outgoing {
    url: String,
    payload: Value,
    /// Its entry in the log, valid while `epoch` is the current one (a reset empties the log).
    entry: usize,
    epoch: u64,
    released: bool,
}

#[derive(Debug)]
pub struct Webhooks {
    pub url: Option<String>,
    pub api_changes: bool,
    planned: VecDeque<(DeliveryFault, u32)>,
    log: Vec<Delivery>,
    held: Vec<Outgoing>,
    queue: VecDeque<Outgoing>,
    epoch: u64,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            url: None,
            api_changes: true,
            planned: VecDeque::new(),
            log: Vec::new(),
            held: Vec::new(),
            queue: VecDeque::new(),
            epoch: 0,
        }
    }
}

impl Webhooks {
    /// Sets the URL (an `http://` one: the sandbox speaks no TLS) and whether API changes are sent.
    pub fn configure(&mut self, request: ConfigRequest) -> Result<(), String> {
        if let Some(url) = &request.url {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("url: {e}"))?;
            if parsed.scheme() != "http" {
                return Err("url must be an http:// URL (the sandbox does not speak TLS)".into());
            }
        }
        self.url = request.url;
        self.api_changes = request.api_changes;
        Ok(())
    }

    /// The next `count` deliveries (after those the faults planned earlier take) get `fault`.
    pub fn plan(&mut self, fault: DeliveryFault, count: u32) {
        if count > 0 {
            self.planned.push_back((fault, count));
        }
    }

    pub fn clear_faults(&mut self) {
        self.planned.clear();
    }

    pub fn log(&self) -> &[Delivery] {
        &self.log
    }

    /// The configuration, the faults still planned and how many deliveries are held, for `GET /_sandbox/state`.
    pub fn summary(&self) -> Value {
        let faults: Vec<Value> = self.planned.iter().map(|(fault, count)| json!({ "fault": fault, "count": count })).collect();
        json!({ "url": self.url, "apiChanges": self.api_changes, "faults": faults, "held": self.held.len() })
    }

    /// Forgets the URL, the faults, the log and every delivery held or queued. A delivery being posted finishes,
    /// but is not logged.
    pub fn reset(&mut self) {
        *self = Webhooks { epoch: self.epoch + 1, ..Webhooks::default() };
    }

    fn take_fault(&mut self) -> Option<DeliveryFault> {
        let (fault, count) = self.planned.front_mut()?;
        let fault = *fault;
        *count -= 1;
        if *count == 0 {
            self.planned.pop_front();
        }
        Some(fault)
    }

    fn note(&mut self, event: &Event, fate: Fate, now_ms: i64) -> usize {
        self.log.push(Delivery {
            event_type: event.event_type,
            appointment_id: event.appointment.id.clone(),
            fate,
            status: None,
            error: None,
            at: now_ms,
        });
        self.log.len() - 1
    }

    /// Decides the fate of each event's delivery (taking the planned faults in turn) and queues those to post now.
    /// Nothing happens without a URL, nor for API changes without `apiChanges`. Answers whether anything was queued
    /// (then `deliver_queued` is due).
    pub fn fire(&mut self, origin: Origin, events: Vec<Event>, now_ms: i64) -> bool {
        let Some(url) = self.url.clone() else { return false };
        if origin == Origin::Api && !self.api_changes {
            return false;
        }
        let mut queued = false;
        for event in events {
            let payload = json!({
                "EventType": event.event_type,
                "ActionPerformedByClient": false,
                "Appointment": serde_json::to_value(&event.appointment).expect("appointments serialize"),
            });
            let fault = self.take_fault();
            let copies = match fault {
                Some(DeliveryFault::Lose) => {
                    self.note(&event, Fate::Lost, now_ms);
                    continue;
                }
                Some(DeliveryFault::Hold) => {
                    let entry = self.note(&event, Fate::Held, now_ms);
                    let epoch = self.epoch;
                    self.held.push(Outgoing { url: url.clone(), payload, entry, epoch, released: false });
                    continue;
                }
                Some(DeliveryFault::Repeat) => 2,
                None => 1,
            };
            for _ in 0..copies {
                let entry = self.note(&event, Fate::Pending, now_ms);
                let epoch = self.epoch;
                self.queue.push_back(Outgoing { url: url.clone(), payload: payload.clone(), entry, epoch, released: false });
            }
            queued = true;
        }
        queued
    }

    /// Queues every held delivery, in `order`; answers their log entries' indices in the order they will go out.
    fn release(&mut self, order: ReleaseOrder) -> Vec<usize> {
        let mut held = std::mem::take(&mut self.held);
        if order == ReleaseOrder::Reverse {
            held.reverse();
        }
        let entries = held.iter().map(|h| h.entry).collect();
        for mut outgoing in held {
            outgoing.released = true;
            self.queue.push_back(outgoing);
        }
        entries
    }

    fn settle(&mut self, outgoing: &Outgoing, status: Option<u16>, error: Option<String>, now_ms: i64) {
        if outgoing.epoch != self.epoch {
            return;
        }
        if let Some(delivery) = self.log.get_mut(outgoing.entry) {
            delivery.fate = if outgoing.released { Fate::Released } else { Fate::Delivered };
            delivery.status = status;
            delivery.error = error;
            delivery.at = now_ms;
        }
    }
}

/// The HTTP client deliveries use: no proxy (receivers are local), `DELIVERY_TIMEOUT`.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(DELIVERY_TIMEOUT)
        .build()
        .expect("a plain HTTP client builds")
}

/// Posts every queued delivery, one at a time, in order, and logs what the receiver answered. Holding `turn`
/// while posting keeps deliveries one at a time: whoever gets it after another caller finds everything queued
/// before it already posted.
pub async fn deliver_queued(webhooks: &Mutex<Webhooks>, turn: &tokio::sync::Mutex<()>, http: &reqwest::Client, now_ms: fn() -> i64) {
    let _turn = turn.lock().await;
    loop {
        let next = webhooks.lock().unwrap().queue.pop_front();
        let Some(outgoing) = next else { break };
        let (status, error) = match http.post(&outgoing.url).json(&outgoing.payload).send().await {
            Ok(response) => {
                let status = response.status();
                // Read the answer, so the connection can be used again.
                let _ = response.bytes().await;
                if !status.is_success() {
                    tracing::warn!(status = status.as_u16(), "the webhook receiver answered an error; not retried");
                }
                (Some(status.as_u16()), None)
            }
            Err(error) => {
                let error = describe(error);
                tracing::warn!(%error, "the webhook receiver could not be reached; not retried");
                (None, Some(error))
            }
        };
        webhooks.lock().unwrap().settle(&outgoing, status, error, now_ms());
    }
}

/// Queues the held deliveries in `order` and posts everything queued; answers the released deliveries as logged.
pub async fn release(
    webhooks: &Mutex<Webhooks>,
    turn: &tokio::sync::Mutex<()>,
    http: &reqwest::Client,
    order: ReleaseOrder,
    now_ms: fn() -> i64,
) -> Vec<Delivery> {
    let (entries, epoch) = {
        let mut webhooks = webhooks.lock().unwrap();
        (webhooks.release(order), webhooks.epoch)
    };
    deliver_queued(webhooks, turn, http, now_ms).await;
    let webhooks = webhooks.lock().unwrap();
    if webhooks.epoch != epoch {
        return Vec::new();
    }
    entries.iter().filter_map(|&entry| webhooks.log.get(entry).cloned()).collect()
}

/// Why a post got no answer, without its URL (it may hold the receiver's secret).
fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let error = error.without_url();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intakeq_sandbox::practice::demo_practice;
    use crate::intakeq_sandbox::records::{Records, StaffAppointmentInput};

    fn event(event_type: &'static str) -> Event {
        let settings = demo_practice(chrono_tz::UTC);
        let input = StaffAppointmentInput {
            practitioner_id: "5f1a00000000000000000001".into(),
            utc_date_time: 1_967_986_800_000,
            duration: None,
            service_id: None,
            location_id: None,
            client_name: None,
            client_email: None,
            status: None,
        };
        let appointment = Records::default().create_staff_appointment(input, &settings, 0).unwrap();
        Event { event_type, appointment }
    }

    fn configured(api_changes: bool) -> Webhooks {
        let mut webhooks = Webhooks::default();
        webhooks.configure(ConfigRequest { url: Some("http://127.0.0.1:9/hook".into()), api_changes }).unwrap();
        webhooks
    }

    fn fates(webhooks: &Webhooks) -> Vec<Fate> {
        webhooks.log().iter().map(|d| d.fate).collect()
    }

    #[test]
    fn nothing_is_sent_without_a_url_nor_api_changes_without_api_changes() {
        let mut webhooks = Webhooks::default();
        assert!(!webhooks.fire(Origin::Staff, vec![event("AppointmentCreated")], 1));
        let mut webhooks_no_api = configured(false);
        assert!(!webhooks_no_api.fire(Origin::Api, vec![event("AppointmentCreated")], 1));
        assert!(webhooks_no_api.fire(Origin::Staff, vec![event("AppointmentCreated")], 1));
        assert!(webhooks.log().is_empty());
        assert_eq!(fates(&webhooks_no_api), [Fate::Pending]);
    }

    #[test]
    fn faults_apply_in_the_order_planned_and_release_reverses() {
        let mut webhooks = configured(true);
        webhooks.plan(DeliveryFault::Lose, 1);
        webhooks.plan(DeliveryFault::Repeat, 1);
        webhooks.plan(DeliveryFault::Hold, 2);
        let events = ["AppointmentCreated", "AppointmentRescheduled", "AppointmentCanceled", "AppointmentCreated", "AppointmentCreated"];
        assert!(webhooks.fire(Origin::Api, events.iter().map(|&e| event(e)).collect(), 1));
        assert_eq!(
            fates(&webhooks),
            [Fate::Lost, Fate::Pending, Fate::Pending, Fate::Held, Fate::Held, Fate::Pending],
            "lost, repeated (two deliveries), two held, then normal"
        );
        assert_eq!(webhooks.queue.len(), 3);
        assert_eq!(webhooks.release(ReleaseOrder::Reverse), [4, 3]);
        assert!(webhooks.held.is_empty());
        assert_eq!(webhooks.queue.iter().map(|o| o.entry).collect::<Vec<_>>(), [1, 2, 5, 4, 3]);
    }

    #[test]
    fn a_reset_forgets_everything_and_late_settlements_are_ignored() {
        let mut webhooks = configured(true);
        webhooks.plan(DeliveryFault::Hold, 5);
        webhooks.fire(Origin::Staff, vec![event("AppointmentCreated")], 1);
        webhooks.plan(DeliveryFault::Lose, 1);
        let stale = Outgoing { url: String::new(), payload: Value::Null, entry: 0, epoch: webhooks.epoch, released: true };
        webhooks.reset();
        assert_eq!((webhooks.url.as_deref(), webhooks.api_changes), (None, true));
        assert!(webhooks.log().is_empty() && webhooks.held.is_empty() && webhooks.planned.is_empty());
        webhooks.configure(ConfigRequest { url: Some("http://127.0.0.1:9/".into()), api_changes: true }).unwrap();
        webhooks.fire(Origin::Staff, vec![event("AppointmentCreated")], 2);
        webhooks.settle(&stale, Some(200), None, 3);
        assert_eq!(fates(&webhooks), [Fate::Pending], "the stale delivery does not touch the new log");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let mut webhooks = Webhooks::default();
        for url in ["https://example.com/hook", "not a url", "ftp://example.com"] {
            assert!(webhooks.configure(ConfigRequest { url: Some(url.into()), api_changes: true }).is_err(), "{url}");
        }
        assert!(webhooks.configure(ConfigRequest { url: None, api_changes: false }).is_ok());
        assert_eq!((webhooks.url.as_deref(), webhooks.api_changes), (None, false));
    }
}
