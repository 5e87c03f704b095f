//! The IntakeQ sync under less tidy IntakeQ behaviour than `sync`'s: an ambiguous create followed by a 429, a
//! long outage, a booking cancelled before its sync (whose late create is found and cancelled), an IntakeQ id another appointment already holds. Each story
//! asserts what a patient or the staff would notice: exactly one IntakeQ appointment per booking, our row
//! holding its id, and a job that ends visibly when it cannot succeed.

use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

use crate::support::{new_provider, start_synced, unique, Stack};
use crate::sync::{appointments_of, book, book_and_die, created_upstream, staff_get};

/// One test at a time: a cron run claims every due job in this module's database.
async fn alone() -> MutexGuard<'static, ()> {
    static CRON: Mutex<()> = Mutex::const_new(());
    CRON.lock().await
}

/// The cron, after time has passed for these appointments' jobs.
async fn cron_for(stack: &Stack, appointments: &[&str]) {
    stack.make_sync_jobs_due(appointments).await;
    stack.run_cron().await;
}

async fn sync_health(stack: &Stack) -> Value {
    staff_get(stack, "/api/patient-booking/sync-health").await.json::<Value>().await.unwrap()["data"].clone()
}

#[tokio::test]
async fn an_ambiguous_create_then_a_429_then_success_gives_one_appointment() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "POST /appointments", "fault": "succeed_late", "delayMs": 8000})).await;
    let (appointment, data, email) = book(&stack, "ambiguous-429", 9).await;
    assert_eq!(data["syncStatus"], "pending", "the create timed out, yet IntakeQ made it");

    stack.intakeq_fault(json!({"endpoint": "GET /appointments", "fault": "rate_limited"})).await;
    cron_for(&stack, &[&appointment]).await;
    let (job, _) = stack.job_state(&appointment).await;
    assert!(job.starts_with("pending/") && job.ends_with("/true"), "a 429 on the lookup keeps the job looking first: {job}");

    cron_for(&stack, &[&appointment]).await;
    let upstream = appointments_of(&stack.intakeq_state().await, &email);
    assert_eq!(upstream.len(), 1, "exactly one IntakeQ appointment");
    assert_eq!(stack.appointment_state(&appointment).await, format!("scheduled/synced/{}", upstream[0]["Id"].as_str().unwrap()));
}

#[tokio::test]
async fn eight_failed_attempts_in_an_outage_then_recovery_syncs_not_dies() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "*", "fault": "server_error", "count": 1000})).await;
    let (appointment, data, email) = book(&stack, "outage", 10).await;
    assert_eq!(data["syncStatus"], "pending");
    for _ in 0..8 {
        cron_for(&stack, &[&appointment]).await;
    }
    let (job, error) = stack.job_state(&appointment).await;
    assert_eq!(job, "pending/9/false", "nine attempts (the booking's and eight), still trying: {error:?}");
    assert_eq!(stack.appointment_state(&appointment).await, "pending_sync/pending/-", "the patient was told we keep trying");

    stack.intakeq_clear_faults().await;
    cron_for(&stack, &[&appointment]).await;
    assert!(stack.appointment_state(&appointment).await.starts_with("scheduled/synced/"));
    assert_eq!(appointments_of(&stack.intakeq_state().await, &email).len(), 1, "exactly one IntakeQ appointment");
}

#[tokio::test]
async fn a_booking_cancelled_before_its_sync_is_never_posted() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "GET /clients", "fault": "server_error"})).await;
    let (appointment, data, email) = book(&stack, "cancelled", 11).await;
    assert_eq!(data["syncStatus"], "pending");
    stack.db.execute("update appointments set status = 'cancelled' where id::text = $1", &[&appointment]).await.unwrap();

    cron_for(&stack, &[&appointment]).await;
    let (job, _) = stack.job_state(&appointment).await;
    assert!(job.starts_with("cancelled/"), "{job}");
    let state = stack.intakeq_state().await;
    assert!(appointments_of(&state, &email).is_empty(), "nothing posted");
    let posts = state["requests"].as_array().unwrap().iter().filter(|r| r["method"] == "POST").count();
    assert_eq!(posts, 0, "no client, no appointment: {:#}", state["requests"]);
    assert!(sync_health(&stack).await["jobs_by_state"]["cancelled"].as_i64().unwrap() >= 1, "staff see cancelled jobs");
}

