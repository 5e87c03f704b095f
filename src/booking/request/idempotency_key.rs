//! An idempotency key: 1-255 visible ASCII characters (from the `Idempotency-Key` header, or the body).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(IdempotencyKey(raw.to_owned()))
        } else {
            Err("must be 1-255 visible ASCII characters".into())
        }
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
    fn keys_are_visible_ascii() {
        assert!(IdempotencyKey::parse("2b7c9a4e-booking-1").is_ok());
        for raw in ["", "has space", "tab\t", "ünï", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(raw).is_err(), "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn any_visible_ascii_key_parses(key in "[!-~]{1,255}") {
            let parsed = IdempotencyKey::parse(&key).unwrap();
            prop_assert_eq!(parsed.as_str(), key.as_str());
        }
    }
}
