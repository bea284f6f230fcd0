#!/usr/bin/env bash
# infra/kafka.sh — a private single-node Apache Kafka (KRaft, combined
# broker+controller) on 127.0.0.1 for local development and the test suite.
#
#   infra/kafka.sh start    resolve jars if needed, format storage once, start, wait until ready
#   infra/kafka.sh stop     stop it (SIGTERM, SIGKILL after 20 s); 0 if it was not running
#   infra/kafka.sh status   exit 0 if running and answering, 1 otherwise
#   infra/kafka.sh wait     wait (up to KAFKA_WAIT_TIMEOUT s) until it answers
#
# Jars come from Maven Central via infra/kafka/pom.xml into $DIFTS_CACHE/kafka/libs
# (re-resolved only when pom.xml changes). Runtime state (config, data, logs, pid)
# lives in $DIFTS_VAR/kafka. Topics are NOT created here: the Python code does it.
set -euo pipefail

SERVICE=kafka
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIFTS_CACHE=$(abs_dir "${DIFTS_CACHE:-$REPO_DIR/.cache}")
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_WAIT_TIMEOUT=${KAFKA_WAIT_TIMEOUT:-90}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
# Serial GC + C1 only: a small test broker on 2 cores starts faster and uses fewer threads.
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}
# Class-data sharing archive of the broker's classes (~50 MB in $DIFTS_CACHE/kafka/cds):
# written when a broker started without one is stopped, used by later starts
# (start-up ~4.5 s -> ~2.7 s). Off by default under CI=true, where every machine is
# new and the archive would only cost time; KAFKA_CDS=0/1 forces it.
if [ "${CI:-}" = true ]; then KAFKA_CDS=${KAFKA_CDS:-0}; else KAFKA_CDS=${KAFKA_CDS:-1}; fi

POM="$INFRA_DIR/kafka/pom.xml"
LOG4J_CONF="$INFRA_DIR/kafka/log4j2.properties"
LIBS="$DIFTS_CACHE/kafka/libs"
LIBS_STAMP="$DIFTS_CACHE/kafka/libs.stamp"
STATE="$DIFTS_VAR/kafka"
DATA="$STATE/data"
LOGS="$STATE/logs"
PROPS="$STATE/server.properties"
PIDFILE="$STATE/kafka.pid"
CDS_DIR="$DIFTS_CACHE/kafka/cds"
CDS_PENDING="$STATE/cds.pending"
CLUSTER_ID_FILE="$STATE/cluster.id"
OUT="$LOGS/kafka.out"

# What infra/lib.sh's daemon_* need to know.
PROC_MATCH='kafka\.Kafka'
PORT_VARS=(KAFKA_PORT KAFKA_CONTROLLER_PORT)
ADDR="127.0.0.1:$KAFKA_PORT"
WAIT_TIMEOUT=$KAFKA_WAIT_TIMEOUT
STATUS_HINT="starting, or stuck: see $LOGS/server.log"

# --- prerequisites ----------------------------------------------------------

JAVA_VERSION_TEXT=""
ensure_tools() {
  command -v python3 >/dev/null || apt_install python3
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  local v
  JAVA_VERSION_TEXT=$(java -version 2>&1)
  v=$(sed -n 's/.* version "\([0-9]*\).*/\1/p' <<<"$JAVA_VERSION_TEXT" | head -1)
  [ "${v:-0}" -ge 17 ] 2>/dev/null ||
    die "Kafka 4.x needs Java 17+, found '${v:-unknown}' ($(command -v java)); apt-get install -y openjdk-17-jre-headless or put a newer java first on PATH"
}

