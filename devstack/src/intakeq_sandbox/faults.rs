//! Faults a test can ask the sandbox to inject, and IntakeQ's rate limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The API's endpoints, as faults name them ("*" names them all).
pub const ENDPOINTS: &[&str] = &[
    "GET /clients",
    "POST /clients",
    "GET /appointments/settings",
    "POST /appointments",
    "GET /appointments",
    "PUT /appointments",
    "POST /appointments/cancellation",
    "POST /intakes/send",
    "GET /intakes/summary",
    "GET /questionnaires",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 500 with IntakeQ's JSON error body.
    ServerError,
    /// 429, with `Retry-After` when `retryAfterSeconds` is given.
    RateLimited,
    /// 503 with an HTML page, as during an outage.
    NonJson,
    /// 400 `{"Message": "Invalid ServiceId."}`: a permanent rejection. On `POST /intakes/send` the message is
    /// the one that endpoint's permanent rejection has, `Invalid QuestionnaireId.`.
    InvalidServiceId,
    /// Nothing happens; the answer (a 504) comes only after `delayMs`, past the caller's timeout.
    Hang,
    /// The request is carried out at once, but answered only after `delayMs`: the caller that gave up does
    /// not know it succeeded (the trap that makes blind retries create duplicates).
    SucceedLate,
    /// The call waits `delayMs`, then is carried out and answered as if IntakeQ were healthy (the rate limit
    /// still applies). A caller that gives up during the wait leaves nothing carried out.
    Slow,
    /// 401 with IntakeQ's body for a bad `X-Auth-Key`, nothing carried out: with `"*"` and a count, a rotated
    /// or revoked API key until the count is spent.
    Unauthorized,
}

/// `POST /_sandbox/faults`: the next `count` calls of `endpoint` get `fault`. Each call gets at most one
/// fault: the first planned one that names its endpoint or `"*"`, which then has one count fewer. A large
/// `count` (up to 4294967295) means "every call, until the faults are cleared".
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRequest {
    pub endpoint: String,
    pub fault: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
    pub delay_ms: Option<u64>,
    pub retry_after_seconds: Option<u64>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Default)]
pub struct Faults {
    planned: Vec<FaultRequest>,
}

impl Faults {
    pub fn plan(&mut self, request: FaultRequest) -> Result<(), String> {
        if request.endpoint != "*" && !ENDPOINTS.contains(&request.endpoint.as_str()) {
            return Err(format!("unknown endpoint {:?}; one of {ENDPOINTS:?} or \"*\"", request.endpoint));
        }
        self.planned.push(request);
        Ok(())
    }

    /// The fault the next call of `endpoint` gets, if any, counted off its plan.
    pub fn take(&mut self, endpoint: &str) -> Option<FaultRequest> {
        let index = self.planned.iter().position(|f| f.count > 0 && (f.endpoint == endpoint || f.endpoint == "*"))?;
        let fault = &mut self.planned[index];
        fault.count -= 1;
        let taken = fault.clone();
        self.planned.retain(|f| f.count > 0);
        Some(taken)
    }

    pub fn clear(&mut self) {
        self.planned.clear();
    }
}

/// IntakeQ's per-minute request limit, over a sliding minute.
#[derive(Debug)]
pub struct RateLimit {
    pub per_minute: u32,
    recent: VecDeque<Instant>,
}

impl RateLimit {
    pub fn new(per_minute: u32) -> Self {
        RateLimit { per_minute, recent: VecDeque::new() }
    }

    /// Whether a request arriving `now` is served (and then counted).
    pub fn admit(&mut self, now: Instant) -> bool {
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.per_minute as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    pub fn reset(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_applies_to_its_endpoint_for_its_count() {
        let mut faults = Faults::default();
        let request = FaultRequest {
            endpoint: "POST /appointments".into(),
            fault: FaultKind::ServerError,
            count: 2,
            delay_ms: None,
            retry_after_seconds: None,
        };
        faults.plan(request).unwrap();
        assert!(faults.take("GET /clients").is_none());
        assert!(faults.take("POST /appointments").is_some());
        assert!(faults.take("POST /appointments").is_some());
        assert!(faults.take("POST /appointments").is_none());
    }

    #[test]
    fn a_star_fault_applies_to_every_endpoint_and_the_first_planned_fault_wins() {
        let mut faults = Faults::default();
        let plan = |endpoint: &str, fault, count| FaultRequest {
            endpoint: endpoint.into(),
            fault,
            count,
            delay_ms: Some(10),
            retry_after_seconds: None,
        };
        faults.plan(plan("*", FaultKind::Slow, 2)).unwrap();
        faults.plan(plan("POST /appointments", FaultKind::Unauthorized, 1)).unwrap();
        assert_eq!(faults.take("GET /clients").map(|f| f.fault), Some(FaultKind::Slow));
        assert_eq!(faults.take("POST /appointments").map(|f| f.fault), Some(FaultKind::Slow));
        assert_eq!(faults.take("POST /appointments").map(|f| f.fault), Some(FaultKind::Unauthorized));
        assert!(faults.take("POST /appointments").is_none());
        assert!(faults.take("GET /clients").is_none());
    }

    #[test]
    fn the_questionnaire_endpoints_take_faults() {
        let mut faults = Faults::default();
        for endpoint in ["POST /intakes/send", "GET /intakes/summary", "GET /questionnaires"] {
            let request = FaultRequest {
                endpoint: endpoint.into(),
                fault: FaultKind::SucceedLate,
                count: 1,
                delay_ms: None,
                retry_after_seconds: None,
            };
            faults.plan(request).unwrap();
            assert_eq!(faults.take(endpoint).map(|f| f.fault), Some(FaultKind::SucceedLate), "{endpoint}");
        }
    }

    #[test]
    fn fault_names_are_snake_case() {
        let request: FaultRequest =
            serde_json::from_value(serde_json::json!({"endpoint": "*", "fault": "unauthorized", "count": 4_294_967_295_u32}))
                .unwrap();
        assert_eq!((request.fault, request.count), (FaultKind::Unauthorized, u32::MAX));
        let slow: FaultRequest = serde_json::from_value(serde_json::json!({"endpoint": "*", "fault": "slow", "delayMs": 5})).unwrap();
        assert_eq!((slow.fault, slow.count, slow.delay_ms), (FaultKind::Slow, 1, Some(5)));
    }

    #[test]
    fn the_rate_limit_frees_a_place_a_minute_after_each_request() {
        let mut limit = RateLimit::new(2);
        let start = Instant::now();
        assert!(limit.admit(start));
        assert!(limit.admit(start + Duration::from_secs(10)));
        assert!(!limit.admit(start + Duration::from_secs(59)));
        assert!(limit.admit(start + Duration::from_secs(60)));
        assert!(!limit.admit(start + Duration::from_secs(61)));
    }
}
