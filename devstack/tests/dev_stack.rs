//! `make dev`'s stack (scripts/dev.sh) comes up from nothing (the worker prebuilt), answers on every port,
//! the worker included, and goes down on
//! SIGTERM or Ctrl-C leaving no process behind. It runs on free ports with a data folder of its own, so it
//! never meets a `make dev` that is already running.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Ports {
    db: u16,
    rpc: u16,
    sandbox: u16,
    worker: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Starts `make dev` (or scripts/dev.sh alone) as the leader of its own process group; answers once it
/// printed its ready block.
fn start_dev(ports: &Ports, data: &PathBuf, through_make: bool) -> Child {
    let mut command = if through_make {
        let mut make = Command::new("make");
        make.args(["--no-print-directory", "-C"]).arg(repository()).arg("dev");
        make
    } else {
        let mut bash = Command::new("bash");
        bash.arg(repository().join("scripts/dev.sh"));
        bash
    };
    let mut child = command
        .env("DB_PORT", ports.db.to_string())
        .env("PG_DATA_DIR", data)
        .env("RPC_API_PORT", ports.rpc.to_string())
        .env("INTAKEQ_SANDBOX_PORT", ports.sandbox.to_string())
        .env("WORKER_PORT", ports.worker.to_string())
        .env("DEVSTACK_BIN", env!("CARGO_BIN_EXE_devstack"))
        // `make test-stack` builds the worker first: a cargo build inside `cargo test` would wait on its lock.
        .env("WORKER_PREBUILT", "1")
        .env_remove("DATABASE_URL")
        .env_remove("SUPABASE_URL")
        .env_remove("INTAKEQ_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start scripts/dev.sh");
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    // Keeps reading to the end: a closed pipe would kill the stack's next write (wrangler logs every request).
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) if line.contains("Ctrl-C stops it.") => return child,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("make dev's stack did not say it was ready within 120 s");
            }
        }
    }
}

async fn assert_stack_answers(ports: &Ports) {
    let service_key = devstack::rpc_api::auth::JwtSecret::new(devstack::rpc_api::auth::SUPABASE_DEMO_JWT_SECRET)
        .demo_key("service_role");
    let http = reqwest::Client::new();
    let recorded = http
        .post(format!("http://127.0.0.1:{}/rest/v1/rpc/record_booking_failure", ports.rpc))
        .header("apikey", &service_key)
        .bearer_auth(&service_key)
        .json(&json!({"p_request_id": "dev-stack-test", "p_step": "payer_lookup", "p_code": "INVALID_PAYER",
                      "p_message": "checking the stack"}))
        .send()
        .await
        .unwrap();
    assert_eq!(recorded.status(), 200, "the RPC API reaches the migrated database");
    let settings: Value = http
        .get(format!("http://127.0.0.1:{}/api/v1/appointments/settings", ports.sandbox))
        .header("X-Auth-Key", "sandbox-intakeq-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["Practitioners"].as_array().unwrap().len(), 4, "the IntakeQ sandbox answers");
    let health: Value = http.get(format!("http://127.0.0.1:{}/health", ports.worker)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "ok", "database": "ok"}), "the worker reaches the database through the RPC API");
    let url = format!("postgresql://postgres:postgres@127.0.0.1:{}/postgres", ports.db);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let providers: i64 = client.query_one("select count(*) from providers", &[]).await.unwrap().get(0);
    assert_eq!(providers, 4, "Postgres is seeded");
}

/// Every process descending from `root`, from `ps`.
fn descendants(root: u32) -> Vec<u32> {
    let table = Command::new("ps").args(["-eo", "pid=,ppid="]).output().unwrap();
    let pairs: Vec<(u32, u32)> = String::from_utf8_lossy(&table.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|n| n.parse::<u32>());
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(pairs.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        i += 1;
    }
    found.split_off(1)
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// Sends `signal` (to the leader alone, or to its whole group as a terminal's Ctrl-C does), then checks that
/// every process the stack started is gone and its ports are closed.
fn stop_and_assert_nothing_left(mut child: Child, signal: &str, whole_group: bool, ports: &Ports) {
    let started = descendants(child.id());
    let tree = Command::new("ps").args(["-eo", "pid,ppid,pgid,args", "--forest"]).output().unwrap();
    assert!(started.len() >= 4, "make dev started its parts: {started:?}\n{}", String::from_utf8_lossy(&tree.stdout));
    let pid = child.id() as i32;
    let target = if whole_group { format!("-{pid}") } else { pid.to_string() };
    let sent = Command::new("kill").args([&format!("-{signal}"), "--", &target]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "make dev did not stop within 60 s of SIG{signal}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = started.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    for port in [ports.db, ports.rpc, ports.sandbox, ports.worker] {
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_dev_comes_up_from_nothing_and_goes_down_leaving_nothing() {
    let ports = Ports { db: free_port(), rpc: free_port(), sandbox: free_port(), worker: free_port() };
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dev-stack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);

    // scripts/dev.sh alone, told to stop with SIGTERM.
    let child = start_dev(&ports, &data, false);
    assert_stack_answers(&ports).await;
    stop_and_assert_nothing_left(child, "TERM", false, &ports);

    // `make dev` and Ctrl-C: SIGINT to the terminal's whole process group.
    let child = start_dev(&ports, &data, true);
    assert_stack_answers(&ports).await;
    stop_and_assert_nothing_left(child, "INT", true, &ports);

    // `make dev` under a supervisor that sends SIGTERM to the group (make forwards a second one).
    let child = start_dev(&ports, &data, true);
    assert_stack_answers(&ports).await;
    stop_and_assert_nothing_left(child, "TERM", true, &ports);
    let _ = std::fs::remove_dir_all(&data);
}
