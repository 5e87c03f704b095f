#!/usr/bin/env bash
# `make bench`: the database half of a booking, three designs (bench/pgbench/*.sql) at 1, 8 and 32 clients,
# on loopback and through a proxy adding 20 ms per round trip, and on loopback book_appointment against its
# previous version (book_appointment_before); then the scale and end-to-end benches, and the IntakeQ cells
# (bench/intakeq_cells.py: the answer while IntakeQ is slow, hangs or fails; a burst of new patients against
# IntakeQ's rate limit; the IntakeQ calls a day the catch-up costs); writes bench/REPORT.md.
# BENCH_SECONDS per pgbench and wrk cell. BENCH_ONLY=pgbench runs the design cells only, BENCH_ONLY=db the design
# cells and the scale bench (everything but the worker), BENCH_ONLY=intakeq the latency and burst IntakeQ cells
# only, BENCH_ONLY=catchup the catch-up cell only; the sections not measured are kept from bench/REPORT.md, marked so.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
export BENCH_SECONDS=${BENCH_SECONDS:-8}
export BENCH_ONLY=${BENCH_ONLY:-all}
[[ $BENCH_ONLY =~ ^(all|db|pgbench|intakeq|catchup)$ ]] || { echo "bench: BENCH_ONLY must be all, db, pgbench, intakeq or catchup" >&2; exit 2; }
DB_PORT=${DB_PORT:-54322}
PROXY_PORT=${BENCH_PROXY_PORT:-54399}
OUT=.local/bench
rm -rf "$OUT" && mkdir -p "$OUT"

cluster_started=false
scripts/db.sh is-up || cluster_started=true
proxy=""
servers=()
cleanup() {
  if [[ -n $proxy ]]; then kill "$proxy" 2>/dev/null || true; fi
  for pid in "${servers[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  if $cluster_started; then scripts/db.sh stop; fi
}
trap cleanup EXIT
scripts/db.sh start >/dev/null
export BENCH_DATABASE_URL=$(TEST_DB_NAME=book_v2_bench scripts/db.sh test-db)
psql "$BENCH_DATABASE_URL" -XqAt -v ON_ERROR_STOP=1 -f bench/pgbench/setup.sql >/dev/null
# The previous book_appointment, to measure the current one against in the same run: its body as the migration
# that introduced it wrote it (20261124000700, before 20261125000100 rewrote it in chapters), installed as
# bench.book_appointment_before. It calls the same private helpers as the current one (fail, require_request_id,
# name_key, is_transient, booking_result, as they are now), so the comparison is of the two bodies.
{
  echo 'create schema if not exists bench;'
  sed -n '/^create function public\.book_appointment(/,/^\$\$;/p' supabase/migrations/20261124000700_book_appointment.sql \
    | sed '1s/^create function public\.book_appointment(/create function bench.book_appointment_before(/'
} | psql "$BENCH_DATABASE_URL" -XqAt -v ON_ERROR_STOP=1 >/dev/null

# How busy the machine already is (other processes slow every figure); the report says so.
export BENCH_LOAD_START=$(cut -d' ' -f1 /proc/loadavg)

partial_report() { # report.py's options for the files measured; the other sections kept from the previous report
  python3 bench/report.py --keep-from bench/REPORT.md "$@" > "$OUT/REPORT.md"
  mv "$OUT/REPORT.md" bench/REPORT.md
  echo "bench: wrote bench/REPORT.md (BENCH_ONLY=$BENCH_ONLY; the other sections kept from the previous report)"
  exit 0
}

