#!/usr/bin/env bash
# The local Postgres: a PostgreSQL 15 cluster on 127.0.0.1:54322 (user postgres, password postgres) shaped
# like a Supabase database, its data in .local/postgres (git-ignored). Migrations go through the Supabase
# CLI, then supabase/seed.sql.
#
#   scripts/db.sh start      start the cluster if needed, migrate and seed the `postgres` database (idempotent)
#   scripts/db.sh stop       stop the cluster this checkout started
#   scripts/db.sh reset      stop, wipe the data folder, start again: a clean database
#   scripts/db.sh test-db    (re)create a throwaway database `book_v2_test`, migrate and seed it, print its URL
#   scripts/db.sh url        print the URL of the dev database
#   scripts/db.sh is-up      succeed when there is nothing to start (DATABASE_URL is set, or the cluster answers)
#
# With DATABASE_URL set (for example the one `supabase start` prints), that server is used instead and no
# cluster is started; `reset` then refuses (use `supabase db reset` there).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB_HOST=${DB_HOST:-127.0.0.1}
DB_PORT=${DB_PORT:-54322}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DATA_DIR=${PG_DATA_DIR:-$ROOT/.local/postgres}
SUPABASE=$ROOT/node_modules/.bin/supabase
TEST_DB=${TEST_DB_NAME:-book_v2_test}

say() { printf 'db: %s\n' "$*" >&2; }
die() { printf 'db: error: %s\n' "$*" >&2; exit 1; }

server_url() { # URL of the server, without a database name
  if [[ -n ${DATABASE_URL:-} ]]; then
    local url=${DATABASE_URL%%\?*}
    printf '%s' "${url%/*}"
  else
    printf 'postgresql://postgres:postgres@%s:%s' "$DB_HOST" "$DB_PORT"
  fi
}
dev_url() {
  if [[ -n ${DATABASE_URL:-} ]]; then printf '%s' "$DATABASE_URL"; else printf '%s/postgres' "$(server_url)"; fi
}

as_owner() { # run a server program as the cluster's owner (PostgreSQL refuses to run as root)
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

answers() { psql "$1" -XtAqc 'select 1' >/dev/null 2>&1; }

ensure_cluster() {
  [[ -n ${DATABASE_URL:-} ]] && { answers "$(dev_url)" || die "DATABASE_URL does not answer"; return; }
  [[ -x $PG_BIN/pg_ctl ]] || die "PostgreSQL 15 server programs not found in $PG_BIN (run: make deps)"
  if answers "$(dev_url)"; then return; fi
  if "$PG_BIN/pg_isready" -q -h "$DB_HOST" -p "$DB_PORT"; then
    die "port $DB_PORT is taken by a Postgres that does not accept postgres/postgres; stop it, or set DB_PORT or DATABASE_URL"
  fi
  if [[ ! -s $DATA_DIR/PG_VERSION ]]; then
    say "initialising a cluster in ${DATA_DIR#"$ROOT"/}"
    mkdir -p "$DATA_DIR"
    local pwfile=$DATA_DIR.pw
    printf 'postgres\n' > "$pwfile"
    if [[ $(id -u) == 0 ]]; then
      chown postgres: "$DATA_DIR" "$pwfile"
      # The server runs as postgres: it must be able to walk down to its data (a checkout may sit in a
      # private folder). Only the right to pass through is added, never to list or read.
      local dir=$DATA_DIR
      while dir=$(dirname "$dir"); [[ $dir != / ]]; do
        runuser -u postgres -- test -x "$dir" || chmod o+x "$dir"
      done
    fi
    as_owner "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >"$DATA_DIR.init.log" 2>&1 \
      || { cat "$DATA_DIR.init.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  say "starting PostgreSQL on $DB_HOST:$DB_PORT"
  # An ephemeral cluster for development and tests: durability traded for speed.
  as_owner "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$DATA_DIR/server.log" -w -t 60 start -o \
    "-c listen_addresses=$DB_HOST -c port=$DB_PORT -c unix_socket_directories=$DATA_DIR -c max_connections=200 \
     -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null \
    || { tail -n 20 "$DATA_DIR/server.log" >&2; die "PostgreSQL did not start"; }
}

prepare() { # shape, migrate and seed one database
  local url=$1
  PGOPTIONS="-c client_min_messages=warning" psql "$url" -XqAt -v ON_ERROR_STOP=1 -f "$ROOT/scripts/supabase_shape.sql" >/dev/null
  [[ -x $SUPABASE ]] || die "the Supabase CLI is missing (run: make deps)"
  (cd "$ROOT" && "$SUPABASE" migration up --yes --remote="$url" >"$ROOT/.local/migrate.log" 2>&1) \
    || { cat "$ROOT/.local/migrate.log" >&2; die "migrations failed"; }
  psql "$url" -XqAt -v ON_ERROR_STOP=1 -f "$ROOT/supabase/seed.sql" >/dev/null
}

mkdir -p "$ROOT/.local"
case ${1:-} in
  start)
    ensure_cluster
    prepare "$(dev_url)"
    say "ready: $(dev_url)"
    ;;
  stop)
    if [[ -s $DATA_DIR/postmaster.pid ]]; then as_owner "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w stop >/dev/null; fi
    ;;
  reset)
    [[ -z ${DATABASE_URL:-} ]] || die "reset only wipes the local cluster; for supabase start use: supabase db reset"
    "$0" stop
    rm -rf "$DATA_DIR"
    "$0" start
    ;;
  test-db)
    ensure_cluster
    psql "$(server_url)/postgres" -XqAt -v ON_ERROR_STOP=1 \
      -c "drop database if exists $TEST_DB with (force)" -c "create database $TEST_DB" >/dev/null
    prepare "$(server_url)/$TEST_DB"
    psql "$(server_url)/$TEST_DB" -XqAt -v ON_ERROR_STOP=1 -c 'create extension if not exists pgtap with schema extensions' >/dev/null
    printf '%s\n' "$(server_url)/$TEST_DB"
    ;;
  url) dev_url; echo ;;
  is-up) [[ -n ${DATABASE_URL:-} ]] || answers "$(dev_url)" ;;
  *) die "usage: scripts/db.sh start|stop|reset|test-db|url|is-up" ;;
esac
