#!/usr/bin/env bash
# `make dev`: brings the local stack up, waits until each part answers, prints one ready block, and keeps it up
# until Ctrl-C or SIGTERM (or SIGHUP), then stops what it started.
#
#   Postgres         127.0.0.1:${DB_PORT:-54322}   scripts/db.sh (or DATABASE_URL's server: nothing started)
#   RPC API          127.0.0.1:${RPC_API_PORT:-54321}   devstack rpc-api (not started when SUPABASE_URL is set,
#                    e.g. to supabase start's API; RPC_DATABASE_URL says where it connects as authenticator)
#   IntakeQ sandbox  127.0.0.1:${INTAKEQ_SANDBOX_PORT:-54380}   devstack intakeq-sandbox (not started when
#                    INTAKEQ_BASE_URL is set)
#   Staff alerts     127.0.0.1:${ALERT_RECEIVER_PORT:-54390}   devstack alert-receiver, the chat webhook's stand-in
#                    (not started when STAFF_ALERT_WEBHOOK_URL is set)
#   Worker           127.0.0.1:${WORKER_PORT:-8787}   the built worker in workerd (wrangler dev), against the above
#                    (built first by scripts/build-worker.sh unless WORKER_PREBUILT=1)
#
# The worker's other settings come from wrangler.toml, and from the environment where set there: every name
# src/config.rs reads (EXPOSE_ERROR_DEBUG, DATABASE_TIMEOUT_MS, SYNC_LEASE_SECONDS, ...) and every variable named
# SYNC_*, INTAKEQ_*, BOOKING_*, TURNSTILE_*, STAFF_*, PARTNER_*, MANAGE_*, SLOT_* or MIN_* (INTAKEQ_SANDBOX_*
# aside) is passed to `wrangler dev` as `--var NAME:value`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

export RPC_API_PORT=${RPC_API_PORT:-54321}
export INTAKEQ_SANDBOX_PORT=${INTAKEQ_SANDBOX_PORT:-54380}
export ALERT_RECEIVER_PORT=${ALERT_RECEIVER_PORT:-54390}
export INTAKEQ_SANDBOX_API_KEY=${INTAKEQ_SANDBOX_API_KEY:-sandbox-intakeq-key}
WORKER_PORT=${WORKER_PORT:-8787}
DEVSTACK=${DEVSTACK_BIN:-}

die() { printf 'dev: error: %s\n' "$*" >&2; exit 1; }

# ---- Stopping ------------------------------------------------------------------------------------------------
# Every process this script starts runs in a process group of its own (setsid): Ctrl-C at the terminal then
# reaches make and this script only, and stopping signals whole groups (wrangler's wrapper does not pass signals
# on to workerd and esbuild). Whatever ends the script (a signal, a failure, a part exiting) ends up in `stop`,
# which runs once and to its end: it ignores further signals (make forwards a second SIGTERM; Ctrl-C may be pressed
# twice), signals every group it started and every descendant of theirs that left its group, waits for all of them
# to be gone (SIGKILL after a grace period), stops Postgres if it started it, and checks the ports are closed.
started_db=false
db_starter=       # the pid of `scripts/db.sh start` while it runs
groups=()         # the leader of every process group started: its pid, which is also the group's id
parts=()          # the long-running parts among them
ports=()          # the ports the parts listen on
stopping=false
declare -A known=()   # every process of ours seen so far (descendants outlive their parents)

