//! The worker's settings (wrangler vars and secrets), read in one place into a typed struct. Secrets are
//! `Secret`s: printing a `Config` shows `[redacted]` for each.

use std::time::Duration;

use crate::abuse::AbuseSettings;
use crate::inbound::InboundSettings;
use crate::intakeq::IntakeqSettings;
use crate::support::secret::Secret;
use crate::sync::job::{CallBudget, RetryPolicy};
use crate::sync::record::AttemptSettings;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The Supabase project URL; RPC calls go to `$SUPABASE_URL/rest/v1/rpc/<fn>`.
    pub supabase_url: String,
    pub service_role_key: Secret,
    pub allowed_origins: Vec<String>,
    pub expose_error_debug: bool,
    /// How long a database call may take before the answer is DATABASE_UNAVAILABLE.
    pub database_timeout_ms: u64,
    /// How long a sync job stays reserved for its runner (the booking request, or a cron run).
    pub sync_lease_seconds: u32,
    /// `None` when INTAKEQ_API_KEY is not set: bookings then wait in the outbox, and the cron does nothing.
    pub intakeq: Option<IntakeqSettings>,
    pub sync_batch_size: u32,
    /// A cap on a job's attempts (SYNC_MAX_ATTEMPTS); unset: the retry window alone decides.
    pub sync_max_attempts: Option<u32>,
    /// Backoff between attempts grows to at most this.
    pub sync_max_backoff_minutes: u32,
    /// How long after booking (or a requeue) a job keeps retrying before it is dead.
    pub sync_retry_window_hours: u32,
    /// The bearer token of the staff routes (sync health, requeue); without it they refuse everyone.
    pub admin_token: Option<Secret>,
    /// The bearer token of the practice's own tools (case-manager dashboards): they may book for a patient
    /// record by `patientId`. Without it nobody may.
    pub partner_api_token: Option<Secret>,
    /// The practice's chat webhook for staff alerts; without it alerts are only logged.
    pub staff_alert_webhook_url: Option<Secret>,
    /// IntakeQ's calls a minute and a day, shared by every runner (INTAKEQ_CALLS_PER_MINUTE, _PER_DAY).
    pub intakeq_budget: CallBudget,
    /// How long a booking's answer waits for its first sync attempt; the attempt goes on after the answer.
    pub inline_sync_budget_ms: u64,
    /// The booking route's limits on attempts, and whether Turnstile is on.
    pub abuse: AbuseSettings,
    /// TURNSTILE_SECRET_KEY: with it, a booking needs a Turnstile token that siteverify accepts.
    pub turnstile_secret_key: Option<Secret>,
    /// TURNSTILE_VERIFY_URL: Cloudflare's siteverify unless set (tests point it at the devstack stand-in).
    pub turnstile_verify_url: String,
    /// INTAKEQ_WEBHOOK_SECRET: the path segment IntakeQ's webhooks come to (`/api/intakeq/webhooks/<secret>`),
    /// their only credential. Without it the route answers 404 to everyone.
    pub intakeq_webhook_secret: Option<Secret>,
    /// MANAGE_TOKEN_SECRET: signs each booking's `manageToken` (the patient's key to cancel or reschedule that
    /// appointment). Without it no token is issued, and only the partner and staff tokens may change bookings.
    pub manage_token_secret: Option<Secret>,
    /// The catch-up reads IntakeQ's appointments this many days ahead (INTAKEQ_CATCHUP_DAYS, 60).
    pub intakeq_catchup_days: u32,
    /// And at most this often (INTAKEQ_CATCHUP_MINUTES, 360; 0: every cron run).
    pub intakeq_catchup_minutes: u32,
}

