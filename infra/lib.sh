# shellcheck shell=bash disable=SC2154  # SERVICE, STATE, PIDFILE, ... come from the sourcing script
# infra/lib.sh — the machinery kafka.sh, stripe-mock.sh and postgres.sh share. Sourced
# by them (after `set -euo pipefail`), never run. Each script keeps what is its own: how
# to install, configure, start and probe its server.
#
# Set SERVICE (the prefix of every message) before sourcing. Then there are:
#   log MSG / die MSG      "SERVICE: MSG" / "SERVICE: ERROR: MSG" on stderr; die exits 1
#   INFRA_DIR REPO_DIR     this directory and the checkout
#   DIFTS_VAR              runtime state (default <repo>/var), created, absolute
#   abs_dir DIR            create DIR if needed and print its absolute path
#   apt_install PKG...     install Debian packages (as root), or die saying how to
#   can_apt / apt_run PKG...   the same in parts, for a script with its own messages
#   port_in_use PORT       something accepts TCP connections on 127.0.0.1:PORT
#   lock_state [OPTION...] / lock_for_stop   $STATE/.lock on fd 9: a start, a stop and
#                          a wait take turns, also across processes
#   usage COMMANDS         "usage: $0 {COMMANDS}" on stderr, exit 2
#
# For a server the script launches itself and tracks by a pid file (kafka.sh,
# stripe-mock.sh; postgres.sh leaves that to pg_ctl), daemon_start, daemon_stop,
# daemon_status and daemon_wait are the subcommands. They use, from the script:
#   STATE         directory of the runtime state
#   PIDFILE       the pid file (written by the server's own process)
#   PROC_MATCH    grep pattern of /proc/PID/cmdline that tells our server from a reused pid
#   PORT_VARS     names of the port variables (an array); the first is the clients' port
#   ADDR          where it answers, as said in "ready on ADDR" and "running (pid N) on ADDR"
#   WAIT_TIMEOUT  seconds a start or wait waits for readiness
#   STATUS_HINT   where to look when the process is alive but does not answer
#   probe TIMEOUT [PID]   poll until ready; exit 0 ready, 1 timed out, 2 PID died
#                         (probe_loop does the polling; the script says what to check)
#   prepare               install and configure; runs after the ports are found free
#   launch                say what starts, then: spawn OUTFILE COMMAND...
#   start_failed nopid|exited|timeout   say why the start failed (and where to look); die
# and may redefine stopping_note (text added to "stopping (pid N") and
# after_stop clean|killed (called once the server is gone, or was not running: killed).

log() { echo "$SERVICE: $*" >&2; }
die() { echo "$SERVICE: ERROR: $*" >&2; exit 1; }

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

INFRA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$INFRA_DIR")
DIFTS_VAR=$(abs_dir "${DIFTS_VAR:-$REPO_DIR/var}")

# --- prerequisites ----------------------------------------------------------

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; } # we are root on dev/CI machines

# apt_run PACKAGE...: apt-get update and install; the output goes to $STATE/apt.log, and
# on failure its end is shown and the status is 1.
apt_run() {
  mkdir -p "$STATE"
  # One apt at a time, even when kafka.sh / postgres.sh run in parallel.
  if ! flock -w 600 /tmp/difts-apt.lock sh -c \
      'apt-get -o DPkg::Lock::Timeout=300 update -qq &&
       DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@"' \
      apt-install "$@" >"$STATE/apt.log" 2>&1; then
    tail -n 20 "$STATE/apt.log" >&2
    return 1
  fi
}

apt_install() { # apt_install PACKAGE...
  can_apt || die "'$*' is missing; install it (Debian: sudo apt-get install -y $*) and retry"
  log "installing $* with apt-get (first run only)..."
  apt_run "$@" || die "apt-get install $* failed (log: $STATE/apt.log); install it by hand and retry"
}

# --- processes and ports ------------------------------------------------------

