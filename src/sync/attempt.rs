//! One attempt to put a booking into IntakeQ, safe to repeat: find the client by exact email before creating
//! one (IntakeQ's search is partial), and when an earlier attempt may have created the appointment, look it up
//! before posting (IntakeQ has no idempotency key). No I/O of its own: IntakeQ is a trait.

use tracing::{info, warn};

use super::job::{FailureKind, SyncJob, SyncOutcome};
use crate::intakeq::wire::{Appointment, NewAppointment, NewClient};
use crate::intakeq::{Intakeq, IntakeqError};

fn failed(kind: FailureKind, error: String, client_id: Option<String>) -> SyncOutcome {
    SyncOutcome::Failed { kind, error, client_id, retry_after_seconds: None, rate_limited: false }
}

/// A failed call. Before the appointment is posted nothing can have been created; when posting it,
/// anything but a clear answer is ambiguous.
fn call_failed(call: &str, error: IntakeqError, posting_appointment: bool, client_id: Option<String>) -> SyncOutcome {
    let text = format!("{call}: {error}");
    match error {
        IntakeqError::RateLimited { retry_after_seconds } => {
            SyncOutcome::Failed { kind: FailureKind::Transient, error: text, client_id, retry_after_seconds, rate_limited: true }
        }
        IntakeqError::Rejected { .. } => failed(FailureKind::Permanent, text, client_id),
        _ if posting_appointment => failed(FailureKind::Ambiguous, text, client_id),
        _ => failed(FailureKind::Transient, text, client_id),
    }
}

/// Is `appointment` the booking's, as IntakeQ stores it?
fn matches(appointment: &Appointment, practitioner: &str, service: &str, start_ms: i64) -> bool {
    appointment.practitioner_id.as_deref() == Some(practitioner)
        && appointment.service_id.as_deref() == Some(service)
        && appointment.start_date == Some(start_ms)
        && appointment.status.as_deref() != Some("Canceled")
}

pub async fn sync_booking(intakeq: &impl Intakeq, job: &SyncJob) -> SyncOutcome {
    let booking = &job.booking;
    let (Some(practitioner), Some(service), Some(location)) =
        (&booking.intakeq.practitioner_id, &booking.intakeq.service_id, &booking.intakeq.location_id)
    else {
        return failed(FailureKind::Permanent, "the booking lacks an IntakeQ practitioner, service or location id".into(), None);
    };
    let start_ms = booking.start.timestamp_millis();
    let patient = &booking.patient;

    info!(step = "intakeq_client", outcome = "started", known = patient.intakeq_client_id.is_some());
    let client_id = match &patient.intakeq_client_id {
        Some(id) => id.clone(),
        None => {
            let found = match intakeq.search_clients(&patient.email).await {
                Ok(clients) => clients
                    .into_iter()
                    .find(|c| c.email.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case(patient.email.trim()))),
                Err(error) => return call_failed("GET /clients", error, false, None),
            };
            match found {
                Some(client) => client.client_id.to_string(),
                None => {
                    let new_client = NewClient {
                        first_name: patient.first_name.clone(),
                        last_name: patient.last_name.clone(),
                        email: patient.email.clone(),
                        phone: patient.phone.clone(),
                        date_of_birth: patient.date_of_birth.map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis()),
                    };
                    match intakeq.create_client(&new_client).await {
                        Ok(client) => client.client_id.to_string(),
                        Err(error) => return call_failed("POST /clients", error, false, None),
                    }
                }
            }
        }
    };
    info!(step = "intakeq_client", outcome = "ok", intakeq_client_id = %client_id);
    let Ok(client_number) = client_id.parse::<u64>() else {
        return failed(FailureKind::Permanent, "the stored IntakeQ client id is not a number".into(), None);
    };

    if job.needs_reconcile {
        let day = booking.start.format("%Y-%m-%d").to_string();
        info!(step = "intakeq_reconcile", outcome = "started");
        match intakeq.appointments_on(&patient.email, &day).await {
            Ok(appointments) => {
                if let Some(existing) = appointments.iter().find(|a| matches(a, practitioner, service, start_ms)) {
                    info!(step = "intakeq_reconcile", outcome = "adopted", pq_appointment_id = %existing.id);
                    return SyncOutcome::Synced { pq_appointment_id: existing.id.clone(), client_id };
                }
                info!(step = "intakeq_reconcile", outcome = "not_found");
            }
            // Cannot tell whether it exists: try again later rather than risk a second appointment.
            Err(error) => return call_failed("GET /appointments", error, true, Some(client_id)),
        }
    }

    info!(step = "intakeq_appointment", outcome = "started");
    let appointment = NewAppointment {
        practitioner_id: practitioner.clone(),
        client_id: client_number,
        service_id: service.clone(),
        location_id: location.clone(),
        status: "Confirmed",
        utc_date_time: start_ms,
        send_client_email_notification: true,
        reminder_type: "Email",
        notes: booking.notes.clone(),
    };
    match intakeq.create_appointment(&appointment).await {
        Ok(created) => {
            info!(step = "intakeq_appointment", outcome = "ok", pq_appointment_id = %created.id);
            SyncOutcome::Synced { pq_appointment_id: created.id, client_id }
        }
        Err(error) => {
            let outcome = call_failed("POST /appointments", error, true, Some(client_id));
            warn!(step = "intakeq_appointment", outcome = "failed", error = ?outcome);
            outcome
        }
    }
}

#[cfg(test)]
mod tests;