#[tokio::test]
async fn a_booking_cancelled_after_an_ambiguous_create_is_found_and_cancelled_in_intakeq_not_posted_again() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "POST /appointments", "fault": "succeed_late", "delayMs": 8000})).await;
    let (appointment, _, email) = book(&stack, "cancelled-late", 12).await;
    stack.db.execute("update appointments set status = 'cancelled' where id::text = $1", &[&appointment]).await.unwrap();

    // The lookup finds the late create and adopts it; the cancellation it now owes IntakeQ follows.
    cron_for(&stack, &[&appointment]).await;
    cron_for(&stack, &[&appointment]).await;
    let upstream = appointments_of(&stack.intakeq_state().await, &email);
    assert_eq!(upstream.len(), 1, "the late create, and nothing more");
    assert_eq!(upstream[0]["Status"], "Canceled", "cancelled in IntakeQ too: the patient is not expected");
    assert_eq!(stack.appointment_state(&appointment).await, format!("cancelled/synced/{}", upstream[0]["Id"].as_str().unwrap()));
    let (job, _) = stack.job_state(&appointment).await;
    assert!(job.starts_with("cancelled/"), "{job}");
    let health = sync_health(&stack).await;
    let reported = health["possible_duplicates"].as_array().unwrap().iter().any(|d| d["appointment_id"] == appointment.as_str());
    assert!(!reported, "nothing left for staff to do: {health}");
}

#[tokio::test]
async fn an_intakeq_id_another_appointment_holds_ends_the_job_dead_with_that_reason() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    let (holder, _, _) = book(&stack, "holder", 13).await;

    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("taken-id"));
    let appointment = book_and_die(&stack, &provider, &email, 14).await;
    // The dying request had created it in IntakeQ; our database already has that IntakeQ id on another row.
    let posted = created_upstream(&stack, &appointment, &email).await;
    let taken = posted["Id"].as_str().unwrap();
    stack.db.execute("update appointments set pq_appointment_id = $1 where id::text = $2", &[&taken, &holder]).await.unwrap();

    cron_for(&stack, &[&appointment]).await;
    let (job, error) = stack.job_state(&appointment).await;
    assert!(job.starts_with("dead/"), "{job}");
    assert_eq!(error.unwrap(), format!("IntakeQ appointment {taken} is already held by appointment {holder}"));
    assert_eq!(stack.appointment_state(&appointment).await, "pending_sync/failed/-");
    cron_for(&stack, &[&appointment]).await;
    let (again, _) = stack.job_state(&appointment).await;
    assert_eq!(again, job, "a dead job is not claimed again");
    assert_eq!(appointments_of(&stack.intakeq_state().await, &email).len(), 1, "and nothing was posted");
    let alerts = alerts_about(&stack, &appointment).await;
    assert_eq!(alerts.len(), 1, "staff are told once: {alerts:?}");
    assert!(alerts[0].contains("IntakeQ sync gave up") && alerts[0].contains(taken), "{}", alerts[0]);
    assert!(!alerts[0].contains(&email) && !alerts[0].contains("Dee") && !alerts[0].contains("Parted"), "no patient data: {}", alerts[0]);
}

/// The staff alerts the receiver got that name this appointment.
async fn alerts_about(stack: &Stack, appointment: &str) -> Vec<String> {
    stack.staff_alerts().await.into_iter().filter(|text| text.contains(appointment)).collect()
}

#[tokio::test]
async fn an_alert_the_chat_refused_is_sent_again_once() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.alert_receiver_fails(1).await;
    stack.intakeq_fault(json!({"endpoint": "POST /appointments", "fault": "invalid_service_id"})).await;
    let (appointment, data, email) = book(&stack, "alert-retry", 16).await;
    assert_eq!(data["syncStatus"], "failed");
    stack.run_cron().await;
    assert!(alerts_about(&stack, &appointment).await.is_empty(), "the chat refused the first delivery");
    stack.db.execute("update staff_alerts set next_attempt_at = now() where sent_at is null", &[]).await.unwrap();
    stack.run_cron().await;
    stack.run_cron().await;
    let alerts = alerts_about(&stack, &appointment).await;
    assert_eq!(alerts.len(), 1, "delivered on the retry, and only once: {alerts:?}");
    assert!(alerts[0].contains("Invalid ServiceId.") && !alerts[0].contains(&email), "{}", alerts[0]);
}

