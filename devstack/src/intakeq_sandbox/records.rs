//! Clients, appointments and sent intake questionnaires the sandbox holds, shaped like IntakeQ's JSON (PascalCase, ids and millisecond
//! timestamps as IntakeQ gives them), and the rules IntakeQ applies to them.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::practice::Settings;

/// IntakeQ answers 100 records a page.
const PAGE_SIZE: usize = 100;

/// Appointment ids are unique across every sandbox in this process (tests run several at once against one
/// database, which refuses one IntakeQ id on two appointments), and across processes.
static APPOINTMENTS_CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// 24 hex characters, like IntakeQ's: seconds, process id, a counter.
fn appointment_id(now_ms: i64) -> String {
    let n = APPOINTMENTS_CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    format!("{:08x}{:06x}{:010x}", (now_ms / 1000) as u32, std::process::id() & 0xff_ffff, n & 0xff_ffff_ffff)
}

/// Intake ids are GUIDs, unique across sandboxes and processes as appointment ids are.
static INTAKES_SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A GUID: seconds, process id, a counter.
fn intake_id(now_ms: i64) -> String {
    let n = INTAKES_SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let pid = std::process::id();
    format!(
        "{:08x}-{:04x}-4{:03x}-8000-{:012x}",
        (now_ms / 1000) as u32,
        (pid >> 12) & 0xffff,
        pid & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Client {
    pub client_id: u64,
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: Option<String>,
    /// Unix milliseconds.
    pub date_of_birth: Option<i64>,
    pub date_created: i64,
    pub last_activity_date: i64,
    pub archived: bool,
}

/// `POST /clients`: creates without `ClientId`, updates with it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClientInput {
    pub client_id: Option<u64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub date_of_birth: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Appointment {
    pub id: String,
    pub client_id: u64,
    pub client_name: String,
    pub client_email: String,
    pub status: String,
    pub start_date: i64,
    pub end_date: i64,
    pub start_date_iso: String,
    pub end_date_iso: String,
    /// The start and end as wall-clock times in the practice's time zone (`yyyy-MM-ddTHH:mm:ss`), and the start
    /// written out for people. IntakeQ does not document their format: the sandbox's is a guess.
    pub start_date_local: String,
    pub end_date_local: String,
    pub start_date_local_formatted: String,
    pub duration: u32,
    pub service_id: String,
    pub service_name: String,
    pub location_id: String,
    pub location_name: String,
    pub practitioner_id: String,
    pub practitioner_name: String,
    pub send_client_email_notification: bool,
    pub reminder_type: Option<String>,
    pub client_time_zone: Option<String>,
    pub notes: Option<String>,
    pub cancellation_reason: Option<String>,
    pub date_created: i64,
}

/// `POST /appointments` (create) and `PUT /appointments` (update, with `Id`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AppointmentInput {
    pub id: Option<String>,
    pub practitioner_id: Option<String>,
    pub client_id: Option<u64>,
    pub service_id: Option<String>,
    pub location_id: Option<String>,
    pub status: Option<String>,
    pub utc_date_time: Option<i64>,
    pub send_client_email_notification: Option<bool>,
    pub reminder_type: Option<String>,
    pub client_time_zone: Option<String>,
    pub notes: Option<String>,
}

/// An intake questionnaire sent to a client (`POST /intakes/send`), as the send and `GET /intakes/summary`
/// answer it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Intake {
    pub id: String,
    pub client_id: u64,
    pub client_name: String,
    pub client_email: String,
    pub client_phone: Option<String>,
    /// `Sent` until the client submits it (the control API's submit makes it `Completed`).
    pub status: String,
    pub questionnaire_id: String,
    pub questionnaire_name: String,
    pub practitioner_id: String,
    pub practitioner_name: String,
    pub date_created: i64,
    pub date_submitted: Option<i64>,
    pub appointment_id: Option<String>,
}

/// `POST /intakes/send`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntakeInput {
    pub questionnaire_id: Option<String>,
    pub client_id: Option<u64>,
    pub client_name: Option<String>,
    pub client_email: Option<String>,
    pub client_phone: Option<String>,
    pub practitioner_id: Option<String>,
}

/// What `GET /intakes/summary` filters on. Numbers and flags are read as text, so a bad one gets IntakeQ's
/// 400 rather than a framework's.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct IntakeQuery {
    pub client: Option<String>,
    pub client_id: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub all: Option<String>,
    pub page: Option<String>,
}

/// What `GET /appointments` filters on.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentQuery {
    pub client: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub status: Option<String>,
    pub page: Option<usize>,
}

