"""Turns the bench runs into REPORT.md: results.tsv (design, clients, delay_ms, tps, p95_ms, round trips) as
ratios to book_appointment measured in the same run, and book_appointment (book_appointment_after) against its
previous version (book_appointment_before), both from one mixed run; scale.tsv (appointments, clients, tps,
p95_ms) as ratios to the smaller table; e2e.tsv (target, clients, rps, p50/p95/p99 ms, non-2xx) with the worker's
share; bundle.tsv (wasm bytes, gzipped bytes, cold start ms); and the IntakeQ cells of bench/intakeq_cells.py:
intakeq_latency.tsv (the answer's latency while IntakeQ is slow, hangs or fails, now against before),
intakeq_burst.tsv (a burst of new patients against IntakeQ's rate limit, paced against unpaced) and
intakeq_catchup.tsv (the IntakeQ calls a day the catch-up costs, at the default period against every cron run).

    report.py [--keep-from OLD_REPORT] [--results F] [--scale F] [--e2e F] [--bundle F]
              [--intakeq-latency F] [--intakeq-burst F] [--intakeq-catchup F]
    report.py RESULTS [SCALE [E2E BUNDLE]]          (the same, positionally)

With --keep-from (BENCH_ONLY=pgbench, db, intakeq or catchup) the sections this run did not measure are copied
from OLD_REPORT, marked as kept.
"""

import csv
import math
import os
import platform
import subprocess
import sys

OPTIONS = ["--results", "--scale", "--e2e", "--bundle", "--intakeq-latency", "--intakeq-burst", "--intakeq-catchup"]
args, files, keep_from = sys.argv[1:], {}, None
positional = iter(OPTIONS[:4])
while args:
    if args[0] == "--keep-from":
        keep_from, args = args[1], args[2:]
    elif args[0] in OPTIONS:
        files[args[0]], args = args[1], args[2:]
    elif args[0].startswith("--"):
        sys.exit(f"report.py: unknown option {args[0]}")
    else:
        files[next(positional)], args = args[0], args[1:]
if not keep_from and set(files) != set(OPTIONS):
    sys.exit("report.py: a full report needs every file (or --keep-from for the sections not measured)")


def table(option):
    """The rows of the TSV given for `option`; [] when none was given."""
    return list(csv.DictReader(open(files[option]), delimiter="\t")) if option in files else []


