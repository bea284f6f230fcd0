#!/usr/bin/env bash
# infra/stripe-mock.sh — a local stripe-mock (Stripe's official API mock) on
# 127.0.0.1 for local development and the test suite.
#
#   infra/stripe-mock.sh start    install if needed, start, wait until it answers
#   infra/stripe-mock.sh stop     stop it (SIGTERM, SIGKILL after 20 s); 0 if it was not running
#   infra/stripe-mock.sh status   exit 0 if running and answering, 1 otherwise
#
# The binary is built with `go install` from the Go module proxy into
# $DIFTS_CACHE/bin (once per pinned version). Pid and log live in
# $DIFTS_VAR/stripe-mock.
set -euo pipefail

STRIPE_MOCK_VERSION=v0.203.0   # newest tag on the Go module proxy (needs Go >= 1.22)

SERVICE=stripe-mock
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIFTS_CACHE=$(abs_dir "${DIFTS_CACHE:-$REPO_DIR/.cache}")
STRIPE_MOCK_PORT=${STRIPE_MOCK_PORT:-12111}
STRIPE_MOCK_HTTPS_PORT=${STRIPE_MOCK_HTTPS_PORT:-12112}
STRIPE_MOCK_WAIT_TIMEOUT=${STRIPE_MOCK_WAIT_TIMEOUT:-30}

BIN_DIR="$DIFTS_CACHE/bin"
BIN="$BIN_DIR/stripe-mock"
BIN_STAMP="$BIN_DIR/stripe-mock.version"
STATE="$DIFTS_VAR/stripe-mock"
PIDFILE="$STATE/stripe-mock.pid"
LOGFILE="$STATE/stripe-mock.log"

# What infra/lib.sh's daemon_* need to know.
PROC_MATCH='stripe-mock'
PORT_VARS=(STRIPE_MOCK_PORT STRIPE_MOCK_HTTPS_PORT)
ADDR="http://127.0.0.1:$STRIPE_MOCK_PORT"
WAIT_TIMEOUT=$STRIPE_MOCK_WAIT_TIMEOUT
STATUS_HINT="see $LOGFILE"

# --- installation -------------------------------------------------------------

find_go() {
  local go
  go=$(command -v go || true)
  [ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
  [ -n "$go" ] || die "Go is not installed (no 'go' on PATH nor /usr/local/go/bin/go). stripe-mock $STRIPE_MOCK_VERSION needs Go >= 1.22 (Debian 12's golang-go is 1.19, too old): install Go 1.22+ to /usr/local/go, or put it on PATH, and retry"
  # Go >= 1.21 fetches a newer toolchain from the module proxy by itself if needed.
  local v
  v=$("$go" env GOVERSION 2>/dev/null || true)
  case "$v" in
    go1.1[0-9]*|go1.[0-9]|go1.[0-9].*|go1.20*|"")
      die "$go is ${v:-too old}; stripe-mock $STRIPE_MOCK_VERSION needs Go >= 1.22 (>= 1.21 can fetch it): install Go 1.22+ to /usr/local/go and retry" ;;
  esac
  echo "$go"
}

ensure_binary() {
  if [ -x "$BIN" ] && [ "$(cat "$BIN_STAMP" 2>/dev/null)" = "$STRIPE_MOCK_VERSION" ]; then
    return 0
  fi
  local go tmp buildlog="$BIN_DIR/go-install.log"
  go=$(find_go)
  mkdir -p "$BIN_DIR"
  tmp="$BIN_DIR/.install.$$"
  rm -rf "$tmp"
  log "installing stripe-mock $STRIPE_MOCK_VERSION with go install from the Go module proxy (first run, ~1 min)..."
  # A neutral directory and GOFLAGS so the project's own go.mod / flags (if any) do not interfere.
  if ! (cd / && GOBIN="$tmp" GOFLAGS='' "$go" install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION") >"$buildlog" 2>&1; then
    rm -rf "$tmp"
    tail -n 20 "$buildlog" >&2
    die "go install github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION failed (log: $buildlog); check that the Go module proxy is reachable ($go env GOPROXY) and retry"
  fi
  mv -f "$tmp/stripe-mock" "$BIN"
  rm -rf "$tmp"
  echo "$STRIPE_MOCK_VERSION" >"$BIN_STAMP"
  log "installed $BIN"
}

# --- readiness and start -------------------------------------------------------

# probe TIMEOUT [PID]: poll GET /v1/customers until it answers 200.
# Exit 0 = ready, 1 = timeout, 2 = PID died.
probe() {
  probe_loop "$1" "${2:-0}" "$STRIPE_MOCK_PORT" <<'PY'
import sys, urllib.error, urllib.request

INTERVAL = 0.2
req = urllib.request.Request(
    "http://127.0.0.1:%d/v1/customers" % int(sys.argv[3]),
    headers={"Authorization": "Bearer sk_test_123"},
)

def check():
    try:
        with urllib.request.urlopen(req, timeout=2) as reply:
            return None if reply.status == 200 else "HTTP %d" % reply.status
    except urllib.error.HTTPError as e:
        return "HTTP %d" % e.code
PY
}

prepare() {
  command -v python3 >/dev/null || die "python3 is needed for the readiness check; apt-get install -y python3"
  ensure_binary
}

launch() {
  log "starting on http://127.0.0.1:$STRIPE_MOCK_PORT and https://127.0.0.1:$STRIPE_MOCK_HTTPS_PORT (log: $LOGFILE)..."
  spawn "$LOGFILE" "$BIN" -http-addr "127.0.0.1:$STRIPE_MOCK_PORT" -https-addr "127.0.0.1:$STRIPE_MOCK_HTTPS_PORT"
}

start_failed() { # start_failed nopid|exited|timeout
  case $1 in
    nopid) die "stripe-mock did not start; see $LOGFILE" ;;
    exited) tail -n 20 "$LOGFILE" >&2 2>/dev/null || true
            die "stripe-mock exited during start-up; see $LOGFILE" ;;
    timeout) die "stripe-mock did not answer GET http://127.0.0.1:$STRIPE_MOCK_PORT/v1/customers within ${STRIPE_MOCK_WAIT_TIMEOUT}s; see $LOGFILE ('$0 stop' to clean up)" ;;
  esac
}

case "${1:-}" in
  start) daemon_start ;;
  stop) daemon_stop ;;
  status) daemon_status ;;
  *) usage 'start|stop|status' ;;
esac
