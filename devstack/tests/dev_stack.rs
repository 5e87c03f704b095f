//! `make dev`'s stack (scripts/dev.sh) comes up from nothing (the worker prebuilt), answers on every port,
//! the worker included, hands the worker its settings from the environment, and goes down on SIGTERM or
//! Ctrl-C leaving no process behind, whenever the signal comes: while it starts its parts, during the ready
//! wait, once ready, once or twice. It runs on free ports with data folders of its own, so it never meets a
//! `make dev` that is already running. The tests take turns: two stacks at once would only slow each other.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Ports {
    db: u16,
    rpc: u16,
    sandbox: u16,
    alerts: u16,
    worker: u16,
}

impl Ports {
    fn new(db: u16) -> Ports {
        Ports { db, rpc: free_port(), sandbox: free_port(), alerts: free_port(), worker: free_port() }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// A data folder of scripts/db.sh's, and the initdb log it keeps beside it.
fn remove_data(data: &Path) {
    let _ = std::fs::remove_dir_all(data);
    let _ = std::fs::remove_file(format!("{}.init.log", data.display()));
}

fn answers(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// One stack at a time.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Launcher {
    /// `make dev`: make leads the process group, and forwards a SIGTERM it gets to the script.
    Make,
    /// `bash scripts/dev.sh`: the script leads the process group.
    Script,
}

/// A `make dev` (or scripts/dev.sh alone) started as the leader of its own process group, its output drained to
/// the end (a closed pipe would kill the stack's next write: wrangler logs every request).
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

fn spawn_dev(ports: &Ports, data: &Path, launcher: Launcher, env: &[(String, String)]) -> Dev {
    let mut command = match launcher {
        Launcher::Make => {
            let mut make = Command::new("make");
            make.args(["--no-print-directory", "-C"]).arg(repository()).arg("dev");
            make
        }
        Launcher::Script => {
            let mut bash = Command::new("bash");
            bash.arg(repository().join("scripts/dev.sh"));
            bash
        }
    };
    let mut child = command
        .env("DB_PORT", ports.db.to_string())
        .env("PG_DATA_DIR", data)
        .env("RPC_API_PORT", ports.rpc.to_string())
        .env("INTAKEQ_SANDBOX_PORT", ports.sandbox.to_string())
        .env("ALERT_RECEIVER_PORT", ports.alerts.to_string())
        .env("WORKER_PORT", ports.worker.to_string())
        .env("DEVSTACK_BIN", env!("CARGO_BIN_EXE_devstack"))
        // `make test-stack` builds the worker first: a cargo build inside `cargo test` would wait on its lock.
        .env("WORKER_PREBUILT", "1")
        .env_remove("DATABASE_URL")
        .env_remove("SUPABASE_URL")
        .env_remove("INTAKEQ_BASE_URL")
        .env_remove("STAFF_ALERT_WEBHOOK_URL")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start scripts/dev.sh");
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let kept = stderr.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(n @ 1..) = stderr_pipe.read(&mut buffer) {
            let mut kept = kept.lock().unwrap();
            kept.push_str(&String::from_utf8_lossy(&buffer[..n]));
            if kept.len() > 64 * 1024 {
                let cut = kept.len() - 32 * 1024;
                let cut = (cut..kept.len()).find(|i| kept.is_char_boundary(*i)).unwrap_or(0);
                kept.replace_range(..cut, "[...]");
            }
        }
    });
    Dev { child, lines: received, stderr }
}

/// A test that fails half-way still stops its stack (the script stops every part; Postgres too if it started it).
impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            send(Signal::GroupTerm, self.child.id());
            let deadline = Instant::now() + Duration::from_secs(60);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Dev {
    /// Its output up to the ready block's last line, once it printed it.
    fn ready(&mut self, within: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains("Ctrl-C stops it.") => return Ok(seen),
                Ok(line) => seen.push(line),
                Err(_) => return Err(format!("no ready block within {within:?}; stderr:\n{}", self.stderr_tail())),
            }
        }
    }

    fn stderr_tail(&self) -> String {
        let stderr = self.stderr.lock().unwrap();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains(" INFO ")).collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// Starts `make dev` (or scripts/dev.sh alone) as the leader of its own process group; answers once it
