//! Keeping floods and bots off the public booking route, before anything is written: a limit on attempts per
//! client address (the platform's rate limiting binding: counted per Cloudflare location, so approximate across
//! locations), a limit per patient email (counted in the database: exact across isolates), and, when the
//! practice turns it on, Cloudflare Turnstile's verdict that a person sent the form. The practice's own tools
//! (the partner token) pass all three. The checks that reach outside are a trait (`Gatekeeper`), implemented in
//! the runtime (`turnstile`: the siteverify client, wasm32 only).

#[cfg(target_arch = "wasm32")]
pub mod turnstile;

use std::time::Duration;

/// The limits, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbuseSettings {
    /// BOOKING_LIMIT_PER_IP_PER_MINUTE (0: off). The binding counts; this says whether to ask it.
    pub per_ip_per_minute: u32,
    /// BOOKING_LIMIT_PER_EMAIL_PER_HOUR (0: off).
    pub per_email_per_hour: u32,
    /// TURNSTILE_SECRET_KEY is set: a booking needs a Turnstile token.
    pub turnstile: bool,
}

impl AbuseSettings {
    pub const OFF: AbuseSettings = AbuseSettings { per_ip_per_minute: 0, per_email_per_hour: 0, turnstile: false };
}

use crate::booking::store::StoreError;

/// What the database says of one more attempt for an email (`note_booking_attempt`). Its exact wait is not
/// read: the worker always advises the whole hour (the exact one would tell when the email's owner tried).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct EmailAttempt {
    pub allowed: bool,
}

/// The per-email count, kept by the database (exact across isolates; the email is stored only as a hash).
#[allow(async_fn_in_trait)]
pub trait AttemptStore {
    /// Counts an attempt for `email` if it is within `limit_per_hour`; a refused one is not counted.
    async fn note_booking_attempt(&self, email: &str, request_id: &str, limit_per_hour: u32) -> Result<EmailAttempt, StoreError>;
}

/// How long a client refused by the per-address limit should wait: the binding's window.
pub const PER_IP_RETRY_AFTER: Duration = Duration::from_secs(60);

#[allow(async_fn_in_trait)]
pub trait Gatekeeper {
    /// Counts an attempt from `address` and says whether it is within the per-address limit. `Err`: the
    /// binding could not be asked (the attempt is let through: the per-email limit still holds).
    async fn address_allowed(&self, address: &str) -> Result<bool, String>;
    /// Turnstile's verdict on `token`: `Ok(true)` a person; `Ok(false)` not; `Err` siteverify could not be
    /// asked (the booking is refused: a bot check that cannot run does not let bots through).
    async fn person_sent(&self, token: &str, address: Option<&str>) -> Result<bool, String>;
}

/// The per-address limit (when it is on): counts an attempt from `address` and answers whether it is refused. A
/// binding that cannot be asked lets the attempt through (the booking route's per-email limit still holds).
pub async fn address_refused(gate: &impl Gatekeeper, abuse: &AbuseSettings, address: Option<&str>) -> bool {
    if abuse.per_ip_per_minute == 0 {
        return false;
    }
    match gate.address_allowed(&address_key(address)).await {
        Ok(allowed) => {
            if !allowed {
                tracing::warn!(step = "rate_limit", outcome = "refused", code = "RATE_LIMITED", limit = "per_address");
            }
            !allowed
        }
        Err(error) => {
            tracing::warn!(step = "rate_limit", outcome = "unchecked", limit = "per_address", error = %error);
            false
        }
    }
}

/// What the per-address limit counts by: an IPv4 address, or an IPv6 address's /64 (one client usually holds a
/// whole /64, and would otherwise have billions of addresses to spread its attempts over).
pub fn address_key(address: Option<&str>) -> String {
    match address.map(str::trim).map(|a| (a, a.parse::<std::net::Ipv6Addr>())) {
        Some((_, Ok(v6))) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some((address, Err(_))) if !address.is_empty() => address.to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// No gate: every check passes (a worker without the binding or Turnstile, and tests of other things).
pub struct Open;

impl Gatekeeper for Open {
    async fn address_allowed(&self, _address: &str) -> Result<bool, String> {
        Ok(true)
    }

    async fn person_sent(&self, _token: &str, _address: Option<&str>) -> Result<bool, String> {
        Ok(true)
    }
}