# Copy the runtime jars from Maven Central into $LIBS, unless they are there
# already for this exact pom.xml.
resolve_jars() {
  local want
  want=$(sha256sum "$POM" | cut -d' ' -f1)
  if [ -d "$LIBS" ] && [ "$(cat "$LIBS_STAMP" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  command -v mvn >/dev/null || apt_install maven
  log "resolving jars from Maven Central (first run, ~1 min)..."
  local tmp="$LIBS.tmp.$$" mvnlog="$DIFTS_CACHE/kafka/mvn.log"
  mkdir -p "$DIFTS_CACHE/kafka"
  rm -rf "$tmp"
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvnlog" 2>&1; then
    rm -rf "$tmp"
    tail -n 20 "$mvnlog" >&2
    die "maven could not resolve $POM (full log: $mvnlog); check that Maven Central is reachable (mvn -B dependency:get works) and retry"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar after resolving (see $mvnlog)"
  rm -rf "$LIBS" "$CDS_DIR"   # a class-data archive is only valid for the jars it saw
  mv "$tmp" "$LIBS"
  echo "$want" >"$LIBS_STAMP"
  log "jars ready in $LIBS"
}

# --- readiness ------------------------------------------------------------------

# probe TIMEOUT [PID]: poll until the broker answers an ApiVersions and a
# Metadata request listing at least one broker. Exit 0 = ready, 1 = timeout,
# 2 = PID died. Only the Python standard library is used.
probe() {
  probe_loop "$1" "${2:-0}" "$KAFKA_PORT" <<'PY'
import socket, struct, sys

port = int(sys.argv[3])
INTERVAL = 0.3

def recvn(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return buf

def rpc(s, api_key, version, corr, body):
    client = b"difts-infra"
    msg = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
    s.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", recvn(s, 4))
    data = recvn(s, size)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise ValueError("bad correlation id")
    return data[4:]

def check():
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(3)
        r = rpc(s, 18, 0, 1, b"")                       # ApiVersions v0
        err, n = struct.unpack(">hi", r[:6])
        if err:
            return "ApiVersions error %d" % err
        ranges = {}
        for i in range(n):
            k, lo, hi = struct.unpack(">hhh", r[6 + 6 * i:12 + 6 * i])
            ranges[k] = (lo, hi)
        lo, hi = ranges.get(3, (0, -1))                 # Metadata
        v = max(lo, 4)
        if v > min(hi, 7):
            return None                                 # cannot encode; ApiVersions is enough
        r = rpc(s, 3, v, 2, struct.pack(">ib", 0, 0))   # no topics, no auto-create
        _throttle, nbrokers = struct.unpack(">ii", r[:8])
        return None if nbrokers >= 1 else "no broker registered yet"
PY
}

# --- configuration ------------------------------------------------------------

write_properties() {
  mkdir -p "$DATA" "$LOGS"
  cat >"$PROPS.tmp" <<EOF
# Generated by infra/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=6
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# A small test broker on a 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
  mv "$PROPS.tmp" "$PROPS"
}

ensure_formatted() {
  # Once formatted, the data dir is reused; changing the ports later is fine
  # (tested: the single voter's endpoint is updated on start).
  [ -f "$DATA/meta.properties" ] && return 0
  if [ ! -s "$CLUSTER_ID_FILE" ]; then
    # Kafka's Uuid.randomUuid(): 16 random bytes, base64url without padding,
    # never starting with '-'.
    python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s); break' >"$CLUSTER_ID_FILE"
  fi
  log "formatting $DATA (cluster id $(cat "$CLUSTER_ID_FILE"))..."
  if ! java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOGS" -cp "$LIBS/*" \
      kafka.tools.StorageTool format --standalone -t "$(cat "$CLUSTER_ID_FILE")" -c "$PROPS" \
      >"$LOGS/format.log" 2>&1; then
    cat "$LOGS/format.log" >&2
    die "formatting $DATA failed (log: $LOGS/format.log); if the directory holds old data, '$0 stop && rm -rf $DATA' and retry"
  fi
}

# Prints the JVM flags for the class-data sharing archive: use it if this
# JVM + jar set has one, else ask the JVM to write one when it exits (after_stop
# moves it into place after a clean exit).
cds_opts() {
  [ "$KAFKA_CDS" = 1 ] || return 0
  local key archive
  key=$( { echo "$JAVA_VERSION_TEXT"; readlink -f "$(command -v java)"; cat "$LIBS_STAMP"; } | sha256sum | cut -c1-16)
  archive="$CDS_DIR/kafka-$key.jsa"
  if [ -s "$archive" ]; then
    echo "-XX:SharedArchiveFile=$archive -Xlog:cds=off -Xlog:cds+dynamic=off"
  else
    mkdir -p "$CDS_DIR"
    rm -f "$CDS_DIR"/kafka-*.jsa   # archives of older jars / JVMs
    find "$CDS_DIR" -name '*.tmp' -mmin +120 -delete 2>/dev/null || true
    echo "$archive.$$.tmp $archive" >"$CDS_PENDING"
    echo "-XX:ArchiveClassesAtExit=$archive.$$.tmp -Xlog:cds=off -Xlog:cds+dynamic=off"
  fi
}

# After a clean stop, keep the archive the JVM wrote on exit (called by daemon_stop).
after_stop() { # after_stop clean|killed
  [ -f "$CDS_PENDING" ] || return 0
  local tmp final
  read -r tmp final <"$CDS_PENDING" || true
  if [ "$1" = clean ] && [ -s "${tmp:-}" ]; then
    mv -f "$tmp" "$final" 2>/dev/null || rm -f "$tmp"
  else
    rm -f "${tmp:-/nonexistent}"
  fi
  rm -f "$CDS_PENDING"
}

stopping_note() { # the first stop writes the archive
  if [ -f "$CDS_PENDING" ]; then
    echo "; this first stop also saves a class-data archive for faster starts, ~5 s"
  fi
}

# --- start ----------------------------------------------------------------------

prepare() {
  ensure_tools
  resolve_jars
  write_properties
  ensure_formatted
}

launch() {
  local cds
  rm -f "$CDS_PENDING"
  cds=$(cds_opts)
  log "starting broker on 127.0.0.1:$KAFKA_PORT (logs: $LOGS)..."
  : >"$OUT"   # this run's JVM output only; server.log keeps the history
  # shellcheck disable=SC2086  # *_OPTS are word lists
  spawn "$OUT" java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS $cds \
    -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOGS" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS"
}

start_failed() { # start_failed nopid|exited|timeout
  case $1 in
    nopid) die "the broker process did not start; see $OUT" ;;
    exited) tail -n 30 "$OUT" >&2 2>/dev/null || true
            die "the broker exited during start-up; see $LOGS/server.log and $OUT" ;;
    timeout) die "the broker did not answer on 127.0.0.1:$KAFKA_PORT within ${KAFKA_WAIT_TIMEOUT}s; see $LOGS/server.log and $OUT ('$0 stop' to clean up)" ;;
  esac
}

case "${1:-}" in
  start) daemon_start ;;
  stop) daemon_stop ;;
  status) daemon_status ;;
  wait) daemon_wait ;;
  *) usage 'start|stop|status|wait' ;;
esac
