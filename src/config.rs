//! The worker's settings (wrangler vars and secrets), read in one place into a typed struct.

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The Supabase project URL; RPC calls go to `$SUPABASE_URL/rest/v1/rpc/<fn>`.
    pub supabase_url: String,
    pub service_role_key: String,
    pub allowed_origins: Vec<String>,
    pub expose_error_debug: bool,
    /// How long a database call may take before the answer is DATABASE_UNAVAILABLE.
    pub database_timeout_ms: u64,
    /// How long a new booking's sync job stays reserved for the request that made it.
    pub sync_lease_seconds: u32,
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
        let service_role_key = required("SUPABASE_SERVICE_ROLE_KEY");
        let number = |name: &'static str, default: u64, problems: &mut Vec<&'static str>| match lookup(name) {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|_| {
                problems.push(name);
                default
            }),
        };
        let database_timeout_ms = number("DATABASE_TIMEOUT_MS", 10_000, &mut problems);
        let sync_lease_seconds = number("SYNC_LEASE_SECONDS", 60, &mut problems) as u32;
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
        };
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
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
    }

    #[test]
    fn missing_or_malformed_settings_are_named() {
        let problems = Config::from_lookup(lookup(&[("DATABASE_TIMEOUT_MS", "soon")])).unwrap_err();
        assert_eq!(problems, ["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "DATABASE_TIMEOUT_MS"]);
    }
}
