//! What the core needs from workerd: the time (JavaScript's `Date`) and a log subscriber writing JSON lines
//! with `console.log`.

use chrono::{DateTime, Utc};
use tracing_subscriber::prelude::*;

use crate::clock::Clock;
use crate::logging::JsonLines;

pub struct JsClock;

impl Clock for JsClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default()
    }
}

/// Installs the log subscriber once per isolate.
pub fn install_logging() {
    let layer = JsonLines::new(|line| worker::console_log!("{}", line), || JsClock.rfc3339());
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
