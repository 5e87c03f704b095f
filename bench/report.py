"""Turns the bench runs into REPORT.md: results.tsv (design, clients, delay_ms, tps, p95_ms, round trips) as
ratios to book_appointment measured in the same run, and book_appointment (book_appointment_after) against its
previous version (book_appointment_before), both from one mixed run; scale.tsv (appointments, clients, tps,
p95_ms) as ratios to the smaller table; e2e.tsv (target, clients, rps, p50/p95/p99 ms, non-2xx) with the worker's
share; and bundle.tsv (wasm bytes, gzipped bytes, cold start ms).

    report.py RESULTS [SCALE [E2E BUNDLE]]
    report.py --keep-from OLD_REPORT RESULTS [SCALE]   (BENCH_ONLY=pgbench or db: the sections this run did not
                                                        measure are copied from OLD_REPORT, marked as kept)
"""

import csv
import os
import platform
import subprocess
import sys

args = sys.argv[1:]
keep_from = None
if args[:1] == ["--keep-from"]:
    keep_from, args = args[1], args[2:]

results = list(csv.DictReader(open(args[0]), delimiter="\t"))
by_key = {(r["design"], r["clients"], r["delay_ms"]): r for r in results}
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

scale = list(csv.DictReader(open(args[1]), delimiter="\t")) if len(args) > 1 else []
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

e2e = list(csv.DictReader(open(args[2]), delimiter="\t")) if len(args) > 2 else []
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

bundle = dict(l.strip().split("\t") for l in open(args[3])) if len(args) > 3 else {}
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

lines += [
    "What the figures say: on loopback a round trip costs almost nothing, so book_appointment pays for doing more",
    "(idempotency claim, identity lookup, the outbox row, subtransactions for its error handling) and the old",
    "chain is as fast or faster; once each round trip costs what it does from a worker to its database, one round",
    "trip wins by the number of round trips saved. The old chain also guarantees nothing: no transaction, no",
    "outbox, no idempotency. The 20 ms proxy (bench/delay_proxy.py) is one Python process; at 32 clients its own",
    "queueing is part of what is measured.",
    "",
    "## Round trips per booking (from the code path)",
    "",
    "| | database | IntakeQ |",
    "|---|---|---|",
    "| book-v2, new patient | 2: `book_appointment`, `record_sync_result` | 3: search client, create client, create appointment |",
    "| book-v2, known IntakeQ client | 2 | 1: create appointment |",
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