# Runs one pgbench cell: NAME SCRIPT CLIENTS URL; prints "<bookings/s> <p95 ms>" (p95 from the per-transaction log).
# Call it as `cell=$(pgbench_cell ...)`, so that its failure stops the bench.
pgbench_cell() {
  local name=$1 script=$2 clients=$3 url=$4
  (cd "$OUT" && "$PGBENCH" -n -f "$ROOT/bench/pgbench/$script.sql" -c "$clients" -j $((clients < 2 ? 1 : 2)) \
    -T "$BENCH_SECONDS" -l --log-prefix "$name" "$url" > "$name.out" 2>&1) || { cat "$OUT/$name.out" >&2; exit 1; }
  local tps p95
  tps=$(awk '/^tps = / { print $3; exit }' "$OUT/$name.out")
  p95=$(cat "$OUT/$name".[0-9]* | awk '{ print $3 }' | sort -n | awk '{ a[NR] = $1 } END { print a[int(NR * 0.95)] / 1000 }')
  echo "$tps $p95"
}

# book_appointment against its previous version (issue 9: no loss), measured so that the machine's other load
# cannot favour either: both scripts in ONE pgbench run, each transaction taking one of them at random, so both
# meet the same conditions at every moment. NAME CLIENTS URL; prints, for book_appointment then for
# book_appointment_before, "<bookings/s> <p95 ms>": bookings/s as if the run had been of that design alone, by
# Little's law (clients / its mean latency), and p95 over its transactions (the log: client, transaction,
# latency in us, script). Each connection's first call of each design, which compiles its PL/pgSQL, is left out.
pgbench_before_after() {
  local name=$1 clients=$2 url=$3 script
  (cd "$OUT" && "$PGBENCH" -n -f "$ROOT/bench/pgbench/book_appointment.sql@1" \
    -f "$ROOT/bench/pgbench/book_appointment_before.sql@1" -c "$clients" -j $((clients < 2 ? 1 : 2)) \
    -T "$BENCH_SECONDS" -l --log-prefix "$name" "$url" > "$name.out" 2>&1) || { cat "$OUT/$name.out" >&2; exit 1; }
  for script in 0 1; do
    cat "$OUT/$name".[0-9]* | awk -v s="$script" '$4 == s && seen[$1]++ { print $3 }' | sort -n \
      | awk -v clients="$clients" '{ a[NR] = $1; sum += $1 }
          END { printf "%.6f %s ", clients * 1e6 / (sum / NR), a[int(NR * 0.95)] / 1000 }'
  done
  echo
}

if [[ $BENCH_ONLY != intakeq && $BENCH_ONLY != catchup ]]; then # the database cells
  python3 bench/delay_proxy.py "$PROXY_PORT" 127.0.0.1 "$DB_PORT" 10 > "$OUT/proxy.log" 2>&1 &
  proxy=$!
  for _ in $(seq 1 50); do grep -q "delay proxy on" "$OUT/proxy.log" && break; sleep 0.1; done

  declare -A round_trips=([book_appointment]=1 [book_appointment_after]=1 [book_appointment_before]=1 [old_route]=7 [bare_inserts]=1)
  printf 'design\tclients\tdelay_ms\ttps\tp95_ms\tround_trips\n' > "$OUT/results.tsv"
  record() { # DESIGN CLIENTS DELAY TPS P95
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${round_trips[$1]}" >> "$OUT/results.tsv"
    printf 'bench: %-23s %2s clients +%2s ms: %8s bookings/s, p95 %s ms\n' "$1" "$2" "$3" "$4" "$5"
  }
  for delay in 0 20; do
    port=$DB_PORT; [[ $delay == 0 ]] || port=$PROXY_PORT
    url="postgresql://postgres:postgres@127.0.0.1:$port/book_v2_bench"
    for clients in 1 8 32; do
      for design in book_appointment old_route bare_inserts; do
        cell=$(pgbench_cell "$design-$clients-$delay" "$design" "$clients" "$url")
        read -r tps p95 <<<"$cell"
        record "$design" "$clients" "$delay" "$tps" "$p95"
      done
      if [[ $delay == 0 ]]; then
        cell=$(pgbench_before_after "before-after-$clients-$delay" "$clients" "$url")
        read -r tps p95 tps_before p95_before <<<"$cell"
        record book_appointment_after "$clients" "$delay" "$tps" "$p95"
        record book_appointment_before "$clients" "$delay" "$tps_before" "$p95_before"
      fi
    done
  done

  [[ $BENCH_ONLY != pgbench ]] || partial_report --results "$OUT/results.tsv"

  # Scale: does a booking cost more when the tables are big? The same booking on 10 thousand and on 1 million
  # existing appointments (and 100 thousand patients), loopback.
  printf 'appointments\tclients\ttps\tp95_ms\n' > "$OUT/scale.tsv"
  for appointments in 10000 1000000; do
    url=$(TEST_DB_NAME=book_v2_bench_scale scripts/db.sh test-db)
    psql "$url" -XqAt -v ON_ERROR_STOP=1 -f bench/pgbench/setup.sql >/dev/null
    psql "$url" -XqAt -v ON_ERROR_STOP=1 -v appointments="$appointments" -f bench/pgbench/load.sql >/dev/null
    for clients in 1 8; do
      cell=$(pgbench_cell "scale-$appointments-$clients" book_appointment "$clients" "$url")
      read -r tps p95 <<<"$cell"
      printf '%s\t%s\t%s\t%s\n' "$appointments" "$clients" "$tps" "$p95" >> "$OUT/scale.tsv"
      printf 'bench: book_appointment on %7s appointments, %s clients: %8s bookings/s, p95 %s ms\n' "$appointments" "$clients" "$tps" "$p95"
    done
  done

  [[ $BENCH_ONLY != db ]] || partial_report --results "$OUT/results.tsv" --scale "$OUT/scale.tsv"
