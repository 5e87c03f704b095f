//! The IntakeQ sync end to end: the built worker in workerd, the real database, and the IntakeQ sandbox with
//! its faults. A booking's `status` / `sync_status` must tell the truth in every case, and IntakeQ must never
//! hold a second appointment for one booking.

use serde_json::{json, Value};

use crate::support::{booking, new_provider, start_synced, unique, Stack, ADMIN_TOKEN};
use tokio::sync::{Mutex, MutexGuard};

/// One test at a time: a cron run claims every due job in the database, whichever test booked it (the tests
/// here make only their own jobs due, and share this binary's database).
async fn alone() -> MutexGuard<'static, ()> {
    static CRON: Mutex<()> = Mutex::const_new(());
    CRON.lock().await
}

/// A new booking for a new patient; answers (appointment id, the answer's data, the email).
pub(crate) async fn book(stack: &Stack, tag: &str, hour: u32) -> (String, Value, String) {
    let provider = new_provider(stack).await;
    let email = format!("{}@example.com", unique(tag));
    let answer = stack.post(&booking(&provider, &email, 20, hour), &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let data = answer.body["data"].clone();
    (data["appointmentId"].as_str().unwrap().to_owned(), data, email)
}

pub(crate) fn appointments_of(state: &Value, email: &str) -> Vec<Value> {
    state["appointments"].as_array().unwrap().iter().filter(|a| a["ClientEmail"] == email).cloned().collect()
}

pub(crate) async fn staff_get(stack: &Stack, path: &str) -> reqwest::Response {
    stack.http.get(format!("{}{path}", stack.worker)).bearer_auth(ADMIN_TOKEN).send().await.unwrap()
}

#[tokio::test]
async fn a_booking_is_scheduled_and_synced_with_one_client_and_one_appointment() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let (appointment, data, email) = book(&stack, "synced", 9).await;
    assert_eq!((&data["status"], &data["syncStatus"]), (&json!("scheduled"), &json!("synced")));

    let state = stack.intakeq_state().await;
    let clients: Vec<&Value> = state["clients"].as_array().unwrap().iter().filter(|c| c["Email"] == email.as_str()).collect();
    assert_eq!(clients.len(), 1, "one IntakeQ client");
    let created = appointments_of(&state, &email);
    assert_eq!(created.len(), 1, "one IntakeQ appointment");
    let start_ms = chrono::DateTime::parse_from_rfc3339(data["start"].as_str().unwrap()).unwrap().timestamp_millis();
    assert_eq!(
        (&created[0]["PractitionerId"], &created[0]["ServiceId"], &created[0]["LocationId"], &created[0]["StartDate"]),
        (&json!("5f1a00000000000000000001"), &json!("7c1e0000-0000-4000-8000-000000000002"), &json!("2"), &json!(start_ms)),
        "Beehive's intake, Beehive's location, the start in UTC milliseconds"
    );
    assert_eq!((&created[0]["Status"], &created[0]["SendClientEmailNotification"]), (&json!("Confirmed"), &json!(true)));
    assert_eq!(data["pqAppointmentId"], created[0]["Id"]);
    assert_eq!(stack.appointment_state(&appointment).await, format!("scheduled/synced/{}", created[0]["Id"].as_str().unwrap()));
    let client_id: Option<String> = stack.db.query_one("select intakeq_client_id from patients where email = $1", &[&email]).await.unwrap().get(0);
    assert_eq!(client_id, Some(clients[0]["ClientId"].to_string()), "the patient keeps its IntakeQ client id");
}

#[tokio::test]
async fn an_intakeq_500_leaves_the_booking_pending_until_the_cron_syncs_it() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "POST /appointments", "fault": "server_error"})).await;
    let (appointment, data, email) = book(&stack, "after-500", 10).await;
    assert_eq!((&data["status"], &data["syncStatus"]), (&json!("pending_sync"), &json!("pending")));
    assert_eq!(stack.appointment_state(&appointment).await, "pending_sync/pending/-");

    stack.make_sync_jobs_due(&[&appointment]).await;
    stack.run_cron().await;
    assert!(stack.appointment_state(&appointment).await.starts_with("scheduled/synced/"));
    assert_eq!(appointments_of(&stack.intakeq_state().await, &email).len(), 1);
}