/// IntakeQ's 400 answers carry one sentence: `{"Message": "Invalid ServiceId."}`.
#[derive(Debug, PartialEq)]
pub struct Rejection(pub String);

#[derive(Debug, Default)]
pub struct Records {
    pub clients: Vec<Client>,
    pub appointments: Vec<Appointment>,
    pub intakes: Vec<Intake>,
    next_client_id: u64,
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The instant `ms` as a wall-clock time in `zone`.
fn local(ms: i64, zone: Tz) -> DateTime<Tz> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&zone)
}

impl Appointment {
    /// Sets the start and everything derived from it: the end (after the appointment's duration), and the ISO
    /// and local forms of both.
    fn set_start(&mut self, start: i64, zone: Tz) {
        self.start_date = start;
        self.end_date = start + i64::from(self.duration) * 60_000;
        self.start_date_iso = iso(self.start_date);
        self.end_date_iso = iso(self.end_date);
        self.start_date_local = local(self.start_date, zone).format("%Y-%m-%dT%H:%M:%S").to_string();
        self.end_date_local = local(self.end_date, zone).format("%Y-%m-%dT%H:%M:%S").to_string();
        self.start_date_local_formatted = local(self.start_date, zone).format("%A, %B %-d, %Y %-I:%M %p").to_string();
    }
}

fn page<T: Clone>(items: Vec<&T>, page: Option<usize>) -> Vec<T> {
    let page = page.unwrap_or(1).max(1);
    items.into_iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE).cloned().collect()
}

fn date(date: &str) -> Result<NaiveDate, Rejection> {
    NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| Rejection(format!("Invalid date {date}. Use yyyy-MM-dd.")))
}

impl Records {
    /// `GET /clients?search=`: a partial, case-insensitive match on name or email; a number matches the id.
    pub fn search_clients(&self, search: Option<&str>, page_number: Option<usize>) -> Vec<Client> {
        let needle = search.unwrap_or_default().trim().to_lowercase();
        let matches = self
            .clients
            .iter()
            .filter(|c| match needle.parse::<u64>() {
                Ok(id) => c.client_id == id,
                Err(_) => c.name.to_lowercase().contains(&needle) || c.email.to_lowercase().contains(&needle),
            })
            .collect();
        page(matches, page_number)
    }

    pub fn save_client(&mut self, input: ClientInput, now_ms: i64) -> Result<Client, Rejection> {
        match input.client_id {
            Some(id) => {
                let client = self
                    .clients
                    .iter_mut()
                    .find(|c| c.client_id == id)
                    .ok_or_else(|| Rejection("Client not found".into()))?;
                if let Some(v) = input.first_name { client.first_name = v }
                if let Some(v) = input.last_name { client.last_name = v }
                if let Some(v) = input.email { client.email = v }
                if input.phone.is_some() { client.phone = input.phone }
                if input.date_of_birth.is_some() { client.date_of_birth = input.date_of_birth }
                client.name = format!("{} {}", client.first_name, client.last_name);
                client.last_activity_date = now_ms;
                Ok(client.clone())
            }
            None => {
                let (Some(first_name), Some(last_name)) = (input.first_name, input.last_name) else {
                    return Err(Rejection("FirstName and LastName are required.".into()));
                };
                self.next_client_id += 1;
                let client = Client {
                    client_id: 1000 + self.next_client_id,
                    name: format!("{first_name} {last_name}"),
                    first_name,
                    last_name,
                    email: input.email.unwrap_or_default(),
                    phone: input.phone,
                    date_of_birth: input.date_of_birth,
                    date_created: now_ms,
                    last_activity_date: now_ms,
                    archived: false,
                };
                self.clients.push(client.clone());
                Ok(client)
            }
        }
    }

