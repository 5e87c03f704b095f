//! The RPC API behaves as PostgREST does for what the worker uses: statuses for every SQLSTATE class, the
//! error body and headers, return shapes, arguments, authentication, one transaction per request, and many
//! requests at once. Against the real Postgres (`TEST_DATABASE_URL`).

mod support;

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use support::{install_rpc_fixtures, key, sign, start_rpc_api};

async fn api() -> String {
    install_rpc_fixtures().await;
    start_rpc_api(20).await
}

/// `POST /rest/v1/rpc/<function>` with the role's key as both `apikey` and bearer token.
async fn call(base: &str, role: &str, function: &str, body: Value) -> Response {
    let key = key(role);
    Client::new()
        .post(format!("{base}/rest/v1/rpc/{function}"))
        .header("apikey", &key)
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn status_and_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn every_sqlstate_class_gets_postgrest_s_status_and_error_body() {
    let base = api().await;
    // (SQLSTATE, message, role, expected status): one row per row of PostgREST's table.
    let cases: &[(&str, &str, &str, u16)] = &[
        ("23503", "fk", "service_role", 409),
        ("23505", "unique", "service_role", 409),
        ("25006", "read only", "service_role", 405),
        ("42883", "undefined function", "service_role", 404),
        ("42P01", "undefined table", "service_role", 404),
        ("42501", "denied", "service_role", 403),
        ("42501", "denied", "anon", 401),
        ("0L000", "grantor", "service_role", 403),
        ("0P000", "role spec", "service_role", 403),
        ("28000", "auth spec", "service_role", 403),
        ("08006", "connection", "service_role", 503),
        ("53100", "disk full", "service_role", 503),
        ("57P01", "admin shutdown", "service_role", 503),
        ("40001", "serialization", "service_role", 500),
        ("40P01", "deadlock", "service_role", 500),
        ("09000", "triggered action", "service_role", 500),
        ("25001", "tx state", "service_role", 500),
        ("2D000", "tx termination", "service_role", 500),
        ("38000", "external routine", "service_role", 500),
        ("39000", "external invocation", "service_role", 500),
        ("3B000", "savepoint", "service_role", 500),
        ("53400", "config limit", "service_role", 500),
        ("54000", "too complex", "service_role", 500),
        ("55000", "prerequisite state", "service_role", 500),
        ("57014", "canceled", "service_role", 500),
        ("58000", "system", "service_role", 500),
        ("F0000", "config file", "service_role", 500),
        ("HV000", "fdw", "service_role", 500),
        ("XX000", "internal", "service_role", 500),
        ("42P17", "recursion", "service_role", 500),
        ("21000", "more than one row", "service_role", 500),
        ("21000", "DELETE requires a WHERE clause", "service_role", 400),
        ("P0001", "raise", "service_role", 400),
        ("P0002", "no data found", "service_role", 500),
        ("PT409", "SLOT_TAKEN", "service_role", 409),
        ("PT422", "SLOT_IN_PAST", "service_role", 422),
        ("PTXYZ", "not a status", "service_role", 500),
        ("23P01", "exclusion", "service_role", 400),
        ("22P02", "invalid text", "service_role", 400),
    ];
    let mut wrong = Vec::new();
    for &(sqlstate, message, role, expected) in cases {
        let response = call(&base, role, "fidelity_raise", json!({"p_sqlstate": sqlstate, "p_message": message})).await;
        let proxy_status = response.headers().get("proxy-status").map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = status_and_json(response).await;
        let expected_body =
            json!({"code": sqlstate, "message": message, "details": "the detail", "hint": "the hint"});
        if status.as_u16() != expected
            || body != expected_body
            || proxy_status.as_deref() != Some(&format!("PostgREST; error={sqlstate}"))
        {
            wrong.push(format!("{sqlstate} as {role}: {status} {body} {proxy_status:?}, expected {expected}"));
        }
    }
    assert!(wrong.is_empty(), "answered unlike PostgREST:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn return_shapes_follow_the_function_s_return_type() {
    let base = api().await;
    let cases = [
        ("fidelity_scalar", json!(42)),
        ("fidelity_text", json!("hello")),
        ("fidelity_null", Value::Null),
        ("fidelity_json", json!({"a": [1, 2]})),
        ("fidelity_row", json!({"a": 1, "b": "one"})),
        ("fidelity_set", json!([1, 2, 3])),
        ("fidelity_empty_set", json!([])),
        ("fidelity_table", json!([{"a": 1, "b": "one"}, {"a": 2, "b": "two"}])),
    ];
    for (function, expected) in cases {
        let response = call(&base, "service_role", function, json!({})).await;
        assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8", "{function}");
        assert_eq!(status_and_json(response).await, (StatusCode::OK, expected), "{function}");
    }
    let set = call(&base, "service_role", "fidelity_set", json!({})).await;
    assert_eq!(set.headers()["content-range"], "0-2/*", "a set says which rows it holds");

    let void = call(&base, "service_role", "fidelity_void", json!({})).await;
    assert_eq!(void.status(), StatusCode::NO_CONTENT, "void answers 204");
    assert_eq!(void.text().await.unwrap(), "", "with no body");
}

#[tokio::test]
async fn arguments_are_named_by_the_body_and_converted_by_postgres() {
    let base = api().await;
    let named = |body| call(&base, "service_role", "fidelity_named", body);
    assert_eq!(status_and_json(named(json!({"a": 7})).await).await, (StatusCode::OK, json!("7/default")));
    assert_eq!(status_and_json(named(json!({"a": 7, "b": "x"})).await).await, (StatusCode::OK, json!("7/x")));

    let types = json!({"p_number": 1.5, "p_flag": true, "p_tags": ["a", "b", "c"], "p_at": "2026-01-02T03:04:05Z",
                       "p_doc": {"nested": [1]}, "p_id": "a1000000-0000-4000-8000-000000000001"});
    assert_eq!(
        status_and_json(call(&base, "service_role", "fidelity_types", types).await).await,
        (
            StatusCode::OK,
            json!({"number": 2.5, "flag": false, "tags": 3, "epoch": 1_767_323_045, "doc": {"nested": [1]},
                   "id": "a1000000-0000-4000-8000-000000000001"})
        ),
        "numbers, booleans, arrays, timestamps, json and uuids arrive as their SQL types"
    );
    let body = json!([{"any": "json"}, 1]);
    assert_eq!(
        status_and_json(call(&base, "service_role", "fidelity_whole_body", body.clone()).await).await,
        (StatusCode::OK, body),
        "a single unnamed json parameter receives the whole body"
    );

    let (status, error) = status_and_json(named(json!({"a": 1, "c": 2})).await).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::NOT_FOUND, Some("PGRST202")), "unknown argument");
    let (status, error) = status_and_json(named(json!({"b": "x"})).await).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::NOT_FOUND, Some("PGRST202")), "missing argument");
    let (status, error) = status_and_json(call(&base, "service_role", "no_such_function", json!({})).await).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::NOT_FOUND, Some("PGRST202")), "unknown function");
    assert_eq!(
        error["message"],
        "Could not find the function public.no_such_function without parameters in the schema cache"
    );
    let (status, error) = status_and_json(named(json!({"a": "seven"})).await).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::BAD_REQUEST, Some("22P02")), "a value of the wrong type");

    let malformed = Client::new()
        .post(format!("{base}/rest/v1/rpc/fidelity_named"))
        .header("apikey", key("service_role"))
        .header("content-type", "application/json")
        .body(r#"{"a": 1"#)
        .send()
        .await
        .unwrap();
    let (status, error) = status_and_json(malformed).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::BAD_REQUEST, Some("PGRST102")), "malformed JSON");

    let empty = Client::new()
        .post(format!("{base}/rest/v1/rpc/fidelity_scalar"))
        .header("apikey", key("service_role"))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(empty).await, (StatusCode::OK, json!(42)), "an empty body is {{}}");
}

