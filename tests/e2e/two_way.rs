//! What staff do in IntakeQ comes back to us: a cancel frees the slot on the web, a move moves our appointment,
//! an appointment booked straight into IntakeQ blocks the web from booking over it (and its cancellation frees
//! it). IntakeQ's webhooks are only nudges: repeated and out-of-order ones come to what IntakeQ says now, and a
//! lost one is repaired by the catch-up.

use chrono::{Duration, DurationRound, Utc};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

use crate::support::{booking, new_provider, new_provider_for, start_synced, unique, Stack};

const SECRET: &str = "e2e-two-way-secret-51c2";

/// `hour` o'clock UTC, `days` from now: as the form writes it, and as IntakeQ's Unix milliseconds.
fn at(days: i64, hour: i64) -> (String, i64) {
    let day = Utc::now().duration_trunc(Duration::days(1)).unwrap() + Duration::days(days) + Duration::hours(hour);
    (day.format("%Y-%m-%dT%H:%M:%SZ").to_string(), day.timestamp_millis())
}

/// One test at a time: a cron run claims every due job and nudge in this module's database, whichever test made
/// it, and reads its own test's IntakeQ sandbox.
async fn alone() -> MutexGuard<'static, ()> {
    static CRON: Mutex<()> = Mutex::const_new(());
    CRON.lock().await
}

fn email(tag: &str) -> String {
    format!("{}@example.com", unique(tag))
}

/// A booking of ours, synced (its answer waits for its first attempt here): its id and IntakeQ's.
async fn book_synced(stack: &Stack, provider: &str, days: i64, hour: u32) -> (String, String) {
    let answer = stack.post(&booking(provider, &email("ours"), days, hour), &[]).await;
    assert_eq!((answer.status, &answer.body["data"]["syncStatus"]), (201, &json!("synced")), "{}", answer.body);
    let data = &answer.body["data"];
    (data["appointmentId"].as_str().unwrap().to_owned(), data["pqAppointmentId"].as_str().unwrap().to_owned())
}

/// A provider of this test's own that IntakeQ knows as `practitioner`, and no other provider does here (a staff
/// appointment of that practitioner blocks this provider and no other).
async fn only_provider_of(stack: &Stack, practitioner: &str) -> String {
    stack.db.execute(
        "update providers set is_bookable = false, intakeq_practitioner_id = null where intakeq_practitioner_id = $1",
        &[&practitioner],
    ).await.unwrap();
    new_provider_for(stack, practitioner).await
}

async fn waiting(stack: &Stack, pq: &str) -> (i64, i32) {
    let row = stack.db.query_one(
        "select count(*), coalesce(max(times_received), 0) from intakeq_inbound_events where pq_appointment_id = $1 and processed_at is null",
        &[&pq],
    ).await.unwrap();
    (row.get(0), row.get(1))
}

async fn web_booking(stack: &Stack, provider: &str, days: i64, hour: u32) -> (u16, Value) {
    let answer = stack.post(&booking(provider, &email("web"), days, hour), &[]).await;
    (answer.status, answer.body["code"].clone())
}

#[tokio::test]
async fn a_cancel_by_staff_in_intakeq_frees_the_slot_on_the_web() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[("INTAKEQ_WEBHOOK_SECRET", SECRET)]).await;
    stack.webhooks_to_worker(SECRET, false).await;
    let provider = new_provider(&stack).await;
    let (appointment, pq) = book_synced(&stack, &provider, 9, 15).await;
    assert_eq!(web_booking(&stack, &provider, 9, 15).await, (409, json!("SLOT_TAKEN")));

    stack.sandbox(&format!("staff/appointments/{pq}/cancel"), json!({"Reason": "Called to cancel"})).await;
    assert_eq!(waiting(&stack, &pq).await.0, 1, "the webhook left a nudge");
    stack.run_cron().await;

    assert_eq!(stack.appointment_state(&appointment).await, format!("cancelled/synced/{pq}"));
    assert_eq!(waiting(&stack, &pq).await.0, 0, "the nudge is done");
    assert_eq!(web_booking(&stack, &provider, 9, 15).await.0, 201, "the slot books again on the web");
    assert_eq!(stack.intakeq_calls("POST", "/appointments/cancellation").await, 0, "cancelled there already: nothing posted back");
}