/// printed its ready block.
fn start_dev(ports: &Ports, data: &PathBuf, through_make: bool) -> Dev {
    let launcher = if through_make { Launcher::Make } else { Launcher::Script };
    let mut dev = spawn_dev(ports, data, launcher, &[]);
    if let Err(problem) = dev.ready(Duration::from_secs(120)) {
        panic!("make dev's stack did not say it was ready within 120 s: {problem}");
    }
    dev
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
    let received = http.get(format!("http://127.0.0.1:{}/_receiver/messages", ports.alerts)).send().await.unwrap();
    assert_eq!(received.status(), 200, "the staff-alert receiver answers");
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
fn stop_and_assert_nothing_left(mut dev: Dev, signal: &str, whole_group: bool, ports: &Ports) {
    let child = &mut dev.child;
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
    for port in [ports.db, ports.rpc, ports.sandbox, ports.alerts, ports.worker] {
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_dev_comes_up_from_nothing_and_goes_down_leaving_nothing() {
    let _turn = turn();
    let ports = Ports::new(free_port());
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
    remove_data(&data);
}

// ---- The worker's settings -------------------------------------------------------------------------------

/// The settings the worker reads: the capitalised string literals `Config::from_lookup` passes to its readers in
/// src/config.rs (the tests below it left out), each with the number that follows it there, if one does (the
/// default of a numeric setting: `number("SYNC_BATCH_SIZE", 5, ...)`).
fn worker_settings() -> Vec<(String, Option<String>)> {
    let source = std::fs::read_to_string(repository().join("src/config.rs")).unwrap();
    let code = source.split("#[cfg(test)]").next().unwrap();
    let mut settings: Vec<(String, Option<String>)> = code
        .split("(\"")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find('"')?;
            let name = &rest[..end];
            let setting = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let after = rest[end + 1..].trim_start().strip_prefix(',').unwrap_or("").trim_start();
            let number: String = after.chars().take_while(|c| c.is_ascii_digit() || *c == '_').filter(|c| *c != '_').collect();
            setting.then(|| (name.to_owned(), (!number.is_empty()).then_some(number)))
        })
        .collect();
    settings.sort();
    settings.dedup_by(|later, first| {
        let same = later.0 == first.0;
        if same && first.1.is_none() {
            first.1 = later.1.take();
        }
        same
    });
    settings
}

/// The `[vars]` of wrangler.toml: name and value.
fn wrangler_toml_vars() -> HashMap<String, String> {
    let toml = std::fs::read_to_string(repository().join("wrangler.toml")).unwrap();
    let mut in_vars = false;
    let mut vars = HashMap::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_vars = line == "[vars]";
        } else if let (true, Some((name, value))) = (in_vars, line.split_once('=')) {
            vars.insert(name.trim().to_owned(), value.trim().trim_matches('"').to_owned());
        }
    }
    vars
}

