//! When the database cannot be reached or does not answer in time, the patient is told booking is
//! temporarily unavailable (503), not that something is wrong with the request, and health says so.

use serde_json::json;

use crate::support::{booking, start_with, unique};
use tokio::net::TcpListener;

#[tokio::test]
async fn an_unreachable_database_is_503_database_unavailable() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let stack = start_with(module_path!(), Some(url), false, &[]).await;
    let answer = stack.post(&booking("a1000000-0000-4000-8000-000000000001", &format!("{}@example.com", unique("down")), 3, 9), &[]).await;
    assert_eq!((answer.status, &answer.body["code"], &answer.body["step"]), (503, &json!("DATABASE_UNAVAILABLE"), &json!("booking_rpc")));
    let health = stack.http.get(format!("{}/health", stack.worker)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 503);
    assert_eq!(health.json::<serde_json::Value>().await.unwrap()["database"], "unavailable");
}

#[tokio::test]
async fn a_database_that_does_not_answer_in_time_is_503_too() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let stack = start_with(module_path!(), Some(url), false, &[("DATABASE_TIMEOUT_MS", "500")]).await;
    let body = booking("a1000000-0000-4000-8000-000000000001", &format!("{}@example.com", unique("slow")), 3, 9);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), stack.post(&body, &[]))
        .await
        .expect("the worker gave up on the database instead of waiting forever");
    assert_eq!((answer.status, &answer.body["code"]), (503, &json!("DATABASE_UNAVAILABLE")));
}
