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
    pub practitioner_email: String,
    pub send_client_email_notification: bool,
    pub reminder_type: Option<String>,
    pub client_time_zone: Option<String>,
    pub notes: Option<String>,
    pub cancellation_reason: Option<String>,
    pub date_created: i64,
    /// Whether the client booked it online. Never, in the sandbox: the API and staff book.
    pub booked_by_client: bool,
    /// Who made it: `API` for `POST /appointments`, `Staff` for the control API's staff bookings. IntakeQ does not
    /// document the values; these are the sandbox's.
    pub created_by: String,
    /// The intake linked to it: never one, in the sandbox.
    pub intake_id: Option<String>,
    /// Booked by a staff member in IntakeQ (the control API's `POST /_sandbox/staff/appointments`), not through the
    /// API. Not part of IntakeQ's JSON: `GET /_sandbox/state` lists these ids as `staffAppointments`.
    #[serde(skip)]
    pub staff: bool,
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

/// What IntakeQ answers for an appointment id it does not know: 400 from `PUT /appointments` and
/// `POST /appointments/cancellation`, 404 from `GET /appointments/{id}`.
pub const APPOINTMENT_NOT_FOUND: &str = "Appointment not found.";

/// IntakeQ's appointment statuses (`Canceled` with one l).
pub const STATUSES: &[&str] = &["Confirmed", "WaitingConfirmation", "Declined", "Canceled", "Missed"];

/// Whether an appointment in `status` no longer takes place.
pub fn is_cancelled(status: &str) -> bool {
    matches!(status, "Canceled" | "Declined")
}

/// The webhook event a change of status to `status` makes (none for `WaitingConfirmation`).
pub fn status_event(status: &str) -> Option<&'static str> {
    match status {
        "Confirmed" => Some("AppointmentConfirmed"),
        "Declined" => Some("AppointmentDeclined"),
        "Canceled" => Some("AppointmentCanceled"),
        "Missed" => Some("AppointmentMissed"),
        _ => None,
    }
}

/// A staff member books in IntakeQ (`POST /_sandbox/staff/appointments`): only `PractitionerId` and `UtcDateTime`
/// are needed; the rest defaults (the practice's first service and location, a made-up client, `Confirmed`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StaffAppointmentInput {
    pub practitioner_id: String,
    pub utc_date_time: i64,
    /// Minutes; the service's when `ServiceId` is given, else 60.
    pub duration: Option<u32>,
    pub service_id: Option<String>,
    pub location_id: Option<String>,
    pub client_name: Option<String>,
    pub client_email: Option<String>,
    pub status: Option<String>,
}

