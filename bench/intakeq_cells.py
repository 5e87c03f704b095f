"""The IntakeQ cells of `make bench`. scripts/bench.sh starts the RPC API and the IntakeQ sandbox and builds the
worker; this starts the worker (tests/e2e/serve-worker.mjs, workerd through Miniflare) with each setting, drives
it, and writes one TSV per cell into OUT_DIR (bench/report.py turns them into tables):

  latency   intakeq_latency.tsv: a new patient's booking, posted by BENCH_IQ_CLIENTS concurrent clients
            (default 8), BENCH_IQ_BOOKINGS times (default 160) per row, while every IntakeQ call of the sandbox
            is slow (300 ms), hangs (past the worker's INTAKEQ_TIMEOUT_MS, 8000 as in production) or fails
            (500); with INLINE_SYNC_BUDGET_MS=2000 (now) and, as the same-run baseline, 600000 (the answer
            waits for the whole first attempt, as before). The call budget is kept out of the way.
  burst     intakeq_burst.tsv: 20 new patients booking at once while IntakeQ allows 10 calls a minute, a minute
            lasting 6 s for the sandbox and for the worker's budget, the cron fired every such minute
            (fire-and-forget); paced (INTAKEQ_CALLS_PER_MINUTE=10) and, as the same-run baseline, unpaced
            (10000, the setting's maximum: every caller calls as it likes, but for the pause of every caller
            after a 429). Time until all 20 are synced with their questionnaire sent, IntakeQ calls and 429s,
            and the calls in each budget minute.
  catchup   intakeq_catchup.tsv: what the catch-up (src/inbound/catch_up.rs) costs a practice with 500 upcoming
            appointments in IntakeQ (booked by staff, spread over the next 60 days across the sandbox's
            practitioners, every tenth cancelled, as IntakeQ lists cancelled ones too; webhooks off): one cron
            run with the catch-up made due, then a second at once, with INTAKEQ_CATCHUP_MINUTES=360 (the
            default) and, as the same-run baseline, 0 (every cron run). The IntakeQ calls of each run (the
            sandbox's request log: its pages), the catch-up's duration (its claim to its finish, from
            intakeq_catchup_state) and the cron run's, and the busy blocks the appointments became.

    intakeq_cells.py OUT_DIR [latency] [burst] [catchup]      (all three when none is named)

Environment: BENCH_DATABASE_URL (superuser), BENCH_RPC_URL, SUPABASE_SERVICE_ROLE_KEY, BENCH_INTAKEQ_URL (the
sandbox, without /api/v1), BENCH_INTAKEQ_KEY, BENCH_PROVIDERS (a file of bookable provider ids, one a line,
each in network with every payer and known to the sandbox). Python's standard library only.

The bench database is the bench's own: between runs (and, in the latency cell, during them) this parks the
pending sync jobs a run leaves (their next retry a month away) and, before each burst, forgets the budget's
reservations and any 429 pause, so that no run's leftovers meet the next one. The latency and burst cells mark
the catch-up done before each run (its turn then comes 6 hours later), so that none of its calls is counted in
theirs; the catch-up cell clears the busy blocks before each of its settings.
"""

