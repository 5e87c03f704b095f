//! IntakeQ's JSON, as much of it as the sync reads or writes (PascalCase, ids as IntakeQ gives them:
//! integer client ids, 24-hex appointment ids, GUID service ids, Unix milliseconds).

use serde::{Deserialize, Serialize};

/// IntakeQ answers lists 100 records a page.
pub const PAGE_SIZE: usize = 100;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Client {
    pub client_id: u64,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Unix milliseconds.
    pub date_of_birth: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewClient {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<i64>,
}

/// An appointment as IntakeQ answers it, as far as we read it. Serialized (the same names, no patient data) it is
/// what the database's rules compare against (`apply_intakeq_appointment`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Appointment {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<i64>,
    /// Minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
}

impl Appointment {
    /// Cancelled in IntakeQ (`Canceled`, with one l, or `Declined`): its time is free there.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.status.as_deref(), Some("Canceled" | "Declined"))
    }
}

/// `PUT /appointments`: a new start for an appointment (the client and practitioner cannot change). IntakeQ tells
/// the patient.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AppointmentMove {
    pub id: String,
    /// Unix milliseconds.
    pub utc_date_time: i64,
    pub send_client_email_notification: bool,
}

/// `POST /appointments/cancellation`: IntakeQ cancels the appointment and sends the patient its own notice.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Cancellation {
    pub appointment_id: String,
    pub reason: String,
}

/// IntakeQ's appointment ids are 24 hexadecimal characters (safe in a URL path). Anything else in a webhook is
/// not IntakeQ's, and is never re-read.
pub fn is_appointment_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `POST /intakes/send`: the questionnaire to a client that exists.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewIntake {
    pub questionnaire_id: String,
    pub client_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub practitioner_id: Option<String>,
}

/// An intake as `POST /intakes/send` and `GET /intakes/summary` answer it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Intake {
    pub id: String,
    pub client_id: Option<u64>,
    pub questionnaire_id: Option<String>,
    /// Unix milliseconds.
    pub date_created: Option<i64>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewAppointment {
    pub practitioner_id: String,
    pub client_id: u64,
    pub service_id: String,
    pub location_id: String,
    pub status: &'static str,
    /// Unix milliseconds.
    pub utc_date_time: i64,
    /// IntakeQ sends the patient's confirmation email.
    pub send_client_email_notification: bool,
    pub reminder_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shapes as IntakeQ answers them (fields the sync ignores included).
    #[test]
    fn recorded_answers_parse() {
        let client: Client = serde_json::from_value(json!({
            "ClientId": 1042, "Name": "Pat Sample", "FirstName": "Pat", "LastName": "Sample",
            "Email": "pat@example.com", "Phone": "555-0100", "DateOfBirth": 631152000000i64,
            "DateCreated": 1700000000000i64, "LastActivityDate": 1700000000000i64, "Archived": false
        }))
        .unwrap();
        assert_eq!((client.client_id, client.email.as_deref()), (1042, Some("pat@example.com")));
        assert_eq!((client.first_name.as_deref(), client.last_name.as_deref(), client.date_of_birth), (Some("Pat"), Some("Sample"), Some(631152000000)));
        let appointment: Appointment = serde_json::from_value(json!({
            "Id": "5d5c1e6c3b1f2a0012345678", "ClientName": "Pat Sample", "ClientEmail": "pat@example.com",
            "ClientId": 1042, "Status": "Confirmed", "StartDate": 1967986800000i64, "EndDate": 1967990400000i64,
            "Duration": 60, "ServiceName": "Intake", "ServiceId": "7c1e0000-0000-4000-8000-000000000001",
            "LocationName": "Self pay", "LocationId": "1", "Price": 0, "PractitionerName": "Ana Rivera, MD",
            "PractitionerEmail": "ana@example.com", "PractitionerId": "5f1a00000000000000000001",
            "StartDateIso": "2032-05-12T15:00:00.000Z"
        }))
        .unwrap();
        assert_eq!((appointment.start_date, appointment.client_id), (Some(1967986800000), Some(1042)));
        assert_eq!(appointment.status.as_deref(), Some("Confirmed"));
    }

    #[test]
    fn a_new_appointment_is_sent_as_intakeq_expects() {
        let body = serde_json::to_value(NewAppointment {
            practitioner_id: "5f1a00000000000000000001".into(),
            client_id: 1042,
            service_id: "7c1e0000-0000-4000-8000-000000000001".into(),
            location_id: "1".into(),
            status: "Confirmed",
            utc_date_time: 1967986800000,
            send_client_email_notification: true,
            reminder_type: "Email",
            notes: None,
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"PractitionerId": "5f1a00000000000000000001", "ClientId": 1042,
                   "ServiceId": "7c1e0000-0000-4000-8000-000000000001", "LocationId": "1", "Status": "Confirmed",
                   "UtcDateTime": 1967986800000i64, "SendClientEmailNotification": true, "ReminderType": "Email"})
        );
    }
}