    pub fn create_appointment(&mut self, input: AppointmentInput, settings: &Settings, now_ms: i64) -> Result<Appointment, Rejection> {
        let client = input
            .client_id
            .and_then(|id| self.clients.iter().find(|c| c.client_id == id))
            .ok_or_else(|| Rejection("Client not found".into()))?
            .clone();
        let service = settings
            .services
            .iter()
            .find(|s| Some(s.id) == input.service_id.as_deref())
            .ok_or_else(|| Rejection("Invalid ServiceId.".into()))?;
        let practitioner = settings
            .practitioners
            .iter()
            .find(|p| Some(p.id) == input.practitioner_id.as_deref())
            .ok_or_else(|| Rejection("Invalid PractitionerId.".into()))?;
        let location = settings
            .locations
            .iter()
            .find(|l| Some(l.id) == input.location_id.as_deref())
            .ok_or_else(|| Rejection("Invalid LocationId.".into()))?;
        let status = input.status.unwrap_or_else(|| "Confirmed".into());
        if !matches!(status.as_str(), "Confirmed" | "WaitingConfirmation") {
            return Err(Rejection("Invalid Status.".into()));
        }
        let start = input.utc_date_time.ok_or_else(|| Rejection("UtcDateTime is required.".into()))?;
        let mut appointment = Appointment {
            id: appointment_id(now_ms),
            client_id: client.client_id,
            client_name: client.name,
            client_email: client.email,
            status,
            start_date: 0,
            end_date: 0,
            start_date_iso: String::new(),
            end_date_iso: String::new(),
            start_date_local: String::new(),
            end_date_local: String::new(),
            start_date_local_formatted: String::new(),
            duration: service.duration,
            service_id: service.id.into(),
            service_name: service.name.into(),
            location_id: location.id.into(),
            location_name: location.name.into(),
            practitioner_id: practitioner.id.into(),
            practitioner_name: practitioner.complete_name.into(),
            send_client_email_notification: input.send_client_email_notification.unwrap_or(false),
            reminder_type: input.reminder_type,
            client_time_zone: input.client_time_zone,
            notes: input.notes,
            cancellation_reason: None,
            date_created: now_ms,
        };
        appointment.set_start(start, settings.time_zone);
        self.appointments.push(appointment.clone());
        Ok(appointment)
    }

    /// `GET /appointments`: `client` is an email (exact) or part of a name. `startDate`/`endDate` are dates in
    /// the practice's time zone, both inclusive: an appointment matches when its start, in that zone, falls on
    /// a date from `startDate` to `endDate`.
    pub fn list_appointments(&self, query: &AppointmentQuery, zone: Tz) -> Result<Vec<Appointment>, Rejection> {
        let from = query.start_date.as_deref().map(date).transpose()?;
        let until = query.end_date.as_deref().map(date).transpose()?;
        let client = query.client.as_deref().map(str::to_lowercase);
        let matches = self
            .appointments
            .iter()
            .filter(|a| {
                client.as_deref().is_none_or(|c| {
                    a.client_email.to_lowercase() == c || a.client_name.to_lowercase().contains(c)
                })
            })
            .filter(|a| {
                let day = local(a.start_date, zone).date_naive();
                from.is_none_or(|from| day >= from) && until.is_none_or(|until| day <= until)
            })
            .filter(|a| query.status.as_deref().is_none_or(|s| a.status.eq_ignore_ascii_case(s)))
            .collect();
        Ok(page(matches, query.page))
    }

