//! The public endpoint at its edges: no answer tells a stranger who is booked when, a `patientId` is only for
//! the practice's own tools, odd but possible inputs get honest answers, a timeout tells the truth, and only the
//! times the practice offers can be booked.

use serde_json::{json, Value};

use crate::support::{booking, new_provider, start_with, unique, Stack, PARTNER_TOKEN};

/// The stack of this story: the database call gives up after 3 s (the slow-commit trigger takes 4 s).
async fn stack() -> Stack {
    start_with(module_path!(), None, false, &[("DATABASE_TIMEOUT_MS", "3000")]).await
}

/// Makes the appointment insert of any booking whose notes are `marker` take 4 s, then commit, or fail.
async fn slow_inserts(stack: &Stack) {
    stack.db.batch_execute(
        "create or replace function public.e2e_slow_insert() returns trigger language plpgsql as $$
         begin
           if new.notes = 'e2e-slow-commit' then perform pg_sleep(4); end if;
           if new.notes = 'e2e-slow-rollback' then perform pg_sleep(4); raise exception 'e2e: rolled back'; end if;
           if new.notes = 'e2e-statement-timeout' then raise exception 'e2e: canceling statement due to statement timeout' using errcode = '57014'; end if;
           return new;
         end $$;
         drop trigger if exists e2e_slow_insert on public.appointments;
         create trigger e2e_slow_insert before insert on public.appointments for each row execute function public.e2e_slow_insert();",
    ).await.unwrap();
}

fn data_ids(answer: &Value) -> Vec<&str> {
    ["appointmentId", "patientId", "pqAppointmentId"].into_iter().filter(|k| answer.to_string().contains(k)).collect()
}

#[tokio::test]
async fn a_stranger_with_a_name_and_an_email_learns_nothing_about_the_patient_s_appointment() {
    let stack = stack().await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("oracle"));
    let real = booking(&provider, &email, 30, 9);
    assert_eq!(stack.post(&real, &[]).await.status, 201);

    let mut probe = real.clone();
    probe["patient"].as_object_mut().unwrap().remove("dateOfBirth");
    let answer = stack.post(&probe, &[]).await;
    assert_eq!((answer.status, &answer.body["code"]), (409, &json!("SLOT_TAKEN")), "{}", answer.body);
    assert!(data_ids(&answer.body).is_empty(), "no ids: {}", answer.body);
    let mut wrong_birth = real.clone();
    wrong_birth["patient"]["dateOfBirth"] = json!("1970-01-01");
    assert_eq!(stack.post(&wrong_birth, &[]).await.body["code"], "SLOT_TAKEN", "a guessed date of birth learns nothing either");

    let again = stack.post(&real, &[]).await;
    assert_eq!((again.status, &again.body["data"]["isDuplicate"]), (200, &json!(true)), "the patient, fully identified, gets their booking");
}

#[tokio::test]
async fn a_patient_id_is_for_the_practice_s_tools_and_their_details_must_match() {
    let stack = stack().await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("partner"));
    let first = stack.post(&booking(&provider, &email, 31, 9), &[]).await;
    let patient_id = first.body["data"]["patientId"].as_str().unwrap().to_owned();

    let mut by_id = booking(&provider, &email, 31, 11);
    by_id["patientId"] = json!(patient_id);
    let before = stack.count("appointments", "patient_id::text = $1", &patient_id).await;
    let refused = stack.post(&by_id, &[]).await;
    assert_eq!((refused.status, &refused.body["code"]), (403, &json!("PATIENT_ID_NOT_ALLOWED")));
    let bearer = format!("Bearer {PARTNER_TOKEN}");
    let mut contradicting = by_id.clone();
    contradicting["patient"]["email"] = json!(format!("{}@example.com", unique("someone-else")));
    let mismatch = stack.post(&contradicting, &[("authorization", &bearer)]).await;
    assert_eq!((mismatch.status, &mismatch.body["code"]), (422, &json!("PATIENT_MISMATCH")), "{}", mismatch.body);
    assert_eq!(stack.count("appointments", "patient_id::text = $1", &patient_id).await, before, "nothing written");

    let booked = stack.post(&by_id, &[("authorization", &bearer)]).await;
    assert_eq!((booked.status, &booked.body["data"]["patientId"]), (201, &json!(patient_id)), "{}", booked.body);
}

