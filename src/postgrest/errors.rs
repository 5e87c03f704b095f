//! PostgREST's error answers in the store's terms: our functions' scheme (SQLSTATE `PT<status>`, message = the
//! contract's code, hint = the step, details = a diagnostic) becomes `Refused`; 503/504, and a statement or
//! lock timeout or a connection Postgres could not give, `Unavailable`; anything else `Unexpected`.

use serde::Deserialize;

use crate::booking::error::{ErrorCode, Step};
use crate::booking::store::StoreError;

/// Reads a PostgREST error answer: our functions' scheme becomes `Refused`, 503/504 `Unavailable`.
pub fn error_from_postgrest(status: u16, body: &str) -> StoreError {
    #[derive(Deserialize)]
    struct PostgrestError {
        code: Option<String>,
        message: Option<String>,
        details: Option<String>,
        hint: Option<String>,
    }
    let parsed: Option<PostgrestError> = serde_json::from_str(body).ok();
    if let Some(error) = &parsed {
        let in_scheme = error.code.as_deref().is_some_and(|c| c.starts_with("PT"));
        let code = error.message.as_deref().and_then(ErrorCode::parse);
        let step = error.hint.as_deref().and_then(Step::parse);
        if let (true, Some(code), Some(step)) = (in_scheme, code, step) {
            return StoreError::Refused { code, step, detail: error.details.clone() };
        }
    }
    let detail = match &parsed {
        Some(e) => format!("{}: {}", e.code.as_deref().unwrap_or("?"), e.message.as_deref().unwrap_or("")),
        None => format!("a non-JSON answer of {} bytes", body.len()),
    };
    let sqlstate = parsed.as_ref().and_then(|e| e.code.as_deref());
    match (status, sqlstate) {
        (503 | 504, _) => StoreError::Unavailable { detail },
        (_, Some(code)) if UNAVAILABLE_SQLSTATES.contains(&code) => StoreError::Unavailable { detail },
        _ => StoreError::Unexpected { status: Some(status), detail },
    }
}

/// Postgres gave up for now, not for good: a statement timeout or cancel, a lock timeout, no free connection,
/// a server shutting down. Trying again in a moment may succeed.
const UNAVAILABLE_SQLSTATES: [&str; 6] = ["57014", "55P03", "53300", "57P01", "57P02", "57P03"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_errors_are_refusals_with_code_and_step() {
        let body = r#"{"code":"PT409","message":"SLOT_TAKEN","details":"overlap","hint":"conflict_check"}"#;
        assert_eq!(
            error_from_postgrest(409, body),
            StoreError::Refused { code: ErrorCode::SlotTaken, step: Step::ConflictCheck, detail: Some("overlap".into()) }
        );
        let unavailable = r#"{"code":"PT503","message":"DATABASE_UNAVAILABLE","details":"40P01","hint":"appointment_insert"}"#;
        assert!(matches!(error_from_postgrest(503, unavailable), StoreError::Refused { code: ErrorCode::DatabaseUnavailable, .. }));
    }

    #[test]
    fn other_answers_are_unavailable_or_unexpected() {
        assert!(matches!(error_from_postgrest(503, r#"{"code":"PGRST000","message":"down"}"#), StoreError::Unavailable { .. }));
        assert!(matches!(error_from_postgrest(504, "<html>timeout</html>"), StoreError::Unavailable { .. }));
        assert!(matches!(
            error_from_postgrest(401, r#"{"message":"Invalid API key"}"#),
            StoreError::Unexpected { status: Some(401), .. }
        ));
        assert!(matches!(
            error_from_postgrest(400, r#"{"code":"PT400","message":"NOT_A_CODE","hint":"conflict_check"}"#),
            StoreError::Unexpected { .. }
        ));
        for timeout in ["57014", "55P03"] {
            let body = format!(r#"{{"code":"{timeout}","message":"canceling statement due to statement timeout"}}"#);
            assert!(matches!(error_from_postgrest(500, &body), StoreError::Unavailable { .. }), "{timeout}");
        }
    }
}
