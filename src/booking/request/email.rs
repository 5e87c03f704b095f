//! An email address: RFC 5321/5322 syntax (the `email_address` crate), at most 254 characters, no whitespace
//! or quoted parts, and a domain with a dot: what the practice can actually send a confirmation to. Kept in
//! Unicode's composed form (NFC), as names are.

use email_address::EmailAddress;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let composed: String = raw.trim().nfc().collect();
        let trimmed = composed.as_str();
        if trimmed.is_empty() {
            return Err("is required".into());
        }
        if trimmed.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let plain = !trimmed.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"');
        let domain_has_dot = trimmed.rsplit_once('@').is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
        if !plain || !domain_has_dot || !EmailAddress::is_valid(trimmed) {
            return Err("must be a valid email address".into());
        }
        Ok(Email(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_addresses_parse_trimmed() {
        for email in ["jane@example.com", "Jane.Doe+intake@clinic.example.org", "a@b.co"] {
            assert_eq!(Email::parse(&format!(" {email} ")).unwrap().as_str(), email);
        }
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for email in ["", "jane", "jane@", "@example.com", "jane@example", "jane doe@example.com",
                      "\"jane\"@example.com", "jane@@example.com", "jane@example.com.", "jane@exa mple.com"] {
            assert!(Email::parse(email).is_err(), "{email:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    proptest! {
        #[test]
        fn generated_addresses_parse(local in "[a-z0-9]{1,20}([.+_-][a-z0-9]{1,10})?", domain in "[a-z0-9]{1,20}", tld in "[a-z]{2,6}") {
            let email = format!("{local}@{domain}.{tld}");
            let parsed = Email::parse(&email).unwrap();
            prop_assert_eq!(parsed.as_str(), email.as_str());
        }

        #[test]
        fn anything_without_an_at_sign_is_refused(text in "[^@]{0,60}") {
            prop_assert!(Email::parse(&text).is_err());
        }
    }
}
