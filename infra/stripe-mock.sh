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

INFRA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$INFRA_DIR")
DIFTS_VAR=${DIFTS_VAR:-$REPO_DIR/var}
DIFTS_CACHE=${DIFTS_CACHE:-$REPO_DIR/.cache}
STRIPE_MOCK_PORT=${STRIPE_MOCK_PORT:-12111}
STRIPE_MOCK_HTTPS_PORT=${STRIPE_MOCK_HTTPS_PORT:-12112}
STRIPE_MOCK_WAIT_TIMEOUT=${STRIPE_MOCK_WAIT_TIMEOUT:-30}

log() { echo "stripe-mock: $*" >&2; }
die() { echo "stripe-mock: ERROR: $*" >&2; exit 1; }

mkdir -p "$DIFTS_VAR" "$DIFTS_CACHE"
DIFTS_VAR=$(cd "$DIFTS_VAR" && pwd)
DIFTS_CACHE=$(cd "$DIFTS_CACHE" && pwd)

BIN_DIR="$DIFTS_CACHE/bin"
BIN="$BIN_DIR/stripe-mock"
BIN_STAMP="$BIN_DIR/stripe-mock.version"
STATE="$DIFTS_VAR/stripe-mock"
PIDFILE="$STATE/stripe-mock.pid"
LOGFILE="$STATE/stripe-mock.log"

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

# --- process helpers ----------------------------------------------------------

# Prints the pid from the pid file if that process is alive and is stripe-mock.
running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -qa 'stripe-mock' "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

# probe TIMEOUT [PID]: poll GET /v1/customers until it answers 200.
# Exit 0 = ready, 1 = timeout, 2 = PID died.
probe() {
  python3 - "$STRIPE_MOCK_PORT" "$1" "${2:-0}" <<'PY'
import os, sys, time, urllib.error, urllib.request

port, timeout, pid = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
req = urllib.request.Request(
    "http://127.0.0.1:%d/v1/customers" % port,
    headers={"Authorization": "Bearer sk_test_123"},
)
deadline = time.monotonic() + timeout
last = "not tried"
while True:
    try:
        with urllib.request.urlopen(req, timeout=2) as reply:
            if reply.status == 200:
                sys.exit(0)
            last = "HTTP %d" % reply.status
    except urllib.error.HTTPError as e:
        last = "HTTP %d" % e.code
    except (OSError, ValueError) as e:
        last = "%s: %s" % (type(e).__name__, e)
    if pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(2)
    if time.monotonic() >= deadline:
        print("last probe: %s" % last, file=sys.stderr)
        sys.exit(1)
    time.sleep(0.2)
PY
}

port_in_use() { # port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_ready() { # wait_ready PID
  local rc=0
  probe "$STRIPE_MOCK_WAIT_TIMEOUT" "${1:-0}" || rc=$?
  case $rc in
    0) return 0 ;;
    2) tail -n 20 "$LOGFILE" >&2 2>/dev/null || true
       die "stripe-mock exited during start-up; see $LOGFILE" ;;
    *) die "stripe-mock did not answer GET http://127.0.0.1:$STRIPE_MOCK_PORT/v1/customers within ${STRIPE_MOCK_WAIT_TIMEOUT}s; see $LOGFILE ('$0 stop' to clean up)" ;;
  esac
}

# --- subcommands --------------------------------------------------------------

cmd_start() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9
  local pid
  if pid=$(running_pid); then
    if probe 1 "$pid" 2>/dev/null; then
      log "already running (pid $pid) on 127.0.0.1:$STRIPE_MOCK_PORT"
      return 0
    fi
    log "already starting (pid $pid); waiting until it answers..."
    wait_ready "$pid"
    log "ready on http://127.0.0.1:$STRIPE_MOCK_PORT (pid $pid)"
    return 0
  fi
  rm -f "$PIDFILE"
  command -v python3 >/dev/null || die "python3 is needed for the readiness check; apt-get install -y python3"
  local p
  for p in "$STRIPE_MOCK_PORT" "$STRIPE_MOCK_HTTPS_PORT"; do
    port_in_use "$p" && die "port $p on 127.0.0.1 is taken by another process (not ours: no live pid in $PIDFILE); stop it or set STRIPE_MOCK_PORT / STRIPE_MOCK_HTTPS_PORT"
  done

  ensure_binary

  local t0=$SECONDS
  log "starting on http://127.0.0.1:$STRIPE_MOCK_PORT and https://127.0.0.1:$STRIPE_MOCK_HTTPS_PORT (log: $LOGFILE)..."
  # The child writes its own pid, then becomes stripe-mock through exec.
  # shellcheck disable=SC2016  # $$ is for the inner bash
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' stripe-mock-start "$PIDFILE" \
    "$BIN" -http-addr "127.0.0.1:$STRIPE_MOCK_PORT" -https-addr "127.0.0.1:$STRIPE_MOCK_HTTPS_PORT" \
    >>"$LOGFILE" 2>&1 </dev/null 9>&- &
  for _ in $(seq 50); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  pid=$(cat "$PIDFILE" 2>/dev/null) || die "stripe-mock did not start; see $LOGFILE"
  wait_ready "$pid"
  log "ready on http://127.0.0.1:$STRIPE_MOCK_PORT (pid $pid, $((SECONDS - t0))s)"
}

cmd_stop() {
  local pid
  # Let a 'start' in progress finish first, so that it is what gets stopped.
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 120 9 || log "a start seems stuck (lock held for 120 s); stopping anyway"
  if ! pid=$(running_pid); then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  log "stopping (pid $pid)..."
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after 20s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  log "stopped"
}

cmd_status() {
  local pid
  if pid=$(running_pid) && probe 1 "$pid" 2>/dev/null; then
    log "running (pid $pid) on http://127.0.0.1:$STRIPE_MOCK_PORT"
    return 0
  fi
  if [ -n "${pid:-}" ]; then
    log "process $pid is alive but not answering on 127.0.0.1:$STRIPE_MOCK_PORT (see $LOGFILE)"
  else
    log "not running"
  fi
  return 1
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
