//! Many patients at once through the worker: one slot goes to exactly one of them, the rest are told it is
//! taken (never a 5xx), and simultaneous first bookings of one new patient make one patient.

use futures::future::join_all;

use crate::support::{booking, new_provider, start, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_requests_for_one_slot_give_one_201_and_409s() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let tag = unique("race");
    let bodies: Vec<_> = (0..32).map(|i| booking(&provider, &format!("{tag}.{i}@example.com"), 14, 15)).collect();
    let answers = join_all(bodies.iter().map(|body| stack.post(body, &[]))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 31, "{statuses:?}");
    assert!(answers.iter().filter(|a| a.status == 409).all(|a| a.body["code"] == "SLOT_TAKEN" && a.body["step"] == "conflict_check"));
    assert_eq!(stack.count("appointments", "provider_id::text = $1", &provider).await, 1);
    assert_eq!(stack.count("patients", "email like $1 || '.%'", &tag).await, 1, "the 31 refused left no patient");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_first_bookings_of_one_new_patient_give_one_patient() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("first-bookings"));
    let bodies: Vec<_> = (0..16).map(|i| booking(&provider, &email, 15, i)).collect();
    let answers = join_all(bodies.iter().map(|body| stack.post(body, &[]))).await;
    assert!(answers.iter().all(|a| a.status == 201), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert_eq!(stack.count("patients", "email = $1", &email).await, 1);
    assert_eq!(stack.count("appointments", "patient_info->>'email' = $1", &email).await, 16);
}
