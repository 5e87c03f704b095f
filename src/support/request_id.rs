//! The request id that follows a booking from the first log line to the rows it writes: the client's
//! `X-Request-Id` when it is a UUID (in any form `uuid` reads: braced, `urn:uuid:`, upper case, without hyphens;
//! kept in the canonical lower-case hyphenated form) or 1-64 characters of `[A-Za-z0-9._-]`, otherwise a new
//! UUID v4.

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn from_header(header: Option<&str>) -> Self {
        match header.map(str::trim) {
            Some(value) => match Uuid::parse_str(value) {
                Ok(uuid) => RequestId(uuid.hyphenated().to_string()),
                Err(_) if Self::acceptable(value) => RequestId(value.to_owned()),
                Err(_) => RequestId(Uuid::new_v4().to_string()),
            },
            None => RequestId(Uuid::new_v4().to_string()),
        }
    }

    /// What the database's request-id rule accepts (`private.require_request_id`): 1-64 of `[A-Za-z0-9._-]`.
    fn acceptable(value: &str) -> bool {
        (1..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_new_v4(id: &RequestId) -> bool {
        Uuid::parse_str(id.as_str()).is_ok_and(|u| u.get_version_num() == 4)
    }

    #[test]
    fn a_well_formed_client_id_is_kept() {
        for value in ["abc-123", "req_1.2", "0f8fad5b-d9cb-469f-a165-70867728950e", &"a".repeat(64)] {
            assert_eq!(RequestId::from_header(Some(value)).as_str(), value);
        }
    }

    #[test]
    fn a_uuid_in_any_form_is_kept_in_its_canonical_form() {
        let canonical = "0f8fad5b-d9cb-469f-a165-70867728950e";
        for value in ["{0f8fad5b-d9cb-469f-a165-70867728950e}", "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
                      "0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5bd9cb469fa16570867728950e"] {
            assert_eq!(RequestId::from_header(Some(value)).as_str(), canonical, "{value}");
        }
    }

    #[test]
    fn anything_else_gets_a_new_uuid() {
        for value in [None, Some(""), Some("has space"), Some("semi;colon"), Some("ünïcode"), Some(&*"a".repeat(65))] {
            assert!(is_new_v4(&RequestId::from_header(value)), "{value:?}");
        }
        assert_ne!(RequestId::from_header(None), RequestId::from_header(None), "each generated id is new");
    }

    proptest! {
        #[test]
        fn the_result_is_always_safe_to_log_and_store(value in ".{0,80}") {
            let id = RequestId::from_header(Some(&value));
            prop_assert!(RequestId::acceptable(id.as_str()));
        }
    }
}
