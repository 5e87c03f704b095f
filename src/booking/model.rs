//! The booking as the database holds it: what `book_appointment` answers, and what the sync works from. Typed,
//! so that a renamed column or a status nobody knows is a decoding error where the answer is read (the
//! PostgREST adapter), not a surprise later. Statuses are the values the database's CHECK constraints allow.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `appointments.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    /// Saved here, not yet confirmed by IntakeQ.
    PendingSync,
    /// IntakeQ has it (and sent the confirmation).
    Scheduled,
    Cancelled,
}

/// `appointments.sync_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Pending,
    Synced,
    /// IntakeQ refused it for good, or the last attempt failed: staff must act.
    Failed,
}

/// `appointments.intake_forms_status`: where the booking's intake paperwork stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntakeFormsStatus {
    /// To be sent once the appointment is in IntakeQ.
    Pending,
    Sent,
    /// IntakeQ refused it for good: staff must act.
    Failed,
    /// No questionnaire is configured for the booking's payer or the practice.
    NotRequired,
}

/// The booking's intake questionnaire.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IntakeForms {
    pub status: IntakeFormsStatus,
    /// IntakeQ's questionnaire (template) id.
    pub questionnaire_id: Option<String>,
    /// IntakeQ's id of the intake sent.
    pub intake_id: Option<String>,
}

/// `sync_retry_queue.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Done,
    Dead,
    /// The appointment was cancelled before it reached IntakeQ: nothing was posted.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Booking {
    pub appointment_id: Uuid,
    /// The request that booked it.
    pub request_id: String,
    pub status: AppointmentStatus,
    pub sync_status: SyncStatus,
    /// IntakeQ's id of the appointment, once it has one.
    pub pq_appointment_id: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration_minutes: u32,
    pub notes: Option<String>,
    pub patient: BookedPatient,
    pub provider: BookedProvider,
    pub intakeq: IntakeqIds,
    pub intake_forms: IntakeForms,
    pub sync_job: Option<SyncJobRef>,
}

/// What `book_appointment` answers: the booking, and how the request met it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BookingOutcome {
    #[serde(flatten)]
    pub booking: Booking,
    /// The same patient already held this slot: nothing new was booked.
    pub is_duplicate: bool,
    /// The idempotency key was seen before: this is the earlier answer.
    pub replayed: bool,
    pub patient_created: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BookedPatient {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub intakeq_client_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BookedProvider {
    pub id: Uuid,
    pub name: String,
}

/// The IntakeQ ids the booking maps to (from the provider and the service instance).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IntakeqIds {
    pub practitioner_id: Option<String>,
    pub service_id: Option<String>,
    pub location_id: Option<String>,
}

/// The booking's sync job, as far as the booking request needs it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SyncJobRef {
    pub id: Uuid,
    pub state: JobState,
    /// Who holds its lease: the request that booked it, at first.
    pub locked_by: Option<String>,
    /// The lease's token, which the holder's report must carry.
    pub lease_token: Option<Uuid>,
    /// How long the lease had left when the database answered.
    pub lease_seconds_left: Option<i64>,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::PendingSync => "pending_sync",
            AppointmentStatus::Scheduled => "scheduled",
            AppointmentStatus::Cancelled => "cancelled",
        }
    }
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "pending",
            SyncStatus::Synced => "synced",
            SyncStatus::Failed => "failed",
        }
    }
}

/// A time as the contract writes it: RFC 3339 in UTC, to the second (`2026-12-01T16:00:00Z`).
pub fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_named_as_the_database_names_them() {
        for status in [AppointmentStatus::PendingSync, AppointmentStatus::Scheduled, AppointmentStatus::Cancelled] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for status in [SyncStatus::Pending, SyncStatus::Synced, SyncStatus::Failed] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn an_answer_with_an_unknown_status_or_a_malformed_time_does_not_decode() {
        let answer = crate::testing::booked_json();
        assert!(serde_json::from_value::<BookingOutcome>(answer.clone()).is_ok());
        for (field, value) in [("status", "confirmed"), ("sync_status", "done"), ("start", "tomorrow"), ("appointment_id", "42")] {
            let mut broken = answer.clone();
            broken[field] = value.into();
            assert!(serde_json::from_value::<BookingOutcome>(broken).is_err(), "{field}: {value}");
        }
    }

    #[test]
    fn times_are_written_to_the_second_in_utc() {
        let at: DateTime<Utc> = "2026-12-01T09:00:00-07:00".parse().unwrap();
        assert_eq!(rfc3339(&at), "2026-12-01T16:00:00Z");
    }
}
