//! A setting that must never reach a log line: its `Debug` (and so a `Config` printed whole) says
//! `[redacted]`. The value is read only where it is sent.

use std::fmt;

use super::masking::REDACTED;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: only for the header or comparison that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `given` in time that does not depend on where they differ (for bearer tokens).
    pub fn matches(&self, given: &str) -> bool {
        let expected = self.0.as_bytes();
        expected.len() == given.len() && expected.iter().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("sk-live-123");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some([redacted])");
        assert_eq!(secret.expose(), "sk-live-123");
    }

    #[test]
    fn matching_is_exact() {
        let secret = Secret::new("staff-secret");
        assert!(secret.matches("staff-secret"));
        assert!(!secret.matches("staff-secreT") && !secret.matches("staff-secre") && !secret.matches(""));
    }
}
