//! The intake paperwork end to end: after the IntakeQ appointment, the practice's questionnaire (or the payer's own)
//! is sent once, on the patient's own chart, and the answer and the database say where it stands, whatever
//! IntakeQ does.

use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

use crate::support::{booking, new_provider, start_synced, unique, Stack, ADMIN_TOKEN};

const GENERAL: &str = "61a000000000000000000001";
const MEDICAID: &str = "61a000000000000000000002";
const MEDICAID_PAYER: &str = "b2000000-0000-4000-8000-000000000002";

/// One test at a time: the catalogue's questionnaire settings and the cron are this module's database's.
async fn alone() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// A new patient's booking with `payer` at `hour`; answers (appointment id, the answer's data, the email).
async fn book(stack: &Stack, tag: &str, payer: &str, hour: u32) -> (String, Value, String) {
    let provider = new_provider(stack).await;
    let email = format!("{}@example.com", unique(tag));
    let mut form = booking(&provider, &email, 25, hour);
    form["payerId"] = json!(payer);
    let answer = stack.post(&form, &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let data = answer.body["data"].clone();
    (data["appointmentId"].as_str().unwrap().to_owned(), data, email)
}

/// The intakes IntakeQ holds for `email`'s client.
async fn intakes_for(stack: &Stack, email: &str) -> Vec<Value> {
    let state = stack.intakeq_state().await;
    state["intakes"].as_array().unwrap().iter().filter(|i| i["ClientEmail"] == email).cloned().collect()
}

async fn forms(stack: &Stack, appointment: &str) -> String {
    stack
        .db
        .query_one("select intake_forms_status || '/' || coalesce(intakeq_intake_id, '-') from appointments where id::text = $1", &[&appointment])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn each_payer_s_patient_gets_the_right_questionnaire_once_on_their_own_chart() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    for (tag, payer, questionnaire, hour) in [
        ("commercial", "b2000000-0000-4000-8000-000000000001", GENERAL, 9),
        ("medicaid", MEDICAID_PAYER, MEDICAID, 10),
        ("cash", "cash-payment", GENERAL, 11),
    ] {
        let (appointment, data, email) = book(&stack, tag, payer, hour).await;
        assert_eq!((&data["syncStatus"], &data["intakeFormsStatus"]), (&json!("synced"), &json!("sent")), "{tag}");
        let intakes = intakes_for(&stack, &email).await;
        assert_eq!(intakes.len(), 1, "{tag}: exactly one questionnaire");
        assert_eq!(intakes[0]["QuestionnaireId"], questionnaire, "{tag}");
        let client: Option<String> = stack.db.query_one("select intakeq_client_id from patients where email = $1", &[&email]).await.unwrap().get(0);
        assert_eq!(Some(intakes[0]["ClientId"].to_string()), client, "{tag}: on the patient's own chart");
        assert_eq!(forms(&stack, &appointment).await, format!("sent/{}", intakes[0]["Id"].as_str().unwrap()), "{tag}");
    }
}

#[tokio::test]
async fn no_questionnaire_configured_means_none_is_sent() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.db.batch_execute("update practice_settings set intakeq_questionnaire_id = null").await.unwrap();
    let (appointment, data, email) = book(&stack, "no-forms", "cash-payment", 12).await;
    stack.db.batch_execute(&format!("update practice_settings set intakeq_questionnaire_id = '{GENERAL}'")).await.unwrap();
    assert_eq!((&data["syncStatus"], &data["intakeFormsStatus"]), (&json!("synced"), &json!("not_required")));
    assert!(intakes_for(&stack, &email).await.is_empty());
    let (job, _) = stack.job_state(&appointment).await;
    assert!(job.starts_with("done/"), "{job}");
}

#[tokio::test]
async fn a_send_that_timed_out_but_reached_intakeq_is_adopted_not_repeated() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "POST /intakes/send", "fault": "succeed_late", "delayMs": 8000})).await;
    let (appointment, data, email) = book(&stack, "late-forms", "cash-payment", 13).await;
    assert_eq!((&data["syncStatus"], &data["intakeFormsStatus"]), (&json!("synced"), &json!("pending")), "the appointment stands");
    assert_eq!(intakes_for(&stack, &email).await.len(), 1, "IntakeQ sent it after the worker gave up");

    stack.make_sync_jobs_due(&[&appointment]).await;
    stack.run_cron().await;
    let intakes = intakes_for(&stack, &email).await;
    assert_eq!(intakes.len(), 1, "found, not sent again");
    assert_eq!(forms(&stack, &appointment).await, format!("sent/{}", intakes[0]["Id"].as_str().unwrap()));
}

#[tokio::test]
async fn a_refused_questionnaire_fails_visibly_and_is_sent_after_a_requeue() {
    let _alone = alone().await;
    let stack = start_synced(module_path!(), &[]).await;
    stack.intakeq_fault(json!({"endpoint": "POST /intakes/send", "fault": "invalid_service_id"})).await;
    let (appointment, data, email) = book(&stack, "refused-forms", "cash-payment", 14).await;
    assert_eq!((&data["status"], &data["intakeFormsStatus"]), (&json!("scheduled"), &json!("failed")), "the appointment stands");
    let (job, error) = stack.job_state(&appointment).await;
    assert!(job.starts_with("dead/"), "{job}");
    assert!(error.unwrap().starts_with("intake questionnaire: POST /intakes/send: rejected (400)"));
    let health: Value = stack.http.get(format!("{}/api/patient-booking/sync-health", stack.worker)).bearer_auth(ADMIN_TOKEN)
        .send().await.unwrap().json().await.unwrap();
    assert!(health["data"]["dead_jobs"].as_array().unwrap().iter().any(|j| j["appointment_id"] == appointment.as_str()));

    let requeue = stack.http.post(format!("{}/api/patient-booking/sync-jobs/requeue", stack.worker)).bearer_auth(ADMIN_TOKEN)
        .json(&json!({"appointmentId": appointment})).send().await.unwrap();
    assert_eq!(requeue.status().as_u16(), 200);
    stack.run_cron().await;
    let intakes = intakes_for(&stack, &email).await;
    assert_eq!(intakes.len(), 1, "sent once, after the requeue");
    assert!(forms(&stack, &appointment).await.starts_with("sent/"));
    let appointments = stack.intakeq_state().await["appointments"].as_array().unwrap().iter().filter(|a| a["ClientEmail"] == email.as_str()).count();
    assert_eq!(appointments, 1, "the appointment was not posted again");
}