port_in_use() { # port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

lock_state() { # lock_state [FLOCK-OPTION...]: take $STATE/.lock on fd 9
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock "$@" 9
}

lock_for_stop() { # let a 'start' in progress finish first, so that it is what gets stopped
  lock_state -w 120 || log "a start seems stuck (lock held for 120 s); stopping anyway"
}

usage() { echo "usage: $0 {$1}" >&2; exit 2; }

# Prints the pid from the pid file if that process is alive and is our server.
running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -qa "$PROC_MATCH" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

main_port() { echo "${!PORT_VARS[0]}"; }

# spawn OUTFILE COMMAND...: run COMMAND in the background, in a session of its own,
# output appended to OUTFILE, without the lock's fd. The child writes its own pid to
# $PIDFILE and then becomes COMMAND through exec.
spawn() {
  local out=$1
  shift
  # shellcheck disable=SC2016  # $$ is for the inner bash
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' "$SERVICE-start" "$PIDFILE" "$@" \
    >>"$out" 2>&1 </dev/null 9>&- &
}

# probe_loop TIMEOUT PID [ARG...] <<'PY' ... PY: the poll behind each script's probe.
# The Python on stdin defines check() (None when the server is ready, else why not; it
# may raise OSError or ValueError) and INTERVAL (seconds between tries); ARG... are its
# sys.argv[3:]. Exit 0 = ready, 1 = TIMEOUT seconds passed (the last reason on stderr),
# 2 = PID (unless 0) is gone.
probe_loop() {
  python3 -c "$(cat)
$PROBE_LOOP_PY" "$@"
}
IFS= read -r -d '' PROBE_LOOP_PY <<'PY' || true
import os, struct, sys, time

timeout, pid = float(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + timeout
last = "not tried"
while True:
    try:
        last = check()
        if last is None:
            sys.exit(0)
    except (OSError, ValueError, struct.error) as e:
        last = "%s: %s" % (type(e).__name__, e)
    if pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(2)
    if time.monotonic() >= deadline:
        print("last probe: %s" % last, file=sys.stderr)
        sys.exit(1)
    time.sleep(INTERVAL)
PY

wait_ready() { # wait_ready PID
  local rc=0
  probe "$WAIT_TIMEOUT" "${1:-0}" || rc=$?
  case $rc in
    0) return 0 ;;
    2) start_failed exited ;;
    *) start_failed timeout ;;
  esac
}

# Optional hooks of daemon_stop; the script may redefine them.
stopping_note() { :; }
after_stop() { :; }

# --- subcommands of a pid-file server -----------------------------------------

daemon_start() {
  lock_state
  local pid
  if pid=$(running_pid); then
    if probe 1 "$pid" 2>/dev/null; then
      log "already running (pid $pid) on 127.0.0.1:$(main_port)"
      return 0
    fi
    log "already starting (pid $pid); waiting until it answers..."
    wait_ready "$pid"
    log "ready on $ADDR (pid $pid)"
    return 0
  fi
  rm -f "$PIDFILE"
  local var names="${PORT_VARS[*]}"
  names=${names// / \/ }   # "KAFKA_PORT / KAFKA_CONTROLLER_PORT"
  for var in "${PORT_VARS[@]}"; do
    if port_in_use "${!var}"; then
      die "port ${!var} on 127.0.0.1 is taken by another process (not ours: no live pid in $PIDFILE); stop it or set $names"
    fi
  done

  prepare

  local t0=$SECONDS
  launch
  for _ in $(seq 50); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  pid=$(cat "$PIDFILE" 2>/dev/null) || start_failed nopid
  wait_ready "$pid"
  log "ready on $ADDR (pid $pid, $((SECONDS - t0))s)"
}

daemon_stop() {
  local pid
  lock_for_stop
  if ! pid=$(running_pid); then
    rm -f "$PIDFILE"
    after_stop killed
    log "not running"
    return 0
  fi
  log "stopping (pid $pid$(stopping_note))..."
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after 20s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    after_stop killed
  else
    after_stop clean
  fi
  rm -f "$PIDFILE"
  log "stopped"
}

daemon_status() {
  local pid
  if pid=$(running_pid) && probe 1 "$pid" 2>/dev/null; then
    log "running (pid $pid) on $ADDR"
    return 0
  fi
  if [ -n "${pid:-}" ]; then
    log "process $pid is alive but not answering on 127.0.0.1:$(main_port) ($STATUS_HINT)"
  else
    log "not running"
  fi
  return 1
}

daemon_wait() { # wait for a server started elsewhere
  local pid
  if ! pid=$(running_pid); then
    # A concurrent 'start' may still be installing: it holds the lock.
    if ! lock_state -n; then
      log "a start is in progress; waiting for it..."
      flock -w "$WAIT_TIMEOUT" 9 || die "the start in progress did not finish within ${WAIT_TIMEOUT}s"
    fi
    exec 9>&-
    pid=$(running_pid) || die "not running; start it with '$0 start'"
  fi
  wait_ready "$pid"
  log "ready on $ADDR (pid $pid)"
}