#[tokio::test]
async fn the_jwt_decides_the_role_and_the_claims_reach_the_function() {
    let base = api().await;
    let (status, anon) = status_and_json(call(&base, "anon", "fidelity_whoami", json!({})).await).await;
    assert_eq!((status, &anon["role"]), (StatusCode::OK, &json!("anon")));
    let service = Client::new()
        .post(format!("{base}/rest/v1/rpc/fidelity_whoami"))
        .header("apikey", key("anon"))
        .bearer_auth(key("service_role"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    let (_, service) = status_and_json(service).await;
    assert_eq!(service["role"], "service_role", "the bearer token wins over the apikey");
    assert_eq!(service["claims"], json!({"iss": "supabase-demo", "role": "service_role", "exp": 1_983_812_996}));
    assert_eq!(service["x_request_id"], "req-123", "request headers are in request.headers");
    assert_eq!(service["method"], "POST");

    let authenticated = sign(json!({"role": "authenticated", "sub": "someone"}));
    let restricted = |token: String| {
        Client::new()
            .post(format!("{base}/rest/v1/rpc/fidelity_restricted"))
            .header("apikey", key("anon"))
            .bearer_auth(token)
            .send()
    };
    let (status, error) = status_and_json(restricted(authenticated).await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::FORBIDDEN, Some("42501")), "a role without EXECUTE: 403");
    let response = restricted(key("anon")).await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, error) = status_and_json(response).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("42501")), "anon without EXECUTE: 401");
    let (status, body) = status_and_json(restricted(key("service_role")).await.unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, json!("secret")), "service_role may");
}

