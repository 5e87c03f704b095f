//! Parsing the booking form's JSON into a `BookingRequest` that cannot hold bad data. Every problem is
//! reported at once, each with the field it concerns (`patient.email`); unknown fields are ignored. Messages
//! never repeat what was sent (it may be patient data).

mod choices;
mod date_of_birth;
mod email;
mod idempotency_key;
mod person_name;
mod phone;
pub mod start_time;
mod text;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub use choices::{LocationType, Payer};
pub use date_of_birth::DateOfBirth;
pub use email::Email;
pub use idempotency_key::IdempotencyKey;
pub use person_name::PersonName;
pub use phone::Phone;
pub use start_time::StartTime;
pub use text::Text;

use crate::support::masking;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatient {
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub email: Email,
    pub phone: Option<Phone>,
    pub date_of_birth: Option<DateOfBirth>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patient {
    /// A patient record named by id (trusted callers only), with the details the caller has, which must not
    /// contradict the record.
    Existing { id: Uuid, details: Option<NewPatient> },
    New(NewPatient),
}

impl NewPatient {
    /// What the logs may say about these details.
    fn masked(&self) -> Value {
        json!({
            "firstName": masking::name(self.first_name.as_str()),
            "lastName": masking::name(self.last_name.as_str()),
            "email": masking::email(self.email.as_str()),
            "phone": self.phone.as_ref().map(|phone| masking::phone(phone.as_str())),
            "dateOfBirth": self.date_of_birth.map(|_| masking::REDACTED),
        })
    }
}

/// The case manager the form may name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contact {
    pub name: Option<Text>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    pub patient: Patient,
    pub provider_id: Uuid,
    pub payer: Payer,
    pub start: StartTime,
    pub location_type: LocationType,
    pub notes: Option<Text>,
    pub member_id: Option<Text>,
    pub group_number: Option<Text>,
    pub contact: Option<Contact>,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The Turnstile widget's token, when the form sends it in the body (`turnstileToken`).
    pub turnstile_token: Option<String>,
}

/// Reads one JSON object's fields, collecting every problem under its dotted path.
struct Fields<'o, 'e> {
    object: &'o Map<String, Value>,
    prefix: &'static str,
    errors: &'e mut Vec<FieldError>,
}

impl<'o> Fields<'o, '_> {
    fn error(&mut self, name: &str, message: impl Into<String>) {
        self.errors.push(FieldError { field: format!("{}{name}", self.prefix), message: message.into() });
    }

    /// The field's string, if present and not null; a field of another type is an error.
    fn string(&mut self, name: &str) -> Option<&'o str> {
        match self.object.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.error(name, "must be a string");
                None
            }
        }
    }

    fn object(&mut self, name: &str) -> Option<&'o Map<String, Value>> {
        match self.object.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.error(name, "must be an object");
                None
            }
        }
    }

    fn optional<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let raw = self.string(name)?;
        parse(raw).map_err(|message| self.error(name, message)).ok()
    }

    fn required<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        if matches!(self.object.get(name), None | Some(Value::Null)) {
            self.error(name, "is required");
            return None;
        }
        self.optional(name, parse)
    }
}

fn uuid(raw: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw).map_err(|_| "must be a UUID".to_string())
}

