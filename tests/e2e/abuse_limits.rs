//! The booking route against floods and bots: per client address and per patient email, attempts past the limit
//! are refused with 429 and `Retry-After`, and nothing is written; with Turnstile on, a booking needs a token
//! siteverify accepts. The practice's own tools (the partner token) pass.

use serde_json::{json, Value};

use crate::support::{booking, new_provider, start_with, unique, Stack, PARTNER_TOKEN};

const PER_IP: u32 = 3;
const PER_EMAIL: u32 = 2;

async fn limited_stack(extra: &[(&str, &str)]) -> Stack {
    let mut env = vec![("BOOKING_LIMIT_PER_IP_PER_MINUTE", "3"), ("BOOKING_LIMIT_PER_EMAIL_PER_HOUR", "2")];
    env.extend_from_slice(extra);
    start_with(module_path!(), None, false, &env).await
}

async fn appointments_for(stack: &Stack, email: &str) -> i64 {
    stack.count("appointments a join patients p on p.id = a.patient_id", "p.email = $1", email).await
}

#[tokio::test]
async fn an_address_past_its_limit_is_refused_until_the_minute_is_over_and_others_are_not() {
    let stack = limited_stack(&[]).await;
    let provider = new_provider(&stack).await;
    let address = format!("198.51.100.{}", std::process::id() % 250 + 1);
    let from = |ip: &str| vec![("cf-connecting-ip", ip.to_owned())];
    for hour in 0..PER_IP {
        let email = format!("{}@example.com", unique("per-ip"));
        let headers = from(&address);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(stack.post(&booking(&provider, &email, 40, 8 + hour), &headers).await.status, 201);
    }
    let email = format!("{}@example.com", unique("per-ip-over"));
    let form = booking(&provider, &email, 40, 12);
    let answer = stack.post(&form, &[("cf-connecting-ip", &address)]).await;
    assert_eq!((answer.status, &answer.body["code"], &answer.body["step"]), (429, &json!("RATE_LIMITED"), &json!("rate_limit")));
    assert_eq!(answer.header("retry-after"), Some("60"));
    assert_eq!(appointments_for(&stack, &email).await, 0, "nothing written");

    assert_eq!(stack.post(&form, &[("cf-connecting-ip", "203.0.113.250")]).await.status, 201, "another address books");
    let bearer = format!("Bearer {PARTNER_TOKEN}");
    let partner = booking(&provider, &format!("{}@example.com", unique("per-ip-partner")), 40, 14);
    let answer = stack.post(&partner, &[("cf-connecting-ip", &address), ("authorization", &bearer)]).await;
    assert_eq!(answer.status, 201, "the practice's own tools are not limited: {}", answer.body);
}

#[tokio::test]
async fn an_email_past_its_hourly_limit_is_refused_and_the_refusal_is_not_counted() {
    let stack = limited_stack(&[]).await;
    let provider = new_provider(&stack).await;
    let email = format!("{}@example.com", unique("per-email"));
    for (i, hour) in (0..PER_EMAIL).zip([8u32, 10]) {
        let answer = stack.post(&booking(&provider, &email, 41, hour), &[("cf-connecting-ip", &format!("192.0.2.{}", 10 + i))]).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let answer = stack.post(&booking(&provider, &email, 41, 12), &[("cf-connecting-ip", "192.0.2.30")]).await;
    assert_eq!((answer.status, &answer.body["code"]), (429, &json!("RATE_LIMITED")), "{}", answer.body);
    let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    assert_eq!(appointments_for(&stack, &email).await, PER_EMAIL as i64, "the refused attempt wrote nothing");
    let counted: i64 = stack.db.query_one("select count(*) from booking_attempts", &[]).await.unwrap().get(0);
    let stored_in_clear: i64 = stack.db
        .query_one("select count(*) from booking_attempts where position($1::text in encode(email_hash, 'escape')) > 0 or request_id like '%@%'", &[&email])
        .await.unwrap().get(0);
    assert!(counted >= PER_EMAIL as i64);
    assert_eq!(stored_in_clear, 0, "the email is kept only as a hash");
}

#[tokio::test]
async fn with_turnstile_on_a_booking_needs_a_token_siteverify_accepts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let siteverify = format!("http://{}/turnstile/v0/siteverify", listener.local_addr().unwrap());
    tokio::spawn(devstack::turnstile::serve(listener, devstack::turnstile::TurnstileConfig::default(), std::future::pending()));
    let stack = limited_stack(&[("TURNSTILE_SECRET_KEY", devstack::turnstile::DEFAULT_SECRET), ("TURNSTILE_VERIFY_URL", &siteverify)]).await;
    let provider = new_provider(&stack).await;
    let form = |tag: &str, hour: u32, token: Option<&str>| -> (String, Value) {
        let email = format!("{}@example.com", unique(tag));
        let mut form = booking(&provider, &email, 42, hour);
        if let Some(token) = token {
            form["turnstileToken"] = json!(token);
        }
        (email, form)
    };
    for (tag, hour, token) in [("no-token", 8, None), ("bad-token", 9, Some("made-up"))] {
        let (email, body) = form(tag, hour, token);
        let answer = stack.post(&body, &[("cf-connecting-ip", "192.0.2.50")]).await;
        assert_eq!((answer.status, &answer.body["code"], &answer.body["step"]), (403, &json!("BOT_CHECK_FAILED"), &json!("bot_check")), "{tag}");
        assert_eq!(appointments_for(&stack, &email).await, 0, "{tag}: nothing written");
    }
    let (email, body) = form("good-token", 10, Some(&format!("pass-{}", unique("t"))));
    assert_eq!(stack.post(&body, &[("cf-connecting-ip", "192.0.2.51")]).await.status, 201);
    assert_eq!(appointments_for(&stack, &email).await, 1);
    let (_, body) = form("header-token", 11, None);
    let token = format!("pass-{}", unique("h"));
    let answer = stack.post(&body, &[("cf-connecting-ip", "192.0.2.52"), ("cf-turnstile-response", &token)]).await;
    assert_eq!(answer.status, 201, "the token may come as the CF-Turnstile-Response header: {}", answer.body);
}