impl Config {
    /// Reads every setting through `lookup` (a var or secret by name); answers the names missing or malformed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Vec<&'static str>> {
        let mut problems = Vec::new();
        let mut required = |name: &'static str| {
            let value = lookup(name).filter(|v| !v.trim().is_empty());
            if value.is_none() {
                problems.push(name);
            }
            value.unwrap_or_default()
        };
        let supabase_url = required("SUPABASE_URL").trim_end_matches('/').to_owned();
        let service_role_key = Secret::new(required("SUPABASE_SERVICE_ROLE_KEY"));
        let number = |name: &'static str, default: u64, problems: &mut Vec<&'static str>| match lookup(name) {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|_| {
                problems.push(name);
                default
            }),
        };
        let database_timeout_ms = number("DATABASE_TIMEOUT_MS", 10_000, &mut problems);
        let sync_lease_seconds = number("SYNC_LEASE_SECONDS", 60, &mut problems) as u32;
        let intakeq_timeout_ms = number("INTAKEQ_TIMEOUT_MS", 8_000, &mut problems);
        let sync_batch_size = number("SYNC_BATCH_SIZE", 5, &mut problems).clamp(1, 100) as u32;
        let sync_max_attempts = lookup("SYNC_MAX_ATTEMPTS").map(|_| number("SYNC_MAX_ATTEMPTS", 0, &mut problems).clamp(1, 10_000) as u32);
        let sync_max_backoff_minutes = number("SYNC_MAX_BACKOFF_MINUTES", 30, &mut problems).clamp(1, 1440) as u32;
        let sync_retry_window_hours = number("SYNC_RETRY_WINDOW_HOURS", 72, &mut problems).clamp(1, 8760) as u32;
        let intakeq_catchup_days = number("INTAKEQ_CATCHUP_DAYS", 60, &mut problems).clamp(1, 366) as u32;
        let intakeq_catchup_minutes = number("INTAKEQ_CATCHUP_MINUTES", 360, &mut problems).min(10_080) as u32;
        let intakeq_budget = CallBudget {
            per_minute: number("INTAKEQ_CALLS_PER_MINUTE", 10, &mut problems).clamp(1, 10_000) as u32,
            per_day: number("INTAKEQ_CALLS_PER_DAY", 500, &mut problems).clamp(1, 1_000_000) as u32,
            // Only tests and benches shorten the budget's minute (with the IntakeQ sandbox's).
            minute_ms: number("INTAKEQ_BUDGET_MINUTE_MS", 60_000, &mut problems).clamp(100, 3_600_000) as u32,
        };
        let inline_sync_budget_ms = number("INLINE_SYNC_BUDGET_MS", 2_000, &mut problems);
        let per_ip_per_minute = number("BOOKING_LIMIT_PER_IP_PER_MINUTE", 10, &mut problems).min(100_000) as u32;
        let per_email_per_hour = number("BOOKING_LIMIT_PER_EMAIL_PER_HOUR", 5, &mut problems).min(10_000) as u32;
        let present = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        // A runner's lease must outlast its attempt (three IntakeQ calls and two database calls at most),
        // or a second runner could start the same job while the first is still at it.
        let attempt_ms = 3 * intakeq_timeout_ms + 2 * database_timeout_ms;
        if present("INTAKEQ_API_KEY").is_some() && u64::from(sync_lease_seconds) * 1000 < attempt_ms {
            problems.push("SYNC_LEASE_SECONDS");
        }
        let intakeq = present("INTAKEQ_API_KEY").map(|api_key| IntakeqSettings {
            base_url: present("INTAKEQ_BASE_URL")
                .unwrap_or_else(|| "https://intakeq.com/api/v1".into())
                .trim_end_matches('/')
                .to_owned(),
            api_key: Secret::new(api_key),
            timeout_ms: intakeq_timeout_ms,
        });
        let config = Config {
            supabase_url,
            service_role_key,
            allowed_origins: lookup("ALLOWED_ORIGINS")
                .unwrap_or_default()
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            expose_error_debug: lookup("EXPOSE_ERROR_DEBUG").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            database_timeout_ms,
            sync_lease_seconds,
            intakeq,
            sync_batch_size,
            sync_max_attempts,
            sync_max_backoff_minutes,
            sync_retry_window_hours,
            admin_token: present("ADMIN_TOKEN").map(Secret::new),
            partner_api_token: present("PARTNER_API_TOKEN").map(Secret::new),
            staff_alert_webhook_url: present("STAFF_ALERT_WEBHOOK_URL").map(Secret::new),
            intakeq_budget,
            inline_sync_budget_ms,
            abuse: AbuseSettings { per_ip_per_minute, per_email_per_hour, turnstile: present("TURNSTILE_SECRET_KEY").is_some() },
            turnstile_secret_key: present("TURNSTILE_SECRET_KEY").map(Secret::new),
            turnstile_verify_url: present("TURNSTILE_VERIFY_URL")
                .unwrap_or_else(|| "https://challenges.cloudflare.com/turnstile/v0/siteverify".into()),
            intakeq_webhook_secret: present("INTAKEQ_WEBHOOK_SECRET").map(Secret::new),
            manage_token_secret: present("MANAGE_TOKEN_SECRET").map(Secret::new),
            intakeq_catchup_days,
            intakeq_catchup_minutes,
        };
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }
}