#[tokio::test]
async fn bad_keys_and_tokens_are_refused_before_the_database() {
    let base = api().await;
    let request = || Client::new().post(format!("{base}/rest/v1/rpc/fidelity_scalar"));

    let (status, error) = status_and_json(request().send().await.unwrap()).await;
    assert_eq!((status, error["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("No API key found in request")));

    let forged = key("service_role").replace(|c: char| c == 'A', "B");
    let (status, error) = status_and_json(request().header("apikey", &forged).send().await.unwrap()).await;
    assert_eq!((status, error["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("Invalid API key")));

    let other_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"role": "service_role"}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-characters"),
    )
    .unwrap();
    let response = request().header("apikey", key("anon")).bearer_auth(other_secret).send().await.unwrap();
    assert!(response.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let (status, error) = status_and_json(response).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("PGRST301")), "a bad signature");

    let expired = sign(json!({"role": "service_role", "exp": chrono::Utc::now().timestamp() - 3600}));
    let response = request().header("apikey", key("anon")).bearer_auth(expired).send().await.unwrap();
    let (status, error) = status_and_json(response).await;
    assert_eq!(
        (status, error["code"].as_str(), error["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("PGRST303"), Some("JWT expired")),
        "an expired token"
    );
}

#[tokio::test]
async fn each_request_is_one_transaction() {
    let base = api().await;
    let marker = format!("tx-{}", chrono::Utc::now().timestamp_nanos_opt().unwrap());
    let failed = format!("{marker}-failed");
    let (status, _) =
        status_and_json(call(&base, "service_role", "fidelity_write", json!({"p_value": failed, "p_fail": true})).await)
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let kept = format!("{marker}-kept");
    let response = call(&base, "service_role", "fidelity_write", json!({"p_value": kept})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let rows = support::database()
        .await
        .query("select value from public.fidelity_log where value like $1 || '%'", &[&marker])
        .await
        .unwrap();
    let values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, vec![kept], "the write before the error was rolled back; the other committed");
}

#[tokio::test]
async fn get_calls_run_read_only() {
    let base = api().await;
    let get = |path: String| Client::new().get(format!("{base}/rest/v1/rpc/{path}")).header("apikey", key("service_role")).send();
    let (status, body) = status_and_json(get("fidelity_named?a=5&b=x%20y".into()).await.unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, json!("5/x y")), "query-string arguments");
    let (status, error) = status_and_json(get("fidelity_write?p_value=nope".into()).await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("25006")), "a write in a GET");
}

#[tokio::test]
async fn only_rpc_is_served() {
    let base = api().await;
    let table = Client::new().get(format!("{base}/rest/v1/patients")).header("apikey", key("service_role")).send();
    let (status, error) = status_and_json(table.await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::NOT_FOUND, Some("LOCAL_RPC_ONLY")), "a table route");
    assert!(error["message"].as_str().unwrap().contains("POST /rest/v1/rpc/<function>"));
    let put = Client::new().put(format!("{base}/rest/v1/rpc/fidelity_scalar")).header("apikey", key("service_role"));
    let (status, error) = status_and_json(put.send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("PGRST101")));
}

#[tokio::test]
async fn sixty_four_simultaneous_requests_are_all_served() {
    install_rpc_fixtures().await;
    let base = start_rpc_api(20).await;
    let requests = (0..64).map(|_| call(&base, "service_role", "fidelity_sleep", json!({"p_ms": 100})));
    let statuses: Vec<StatusCode> = futures::future::join_all(requests).await.iter().map(Response::status).collect();
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
}

#[tokio::test]
async fn a_booking_error_reaches_the_caller_in_the_contract_s_scheme() {
    let base = api().await;
    let booking = |request_id: &str, email: &str| {
        json!({"p_request_id": request_id, "p_provider_id": "a1000000-0000-4000-8000-000000000002",
               "p_payer_id": "cash-payment", "p_start": "2031-03-04T17:00:00Z", "p_location_type": "telehealth",
               "p_patient": {"first_name": "Api", "last_name": "Caller", "email": email}})
    };
    let tag = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let first = call(&base, "service_role", "book_appointment", booking(&format!("api-{tag}-1"), &format!("a.{tag}@example.com")));
    let (status, booked) = status_and_json(first.await).await;
    assert_eq!((status, &booked["status"]), (StatusCode::OK, &json!("pending_sync")));
    let second = call(&base, "service_role", "book_appointment", booking(&format!("api-{tag}-2"), &format!("b.{tag}@example.com")));
    let response = second.await;
    assert_eq!(response.headers()["proxy-status"], "PostgREST; error=PT409");
    let (status, error) = status_and_json(response).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!((&error["code"], &error["message"], &error["hint"]), (&json!("PT409"), &json!("SLOT_TAKEN"), &json!("conflict_check")));
}

#[tokio::test]
async fn a_call_whose_client_gave_up_still_runs_to_its_commit() {
    let base = api().await;
    let marker = format!("gave-up-{}", std::process::id());
    let key = key("service_role");
    let gave_up = Client::new()
        .post(format!("{base}/rest/v1/rpc/fidelity_write_later"))
        .header("apikey", &key)
        .bearer_auth(&key)
        .json(&json!({"p_value": marker, "p_ms": 600}))
        .timeout(std::time::Duration::from_millis(100))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client stopped waiting");
    let db = support::database().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows = db.query("select 1 from public.fidelity_log where value = $1", &[&marker]).await.unwrap();
        if !rows.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the write never committed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