fi

# The worker's benches: the built worker in workerd (Miniflare) -> the RPC API -> Postgres, on loopback.
cargo build --quiet -p devstack
scripts/build-worker.sh > /dev/null
eval "$(target/debug/devstack keys)"
psql "$BENCH_DATABASE_URL" -XqAt -c 'select id from bench_providers order by n' > "$OUT/providers.txt"
RPC_PORT=${BENCH_RPC_PORT:-54397}
WORKER_PORT=${BENCH_WORKER_PORT:-54396}
SANDBOX_PORT=${BENCH_INTAKEQ_PORT:-54395}
SANDBOX_KEY=bench-intakeq-key
RPC_API_PORT=$RPC_PORT RPC_DATABASE_URL=${BENCH_DATABASE_URL/postgres:postgres@/authenticator:postgres@} \
  setsid target/debug/devstack rpc-api > "$OUT/rpc-api.log" 2>&1 &
servers+=($!)
# The IntakeQ sandbox, for the IntakeQ cells (which set its limit and faults per run); its limits start high.
INTAKEQ_SANDBOX_PORT=$SANDBOX_PORT INTAKEQ_SANDBOX_API_KEY=$SANDBOX_KEY INTAKEQ_RATE_LIMIT_PER_MINUTE=100000 \
  INTAKEQ_RATE_LIMIT_PER_DAY=100000000 setsid target/debug/devstack intakeq-sandbox > "$OUT/intakeq-sandbox.log" 2>&1 &
servers+=($!)
for port in "$RPC_PORT" "$SANDBOX_PORT"; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

# IntakeQ: the answer while IntakeQ is slow, hangs or fails, a burst of new patients against its rate limit, and
# what the catch-up costs a day. CELLS...: latency, burst, catchup.
intakeq_cells() {
  BENCH_RPC_URL=http://127.0.0.1:$RPC_PORT BENCH_INTAKEQ_URL=http://127.0.0.1:$SANDBOX_PORT \
    BENCH_INTAKEQ_KEY=$SANDBOX_KEY BENCH_PROVIDERS=$OUT/providers.txt SUPABASE_SERVICE_ROLE_KEY=$SUPABASE_SERVICE_ROLE_KEY \
    python3 bench/intakeq_cells.py "$OUT" "$@"
}
if [[ $BENCH_ONLY == intakeq ]]; then
  intakeq_cells latency burst
  partial_report --intakeq-latency "$OUT/intakeq_latency.tsv" --intakeq-burst "$OUT/intakeq_burst.tsv"