/// Every setting the worker reads, set in `make dev`'s environment, reaches the worker (wrangler dev lists the
/// vars it was given on its command line as "(hidden)", those of wrangler.toml with their value): a setting added
/// to src/config.rs cannot be forgotten. EXPOSE_ERROR_DEBUG=true and DATABASE_TIMEOUT_MS=1 show in the answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_dev_passes_the_worker_its_settings_from_the_environment() {
    let _turn = turn();
    let settings = worker_settings();
    let names: Vec<String> = settings.iter().map(|(name, _)| name.clone()).collect();
    for expected in ["SUPABASE_URL", "EXPOSE_ERROR_DEBUG", "DATABASE_TIMEOUT_MS", "SYNC_LEASE_SECONDS", "INTAKEQ_TIMEOUT_MS"] {
        assert!(names.iter().any(|n| n == expected), "src/config.rs reads {expected}; found only {names:?}");
    }
    let dev_sh = std::fs::read_to_string(repository().join("scripts/dev.sh")).unwrap();
    let defaults = wrangler_toml_vars();
    let mut env: Vec<(String, String)> = settings
        .iter()
        .filter(|(name, _)| !dev_sh.contains(&format!("--var \"{name}:")))
        .map(|(name, number)| {
            let value = match name.as_str() {
                "EXPOSE_ERROR_DEBUG" => "true".to_owned(),
                "DATABASE_TIMEOUT_MS" => "1".to_owned(),
                // Its default, from wrangler.toml or src/config.rs; else it is text, and any will do.
                _ => defaults.get(name).or(number.as_ref()).cloned().unwrap_or_else(|| "dev-stack-test".to_owned()),
            };
            (name.clone(), value)
        })
        .collect();
    // A setting the worker may read some day, by the name it would have.
    env.push(("SYNC_DEV_STACK_CHECK".to_owned(), "1".to_owned()));

    let ports = Ports::new(free_port());
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dev-stack-settings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut dev = spawn_dev(&ports, &data, Launcher::Script, &env);
    let output = dev.ready(Duration::from_secs(120)).unwrap_or_else(|problem| panic!("{problem}"));
    let binding = |name: &str| output.iter().find(|l| l.contains(&format!("env.{name} "))).cloned();
    for name in names.iter().chain([&"SYNC_DEV_STACK_CHECK".to_owned()]) {
        let line = binding(name);
        assert!(
            line.as_deref().is_some_and(|l| l.contains("(hidden)")),
            "{name} reaches the worker from make dev's environment (as a --var of wrangler dev): {line:?}\n{}",
            output.join("\n")
        );
    }
    assert_eq!(binding("INTAKEQ_SANDBOX_API_KEY"), None, "the sandbox's own settings stay out of the worker");

    let answer = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/patient-booking/sync-health", ports.worker))
        .bearer_auth("local-admin-token")
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap();
    assert_eq!((status, body["code"].as_str()), (503, Some("DATABASE_UNAVAILABLE")), "DATABASE_TIMEOUT_MS=1 reached the worker: {body}");
    assert!(body["debug"].is_object(), "EXPOSE_ERROR_DEBUG=true reached the worker: {body}");

    stop_and_assert_nothing_left(dev, "TERM", true, &ports);
    remove_data(&data);
}

// ---- Stopping, whatever the signal and whenever it comes ---------------------------------------------------

/// A Postgres of the test's own, started once for all the cycles: dev.sh then starts (and stops) only the RPC
/// API, the sandbox and the worker, and must leave this one running.
struct Postgres {
    port: u16,
    data: PathBuf,
}

impl Postgres {
    fn start(name: &str) -> Postgres {
        let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let postgres = Postgres { port: free_port(), data };
        postgres.db_sh("start");
        postgres
    }

    fn db_sh(&self, what: &str) {
        let out = Command::new("bash")
            .arg(repository().join("scripts/db.sh"))
            .arg(what)
            .env("DB_PORT", self.port.to_string())
            .env("PG_DATA_DIR", &self.data)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "scripts/db.sh {what}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repository().join("scripts/db.sh"))
            .arg("stop")
            .env("DB_PORT", self.port.to_string())
            .env("PG_DATA_DIR", &self.data)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .status();
        remove_data(&self.data);
    }
}

struct Process {
    pid: u32,
    ppid: u32,
    pgid: u32,
    state: char,
    /// Since boot, in clock ticks: tells a pid apart from a later process given the same number.
    start: u64,
}

/// Every process, from /proc.
fn processes() -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime
        // cstime priority nice num_threads itrealvalue starttime ...
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
        Some(Process {
            pid,
            state: fields.first()?.chars().next()?,
            ppid: fields.get(1)?.parse().ok()?,
            pgid: fields.get(2)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
        })
    })
    .collect()
}

fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_owned())
        .unwrap_or_default()
}

/// Every process seen descending from a launcher while it ran, and every process group they were in.
#[derive(Default)]
struct Seen {
    processes: HashMap<u32, u64>,
    groups: HashSet<u32>,
}