#[tokio::test]
async fn rate_limits_outage_pages_and_timeouts_are_retried_without_a_second_appointment() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    for (tag, hour, fault) in [
        ("retry-after", 11, json!({"endpoint": "POST /appointments", "fault": "rate_limited", "retryAfterSeconds": 120})),
        ("non-json", 12, json!({"endpoint": "POST /appointments", "fault": "non_json"})),
        ("timeout", 13, json!({"endpoint": "POST /appointments", "fault": "hang", "delayMs": 8000})),
    ] {
        stack.intakeq_fault(fault).await;
        let (appointment, data, email) = book(&stack, tag, hour).await;
        assert_eq!(data["syncStatus"], "pending", "{tag}");
        if tag == "retry-after" {
            let waits: bool = stack
                .db
                .query_one("select next_retry_at >= now() + interval '110 seconds' from sync_retry_queue where appointment_id::text = $1", &[&appointment])
                .await
                .unwrap()
                .get(0);
            assert!(waits, "IntakeQ's Retry-After is honoured");
            let everyone_waits: bool = stack.db.query_one("select rate_limited_until >= now() + interval '110 seconds' from sync_queue_state", &[])
                .await.unwrap().get(0);
            assert!(everyone_waits, "a 429 pauses every IntakeQ call until its Retry-After");
        }
        stack.make_sync_jobs_due(&[&appointment]).await;
        stack.run_cron().await;
        assert!(stack.appointment_state(&appointment).await.starts_with("scheduled/synced/"), "{tag}");
        assert_eq!(appointments_of(&stack.intakeq_state().await, &email).len(), 1, "{tag}: exactly one IntakeQ appointment");
    }
}

#[tokio::test]
async fn an_appointment_created_after_the_caller_gave_up_is_adopted_not_duplicated() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "POST /appointments", "fault": "succeed_late", "delayMs": 8000})).await;
    let (appointment, data, email) = book(&stack, "late", 14).await;
    assert_eq!(data["syncStatus"], "pending", "the worker timed out");
    let created = appointments_of(&stack.intakeq_state().await, &email);
    assert_eq!(created.len(), 1, "yet IntakeQ made the appointment");

    stack.make_sync_jobs_due(&[&appointment]).await;
    stack.run_cron().await;
    assert_eq!(appointments_of(&stack.intakeq_state().await, &email).len(), 1, "still exactly one");
    assert_eq!(stack.appointment_state(&appointment).await, format!("scheduled/synced/{}", created[0]["Id"].as_str().unwrap()));
}

#[tokio::test]
async fn a_permanent_rejection_fails_visibly_and_can_be_requeued_once_fixed() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "POST /appointments", "fault": "invalid_service_id"})).await;
    let (appointment, data, email) = book(&stack, "rejected", 15).await;
    assert_eq!((&data["status"], &data["syncStatus"]), (&json!("pending_sync"), &json!("failed")));
    let attempts: i32 = stack.db.query_one("select retry_count from sync_retry_queue where appointment_id::text = $1", &[&appointment]).await.unwrap().get(0);
    assert_eq!(attempts, 1, "failed after one attempt");

    assert_eq!(stack.http.get(format!("{}/api/patient-booking/sync-health", stack.worker)).send().await.unwrap().status().as_u16(), 401);
    let health: Value = staff_get(&stack, "/api/patient-booking/sync-health").await.json().await.unwrap();
    let dead = health["data"]["dead_jobs"].as_array().unwrap();
    let ours = dead.iter().find(|j| j["appointment_id"] == appointment.as_str()).expect("the dead job is listed");
    assert!(ours["error"].as_str().unwrap().contains("Invalid ServiceId."), "{ours}");

    let requeue = stack
        .http
        .post(format!("{}/api/patient-booking/sync-jobs/requeue", stack.worker))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"appointmentId": appointment}))
        .send()
        .await
        .unwrap();
    assert_eq!(requeue.status().as_u16(), 200);
    assert_eq!(stack.appointment_state(&appointment).await, "pending_sync/pending/-");
    stack.run_cron().await;
    assert!(stack.appointment_state(&appointment).await.starts_with("scheduled/synced/"), "synced once the cause is gone");
    let state = stack.intakeq_state().await;
    assert_eq!(appointments_of(&state, &email).len(), 1, "{:#}\n{:#}", json!(appointments_of(&state, &email)), state["requests"]);
}

