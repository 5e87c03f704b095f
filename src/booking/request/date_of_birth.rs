//! A date of birth: `YYYY-MM-DD`, a real calendar date, not before 1900 and not after today.

use chrono::NaiveDate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateOfBirth(NaiveDate);

impl DateOfBirth {
    pub fn parse(raw: &str, today: NaiveDate) -> Result<Self, String> {
        let well_formed = raw.len() == 10 && raw.chars().enumerate().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() });
        let date = well_formed
            .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
            .flatten()
            .ok_or_else(|| "must be a date as YYYY-MM-DD".to_string())?;
        if date > today {
            return Err("must not be in the future".into());
        }
        if date < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() {
            return Err("must not be before 1900".into());
        }
        Ok(DateOfBirth(date))
    }

    pub fn iso(&self) -> String {
        self.0.format("%Y-%m-%d").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
    }

    #[test]
    fn real_past_dates_parse() {
        assert_eq!(DateOfBirth::parse("1990-04-12", today()).unwrap().iso(), "1990-04-12");
        assert_eq!(DateOfBirth::parse("2026-11-24", today()).unwrap().iso(), "2026-11-24");
    }

    #[test]
    fn impossible_or_future_dates_are_refused() {
        for raw in ["", "1990-02-30", "1990-13-01", "1990-4-12", "12/04/1990", "today", "1899-12-31", "2026-11-25",
                    "1990-04-12T00:00:00Z", "+1990-04-12"] {
            assert!(DateOfBirth::parse(raw, today()).is_err(), "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn every_real_date_in_range_round_trips(days in 0i64..45_000) {
            let date = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(days);
            prop_assume!(date <= today());
            let iso = date.format("%Y-%m-%d").to_string();
            prop_assert_eq!(DateOfBirth::parse(&iso, today()).unwrap().iso(), iso);
        }
    }
}