fi
if [[ $BENCH_ONLY == catchup ]]; then
  intakeq_cells catchup
  partial_report --intakeq-catchup "$OUT/intakeq_catchup.tsv"
fi

# End to end: the worker (without IntakeQ: bookings wait in the outbox) against the RPC API called directly (the
# same booking without the worker).
started_ms=$(date +%s%3N)
PORT=$WORKER_PORT SUPABASE_URL=http://127.0.0.1:$RPC_PORT SUPABASE_SERVICE_ROLE_KEY=$SUPABASE_SERVICE_ROLE_KEY \
  BOOKING_LIMIT_PER_IP_PER_MINUTE=0 BOOKING_LIMIT_PER_EMAIL_PER_HOUR=0 \
  setsid node tests/e2e/serve-worker.mjs > "$OUT/worker.log" 2>&1 &
servers+=($!)
until curl -sf -o /dev/null "http://127.0.0.1:$WORKER_PORT/health"; do
  (( $(date +%s%3N) - started_ms < 60000 )) || { echo "bench: the worker did not start" >&2; exit 1; }
  sleep 0.05
done
cold_start_ms=$(( $(date +%s%3N) - started_ms ))
printf 'target\tclients\trps\tp50_ms\tp95_ms\tp99_ms\tnon2xx\n' > "$OUT/e2e.tsv"
for target in worker rpc; do
  port=$WORKER_PORT; [[ $target == worker ]] || port=$RPC_PORT
  for clients in 1 16; do
    result=$(BENCH_PROVIDERS=$OUT/providers.txt TARGET=$target SERVICE_ROLE_KEY=$SUPABASE_SERVICE_ROLE_KEY \
      wrk -t $((clients < 2 ? 1 : 2)) -c "$clients" -d "${BENCH_SECONDS}s" -s bench/wrk/booking.lua "http://127.0.0.1:$port" \
      | awk '/^RESULT/')
    read -r rps p50 p95 p99 non2xx < <(sed -E 's/RESULT rps=([^ ]+) p50=([^ ]+) p95=([^ ]+) p99=([^ ]+) requests=[^ ]+ non2xx=([^ ]+).*/\1 \2 \3 \4 \5/' <<<"$result")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$clients" "$rps" "$p50" "$p95" "$p99" "$non2xx" >> "$OUT/e2e.tsv"
    printf 'bench: end to end via %-6s %2s clients: %8s bookings/s, p50 %s ms, p95 %s ms, p99 %s ms, non-2xx %s\n' \
      "$target" "$clients" "$rps" "$p50" "$p95" "$p99" "$non2xx"
  done
done
wasm_bytes=$(stat -c %s build/index_bg.wasm)
gzip_bytes=$(gzip -9 -c build/index_bg.wasm | wc -c)
printf 'wasm_bytes\t%s\ngzip_bytes\t%s\ncold_start_ms\t%s\n' "$wasm_bytes" "$gzip_bytes" "$cold_start_ms" > "$OUT/bundle.tsv"
echo "bench: bundle $wasm_bytes bytes ($gzip_bytes gzipped); cold start to the first answer $cold_start_ms ms"
kill -TERM -- "-${servers[-1]}" 2>/dev/null || true # this worker is done: the IntakeQ cells start their own

intakeq_cells latency burst catchup
python3 bench/report.py --results "$OUT/results.tsv" --scale "$OUT/scale.tsv" --e2e "$OUT/e2e.tsv" --bundle "$OUT/bundle.tsv" \
  --intakeq-latency "$OUT/intakeq_latency.tsv" --intakeq-burst "$OUT/intakeq_burst.tsv" \
  --intakeq-catchup "$OUT/intakeq_catchup.tsv" > "$OUT/REPORT.md"
mv "$OUT/REPORT.md" bench/REPORT.md
echo "bench: wrote bench/REPORT.md"
