#!/usr/bin/env bash
# infra/test.sh — `make test`: lint, then start the real parts the suite needs (Kafka,
# PostgreSQL, stripe-mock) on test ports, run every test, and stop what it started.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR"
BIN="$REPO_DIR/.venv/bin"

# Test state is disposable and kept apart from `make run`'s var/; ports differ too, so a
# running `make run` and `make test` do not meet.
export DIFTS_VAR="$REPO_DIR/var/test"
export KAFKA_PORT=${TEST_KAFKA_PORT:-19092}
export KAFKA_CONTROLLER_PORT=${TEST_KAFKA_CONTROLLER_PORT:-19093}
export PGPORT=${TEST_PGPORT:-55432}
export STRIPE_MOCK_PORT=${TEST_STRIPE_MOCK_PORT:-12211}
export STRIPE_MOCK_HTTPS_PORT=${TEST_STRIPE_MOCK_HTTPS_PORT:-12212}

step() { echo; echo "== $* ==" >&2; }
started=()
cleanup() {
  local status=$?
  for script in "${started[@]}"; do bash "infra/$script" stop >/dev/null 2>&1 || true; done
  exit $status
}
trap cleanup EXIT INT TERM

step "lint: ruff and mypy"
"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/mypy" services

step "starting Kafka, PostgreSQL and stripe-mock for the tests (in parallel)"
for script in kafka.sh postgres.sh stripe-mock.sh; do bash "infra/$script" stop >/dev/null 2>&1 || true; done
rm -rf "$DIFTS_VAR"
pids=()
for script in kafka.sh postgres.sh stripe-mock.sh; do
  started+=("$script")
  bash "infra/$script" start &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "test: ERROR: an infra script failed to start (see above)" >&2; exit 1; }
done

export DIFTS_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"
export DIFTS_TEST_POSTGRES="postgresql+psycopg://difts:difts@127.0.0.1:$PGPORT/postgres"
export DIFTS_TEST_STRIPE="http://127.0.0.1:$STRIPE_MOCK_PORT"

step "Chromium and axe-core for the browser tests (Debian's package, npm)"
bash infra/chromium.sh
bash infra/axe.sh

step "tests: unit, integration, e2e"
"$BIN/pytest" tests "$@"
