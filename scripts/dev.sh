#!/usr/bin/env bash
# `make dev`: brings the local stack up, prints where it is, and keeps it up until Ctrl-C or SIGTERM, then
# stops what it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

started_db=false
idle=""
if [[ -z ${DATABASE_URL:-} ]] && ! psql "$(scripts/db.sh url)" -XtAqc 'select 1' >/dev/null 2>&1; then
  started_db=true
fi
stop() {
  trap - INT TERM EXIT
  if [[ -n $idle ]]; then kill "$idle" 2>/dev/null || true; fi
  if $started_db; then scripts/db.sh stop; fi
  echo "dev: stopped"
}
trap stop INT TERM EXIT

scripts/db.sh start
cat <<READY

  book-v2 local stack is ready
    Postgres   $(scripts/db.sh url)   (migrated and seeded)
  Ctrl-C stops it.

READY
sleep infinity &
idle=$!
wait "$idle"