#[tokio::test]
async fn odd_but_possible_inputs_get_honest_answers() {
    let stack = stack().await;
    let provider = new_provider(&stack).await;
    for start in ["0000-01-01T00:00:00Z", "-0001-06-01T00:00:00Z"] {
        let mut form = booking(&provider, &format!("{}@example.com", unique("year")), 32, 9);
        form["start"] = json!(start);
        let answer = stack.post(&form, &[]).await;
        assert_eq!((answer.status, &answer.body["fieldErrors"][0]["field"]), (400, &json!("start")), "{start}: {}", answer.body);
    }

    for (form_id, sent) in [(1, "{0F8FAD5B-D9CB-469F-A165-70867728950E}"), (2, "urn:uuid:1f8fad5b-d9cb-469f-a165-70867728950e")] {
        let canonical = sent.trim_start_matches("urn:uuid:").trim_matches(|c| c == '{' || c == '}').to_lowercase();
        let answer = stack.post(&booking(&provider, &format!("{}@example.com", unique("rid")), 32, 10 + form_id), &[("x-request-id", sent)]).await;
        assert_eq!(answer.status, 201, "{sent}: {}", answer.body);
        assert_eq!((answer.header("x-request-id"), answer.body["requestId"].as_str()), (Some(canonical.as_str()), Some(canonical.as_str())));
        assert_eq!(stack.count("appointments", "request_id = $1", &canonical).await, 1, "the canonical id on the row");
    }

    // José typed with a combining accent and as one character: one patient.
    let email = format!("{}@example.com", unique("jose"));
    let mut decomposed = booking(&provider, &email, 33, 9);
    decomposed["patient"]["firstName"] = json!("Jose\u{301}");
    let mut composed = booking(&provider, &email, 33, 11);
    composed["patient"]["firstName"] = json!("Jos\u{e9}");
    let (a, b) = (stack.post(&decomposed, &[]).await, stack.post(&composed, &[]).await);
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(a.body["data"]["patientId"], b.body["data"]["patientId"], "one patient");

    // A body past 16 KiB is refused, without a length given up front (chunked).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..64).map(|_| Ok(vec![b' '; 1024])).collect();
    let response = stack.http.post(format!("{}/api/patient-booking/book-v2", stack.worker))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send().await.unwrap();
    assert_eq!(response.status().as_u16(), 413);
}

#[tokio::test]
async fn only_offered_times_are_bookable_and_one_patient_holds_one_at_a_time() {
    let stack = stack().await;
    let (provider, other_provider) = (new_provider(&stack).await, new_provider(&stack).await);
    let email = format!("{}@example.com", unique("times"));
    let mut unaligned = booking(&provider, &email, 34, 9);
    unaligned["start"] = json!(unaligned["start"].as_str().unwrap().replace(":00:00Z", ":07:13Z"));
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(30)).format("%Y-%m-%dT%H:%M:00Z").to_string();
    let mut too_soon = booking(&provider, &email, 34, 9);
    too_soon["start"] = json!(soon);
    for (what, form) in [("unaligned", &unaligned), ("inside the notice", &too_soon)] {
        let answer = stack.post(form, &[]).await;
        assert_eq!((answer.status, &answer.body["code"], &answer.body["step"]), (422, &json!("SLOT_NOT_OFFERED"), &json!("conflict_check")), "{what}");
    }

    assert_eq!(stack.post(&booking(&provider, &email, 35, 9), &[]).await.status, 201);
    let both = stack.post(&booking(&other_provider, &email, 35, 9), &[]).await;
    assert_eq!((both.status, &both.body["code"]), (409, &json!("PATIENT_SLOT_TAKEN")), "{}", both.body);
}

#[tokio::test]
async fn a_timeout_tells_the_truth() {
    let stack = stack().await;
    slow_inserts(&stack).await;
    let provider = new_provider(&stack).await;

    let mut committed = booking(&provider, &format!("{}@example.com", unique("slow-commit")), 36, 9);
    committed["notes"] = json!("e2e-slow-commit");
    let answer = stack.post(&committed, &[("x-request-id", "e2e-slow-commit-1")]).await;
    assert_eq!(answer.status, 201, "it committed after the worker stopped waiting: {}", answer.body);
    assert_eq!(stack.count("appointments", "request_id = $1", "e2e-slow-commit-1").await, 1);
    assert_eq!(stack.count("booking_failures", "request_id = $1", "e2e-slow-commit-1").await, 0, "no failure record");

    let mut rolled_back = booking(&provider, &format!("{}@example.com", unique("slow-rollback")), 36, 11);
    rolled_back["notes"] = json!("e2e-slow-rollback");
    let answer = stack.post(&rolled_back, &[("x-request-id", "e2e-slow-rollback-1")]).await;
    assert_eq!((answer.status, &answer.body["code"]), (503, &json!("DATABASE_UNAVAILABLE")), "{}", answer.body);
    assert_eq!(stack.count("appointments", "request_id = $1", "e2e-slow-rollback-1").await, 0);

    let mut timed_out = booking(&provider, &format!("{}@example.com", unique("statement-timeout")), 36, 13);
    timed_out["notes"] = json!("e2e-statement-timeout");
    let answer = stack.post(&timed_out, &[]).await;
    assert_eq!((answer.status, &answer.body["code"]), (503, &json!("DATABASE_UNAVAILABLE")), "a statement timeout: {}", answer.body);
}