import http.client
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOKING_PATH = "/api/patient-booking/book-v2"
# A payer the seed has an intake service for (Beehive Health Plan); the practice's default questionnaire applies.
PAYER_ID = "b2000000-0000-4000-8000-000000000001"
# A new patient's sync: the client search, the new client, the appointment, the questionnaire.
CALLS_PER_NEW_PATIENT = 4
INTAKEQ_TIMEOUT_MS = 8000
LATENCY_CASES = [  # (name, the sandbox's fault on every endpoint)
    ("slow", {"fault": "slow", "delayMs": 300}),
    ("hang", {"fault": "hang", "delayMs": 30000}),
    ("server_error", {"fault": "server_error"}),
]
INLINE_NOW_MS, INLINE_BEFORE_MS = 2000, 600000
BURST_BOOKINGS, BURST_RATE, BURST_MINUTE_MS = 20, 10, 6000
BURST_TIMEOUT_MINUTES = 40
# Every setting serve-worker.mjs passes on: none is inherited from the caller's environment, each is set here.
WORKER_SETTINGS = ["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "ALLOWED_ORIGINS", "EXPOSE_ERROR_DEBUG",
                   "DATABASE_TIMEOUT_MS", "SYNC_LEASE_SECONDS", "INTAKEQ_BASE_URL", "INTAKEQ_API_KEY",
                   "INTAKEQ_TIMEOUT_MS", "SYNC_BATCH_SIZE", "SYNC_MAX_ATTEMPTS", "SYNC_MAX_BACKOFF_MINUTES",
                   "SYNC_RETRY_WINDOW_HOURS", "ADMIN_TOKEN", "STAFF_ALERT_WEBHOOK_URL", "INTAKEQ_CALLS_PER_MINUTE",
                   "INTAKEQ_CALLS_PER_DAY", "INTAKEQ_BUDGET_MINUTE_MS", "INLINE_SYNC_BUDGET_MS", "PARTNER_API_TOKEN",
                   "BOOKING_LIMIT_PER_IP_PER_MINUTE", "BOOKING_LIMIT_PER_EMAIL_PER_HOUR", "TURNSTILE_SECRET_KEY",
                   "TURNSTILE_VERIFY_URL", "INTAKEQ_WEBHOOK_SECRET", "MANAGE_TOKEN_SECRET", "INTAKEQ_CATCHUP_DAYS",
                   "INTAKEQ_CATCHUP_MINUTES"]

DATABASE = os.environ["BENCH_DATABASE_URL"]
SANDBOX = os.environ["BENCH_INTAKEQ_URL"].rstrip("/")


def say(text):
    print(f"bench: {text}", flush=True)


def sql(query):
    done = subprocess.run(["psql", DATABASE, "-XqAt", "-v", "ON_ERROR_STOP=1", "-c", query], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"psql: {done.stderr.strip()}")
    return done.stdout.strip()