impl Seen {
    fn sample(&mut self, root: u32) {
        let table = processes();
        let mut more = true;
        while more {
            more = false;
            for p in &table {
                let ours = p.pid == root || self.processes.contains_key(&p.ppid) || self.groups.contains(&p.pgid);
                if ours && p.state != 'Z' && self.processes.get(&p.pid) != Some(&p.start) {
                    self.processes.insert(p.pid, p.start);
                    self.groups.insert(p.pgid);
                    more = true;
                }
            }
        }
    }

    /// The processes seen, or of the groups seen, still alive.
    fn left(&self) -> Vec<(u32, String)> {
        processes()
            .into_iter()
            .filter(|p| p.state != 'Z')
            .filter(|p| self.processes.get(&p.pid) == Some(&p.start) || self.groups.contains(&p.pgid))
            .map(|p| (p.pid, format!("{} (group {}) {}", p.pid, p.pgid, command_line(p.pid))))
            .collect()
    }
}

/// Samples the processes descending from `root` until told to stop.
struct Watch {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Seen>,
}

impl Watch {
    fn start(root: u32) -> Watch {
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Seen::default();
            while !stop.load(Ordering::Relaxed) {
                seen.sample(root);
                std::thread::sleep(Duration::from_millis(25));
            }
            seen
        });
        Watch { done, thread }
    }

    fn finish(self) -> Seen {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Signal {
    /// SIGTERM to the whole process group, as a supervisor or CI does.
    GroupTerm,
    /// SIGINT to the whole process group: Ctrl-C at a terminal.
    GroupInt,
    /// SIGTERM to the group's leader alone: the script, or make (which passes it on).
    LeaderTerm,
}

#[derive(Clone, Copy, Debug)]
enum Moment {
    /// Right after the start: the script may not even have set its traps.
    AtOnce,
    /// Once scripts/db.sh runs (is Postgres up? then start and migrate it).
    CheckingDb,
    /// While scripts/db.sh start migrates the database.
    Migrating,
    /// Once the RPC API listens: the script waits for it to answer, the sandbox comes next.
    RpcApiListens,
    /// Once the sandbox listens: the worker is about to start.
    SandboxListens,
    /// Once the worker listens: the script waits for its /health (the ready wait).
    WorkerListens,
    /// After the ready block.
    Ready,
}

/// Waits until `moment`, failing if the launcher exits first.
fn reach(dev: &mut Dev, moment: Moment, ports: &Ports) -> Result<(), String> {
    let root = dev.child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    let reached = || -> bool {
        match moment {
            Moment::AtOnce | Moment::Ready => true,
            Moment::CheckingDb | Moment::Migrating => {
                let table = processes();
                let mut ours = vec![root];
                let mut i = 0;
                while i < ours.len() {
                    let parent = ours[i];
                    ours.extend(table.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
                    i += 1;
                }
                let sign = if let Moment::Migrating = moment { "migration up" } else { "scripts/db.sh" };
                ours.iter().any(|pid| command_line(*pid).contains(sign))
            }
            Moment::RpcApiListens => answers(ports.rpc),
            Moment::SandboxListens => answers(ports.sandbox),
            Moment::WorkerListens => answers(ports.worker),
        }
    };
    if let Moment::Ready = moment {
        return dev.ready(Duration::from_secs(120)).map(drop);
    }
    while !reached() {
        if dev.child.try_wait().unwrap().is_some() {
            return Err(format!("make dev ended before {moment:?}; stderr:\n{}", dev.stderr_tail()));
        }
        if Instant::now() > deadline {
            return Err(format!("no {moment:?} within 120 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn send(signal: Signal, leader: u32) {
    let (name, target) = match signal {
        Signal::GroupTerm => ("-TERM", format!("-{leader}")),
        Signal::GroupInt => ("-INT", format!("-{leader}")),
        Signal::LeaderTerm => ("-TERM", leader.to_string()),
    };
    let _ = Command::new("kill").args([name, "--", &target]).stderr(Stdio::null()).status();
}

/// Starts the stack, sends `signal` at `moment` (`twice`: again 10 ms later), and checks that the launcher ends,
/// that no process it started (nor any of their process groups) is left, that nothing listens on the parts'
/// ports, and that the test's Postgres, which make dev did not start, still runs.
fn cycle(postgres: &Postgres, launcher: Launcher, signal: Signal, moment: Moment, twice: bool) -> Result<(), String> {
    let ports = Ports::new(postgres.port);
    let mut dev = spawn_dev(&ports, &postgres.data, launcher, &[]);
    let leader = dev.child.id();
    let watch = Watch::start(leader);
    let mut problems = Vec::new();
    match reach(&mut dev, moment, &ports) {
        Ok(()) => {
            send(signal, leader);
            if twice {
                std::thread::sleep(Duration::from_millis(10));
                send(signal, leader);
            }
        }
        Err(problem) => {
            problems.push(problem);
            // Not reaped yet when it still runs: the group is still its own to signal.
            if dev.child.try_wait().unwrap().is_none() {
                send(Signal::GroupTerm, leader);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while dev.child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            problems.push("make dev did not end within 60 s of the signal".to_owned());
            let _ = dev.child.kill();
            let _ = dev.child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = watch.finish();
    let left = seen.left();
    if !left.is_empty() {
        let list: Vec<&str> = left.iter().map(|(_, line)| line.as_str()).collect();
        problems.push(format!("left running:\n  {}", list.join("\n  ")));
        for (pid, _) in &left {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
    for (part, port) in [("RPC API", ports.rpc), ("sandbox", ports.sandbox), ("alert receiver", ports.alerts), ("worker", ports.worker)] {
        if answers(port) {
            problems.push(format!("the {part}'s port {port} still answers"));
        }
    }
    if !answers(postgres.port) {
        problems.push("the test's Postgres, which make dev did not start, is down".to_owned());
        postgres.db_sh("start");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\nmake dev's stderr, the end:\n{}", problems.join("\n"), dev.stderr_tail()))
    }
}

/// 10 stops each by a group SIGTERM, by Ctrl-C (SIGINT to the group) and by a SIGTERM to the leader alone, at
/// every moment from right after the start to after the ready block, some with the signal sent twice; through
/// `make dev` and through scripts/dev.sh in turn.
#[test]
fn make_dev_stops_clean_whatever_the_signal_and_whenever_it_comes() {
    let _turn = turn();
    let postgres = Postgres::start("dev-stack-signals");
    let moments = [
        (Moment::AtOnce, false),
        (Moment::CheckingDb, false),
        (Moment::Migrating, false),
        (Moment::RpcApiListens, false),
        (Moment::SandboxListens, false),
        (Moment::WorkerListens, false),
        (Moment::Ready, false),
        (Moment::Ready, true),
        (Moment::WorkerListens, true),
        (Moment::Migrating, true),
    ];
    let began = Instant::now();
    let mut failures = Vec::new();
    let mut cycles = 0;
    for (k, signal) in [Signal::GroupTerm, Signal::GroupInt, Signal::LeaderTerm].into_iter().enumerate() {
        for (i, (moment, twice)) in moments.into_iter().enumerate() {
            let launcher = if (i + k) % 2 == 0 { Launcher::Make } else { Launcher::Script };
            let started = Instant::now();
            let outcome = cycle(&postgres, launcher, signal, moment, twice);
            cycles += 1;
            let what = format!("{signal:?}{} at {moment:?} through {launcher:?}", if twice { " twice" } else { "" });
            eprintln!("cycle {cycles:2}: {what}: {} in {:.1?}", if outcome.is_ok() { "clean" } else { "NOT CLEAN" }, started.elapsed());
            if let Err(problem) = outcome {
                failures.push(format!("{what}: {problem}"));
            }
        }
    }
    eprintln!("{} of {cycles} cycles clean in {:.0?}", cycles - failures.len(), began.elapsed());
    assert!(failures.is_empty(), "{} of {cycles} stops left something behind:\n\n{}", failures.len(), failures.join("\n\n"));
}