# Starts "$@" in the background, in a new process group; $! is its pid. A signal may arrive between the fork and
# the recording of the pid: `stop` counts $! in as well.
spawn() {
  setsid "$@" &
  groups+=("$!")
}
# Takes the group led by $1 off the list once its leader is done: its number may go to another process later.
forget() {
  local i
  for i in "${!groups[@]}"; do
    if [[ ${groups[i]} == "$1" ]]; then unset 'groups[i]'; fi
  done
}
# Runs "$@" in a process group of its own and waits for it: a signal interrupts the wait at once (bash runs a trap
# only after a foreground command), and `stop` signals the step's whole group.
run() {
  spawn "$@"
  local pid=$! status=0
  wait "$pid" || status=$?
  forget "$pid"
  return "$status"
}
# Succeeds while process $1 is a live child of this shell (not a later process given the same number).
running() {
  local line
  { read -r line < "/proc/$1/stat"; } 2>/dev/null || return 1
  [[ ${line##*) } =~ ^([A-Za-z]+)\ ([0-9]+) && ${BASH_REMATCH[1]} != Z && ${BASH_REMATCH[2]} == "$$" ]]
}

# Sets `live` to the live processes of the groups started and their descendants. Read from /proc by the shell
# itself: `ps` catches SIGTERM even where it is ignored, so a second signal to the group could cut it short.
members() {
  local -A group=() mine=() parent=() state=()
  local f line pid more
  for pid in "${groups[@]}"; do group[$pid]=1 mine[$pid]=1; done
  for pid in "${!known[@]}"; do mine[$pid]=1; done
  for f in /proc/[0-9]*/stat; do
    { read -r line < "$f"; } 2>/dev/null || continue
    # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
    [[ ${line##*) } =~ ^([A-Za-z]+)\ ([0-9]+)\ ([0-9]+) ]] || continue
    pid=${line%% *}
    state[$pid]=${BASH_REMATCH[1]} parent[$pid]=${BASH_REMATCH[2]}
    if [[ -v group[${BASH_REMATCH[3]}] ]]; then mine[$pid]=1; fi
  done
  more=true
  while $more; do
    more=false
    for pid in "${!parent[@]}"; do
      if [[ ! -v mine[$pid] && -v mine[${parent[$pid]}] ]]; then mine[$pid]=1 more=true; fi
    done
  done
  live=()
  for pid in "${!mine[@]}"; do
    if [[ -v state[$pid] && ${state[$pid]} != Z ]]; then live+=("$pid") known[$pid]=1; fi
  done
}

# SIGTERM to every group started and every process of ours, again each second (a signal that reached a child
# before it left this script's group may have been lost), SIGKILL to what is left after 5 s; returns once none
# is left (or, after 5 s more, names what could not be stopped).
terminate() {
  local signal=TERM polls=0 deadline=$((SECONDS + 5)) group live
  while :; do
    members
    ((${#live[@]})) || return 0
    if ((SECONDS >= deadline)); then
      if [[ $signal == KILL ]]; then
        printf 'dev: could not stop the processes %s\n' "${live[*]}" >&2
        return 0
      fi
      signal=KILL polls=0 deadline=$((SECONDS + 5))
    fi
    if ((polls % 10 == 0)); then
      for group in "${groups[@]}"; do kill "-$signal" -- "-$group" 2>/dev/null; done
      kill "-$signal" -- "${live[@]}" 2>/dev/null
    fi
    polls=$((polls + 1))
    sleep 0.1
  done
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop() {
  # A copy of this shell forked for a child can catch a signal before it turns into the child: not ours to act on.
  [[ $BASHPID == "$$" ]] || return 0
  trap '' INT TERM HUP PIPE
  $stopping && return 0
  stopping=true
  set +e
  local last=${!:-} port i
  if [[ -n $last && " ${groups[*]} " != *" $last "* ]] && running "$last"; then groups+=("$last"); fi
  # Caught between `db_starter=pending:<the last pid before>` and the recording of its pid: $! tells if it forked.
  if [[ $db_starter == pending:* ]]; then
    if [[ $last != "${db_starter#pending:}" ]]; then db_starter=$last; else db_starter=; fi
  fi
  if $started_db && [[ -n $db_starter ]] && running "$db_starter"; then
    # pg_ctl runs the server in a session of its own: cut short, its start could leave a server nobody stops.
    echo "dev: letting Postgres finish starting, to stop it" >&2
    for ((i = 0; i < 1200; i++)); do running "$db_starter" || break; sleep 0.1; done
  fi
  terminate
  if $started_db; then scripts/db.sh stop; fi
  for port in "${ports[@]}"; do
    for ((i = 0; i < 50; i++)); do answers "$port" || break; sleep 0.1; done
    if answers "$port"; then echo "dev: port $port still answers, though every process started here is gone" >&2; fi
  done
  echo "dev: stopped" >&2
}
on_signal() { # $1: the exit status, 128 + the signal's number
  [[ $BASHPID == "$$" ]] || exit "$1"
  trap '' INT TERM HUP PIPE
  stop
  exit "$1"
}
trap stop EXIT
trap 'on_signal 129' HUP
trap 'on_signal 130' INT
trap 'on_signal 141' PIPE
trap 'on_signal 143' TERM

# ---- Starting ------------------------------------------------------------------------------------------------
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
# Starts the part "$2..." listening on port $1; $! is its pid.
start_part() {
  ports+=("$1")
  spawn "${@:2}"
  parts+=("$!")
}

# In a group of its own, like every step: a Ctrl-C that killed its psql must not pass for "no database up".
status=0
run scripts/db.sh is-up || status=$?
((status < 128)) || die "scripts/db.sh is-up ended with status $status"
((status == 0)) || started_db=true
db_starter=pending:$!
spawn scripts/db.sh start
db_starter=$!
wait "$db_starter"
forget "$db_starter"
db_starter=
DEV_DB_URL=$(scripts/db.sh url)

if [[ -z $DEVSTACK ]]; then
  run cargo build --quiet -p devstack
  DEVSTACK=$ROOT/target/debug/devstack
fi

if [[ -n ${SUPABASE_URL:-} ]]; then
  api_url=$SUPABASE_URL
else
  export RPC_DATABASE_URL=${RPC_DATABASE_URL:-${DEV_DB_URL/postgres:postgres@/authenticator:postgres@}}
  api_url=http://127.0.0.1:$RPC_API_PORT
  start_part "$RPC_API_PORT" "$DEVSTACK" rpc-api
  wait_for "the RPC API" "$api_url/rest/v1/" "$!"
fi

if [[ -n ${INTAKEQ_BASE_URL:-} ]]; then
  intakeq_url=$INTAKEQ_BASE_URL
else
  intakeq_url=http://127.0.0.1:$INTAKEQ_SANDBOX_PORT/api/v1
  start_part "$INTAKEQ_SANDBOX_PORT" "$DEVSTACK" intakeq-sandbox
  wait_for "the IntakeQ sandbox" "$intakeq_url/appointments/settings" "$!"
fi

if [[ -n ${STAFF_ALERT_WEBHOOK_URL:-} ]]; then
  alerts_url=$STAFF_ALERT_WEBHOOK_URL
else
  alerts_url=http://127.0.0.1:$ALERT_RECEIVER_PORT/hooks/local
  start_part "$ALERT_RECEIVER_PORT" "$DEVSTACK" alert-receiver
  wait_for "the alert receiver" "http://127.0.0.1:$ALERT_RECEIVER_PORT/_receiver/messages" "$!"
fi

eval "$("$DEVSTACK" keys)"

if [[ ${WORKER_PREBUILT:-} != 1 ]]; then
  run scripts/build-worker.sh
fi

# The settings set here; then every other worker setting found in the environment.
worker_vars=(
  --var "SUPABASE_URL:$api_url" --var "SUPABASE_SERVICE_ROLE_KEY:$SUPABASE_SERVICE_ROLE_KEY"
  --var "INTAKEQ_BASE_URL:$intakeq_url" --var "INTAKEQ_API_KEY:${INTAKEQ_API_KEY:-$INTAKEQ_SANDBOX_API_KEY}"
  --var "ALLOWED_ORIGINS:${ALLOWED_ORIGINS:-http://localhost:3000,http://127.0.0.1:3000}"
  --var "ADMIN_TOKEN:${ADMIN_TOKEN:-local-admin-token}"
  --var "PARTNER_API_TOKEN:${PARTNER_API_TOKEN:-local-partner-token}"
  --var "STAFF_ALERT_WEBHOOK_URL:$alerts_url"
  --var "MANAGE_TOKEN_SECRET:${MANAGE_TOKEN_SECRET:-local-manage-token-secret}"
  --var "INTAKEQ_WEBHOOK_SECRET:${INTAKEQ_WEBHOOK_SECRET:-local-webhook-secret}"
)
set_here=" SUPABASE_URL SUPABASE_SERVICE_ROLE_KEY INTAKEQ_BASE_URL INTAKEQ_API_KEY ALLOWED_ORIGINS ADMIN_TOKEN PARTNER_API_TOKEN STAFF_ALERT_WEBHOOK_URL MANAGE_TOKEN_SECRET INTAKEQ_WEBHOOK_SECRET "
# The names src/config.rs reads (its string literals in capitals, the tests below it left out).
settings=" $(sed '/#\[cfg(test)\]/q' src/config.rs | grep -o '"[A-Z][A-Z0-9_]*"' | tr -d '"' | tr '\n' ' ') "
[[ -n ${settings// /} ]] || echo "dev: warning: found no setting names in src/config.rs" >&2
passed=()
for name in $(compgen -e | sort); do
  [[ $set_here == *" $name "* || -z ${!name} ]] && continue
  if [[ $settings == *" $name "* ]] \
    || [[ $name =~ ^(SYNC|INTAKEQ|BOOKING|TURNSTILE|STAFF|PARTNER|MANAGE|SLOT|MIN)_ && $name != INTAKEQ_SANDBOX_* && $name != TURNSTILE_STANDIN_* ]]; then
    worker_vars+=(--var "$name:${!name}")
    passed+=("$name")
  fi
done

mkdir -p .local/wrangler
export WRANGLER_SEND_METRICS=false WRANGLER_LOG_PATH=$ROOT/.local/wrangler
start_part "$WORKER_PORT" node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$WORKER_PORT" \
  --show-interactive-dev-session=false --test-scheduled "${worker_vars[@]}" < /dev/null
worker_url=http://127.0.0.1:$WORKER_PORT
wait_for "the worker" "$worker_url/health" "$!"
# The sandbox sends IntakeQ's webhooks (staff changes made through /_sandbox/staff) to the worker, as the
# practice would set them up in IntakeQ.
webhook_url=$worker_url/api/intakeq/webhooks/${INTAKEQ_WEBHOOK_SECRET:-local-webhook-secret}
if [[ -z ${INTAKEQ_BASE_URL:-} ]]; then
  curl -fsS -X PUT "http://127.0.0.1:$INTAKEQ_SANDBOX_PORT/_sandbox/webhooks" -H 'content-type: application/json' \
    -d "{\"url\": \"$webhook_url\", \"apiChanges\": true}" >/dev/null \
    || die "the IntakeQ sandbox refused the webhook setup"
fi

cat <<READY

  book-v2 local stack is ready
    Worker            $worker_url/api/patient-booking/book-v2   (health: $worker_url/health)
    Staff token       ${ADMIN_TOKEN:-local-admin-token}   ($worker_url/api/patient-booking/sync-health)
    Partner token     ${PARTNER_API_TOKEN:-local-partner-token}   (Authorization: Bearer ...; lets a booking name a patientId)
    Manage tokens     signed with ${MANAGE_TOKEN_SECRET:-local-manage-token-secret}   (a booking's 201 answer carries its own)
    IntakeQ webhooks  $worker_url/api/intakeq/webhooks/[INTAKEQ_WEBHOOK_SECRET]   (the sandbox posts its staff changes there)
    Sync cron         curl "$worker_url/__scheduled?cron=*+*+*+*+*"   (wrangler dev does not fire it by itself)
    Postgres          $DEV_DB_URL   (migrated and seeded)
    RPC API           $api_url/rest/v1/rpc/<function>
    IntakeQ           $intakeq_url   (X-Auth-Key: $INTAKEQ_SANDBOX_API_KEY; control: /_sandbox)
    Staff alerts      $alerts_url   (what the stand-in got: http://127.0.0.1:$ALERT_RECEIVER_PORT/_receiver/messages)
    anon key          $SUPABASE_ANON_KEY
    service_role key  $SUPABASE_SERVICE_ROLE_KEY
READY
if ((${#passed[@]})); then
  printf '    From the env      %s\n' "${passed[*]}"
fi
printf '  Ctrl-C stops it.\n\n'

wait -n "${parts[@]}" || true
die "a part of the stack exited; stopping the rest"
