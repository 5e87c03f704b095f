//! The end-to-end harness: the BUILT worker (build/, `make worker`) in workerd (Miniflare, through
//! tests/e2e/serve-worker.mjs) on a free port, against the RPC API (in-process, on a free port) over a
//! database of the calling module's own (`suite`, its `module_path!()`), copied from the migrated and seeded
//! `TEST_DATABASE_URL` (`make test-e2e` creates it), and, for the sync tests, the IntakeQ sandbox (in-process).
//! The worker's log lines are captured.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devstack::alert_receiver::{self, AlertReceiverConfig};
use devstack::intakeq_sandbox::{self, SandboxConfig};
use devstack::rpc_api::auth::{JwtSecret, SUPABASE_DEMO_JWT_SECRET};
use devstack::rpc_api::{self, RpcApiConfig};
use serde_json::{json, Value};
use tokio_postgres::NoTls;

pub const ALLOWED_ORIGIN: &str = "https://book.example.com";
pub const BOOKING_PATH: &str = "/api/patient-booking/book-v2";
pub const ADMIN_TOKEN: &str = "e2e-staff-token";
/// The practice's own tools: they may book for a patient record by `patientId`.
pub const PARTNER_TOKEN: &str = "e2e-partner-token";
const SANDBOX_KEY: &str = "e2e-intakeq-key";
/// The worker gives up on an IntakeQ call after this; the sandbox's slow faults take longer.
pub const INTAKEQ_TIMEOUT_MS: u64 = 3000;

pub struct Stack {
    pub worker: String,
    /// This test binary's database (superuser).
    pub database_url: String,
    /// The IntakeQ sandbox's base URL (its API is under /api/v1, its control API under /_sandbox).
    pub intakeq: String,
    /// The staff-alert receiver (a chat webhook's stand-in; the worker posts to `/hooks/e2e` when synced).
    pub alert_receiver: String,
    control: String,
    pub http: reqwest::Client,
    pub db: tokio_postgres::Client,
    logs: Arc<Mutex<Vec<String>>>,
    process: Child,
}

impl Drop for Stack {
    /// Stops the launcher and the workerd processes it started (its process group), gently first.
    fn drop(&mut self) {
        let group = format!("-{}", self.process.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.process.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.process.wait();
    }
}

/// The template database; without it the suite stops at once with one line saying how to run it.
fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        eprintln!("the end-to-end tests need the local stack: run them with `make test-e2e` (or `make test`)");
        std::process::exit(2)
    })
}

/// The database of one suite (a module of this binary): a copy of the template, made once. No job one suite
/// leaves pending can reach another's cron, and no suite's changes to the catalogue reach another's bookings.
/// Copies are made one at a time (Postgres refuses to copy a template that another copy is reading).
async fn database_url(suite: &str) -> String {
    static DATABASES: tokio::sync::Mutex<BTreeMap<String, String>> = tokio::sync::Mutex::const_new(BTreeMap::new());
    let mut databases = DATABASES.lock().await;
    let name = suite.rsplit("::").next().unwrap_or(suite).to_owned();
    if let Some(url) = databases.get(&name) {
        return url.clone();
    }
    let template: tokio_postgres::Config = test_database_url().parse().unwrap();
    let template_name = template.get_dbname().expect("TEST_DATABASE_URL names a database").to_owned();
    let own = format!("{template_name}_{name}");
    let admin_url = test_database_url().replacen(&format!("/{template_name}"), "/postgres", 1);
    let (admin, connection) = tokio_postgres::connect(&admin_url, NoTls).await.expect("connect to the server");
    tokio::spawn(connection);
    for statement in [format!("drop database if exists {own} with (force)"), format!("create database {own} template {template_name}")] {
        admin.batch_execute(&statement).await.expect("copy the template database");
    }
    let url = test_database_url().replacen(&format!("/{template_name}"), &format!("/{own}"), 1);
    // The catch-up (a read of every IntakeQ appointment of the next weeks) comes only to the story about it:
    // elsewhere its calls would be counted with the booking's.
    let (db, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect to the suite's database");
    tokio::spawn(connection);
    db.batch_execute("update intakeq_catchup_state set last_completed_at = now()").await.expect("the catch-up is done for now");
    databases.insert(name, url.clone());
    url
}

/// A tag no other test or run uses: for emails, request ids and the like.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{nanos}")
}

