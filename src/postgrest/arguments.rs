//! The named arguments of our database functions (`p_*`), built from domain types. Only this file knows them.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::booking::request::{BookingRequest, Email, Patient, Phone, Text};
use crate::booking::store::FailureRecord;
use crate::support::request_id::RequestId;
use crate::sync::job::{SyncOutcome, SyncReport};

/// The named arguments of `book_appointment`; absent optional values are left out (their defaults apply).
pub fn book_appointment(booking: &BookingRequest, request_id: &RequestId, sync_lease_seconds: u32) -> Value {
    let mut arguments = json!({
        "p_request_id": request_id.as_str(),
        "p_provider_id": booking.provider_id,
        "p_payer_id": booking.payer.as_argument(),
        "p_start": booking.start.utc_rfc3339(),
        "p_location_type": booking.location_type.as_str(),
        "p_sync_lease_seconds": sync_lease_seconds,
    });
    let object = arguments.as_object_mut().unwrap();
    match &booking.patient {
        Patient::Existing(id) => {
            object.insert("p_patient_id".into(), json!(id));
        }
        Patient::New(p) => {
            let mut patient = json!({
                "first_name": p.first_name.as_str(),
                "last_name": p.last_name.as_str(),
                "email": p.email.as_str(),
            });
            if let Some(phone) = &p.phone {
                patient["phone"] = json!(phone.as_str());
            }
            if let Some(dob) = &p.date_of_birth {
                patient["date_of_birth"] = json!(dob.iso());
            }
            object.insert("p_patient".into(), patient);
        }
    }
    if let Some(key) = &booking.idempotency_key {
        object.insert("p_idempotency_key".into(), json!(key.as_str()));
    }
    if let Some(notes) = &booking.notes {
        object.insert("p_notes".into(), json!(notes.as_str()));
    }
    if booking.member_id.is_some() || booking.group_number.is_some() {
        object.insert(
            "p_insurance".into(),
            json!({ "member_id": booking.member_id.as_ref().map(Text::as_str),
                    "group_number": booking.group_number.as_ref().map(Text::as_str) }),
        );
    }
    if let Some(contact) = &booking.contact {
        object.insert(
            "p_contact".into(),
            json!({ "name": contact.name.as_ref().map(Text::as_str),
                    "email": contact.email.as_ref().map(Email::as_str),
                    "phone": contact.phone.as_ref().map(Phone::as_str) }),
        );
    }
    arguments
}

pub fn record_booking_failure(failure: &FailureRecord) -> Value {
    json!({
        "p_request_id": failure.request_id,
        "p_step": failure.step,
        "p_code": failure.code,
        "p_message": failure.message,
        "p_http_status": failure.http_status,
        "p_detail": failure.detail,
    })
}

pub fn claim_sync_jobs(runner: &str, limit: u32, lease_seconds: u32) -> Value {
    json!({"p_runner": runner, "p_limit": limit, "p_lease_seconds": lease_seconds})
}

pub fn record_sync_result(job_id: Uuid, runner: &str, report: SyncReport<'_>, max_attempts: u32) -> Value {
    let mut arguments = json!({"p_job_id": job_id, "p_runner": runner, "p_max_attempts": max_attempts});
    match report {
        SyncReport::Attempted(SyncOutcome::Synced { pq_appointment_id, client_id }) => {
            arguments["p_outcome"] = json!("synced");
            arguments["p_pq_appointment_id"] = json!(pq_appointment_id);
            arguments["p_intakeq_client_id"] = json!(client_id);
        }
        SyncReport::Attempted(SyncOutcome::Failed { kind, error, client_id, retry_after_seconds, .. }) => {
            arguments["p_outcome"] = json!("failed");
            arguments["p_error_kind"] = json!(kind.as_str());
            arguments["p_error"] = json!(error);
            arguments["p_intakeq_client_id"] = json!(client_id);
            arguments["p_retry_after_seconds"] = json!(retry_after_seconds);
        }
        SyncReport::Released { retry_after_seconds } => {
            arguments["p_outcome"] = json!("released");
            arguments["p_retry_after_seconds"] = json!(retry_after_seconds);
        }
    }
    arguments
}

pub fn requeue_sync_job(appointment_id: Uuid, requested_by: &str) -> Value {
    json!({"p_appointment_id": appointment_id, "p_requested_by": requested_by})
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::booking::request::FieldError;
    use crate::sync::job::FailureKind;
    use crate::testing::full_form;

    fn parse(body: &Value) -> Result<BookingRequest, Vec<FieldError>> {
        let now: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
        BookingRequest::parse(body.to_string().as_bytes(), None, now)
    }

#[test]
fn the_rpc_arguments_carry_the_booking() {
    let request = parse(&full_form()).unwrap();
    let arguments = book_appointment(&request, &RequestId::from_header(Some("req-1")), 45);
    assert_eq!(
        arguments,
        json!({
            "p_request_id": "req-1",
            "p_provider_id": "a1000000-0000-4000-8000-000000000001",
            "p_payer_id": "b2000000-0000-4000-8000-000000000001",
            "p_start": "2026-12-01T16:00:00Z",
            "p_location_type": "telehealth",
            "p_sync_lease_seconds": 45,
            "p_patient": {"first_name": "Riley", "last_name": "Quinn", "email": "riley@example.com",
                          "phone": "+1 555 010 0101", "date_of_birth": "1991-02-03"},
            "p_notes": "Prefers afternoons",
            "p_insurance": {"member_id": "M-1", "group_number": "G-2"},
            "p_contact": {"name": "Casey Manager", "email": "cm@example.com", "phone": null}
        })
    );
    let mut cash = full_form();
    cash["payerId"] = json!("cash-payment");
    assert_eq!(book_appointment(&parse(&cash).unwrap(), &RequestId::from_header(None), 60)["p_payer_id"], "cash-payment");
}

    #[test]
    fn a_sync_report_names_its_outcome() {
        let job = Uuid::nil();
        let failed = SyncOutcome::Failed {
            kind: FailureKind::Ambiguous, error: "POST /appointments: no answer in time".into(),
            client_id: Some("1001".into()), retry_after_seconds: None, rate_limited: false,
        };
        let arguments = record_sync_result(job, "cron-1", SyncReport::Attempted(&failed), 5);
        assert_eq!(
            arguments,
            json!({"p_job_id": job, "p_runner": "cron-1", "p_max_attempts": 5, "p_outcome": "failed",
                   "p_error_kind": "ambiguous", "p_error": "POST /appointments: no answer in time",
                   "p_intakeq_client_id": "1001", "p_retry_after_seconds": null})
        );
        let released = record_sync_result(job, "cron-1", SyncReport::Released { retry_after_seconds: Some(30) }, 5);
        assert_eq!((released["p_outcome"].clone(), released["p_retry_after_seconds"].clone()), (json!("released"), json!(30)));
    }
}