#[tokio::test]
async fn the_last_attempt_leaves_the_booking_failed_and_its_job_dead() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[("SYNC_MAX_ATTEMPTS", "2")]).await;
    stack.intakeq_fault(json!({"endpoint": "GET /clients", "fault": "server_error", "count": 2})).await;
    let (appointment, data, _) = book(&stack, "exhausted", 16).await;
    assert_eq!(data["syncStatus"], "pending", "one attempt of two made");
    stack.make_sync_jobs_due(&[&appointment]).await;
    stack.run_cron().await;
    assert_eq!(stack.appointment_state(&appointment).await, "pending_sync/failed/-");
    let state: String = stack.db.query_one("select state from sync_retry_queue where appointment_id::text = $1", &[&appointment]).await.unwrap().get(0);
    assert_eq!(state, "dead");
    let health: Value = staff_get(&stack, "/api/patient-booking/sync-health").await.json().await.unwrap();
    assert!(health["data"]["dead_jobs"].as_array().unwrap().iter().any(|j| j["appointment_id"] == appointment.as_str()));
}

/// What a request that died after posting to IntakeQ left there for `book_and_die`'s booking: the client
/// and the appointment, as the sync would have created them. Answers the appointment.
pub(crate) async fn created_upstream(stack: &Stack, appointment: &str, email: &str) -> Value {
    let start: i64 = stack.db.query_one("select (extract(epoch from start_time) * 1000)::bigint from appointments where id::text = $1", &[&appointment])
        .await.unwrap().get(0);
    let client: Value = stack.http.post(format!("{}/api/v1/clients", stack.intakeq)).header("X-Auth-Key", "e2e-intakeq-key")
        .json(&json!({"FirstName": "Dee", "LastName": "Parted", "Email": email})).send().await.unwrap().json().await.unwrap();
    stack.http.post(format!("{}/api/v1/appointments", stack.intakeq)).header("X-Auth-Key", "e2e-intakeq-key")
        .json(&json!({"PractitionerId": "5f1a00000000000000000001", "ClientId": client["ClientId"],
                      "ServiceId": "7c1e0000-0000-4000-8000-000000000001", "LocationId": "1", "Status": "Confirmed",
                      "UtcDateTime": start}))
        .send().await.unwrap().json().await.unwrap()
}

/// A booking as a request that died right after booking (and perhaps after posting to IntakeQ) leaves it:
/// written, its job leased to that request, nothing recorded.
pub(crate) async fn book_and_die(stack: &Stack, provider: &str, email: &str, hour: i32) -> String {
    let request_id = unique("died");
    stack
        .db
        .query_one(
            "select (public.book_appointment($1, $2::text::uuid, 'cash-payment',
                       date_trunc('day', now()) + make_interval(days => 21, hours => $3), 'telehealth',
                       p_patient => jsonb_build_object('first_name', 'Dee', 'last_name', 'Parted', 'email', $4::text)
                     )->>'appointment_id')",
            &[&request_id, &provider, &hour, &email],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_request_that_died_mid_sync_is_finished_by_the_cron_without_a_duplicate() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("died"));
    let appointment = book_and_die(&stack, &provider, &email, 9).await;
    // The dying request had got as far as IntakeQ: the appointment is there.
    let posted = created_upstream(&stack, &appointment, &email).await;

    stack.run_cron().await;
    assert_eq!(stack.appointment_state(&appointment).await, "pending_sync/pending/-", "not while the request's lease holds");
    stack.make_sync_jobs_due(&[&appointment]).await;
    stack.run_cron().await;
    let sync_lines: Vec<Value> = stack.logs().into_iter().filter(|l| l["step"].as_str().is_some_and(|s| s.starts_with("sync") || s.starts_with("intakeq"))).collect();
    assert_eq!(
        stack.appointment_state(&appointment).await,
        format!("scheduled/synced/{}", posted["Id"].as_str().unwrap()),
        "{:#}",
        json!(sync_lines)
    );
    assert_eq!(appointments_of(&stack.intakeq_state().await, &email).len(), 1, "adopted, not created again");
}