impl BookingRequest {
    /// `idempotency_header` wins over the body's `idempotencyKey`. `now` bounds the start and the date of birth.
    pub fn parse(body: &[u8], idempotency_header: Option<&str>, now: DateTime<Utc>) -> Result<Self, Vec<FieldError>> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| vec![FieldError { field: "body".into(), message: "must be valid JSON".into() }])?;
        let object = value
            .as_object()
            .ok_or_else(|| vec![FieldError { field: "body".into(), message: "must be a JSON object".into() }])?;
        let mut errors = Vec::new();
        let today = now.date_naive();

        let mut top = Fields { object, prefix: "", errors: &mut errors };
        let patient_id = top.optional("patientId", uuid);
        let patient_object = top.object("patient");
        let provider_id = top.required("providerId", uuid);
        let payer = top.required("payerId", Payer::parse);
        let start = top.required("start", |s| StartTime::parse(s, now));
        let location_type = top.required("locationType", LocationType::parse);
        let notes = top.optional("notes", |s| Text::parse(s, 2000, true));
        let member_id = top.optional("memberId", |s| Text::parse(s, 100, false));
        let group_number = top.optional("groupNumber", |s| Text::parse(s, 100, false));
        let contact_object = top.object("contact");
        let body_key = top.optional("idempotencyKey", IdempotencyKey::parse);
        let turnstile_token = top.optional("turnstileToken", |s| match s.len() {
            1..=2048 => Ok(s.to_owned()),
            _ => Err("must be 1-2048 characters (the Turnstile widget's token)".to_string()),
        });
        let patient_id_sent = object.get("patientId").is_some_and(|v| !v.is_null());

        let idempotency_key = match idempotency_header {
            Some(header) => IdempotencyKey::parse(header)
                .map_err(|message| errors.push(FieldError { field: "Idempotency-Key".into(), message }))
                .ok(),
            None => body_key,
        };

        let mut patient_fields = |fields| {
            let mut p = Fields { object: fields, prefix: "patient.", errors: &mut errors };
            let first_name = p.required("firstName", PersonName::parse);
            let last_name = p.required("lastName", PersonName::parse);
            let email = p.required("email", Email::parse);
            let phone = p.optional("phone", Phone::parse);
            let date_of_birth = p.optional("dateOfBirth", |s| DateOfBirth::parse(s, today));
            match (first_name, last_name, email) {
                (Some(first_name), Some(last_name), Some(email)) => Some(NewPatient { first_name, last_name, email, phone, date_of_birth }),
                _ => None,
            }
        };
        let patient = match (patient_id, patient_object) {
            (Some(id), None) => Some(Patient::Existing { id, details: None }),
            (Some(id), Some(fields)) => patient_fields(fields).map(|details| Patient::Existing { id, details: Some(details) }),
            (None, Some(fields)) if !patient_id_sent => patient_fields(fields).map(Patient::New),
            (None, None) if !patient_id_sent && object.get("patient").is_none_or(Value::is_null) => {
                errors.push(FieldError { field: "patient".into(), message: "is required when patientId is not given".into() });
                None
            }
            _ => None,
        };

        let contact = contact_object.map(|fields| {
            let mut c = Fields { object: fields, prefix: "contact.", errors: &mut errors };
            Contact {
                name: c.optional("name", |s| Text::parse(s, 200, false)),
                email: c.optional("email", Email::parse),
                phone: c.optional("phone", Phone::parse),
            }
        });

        match (patient, provider_id, payer, start, location_type) {
            (Some(patient), Some(provider_id), Some(payer), Some(start), Some(location_type)) if errors.is_empty() => {
                Ok(BookingRequest {
                    patient,
                    provider_id,
                    payer,
                    start,
                    location_type,
                    notes,
                    member_id,
                    group_number,
                    contact,
                    idempotency_key,
                    turnstile_token,
                })
            }
            _ => Err(errors),
        }
    }

    /// What the logs may say about this booking: ids, choices, and patient data masked.
    pub fn masked_summary(&self) -> Value {
        let patient = match &self.patient {
            Patient::Existing { id, details } => json!({ "patientId": id, "details": details.as_ref().map(NewPatient::masked) }),
            Patient::New(p) => p.masked(),
        };
        json!({
            "patient": patient,
            "providerId": self.provider_id,
            "payer": self.payer.as_argument(),
            "start": self.start.utc_rfc3339(),
            "locationType": self.location_type.as_str(),
            "idempotencyKey": self.idempotency_key.is_some(),
        })
    }
}

#[cfg(test)]
mod tests;
