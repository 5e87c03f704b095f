//! No intake service for the payer: the booking fails at service_instance_resolution. The seed's payer
//! without an instance of its own falls back to the global intake, so the test retires the global one for
//! its duration (alone in this binary, since that changes what every booking sees) and restores it.

use serde_json::json;

use crate::support::{booking, new_provider, start, unique};

#[tokio::test]
async fn service_instance_resolution_failure() {
    let stack = start(module_path!()).await;
    let provider = new_provider(&stack).await;
    let global = "update service_instances set is_active = $1 where id = 'd4000000-0000-4000-8000-000000000001'";
    stack.db.execute(global, &[&false]).await.unwrap();

    let email = format!("{}@example.com", unique("no-service"));
    let mut body = booking(&provider, &email, 11, 9);
    body["payerId"] = json!("b2000000-0000-4000-8000-000000000004");
    let request_id = unique("no-service");
    let answer = stack.post(&body, &[("X-Request-Id", &request_id)]).await;
    stack.db.execute(global, &[&true]).await.unwrap();

    assert_eq!(
        (answer.status, answer.body["code"].as_str(), answer.body["step"].as_str()),
        (422, Some("SERVICE_INSTANCE_NOT_FOUND"), Some("service_instance_resolution"))
    );
    assert_eq!(
        stack.failure_record(&request_id).await,
        Some(("service_instance_resolution".into(), "SERVICE_INSTANCE_NOT_FOUND".into(), 422))
    );
    assert_eq!(stack.rows_for_email(&email).await, (0, 0, 0));
}