#[tokio::test]
async fn a_move_by_staff_in_intakeq_moves_our_appointment() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[("INTAKEQ_WEBHOOK_SECRET", SECRET)]).await;
    stack.webhooks_to_worker(SECRET, false).await;
    let provider = new_provider(&stack).await;
    let (appointment, pq) = book_synced(&stack, &provider, 10, 15).await;

    let (later, later_ms) = at(10, 18);
    stack.sandbox(&format!("staff/appointments/{pq}/reschedule"), json!({"UtcDateTime": later_ms})).await;
    stack.run_cron().await;

    assert_eq!(stack.appointment_start(&appointment).await, later);
    assert!(stack.appointment_state(&appointment).await.starts_with("scheduled/synced/"));
    assert_eq!(web_booking(&stack, &provider, 10, 15).await.0, 201, "the old slot is free");
    assert_eq!(web_booking(&stack, &provider, 10, 18).await, (409, json!("SLOT_TAKEN")), "the new one is taken");
    assert_eq!(stack.intakeq_calls("PUT", "/appointments").await, 0, "IntakeQ has it already: nothing written back");
}

#[tokio::test]
async fn an_appointment_booked_by_staff_in_intakeq_blocks_the_web_until_it_is_cancelled() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[("INTAKEQ_WEBHOOK_SECRET", SECRET)]).await;
    stack.webhooks_to_worker(SECRET, false).await;
    let provider = only_provider_of(&stack, "5f1a00000000000000000004").await;
    let (_, start_ms) = at(11, 15);
    let staff = stack.sandbox("staff/appointments", json!({"PractitionerId": "5f1a00000000000000000004", "UtcDateTime": start_ms,
                                                          "Duration": 60, "ClientName": "Phone Caller", "ClientEmail": "caller@example.com"})).await;
    let staff_id = staff["Id"].as_str().unwrap().to_owned();
    stack.run_cron().await;

    assert_eq!(web_booking(&stack, &provider, 11, 15).await, (409, json!("SLOT_TAKEN")), "the web cannot book over it");
    assert_eq!(web_booking(&stack, &provider, 11, 16).await.0, 201, "the hour after is free");
    let stored: i64 = stack.db.query_one(
        "select count(*) from intakeq_busy_blocks b where row_to_json(b)::text ~* 'caller|phone'", &[],
    ).await.unwrap().get(0);
    assert_eq!(stored, 0, "a block keeps no one's name or email");

    stack.sandbox(&format!("staff/appointments/{staff_id}/cancel"), json!({})).await;
    stack.run_cron().await;
    assert_eq!(web_booking(&stack, &provider, 11, 15).await.0, 201, "cancelled in IntakeQ: the block is gone");
}

#[tokio::test]
async fn repeated_and_out_of_order_webhooks_come_to_what_intakeq_says_now() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[("INTAKEQ_WEBHOOK_SECRET", SECRET)]).await;
    stack.webhooks_to_worker(SECRET, false).await;
    let provider = new_provider(&stack).await;
    let (appointment, pq) = book_synced(&stack, &provider, 12, 15).await;

    // Three moves by staff: the first one's webhook delivered twice; the next two held back, then delivered the
    // last one first.
    let (_, first_ms) = at(12, 16);
    let (_, second_ms) = at(12, 17);
    let (last, last_ms) = at(12, 19);
    stack.sandbox("webhooks/faults", json!({"repeat": 1})).await;
    stack.sandbox(&format!("staff/appointments/{pq}/reschedule"), json!({"UtcDateTime": first_ms})).await;
    stack.sandbox("webhooks/faults", json!({"hold": 2})).await;
    stack.sandbox(&format!("staff/appointments/{pq}/reschedule"), json!({"UtcDateTime": second_ms})).await;
    stack.sandbox(&format!("staff/appointments/{pq}/reschedule"), json!({"UtcDateTime": last_ms})).await;
    stack.sandbox("webhooks/release", json!({"order": "reverse"})).await;
    assert_eq!(waiting(&stack, &pq).await, (1, 4), "four deliveries, one appointment to re-read");

    stack.run_cron().await;
    assert_eq!(stack.appointment_start(&appointment).await, last, "where IntakeQ has it now, not where the last webhook said");
    stack.run_cron().await;
    assert_eq!(stack.appointment_start(&appointment).await, last, "applying again changes nothing");
    assert_eq!(stack.count("appointments", "id::text = $1 and status <> 'cancelled'", &appointment).await, 1);
}