/// The stack without IntakeQ: bookings stay `pending_sync`, their jobs wait (what booking tests need).
/// `suite` names the database (pass `module_path!()`).
pub async fn start(suite: &str) -> Stack {
    start_with(suite, None, false, &[]).await
}

/// The stack with the IntakeQ sandbox: bookings sync.
pub async fn start_synced(suite: &str, env: &[(&str, &str)]) -> Stack {
    start_with(suite, None, true, env).await
}

/// The worker calls `supabase_url` instead of the RPC API (when given), IntakeQ when `with_intakeq`, and gets
/// `env` besides.
pub async fn start_with(suite: &str, supabase_url: Option<String>, with_intakeq: bool, env: &[(&str, &str)]) -> Stack {
    let url = database_url(suite).await;
    let (db, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect to the test database");
    tokio::spawn(connection);

    let mut database: tokio_postgres::Config = url.parse().unwrap();
    database.user("authenticator").password("postgres");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rpc_url = format!("http://{}", listener.local_addr().unwrap());
    let config = RpcApiConfig { database, jwt_secret: SUPABASE_DEMO_JWT_SECRET.into(), pool_size: 20, pool_wait: Duration::from_secs(10) };
    tokio::spawn(rpc_api::serve(listener, config, std::future::pending()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let intakeq = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = SandboxConfig { api_key: SANDBOX_KEY.into(), rate_limit_per_minute: 1000, default_delay: Duration::from_secs(8), practice_time_zone: intakeq_sandbox::DEFAULT_PRACTICE_TIME_ZONE };
    tokio::spawn(intakeq_sandbox::serve(listener, sandbox, std::future::pending()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let alert_receiver = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(alert_receiver::serve(listener, AlertReceiverConfig::default(), std::future::pending()));

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(root.join("build/index.js").exists(), "the worker is not built: run `make worker`");
    let mut command = Command::new("node");
    if with_intakeq {
        command
            .env("INTAKEQ_BASE_URL", format!("{intakeq}/api/v1"))
            .env("INTAKEQ_API_KEY", SANDBOX_KEY)
            .env("INTAKEQ_TIMEOUT_MS", INTAKEQ_TIMEOUT_MS.to_string())
            .env("STAFF_ALERT_WEBHOOK_URL", format!("{alert_receiver}/hooks/e2e"));
    }
    let mut process = command
        .arg(root.join("tests/e2e/serve-worker.mjs"))
        .env("PORT", "0")
        .env("SUPABASE_URL", supabase_url.unwrap_or(rpc_url))
        .env("SUPABASE_SERVICE_ROLE_KEY", JwtSecret::new(SUPABASE_DEMO_JWT_SECRET).demo_key("service_role"))
        .env("ALLOWED_ORIGINS", ALLOWED_ORIGIN)
        .env("EXPOSE_ERROR_DEBUG", "false")
        // The production default: on two busy cores (a browser, a fuzzer and several workerd beside) a burst of
        // bookings can take seconds. A lease must outlast an attempt: 3 IntakeQ and 2 database timeouts.
        .env("DATABASE_TIMEOUT_MS", "10000")
        .env("SYNC_LEASE_SECONDS", "30")
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("PARTNER_API_TOKEN", PARTNER_TOKEN)
        .env("MANAGE_TOKEN_SECRET", "e2e-manage-token-secret")
        // The sandbox allows 1000 calls a minute here, and so does the worker's budget; a booking's answer
        // waits for its whole first attempt. The stories about the budget and the answer's wait set their own.
        .env("INTAKEQ_CALLS_PER_MINUTE", "1000")
        .env("INTAKEQ_CALLS_PER_DAY", "100000")
        .env("INLINE_SYNC_BUDGET_MS", "60000")
        // Every test books from one address, many times for some emails: the limits are the abuse story's.
        .env("BOOKING_LIMIT_PER_IP_PER_MINUTE", "0")
        .env("BOOKING_LIMIT_PER_EMAIL_PER_HOUR", "0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("start node tests/e2e/serve-worker.mjs");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (ready, ready_url) = mpsc::channel();
    let sink = logs.clone();
    let stdout = process.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("worker ready on ") || line.starts_with("control on ") {
                let _ = ready.send(line);
            } else {
                sink.lock().unwrap().push(line);
            }
        }
    });
    let (mut worker, mut control) = (String::new(), String::new());
    for _ in 0..2 {
        let line = ready_url.recv_timeout(Duration::from_secs(30)).expect("the worker did not start within 30 s");
        match line.strip_prefix("worker ready on ") {
            Some(url) => worker = url.to_owned(),
            None => control = line.trim_start_matches("control on ").to_owned(),
        }
    }
    Stack { worker, database_url: url, intakeq, alert_receiver, control, http: reqwest::Client::new(), db, logs, process }
}

/// A bookable provider of the test's own, in network with every seeded payer, so no other test's booking
/// can meet its slots.
pub async fn new_provider(stack: &Stack) -> String {
    new_provider_for(stack, "5f1a00000000000000000001").await
}

/// A provider of the test's own (see `new_provider`) that IntakeQ knows as `practitioner`.
pub async fn new_provider_for(stack: &Stack, practitioner: &str) -> String {
    let tag = unique("provider");
    let id: String = stack
        .db
        .query_one(
            "insert into providers (first_name, last_name, is_bookable, intakeq_practitioner_id)
             values ('Test', $1, true, $2) returning id::text",
            &[&tag, &practitioner],
        )
        .await
        .unwrap()
        .get(0);
    stack
        .db
        .execute(
            "insert into provider_payer_networks (provider_id, payer_id) select $1::text::uuid, id from payers",
            &[&id],
        )
        .await
        .unwrap();
    id
}

/// The form's JSON for a new patient with `email`, at `hour` o'clock UTC `days` days from now.
pub fn booking(provider_id: &str, email: &str, days: i64, hour: u32) -> Value {
    let day = (chrono::Utc::now() + chrono::Duration::days(days)).format("%Y-%m-%d");
    json!({
        "patient": {"firstName": "Robin", "lastName": "Tester", "email": email, "phone": "+1 555 010 0199",
                    "dateOfBirth": "1988-07-06"},
        "providerId": provider_id,
        "payerId": "b2000000-0000-4000-8000-000000000001",
        "start": format!("{day}T{hour:02}:00:00Z"),
        "locationType": "telehealth",
        "memberId": "M-77"
    })
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Stack {
    /// Fires the cron trigger and waits until the scheduled handler has finished.
    pub async fn run_cron(&self) {
        let response = self.http.post(format!("{}/scheduled", self.control)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "the scheduled handler ran: {}", response.text().await.unwrap());
    }

    /// What the IntakeQ sandbox holds: clients, appointments and every request.
    pub async fn intakeq_state(&self) -> Value {
        self.http.get(format!("{}/_sandbox/state", self.intakeq)).send().await.unwrap().json().await.unwrap()
    }

    /// The staff alerts the receiver got, in order: their texts.
    pub async fn staff_alerts(&self) -> Vec<String> {
        let messages: Value = self.http.get(format!("{}/_receiver/messages", self.alert_receiver)).send().await.unwrap().json().await.unwrap();
        messages.as_array().unwrap().iter().filter_map(|m| m["body"]["text"].as_str().map(str::to_owned)).collect()
    }

    /// Makes the alert receiver fail its next `count` posts.
    pub async fn alert_receiver_fails(&self, count: u32) {
        let fault = json!({"fault": "server_error", "count": count});
        let response = self.http.post(format!("{}/_receiver/faults", self.alert_receiver)).json(&fault).send().await.unwrap();
        assert!(response.status().is_success(), "receiver fault accepted");
    }

    /// Clears every planned sandbox fault (IntakeQ is well again).
    pub async fn intakeq_clear_faults(&self) {
        let response = self.http.delete(format!("{}/_sandbox/faults", self.intakeq)).send().await.unwrap();
        assert!(response.status().is_success(), "faults cleared");
    }

    /// The job's `state/retry_count/needs_reconcile` and its last error.
    pub async fn job_state(&self, appointment_id: &str) -> (String, Option<String>) {
        let row = self
            .db
            .query_one(
                "select state || '/' || retry_count || '/' || needs_reconcile, error_message from sync_retry_queue where appointment_id::text = $1",
                &[&appointment_id],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    /// Plans a sandbox fault (see docs/development.md, the sandbox's control API).
    pub async fn intakeq_fault(&self, fault: Value) {
        let response = self.http.post(format!("{}/_sandbox/faults", self.intakeq)).json(&fault).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 204, "fault accepted: {fault}");
    }

    /// The appointment's `status/sync_status/pq_appointment_id`.
    pub async fn appointment_state(&self, appointment_id: &str) -> String {
        self.db
            .query_one(
                "select status || '/' || sync_status || '/' || coalesce(pq_appointment_id, '-') from appointments where id::text = $1",
                &[&appointment_id],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Makes the pending sync jobs of these appointments due now, their leases run out, and a 429's pause of
    /// every IntakeQ call over (time passing, for the cron).
    pub async fn make_sync_jobs_due(&self, appointments: &[&str]) {
        let ids: Vec<String> = appointments.iter().map(|a| a.to_string()).collect();
        self.db
            .execute(
                "update sync_retry_queue set next_retry_at = now() - interval '1 second',
                   locked_until = case when locked_until is null then null else now() - interval '1 second' end
                 where state = 'pending' and appointment_id::text = any($1)",
                &[&ids],
            )
            .await
            .unwrap();
        self.db.execute("update sync_queue_state set rate_limited_until = null", &[]).await.unwrap();
    }

    /// A sandbox control call (`/_sandbox/<path>`), answering its JSON (null when none).
    pub async fn sandbox(&self, path: &str, body: Value) -> Value {
        let response = self.http.post(format!("{}/_sandbox/{path}", self.intakeq)).json(&body).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "sandbox {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The sandbox posts IntakeQ's webhooks to the worker at `secret` (for staff changes; for changes made through
    /// the API too when `api_changes`).
    pub async fn webhooks_to_worker(&self, secret: &str, api_changes: bool) {
        let config = json!({"url": format!("{}/api/intakeq/webhooks/{secret}", self.worker), "apiChanges": api_changes});
        let response = self.http.put(format!("{}/_sandbox/webhooks", self.intakeq)).json(&config).send().await.unwrap();
        assert!(response.status().is_success(), "webhooks configured");
    }

    /// The IntakeQ calls the worker made of `method` on `path` (exact, without the query).
    pub async fn intakeq_calls(&self, method: &str, path: &str) -> usize {
        let state = self.intakeq_state().await;
        state["requests"].as_array().unwrap().iter().filter(|r| r["method"] == method && r["path"] == format!("/api/v1{path}")).count()
    }

    /// A cancel or reschedule of `appointment` (`action`), with `token` as the bearer when given.
    pub async fn change(&self, appointment: &str, action: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut request = self.http.post(format!("{}/api/patient-booking/appointments/{appointment}/{action}", self.worker)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the worker answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    /// The appointment's start, as our database has it (RFC 3339, UTC).
    pub async fn appointment_start(&self, appointment_id: &str) -> String {
        self.db
            .query_one(
                "select to_char(start_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from appointments where id::text = $1",
                &[&appointment_id],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> Answer {
        self.post_raw(body.to_string().into_bytes(), "application/json", headers).await
    }

    pub async fn post_raw(&self, body: Vec<u8>, content_type: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.post(format!("{}{BOOKING_PATH}", self.worker)).header("content-type", content_type).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the worker answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    /// How many rows of `table` match `condition` (SQL with $1 = `value`).
    pub async fn count(&self, table: &str, condition: &str, value: &str) -> i64 {
        let sql = format!("select count(*) from {table} where {condition}");
        self.db.query_one(&sql, &[&value]).await.expect(&sql).get(0)
    }

    /// Rows a booking for `email` may have left: patients, appointments, sync jobs.
    pub async fn rows_for_email(&self, email: &str) -> (i64, i64, i64) {
        (
            self.count("patients", "email = $1", email).await,
            self.count("appointments", "patient_info->>'email' = $1", email).await,
            self.count("sync_retry_queue q join appointments a on a.id = q.appointment_id", "a.patient_info->>'email' = $1", email).await,
        )
    }

    pub async fn failure_record(&self, request_id: &str) -> Option<(String, String, i32)> {
        self.db
            .query_opt("select step, code, http_status from booking_failures where request_id = $1", &[&request_id])
            .await
            .unwrap()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
    }

    /// The worker's log lines so far, parsed (lines that are not JSON are kept as strings).
    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().unwrap().iter().map(|l| serde_json::from_str(l).unwrap_or(Value::String(l.clone()))).collect()
    }

    pub fn raw_logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}