#[tokio::test]
async fn two_cron_runs_at_once_process_each_job_once() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    let tag = unique("overlap");
    let mut appointments = Vec::new();
    for hour in 0..6 {
        appointments.push(book_and_die(&stack, &provider, &format!("{tag}.{hour}@example.com"), hour).await);
    }
    let ids: Vec<&str> = appointments.iter().map(String::as_str).collect();
    stack.make_sync_jobs_due(&ids).await;
    tokio::join!(stack.run_cron(), stack.run_cron());
    for appointment in &appointments {
        assert!(stack.appointment_state(appointment).await.starts_with("scheduled/synced/"));
    }
    let state = stack.intakeq_state().await;
    let ours = state["appointments"].as_array().unwrap().iter().filter(|a| a["ClientEmail"].as_str().unwrap().starts_with(&tag)).count();
    assert_eq!(ours, 6, "one IntakeQ appointment per booking");
    let attempts = stack
        .db
        .query_one("select array_agg(retry_count) from sync_retry_queue where appointment_id::text = any($1)", &[&appointments])
        .await
        .unwrap()
        .get::<_, Vec<i32>>(0);
    // Attempts count when a lease is taken: the request's that died, and then one of the two runs'.
    assert_eq!(attempts, vec![2; 6], "each job was attempted once by the cron, by one of the two runs");
}

#[tokio::test]
async fn an_existing_patient_s_intakeq_client_is_reused() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("returning"));
    let first = stack.post(&booking(&provider, &email, 22, 9), &[]).await;
    let second = stack.post(&booking(&provider, &email, 22, 14), &[]).await;
    assert_eq!((first.body["data"]["syncStatus"].clone(), second.body["data"]["syncStatus"].clone()), (json!("synced"), json!("synced")));
    let state = stack.intakeq_state().await;
    assert_eq!(state["clients"].as_array().unwrap().iter().filter(|c| c["Email"] == email.as_str()).count(), 1, "one client");
    assert_eq!(appointments_of(&state, &email).len(), 2);
    let client_calls = state["requests"].as_array().unwrap().iter().filter(|r| r["path"] == "/api/v1/clients").count();
    assert_eq!(client_calls, 2, "search and create for the first booking; the second used the stored client id");
}

#[tokio::test]
async fn a_family_sharing_an_email_gets_two_charts() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("family"));
    let parent = stack.post(&booking(&provider, &email, 20, 9), &[]).await;
    let mut child = booking(&provider, &email, 20, 11);
    child["patient"]["firstName"] = json!("Tom");
    child["patient"]["dateOfBirth"] = json!("2015-03-04");
    let child = stack.post(&child, &[]).await;
    assert_eq!((parent.status, child.status), (201, 201), "{} {}", parent.body, child.body);
    assert_ne!(parent.body["data"]["patientId"], child.body["data"]["patientId"], "two patients here");

    let state = stack.intakeq_state().await;
    let clients: Vec<&Value> = state["clients"].as_array().unwrap().iter().filter(|c| c["Email"] == email.as_str()).collect();
    assert_eq!(clients.len(), 2, "two IntakeQ clients: {clients:?}");
    let appointments = appointments_of(&state, &email);
    assert_eq!(appointments.len(), 2, "one IntakeQ appointment each");
    for (answer, first_name) in [(&parent, "Robin"), (&child, "Tom")] {
        let chart = clients.iter().find(|c| c["FirstName"] == first_name).unwrap();
        let appointment = appointments.iter().find(|a| a["Id"] == answer.body["data"]["pqAppointmentId"]).unwrap();
        assert_eq!(appointment["ClientId"], chart["ClientId"], "{first_name}'s appointment is on {first_name}'s chart");
        let kept: Option<String> = stack
            .db
            .query_one("select intakeq_client_id from patients where id::text = $1", &[&answer.body["data"]["patientId"].as_str().unwrap()])
            .await
            .unwrap()
            .get(0);
        assert_eq!(kept, Some(chart["ClientId"].to_string()), "the patient row keeps its own IntakeQ client");
    }
}
