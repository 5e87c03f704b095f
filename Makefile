# The two commands: `make dev` brings the local stack up, `make test` runs every test. Both install what is
# missing first (see scripts/install-deps.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help

NPM_STAMP := node_modules/.package-lock.json

.PHONY: help deps dev test test-unit test-db test-stack test-e2e bench worker deploy db db-stop db-reset

help:
	@echo "make dev        bring the local stack up (Postgres on 127.0.0.1:54322, migrated and seeded)"
	@echo "make test       run every test"
	@echo "make test-unit  native unit tests only"
	@echo "make test-db    advisors, pgTAP and concurrency tests against a throwaway database"
	@echo "make test-stack the local stand-ins: RPC API, IntakeQ sandbox, make dev"
	@echo "make test-e2e   the built worker in workerd against the local stack"
	@echo "make bench      benchmarks; writes bench/REPORT.md"
	@echo "make worker     build the worker into build/ (wasm)"
	@echo "make deploy     build and deploy the worker with wrangler"
	@echo "make db | db-stop | db-reset   start, stop or wipe the local Postgres"

deps: $(NPM_STAMP)
	@scripts/install-deps.sh

# `npm install`, not `npm ci`: the Supabase CLI lists a binary package per platform as optional, the lockfile
# can only hold the ones the registry serves, and `npm ci` refuses such a lockfile. Versions stay pinned.
$(NPM_STAMP): package.json package-lock.json
	@scripts/install-deps.sh
	npm install --no-audit --no-fund --loglevel=error

dev: deps
	@scripts/dev.sh

test: deps
	@scripts/test.sh unit db stack e2e

test-unit: deps
	@scripts/test.sh unit

test-db: deps
	@scripts/test.sh db

test-stack: deps
	@scripts/test.sh stack

test-e2e: deps
	@scripts/test.sh e2e

bench: deps
	@scripts/bench.sh

worker: deps
	@scripts/build-worker.sh

deploy: worker
	npx wrangler deploy

db: deps
	@scripts/db.sh start

db-stop:
	@scripts/db.sh stop

db-reset: deps
	@scripts/db.sh reset
