//! The named arguments of our database functions (`p_*`), built from domain types. Only this file knows them.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::booking::change::ChangedBy;
use crate::booking::request::start_time::StartTime;
use crate::booking::request::{BookingRequest, Email, Patient, Phone, Text};
use crate::booking::store::FailureRecord;
use crate::inbound::{ClaimedNudge, Nudge};
use crate::intakeq::wire::Appointment;
use crate::support::request_id::RequestId;
use crate::sync::job::{CallBudget, CallsMade, FailureKind, IntakeOutcome, RetryPolicy, SyncJob, SyncOutcome};

/// The named arguments of `book_appointment`; absent optional values are left out (their defaults apply).
pub fn book_appointment(booking: &BookingRequest, request_id: &RequestId, call: Uuid, sync_lease_seconds: u32) -> Value {
    let mut arguments = json!({
        "p_request_id": request_id.as_str(),
        "p_call_id": call,
        "p_provider_id": booking.provider_id,
        "p_payer_id": booking.payer.as_argument(),
        "p_start": booking.start.utc_rfc3339(),
        "p_location_type": booking.location_type.as_str(),
        "p_sync_lease_seconds": sync_lease_seconds,
    });
    let object = arguments.as_object_mut().unwrap();
    let (patient_id, details) = match &booking.patient {
        Patient::Existing { id, details } => (Some(id), details.as_ref()),
        Patient::New(p) => (None, Some(p)),
    };
    if let Some(id) = patient_id {
        object.insert("p_patient_id".into(), json!(id));
    }
    if let Some(p) = details {
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

pub fn note_intakeq_webhook(nudge: &Nudge, request_id: &str) -> Value {
    json!({"p_pq_appointment_id": nudge.pq_appointment_id, "p_event_type": nudge.event_type,
           "p_by_client": nudge.by_client, "p_request_id": request_id})
}

pub fn apply_intakeq_event(nudge: &ClaimedNudge, now: Option<&Appointment>) -> Value {
    json!({"p_event_id": nudge.event_id, "p_lease_token": nudge.lease_token, "p_appointment": now})
}

pub fn release_intakeq_event(nudge: &ClaimedNudge, error: &str, retry_after_seconds: Option<u64>) -> Value {
    json!({"p_event_id": nudge.event_id, "p_lease_token": nudge.lease_token, "p_error": error, "p_retry_after_seconds": retry_after_seconds})
}

pub fn reserve_intakeq_budget(holder: &str, lease_token: Uuid, calls: u32, hold_seconds: u32, budget: &CallBudget) -> Value {
    let mut arguments = json!({"p_holder": holder, "p_lease_token": lease_token, "p_calls": calls, "p_hold_seconds": hold_seconds});
    extend(&mut arguments, intakeq_budget(budget));
    arguments
}

pub fn cancel_appointment(appointment_id: Uuid, reason: Option<&str>, by: ChangedBy, request_id: &str) -> Value {
    json!({"p_appointment_id": appointment_id, "p_reason": reason, "p_requested_by": by.as_str(), "p_request_id": request_id})
}

pub fn reschedule_appointment(appointment_id: Uuid, start: &StartTime, by: ChangedBy, request_id: &str) -> Value {
    json!({"p_appointment_id": appointment_id, "p_start": start.utc_rfc3339(), "p_requested_by": by.as_str(), "p_request_id": request_id})
}

pub fn note_booking_attempt(email: &str, request_id: &str, limit_per_hour: u32) -> Value {
    json!({"p_email": email, "p_request_id": request_id, "p_limit_per_hour": limit_per_hour})
}

pub fn booking_by_request(request_id: &RequestId, booking: &BookingRequest, call: Uuid, wait_ms: u64) -> Value {
    let (patient_id, email) = match &booking.patient {
        Patient::Existing { id, details } => (Some(id), details.as_ref().map(|d| d.email.as_str())),
        Patient::New(p) => (None, Some(p.email.as_str())),
    };
    json!({"p_request_id": request_id.as_str(), "p_wait_ms": wait_ms, "p_provider_id": booking.provider_id,
           "p_start": booking.start.utc_rfc3339(), "p_email": email, "p_patient_id": patient_id, "p_call_id": call})
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

pub fn claim_sync_jobs(runner: &str, limit: u32, lease_seconds: u32, policy: &RetryPolicy, budget: &CallBudget) -> Value {
    let mut arguments = json!({"p_runner": runner, "p_limit": limit, "p_lease_seconds": lease_seconds,
           "p_retry_window_hours": policy.retry_window_hours, "p_max_attempts": policy.max_attempts,
           "p_max_backoff_minutes": policy.max_backoff_minutes});
    extend(&mut arguments, intakeq_budget(budget));
    arguments
}

/// The call budget's settings, as every budget function takes them.
pub fn intakeq_budget(budget: &CallBudget) -> Value {
    json!({"p_calls_per_minute": budget.per_minute, "p_calls_per_day": budget.per_day, "p_minute_ms": budget.minute_ms})
}

pub fn reserve_intakeq_calls(job: &SyncJob, runner: &str, calls: Option<u32>, budget: &CallBudget) -> Value {
    let mut arguments = json!({"p_job_id": job.job_id, "p_runner": runner, "p_lease_token": job.lease_token, "p_calls": calls});
    extend(&mut arguments, intakeq_budget(budget));
    arguments
}

fn extend(arguments: &mut Value, more: Value) {
    if let (Some(arguments), Value::Object(more)) = (arguments.as_object_mut(), more) {
        arguments.extend(more);
    }
}

pub fn record_sync_result(job: &SyncJob, runner: &str, outcome: &SyncOutcome, calls: &CallsMade, policy: &RetryPolicy) -> Value {
    let mut arguments = json!({
        "p_job_id": job.job_id, "p_runner": runner, "p_lease_token": job.lease_token,
        "p_max_attempts": policy.max_attempts, "p_max_backoff_minutes": policy.max_backoff_minutes,
        "p_retry_window_hours": policy.retry_window_hours, "p_intakeq_answered": calls.intakeq_answered,
        "p_intakeq_calls_made": calls.made, "p_rate_limited_seconds": calls.rate_limited_seconds,
    });
    let fields: Value = match outcome {
        SyncOutcome::Synced { pq_appointment_id, client_id, intake, appointment } => {
            let mut synced = json!({"p_outcome": "synced", "p_pq_appointment_id": pq_appointment_id, "p_intakeq_client_id": client_id,
                                    "p_intakeq_appointment": appointment});
            match intake {
                Some(IntakeOutcome::Sent { intake_id }) => {
                    synced["p_intake_outcome"] = json!("sent");
                    synced["p_intakeq_intake_id"] = json!(intake_id);
                }
                Some(IntakeOutcome::Failed { kind, error, lookup_completed, retry_after_seconds }) => {
                    synced["p_intake_outcome"] = json!(match kind {
                        FailureKind::Transient | FailureKind::Ambiguous | FailureKind::Permanent => "failed",
                        FailureKind::Authentication => "auth_failed",
                        FailureKind::RateLimited | FailureKind::LeaseTooShort | FailureKind::NoBudget => "released",
                    });
                    synced["p_intake_error"] = json!(error);
                    synced["p_intake_error_kind"] = json!(kind.as_str());
                    synced["p_intake_lookup_completed"] = json!(lookup_completed);
                    synced["p_intake_retry_after_seconds"] = json!(retry_after_seconds);
                }
                None => {}
            }
            synced
        }
        SyncOutcome::Cancelled { found_upstream, client_id } => json!({
            "p_outcome": "cancelled", "p_pq_appointment_id": found_upstream.as_ref().map(|a| &a.id),
            "p_intakeq_client_id": client_id, "p_intakeq_appointment": found_upstream,
        }),
        SyncOutcome::Applied { pq_appointment_id, now, written } => json!({
            "p_outcome": "applied", "p_pq_appointment_id": pq_appointment_id, "p_intakeq_appointment": now,
            "p_intakeq_written": written,
        }),
        SyncOutcome::Failed { kind, error, client_id, retry_after_seconds, lookup_completed } => match kind {
            FailureKind::Transient | FailureKind::Ambiguous | FailureKind::Permanent => json!({
                "p_outcome": "failed", "p_error_kind": kind.as_str(), "p_error": error,
                "p_intakeq_client_id": client_id, "p_retry_after_seconds": retry_after_seconds,
                "p_lookup_completed": lookup_completed,
            }),
            FailureKind::Authentication => json!({"p_outcome": "auth_failed", "p_error": error}),
            FailureKind::RateLimited | FailureKind::LeaseTooShort | FailureKind::NoBudget => json!({
                "p_outcome": "released", "p_error": error, "p_retry_after_seconds": retry_after_seconds,
                "p_intakeq_client_id": client_id,
            }),
        },
    };
    extend(&mut arguments, fields);
    arguments
}

pub fn requeue_sync_job(appointment_id: Uuid, requested_by: &str) -> Value {
    json!({"p_appointment_id": appointment_id, "p_requested_by": requested_by})
}

pub fn claim_staff_alerts(runner: &str, limit: u32, lease_seconds: u32) -> Value {
    json!({"p_runner": runner, "p_limit": limit, "p_lease_seconds": lease_seconds})
}

pub fn record_staff_alert(alert: Uuid, delivered: Result<(), &str>) -> Value {
    json!({"p_alert_id": alert, "p_delivered": delivered.is_ok(), "p_error": delivered.err()})
}

pub fn requeue_dead_sync_jobs(since: DateTime<Utc>, requested_by: &str) -> Value {
    json!({"p_since": since, "p_requested_by": requested_by})
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
    let call: Uuid = "ca110000-0000-4000-8000-000000000001".parse().unwrap();
    let arguments = book_appointment(&request, &RequestId::from_header(Some("req-1")), call, 45);
    assert_eq!(
        arguments,
        json!({
            "p_request_id": "req-1",
            "p_call_id": "ca110000-0000-4000-8000-000000000001",
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
    assert_eq!(book_appointment(&parse(&cash).unwrap(), &RequestId::from_header(None), call, 60)["p_payer_id"], "cash-payment");
}

    #[test]
    fn a_sync_report_names_its_outcome_and_carries_the_lease_token() {
        let job = crate::testing::job(false);
        let policy = RetryPolicy { max_attempts: None, max_backoff_minutes: 30, retry_window_hours: 72 };
        let failed = SyncOutcome::Failed {
            kind: FailureKind::Ambiguous, error: "POST /appointments: no answer in time".into(),
            client_id: Some("1001".into()), retry_after_seconds: None, lookup_completed: true,
        };
        assert_eq!(
            record_sync_result(&job, "cron-1", &failed, &CallsMade { intakeq_answered: true, made: 3, rate_limited_seconds: None }, &policy),
            json!({"p_job_id": job.job_id, "p_runner": "cron-1", "p_lease_token": job.lease_token, "p_max_attempts": null,
                   "p_max_backoff_minutes": 30, "p_retry_window_hours": 72, "p_intakeq_answered": true,
                   "p_intakeq_calls_made": 3, "p_rate_limited_seconds": null, "p_outcome": "failed",
                   "p_error_kind": "ambiguous", "p_error": "POST /appointments: no answer in time",
                   "p_intakeq_client_id": "1001", "p_retry_after_seconds": null, "p_lookup_completed": true})
        );
        let outcome = |kind| SyncOutcome::Failed { kind, error: "e".into(), client_id: None, retry_after_seconds: Some(30), lookup_completed: false };
        let none = CallsMade::default();
        for (kind, name) in [(FailureKind::RateLimited, "released"), (FailureKind::LeaseTooShort, "released"),
                             (FailureKind::NoBudget, "released"), (FailureKind::Authentication, "auth_failed")] {
            assert_eq!(record_sync_result(&job, "cron-1", &outcome(kind), &none, &policy)["p_outcome"], name, "{kind:?}");
        }
        let found = crate::intakeq::wire::Appointment { id: "a".repeat(24), start_date: Some(1), ..Default::default() };
        let cancelled = SyncOutcome::Cancelled { found_upstream: Some(found), client_id: None };
        let arguments = record_sync_result(&job, "cron-1", &cancelled, &none, &policy);
        assert_eq!((&arguments["p_outcome"], &arguments["p_pq_appointment_id"]), (&json!("cancelled"), &json!("a".repeat(24))));
        assert_eq!(arguments["p_intakeq_appointment"], json!({"Id": "a".repeat(24), "StartDate": 1, "Status": null}));
        let moved = crate::intakeq::wire::Appointment { id: "b".repeat(24), start_date: Some(2), status: Some("Confirmed".into()), ..Default::default() };
        let applied = SyncOutcome::Applied { pq_appointment_id: "b".repeat(24), now: Some(moved), written: true };
        let arguments = record_sync_result(&job, "cron-1", &applied, &none, &policy);
        assert_eq!(
            (&arguments["p_outcome"], &arguments["p_intakeq_appointment"], &arguments["p_intakeq_written"]),
            (&json!("applied"), &json!({"Id": "b".repeat(24), "StartDate": 2, "Status": "Confirmed"}), &json!(true))
        );
    }
}
