#!/usr/bin/env bash
# `make dev`: brings the local stack up, waits until each part answers, prints one ready block, and keeps it up
# until Ctrl-C or SIGTERM, then stops what it started.
#
#   Postgres         127.0.0.1:${DB_PORT:-54322}   scripts/db.sh (or DATABASE_URL's server: nothing started)
#   RPC API          127.0.0.1:${RPC_API_PORT:-54321}   devstack rpc-api (not started when SUPABASE_URL is set,
#                    e.g. to supabase start's API; RPC_DATABASE_URL says where it connects as authenticator)
#   IntakeQ sandbox  127.0.0.1:${INTAKEQ_SANDBOX_PORT:-54380}   devstack intakeq-sandbox (not started when
#                    INTAKEQ_BASE_URL is set)
#   Worker           127.0.0.1:${WORKER_PORT:-8787}   the built worker in workerd (wrangler dev), against the above
#                    (built first by scripts/build-worker.sh unless WORKER_PREBUILT=1)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

export RPC_API_PORT=${RPC_API_PORT:-54321}
export INTAKEQ_SANDBOX_PORT=${INTAKEQ_SANDBOX_PORT:-54380}
export INTAKEQ_SANDBOX_API_KEY=${INTAKEQ_SANDBOX_API_KEY:-sandbox-intakeq-key}
WORKER_PORT=${WORKER_PORT:-8787}
DEVSTACK=${DEVSTACK_BIN:-}

die() { printf 'dev: error: %s\n' "$*" >&2; exit 1; }

started_db=false
children=()
# Each part runs in a process group of its own (wrangler's wrapper does not pass signals on to workerd and
# esbuild), and stopping signals the whole group.
start_child() {
  setsid "$@" &
  children+=($!)
}
stop() {
  trap '' INT TERM   # a second signal (make forwards one too) must not cut the cleanup short
  for pid in "${children[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${children[@]}"; do wait "$pid" 2>/dev/null || true; done
  if $started_db; then scripts/db.sh stop; fi
  echo "dev: stopped" >&2
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until `url` answers HTTP at all (any status), failing if the process `pid` exits first.
wait_for() {
  local what=$1 url=$2 pid=$3
  for _ in $(seq 1 300); do
    curl -s -o /dev/null --max-time 1 "$url" && return 0
    kill -0 "$pid" 2>/dev/null || die "$what exited before answering"
    sleep 0.1
  done
  die "$what did not answer at $url within 30 s"
}

scripts/db.sh is-up || started_db=true
scripts/db.sh start
DEV_DB_URL=$(scripts/db.sh url)

if [[ -z $DEVSTACK ]]; then
  cargo build --quiet -p devstack
  DEVSTACK=$ROOT/target/debug/devstack
fi

if [[ -n ${SUPABASE_URL:-} ]]; then
  api_url=$SUPABASE_URL
else
  export RPC_DATABASE_URL=${RPC_DATABASE_URL:-${DEV_DB_URL/postgres:postgres@/authenticator:postgres@}}
  api_url=http://127.0.0.1:$RPC_API_PORT
  start_child "$DEVSTACK" rpc-api
  wait_for "the RPC API" "$api_url/rest/v1/" "$!"
fi

if [[ -n ${INTAKEQ_BASE_URL:-} ]]; then
  intakeq_url=$INTAKEQ_BASE_URL
else
  intakeq_url=http://127.0.0.1:$INTAKEQ_SANDBOX_PORT/api/v1
  start_child "$DEVSTACK" intakeq-sandbox
  wait_for "the IntakeQ sandbox" "$intakeq_url/appointments/settings" "$!"
fi

eval "$("$DEVSTACK" keys)"

if [[ ${WORKER_PREBUILT:-} != 1 ]]; then
  scripts/build-worker.sh
fi
mkdir -p .local/wrangler
export WRANGLER_SEND_METRICS=false WRANGLER_LOG_PATH=$ROOT/.local/wrangler
start_child node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$WORKER_PORT" --show-interactive-dev-session=false \
  --test-scheduled \
  --var "SUPABASE_URL:$api_url" --var "SUPABASE_SERVICE_ROLE_KEY:$SUPABASE_SERVICE_ROLE_KEY" \
  --var "INTAKEQ_BASE_URL:$intakeq_url" --var "INTAKEQ_API_KEY:${INTAKEQ_API_KEY:-$INTAKEQ_SANDBOX_API_KEY}" \
  --var "ALLOWED_ORIGINS:${ALLOWED_ORIGINS:-http://localhost:3000,http://127.0.0.1:3000}" \
  --var "ADMIN_TOKEN:${ADMIN_TOKEN:-local-admin-token}" < /dev/null
worker_url=http://127.0.0.1:$WORKER_PORT
wait_for "the worker" "$worker_url/health" "$!"

cat <<READY

  book-v2 local stack is ready
    Worker            $worker_url/api/patient-booking/book-v2   (health: $worker_url/health)
    Staff token       ${ADMIN_TOKEN:-local-admin-token}   ($worker_url/api/patient-booking/sync-health)
    Sync cron         curl "$worker_url/__scheduled?cron=*+*+*+*+*"   (wrangler dev does not fire it by itself)
    Postgres          $DEV_DB_URL   (migrated and seeded)
    RPC API           $api_url/rest/v1/rpc/<function>
    IntakeQ           $intakeq_url   (X-Auth-Key: $INTAKEQ_SANDBOX_API_KEY; control: /_sandbox)
    anon key          $SUPABASE_ANON_KEY
    service_role key  $SUPABASE_SERVICE_ROLE_KEY
  Ctrl-C stops it.

READY

if ((${#children[@]})); then
  wait -n "${children[@]}" || true
  die "a part of the stack exited; stopping the rest"
else
  start_child sleep infinity
  wait
fi
