//! The database suite, one test binary: the concurrency guarantees of `book_appointment` (and of
//! `booking_by_request`, which waits for a booking's transaction), over separate
//! Postgres connections as PostgREST would make them (one transaction per call, role `service_role`). Needs
//! `DATABASE_URL` pointing at a migrated, seeded database; `make test-db` creates a throwaway one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use serde_json::Value;
use tokio::sync::Barrier;
use tokio_postgres::{Client, NoTls};

/// What one `book_appointment` call came to: the booking's JSON, or the error's (SQLSTATE, message, hint).
type Outcome = Result<Value, (String, String, String)>;

const SLOT_TAKEN: (&str, &str, &str) = ("PT409", "SLOT_TAKEN", "conflict_check");

/// Who a booking is for: a new patient's details, or an existing patient's id.
#[derive(Clone)]
enum Patient {
    New(String),
    Existing(String),
}

fn new_patient(first_name: &str, email: &str) -> Patient {
    Patient::New(serde_json::json!({"first_name": first_name, "last_name": "Racer", "email": email}).to_string())
}

/// A new patient who gives a date of birth: the full identity, so the same slot again is answered as a duplicate.
fn identified_patient(first_name: &str, email: &str) -> Patient {
    Patient::New(
        serde_json::json!({"first_name": first_name, "last_name": "Racer", "email": email, "date_of_birth": "1984-08-04"})
            .to_string(),
    )
}

/// One booking request: a cash booking with the test's provider, `hour` o'clock UTC 30 days from today.
#[derive(Clone)]
struct Booking {
    request_id: String,
    provider_id: String,
    hour: i32,
    patient: Patient,
    idempotency_key: Option<String>,
}

impl Booking {
    fn cash(provider_id: &str, request_id: &str, hour: i32, patient: Patient) -> Self {
        Booking { request_id: request_id.into(), provider_id: provider_id.into(), hour, patient, idempotency_key: None }
    }
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        eprintln!("the database tests need a migrated database: run them with `make test-db` (or `make test`)");
        std::process::exit(2)
    })
}

/// A connection acting as the worker does through PostgREST.
async fn connect_as_service_role() -> Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), NoTls)
        .await
        .expect("cannot connect to DATABASE_URL");
    tokio::spawn(connection);
    client.batch_execute("set role service_role").await.unwrap();
    client
}

async fn connect_as_owner() -> Client {
    let client = connect_as_service_role().await;
    client.batch_execute("reset role").await.unwrap();
    client
}

/// A tag no earlier run used, so the tests can run against the same database again.
fn unique_tag(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{test}-{nanos}")
}

/// A bookable provider of the test's own, so that no other booking can overlap its slots.
async fn new_provider(owner: &Client, tag: &str) -> String {
    let sql = "insert into public.providers (first_name, last_name, is_bookable, intakeq_practitioner_id)
               values ('Race', $1, true, $1) returning id::text";
    owner.query_one(sql, &[&tag]).await.expect("insert provider").get(0)
}

async fn book(client: &Client, booking: &Booking) -> Outcome {
    let (patient_id, patient_details) = match &booking.patient {
        Patient::New(details) => (None, Some(details)),
        Patient::Existing(id) => (Some(id), None),
    };
    let result = client
        .query_one(
            "select public.book_appointment(
               p_request_id      => $1,
               p_provider_id     => $2::text::uuid,
               p_payer_id        => 'cash-payment',
               p_start           => date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'
                                    + make_interval(days => 30, hours => $3),
               p_location_type   => 'telehealth',
               p_patient         => $4::text::jsonb,
               p_patient_id      => $5::text::uuid,
               p_idempotency_key => $6)::text",
            &[
                &booking.request_id,
                &booking.provider_id,
                &booking.hour,
                &patient_details,
                &patient_id,
                &booking.idempotency_key,
            ],
        )
        .await;
    match result {
        Ok(row) => Ok(serde_json::from_str(row.get::<_, &str>(0)).expect("book_appointment returns json")),
        Err(error) => {
            let db = error.as_db_error().unwrap_or_else(|| panic!("not a database error: {error}"));
            Err((db.code().code().to_owned(), db.message().to_owned(), db.hint().unwrap_or_default().to_owned()))
        }
    }
}

/// Opens one connection per booking, waits until all are ready, then sends them all at the same moment.
async fn book_simultaneously(bookings: Vec<Booking>) -> Vec<Outcome> {
    let barrier = Arc::new(Barrier::new(bookings.len()));
    let tasks = bookings.into_iter().map(|booking| {
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let client = connect_as_service_role().await;
            barrier.wait().await;
            book(&client, &booking).await
        })
    });
    join_all(tasks).await.into_iter().map(|joined| joined.expect("booking task panicked")).collect()
}

