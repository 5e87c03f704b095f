#!/usr/bin/env bash
# The test suites behind `make test` (all of them, in this order) and `make test-<suite>`:
#   unit   native unit tests of every crate
#   db     Supabase's security advisors, pgTAP, and the database test binary (tests/db/), on a throwaway database
#   stack  the local stand-ins (devstack's own tests: RPC API fidelity, IntakeQ sandbox, `make dev` up and down)
#   e2e    the end-to-end test binary (tests/e2e/): the BUILT worker in workerd against the local stack
# Every test file belongs to one of them: a file under tests/ outside tests/db/ and tests/e2e/ stops the run.
# The database suites use the running local cluster (say, from `make dev`) without touching its data, each in
# a throwaway database of its own; when no cluster runs, one is started and stopped again at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
suites=("${@:-unit db stack e2e}")
read -r -a suites <<<"${suites[*]}"

# The root crate's integration tests are two binaries, tests/db/main.rs and tests/e2e/main.rs, each with its
# modules beside it; a file anywhere else would compile and never run here.
strays=$(find tests -name '*.rs' ! -path 'tests/db/*' ! -path 'tests/e2e/*')
if [[ -n $strays ]]; then
  echo "test.sh: these test files belong to no suite (move them into tests/db/ or tests/e2e/ as modules):" >&2
  echo "$strays" >&2
  exit 1
fi
for suite in db e2e; do
  for module in tests/$suite/*.rs; do
    name=$(basename "$module" .rs)
    [[ $name == main ]] || grep -q "^mod $name;" "tests/$suite/main.rs" || {
      echo "test.sh: $module is not a module of tests/$suite/main.rs (add \`mod $name;\` there), so it would never run" >&2
      exit 1
    }
  done
done

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
  DATABASE_URL=$url cargo test --test db
}

suite_stack() {
  ensure_cluster
  local url
  url=$(TEST_DB_NAME=book_v2_stack_test scripts/db.sh test-db)
  build_worker_once   # make dev's stack serves it
  echo "== local stack"
  TEST_DATABASE_URL=$url cargo test -p devstack --test '*'
}

suite_e2e() {
  ensure_cluster
  local url
  url=$(TEST_DB_NAME=book_v2_e2e_test scripts/db.sh test-db)
  build_worker_once
  echo "== end to end"
  TEST_DATABASE_URL=$url cargo test --test e2e
}

for suite in "${suites[@]}"; do
  "suite_$suite"
done