    pub fn update_appointment(&mut self, input: AppointmentInput, settings: &Settings) -> Result<Appointment, Rejection> {
        let id = input.id.ok_or_else(|| Rejection("Id is required.".into()))?;
        let appointment = self
            .appointments
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| Rejection("Appointment not found".into()))?;
        if let Some(status) = input.status { appointment.status = status }
        if let Some(start) = input.utc_date_time {
            appointment.set_start(start, settings.time_zone);
        }
        if let Some(service_id) = input.service_id {
            let service = settings.services.iter().find(|s| s.id == service_id)
                .ok_or_else(|| Rejection("Invalid ServiceId.".into()))?;
            appointment.service_id = service_id;
            appointment.service_name = service.name.into();
        }
        if input.notes.is_some() { appointment.notes = input.notes }
        Ok(appointment.clone())
    }

    pub fn cancel_appointment(&mut self, body: &Value) -> Result<Appointment, Rejection> {
        let id = body.get("AppointmentId").and_then(Value::as_str).ok_or_else(|| Rejection("AppointmentId is required.".into()))?;
        let appointment = self
            .appointments
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| Rejection("Appointment not found".into()))?;
        appointment.status = "Canceled".into();
        appointment.cancellation_reason = body.get("Reason").and_then(Value::as_str).map(str::to_owned);
        Ok(appointment.clone())
    }

    /// `POST /intakes/send`. With `ClientId` the client must exist (name and email are then ignored). Without
    /// it, `ClientName` and `ClientEmail` are required, and the intake goes to the client with that email
    /// (ignoring case), created from the name when there is none: the sandbox's reading, IntakeQ does not say.
    /// `PractitionerId` defaults to the main account's practitioner (the sandbox's first; its clients have none
    /// assigned).
    pub fn send_intake(&mut self, input: IntakeInput, settings: &Settings, now_ms: i64) -> Result<Intake, Rejection> {
        let questionnaire = settings
            .questionnaires
            .iter()
            .find(|q| Some(q.id) == input.questionnaire_id.as_deref())
            .ok_or_else(|| Rejection("Invalid QuestionnaireId.".into()))?;
        let practitioner = match input.practitioner_id.as_deref() {
            None => settings.practitioners.first().ok_or_else(|| Rejection("Invalid PractitionerId.".into()))?,
            Some(id) => settings
                .practitioners
                .iter()
                .find(|p| p.id == id)
                .ok_or_else(|| Rejection("Invalid PractitionerId.".into()))?,
        };
        let client = match input.client_id {
            Some(id) => self.clients.iter().find(|c| c.client_id == id).ok_or_else(|| Rejection("Client not found".into()))?.clone(),
            None => {
                let name = input.client_name.as_deref().map(str::trim).unwrap_or_default();
                let email = input.client_email.as_deref().map(str::trim).unwrap_or_default();
                if name.is_empty() || email.is_empty() {
                    return Err(Rejection("ClientName and ClientEmail are required when ClientId is not given.".into()));
                }
                match self.clients.iter().find(|c| c.email.eq_ignore_ascii_case(email)) {
                    Some(client) => client.clone(),
                    None => {
                        let (first_name, last_name) = name.split_once(char::is_whitespace).unwrap_or((name, ""));
                        let new = ClientInput {
                            client_id: None,
                            first_name: Some(first_name.into()),
                            last_name: Some(last_name.trim().into()),
                            email: Some(email.into()),
                            phone: input.client_phone.clone(),
                            date_of_birth: None,
                        };
                        self.save_client(new, now_ms)?
                    }
                }
            }
        };
        let intake = Intake {
            id: intake_id(now_ms),
            client_id: client.client_id,
            client_name: client.name,
            client_email: client.email,
            client_phone: input.client_phone,
            status: "Sent".into(),
            questionnaire_id: questionnaire.id.into(),
            questionnaire_name: questionnaire.name.into(),
            practitioner_id: practitioner.id.into(),
            practitioner_name: practitioner.complete_name.into(),
            date_created: now_ms,
            date_submitted: None,
            appointment_id: None,
        };
        self.intakes.push(intake.clone());
        Ok(intake)
    }

    /// `GET /intakes/summary`: submitted intakes (`Completed`, `Offline`), or every one with `all=true`.
    /// `client` is part of a name or email (ignoring case), `clientId` a client's id, and `startDate`/`endDate`
    /// dates in the practice's time zone, both inclusive, that the creation must fall within.
    pub fn intake_summaries(&self, query: &IntakeQuery, zone: Tz) -> Result<Vec<Intake>, Rejection> {
        let from = query.start_date.as_deref().map(date).transpose()?;
        let until = query.end_date.as_deref().map(date).transpose()?;
        let client_id = query
            .client_id
            .as_deref()
            .map(|id| id.trim().parse::<u64>().map_err(|_| Rejection(format!("Invalid clientId {id}."))))
            .transpose()?;
        let all = match query.all.as_deref() {
            None => false,
            Some(flag) if flag.eq_ignore_ascii_case("true") => true,
            Some(flag) if flag.eq_ignore_ascii_case("false") => false,
            Some(flag) => return Err(Rejection(format!("Invalid value {flag} for all. Use true or false."))),
        };
        let page_number = query
            .page
            .as_deref()
            .map(|p| p.trim().parse::<usize>().map_err(|_| Rejection(format!("Invalid page {p}."))))
            .transpose()?;
        let client = query.client.as_deref().map(|c| c.trim().to_lowercase());
        let matches = self
            .intakes
            .iter()
            .filter(|i| all || matches!(i.status.as_str(), "Completed" | "Offline"))
            .filter(|i| client_id.is_none_or(|id| i.client_id == id))
            .filter(|i| {
                client.as_deref().is_none_or(|c| {
                    i.client_email.to_lowercase().contains(c) || i.client_name.to_lowercase().contains(c)
                })
            })
            .filter(|i| {
                let day = local(i.date_created, zone).date_naive();
                from.is_none_or(|from| day >= from) && until.is_none_or(|until| day <= until)
            })
            .collect();
        Ok(page(matches, page_number))
    }

    /// The control API's stand-in for a client filling in the form: the intake becomes `Completed`, submitted
    /// at `now_ms`.
    pub fn submit_intake(&mut self, id: &str, now_ms: i64) -> Option<Intake> {
        let intake = self.intakes.iter_mut().find(|i| i.id == id)?;
        intake.status = "Completed".into();
        intake.date_submitted = Some(now_ms);
        Some(intake.clone())
    }
}
