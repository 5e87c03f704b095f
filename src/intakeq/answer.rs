//! Reading an IntakeQ answer: a 2xx with JSON of the expected shape, or the `IntakeqError` it amounts to.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::IntakeqError;

/// `retry_after` is the `Retry-After` header, if any (seconds; an HTTP date is not trusted and ignored).
pub fn read<T: DeserializeOwned>(status: u16, retry_after: Option<&str>, body: &str) -> Result<T, IntakeqError> {
    let json: Option<Value> = serde_json::from_str(body).ok();
    match status {
        200..=299 => json
            .and_then(|value| serde_json::from_value(value).ok())
            .ok_or(IntakeqError::NotJson { status }),
        _ => Err(refusal(status, retry_after, json)),
    }
}

/// An answer whose body does not matter when it is a 2xx (IntakeQ documents none for a cancellation).
pub fn read_done(status: u16, retry_after: Option<&str>, body: &str) -> Result<(), IntakeqError> {
    match status {
        200..=299 => Ok(()),
        _ => Err(refusal(status, retry_after, serde_json::from_str(body).ok())),
    }
}

/// What an answer other than a 2xx means.
fn refusal(status: u16, retry_after: Option<&str>, json: Option<Value>) -> IntakeqError {
    match status {
        429 => IntakeqError::RateLimited { retry_after_seconds: retry_after.and_then(|v| v.trim().parse().ok()) },
        // IntakeQ's own "not found" (its JSON error), not its framework's answer to a path it has no route for
        // (a wrong INTAKEQ_BASE_URL, a retired endpoint), which says nothing about the appointment.
        404 if json.as_ref().and_then(|v| v.get("Message")?.as_str().map(str::to_owned))
            .is_some_and(|m| !m.starts_with("No HTTP resource")) => IntakeqError::NotFound,
        404 => IntakeqError::NotJson { status },
        400..=499 => {
            let message = json
                .as_ref()
                .and_then(|v| v.get("Message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| format!("HTTP {status}"));
            IntakeqError::Rejected { status, message: message.chars().take(200).collect() }
        }
        _ if json.is_none() => IntakeqError::NotJson { status },
        _ => IntakeqError::ServerError { status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intakeq::wire::Client;

    #[test]
    fn answers_map_to_their_meaning() {
        assert_eq!(read::<Vec<Client>>(200, None, r#"[{"ClientId": 7}]"#).unwrap()[0].client_id, 7);
        assert_eq!(read::<Vec<Client>>(200, None, "<html>"), Err(IntakeqError::NotJson { status: 200 }));
        assert_eq!(read::<Vec<Client>>(429, Some("7"), ""), Err(IntakeqError::RateLimited { retry_after_seconds: Some(7) }));
        assert_eq!(read::<Vec<Client>>(429, None, ""), Err(IntakeqError::RateLimited { retry_after_seconds: None }));
        assert_eq!(
            read::<Vec<Client>>(400, None, r#"{"Message": "Invalid ServiceId."}"#),
            Err(IntakeqError::Rejected { status: 400, message: "Invalid ServiceId.".into() })
        );
        assert!(matches!(read::<Vec<Client>>(401, None, ""), Err(IntakeqError::Rejected { status: 401, .. })));
        assert_eq!(read::<Vec<Client>>(500, None, r#"{"Message": "An error has occurred."}"#), Err(IntakeqError::ServerError { status: 500 }));
        assert_eq!(read::<Vec<Client>>(503, None, "<html>503</html>"), Err(IntakeqError::NotJson { status: 503 }));
        assert_eq!(read_done(200, None, ""), Ok(()), "a cancellation's body does not matter");
        assert_eq!(read::<Vec<Client>>(404, None, r#"{"Message": "Appointment not found."}"#), Err(IntakeqError::NotFound));
        assert_eq!(read::<Vec<Client>>(404, None, "<html>Not Found</html>"), Err(IntakeqError::NotJson { status: 404 }),
                   "a 404 page that is not IntakeQ's says nothing about the appointment");
        let route_miss = r#"{"Message": "No HTTP resource was found that matches the request URI 'https://intakeq.com/api/v2/appointments/x'."}"#;
        assert_eq!(read::<Vec<Client>>(404, None, route_miss), Err(IntakeqError::NotJson { status: 404 }),
                   "nor does IntakeQ's answer to a path it has no route for");
        assert!(matches!(read_done(400, None, r#"{"Message": "Appointment not found."}"#), Err(IntakeqError::Rejected { status: 400, .. })));
    }
}
