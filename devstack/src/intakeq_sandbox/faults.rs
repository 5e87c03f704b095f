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
    "GET /appointments/{id}",
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

/// How many of the sandbox's minutes make the day of the daily limit.
pub const MINUTES_PER_DAY: u32 = 1440;

/// IntakeQ's rate limit: at most `per_minute` requests in any sliding minute and `per_day` in any sliding day
/// (`MINUTES_PER_DAY` minutes). A minute lasts `minute`: a real one unless a test or bench speeds the clock up.
/// Only served requests count.
#[derive(Debug)]
pub struct RateLimit {
    pub per_minute: u32,
    pub per_day: u32,
    pub minute: Duration,
    /// When each request served in the last day arrived, oldest first.
    served: VecDeque<Instant>,
}

impl RateLimit {
    pub fn new(per_minute: u32, per_day: u32, minute: Duration) -> Self {
        RateLimit { per_minute, per_day, minute, served: VecDeque::new() }
    }

    /// The sliding day's length (saturating, for an absurdly long minute).
    pub fn day(&self) -> Duration {
        self.minute.checked_mul(MINUTES_PER_DAY).unwrap_or(Duration::MAX)
    }

    /// Whether a request arriving `now` is served (and then counted). If not, how long until a place frees in
    /// the window that refused it (the later of the two when both did).
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let day = self.day();
        while self.served.front().is_some_and(|t| now.saturating_duration_since(*t) >= day) {
            self.served.pop_front();
        }
        let minute_starts = self.served.partition_point(|t| now.saturating_duration_since(*t) >= self.minute);
        let minute_wait = wait_for_place(self.served.range(minute_starts..), self.per_minute, self.minute, now);
        let day_wait = wait_for_place(self.served.iter(), self.per_day, day, now);
        match minute_wait.max(day_wait) {
            None => {
                self.served.push_back(now);
                Ok(())
            }
            Some(wait) => Err(wait),
        }
    }

    /// Forgets the requests served: both windows are empty again.
    pub fn reset(&mut self) {
        self.served.clear();
    }
}

/// `None` when one more request fits under `limit` beside `in_window` (the requests served in the last `window`,
/// oldest first); otherwise how long until enough of them have left the window. A limit of 0 never frees a
/// place: that answers a whole window.
fn wait_for_place<'a>(
    mut in_window: impl ExactSizeIterator<Item = &'a Instant>,
    limit: u32,
    window: Duration,
    now: Instant,
) -> Option<Duration> {
    let count = in_window.len();
    if count < limit as usize {
        return None;
    }
    if limit == 0 {
        return Some(window);
    }
    // One place is free once the oldest `count - limit + 1` have left: the last of those sets the wait.
    let frees_it = in_window.nth(count - limit as usize).expect("count >= limit");
    Some(window.saturating_sub(now.saturating_duration_since(*frees_it)))
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
        let mut limit = RateLimit::new(2, 500, Duration::from_secs(60));
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        assert_eq!(limit.admit(at(0)), Ok(()));
        assert_eq!(limit.admit(at(10)), Ok(()));
        assert_eq!(limit.admit(at(59)), Err(Duration::from_secs(1)), "the first request leaves the window at 60 s");
        assert_eq!(limit.admit(at(60)), Ok(()));
        assert_eq!(limit.admit(at(61)), Err(Duration::from_secs(9)), "then the one at 10 s, at 70 s");
    }

    #[test]
    fn a_minute_can_be_made_shorter() {
        let mut limit = RateLimit::new(1, 500, Duration::from_millis(300));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(limit.admit(at(0)), Ok(()));
        assert_eq!(limit.admit(at(100)), Err(Duration::from_millis(200)));
        assert_eq!(limit.admit(at(300)), Ok(()));
        assert_eq!(limit.day(), Duration::from_millis(300 * 1440));
    }

    #[test]
    fn the_daily_limit_slides_over_1440_minutes() {
        let mut limit = RateLimit::new(2, 3, Duration::from_millis(10));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        for ms in [0, 20, 40] {
            assert_eq!(limit.admit(at(ms)), Ok(()), "{ms}");
        }
        // The minute has room; the day (14.4 s) does not until the request at 0 leaves it.
        assert_eq!(limit.admit(at(1000)), Err(Duration::from_millis(13_400)));
        assert_eq!(limit.admit(at(14_399)), Err(Duration::from_millis(1)));
        assert_eq!(limit.admit(at(14_400)), Ok(()));
        // The day is full again: the next place frees at 14.42 s, when the request at 20 ms leaves.
        assert_eq!(limit.admit(at(14_405)), Err(Duration::from_millis(15)));
    }

    #[test]
    fn when_both_windows_refuse_the_wait_is_the_later_one() {
        let mut limit = RateLimit::new(1, 1, Duration::from_millis(10));
        let start = Instant::now();
        assert_eq!(limit.admit(start), Ok(()));
        assert_eq!(limit.admit(start + Duration::from_millis(4)), Err(Duration::from_millis(14_396)));
    }

    #[test]
    fn a_zero_limit_refuses_everything_for_a_whole_window() {
        let mut limit = RateLimit::new(0, 500, Duration::from_secs(60));
        assert_eq!(limit.admit(Instant::now()), Err(Duration::from_secs(60)));
        let mut limit = RateLimit::new(10, 0, Duration::from_secs(1));
        assert_eq!(limit.admit(Instant::now()), Err(Duration::from_secs(1440)));
    }

    #[test]
    fn an_absurd_minute_saturates_instead_of_overflowing() {
        let mut limit = RateLimit::new(1, 1, Duration::from_millis(u64::MAX));
        assert_eq!(limit.day(), Duration::MAX);
        let now = Instant::now();
        assert_eq!(limit.admit(now), Ok(()));
        assert!(limit.admit(now).is_err());
    }
}
