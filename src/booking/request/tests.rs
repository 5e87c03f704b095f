use super::*;
use crate::testing::full_form as form;
use serde_json::json;

fn now() -> DateTime<Utc> {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

fn parse(body: &Value) -> Result<BookingRequest, Vec<FieldError>> {
    BookingRequest::parse(body.to_string().as_bytes(), None, now())
}

fn fields(errors: Vec<FieldError>) -> Vec<String> {
    errors.into_iter().map(|e| e.field).collect()
}

#[test]
fn the_form_s_request_parses_and_unknown_fields_are_ignored() {
    let request = parse(&form()).unwrap();
    assert_eq!(request.payer, Payer::Insurer("b2000000-0000-4000-8000-000000000001".parse().unwrap()));
    assert_eq!(request.start.utc_rfc3339(), "2026-12-01T16:00:00Z");
    let Patient::New(patient) = &request.patient else { panic!("a new patient") };
    assert_eq!(patient.email.as_str(), "riley@example.com");
}

#[test]
fn every_problem_is_reported_at_once() {
    let body = json!({
        "patient": {"firstName": "", "lastName": 7, "email": "nope", "dateOfBirth": "1990-02-30"},
        "providerId": "not-a-uuid",
        "start": "tomorrow",
        "locationType": "office",
        "notes": "x".repeat(2001)
    });
    assert_eq!(
        fields(parse(&body).unwrap_err()),
        ["providerId", "payerId", "start", "locationType", "notes", "patient.firstName", "patient.lastName",
         "patient.email", "patient.dateOfBirth"]
    );
}

#[test]
fn a_patient_or_a_patient_id_is_required() {
    let mut body = form();
    body.as_object_mut().unwrap().remove("patient");
    assert_eq!(fields(parse(&body).unwrap_err()), ["patient"]);
    body["patientId"] = json!("e5000000-0000-4000-8000-000000000001");
    assert_eq!(parse(&body).unwrap().patient, Patient::Existing { id: "e5000000-0000-4000-8000-000000000001".parse().unwrap(), details: None });
    body["patientId"] = json!("nope");
    assert_eq!(fields(parse(&body).unwrap_err()), ["patientId"]);
}

#[test]
fn wrong_types_and_non_objects_are_field_errors() {
    let mut body = form();
    body["providerId"] = json!(12);
    body["patient"] = json!("Riley");
    body["contact"] = json!([1]);
    assert_eq!(fields(parse(&body).unwrap_err()), ["patient", "providerId", "contact"]);
    for raw in ["", "{", "[]", "\"text\"", "null"] {
        assert_eq!(fields(BookingRequest::parse(raw.as_bytes(), None, now()).unwrap_err()), ["body"], "{raw:?}");
    }
}

#[test]
fn the_idempotency_header_wins_over_the_body() {
    let mut body = form();
    body["idempotencyKey"] = json!("from-body");
    let request = BookingRequest::parse(body.to_string().as_bytes(), Some("from-header"), now()).unwrap();
    assert_eq!(request.idempotency_key.unwrap().as_str(), "from-header");
    assert_eq!(parse(&body).unwrap().idempotency_key.unwrap().as_str(), "from-body");
    let bad = BookingRequest::parse(body.to_string().as_bytes(), Some("has space"), now()).unwrap_err();
    assert_eq!(fields(bad), ["Idempotency-Key"]);
}

#[test]
fn field_errors_never_repeat_what_was_sent() {
    let mut body = form();
    body["patient"]["email"] = json!("secret-looking@@value");
    body["patient"]["firstName"] = json!("Secret1");
    let errors = parse(&body).unwrap_err();
    let text = serde_json::to_string(&errors).unwrap();
    assert!(!text.contains("secret") && !text.contains("Secret1"), "{text}");
}

#[test]
fn the_log_summary_masks_the_patient() {
    let summary = parse(&form()).unwrap().masked_summary().to_string();
    for clear in ["Riley", "Quinn", "riley@example.com", "555 010 0101", "1991-02-03"] {
        assert!(!summary.contains(clear), "{clear} in {summary}");
    }
}
