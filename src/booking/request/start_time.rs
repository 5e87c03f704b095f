//! The appointment's start: an RFC 3339 timestamp with its offset ("2026-12-01T09:00:00-07:00"), in UTC a year
//! from 1 to 9999 (what the database and RFC 3339 can both write), at most a year ahead. Whether it is still in
//! the future is the database's answer (SLOT_IN_PAST), by its clock.

use chrono::{DateTime, Datelike, Duration, FixedOffset, SecondsFormat, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartTime(DateTime<FixedOffset>);

impl StartTime {
    pub fn parse(raw: &str, now: DateTime<Utc>) -> Result<Self, String> {
        let start = DateTime::parse_from_rfc3339(raw.trim())
            .map_err(|_| "must be an RFC 3339 timestamp with an offset, e.g. 2026-12-01T09:00:00-07:00".to_string())?;
        if !(1..=9999).contains(&start.with_timezone(&Utc).year()) {
            return Err("must be in the years 1 to 9999 (in UTC)".into());
        }
        if start.with_timezone(&Utc) > now + Duration::days(366) {
            return Err("must be within the next year".into());
        }
        Ok(StartTime(start))
    }

    /// The instant in UTC, as sent to the database.
    pub fn utc_rfc3339(&self) -> String {
        self.0.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn timestamps_with_an_offset_parse_to_their_instant() {
        assert_eq!(StartTime::parse("2026-12-01T09:00:00-07:00", now()).unwrap().utc_rfc3339(), "2026-12-01T16:00:00Z");
        assert_eq!(StartTime::parse("2026-12-01T16:00:00Z", now()).unwrap().utc_rfc3339(), "2026-12-01T16:00:00Z");
    }

    #[test]
    fn bad_dates_are_refused() {
        for raw in ["", "2026-12-01", "2026-12-01T09:00:00", "2026-13-01T09:00:00Z", "2026-02-30T09:00:00Z",
                    "tomorrow", "2026-12-01 09:00", "1764604800", "2028-12-01T09:00:00Z",
                    "0000-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "-0001-01-01T00:00:00Z"] {
            assert!(StartTime::parse(raw, now()).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn a_start_in_the_past_is_left_to_the_database() {
        assert!(StartTime::parse("2020-01-01T09:00:00Z", now()).is_ok());
    }

    proptest! {
        #[test]
        fn any_offset_gives_the_same_instant(hours in -12i32..=14, minutes in 0i64..60*24*300) {
            let instant = now() + Duration::minutes(minutes);
            let offset = FixedOffset::east_opt(hours * 3600).unwrap();
            let raw = instant.with_timezone(&offset).to_rfc3339();
            prop_assert_eq!(StartTime::parse(&raw, now()).unwrap().utc_rfc3339(),
                            instant.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
    }
}