/// Waits until the backend `pid` is blocked on a lock held by another transaction.
async fn until_blocked(owner: &Client, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let sql = "select count(*) from pg_stat_activity where pid = $1 and wait_event_type = 'Lock'";
    while owner.query_one(sql, &[&pid]).await.unwrap().get::<_, i64>(0) == 0 {
        assert!(Instant::now() < deadline, "backend {pid} never waited on the first booking");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Books `first` in an open transaction, sends `second` on another connection, waits until the second is
/// blocked on the first, then ends the first with `commit` or `rollback`. Answers the second's outcome.
async fn book_while_first_is_uncommitted(first: Booking, second: Booking, end_first_with: &str) -> Outcome {
    let owner = connect_as_owner().await;
    let first_client = connect_as_service_role().await;
    first_client.batch_execute("begin").await.unwrap();
    book(&first_client, &first).await.expect("the first booking succeeds inside its transaction");

    let second_client = connect_as_service_role().await;
    let second_pid: i32 = second_client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    let second_task = tokio::spawn(async move { book(&second_client, &second).await });
    until_blocked(&owner, second_pid).await;
    first_client.batch_execute(end_first_with).await.unwrap();
    second_task.await.unwrap()
}

async fn count(owner: &Client, sql: &str, tag: &str) -> i64 {
    owner.query_one(sql, &[&tag]).await.expect(sql).get(0)
}

fn error_kind(error: &(String, String, String)) -> (&str, &str, &str) {
    (error.0.as_str(), error.1.as_str(), error.2.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_patients_racing_for_one_slot_get_one_appointment() {
    let owner = connect_as_owner().await;
    let tag = unique_tag("slot");
    let provider_id = new_provider(&owner, &tag).await;

    let outcomes = book_simultaneously(
        (0..32)
            .map(|i| {
                let patient = new_patient(&format!("P{i}"), &format!("{tag}.{i}@example.com"));
                Booking::cash(&provider_id, &format!("race-{i}"), 15, patient)
            })
            .collect(),
    )
    .await;

    let booked = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(booked, 1, "exactly one booking wins the slot: {outcomes:?}");
    for error in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(error_kind(error), SLOT_TAKEN, "every other booking is told the slot is taken");
    }
    let sql = "select count(*) from public.appointments a join public.providers p on p.id = a.provider_id
               where p.last_name = $1";
    assert_eq!(count(&owner, sql, &tag).await, 1, "one appointment in the database");
    let sql = "select count(*) from public.patients where email_key like $1 || '.%'";
    assert_eq!(count(&owner, sql, &tag).await, 1, "the 31 refused bookings left no patient behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_first_bookings_of_one_new_patient_give_one_patient() {
    let owner = connect_as_owner().await;
    let tag = unique_tag("patient");
    let provider_id = new_provider(&owner, &tag).await;
    let email = format!("{tag}@example.com");

    let outcomes = book_simultaneously(
        (0..16)
            .map(|i| Booking::cash(&provider_id, &format!("first-{i}"), i, new_patient("Sam", &email)))
            .collect(),
    )
    .await;

    let bookings: Vec<&Value> =
        outcomes.iter().map(|o| o.as_ref().expect("every booking of its own slot succeeds")).collect();
    let patient_ids: HashSet<&Value> = bookings.iter().map(|b| &b["patient"]["id"]).collect();
    assert_eq!(patient_ids.len(), 1, "all sixteen answers name the same patient");
    let sql = "select count(*) from public.patients where email_key = $1";
    assert_eq!(count(&owner, sql, &email).await, 1, "one patient row for one person");
    let created = bookings.iter().filter(|b| b["patient_created"] == true).count();
    assert_eq!(created, 1, "exactly one request says it created the patient");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_resubmits_of_one_booking_give_one_appointment() {
    let owner = connect_as_owner().await;
    let tag = unique_tag("resubmit");
    let provider_id = new_provider(&owner, &tag).await;
    let email = format!("{tag}@example.com");

    // Half carry the same idempotency key (a retried request), half none (a double-clicked form). With a date of
    // birth: only the full identity is told about an existing appointment.
    let outcomes = book_simultaneously(
        (0..16)
            .map(|i| Booking {
                idempotency_key: (i % 2 == 0).then(|| format!("{tag}-key")),
                ..Booking::cash(&provider_id, &format!("resubmit-{i}"), 10, identified_patient("Alex", &email))
            })
            .collect(),
    )
    .await;

    let bookings: Vec<&Value> =
        outcomes.iter().map(|o| o.as_ref().expect("a resubmitted booking never fails")).collect();
    let appointment_ids: HashSet<&Value> = bookings.iter().map(|b| &b["appointment_id"]).collect();
    assert_eq!(appointment_ids.len(), 1, "all sixteen answers name the same appointment");
    let fresh = bookings.iter().filter(|b| b["is_duplicate"] == false && b["replayed"] == false).count();
    assert_eq!(fresh, 1, "one answer is the booking, the others are replays or duplicates");
    let sql = "select count(*) from public.appointments a join public.patients p on p.id = a.patient_id
               where p.email_key = $1";
    assert_eq!(count(&owner, sql, &email).await, 1, "one appointment in the database");
}

/// The exclusion constraint decides a race the duplicate check could not see: the second booking inserts,
/// waits on the first's uncommitted row, and learns the outcome only when the first ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_booking_blocked_on_an_uncommitted_one_learns_its_outcome_when_it_ends() {
    let owner = connect_as_owner().await;
    let tag = unique_tag("blocked");
    let provider_id = new_provider(&owner, &tag).await;
    let earlier = Booking::cash(&provider_id, "earlier", 8, new_patient("Robin", &format!("{tag}@example.com")));
    let earlier = book(&owner, &earlier).await.expect("an earlier booking makes Robin a patient");
    let robin = Patient::Existing(earlier["patient"]["id"].as_str().unwrap().to_owned());
    let at = |hour: i32, request_id: &str, patient: Patient| Booking::cash(&provider_id, request_id, hour, patient);

    // The same patient's same slot, submitted twice: the second gets the first's appointment.
    let second = book_while_first_is_uncommitted(
        at(10, "double-1", robin.clone()),
        at(10, "double-2", robin.clone()),
        "commit",
    )
    .await
    .expect("a double submit is not an error");
    assert_eq!(second["is_duplicate"], true, "the second submit is answered as a duplicate");
    let sql = "select count(*) from public.appointments where request_id = 'double-1' and provider_id::text = $1";
    assert_eq!(count(&owner, sql, &provider_id).await, 1);

    // Another patient's overlapping slot: taken once the first commits.
    let other = new_patient("Kim", &format!("{tag}.kim@example.com"));
    let refused = book_while_first_is_uncommitted(
        at(12, "overlap-1", robin.clone()),
        at(12, "overlap-2", other.clone()),
        "commit",
    )
    .await
    .expect_err("the slot is taken");
    assert_eq!(error_kind(&refused), SLOT_TAKEN);

    // The first rolls back: the slot was never taken, so the second books it.
    let second = book_while_first_is_uncommitted(
        at(14, "rollback-1", robin),
        at(14, "rollback-2", other),
        "rollback",
    )
    .await
    .expect("the slot is free again");
    assert_eq!(second["is_duplicate"], false);
    let sql = "select count(*) from public.appointments where provider_id::text = $1";
    assert_eq!(count(&owner, sql, &provider_id).await, 4, "earlier, double-1, overlap-1 and rollback-2");
}

const PATIENT_SLOT_TAKEN: (&str, &str, &str) = ("PT409", "PATIENT_SLOT_TAKEN", "conflict_check");

/// One patient never holds two overlapping appointments, even when the second booking (with another provider)
/// runs while the first is uncommitted: the patient's exclusion constraint decides, and says so by its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patient_booking_two_providers_at_once_gets_one_appointment() {
    let owner = connect_as_owner().await;
    let tag = unique_tag("two-places");
    let first_provider = new_provider(&owner, &tag).await;
    let second_provider = new_provider(&owner, &format!("{tag}-2")).await;
    let patient = identified_patient("Quinn", &format!("{tag}@example.com"));
    let earlier = book(&owner, &Booking::cash(&first_provider, &format!("{tag}-0"), 8, patient)).await;
    let quinn = Patient::Existing(earlier.expect("Quinn books")["patient"]["id"].as_str().unwrap().to_owned());

    let refused = book_while_first_is_uncommitted(
        Booking::cash(&first_provider, &format!("{tag}-1"), 12, quinn.clone()),
        Booking::cash(&second_provider, &format!("{tag}-2"), 12, quinn.clone()),
        "commit",
    )
    .await
    .expect_err("Quinn is already booked then");
    assert_eq!(error_kind(&refused), PATIENT_SLOT_TAKEN);

    let booked = book_while_first_is_uncommitted(
        Booking::cash(&first_provider, &format!("{tag}-3"), 14, quinn.clone()),
        Booking::cash(&second_provider, &format!("{tag}-4"), 14, quinn),
        "rollback",
    )
    .await
    .expect("the first rolled back: Quinn is free then");
    assert_eq!(booked["is_duplicate"], false);
    let sql = "select count(*) from public.appointments a join public.providers p on p.id = a.provider_id
               where p.last_name like $1 || '%'";
    assert_eq!(count(&owner, sql, &tag).await, 3, "the earlier one, the first at 12, the second at 14");
}

/// What `booking_by_request` came to: its JSON (null when the request booked nothing), or the error.
async fn booking_by_request(client: &Client, request_id: &str, wait_ms: i32) -> Outcome {
    match client.query_one("select public.booking_by_request($1, $2)::text", &[&request_id, &wait_ms]).await {
        Ok(row) => Ok(row.get::<_, Option<&str>>(0).map_or(Value::Null, |json| serde_json::from_str(json).unwrap())),
        Err(error) => {
            let db = error.as_db_error().unwrap_or_else(|| panic!("not a database error: {error}"));
            Err((db.code().code().to_owned(), db.message().to_owned(), db.hint().unwrap_or_default().to_owned()))
        }
    }
}

/// Books in an open transaction, asks `booking_by_request` about it on another connection, waits until that
/// call is blocked on the booking, then ends the booking with `commit` or `rollback`: answers what the call said
/// and what the booking had answered inside its transaction.
async fn ask_while_booking_is_uncommitted(booking: Booking, end_with: &str) -> (Outcome, Value) {
    let owner = connect_as_owner().await;
    let booking_client = connect_as_service_role().await;
    booking_client.batch_execute("begin").await.unwrap();
    let answer = book(&booking_client, &booking).await.expect("the booking succeeds inside its transaction");

    let asking_client = connect_as_service_role().await;
    let asking_pid: i32 = asking_client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    let request_id = booking.request_id.clone();
    let asking = tokio::spawn(async move { booking_by_request(&asking_client, &request_id, 10_000).await });
    until_blocked(&owner, asking_pid).await;
    booking_client.batch_execute(end_with).await.unwrap();
    (asking.await.unwrap(), answer)
}

/// A timeout tells the truth: the worker, its booking call timed out, asks what the request booked. The answer
/// waits for the booking's transaction: the booking when it commits, null when it rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn booking_by_request_waits_for_the_booking_s_transaction() {
    let owner = connect_as_owner().await;
    let tag = unique_tag("by-request");
    let provider_id = new_provider(&owner, &tag).await;

    let committed = Booking::cash(&provider_id, &format!("{tag}-commit"), 9, new_patient("Lee", &format!("{tag}@example.com")));
    let (asked, answered) = ask_while_booking_is_uncommitted(committed, "commit").await;
    let asked = asked.expect("booking_by_request answers once the booking has committed");
    assert_eq!(asked["appointment_id"], answered["appointment_id"], "the committed booking");
    assert_eq!(asked["patient_created"], true, "whose request made the patient");
    assert_eq!((&asked["is_duplicate"], &asked["replayed"]), (&Value::Bool(false), &Value::Bool(false)));
    let mut shape: Vec<&String> = asked.as_object().unwrap().keys().collect();
    let mut expected: Vec<&String> = answered.as_object().unwrap().keys().collect();
    shape.sort();
    expected.sort();
    assert_eq!(shape, expected, "the shape of book_appointment's answer");

    let rolled_back =
        Booking::cash(&provider_id, &format!("{tag}-rollback"), 11, new_patient("Lou", &format!("{tag}.lou@example.com")));
    let (asked, _) = ask_while_booking_is_uncommitted(rolled_back, "rollback").await;
    assert_eq!(asked.expect("booking_by_request answers once the booking has rolled back"), Value::Null);

    // Still running after the wait: unavailable, not "nothing".
    let held = connect_as_service_role().await;
    held.batch_execute("begin").await.unwrap();
    let slow = Booking::cash(&provider_id, &format!("{tag}-slow"), 13, new_patient("Sol", &format!("{tag}.sol@example.com")));
    book(&held, &slow).await.expect("the booking succeeds inside its transaction");
    let asking = connect_as_service_role().await;
    let started = Instant::now();
    let refused = booking_by_request(&asking, &slow.request_id, 200).await.expect_err("the booking is still running");
    assert_eq!(error_kind(&refused), ("PT503", "DATABASE_UNAVAILABLE", "booking_rpc"));
    assert!(started.elapsed() < Duration::from_secs(5), "it waited about p_wait_ms, not for ever");
    let lock_timeout: String = asking.query_one("show lock_timeout", &[]).await.unwrap().get(0);
    assert_eq!(lock_timeout, "0", "the session's lock_timeout is as it was");
    held.batch_execute("rollback").await.unwrap();
}
