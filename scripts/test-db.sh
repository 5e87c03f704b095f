#!/usr/bin/env bash
# The database tests: a throwaway database `book_v2_test` (migrated with the Supabase CLI and seeded), then
#   1. Supabase's security advisors, which must find nothing,
#   2. the pgTAP files under supabase/tests/database,
#   3. the concurrency tests over separate connections (tests/db_concurrency.rs).
# Uses the running local cluster (say, from `make dev`) without touching its data; otherwise starts one and
# stops it again at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [[ -z ${DATABASE_URL:-} ]] && ! psql "$(scripts/db.sh url)" -XtAqc 'select 1' >/dev/null 2>&1; then
  trap 'scripts/db.sh stop' EXIT
fi
TEST_URL=$(scripts/db.sh test-db)

echo "== Supabase security advisors"
node_modules/.bin/supabase db advisors --remote="$TEST_URL" --type security --level info --fail-on info \
  > .local/advisors.log 2>&1 || { cat .local/advisors.log >&2; echo "advisors: security findings above" >&2; exit 1; }
echo "no security findings"

echo "== pgTAP"
pg_prove --ext .sql -d "$TEST_URL" supabase/tests/database/

echo "== concurrency"
DATABASE_URL=$TEST_URL cargo test --test db_concurrency
