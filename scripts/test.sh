#!/usr/bin/env bash
# The test suites behind `make test` (all of them, in this order) and `make test-<suite>`:
#   unit   native unit tests of every crate
#   db     Supabase's security advisors, pgTAP, and the booking concurrency tests, on a throwaway database
#   stack  the local stand-ins (RPC API fidelity, IntakeQ sandbox, `make dev` up and down)
#   e2e    the BUILT worker in workerd against the RPC API and Postgres (builds it first)
# The database suites use the running local cluster (say, from `make dev`) without touching its data, each in
# a throwaway database of its own; when no cluster runs, one is started and stopped again at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
suites=("${@:-unit db stack e2e}")
read -r -a suites <<<"${suites[*]}"

cluster_started=false
ensure_cluster() {
  scripts/db.sh is-up || cluster_started=true
  scripts/db.sh start >/dev/null
}
trap '$cluster_started && scripts/db.sh stop' EXIT

worker_built=false
build_worker_once() {
  $worker_built && return
  echo "== worker build"
  scripts/build-worker.sh
  worker_built=true
}

suite_unit() {
  echo "== unit tests"
  cargo test --workspace --lib --bins
}

suite_db() {
  ensure_cluster
  local url
  url=$(TEST_DB_NAME=book_v2_test scripts/db.sh test-db)
  echo "== Supabase security advisors"
  node_modules/.bin/supabase db advisors --remote="$url" --type security --level info --fail-on info \
    > .local/advisors.log 2>&1 || { cat .local/advisors.log >&2; echo "advisors: security findings above" >&2; return 1; }
  echo "no security findings"
  echo "== pgTAP"
  pg_prove --ext .sql -d "$url" supabase/tests/database/
  echo "== booking concurrency"
  DATABASE_URL=$url cargo test --test db_concurrency
}

suite_stack() {
  ensure_cluster
  local url
  url=$(TEST_DB_NAME=book_v2_stack_test scripts/db.sh test-db)
  build_worker_once   # make dev's stack serves it
  echo "== local stack"
  TEST_DATABASE_URL=$url cargo test -p local-stack --test '*'
}

suite_e2e() {
  ensure_cluster
  local url
  url=$(TEST_DB_NAME=book_v2_e2e_test scripts/db.sh test-db)
  build_worker_once
  echo "== end to end"
  TEST_DATABASE_URL=$url cargo test --test 'e2e_*'
}

for suite in "${suites[@]}"; do
  "suite_$suite"
done
