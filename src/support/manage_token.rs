//! A booking's manage token: the patient's key to cancel or reschedule that one appointment, and nothing else.
//! It is `m1.` and the HMAC-SHA256 of the appointment's id under MANAGE_TOKEN_SECRET, in URL-safe base64: opaque,
//! unguessable without the secret, valid for no other appointment, and kept nowhere (it is recomputed to check).
//! Rotating the secret revokes every token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::secret::Secret;

const PREFIX: &str = "m1.";

fn mac(secret: &Secret, appointment_id: Uuid) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"book-v2 manage token\0");
    mac.update(appointment_id.as_hyphenated().to_string().as_bytes());
    mac
}

/// The manage token of `appointment_id`.
pub fn issue(secret: &Secret, appointment_id: Uuid) -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(mac(secret, appointment_id).finalize().into_bytes()))
}

/// Is `token` the manage token of `appointment_id`? Compared in constant time.
pub fn allows(secret: &Secret, appointment_id: Uuid, token: &str) -> bool {
    let Some(signature) = token.strip_prefix(PREFIX).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok()) else { return false };
    mac(secret, appointment_id).verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Uuid = Uuid::from_u128(0x3ca6a61f_dbfb_4c18_9db1_3e0589df99e3);
    const OTHER: Uuid = Uuid::from_u128(0x3ca6a61f_dbfb_4c18_9db1_3e0589df99e4);

    #[test]
    fn a_token_opens_its_own_appointment_and_no_other() {
        let secret = Secret::new("manage-secret");
        let token = issue(&secret, ONE);
        assert!(token.starts_with("m1.") && token.len() == 46, "{token}");
        assert!(allows(&secret, ONE, &token));
        assert!(!allows(&secret, OTHER, &token), "another appointment's token");
        assert!(!allows(&Secret::new("rotated"), ONE, &token), "a rotated secret revokes it");
        for forged in ["", "m1.", "m1.!!!", &token[..token.len() - 1], &token.replace("m1.", "m2."), &format!("{token}A")] {
            assert!(!allows(&secret, ONE, forged), "{forged:?}");
        }
    }
}
