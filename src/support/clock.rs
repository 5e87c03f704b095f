//! The time, from wherever the runtime keeps it (in workerd: JavaScript's `Date`; `SystemTime` panics there).

use chrono::{DateTime, SecondsFormat, Utc};

pub trait Clock {
    fn now(&self) -> DateTime<Utc>;

    fn rfc3339(&self) -> String {
        self.now().to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}
