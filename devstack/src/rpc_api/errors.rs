//! Error responses as PostgREST gives them: the body `{code, message, details, hint}`, the
//! `Proxy-Status: PostgREST; error=<code>` header, and the HTTP status PostgREST derives from a SQLSTATE
//! (`src/library/PostgREST/Error.hs`, v12-v13).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Option<String>,
    pub hint: Option<String>,
    /// `WWW-Authenticate` value for 401s, as PostgREST sends it.
    pub www_authenticate: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            details: None,
            hint: None,
            www_authenticate: None,
        }
    }

    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A 401 for a token PostgREST refused.
    pub fn invalid_token(code: &str, message: &str) -> Self {
        let mut error = ApiError::new(StatusCode::UNAUTHORIZED, code, message);
        error.www_authenticate = Some(format!(r#"Bearer error="invalid_token", error_description="{message}""#));
        error
    }

    /// An error raised by Postgres. `authenticated` is whether the request's role is not the anonymous one.
    pub fn from_database(error: &tokio_postgres::error::DbError, authenticated: bool) -> Self {
        let code = error.code().code();
        let mut api_error = ApiError::new(status_for_sqlstate(code, error.message(), authenticated), code, error.message());
        api_error.details = error.detail().map(str::to_owned);
        api_error.hint = error.hint().map(str::to_owned);
        if api_error.status == StatusCode::UNAUTHORIZED {
            api_error.www_authenticate = Some("Bearer".to_owned());
        }
        api_error
    }
}

/// PostgREST's SQLSTATE -> HTTP status table. `PTxyz` gives status xyz (a non-numeric xyz gives 500).
pub fn status_for_sqlstate(sqlstate: &str, message: &str, authenticated: bool) -> StatusCode {
    let status = match sqlstate {
        "23503" | "23505" => 409,
        "25006" => 405,
        "21000" if message.ends_with("requires a WHERE clause") => 400,
        "21000" => 500,
        "42883" | "42P01" => 404,
        "42P17" => 500,
        "42501" if authenticated => 403,
        "42501" => 401,
        "53400" => 500,
        "57P01" => 503,
        "P0001" => 400,
        _ => match sqlstate.get(..2).unwrap_or_default() {
            "08" => 503,
            "09" => 500,
            "0L" | "0P" | "28" => 403,
            "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0" | "HV" | "XX" => 500,
            "53" => 503,
            "P0" => 500,
            "PT" => sqlstate[2..].parse::<u16>().ok().filter(|s| (100..=599).contains(s)).unwrap_or(500),
            _ => 400,
        },
    };
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "hint": self.hint,
        });
        let content_type = [(header::CONTENT_TYPE, "application/json; charset=utf-8")];
        let mut response = (self.status, content_type, body.to_string()).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&format!("PostgREST; error={}", self.code)) {
            headers.insert("proxy-status", value);
        }
        if let Some(value) = self.www_authenticate.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pt_codes_carry_their_status() {
        assert_eq!(status_for_sqlstate("PT409", "SLOT_TAKEN", true), StatusCode::CONFLICT);
        assert_eq!(status_for_sqlstate("PT422", "", true), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(status_for_sqlstate("PTabc", "", true), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status_for_sqlstate("PT999", "", true), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn exclusion_violations_are_400_as_in_postgrest() {
        assert_eq!(status_for_sqlstate("23P01", "", true), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn insufficient_privilege_depends_on_the_role() {
        assert_eq!(status_for_sqlstate("42501", "", true), StatusCode::FORBIDDEN);
        assert_eq!(status_for_sqlstate("42501", "", false), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn specific_codes_win_over_their_class() {
        assert_eq!(status_for_sqlstate("25006", "", true), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(status_for_sqlstate("25001", "", true), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status_for_sqlstate("53400", "", true), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status_for_sqlstate("53100", "", true), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_for_sqlstate("57P01", "", true), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_for_sqlstate("57014", "", true), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status_for_sqlstate("21000", "DELETE requires a WHERE clause", true), StatusCode::BAD_REQUEST);
        assert_eq!(status_for_sqlstate("21000", "more than one row", true), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