def call(method, url, body=None, timeout=30, headers=None):
    """A control call (the sandbox's, the worker's cron): its JSON answer, or None when it has no body."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


# The worker -------------------------------------------------------------------------------------------------------
running = []


class Worker:
    """tests/e2e/serve-worker.mjs on a free port with these settings; its output in OUT_DIR/worker-NAME.log."""

    def __init__(self, out, name, settings):
        env = {k: v for k, v in os.environ.items() if k not in WORKER_SETTINGS}
        env.update({
            "PORT": "0",
            "SUPABASE_URL": os.environ["BENCH_RPC_URL"],
            "SUPABASE_SERVICE_ROLE_KEY": os.environ["SUPABASE_SERVICE_ROLE_KEY"],
            "INTAKEQ_BASE_URL": f"{SANDBOX}/api/v1",
            "INTAKEQ_API_KEY": os.environ["BENCH_INTAKEQ_KEY"],
            "INTAKEQ_TIMEOUT_MS": str(INTAKEQ_TIMEOUT_MS),
            "DATABASE_TIMEOUT_MS": "10000",
            "SYNC_LEASE_SECONDS": "60",
            # One load generator, one address, a new email each booking: the abuse limits are not measured here.
            "BOOKING_LIMIT_PER_IP_PER_MINUTE": "0",
            "BOOKING_LIMIT_PER_EMAIL_PER_HOUR": "0",
            # The catch-up as deployed (wrangler.toml); the cells that do not measure it mark it done before a run.
            "INTAKEQ_CATCHUP_DAYS": "60",
            "INTAKEQ_CATCHUP_MINUTES": "360",
        })
        env.update({k: str(v) for k, v in settings.items()})
        self.name = name
        self.log_path = os.path.join(out, f"worker-{name}.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(["node", "tests/e2e/serve-worker.mjs"], cwd=ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        running.append(self)
        self.url = self.control = None
        deadline = time.monotonic() + 60
        while not (self.url and self.control):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the worker {name} did not start: see {self.log_path}")
            time.sleep(0.05)
            for line in open(self.log_path, errors="replace"):
                if line.startswith("worker ready on "):
                    self.url = line.split(" on ", 1)[1].strip()
                elif line.startswith("control on "):
                    self.control = line.split(" on ", 1)[1].strip()
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def stop(self):
        """SIGTERM to its process group (node and its workerd), SIGKILL if it is still there after 10 s."""
        if self in running:
            running.remove(self)
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # workerd may outlive node by a moment: the group, once more.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def fire_cron(self):
        """POST /scheduled without waiting for the run to end (the real cron fires whether or not it has)."""
        threading.Thread(target=self._cron, daemon=True).start()

    def _cron(self):
        try:
            call("POST", f"{self.control}/scheduled", timeout=600)
        except Exception as error:  # the worker stopped under a run still going, or the run failed: logged only
            print(f"bench: a cron run of {self.name}: {error}", file=sys.stderr)


# Bookings ---------------------------------------------------------------------------------------------------------
class Slots:
    """Each booking a new patient and a slot no other booking of this run takes: provider n of the bench's, at
    hour n // providers from midnight UTC 40 days ahead (wrk's bookings take slots from 2 days ahead)."""

    def __init__(self, providers):
        self.providers = providers
        self.base = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=40)
        self.tag = str(int(time.time()))
        self.next = 0
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            n, self.next = self.next, self.next + 1
        start = self.base + timedelta(hours=n // len(self.providers))
        return {
            "patient": {"firstName": "Bench", "lastName": "Tester", "email": f"iq.{self.tag}.{n}@example.com",
                        "phone": "+1 555 010 0199", "dateOfBirth": "1988-07-06"},
            "providerId": self.providers[n % len(self.providers)],
            "payerId": PAYER_ID,
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "locationType": "telehealth",
            "memberId": f"M-{n}",
        }


def book(worker, form):
    """Posts one booking: (latency ms, HTTP status or 0 for no answer, its body's data or {})."""
    body = json.dumps(form).encode()
    connection = http.client.HTTPConnection(worker.host, worker.port, timeout=120)
    started = time.monotonic()
    try:
        connection.request("POST", BOOKING_PATH, body, {"content-type": "application/json"})
        response = connection.getresponse()
        text = response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        return (time.monotonic() - started) * 1000, 0, {}
    finally:
        connection.close()
    elapsed = (time.monotonic() - started) * 1000
    try:
        data = json.loads(text).get("data") or {}
    except ValueError:
        data = {}
    return elapsed, status, data


def percentile(sorted_values, p):
    """Nearest rank."""
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


# The database's leftovers -----------------------------------------------------------------------------------------
PARK = """update sync_retry_queue set next_retry_at = now() + interval '30 days'
          where id in (select id from sync_retry_queue
                       where state = 'pending' and (locked_until is null or locked_until <= now())
                         and next_retry_at < now() + interval '1 day'
                       for update skip locked)"""
# When no worker of this script runs: every pending job, a lease held by a worker that has stopped too (the
# end-to-end bench's worker books without IntakeQ, leaving thousands of jobs that would come due).
PARK_ALL = """update sync_retry_queue
              set next_retry_at = now() + interval '30 days',
                  locked_until = case when locked_until > now() then now() else locked_until end
              where state = 'pending'"""
# The catch-up just completed: with INTAKEQ_CATCHUP_MINUTES=360 its next turn is 6 hours away, so a cell that does
# not measure it counts none of its calls (its figures stay comparable with runs from before it existed).
CATCHUP_DONE = "update intakeq_catchup_state set last_completed_at = now(), failures = 0"


def wait_until_no_attempt_runs(limit_s=90):
    """Until no sync job is leased (an attempt that went on after its answer has recorded its result)."""
    deadline = time.monotonic() + limit_s
    while sql("select count(*) from sync_retry_queue where state = 'pending' and locked_until > now()") != "0":
        if time.monotonic() > deadline:
            say("warning: sync jobs still leased after 90 s")
            return
        time.sleep(0.25)


class Parker(threading.Thread):
    """During the latency runs, every second: a failed first attempt's job comes due a minute later (its backoff);
    a due older job makes the next booking's attempt give way to the cron, untried, which would turn the cell
    into a measure of that. No cron runs in this cell, so its jobs are parked instead."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(1):
            try:
                sql(PARK)
            except RuntimeError as error:
                print(f"bench: parking: {error}", file=sys.stderr)

    def stop(self):
        self.stopping.set()
        self.join()


# The latency cell -------------------------------------------------------------------------------------------------
def latency_cell(out, slots):
    bookings = int(os.environ.get("BENCH_IQ_BOOKINGS", "160"))
    clients = int(os.environ.get("BENCH_IQ_CLIENTS", "8"))
    sql(PARK_ALL)
    sql(CATCHUP_DONE)  # no cron runs in this cell; marked all the same
    call("POST", f"{SANDBOX}/_sandbox/reset")
    call("PUT", f"{SANDBOX}/_sandbox/rate-limit", {"perMinute": 100000, "perDay": 100000000, "minuteMs": 60000})
    budget_off = {"INTAKEQ_CALLS_PER_MINUTE": 10000, "INTAKEQ_CALLS_PER_DAY": 1000000}
    workers = {
        "before": Worker(out, "latency-before", {**budget_off, "INLINE_SYNC_BUDGET_MS": INLINE_BEFORE_MS}),
        "now": Worker(out, "latency-now", {**budget_off, "INLINE_SYNC_BUDGET_MS": INLINE_NOW_MS}),
    }
    rows = []
    parker = Parker()
    parker.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            # Warm-up, IntakeQ healthy (not measured): each worker's first bookings compile and connect.
            for worker in workers.values():
                warm = list(pool.map(lambda _: book(worker, slots.take()), range(clients * 2)))
                refused = [a[:2] for a in warm if a[1] != 201]
                if refused:
                    raise RuntimeError(f"warm-up of {worker.name}: {len(refused)} bookings not 201: {refused[:3]} "
                                       f"(see {worker.log_path})")
            wait_until_no_attempt_runs()
            for case, fault in LATENCY_CASES:
                call("POST", f"{SANDBOX}/_sandbox/faults", {"endpoint": "*", "count": 4294967295, **fault})
                for setting, budget_ms in (("before", INLINE_BEFORE_MS), ("now", INLINE_NOW_MS)):
                    worker = workers[setting]
                    started = time.monotonic()
                    results = list(pool.map(lambda _: book(worker, slots.take()), range(bookings)))
                    took = time.monotonic() - started
                    wait_until_no_attempt_runs()
                    latencies = sorted(r[0] for r in results)
                    non201 = sum(1 for r in results if r[1] != 201)
                    synced = sum(1 for r in results if r[2].get("syncStatus") == "synced")
                    row = {"case": case, "setting": setting, "inline_budget_ms": budget_ms, "bookings": bookings,
                           "clients": clients, "p50_ms": percentile(latencies, 0.50), "p95_ms": percentile(latencies, 0.95),
                           "p99_ms": percentile(latencies, 0.99), "max_ms": latencies[-1], "non201": non201,
                           "answered_synced": synced}
                    rows.append(row)
                    say(f"IntakeQ {case:<12} answer waits at most {budget_ms:>6} ms: p50 {row['p50_ms']:.0f} ms, "
                        f"p95 {row['p95_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, max {row['max_ms']:.0f} ms; "
                        f"{synced} of {bookings} answered synced, {non201} not 201 ({took:.0f} s)")
                call("DELETE", f"{SANDBOX}/_sandbox/faults")
    finally:
        parker.stop()
        for worker in workers.values():
            worker.stop()
    columns = list(rows[0])
    with open(os.path.join(out, "intakeq_latency.tsv"), "w") as f:
        f.write("\t".join(columns) + "\n")
        for row in rows:
            f.write("\t".join(f"{row[c]:.1f}" if isinstance(row[c], float) else str(row[c]) for c in columns) + "\n")


# The burst cell ---------------------------------------------------------------------------------------------------
def burst(out, slots, label, calls_per_minute, calls_per_day):
    # A clean start: no job of an earlier run due, no reservation in the budget's windows, no 429 pause; the
    # sandbox forgets its requests and counts and gets IntakeQ's limit on the fast clock.
    sql(PARK_ALL)
    sql("delete from intakeq_call_reservations")
    sql("update sync_queue_state set rate_limited_until = null")
    sql(CATCHUP_DONE)
    call("POST", f"{SANDBOX}/_sandbox/reset")
    call("PUT", f"{SANDBOX}/_sandbox/rate-limit", {"perMinute": BURST_RATE, "perDay": 500, "minuteMs": BURST_MINUTE_MS})
    worker = Worker(out, f"burst-{label}", {
        "INTAKEQ_CALLS_PER_MINUTE": calls_per_minute, "INTAKEQ_CALLS_PER_DAY": calls_per_day,
        "INTAKEQ_BUDGET_MINUTE_MS": BURST_MINUTE_MS, "INLINE_SYNC_BUDGET_MS": INLINE_NOW_MS,
    })
    try:
        call("GET", f"{worker.url}/health")
        minute_s = BURST_MINUTE_MS / 1000
        forms = [slots.take() for _ in range(BURST_BOOKINGS)]
        started_ms = time.time() * 1000
        started = time.monotonic()
        ticking = threading.Event()

        def cron():  # at the end of every budget minute after the burst (the first a minute in)
            k = 1
            while not ticking.wait(max(0.0, started + k * minute_s - time.monotonic())):
                worker.fire_cron()
                k += 1

        ticker = threading.Thread(target=cron, daemon=True)
        ticker.start()
        with ThreadPoolExecutor(BURST_BOOKINGS) as pool:
            answers = list(pool.map(lambda form: book(worker, form), forms))
        answered_s = time.monotonic() - started
        refused = [a for a in answers if a[1] != 201]
        if refused:
            raise RuntimeError(f"burst {label}: {len(refused)} bookings not 201: {refused[:3]}")
        ids = ",".join(f"'{a[2]['appointmentId']}'" for a in answers)
        answered_synced = sum(1 for a in answers if a[2].get("syncStatus") == "synced")
        deadline = started + BURST_TIMEOUT_MINUTES * minute_s
        done = 0
        while True:
            done = int(sql(f"select count(*) from appointments where id in ({ids}) "
                           "and sync_status = 'synced' and intake_forms_status = 'sent'"))
            if done == BURST_BOOKINGS or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        ticking.set()
        stats = call("GET", f"{SANDBOX}/_sandbox/stats")
        requests = call("GET", f"{SANDBOX}/_sandbox/state")["requests"]
    finally:
        worker.stop()
    minutes = elapsed / minute_s
    buckets = max(1, math.ceil(minutes))
    calls_by_minute, limited_by_minute = [0] * buckets, [0] * buckets
    for request in requests:
        minute = min(buckets - 1, max(0, int((request["at"] - started_ms) // BURST_MINUTE_MS)))
        calls_by_minute[minute] += 1
        limited_by_minute[minute] += request.get("status") == 429
    row = {"label": label, "calls_per_minute": calls_per_minute, "bookings": BURST_BOOKINGS, "synced": done,
           "answered_synced": answered_synced, "answered_s": round(answered_s, 2),
           "minutes": round(minutes, 2), "timed_out": done < BURST_BOOKINGS, "timeout_minutes": BURST_TIMEOUT_MINUTES,
           "calls": stats["calls"], "rate_limited": stats["rateLimited"],
           "calls_needed": BURST_BOOKINGS * CALLS_PER_NEW_PATIENT, "rate_per_minute": BURST_RATE,
           "calls_by_minute": ",".join(map(str, calls_by_minute)),
           "rate_limited_by_minute": ",".join(map(str, limited_by_minute))}
    say(f"burst {label} (INTAKEQ_CALLS_PER_MINUTE={calls_per_minute}): {done} of {BURST_BOOKINGS} synced and sent after "
        f"{minutes:.2f} budget minutes{' (TIMED OUT)' if row['timed_out'] else ''}; {stats['calls']} IntakeQ calls, "
        f"{stats['rateLimited']} answered 429; {answered_synced} answered synced; calls a minute {row['calls_by_minute']}")
    return row


def burst_cell(out, slots):
    rows = [burst(out, slots, "paced", BURST_RATE, 500), burst(out, slots, "unpaced", 10000, 1000000)]
    sql(PARK_ALL)
    columns = list(rows[0])
    with open(os.path.join(out, "intakeq_burst.tsv"), "w") as f:
        f.write("\t".join(columns) + "\n")
        for row in rows:
            f.write("\t".join(str(row[c]).lower() if isinstance(row[c], bool) else str(row[c]) for c in columns) + "\n")


# The catch-up cell ------------------------------------------------------------------------------------------------
CATCHUP_APPOINTMENTS, CATCHUP_CANCEL_EVERY, CATCHUP_DAYS = 500, 10, 60
CATCHUP_SETTINGS = [("default", 360), ("every_run", 0)]  # (label, INTAKEQ_CATCHUP_MINUTES)
INTAKEQ_PAGE_SIZE = 100
DAILY_BUDGET = 500  # INTAKEQ_CALLS_PER_DAY in wrangler.toml: IntakeQ's standard plan
# A lease held by no run of the worker: while it lasts the catch-up is not due, whatever the setting (0 included).
CATCHUP_HELD = """update intakeq_catchup_state
                  set locked_by = 'bench', lease_token = gen_random_uuid(), locked_until = now() + interval '5 minutes'"""
# Due: last completed a day ago, no failure to back off from, no lease.
CATCHUP_DUE = """update intakeq_catchup_state
                 set last_completed_at = now() - interval '1 day', last_started_at = now() - interval '1 day',
                     failures = 0, last_error = null, locked_by = null, lease_token = null, locked_until = null"""
# The last run: when it started, whether it completed, how long from its claim to its finish, what it counted.
CATCHUP_STATE = """select json_build_object(
                     'started', last_started_at, 'completed', coalesce(last_completed_at >= last_started_at, false),
                     'ms', round(extract(epoch from last_completed_at - last_started_at) * 1000),
                     'failures', failures, 'error', last_error, 'counts', last_counts)
                   from intakeq_catchup_state"""


def seed_practice(practitioners):
    """Staff book CATCHUP_APPOINTMENTS appointments in the sandbox (IntakeQ sees them like any other): from 2 hours on,
    one every CATCHUP_DAYS days / CATCHUP_APPOINTMENTS (about 2.9 hours), round robin over the practitioners, 60 or
    30 minutes long, on a half-hour grid at :15 or :45 (every booking of the bench starts on the hour: one of ours
    at the same start would make the appointment 'ignored', not a block). Every CATCHUP_CANCEL_EVERY-th is then
    cancelled by staff. Answers (every id, the ids not cancelled)."""
    grid, step = 30 * 60000, CATCHUP_DAYS * 86400000 // CATCHUP_APPOINTMENTS
    first = (int(time.time() * 1000) // grid + 4) * grid + 15 * 60000
    ids, active = [], []
    for n in range(CATCHUP_APPOINTMENTS):
        appointment = call("POST", f"{SANDBOX}/_sandbox/staff/appointments", {
            "PractitionerId": practitioners[n % len(practitioners)],
            "UtcDateTime": first + n * step // grid * grid,
            "Duration": 60 if n // len(practitioners) % 2 == 0 else 30,
        })
        ids.append(appointment["Id"])
        if n % CATCHUP_CANCEL_EVERY == CATCHUP_CANCEL_EVERY - 1:
            call("POST", f"{SANDBOX}/_sandbox/staff/appointments/{appointment['Id']}/cancel", {"Reason": "bench"})
        else:
            active.append(appointment["Id"])
    return ids, active


def cron_run(worker):
    """Fires the cron and waits for its run to end: (the IntakeQ calls it made: the sandbox's request log since
    the last count, the run's milliseconds, the catch-up's state after it)."""
    before = call("GET", f"{SANDBOX}/_sandbox/stats")["calls"]
    started = time.monotonic()
    call("POST", f"{worker.control}/scheduled", timeout=600)
    elapsed_ms = (time.monotonic() - started) * 1000
    requests = call("GET", f"{SANDBOX}/_sandbox/state")["requests"][before:]
    return requests, elapsed_ms, json.loads(sql(CATCHUP_STATE))


def is_page(request):
    """A catch-up page: GET /appointments with a page (not a client's appointments)."""
    query = urllib.parse.parse_qs(request.get("query") or "")
    return (request["method"] == "GET" and request["path"].rstrip("/").endswith("/appointments")
            and "page" in query and "client" not in query)


def catchup(out, label, minutes, practitioners):
    # A clean start: no sync job due (its calls would be counted), no reservation or 429 pause in the budget, no
    # busy block of an earlier setting; the sandbox empty, its limit out of the way, no webhook target.
    sql(PARK_ALL)
    sql("delete from intakeq_call_reservations")
    sql("update sync_queue_state set rate_limited_until = null")
    sql("delete from intakeq_busy_blocks")
    sql(CATCHUP_HELD)
    call("POST", f"{SANDBOX}/_sandbox/reset")
    # Every setting as deployed (wrangler.toml) but the catch-up's period and the call budget, which is out of the
    # way: the runs measure what the catch-up asks for, not what a budget would let it have.
    worker = Worker(out, f"catchup-{label}", {
        "INTAKEQ_CATCHUP_MINUTES": minutes, "INTAKEQ_CATCHUP_DAYS": CATCHUP_DAYS,
        "INTAKEQ_CALLS_PER_MINUTE": 10000, "INTAKEQ_CALLS_PER_DAY": 1000000, "INTAKEQ_BUDGET_MINUTE_MS": 60000,
        "INLINE_SYNC_BUDGET_MS": INLINE_NOW_MS, "SYNC_BATCH_SIZE": 5, "SYNC_MAX_BACKOFF_MINUTES": 30,
        "SYNC_RETRY_WINDOW_HOURS": 72, "ALLOWED_ORIGINS": "", "EXPOSE_ERROR_DEBUG": "false",
    })
    try:
        call("GET", f"{worker.url}/health")
        # Warm-up (not measured): one cron run while the catch-up's lease is held, so the measured run does not
        # pay for the scheduled handler's first start.
        warm_calls, warm_ms, _ = cron_run(worker)
        if warm_calls:
            raise RuntimeError(f"catch-up {label}: the warm-up cron run made {len(warm_calls)} IntakeQ calls")
        call("POST", f"{SANDBOX}/_sandbox/reset")
        call("PUT", f"{SANDBOX}/_sandbox/rate-limit", {"perMinute": 100000, "perDay": 100000000, "minuteMs": 60000})
        call("PUT", f"{SANDBOX}/_sandbox/webhooks", {"url": None})
        ids, active = seed_practice(practitioners)
        listed = len(call("GET", f"{SANDBOX}/_sandbox/state")["appointments"])
        sql(CATCHUP_DUE)
        first_calls, first_ms, first = cron_run(worker)
        second_calls, second_ms, second = cron_run(worker)  # at once
        active_list = ",".join(f"'{i}'" for i in active)
        blocks = int(sql(f"select count(*) from intakeq_busy_blocks where pq_appointment_id in ({active_list})"))
        cancelled_list = ",".join(f"'{i}'" for i in sorted(set(ids) - set(active)))
        cancelled_blocks = int(sql(f"select count(*) from intakeq_busy_blocks where pq_appointment_id in ({cancelled_list})"))
    finally:
        worker.stop()
    with open(os.path.join(out, f"catchup-{label}-requests.json"), "w") as f:
        json.dump({"first": first_calls, "second": second_calls, "first_state": first, "second_state": second}, f, indent=1)
    if not first["completed"]:
        raise RuntimeError(f"catch-up {label}: the first run did not complete: {first}")
    pages = [r for r in first_calls if is_page(r)]
    second_ran = second["started"] != first["started"]
    results = (first["counts"] or {}).get("results", {})
    row = {"label": label, "catchup_minutes": minutes, "catchup_days": CATCHUP_DAYS, "appointments": len(ids),
           "cancelled": len(ids) - len(active), "listed": listed, "page_size": INTAKEQ_PAGE_SIZE,
           "first_calls": len(first_calls), "first_pages": len(pages),
           "first_pages_counted": (first["counts"] or {}).get("pages"),
           "first_cron_ms": round(first_ms), "first_catchup_ms": int(first["ms"]),
           "first_intakeq_ms": sum(r.get("durationMs") or 0 for r in pages),
           "first_results": ",".join(f"{k}:{v}" for k, v in sorted(results.items()) if v),
           "second_calls": len(second_calls), "second_pages": sum(1 for r in second_calls if is_page(r)),
           "second_ran": second_ran, "second_completed": second_ran and second["completed"],
           "second_cron_ms": round(second_ms), "second_catchup_ms": int(second["ms"]) if second_ran else "",
           "busy_blocks": blocks, "active": len(active), "cancelled_blocks": cancelled_blocks,
           "warm_cron_ms": round(warm_ms), "daily_budget": DAILY_BUDGET}
    say(f"catch-up every {minutes} min ({label}): {len(ids)} appointments ({row['cancelled']} cancelled); first run "
        f"{row['first_calls']} IntakeQ calls ({row['first_pages']} pages), catch-up {row['first_catchup_ms']} ms "
        f"(IntakeQ {row['first_intakeq_ms']} ms), cron run {row['first_cron_ms']} ms, {row['first_results']}; "
        f"second run at once: {row['second_calls']} calls ({'caught up again' if second_ran else 'no catch-up'}), "
        f"{row['second_cron_ms']} ms; {blocks} of {len(active)} active appointments are busy blocks")
    return row


def catchup_cell(out):
    # The practitioners the sandbox's practice has (one API call; the reset in each run forgets it).
    settings = call("GET", f"{SANDBOX}/api/v1/appointments/settings",
                    headers={"X-Auth-Key": os.environ["BENCH_INTAKEQ_KEY"]})
    practitioners = [p["Id"] for p in settings["Practitioners"]]
    rows = [catchup(out, label, minutes, practitioners) for label, minutes in CATCHUP_SETTINGS]
    sql(PARK_ALL)
    columns = list(rows[0])
    with open(os.path.join(out, "intakeq_catchup.tsv"), "w") as f:
        f.write("\t".join(columns) + "\n")
        for row in rows:
            f.write("\t".join(str(row[c]).lower() if isinstance(row[c], bool) else str(row[c]) for c in columns) + "\n")


def main():
    out, cells = sys.argv[1], sys.argv[2:] or ["latency", "burst", "catchup"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    providers = [line.strip() for line in open(os.environ["BENCH_PROVIDERS"]) if line.strip()]
    slots = Slots(providers)
    try:
        if "latency" in cells:
            latency_cell(out, slots)
        if "burst" in cells:
            burst_cell(out, slots)
        if "catchup" in cells:
            catchup_cell(out)
    finally:
        for worker in list(running):
            worker.stop()


if __name__ == "__main__":
    main()