#[tokio::test]
async fn lost_webhooks_are_repaired_by_the_catch_up() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[("INTAKEQ_WEBHOOK_SECRET", SECRET), ("INTAKEQ_CATCHUP_MINUTES", "0")]).await;
    stack.webhooks_to_worker(SECRET, false).await;
    let provider = new_provider(&stack).await;
    let blocked = only_provider_of(&stack, "5f1a00000000000000000003").await;
    let (appointment, pq) = book_synced(&stack, &provider, 13, 15).await;

    stack.sandbox("webhooks/faults", json!({"lose": 2})).await;
    stack.sandbox(&format!("staff/appointments/{pq}/cancel"), json!({})).await;
    let (_, start_ms) = at(13, 15);
    stack.sandbox("staff/appointments", json!({"PractitionerId": "5f1a00000000000000000003", "UtcDateTime": start_ms, "Duration": 60})).await;
    assert_eq!(waiting(&stack, &pq).await.0, 0, "both webhooks were lost");
    assert_eq!(stack.appointment_state(&appointment).await, format!("scheduled/synced/{pq}"), "nothing known yet");

    stack.run_cron().await;
    assert_eq!(stack.appointment_state(&appointment).await, format!("cancelled/synced/{pq}"), "the catch-up found the cancel");
    assert_eq!(web_booking(&stack, &blocked, 13, 15).await, (409, json!("SLOT_TAKEN")), "and the staff booking");
    let health: Value = crate::sync::staff_get(&stack, "/api/patient-booking/sync-health").await.json().await.unwrap();
    assert!(health["data"]["intakeq_catchup"]["last_completed_at"].is_string(), "{health}");
}

#[tokio::test]
async fn an_appointment_deleted_in_intakeq_is_found_by_the_catch_up() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[("INTAKEQ_WEBHOOK_SECRET", SECRET), ("INTAKEQ_CATCHUP_MINUTES", "0")]).await;
    stack.webhooks_to_worker(SECRET, false).await;
    let provider = new_provider(&stack).await;
    let blocked = only_provider_of(&stack, "5f1a00000000000000000002").await;
    let (appointment, pq) = book_synced(&stack, &provider, 14, 15).await;
    let (_, start_ms) = at(14, 15);
    let staff = stack.sandbox("staff/appointments", json!({"PractitionerId": "5f1a00000000000000000002", "UtcDateTime": start_ms, "Duration": 60})).await;
    stack.run_cron().await;
    assert_eq!(web_booking(&stack, &blocked, 14, 15).await.0, 409, "(the staff booking blocks the web)");

    // Staff delete both in IntakeQ: IntakeQ sends no webhook for that.
    for id in [pq.as_str(), staff["Id"].as_str().unwrap()] {
        let response = stack.http.delete(format!("{}/_sandbox/staff/appointments/{id}", stack.intakeq)).send().await.unwrap();
        assert!(response.status().is_success());
    }
    // The next pass does not list them, so each is re-read (a run or two later: the re-reads go a batch a run).
    let staff_id = staff["Id"].as_str().unwrap().to_owned();
    let mut runs = 0;
    while (stack.appointment_state(&appointment).await != format!("cancelled/synced/{pq}")
           || stack.count("intakeq_busy_blocks", "pq_appointment_id = $1", &staff_id).await > 0)
        && runs < 8
    {
        stack.run_cron().await;
        runs += 1;
    }
    assert_eq!(stack.appointment_state(&appointment).await, format!("cancelled/synced/{pq}"), "gone from IntakeQ: cancelled here");
    assert_eq!(web_booking(&stack, &blocked, 14, 15).await.0, 201, "and the deleted staff booking blocks the web no more");
}