#[tokio::test]
async fn two_runners_over_a_slow_intakeq_post_each_booking_once() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[("SYNC_LEASE_SECONDS", "20"), ("DATABASE_TIMEOUT_MS", "5000")]).await;
    let provider = new_provider(&stack).await;
    let tag = unique("slow");
    let mut appointments = Vec::new();
    for hour in 0..4 {
        appointments.push(book_and_die(&stack, &provider, &format!("{tag}.{hour}@example.com"), hour).await);
    }
    let ids: Vec<&str> = appointments.iter().map(String::as_str).collect();
    stack.make_sync_jobs_due(&ids).await;
    // Every call takes 1.5 s: a job (search, create client, look up, post) takes about 6 s, four take longer
    // than the 20 s lease a batch claimed at once would have had.
    stack.intakeq_fault(json!({"endpoint": "*", "fault": "slow", "delayMs": 1500, "count": 1000})).await;
    let second_run = async {
        // The next cron run fires once a claimed-at-once batch's leases would have run out.
        tokio::time::sleep(std::time::Duration::from_secs(21)).await;
        stack.run_cron().await;
    };
    tokio::join!(stack.run_cron(), second_run);
    stack.intakeq_clear_faults().await;

    let state = stack.intakeq_state().await;
    for (hour, appointment) in appointments.iter().enumerate() {
        let upstream = appointments_of(&state, &format!("{tag}.{hour}@example.com"));
        assert_eq!(upstream.len(), 1, "booking {hour}: exactly one IntakeQ appointment");
        assert_eq!(stack.appointment_state(appointment).await, format!("scheduled/synced/{}", upstream[0]["Id"].as_str().unwrap()));
    }
    let health = sync_health(&stack).await;
    let ours: Vec<&Value> = health["possible_duplicates"].as_array().unwrap().iter()
        .filter(|d| appointments.iter().any(|a| d["appointment_id"] == a.as_str())).collect();
    assert!(ours.is_empty(), "no possible duplicate: {ours:?}");
}

#[tokio::test]
async fn an_evening_appointment_created_late_is_found_across_the_date_line() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "POST /appointments", "fault": "succeed_late", "delayMs": 8000})).await;
    // 03:00 UTC is the evening before in the practice's zone (America/Denver): IntakeQ's date filter sees the
    // practice's date, not the UTC one.
    let (appointment, data, email) = book(&stack, "evening", 3).await;
    assert_eq!(data["syncStatus"], "pending");
    let created = appointments_of(&stack.intakeq_state().await, &email);
    assert_eq!(created.len(), 1, "IntakeQ made it after the worker gave up");

    cron_for(&stack, &[&appointment]).await;
    assert_eq!(appointments_of(&stack.intakeq_state().await, &email).len(), 1, "adopted, not posted again");
    assert_eq!(stack.appointment_state(&appointment).await, format!("scheduled/synced/{}", created[0]["Id"].as_str().unwrap()));
}

#[tokio::test]
async fn a_refused_key_pauses_the_queue_without_spending_attempts_and_it_resumes_by_itself() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "*", "fault": "unauthorized", "count": 2})).await;
    let (appointment, data, email) = book(&stack, "rotated-key", 15).await;
    assert_eq!(data["syncStatus"], "pending");
    let health = sync_health(&stack).await;
    assert_eq!(health["queue"]["paused"], true, "{health}");
    assert!(health["queue"]["reason"].as_str().unwrap().contains("401"));
    assert_eq!(stack.job_state(&appointment).await.0, "pending/0/false", "no attempt spent");

    stack.make_sync_jobs_due(&[&appointment]).await;
    stack.run_cron().await;
    let requests = |state: &Value| state["requests"].as_array().unwrap().len();
    let before = requests(&stack.intakeq_state().await);
    stack.run_cron().await;
    assert_eq!(requests(&stack.intakeq_state().await), before, "a paused queue calls nobody until its probe is due");

    // A minute later: the probe meets the refused key once more, then the key works again.
    for _ in 0..2 {
        stack.db.execute("update sync_queue_state set next_probe_at = now() - interval '1 second'", &[]).await.unwrap();
        cron_for(&stack, &[&appointment]).await;
    }
    assert!(stack.appointment_state(&appointment).await.starts_with("scheduled/synced/"));
    assert_eq!(stack.job_state(&appointment).await.0, "done/1/false", "one attempt counted: the one that worked");
    assert_eq!(sync_health(&stack).await["queue"]["paused"], false, "resumed by itself");
    let alerts = stack.staff_alerts().await;
    let count = |start: &str| alerts.iter().filter(|t| t.starts_with(start)).count();
    assert_eq!((count("IntakeQ sync is paused"), count("IntakeQ sync has resumed")), (1, 1), "one alert each: {alerts:?}");
    assert_eq!(appointments_of(&stack.intakeq_state().await, &email).len(), 1);
}