/// A staff action the sandbox cannot carry out: the control API's 400, 404 or 409.
#[derive(Debug, PartialEq)]
pub enum StaffRefusal {
    Invalid(String),
    NotFound(String),
    Conflict(String),
}

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
            practitioner_email: practitioner.email.into(),
            send_client_email_notification: input.send_client_email_notification.unwrap_or(false),
            reminder_type: input.reminder_type,
            client_time_zone: input.client_time_zone,
            notes: input.notes,
            cancellation_reason: None,
            date_created: now_ms,
            booked_by_client: false,
            created_by: "API".into(),
            intake_id: None,
            staff: false,
        };
        appointment.set_start(start, settings.time_zone);
        self.appointments.push(appointment.clone());
        Ok(appointment)
    }

    /// `GET /appointments/{id}`.
    pub fn appointment(&self, id: &str) -> Option<&Appointment> {
        self.appointments.iter().find(|a| a.id == id)
    }

    /// `GET /appointments`: `client` is an email (exact) or part of a name. `startDate`/`endDate` are dates in
    /// the practice's time zone, both inclusive: an appointment matches when its start, in that zone, falls on
    /// a date from `startDate` to `endDate`. Every status unless `status` names one. Newest first: the latest
    /// start first, and of two with the same start the one created last.
    pub fn list_appointments(&self, query: &AppointmentQuery, zone: Tz) -> Result<Vec<Appointment>, Rejection> {
        let from = query.start_date.as_deref().map(date).transpose()?;
        let until = query.end_date.as_deref().map(date).transpose()?;
        let client = query.client.as_deref().map(str::to_lowercase);
        let mut matches: Vec<&Appointment> = self
            .appointments
            .iter()
            .rev()
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
        // Stable: of two with the same start, the one created last (first, reversed) stays first.
        matches.sort_by_key(|a| std::cmp::Reverse(a.start_date));
        Ok(page(matches, query.page))
    }

    /// `PUT /appointments`: `Id` and the fields to change (`UtcDateTime`, `ServiceId`, `LocationId`, `Status`,
    /// `SendClientEmailNotification`, `ReminderType`, `ClientTimeZone`, `Notes`). The client and the practitioner
    /// cannot be changed: `ClientId` and `PractitionerId` are ignored. A new start keeps the duration. Everything is
    /// checked before anything changes. Answers the appointment and the webhook events the change makes
    /// (`AppointmentRescheduled` for a new start, the status's event for a new status).
    pub fn update_appointment(
        &mut self,
        input: AppointmentInput,
        settings: &Settings,
    ) -> Result<(Appointment, Vec<&'static str>), Rejection> {
        let id = input.id.ok_or_else(|| Rejection("Id is required.".into()))?;
        let service = input
            .service_id
            .as_deref()
            .map(|id| settings.services.iter().find(|s| s.id == id).ok_or_else(|| Rejection("Invalid ServiceId.".into())))
            .transpose()?;
        let location = input
            .location_id
            .as_deref()
            .map(|id| settings.locations.iter().find(|l| l.id == id).ok_or_else(|| Rejection("Invalid LocationId.".into())))
            .transpose()?;
        if input.status.as_deref().is_some_and(|status| !STATUSES.contains(&status)) {
            return Err(Rejection("Invalid Status.".into()));
        }
        let appointment = self
            .appointments
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| Rejection(APPOINTMENT_NOT_FOUND.into()))?;
        let mut events = Vec::new();
        if let Some(start) = input.utc_date_time {
            if start != appointment.start_date {
                appointment.set_start(start, settings.time_zone);
                events.push("AppointmentRescheduled");
            }
        }
        if let Some(status) = input.status {
            if status != appointment.status {
                events.extend(status_event(&status));
                appointment.status = status;
            }
        }
        if let Some(service) = service {
            appointment.service_id = service.id.into();
            appointment.service_name = service.name.into();
        }
        if let Some(location) = location {
            appointment.location_id = location.id.into();
            appointment.location_name = location.name.into();
        }
        if let Some(v) = input.send_client_email_notification { appointment.send_client_email_notification = v }
        if input.reminder_type.is_some() { appointment.reminder_type = input.reminder_type }
        if input.client_time_zone.is_some() { appointment.client_time_zone = input.client_time_zone }
        if input.notes.is_some() { appointment.notes = input.notes }
        Ok((appointment.clone(), events))
    }

    /// `POST /appointments/cancellation` `{"AppointmentId", "Reason"}`: the appointment becomes `Canceled`, and is
    /// answered with whether that changed anything (cancelling a cancelled one changes nothing, its first reason
    /// stays).
    pub fn cancel_appointment(&mut self, body: &Value) -> Result<(Appointment, bool), Rejection> {
        let id = body.get("AppointmentId").and_then(Value::as_str).ok_or_else(|| Rejection("AppointmentId is required.".into()))?;
        let reason = body.get("Reason").and_then(Value::as_str);
        self.cancel(id, reason).ok_or_else(|| Rejection(APPOINTMENT_NOT_FOUND.into()))
    }

    /// Cancels `id` (None when unknown): `Canceled` with `reason`, unless already `Canceled` (then nothing changes).
    fn cancel(&mut self, id: &str, reason: Option<&str>) -> Option<(Appointment, bool)> {
        let appointment = self.appointments.iter_mut().find(|a| a.id == id)?;
        if appointment.status == "Canceled" {
            return Some((appointment.clone(), false));
        }
        appointment.status = "Canceled".into();
        appointment.cancellation_reason = reason.map(str::to_owned);
        Some((appointment.clone(), true))
    }

    /// A staff member books in IntakeQ: an appointment marked as a staff one (`CreatedBy` `Staff`,
    /// `BookedByClient` false). The client is the one with `ClientEmail` (ignoring case) if there is one, else a new
    /// one, made up when neither `ClientName` nor `ClientEmail` is given.
    pub fn create_staff_appointment(
        &mut self,
        input: StaffAppointmentInput,
        settings: &Settings,
        now_ms: i64,
    ) -> Result<Appointment, StaffRefusal> {
        let invalid = |text: String| StaffRefusal::Invalid(text);
        let practitioner = settings
            .practitioners
            .iter()
            .find(|p| p.id == input.practitioner_id)
            .ok_or_else(|| invalid(format!("unknown PractitionerId {:?}", input.practitioner_id)))?;
        let service = match input.service_id.as_deref() {
            Some(id) => settings.services.iter().find(|s| s.id == id).ok_or_else(|| invalid(format!("unknown ServiceId {id:?}")))?,
            None => settings.services.first().ok_or_else(|| invalid("the practice has no service".into()))?,
        };
        let location = match input.location_id.as_deref() {
            Some(id) => settings.locations.iter().find(|l| l.id == id).ok_or_else(|| invalid(format!("unknown LocationId {id:?}")))?,
            None => settings.locations.first().ok_or_else(|| invalid("the practice has no location".into()))?,
        };
        let duration = match (input.duration, input.service_id.is_some()) {
            (Some(minutes), _) => minutes,
            (None, true) => service.duration,
            (None, false) => 60,
        };
        if !(1..=24 * 60).contains(&duration) {
            return Err(invalid(format!("Duration must be from 1 to 1440 minutes, not {duration}")));
        }
        let status = input.status.unwrap_or_else(|| "Confirmed".into());
        if !STATUSES.contains(&status.as_str()) {
            return Err(invalid(format!("Status must be one of {STATUSES:?}, not {status:?}")));
        }
        let email = input.client_email.as_deref().map(str::trim).filter(|e| !e.is_empty());
        let existing = email.and_then(|email| self.clients.iter().find(|c| c.email.eq_ignore_ascii_case(email)));
        let client = match existing {
            Some(client) => client.clone(),
            None => {
                let n = self.next_client_id + 1;
                let name = input.client_name.as_deref().map(str::trim).filter(|n| !n.is_empty());
                let name = name.map(str::to_owned).unwrap_or_else(|| format!("Phone Booking {n}"));
                let (first_name, last_name) = name.split_once(char::is_whitespace).unwrap_or((&name, ""));
                let new = ClientInput {
                    client_id: None,
                    first_name: Some(first_name.into()),
                    last_name: Some(last_name.trim().into()),
                    email: Some(email.map(str::to_owned).unwrap_or_else(|| format!("staff.booking.{n}@example.com"))),
                    phone: None,
                    date_of_birth: None,
                };
                self.save_client(new, now_ms).map_err(|Rejection(text)| invalid(text))?
            }
        };
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
            duration,
            service_id: service.id.into(),
            service_name: service.name.into(),
            location_id: location.id.into(),
            location_name: location.name.into(),
            practitioner_id: practitioner.id.into(),
            practitioner_name: practitioner.complete_name.into(),
            practitioner_email: practitioner.email.into(),
            send_client_email_notification: false,
            reminder_type: None,
            client_time_zone: None,
            notes: None,
            cancellation_reason: None,
            date_created: now_ms,
            booked_by_client: false,
            created_by: "Staff".into(),
            intake_id: None,
            staff: true,
        };
        appointment.set_start(input.utc_date_time, settings.time_zone);
        self.appointments.push(appointment.clone());
        Ok(appointment)
    }

    /// A staff member cancels any appointment in IntakeQ: as the cancellation endpoint, with whether it changed.
    pub fn staff_cancel(&mut self, id: &str, reason: Option<&str>) -> Result<(Appointment, bool), StaffRefusal> {
        self.cancel(id, reason).ok_or_else(|| StaffRefusal::NotFound(format!("no appointment {id}")))
    }

    /// A staff member deletes an appointment in IntakeQ (IntakeQ's webhooks have no event for that): answered with
    /// the appointment as it was.
    pub fn staff_delete(&mut self, id: &str) -> Result<Appointment, StaffRefusal> {
        let index = self.appointments.iter().position(|a| a.id == id).ok_or_else(|| StaffRefusal::NotFound(format!("no appointment {id}")))?;
        Ok(self.appointments.remove(index))
    }

    /// A staff member moves any appointment in IntakeQ to start at `start`, keeping its duration; answered with
    /// whether it moved. A cancelled (`Canceled` or `Declined`) one cannot be moved.
    pub fn staff_reschedule(&mut self, id: &str, start: i64, zone: Tz) -> Result<(Appointment, bool), StaffRefusal> {
        let appointment = self
            .appointments
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| StaffRefusal::NotFound(format!("no appointment {id}")))?;
        if is_cancelled(&appointment.status) {
            return Err(StaffRefusal::Conflict(format!("appointment {id} is {}", appointment.status)));
        }
        if appointment.start_date == start {
            return Ok((appointment.clone(), false));
        }
        appointment.set_start(start, zone);
        Ok((appointment.clone(), true))
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