impl Config {
    /// How a runner (the booking request, or the cron) works a sync job.
    pub fn attempt_settings(&self) -> AttemptSettings {
        let call_ms = self.intakeq.as_ref().map_or(0, |i| i.timeout_ms);
        AttemptSettings {
            policy: RetryPolicy {
                max_attempts: self.sync_max_attempts,
                max_backoff_minutes: self.sync_max_backoff_minutes,
                retry_window_hours: self.sync_retry_window_hours,
            },
            call_and_record: Duration::from_millis(call_ms + self.database_timeout_ms),
            budget: self.intakeq_budget,
            runtime_limit: None,
        }
    }

    /// How the cron re-reads IntakeQ's nudges and catches up.
    pub fn inbound_settings(&self) -> InboundSettings {
        InboundSettings {
            batch_size: self.sync_batch_size,
            lease_seconds: self.sync_lease_seconds,
            budget: self.intakeq_budget,
            call_timeout_ms: self.intakeq.as_ref().map_or(0, |i| i.timeout_ms),
            catch_up_days: self.intakeq_catchup_days,
            catch_up_every_minutes: self.intakeq_catchup_minutes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn settings_are_read_with_their_defaults() {
        let config = Config::from_lookup(lookup(&[
            ("SUPABASE_URL", "http://127.0.0.1:54321/"),
            ("SUPABASE_SERVICE_ROLE_KEY", "key"),
            ("ALLOWED_ORIGINS", "https://book.example.com, http://localhost:3000/ ,"),
        ]))
        .unwrap();
        assert_eq!(config.supabase_url, "http://127.0.0.1:54321");
        assert_eq!(config.allowed_origins, ["https://book.example.com", "http://localhost:3000"]);
        assert!(!config.expose_error_debug);
        assert_eq!((config.database_timeout_ms, config.sync_lease_seconds), (10_000, 60));
        assert_eq!((config.intakeq.clone(), config.sync_batch_size, config.sync_max_attempts), (None, 5, None));
        assert_eq!((config.sync_max_backoff_minutes, config.sync_retry_window_hours), (30, 72));
        assert_eq!(config.admin_token, None);
        assert_eq!(config.intakeq_budget, CallBudget { per_minute: 10, per_day: 500, minute_ms: 60_000 });
        assert_eq!(config.inline_sync_budget_ms, 2_000);
        assert_eq!(config.abuse, AbuseSettings { per_ip_per_minute: 10, per_email_per_hour: 5, turnstile: false });
        assert_eq!((config.intakeq_catchup_days, config.intakeq_catchup_minutes, config.manage_token_secret), (60, 360, None));
    }

    #[test]
    fn intakeq_is_configured_by_its_key() {
        let config = Config::from_lookup(lookup(&[
            ("SUPABASE_URL", "http://127.0.0.1:54321"),
            ("SUPABASE_SERVICE_ROLE_KEY", "key"),
            ("INTAKEQ_API_KEY", "iq-key"),
        ]))
        .unwrap();
        assert_eq!(
            config.intakeq,
            Some(IntakeqSettings { base_url: "https://intakeq.com/api/v1".into(), api_key: Secret::new("iq-key"), timeout_ms: 8000 })
        );
    }

    #[test]
    fn a_lease_shorter_than_an_attempt_is_refused() {
        let problems = Config::from_lookup(lookup(&[
            ("SUPABASE_URL", "u"), ("SUPABASE_SERVICE_ROLE_KEY", "k"), ("SYNC_LEASE_SECONDS", "20"), ("INTAKEQ_API_KEY", "k"),
        ]))
        .unwrap_err();
        assert_eq!(problems, ["SYNC_LEASE_SECONDS"]);
    }

    #[test]
    fn a_printed_config_shows_no_secret() {
        let config = Config::from_lookup(lookup(&[
            ("SUPABASE_URL", "http://127.0.0.1:54321"), ("SUPABASE_SERVICE_ROLE_KEY", "service-key-1"),
            ("INTAKEQ_API_KEY", "iq-key-2"), ("ADMIN_TOKEN", "admin-token-3"), ("PARTNER_API_TOKEN", "partner-token-4"),
            ("TURNSTILE_SECRET_KEY", "turnstile-secret-5"), ("INTAKEQ_WEBHOOK_SECRET", "webhook-secret-6"),
            ("MANAGE_TOKEN_SECRET", "manage-secret-7"),
        ]))
        .unwrap();
        let printed = format!("{config:?}");
        for secret in ["service-key-1", "iq-key-2", "admin-token-3", "partner-token-4", "turnstile-secret-5", "webhook-secret-6", "manage-secret-7"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn missing_or_malformed_settings_are_named() {
        let problems = Config::from_lookup(lookup(&[("DATABASE_TIMEOUT_MS", "soon")])).unwrap_err();
        assert_eq!(problems, ["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "DATABASE_TIMEOUT_MS"]);
    }
}
