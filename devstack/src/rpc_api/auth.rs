//! Who is calling: the gateway's `apikey` check, then PostgREST's JWT check.
//!
//! Supabase's gateway refuses a request without an `apikey` or with one it does not know; PostgREST then
//! verifies `Authorization: Bearer <jwt>` (HS256 with the project's JWT secret) and takes the `role` claim.
//! Clients send both; without `Authorization` the `apikey` is used as the bearer token, as with Supabase's
//! legacy keys. Keys of `supabase start` (its default secret, `iss` `supabase-demo`) are accepted as they are.

use axum::http::{HeaderMap, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

use super::errors::ApiError;

/// The JWT secret `supabase start` uses by default.
pub const SUPABASE_DEMO_JWT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";
/// The role PostgREST uses for a token without a `role` claim.
pub const ANONYMOUS_ROLE: &str = "anon";
/// When the demo keys of `supabase start` expire (2032-11-12).
const DEMO_KEY_EXPIRY: i64 = 1_983_812_996;

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: String,
    pub claims: Value,
}

impl Caller {
    pub fn is_anonymous(&self) -> bool {
        self.role == ANONYMOUS_ROLE
    }
}

#[derive(Clone)]
pub struct JwtSecret {
    decoding: DecodingKey,
    encoding: EncodingKey,
}

impl JwtSecret {
    pub fn new(secret: &str) -> Self {
        JwtSecret {
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token for `claims`, signed with this secret.
    pub fn sign(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).expect("HS256 signing")
    }

    /// The API key `supabase start` prints for `role` (`anon` or `service_role`) when signed with its
    /// secret: the same claims in the same order, so the same token.
    pub fn demo_key(&self, role: &str) -> String {
        use base64::engine::{general_purpose::URL_SAFE_NO_PAD, Engine};
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"supabase-demo","role":"{role}","exp":{DEMO_KEY_EXPIRY}}}"#
        ));
        let signing_input = format!("{header}.{payload}");
        let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &self.encoding, Algorithm::HS256)
            .expect("HS256 signing");
        format!("{signing_input}.{signature}")
    }

    fn verify(&self, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        validation.leeway = 30;
        Ok(jsonwebtoken::decode::<Value>(token, &self.decoding, &validation)?.claims)
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let apikey = headers.get("apikey").and_then(|v| v.to_str().ok()).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "NO_API_KEY", "No API key found in request")
                .hint("No `apikey` request header or url param was found.")
        })?;
        if self.verify(apikey).is_err() {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_API_KEY", "Invalid API key")
                .hint("Double check your Supabase `anon` or `service_role` API key."));
        }
        let token = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            None => apikey,
            Some(value) => value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim)
                .ok_or_else(|| ApiError::invalid_token("PGRST301", "Expected a Bearer token"))?,
        };
        let claims = self.verify(token).map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::ExpiredSignature => ApiError::invalid_token("PGRST303", "JWT expired"),
                ErrorKind::InvalidSignature => ApiError::invalid_token("PGRST301", "JWSError JWSInvalidSignature"),
                _ => ApiError::invalid_token("PGRST301", "JWSError JWSInvalidJWT"),
            }
        })?;
        let role = claims.get("role").and_then(Value::as_str).unwrap_or(ANONYMOUS_ROLE).to_owned();
        Ok(Caller { role, claims })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys `supabase start` prints, so that one `.dev.vars` fits both it and this stand-in.
    const SUPABASE_START_ANON_KEY: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0";
    const SUPABASE_START_SERVICE_ROLE_KEY: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU";

    #[test]
    fn demo_keys_are_those_of_supabase_start() {
        let secret = JwtSecret::new(SUPABASE_DEMO_JWT_SECRET);
        assert_eq!(secret.demo_key("anon"), SUPABASE_START_ANON_KEY);
        assert_eq!(secret.demo_key("service_role"), SUPABASE_START_SERVICE_ROLE_KEY);
    }

    #[test]
    fn the_role_comes_from_the_bearer_token_and_the_apikey_stands_in_for_it() {
        let secret = JwtSecret::new(SUPABASE_DEMO_JWT_SECRET);
        let mut headers = HeaderMap::new();
        headers.insert("apikey", SUPABASE_START_ANON_KEY.parse().unwrap());
        assert_eq!(secret.authenticate(&headers).unwrap().role, "anon");
        headers.insert("authorization", format!("Bearer {SUPABASE_START_SERVICE_ROLE_KEY}").parse().unwrap());
        assert_eq!(secret.authenticate(&headers).unwrap().role, "service_role");
    }
}
