#!/usr/bin/env bash
# infra/postgres.sh — a private, throw-away PostgreSQL cluster on 127.0.0.1 for
# local development and the test suite (Debian's packages; no system service).
#
#   infra/postgres.sh start          install if needed, initdb once, start, wait until ready
#   infra/postgres.sh stop           pg_ctl stop -m fast; 0 if it was not running
#   infra/postgres.sh status         exit 0 if running and accepting connections, 1 otherwise
#   infra/postgres.sh createdb NAME  create database NAME owned by difts, unless it exists
#
# Superuser `postgres` and role `difts` (password `difts`, LOGIN CREATEDB); every
# connection from 127.0.0.1 or the unix socket is trusted (test-only cluster).
# Durability is off (fsync, synchronous_commit, full_page_writes): a crash may
# lose the data, which is fine for tests.
#
# The cluster lives in $DIFTS_VAR/pg (data/, postgres.log, the unix socket).
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres`
# system user, which must be able to reach $DIFTS_VAR/pg. When it cannot (e.g. the
# checkout is under a 0700 /root), the cluster goes to /tmp/difts-pg-<hash of
# $DIFTS_VAR> instead — keyed on $DIFTS_VAR rather than $PGPORT because the test
# suite picks a random PGPORT per run — and $DIFTS_VAR/pg/location says where it
# is. Deleting $DIFTS_VAR (e.g. `make clean`) also discards such a /tmp cluster on
# the next start.
set -euo pipefail

SERVICE=postgres
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PGPORT=${PGPORT:-55432}
PG_WAIT_TIMEOUT=${PG_WAIT_TIMEOUT:-30}

STATE="$DIFTS_VAR/pg"
mkdir -p "$STATE"

AS_ROOT=0
[ "$(id -u)" = 0 ] && AS_ROOT=1

# run_pg CMD...: run a server-side command as the `postgres` user when we are root.
run_pg() {
  if [ "$AS_ROOT" = 1 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# --- installation -------------------------------------------------------------

find_pg_bin() { # prints the newest /usr/lib/postgresql/*/bin that has initdb
  local b d=""
  for b in /usr/lib/postgresql/*/bin; do
    [ -x "$b/initdb" ] && d+="$b"$'\n'
  done
  d=$(printf '%s' "$d" | sort -V | tail -n 1)
  [ -n "$d" ] && echo "$d"
}

ensure_postgres() {
  PGBIN=$(find_pg_bin || true)
  if [ -z "$PGBIN" ]; then
    can_apt ||
      die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); sudo apt-get install -y postgresql, then retry"
    log "installing PostgreSQL with apt-get (first run, ~1 min)..."
    apt_run postgresql ||
      die "apt-get install postgresql failed (log: $STATE/apt.log); install it by hand (apt-get install -y postgresql) and retry"
    PGBIN=$(find_pg_bin || true)
    [ -n "$PGBIN" ] || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
  fi
  if [ "$AS_ROOT" = 1 ]; then
    id postgres >/dev/null 2>&1 ||
      die "there is no 'postgres' system user (Debian's postgresql package creates it); apt-get install --reinstall postgresql-common"
  fi
}

# --- where the cluster lives ----------------------------------------------------

# Sets PGROOT (the cluster's directory: data/, postgres.log, socket) and PGDATA.
locate_cluster() {
  PGROOT="$STATE"
  if [ "$AS_ROOT" = 1 ]; then
    chown postgres:postgres "$STATE"
    if ! runuser -u postgres -- test -w "$STATE" -a -x "$STATE" 2>/dev/null; then
      PGROOT="/tmp/difts-pg-$(echo -n "$DIFTS_VAR" | sha256sum | cut -c1-12)"
      echo "$PGROOT" >"$STATE/location"
      mkdir -p "$PGROOT"
      chown postgres:postgres "$PGROOT"
      chmod 700 "$PGROOT"
    fi
  fi
  PGDATA="$PGROOT/data"
  PGLOG="$PGROOT/postgres.log"
}

server_running() { # the postmaster of $PGDATA is alive
  [ -f "$PGDATA/postmaster.pid" ] && run_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

ready() { "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -t 2 >/dev/null 2>&1; }

psql_super() { # psql_super ARGS...: psql as postgres on the maintenance database
  "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

# --- initialisation -----------------------------------------------------------

ensure_cluster() {
  if [ "$PGROOT" != "$STATE" ] && [ -d "$PGDATA" ] && [ ! -f "$STATE/initialized" ]; then
    # $DIFTS_VAR was deleted since this /tmp cluster was made: start from scratch too.
    log "discarding the old cluster in $PGROOT ($DIFTS_VAR was reset)"
    if server_running; then
      run_pg "$PGBIN/pg_ctl" -D "$PGDATA" stop -m immediate -w >/dev/null 2>&1 || true
    fi
    rm -rf "$PGDATA" "$PGLOG"
  fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    log "creating the cluster in $PGDATA (initdb)..."
    rm -rf "$PGDATA"
    if ! run_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-locale \
        --no-sync >"$PGROOT/initdb.log" 2>&1; then
      cat "$PGROOT/initdb.log" >&2
      die "initdb failed (log: $PGROOT/initdb.log); remove $PGDATA and retry"
    fi
    # Test-only cluster: trust every local and 127.0.0.1 connection.
    cat >"$PGDATA/pg_hba.conf" <<'EOF'
# Written by infra/postgres.sh: a private test cluster listening on 127.0.0.1 only.
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
EOF
    echo "include_if_exists = 'difts.conf'   # infra/postgres.sh, rewritten on each start" \
      >>"$PGDATA/postgresql.conf"
    if [ "$AS_ROOT" = 1 ]; then chown postgres:postgres "$PGDATA/pg_hba.conf"; fi
    touch "$STATE/initialized"
  fi
  # Rewritten on every start so PGPORT may change between runs.
  local socket_dir="$PGROOT"
  # A unix socket path may not exceed 107 bytes; we only use TCP anyway.
  [ $(( ${#PGROOT} + 16 )) -le 107 ] || socket_dir=""
  cat >"$PGDATA/difts.conf" <<EOF
# Written by infra/postgres.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$socket_dir'
max_connections = 200
# Test-only speed: a crash may lose or corrupt data.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  if [ "$AS_ROOT" = 1 ]; then chown postgres:postgres "$PGDATA/difts.conf"; fi
  if [ "$PGROOT" != "$STATE" ]; then ln -sfn "$PGLOG" "$STATE/postgres.log"; fi
}

ensure_roles() {
  psql_super <<'SQL' || die "could not create the role difts (see $PGLOG)"
SELECT 'CREATE ROLE difts LOGIN CREATEDB PASSWORD ''difts'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'difts') \gexec
-- DROP DATABASE ... WITH (FORCE) must end an autovacuum worker still in a test's database.
GRANT pg_signal_backend TO difts;
SQL
}

# --- subcommands --------------------------------------------------------------

cmd_start() {
  lock_state
  ensure_postgres
  locate_cluster
  if server_running; then
    local port
    port=$(sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null || true)
    [ "${port:-$PGPORT}" = "$PGPORT" ] ||
      die "this cluster is already running on port $port, not PGPORT=$PGPORT; use PGPORT=$port, or '$0 stop' and start again"
    for _ in $(seq 10); do ready && break; sleep 0.5; done
    ready || die "a server from $PGDATA is running but not answering on 127.0.0.1:$PGPORT (started with another PGPORT?); run '$0 stop' and start again"
    log "already running on 127.0.0.1:$PGPORT"
    return 0
  fi
  if port_in_use "$PGPORT"; then
    die "port $PGPORT on 127.0.0.1 is taken by another process (not this cluster); stop it or set PGPORT"
  fi
  ensure_cluster
  local t0=$SECONDS
  log "starting on 127.0.0.1:$PGPORT (log: $PGLOG)..."
  # -W: do not wait here; readiness is polled with pg_isready below.
  if ! run_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -W start >/dev/null 2>&1 9>&-; then
    tail -n 20 "$PGLOG" >&2 2>/dev/null || true
    die "pg_ctl start failed; see $PGLOG"
  fi
  local deadline=$((SECONDS + PG_WAIT_TIMEOUT))
  until ready; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$PGLOG" >&2 2>/dev/null || true
      die "PostgreSQL did not accept connections on 127.0.0.1:$PGPORT within ${PG_WAIT_TIMEOUT}s; see $PGLOG ('$0 stop' to clean up)"
    fi
    # pg_ctl writes postmaster.pid only once the postmaster is up: give it a moment.
    if [ $((SECONDS - t0)) -ge 3 ] && ! server_running; then
      tail -n 20 "$PGLOG" >&2 2>/dev/null || true
      die "PostgreSQL exited during start-up; see $PGLOG"
    fi
    sleep 0.2
  done
  ensure_roles
  log "ready on 127.0.0.1:$PGPORT ($((SECONDS - t0))s; user difts/difts, superuser postgres)"
}

cmd_stop() {
  lock_for_stop
  PGBIN=$(find_pg_bin || true)
  [ -n "$PGBIN" ] || { log "not running (PostgreSQL not installed)"; return 0; }
  locate_cluster
  if ! server_running; then
    log "not running"
    return 0
  fi
  log "stopping..."
  run_pg "$PGBIN/pg_ctl" -D "$PGDATA" stop -m fast -w -t 30 >/dev/null ||
    die "pg_ctl stop failed; see $PGLOG"
  log "stopped"
}

cmd_status() {
  PGBIN=$(find_pg_bin || true)
  [ -n "$PGBIN" ] || { log "not running (PostgreSQL not installed)"; return 1; }
  locate_cluster
  if server_running && ready; then
    log "running on 127.0.0.1:$PGPORT ($PGDATA)"
    return 0
  fi
  if server_running; then
    log "a server from $PGDATA is running but not answering on 127.0.0.1:$PGPORT"
  else
    log "not running"
  fi
  return 1
}

cmd_createdb() {
  local name=${1:-}
  [ -n "$name" ] || die "usage: $0 createdb NAME"
  PGBIN=$(find_pg_bin || true)
  if [ -z "$PGBIN" ] || ! ready; then die "not running on 127.0.0.1:$PGPORT; run '$0 start' first"; fi
  psql_super -v name="$name" <<'SQL' || die "could not create database $name"
SELECT format('CREATE DATABASE %I OWNER difts', :'name')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SQL
  log "database $name ready (owner difts)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  createdb) cmd_createdb "${2:-}" ;;
  *) usage 'start|stop|status|createdb NAME' ;;
esac