results = table("--results")
by_key = {(r["design"], r["clients"], r["delay_ms"]): r for r in results}
# A new patient's IntakeQ calls (search, create client, appointment, questionnaire): bench/intakeq_cells.py's too.
CALLS_PER_NEW_PATIENT = 4
# What an allowed loss of throughput is for book_appointment against its previous version (issue 9).
ALLOWED_LOSS = 0.10


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    memory_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    postgres = subprocess.run(["psql", os.environ["BENCH_DATABASE_URL"], "-XAtc", "show server_version"],
                              capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {memory_kb // 1024 // 1024} GiB, PostgreSQL {postgres} on loopback"


def previous_sections(path):
    """The '## ' sections of an earlier REPORT.md, by title, each without its trailing blank lines."""
    sections, title = {}, None
    for line in open(path).read().splitlines():
        if line.startswith("## "):
            title = line[3:]
            sections[title] = []
        elif line.startswith("What the figures say"):
            title = None                            # the closing words, written afresh below
        elif title is not None:
            sections[title].append(line)
    for lines in sections.values():
        while lines and not lines[-1]:
            lines.pop()
    return sections


previous = previous_sections(keep_from) if keep_from else {}
kept = []


def keep(title):
    """The section `title` of the earlier report, marked as not measured in this run; [] if it had none."""
    if title not in previous:
        return []
    kept.append(title)
    # An earlier keep's mark is replaced, not repeated.
    body = list(previous[title])
    if body[:2] and body[1].startswith("_Kept from an earlier full run"):
        body = body[body.index("", 2):] if "" in body[2:] else []
    while body and not body[0]:
        body.pop(0)
    return [f"## {title}", "", "_Kept from an earlier full run of `make bench` (an earlier state of the code): not measured in",
            "this run._", ""] + body + [""]


lines = [
    "# Benchmarks",
    "",
    f"Machine: {machine()}. Each cell: pgbench for {os.environ.get('BENCH_SECONDS', '?')} s.",
    "Designs: `book_appointment` (book-v2: one round trip, one transaction, every check and the outbox);",
    "`old_route` (the replaced route's statements, one round trip each, no transaction);",
    "`bare_inserts` (the two rows alone in one round trip: the physical floor); and `book_appointment_before`",
    "(its previous version), measured against `book_appointment` in a run they share: see below.",
    "Ratios are to `book_appointment` in the same run and setting (throughput: higher is better for the",
    "other design; p95: lower is better).",
    "",
]
if os.environ.get("BENCH_LOAD_START"):
    # Other work on the machine slows every figure; the ratios of a run hold better than its absolute figures.
    end = os.environ.get("BENCH_LOAD_END") or open("/proc/loadavg").read().split()[0]
    lines[-1:-1] = [f"Load average (1 minute) when the run started: {os.environ['BENCH_LOAD_START']}; when it ended: {end} "
                    f"({os.cpu_count()} cores)."]

# book_appointment against its previous version --------------------------------------------------------------------
pairs = [(c, by_key.get(("book_appointment_before", c, "0")), by_key.get(("book_appointment_after", c, "0")))
         for c in sorted({r["clients"] for r in results}, key=int)]
pairs = [(c, before, after) for c, before, after in pairs if before and after]
if pairs:
    ratios = [float(after["tps"]) / float(before["tps"]) for _, before, after in pairs]
    verdict = (f"within the {ALLOWED_LOSS:.0%} the issue allows" if min(ratios) >= 1 - ALLOWED_LOSS
               else f"a loss of MORE than the {ALLOWED_LOSS:.0%} the issue allows")
    lines += ["## book_appointment before and after the chapters", "",
              "`book_appointment` as 20261125000100_book_appointment_in_chapters.sql writes it (a short sequence of",
              "private step functions, two exception blocks) against `book_appointment_before`: the body of",
              "20261124000700_book_appointment.sql (one body, four exception blocks), installed by scripts/bench.sh as",
              "`bench.book_appointment_before`. Both call the same private helpers, as they are now: what is compared",
              "is the two bodies. Same database, same booking (a new patient, a random far slot), loopback, and the",
              "same pgbench run: each transaction takes one of the two at random, so that both meet the same load at",
              "every moment (this machine's other processes included). Bookings/s is what a run of that design alone",
              "would do by Little's law (clients / its mean latency in the shared run); p95 is over its own",
              "transactions. Each connection's first call of each (which compiles its PL/pgSQL) is left out.", "",
              "| clients | before bookings/s | after bookings/s | throughput after / before | before p95 ms | after p95 ms | p95 after / before |",
              "|---|---|---|---|---|---|---|"]
    for (clients, before, after), ratio in zip(pairs, ratios):
        lines.append(f"| {clients} | {float(before['tps']):.0f} | {float(after['tps']):.0f} | {ratio:.2f}x | "
                     f"{float(before['p95_ms']):.1f} | {float(after['p95_ms']):.1f} | "
                     f"{float(after['p95_ms']) / float(before['p95_ms']):.2f}x |")
    lines += ["", f"Throughput after / before: {min(ratios):.2f}x to {max(ratios):.2f}x: {verdict}. What the chapters",
              "cost: about a dozen more PL/pgSQL calls per booking, each setting its empty search_path; what they save:",
              "two of the four subtransactions.", ""]
else:
    lines += keep("book_appointment before and after the chapters")

for delay in sorted({r["delay_ms"] for r in results} | ({"0", "20"} if keep_from else set()), key=float):
    title = f"Round trip +{delay} ms" if delay != "0" else "Loopback"
    if not any(r["delay_ms"] == delay for r in results):
        lines += keep(title)
        continue
    lines += [f"## {title}", "",
              "| design | round trips | clients | bookings/s | p95 ms | throughput vs book-v2 | p95 vs book-v2 |",
              "|---|---|---|---|---|---|---|"]
    for clients in sorted({r["clients"] for r in results}, key=int):
        base = by_key.get(("book_appointment", clients, delay))
        for design in ("book_appointment", "old_route", "bare_inserts"):
            row = by_key.get((design, clients, delay))
            if not row or not base:
                continue
            tps, p95 = float(row["tps"]), float(row["p95_ms"])
            lines.append(f"| {design} | {row['round_trips']} | {clients} | {tps:.0f} | {p95:.1f} | "
                         f"{tps / float(base['tps']):.2f}x | {p95 / float(base['p95_ms']):.2f}x |")
    lines.append("")

# The closing words on the design cells (a kept section's end, too: see previous_sections).
lines += [
    "What the figures say: on loopback a round trip costs almost nothing, so book_appointment pays for doing more",
    "(idempotency claim, identity lookup, the outbox row, subtransactions for its error handling) and the old",
    "chain is as fast or faster; once each round trip costs what it does from a worker to its database, one round",
    "trip wins by the number of round trips saved. The old chain also guarantees nothing: no transaction, no",
    "outbox, no idempotency. The 20 ms proxy (bench/delay_proxy.py) is one Python process; at 32 clients its own",
    "queueing is part of what is measured.",
    "",
]

scale = table("--scale")
if scale:
    lines += ["## Scale", "", "book_appointment on loopback with 100 thousand patients and this many existing appointments:", "",
              "| appointments | clients | bookings/s | p95 ms | throughput vs 10k | p95 vs 10k |", "|---|---|---|---|---|---|"]
    smallest = {r["clients"]: r for r in scale if r["appointments"] == min((s["appointments"] for s in scale), key=int)}
    for row in scale:
        base = smallest[row["clients"]]
        lines.append(f"| {int(row['appointments']):,} | {row['clients']} | {float(row['tps']):.0f} | {float(row['p95_ms']):.1f} | "
                     f"{float(row['tps']) / float(base['tps']):.2f}x | {float(row['p95_ms']) / float(base['p95_ms']):.2f}x |")
    lines.append("")
else:
    lines += keep("Scale")

e2e = table("--e2e")
if e2e:
    lines += ["## End to end", "",
              "A new patient's booking over HTTP on loopback (wrk): through the built worker in workerd (Miniflare) to",
              "the RPC API and Postgres, and the same booking posted to the RPC API directly. The worker's share is the",
              "difference at the median.", "",
              "| via | clients | bookings/s | p50 ms | p95 ms | p99 ms | non-2xx | worker's share of p50 |",
              "|---|---|---|---|---|---|---|---|"]
    direct = {r["clients"]: r for r in e2e if r["target"] == "rpc"}
    for row in e2e:
        share = ""
        if row["target"] == "worker" and row["clients"] in direct:
            extra = float(row["p50_ms"]) - float(direct[row["clients"]]["p50_ms"])
            share = f"{extra:.1f} ms ({extra / float(row['p50_ms']):.0%})"
        lines.append(f"| {row['target']} | {row['clients']} | {float(row['rps']):.0f} | {float(row['p50_ms']):.1f} | "
                     f"{float(row['p95_ms']):.1f} | {float(row['p99_ms']):.1f} | {row['non2xx']} | {share} |")
    lines.append("")
else:
    lines += keep("End to end")

bundle = dict(l.strip().split("\t") for l in open(files["--bundle"])) if "--bundle" in files else {}
if bundle:
    raw, gz = int(bundle["wasm_bytes"]), int(bundle["gzip_bytes"])
    lines += ["## The bundle", "",
              f"build/index_bg.wasm: {raw:,} bytes, {gz:,} gzipped: {gz / (3 * 1024 * 1024):.0%} of the Workers Free",
              f"plan's 3 MB compressed limit ({gz / (10 * 1024 * 1024):.0%} of the paid plan's 10 MB).",
              f"Cold start, from launching workerd (Miniflare) with the built worker to its first answer (`/health`,",
              f"through the database): {int(bundle['cold_start_ms']):,} ms on this machine (Cloudflare's edge starts",
              "isolates differently; this is the local figure).", ""]
else:
    lines += keep("The bundle")

LATENCY_TITLE = "IntakeQ slow, hanging or failing: the booking's answer"
latency = table("--intakeq-latency")
if latency:
    first = latency[0]
    now_budget = int(next(r["inline_budget_ms"] for r in latency if r["setting"] == "now"))
    before_budget = int(next(r["inline_budget_ms"] for r in latency if r["setting"] == "before"))
    goal_ms = now_budget + 300
    lines += [f"## {LATENCY_TITLE}", "",
              "A new patient's booking over HTTP on loopback through the built worker in workerd (Miniflare), the RPC",
              "API, Postgres and the IntakeQ sandbox, while the sandbox makes every IntakeQ call slow (each answered",
              "after 300 ms; a new patient's sync makes 4), hang (no answer: the worker gives up after its",
              "INTAKEQ_TIMEOUT_MS, 8000 as in production) or fail (500). Each row: "
              f"{first['bookings']} bookings posted by {first['clients']}",
              "concurrent clients (bench/intakeq_cells.py), each a new patient in a free slot of its own, latency from",
              f"sending the request to reading the whole answer. Now: INLINE_SYNC_BUDGET_MS={now_budget} (the answer",
              "waits at most that for the first sync attempt, which goes on after the answer); before, the same-run",
              f"baseline: {before_budget} (the answer waits for the whole attempt, as before). The call budget is out",
              "of the way (10000 calls a minute, the sandbox allows 100000). Goal: p99 now within",
              f"INLINE_SYNC_BUDGET_MS + 300 ms = {goal_ms} ms.", "",
              "| IntakeQ | answer waits at most | p50 ms | p95 ms | p99 ms | max ms | answered synced | non-201 | p99 now / before | goal: p99 <= "
              f"{goal_ms} ms |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    by_case = {}
    for row in latency:
        by_case.setdefault(row["case"], {})[row["setting"]] = row
    missed = []
    for case, rows in by_case.items():
        for setting in ("before", "now"):
            row = rows.get(setting)
            if not row:
                continue
            ratio = verdict = ""
            if setting == "now":
                met = float(row["p99_ms"]) <= goal_ms
                verdict = "met" if met else "**not met**"
                if not met:
                    missed.append(case)
                if "before" in rows:
                    ratio = f"{float(row['p99_ms']) / float(rows['before']['p99_ms']):.2f}x"
            lines.append(f"| {case.replace('_', ' ')} | {int(row['inline_budget_ms']):,} ms ({setting}) | "
                         f"{float(row['p50_ms']):.0f} | {float(row['p95_ms']):.0f} | {float(row['p99_ms']):.0f} | "
                         f"{float(row['max_ms']):.0f} | {row['answered_synced']} of {row['bookings']} | {row['non201']} | "
                         f"{ratio} | {verdict} |")
    how = {"slow": "is slow", "hang": "hangs", "server_error": "fails"}
    lines += ["", ("Goal met in every case." if not missed else
                   f"Goal NOT met when IntakeQ {' or '.join(how.get(c, c) for c in missed)}."), ""]
else:
    lines += keep(LATENCY_TITLE)

BURST_TITLE = "A burst of new patients against IntakeQ's rate limit"
burst = table("--intakeq-burst")
if burst:
    first = burst[0]
    rate, needed = int(first["rate_per_minute"]), int(first["calls_needed"])
    floor = needed / rate
    goal = 1.2 * floor
    lines += [f"## {BURST_TITLE}", "",
              f"{first['bookings']} new patients book at once (concurrent posts to the built worker in workerd) while the",
              f"IntakeQ sandbox allows {rate} calls a minute, on a faster clock: a minute lasts 6 s for the sandbox",
              "and for the worker's call budget (INTAKEQ_BUDGET_MINUTE_MS=6000); INLINE_SYNC_BUDGET_MS=2000, the",
              "cron (POST /scheduled) fired every such minute from the burst on, without waiting for the last run",
              "to end, as the real cron does. Measured: the time until every booking is synced with its questionnaire",
              "sent (in budget minutes: seconds / 6), the IntakeQ calls made and the 429s answered (the sandbox's",
              f"counts, reset before each row). Floor: {needed} calls needed / {rate} a minute = {floor:g} minutes.",
              f"Paced: INTAKEQ_CALLS_PER_MINUTE={rate}; unpaced, the same-run baseline: 10000 (the setting's",
              "maximum): the budget off, every caller calling as it likes, but for the pause of every caller after a",
              "429 (until its Retry-After), which came with the budget and still applies. Goal (paced): within",
              f"1.2 x floor = {goal:g} minutes, with no 429. Each row stops after {first['timeout_minutes']} budget minutes.", "",
              "| budget | all synced and sent after | vs floor | IntakeQ calls | 429s | answered synced | calls per budget minute | 429s per budget minute | goal |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in burst:
        minutes = float(row["minutes"])
        timed_out = row["timed_out"] == "true"
        after = (f"not done: {row['synced']} of {row['bookings']} after {minutes:.1f} min" if timed_out
                 else f"{minutes:.1f} min")
        verdict = ""
        if row["label"] == "paced":
            verdict = ("met" if not timed_out and minutes <= goal and row["rate_limited"] == "0" else "**not met**")
        lines.append(f"| {row['label']} ({row['calls_per_minute']} a minute) | {after} | {minutes / floor:.2f}x | "
                     f"{row['calls']} | {row['rate_limited']} | {row['answered_synced']} of {row['bookings']} | "
                     f"{row['calls_by_minute'].replace(',', ', ')} | {row['rate_limited_by_minute'].replace(',', ', ')} | {verdict} |")
    paced = next((r for r in burst if r["label"] == "paced"), None)
    busiest = max((int(c) for c in paced["calls_by_minute"].split(",")), default=0) if paced else rate
    if busiest < rate:
        per_attempt = CALLS_PER_NEW_PATIENT
        fit = rate // per_attempt
        minutes_at_that_pace = math.ceil(int(paced["bookings"]) / fit)
        lines += ["", f"Paced, no budget minute had more than {busiest} of its {rate} calls: an attempt reserves every call it",
                  f"needs at once (a new patient's {per_attempt}), so {fit} attempts fit in a minute and {rate - fit * per_attempt} "
                  "calls of each minute go unused:",
                  f"the last {fit} of {paced['bookings']} patients start in minute {minutes_at_that_pace}, against the floor's {floor:g}."]
    if paced:
        met = paced["timed_out"] != "true" and float(paced["minutes"]) <= goal and paced["rate_limited"] == "0"
        lines += ["", f"Goal {'met' if met else 'NOT met'}: paced, {paced['synced']} of {paced['bookings']} done after "
                      f"{float(paced['minutes']):.1f} budget minutes ({float(paced['minutes']) / floor:.2f}x the floor, the goal "
                      f"{goal:g}) with {paced['rate_limited']} 429s and {paced['calls']} calls for the {needed} needed."]
    lines.append("")
else:
    lines += keep(BURST_TITLE)

CATCHUP_TITLE = "IntakeQ catch-up: calls a day"
catchup = table("--intakeq-catchup")
if catchup:
    rows = {r["label"]: r for r in catchup}
    first = catchup[0]
    budget, page_size = int(first["daily_budget"]), int(first["page_size"])

    def runs_a_day(row):
        """The cron fires every minute: a period of 0 catches up at every run."""
        minutes = int(row["catchup_minutes"])
        return 1440 / minutes if minutes else 1440

    def calls_a_day(row):
        return int(row["first_calls"]) * runs_a_day(row)

    baseline = rows.get("every_run")
    lines += [f"## {CATCHUP_TITLE}", "",
              "What the catch-up (src/inbound/catch_up.rs: every INTAKEQ_CATCHUP_MINUTES the cron reads every IntakeQ",
              f"appointment from yesterday to INTAKEQ_CATCHUP_DAYS={first['catchup_days']} ahead, {page_size} a page, one IntakeQ call a page)",
              f"costs a practice with {first['appointments']} upcoming appointments in IntakeQ: booked by staff in the sandbox,",
              f"spread over the next {first['catchup_days']} days across its practitioners, {first['cancelled']} of them then cancelled (IntakeQ lists",
              "cancelled ones too); webhooks off. The built worker in workerd (bench/intakeq_cells.py), every setting as",
              "deployed but the period and the call budget (out of the way: the runs show what the catch-up asks for);",
              "the catch-up made due, the cron fired once (after a warm-up run), then again at once. IntakeQ calls: the",
              "sandbox's request log for each run. Catch-up: from its claim to its finish (intakeq_catchup_state), of",
              "which IntakeQ: the pages' answer times; cron run: the whole scheduled run, as the control call saw it.",
              f"Calls a day: the first run's calls x runs a day (1440 / the period; 1440 at 0, the cron firing every",
              f"minute). Default: INTAKEQ_CATCHUP_MINUTES=360; the same-run baseline: 0 (every cron run). Share: of the",
              f"{budget} calls a day the budget allows (INTAKEQ_CALLS_PER_DAY, IntakeQ's standard plan), shared with bookings.", "",
              "| INTAKEQ_CATCHUP_MINUTES | IntakeQ calls, one run | catch-up ms (IntakeQ ms) | catch-up time vs every cron run | cron run ms | second run at once: calls | runs a day | calls a day | calls a day vs every cron run | share of the daily budget | busy blocks after the runs |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in catchup:
        minutes = int(row["catchup_minutes"])
        setting = f"{minutes} (default)" if row["label"] == "default" else (f"{minutes} (every cron run)" if minutes == 0 else str(minutes))
        ratio = time_ratio = ""
        if row is baseline:
            ratio = time_ratio = "1x (the baseline)"
        elif baseline:
            if calls_a_day(row):
                ratio = f"{calls_a_day(row) / calls_a_day(baseline):.4f}x (1/{calls_a_day(baseline) / calls_a_day(row):.0f})"
            time_ratio = f"{int(row['first_catchup_ms']) / int(baseline['first_catchup_ms']):.2f}x"
        second = f"{row['second_calls']} ({'caught up again' if row['second_ran'] == 'true' else 'not due'})"
        lines.append(f"| {setting} | {row['first_calls']} ({row['first_pages']} pages) | {int(row['first_catchup_ms']):,} "
                     f"({int(row['first_intakeq_ms']):,}) | {time_ratio} | {int(row['first_cron_ms']):,} | {second} | {runs_a_day(row):g} | "
                     f"{calls_a_day(row):,.0f} | {ratio} | {calls_a_day(row) / budget:.1%} | "
                     f"{row['busy_blocks']} of {row['active']} active |")
    default = rows.get("default")
    if default:
        per_run, per_day = int(default["first_calls"]), calls_a_day(default)
        hours = int(default["catchup_minutes"]) / 60
        listed = int(default["listed"])
        full_pages = listed // page_size
        intakeq_ms, catchup_ms = int(default["first_intakeq_ms"]), int(default["first_catchup_ms"])
        lines += ["",
                  f"At the default, the catch-up costs **{per_day:,.0f} IntakeQ calls a day** for {default['appointments']} upcoming "
                  f"appointments ({per_run} a run x {runs_a_day(default):g} runs):",
                  f"{per_day / budget:.1%} of the {budget}-call daily budget"
                  + (f", 1/{calls_a_day(baseline) / per_day:.0f} of what catching up at every cron run costs" if baseline and per_day else "")
                  + ". What the default buys:",
                  f"a webhook IntakeQ loses is repaired within {hours:g} hours (by the next catch-up after it: at most "
                  f"{default['catchup_minutes']} minutes and a cron",
                  f"minute away, plus its own {catchup_ms / 1000:.1f} s). Its second run, fired at once, made {default['second_calls']} "
                  "IntakeQ calls: not due.",
                  ("A run's time is mostly the database's: " if intakeq_ms < catchup_ms / 2 else "")
                  + f"IntakeQ (the sandbox, on loopback) answered its pages in {intakeq_ms} of",
                  f"its {catchup_ms} ms; the rest is applying {default['listed']} appointments, page by page (and the budget's calls).",
                  "",
                  f"Pages: the sandbox listed {listed} appointments in the window (the cancelled ones included); a run reads",
                  f"{full_pages} full pages and then one more to learn that the last full page was the last"
                  + (" (an empty one)" if listed % page_size == 0 else "") + f": {full_pages + 1} calls.",
                  f"Each further {page_size} upcoming appointments add one call a run, {runs_a_day(default):g} a day at the default."]
        if baseline:
            b_day = calls_a_day(baseline)
            lines += ["",
                      f"Every cron run (0) would ask {b_day:,.0f} calls a day, {b_day / budget:.0f}x the whole daily budget. The budget would",
                      "refuse most of them, but only once they had taken the day's calls: a catch-up call is never taken from",
                      f"the calls a booking due at that moment needs, yet about {budget / int(baseline['first_calls']):.0f} runs ({budget} / "
                      f"{baseline['first_calls']}) use up a day, and the bookings",
                      f"that come later wait for the window to free. Its second run, at once, made {baseline['second_calls']} calls."]
        checks = []
        for row in catchup:
            results = row["first_results"].replace(":", " ").replace(",", ", ")
            checks.append(f"with {row['catchup_minutes']}, {row['busy_blocks']} of the {row['active']} active appointments "
                          f"and {row['cancelled_blocks']} of the {row['cancelled']} cancelled (the first run's results: {results})")
        lines += ["", "Check that the runs applied them, busy blocks (intakeq_busy_blocks) after both runs:"]
        lines += [f"{check}{';' if n < len(checks) - 1 else '.'}" for n, check in enumerate(checks)]
    lines.append("")
else:
    lines += keep(CATCHUP_TITLE)

lines += [
    "## Round trips per booking (from the code path)",
    "",
    "| | database | IntakeQ |",
    "|---|---|---|",
    "| book-v2, new patient | 3: `book_appointment`, `reserve_intakeq_calls`, `record_sync_result` | 4: search client, create client, create appointment, send the questionnaire |",
    "| book-v2, known IntakeQ client | 3 | 2: create appointment, send the questionnaire |",
    "| book-v2, failed booking | 2: `book_appointment`, `record_booking_failure` | 0 |",
    "| the replaced route | 7 (as above) + 1 update of the IntakeQ id | its client upsert, id lookups and the appointment |",
    "",
]
if kept:
    lines += ["The sections marked as kept (" + ", ".join(kept) + ") come from an earlier full run of `make bench`;",
              f"every other figure comes from one run of `BENCH_ONLY={os.environ.get('BENCH_ONLY', '?')} make bench` "
              "on the machine above."]
else:
    lines.append("All figures come from one run of `make bench` on the machine above.")
print("\n".join(lines))
