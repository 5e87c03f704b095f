#!/usr/bin/env bash
# `make bench`: the database half of a booking, three designs (bench/pgbench/*.sql) at 1, 8 and 32 clients,
# on loopback and through a proxy adding 20 ms per round trip; writes bench/REPORT.md. BENCH_SECONDS per cell.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
export BENCH_SECONDS=${BENCH_SECONDS:-8}
DB_PORT=${DB_PORT:-54322}
PROXY_PORT=${BENCH_PROXY_PORT:-54399}
OUT=.local/bench
rm -rf "$OUT" && mkdir -p "$OUT"

cluster_started=false
if [[ -z ${DATABASE_URL:-} ]] && ! psql "$(scripts/db.sh url)" -XtAqc 'select 1' >/dev/null 2>&1; then cluster_started=true; fi
proxy=""
cleanup() {
  if [[ -n $proxy ]]; then kill "$proxy" 2>/dev/null || true; fi
  if $cluster_started; then scripts/db.sh stop; fi
}
trap cleanup EXIT
scripts/db.sh start >/dev/null
export BENCH_DATABASE_URL=$(TEST_DB_NAME=book_v2_bench scripts/db.sh test-db)
psql "$BENCH_DATABASE_URL" -XqAt -v ON_ERROR_STOP=1 -f bench/pgbench/setup.sql >/dev/null

python3 bench/delay_proxy.py "$PROXY_PORT" 127.0.0.1 "$DB_PORT" 10 > "$OUT/proxy.log" 2>&1 &
proxy=$!
for _ in $(seq 1 50); do grep -q "delay proxy on" "$OUT/proxy.log" && break; sleep 0.1; done

declare -A round_trips=([book_appointment]=1 [old_route]=7 [bare_inserts]=1)
printf 'design\tclients\tdelay_ms\ttps\tp95_ms\tround_trips\n' > "$OUT/results.tsv"
for delay in 0 20; do
  port=$DB_PORT; [[ $delay == 0 ]] || port=$PROXY_PORT
  for clients in 1 8 32; do
    for design in book_appointment old_route bare_inserts; do
      name="$design-$clients-$delay"
      (cd "$OUT" && "$PGBENCH" -n -f "$ROOT/bench/pgbench/$design.sql" -c "$clients" -j $((clients < 2 ? 1 : 2)) \
        -T "$BENCH_SECONDS" -l --log-prefix "$name" \
        "postgresql://postgres:postgres@127.0.0.1:$port/book_v2_bench" > "$name.out" 2>&1) \
        || { cat "$OUT/$name.out" >&2; exit 1; }
      tps=$(awk '/^tps = / { print $3; exit }' "$OUT/$name.out")
      p95=$(cat "$OUT/$name".[0-9]* | awk '{ print $3 }' | sort -n | awk '{ a[NR] = $1 } END { print a[int(NR * 0.95)] / 1000 }')
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$design" "$clients" "$delay" "$tps" "$p95" "${round_trips[$design]}" >> "$OUT/results.tsv"
      printf 'bench: %-17s %2s clients +%2s ms: %8s bookings/s, p95 %s ms\n' "$design" "$clients" "$delay" "$tps" "$p95"
    done
  done
done
# Scale: does a booking cost more when the tables are big? The same booking on 10 thousand and on 1 million
# existing appointments (and 100 thousand patients), loopback.
printf 'appointments\tclients\ttps\tp95_ms\n' > "$OUT/scale.tsv"
for appointments in 10000 1000000; do
  url=$(TEST_DB_NAME=book_v2_bench_scale scripts/db.sh test-db)
  psql "$url" -XqAt -v ON_ERROR_STOP=1 -f bench/pgbench/setup.sql >/dev/null
  psql "$url" -XqAt -v ON_ERROR_STOP=1 -v appointments="$appointments" -f bench/pgbench/load.sql >/dev/null
  for clients in 1 8; do
    name="scale-$appointments-$clients"
    (cd "$OUT" && "$PGBENCH" -n -f "$ROOT/bench/pgbench/book_appointment.sql" -c "$clients" -j $((clients < 2 ? 1 : 2)) \
      -T "$BENCH_SECONDS" -l --log-prefix "$name" "$url" > "$name.out" 2>&1) || { cat "$OUT/$name.out" >&2; exit 1; }
    tps=$(awk '/^tps = / { print $3; exit }' "$OUT/$name.out")
    p95=$(cat "$OUT/$name".[0-9]* | awk '{ print $3 }' | sort -n | awk '{ a[NR] = $1 } END { print a[int(NR * 0.95)] / 1000 }')
    printf '%s\t%s\t%s\t%s\n' "$appointments" "$clients" "$tps" "$p95" >> "$OUT/scale.tsv"
    printf 'bench: book_appointment on %7s appointments, %s clients: %8s bookings/s, p95 %s ms\n' "$appointments" "$clients" "$tps" "$p95"
  done
done

python3 bench/report.py "$OUT/results.tsv" "$OUT/scale.tsv" > bench/REPORT.md
echo "bench: wrote bench/REPORT.md"
