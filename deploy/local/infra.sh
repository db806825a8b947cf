#!/usr/bin/env bash
# Local infrastructure for triageflow without Docker:
#   * Apache Kafka 4.x (KRaft, one combined broker+controller node) from Maven Central jars
#   * PostgreSQL from Debian's packages, data directory in the state dir
#   * optionally a 3-node KRaft cluster for failure tests
#
# Usage: deploy/local/infra.sh <command> [component]
#   up      [all|kafka|postgres|kafka3]   start (idempotent) and wait until ready   (default: all = kafka+postgres)
#   down    [all|kafka|postgres|kafka3]   stop cleanly (SIGTERM, then SIGKILL)       (default: all, kafka3 included)
#   restart [all|kafka|postgres|kafka3]   down + up
#   status                                one line per component; exit 0 only if kafka and postgres are up
#   kill    kafka|postgres                SIGKILL the single Kafka broker / the postmaster (crash test)
#   kill-node N                           SIGKILL node N (1-3) of the 3-node cluster (`up kafka3` restarts it)
#   reset   [all|kafka|postgres|kafka3]   down, then delete its data (keeps the jar cache)
#   logs    kafka|postgres|kafka3-N       print the last 50 lines of that log
#   env                                   print `export ...` lines (same as deploy/local/env.sh)
#   env-secure                            print the secure components' `export ...` lines (secrets!)
# Secure components (separate from the above; `up`/`down` without a component leave them alone,
# except that `down`/`reset` all also stop the secure broker):
#   up|down|restart kafka-secure          a second single-node broker, SASL_SSL (SCRAM-SHA-512) on 9192
#   up|down postgres-tls                  TLS on the local PostgreSQL (reload, no restart); `down` turns it off
#   up|down secure                        both of the above
#   reset kafka-secure                    down, then delete its data, passwords and keystore
# See deploy/local/README.md for ports, environment variables and defaults.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

STATE_DIR=${TRIAGEFLOW_STATE_DIR:-$REPO_ROOT/.local}
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)

HOST=127.0.0.1
KAFKA_VERSION=${TRIAGEFLOW_KAFKA_VERSION:-4.1.2}
KAFKA_PORT=${TRIAGEFLOW_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${TRIAGEFLOW_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP=${TRIAGEFLOW_KAFKA_HEAP:--Xms256m -Xmx768m}
KAFKA3_HEAP=${TRIAGEFLOW_KAFKA3_HEAP:--Xms128m -Xmx512m}
KAFKA_LIBS=${TRIAGEFLOW_KAFKA_LIBS_DIR:-$STATE_DIR/kafka/libs-$KAFKA_VERSION}
KAFKA_DIR=$STATE_DIR/kafka
KAFKA3_DIR=$STATE_DIR/kafka3
KAFKA_START_TIMEOUT=${TRIAGEFLOW_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${TRIAGEFLOW_STOP_TIMEOUT:-30}

PG_PORT=${TRIAGEFLOW_PG_PORT:-5432}
PG_USER=triageflow
PG_PASSWORD=triageflow
PG_DB=triageflow
PG_URL="postgresql://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB"
PG_START_TIMEOUT=${TRIAGEFLOW_PG_START_TIMEOUT:-60}
PG_FSYNC=${TRIAGEFLOW_PG_FSYNC:-off}

if [[ -n ${TRIAGEFLOW_PYTHON:-} ]]; then
  PYTHON=$TRIAGEFLOW_PYTHON
elif [[ -x $REPO_ROOT/.venv/bin/python ]]; then
  PYTHON=$REPO_ROOT/.venv/bin/python
else
  PYTHON=$(command -v python3 || true)
fi

# ---------------------------------------------------------------- helpers ---

log() { printf '[infra] %s\n' "$*"; }
warn() { printf '[infra] WARNING: %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }
is_root() { [[ $(id -u) -eq 0 ]]; }

# One mutating invocation at a time per state dir. fd 9 is closed for every daemon we spawn.
take_lock() {
  exec 9>"$STATE_DIR/.infra.lock"
  flock -w 600 9 || die "another infra.sh holds $STATE_DIR/.infra.lock"
}

# tcp_open HOST PORT: something accepts connections there.
# shellcheck disable=SC2016  # $1/$2 expand in the inner bash
tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

port_owner() {
  local o
  o=$(ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1)
  echo "${o:-unknown process}"
}

# Alive and not a zombie.
pid_alive() {
  [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
  [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# has_arg PID ARG: ARG is one of the process's arguments.
has_arg() { grep -qxF -- "$2" <<<"$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null)"; }

# wait_gone PID SECONDS: wait until PID no longer exists at all, zombie included. A dead
# postmaster's pid that is still a zombie makes a new postmaster refuse to start ("lock file
# postmaster.pid already exists"); PID 1 in some sandboxes reaps orphans only after a while.
wait_gone() {
  local deadline=$(( $(now) + $2 ))
  while kill -0 "$1" 2>/dev/null && (( $(now) < deadline )); do sleep 0.2; done
}

# sigkill_and_wait NAME PID PORT...: SIGKILL PID, then wait (60 s at most) until it has really
# exited and its PORTs are closed. A SIGKILLed JVM's main thread shows as a zombie while its
# other threads are still exiting and holding the data dir's lock and the listeners (seen
# on a loaded CI machine: the restarted broker then failed to start), so "not alive" is not
# enough: wait for the last thread and for the ports.
sigkill_and_wait() {
  local name=$1 pid=$2; shift 2
  local deadline=$(( $(now) + 60 )) port
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && (( $(now) < deadline )); do
    if [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] \
        && (( $(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) <= 1 )); then
      break  # a zombie whose threads are all gone: only the reaping is left
    fi
    sleep 0.1
  done
  for port in "$@"; do
    while tcp_open "$HOST" "$port" && (( $(now) < deadline )); do sleep 0.2; done
  done
  if pid_alive "$pid"; then warn "$name: pid $pid still running 60 s after SIGKILL"; fi
}

# Java processes whose command line contains ARG as a whole argument (our config path).
java_pids_with_arg() {
  local p
  for p in $(pgrep -x java 2>/dev/null || true); do
    if has_arg "$p" "$1"; then echo "$p"; fi
  done
}

# stop_pids NAME PID...: SIGTERM all, wait STOP_TIMEOUT, then SIGKILL; returns when all are gone.
stop_pids() {
  local name=$1; shift
  local pids=("$@") p deadline alive
  [[ ${#pids[@]} -gt 0 ]] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  deadline=$(( $(now) + STOP_TIMEOUT ))
  while :; do
    alive=()
    for p in "${pids[@]}"; do pid_alive "$p" && alive+=("$p"); done
    [[ ${#alive[@]} -eq 0 ]] && return 0
    if (( $(now) >= deadline )); then
      warn "$name: still running after ${STOP_TIMEOUT}s, sending SIGKILL to ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      for p in "${alive[@]}"; do
        while pid_alive "$p"; do sleep 0.1; done
      done
      return 0
    fi
    sleep 0.3
  done
}

need_apt() {
  is_root || die "$1 is missing and this is not root: install it ($2) and retry"
  command -v apt-get >/dev/null || die "$1 is missing and there is no apt-get: install it ($2)"
  log "installing $2 from Debian packages (apt-get)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $2 >/dev/null
}

# ------------------------------------------------------------------ kafka ---

ensure_java() {
  if ! command -v java >/dev/null; then need_apt java openjdk-17-jre-headless; fi
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [[ ${major%%.*} -ge 17 ]] 2>/dev/null || die "Kafka 4.x needs Java >= 17, found '${major:-?}'"
}

# Fetch kafka_2.13 and its runtime dependencies once into $KAFKA_LIBS (cached between runs).
ensure_kafka_libs() {
  if [[ -f $KAFKA_LIBS/.complete ]]; then return 0; fi
  ensure_java
  command -v mvn >/dev/null || need_apt mvn maven
  local t0 tmp
  t0=$(now)
  log "downloading Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS ..."
  tmp="$KAFKA_LIBS.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  local attempt ok=0
  for attempt in 1 2 3; do   # retried: a flaky download should not fail CI
    if mvn -q -B -f "$SCRIPT_DIR/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" -Dkafka.version="$KAFKA_VERSION" \
        >"$tmp.mvn.log" 2>&1; then ok=1; break; fi
    warn "maven download attempt $attempt failed"; sleep 3
  done
  if [[ $ok -ne 1 ]]; then
    tail -30 "$tmp.mvn.log" >&2
    rm -rf "$tmp"
    die "maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log above)"
  fi
  rm -f "$tmp.mvn.log"
  local jar="$tmp/kafka_2.13-$KAFKA_VERSION.jar"
  [[ -f $jar ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after download"; }
  if command -v unzip >/dev/null; then
    local listing; listing=$(unzip -l "$jar")   # (no `| grep -q`: SIGPIPE + pipefail)
    grep -q 'kafka/tools/StorageTool.class' <<<"$listing" || { rm -rf "$tmp"; die "kafka.tools.StorageTool not in $jar"; }
    grep -q ' kafka/Kafka.class' <<<"$listing" || { rm -rf "$tmp"; die "kafka.Kafka not in $jar"; }
  fi
  touch "$tmp/.complete"
  rm -rf "$KAFKA_LIBS"; mv "$tmp" "$KAFKA_LIBS"
  local jars=("$KAFKA_LIBS"/*.jar)
  log "kafka jars ready (${#jars[@]} jars, $(du -sh "$KAFKA_LIBS" | cut -f1), $(( $(now) - t0 ))s)"
}

new_cluster_id() {  # 16 random bytes, base64url without padding (what StorageTool random-uuid prints)
  head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# render TEMPLATE OUT KEY=VALUE...
render() {
  local tpl=$1 out=$2; shift 2
  local expr=() kv
  local v
  for kv in "$@"; do
    v=${kv#*=}; v=${v//\\/\\\\}; v=${v//|/\\|}; v=${v//&/\\&}
    expr+=(-e "s|@${kv%%=*}@|$v|g")
  done
  sed "${expr[@]}" "$tpl" >"$out.tmp"
  mv "$out.tmp" "$out"
}

kafka_java_cmd() {  # kafka_java_cmd HEAP CONF LOGNAME -> prints nothing; sets KAFKA_CMD array
  local heap=$1 conf=$2
  # shellcheck disable=SC2206
  KAFKA_CMD=(java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dorg.slf4j.simpleLogger.showDateTime=true
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS"
    -Dorg.slf4j.simpleLogger.defaultLogLevel=info
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$conf")
}

# Pid of the broker using CONF (pid file first, then a scan for a leftover process).
kafka_node_pid() {
  local conf=$1 pidfile=$2 p
  if [[ -f $pidfile ]]; then
    p=$(cat "$pidfile" 2>/dev/null || true)
    if pid_alive "$p" && has_arg "$p" "$conf"; then
      echo "$p"; return 0
    fi
  fi
  java_pids_with_arg "$conf" | head -1
}

# format_kafka_node NAME DIR FORMAT_FLAGS... : format the storage of DIR/data once.
format_kafka_node() {
  local name=$1 dir=$2; shift 2
  local cid
  cid=$(cat "$CLUSTER_ID_FILE")
  # Already formatted: what --ignore-formatted would conclude, minus a JVM start.
  [[ -f $dir/data/meta.properties ]] && return 0
  if ! java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format "$@" --ignore-formatted \
        -t "$cid" -c "$dir/server.properties" >"$dir/format.log" 2>&1; then
    cat "$dir/format.log" >&2
    die "$name: kafka-storage format failed"
  fi
}

# start_kafka_node NAME DIR HEAP : spawn the broker in the background (no wait).
start_kafka_node() {
  local name=$1 dir=$2 heap=$3
  local conf=$dir/server.properties pidfile=$dir/broker.pid logf=$dir/broker.log
  [[ -f $logf ]] && mv -f "$logf" "$logf.1"
  rm -f "$pidfile"
  kafka_java_cmd "$heap" "$conf"
  # New session (survives the calling shell and its terminal); the wrapper writes its own pid,
  # then execs java, so the pid file holds the JVM's pid.
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" "${KAFKA_CMD[@]}" \
    </dev/null >"$logf" 2>&1 9>&- &
  for _ in $(seq 50); do [[ -s $pidfile ]] && break; sleep 0.1; done
  [[ -s $pidfile ]] || die "$name: no pid file after start"
  log "$name: started pid $(cat "$pidfile"), log $logf"
}

# kafka_check BOOTSTRAP NBROKERS LOGFILE -> 0 when the broker answers; prints a one-line summary.
kafka_check() {
  local bs=$1 want=$2 logf=$3 host=${1%%,*}
  local port=${host##*:}; host=${host%:*}
  tcp_open "$host" "$port" || { echo "port $port closed"; return 1; }
  if [[ -n $PYTHON ]] && "$PYTHON" -c 'import aiokafka' 2>/dev/null; then
    timeout 20 "$PYTHON" - "$bs" "$want" 2>/dev/null <<'PY'
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient

async def main() -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000,
                                client_id="triageflow-infra")
    await admin.start()
    try:
        c = await admin.describe_cluster()
    finally:
        await admin.close()
    n = len(c.get("brokers") or [])
    if n < int(sys.argv[2]) or c.get("controller_id", -1) < 0:
        print(f"metadata: {n}/{sys.argv[2]} brokers, controller {c.get('controller_id')}")
        return 1
    print(f"metadata ok (aiokafka): cluster {c.get('cluster_id')}, {n} broker(s), controller {c.get('controller_id')}")
    return 0

sys.exit(asyncio.run(asyncio.wait_for(main(), 15)))
PY
    return
  fi
  grep -q 'Kafka Server started' "$logf" 2>/dev/null || { echo "waiting for 'Kafka Server started'"; return 1; }
  local py=${PYTHON:-}
  [[ -n $py ]] && command -v "$py" >/dev/null || py=$(command -v python3 || true)
  if [[ -n $py ]]; then
    # Raw ApiVersions v0 request: proves the broker answers Kafka requests.
    timeout 10 "$py" - "$host" "$port" <<'PY'
import socket, struct, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
cid = b"triageflow-infra"
body = struct.pack(">hhih", 18, 0, 7, len(cid)) + cid
s.sendall(struct.pack(">i", len(body)) + body)
def read(n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk: raise SystemExit("connection closed")
        b += chunk
    return b
size, = struct.unpack(">i", read(4))
resp = read(size)
corr, err = struct.unpack(">ih", resp[:6])
if corr != 7 or err != 0: raise SystemExit(f"ApiVersions error {err}")
print("ApiVersions ok (log says 'Kafka Server started'; aiokafka not available)")
PY
    return
  fi
  echo "port open and log says 'Kafka Server started' (no python for a protocol check)"
}

kafka_version_of() {  # from the running broker's log, else the configured one
  local v
  v=$(grep -ho 'Kafka version: [^ ]*' "$1" 2>/dev/null | tail -1 | sed 's/Kafka version: //' || true)
  echo "${v:-$KAFKA_VERSION}"
}

# wait_kafka NAME BOOTSTRAP NBROKERS LOGFILE PIDFILE...
wait_kafka() {
  local name=$1 bs=$2 want=$3 logf=$4; shift 4
  local deadline=$(( $(now) + KAFKA_START_TIMEOUT )) t0 out pf p
  t0=$(now)
  while :; do
    for pf in "$@"; do
      p=$(cat "$pf" 2>/dev/null || true)
      if ! pid_alive "$p"; then
        tail -40 "$(dirname "$pf")/broker.log" >&2 || true
        die "$name: broker process (pid ${p:-?}) exited during startup; log: $(dirname "$pf")/broker.log"
      fi
    done
    if out=$("${KAFKA_CHECK:-kafka_check}" "$bs" "$want" "$logf" 2>&1); then
      log "$name ready: Apache Kafka $(kafka_version_of "$logf") (KRaft) at $bs — $out"
      return 0
    fi
    if (( $(now) >= deadline )); then
      tail -40 "$logf" >&2 || true
      die "$name: not ready after ${KAFKA_START_TIMEOUT}s ($out); log: $logf"
    fi
    sleep 0.5
  done
}

kafka_prepare_single() {
  mkdir -p "$KAFKA_DIR/data"
  CLUSTER_ID_FILE=$KAFKA_DIR/cluster.id
  [[ -s $CLUSTER_ID_FILE ]] || new_cluster_id >"$CLUSTER_ID_FILE"
  # The standalone (dynamic) quorum records the controller endpoint at format time:
  # on a port change start from empty storage (it is a throwaway local broker).
  local ports="$KAFKA_PORT/$KAFKA_CONTROLLER_PORT"
  if [[ -f $KAFKA_DIR/formatted.ports && $(cat "$KAFKA_DIR/formatted.ports") != "$ports" ]]; then
    log "kafka: ports changed ($(cat "$KAFKA_DIR/formatted.ports") -> $ports), wiping $KAFKA_DIR/data"
    rm -rf "$KAFKA_DIR/data"; mkdir -p "$KAFKA_DIR/data"
  fi
  echo "$ports" >"$KAFKA_DIR/formatted.ports"
  render "$SCRIPT_DIR/kafka/server.properties.template" "$KAFKA_DIR/server.properties" \
    HOST="$HOST" PORT="$KAFKA_PORT" CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT" LOG_DIRS="$KAFKA_DIR/data"
}

# Phase 1 of `up kafka`: returns 0 with KAFKA_NEEDS_WAIT=1 if a broker was spawned / is starting.
kafka_start() {
  KAFKA_NEEDS_WAIT=0
  local conf=$KAFKA_DIR/server.properties pid out
  pid=$(kafka_node_pid "$conf" "$KAFKA_DIR/broker.pid")
  if [[ -n $pid ]]; then
    echo "$pid" >"$KAFKA_DIR/broker.pid"
    if out=$(kafka_check "$HOST:$KAFKA_PORT" 1 "$KAFKA_DIR/broker.log" 2>&1); then
      log "kafka already running (pid $pid) at $HOST:$KAFKA_PORT — Apache Kafka $(kafka_version_of "$KAFKA_DIR/broker.log")"
      return 0
    fi
    log "kafka: process $pid exists but does not answer yet ($out), waiting"
    KAFKA_NEEDS_WAIT=1; return 0
  fi
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if tcp_open "$HOST" "$port"; then
      die "kafka: port $port is already in use by another process ($(port_owner "$port")); set TRIAGEFLOW_KAFKA_PORT / TRIAGEFLOW_KAFKA_CONTROLLER_PORT"
    fi
  done
  ensure_java
  ensure_kafka_libs
  kafka_prepare_single
  format_kafka_node kafka "$KAFKA_DIR" --standalone
  start_kafka_node kafka "$KAFKA_DIR" "$KAFKA_HEAP"
  KAFKA_NEEDS_WAIT=1
}

kafka_wait() {
  [[ ${KAFKA_NEEDS_WAIT:-0} -eq 1 ]] || return 0
  wait_kafka kafka "$HOST:$KAFKA_PORT" 1 "$KAFKA_DIR/broker.log" "$KAFKA_DIR/broker.pid"
}

kafka_down() {
  local conf=$KAFKA_DIR/server.properties pids
  pids=$( { kafka_node_pid "$conf" "$KAFKA_DIR/broker.pid"; java_pids_with_arg "$conf"; } | sort -u)
  if [[ -z $pids ]]; then
    log "kafka: not running"
  else
    log "kafka: stopping pid ${pids//$'\n'/ } (controlled shutdown)..."
    local t0; t0=$(now)
    # shellcheck disable=SC2086
    stop_pids kafka $pids
    log "kafka: stopped ($(( $(now) - t0 ))s)"
  fi
  rm -f "$KAFKA_DIR/broker.pid"
}

kafka_kill() {
  local pid
  pid=$(kafka_node_pid "$KAFKA_DIR/server.properties" "$KAFKA_DIR/broker.pid")
  [[ -n $pid ]] || { log "kafka: not running"; return 0; }
  sigkill_and_wait kafka "$pid" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  rm -f "$KAFKA_DIR/broker.pid"
  log "kafka: killed (SIGKILL pid $pid); \`infra.sh up kafka\` restarts it"
}

kafka_status() {
  local pid out
  pid=$(kafka_node_pid "$KAFKA_DIR/server.properties" "$KAFKA_DIR/broker.pid")
  if [[ -z $pid ]]; then
    log "kafka     stopped    $HOST:$KAFKA_PORT"; return 1
  fi
  if out=$(kafka_check "$HOST:$KAFKA_PORT" 1 "$KAFKA_DIR/broker.log" 2>&1); then
    log "kafka     running    pid $pid  $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)  Apache Kafka $(kafka_version_of "$KAFKA_DIR/broker.log")"
    return 0
  fi
  log "kafka     unhealthy  pid $pid  $HOST:$KAFKA_PORT  ($out)"; return 1
}

# -------------------------------------------------------- kafka3 (3 nodes) ---

k3_port() { echo "${1}9092"; }
k3_cport() { echo "${1}9093"; }
K3_BOOTSTRAP="$HOST:19092,$HOST:29092,$HOST:39092"

kafka3_up() {
  local n pid voters="" started=() pidfiles=()
  for n in 1 2 3; do voters+="${voters:+,}$n@$HOST:$(k3_cport $n)"; done
  mkdir -p "$KAFKA3_DIR"
  CLUSTER_ID_FILE=$KAFKA3_DIR/cluster.id
  [[ -s $CLUSTER_ID_FILE ]] || new_cluster_id >"$CLUSTER_ID_FILE"
  for n in 1 2 3; do
    local d=$KAFKA3_DIR/node$n
    mkdir -p "$d/data"
    pidfiles+=("$d/broker.pid")
    pid=$(kafka_node_pid "$d/server.properties" "$d/broker.pid")
    if [[ -n $pid ]]; then echo "$pid" >"$d/broker.pid"; log "kafka3 node $n: already running (pid $pid)"; continue; fi
    local port
    for port in "$(k3_port $n)" "$(k3_cport $n)"; do
      tcp_open "$HOST" "$port" && die "kafka3 node $n: port $port already in use ($(port_owner "$port"))"
    done
    ensure_java
    ensure_kafka_libs
    render "$SCRIPT_DIR/kafka/cluster-node.properties.template" "$d/server.properties" \
      NODE_ID="$n" VOTERS="$voters" HOST="$HOST" PORT="$(k3_port $n)" CONTROLLER_PORT="$(k3_cport $n)" \
      LOG_DIRS="$d/data"
    started+=("$n")
  done
  # Format in parallel (one JVM each), then start all nodes back to back.
  local fpids=() rc=0
  for n in "${started[@]}"; do
    format_kafka_node "kafka3 node $n" "$KAFKA3_DIR/node$n" & fpids+=($!)
  done
  for pid in "${fpids[@]}"; do wait "$pid" || rc=1; done
  [[ $rc -eq 0 ]] || die "kafka3: formatting failed"
  for n in "${started[@]}"; do
    start_kafka_node "kafka3 node $n" "$KAFKA3_DIR/node$n" "$KAFKA3_HEAP"
  done
  # Nodes only finish starting once a controller quorum (2 of 3) exists: start all, then wait.
  for n in 1 2 3; do
    wait_kafka "kafka3 node $n" "$HOST:$(k3_port $n)" 3 "$KAFKA3_DIR/node$n/broker.log" "${pidfiles[@]}"
  done
  log "kafka3 bootstrap: $K3_BOOTSTRAP"
}

kafka3_down() {
  local n all=() pids
  for n in 1 2 3; do
    local d=$KAFKA3_DIR/node$n
    pids=$( { kafka_node_pid "$d/server.properties" "$d/broker.pid"; java_pids_with_arg "$d/server.properties"; } | sort -u)
    # shellcheck disable=SC2206
    all+=($pids)
  done
  if [[ ${#all[@]} -eq 0 ]]; then
    log "kafka3: not running"
  else
    log "kafka3: stopping pids ${all[*]}..."
    local t0; t0=$(now)
    stop_pids kafka3 "${all[@]}"
    log "kafka3: stopped ($(( $(now) - t0 ))s)"
  fi
  rm -f "$KAFKA3_DIR"/node*/broker.pid
}

kafka3_status() {
  local n pid any=0
  for n in 1 2 3; do
    pid=$(kafka_node_pid "$KAFKA3_DIR/node$n/server.properties" "$KAFKA3_DIR/node$n/broker.pid")
    [[ -n $pid ]] && any=1
  done
  [[ $any -eq 1 ]] || return 0   # only reported when (partly) running
  for n in 1 2 3; do
    pid=$(kafka_node_pid "$KAFKA3_DIR/node$n/server.properties" "$KAFKA3_DIR/node$n/broker.pid")
    if [[ -n $pid ]] && tcp_open "$HOST" "$(k3_port $n)"; then
      log "kafka3-$n   running    pid $pid  $HOST:$(k3_port $n) (controller $(k3_cport $n))"
    elif [[ -n $pid ]]; then
      log "kafka3-$n   starting   pid $pid  $HOST:$(k3_port $n)"
    else
      log "kafka3-$n   stopped    $HOST:$(k3_port $n)"
    fi
  done
}

kafka3_kill_node() {
  local n=${1:-}
  [[ $n =~ ^[123]$ ]] || die "usage: infra.sh kill-node 1|2|3"
  local d=$KAFKA3_DIR/node$n pid
  pid=$(kafka_node_pid "$d/server.properties" "$d/broker.pid")
  [[ -n $pid ]] || { log "kafka3 node $n: not running"; return 0; }
  sigkill_and_wait "kafka3 node $n" "$pid" "$(k3_port "$n")" "$(k3_cport "$n")"
  rm -f "$d/broker.pid"
  log "kafka3 node $n: killed (SIGKILL pid $pid); \`infra.sh up kafka3\` brings it back"
}

# --------------------------------------------------------------- postgres ---

pg_bindir() {
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -1 || true)
  [[ -n $d && -x $d/pg_ctl && -x $d/initdb && -x $d/postgres ]] && echo "$d"
}

ensure_pg_installed() {
  PG_BIN=$(pg_bindir || true)
  if [[ -z $PG_BIN ]] || ! command -v psql >/dev/null; then
    need_apt postgresql "postgresql postgresql-client"
    # Debian's package may create and start its own "main" cluster on 5432: stop it.
    if command -v pg_lsclusters >/dev/null; then
      pg_lsclusters -h 2>/dev/null | awk '$4=="online"{print $1, $2}' | while read -r v c; do
        log "stopping Debian's auto-started cluster $v/$c"; pg_ctlcluster "$v" "$c" stop || true
      done
    fi
    PG_BIN=$(pg_bindir || true)
    [[ -n $PG_BIN ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql after install"
  fi
}

# Run a command as the postgres OS user when root (the server refuses to run as root).
as_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Where the cluster lives: <state>/postgres, unless the postgres user cannot reach the state
# dir (e.g. a parent directory without o+x); then /var/lib/postgresql/triageflow-<hash>.
pg_resolve_dirs() {
  PG_DIR=$STATE_DIR/postgres
  if is_root && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$STATE_DIR" 2>/dev/null; then
    PG_DIR=/var/lib/postgresql/triageflow-$(printf '%s' "$STATE_DIR" | cksum | cut -d' ' -f1)
  fi
  PG_DATA=$PG_DIR/data
  PG_LOG=$PG_DIR/postgres.log
  PG_SOCK=$PG_DIR/run
  # Unix socket paths are limited to 107 bytes.
  if (( ${#PG_SOCK} + 20 > 100 )); then
    PG_SOCK=/tmp/triageflow-pg-$(printf '%s' "$PG_DIR" | cksum | cut -d' ' -f1)
  fi
}

pg_postmaster_pid() {
  local p
  [[ -f $PG_DATA/postmaster.pid ]] || return 0
  p=$(head -1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
  pid_alive "$p" && echo "$p"
  return 0
}

# shellcheck disable=SC2120
pg_psql_admin() {  # superuser session over the private unix socket
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres "$@"
}

pg_url_ok() { PGCONNECT_TIMEOUT=3 psql -X -qAt "$PG_URL" -c 'select 1' >/dev/null 2>&1; }

pg_server_version() { PGCONNECT_TIMEOUT=3 psql -X -qAt "$PG_URL" -c 'show server_version' 2>/dev/null | awk '{print $1}'; }

pg_write_conf() {
  local f=$PG_DATA/triageflow.conf
  cat >"$f.tmp" <<EOF
# Written by deploy/local/infra.sh on every start; included from postgresql.conf.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
unix_socket_permissions = 0700
max_connections = 200
password_encryption = 'scram-sha-256'
# Throwaway test database: no fsync (data still survives a process crash / SIGKILL,
# only an OS crash could lose it). TRIAGEFLOW_PG_FSYNC=on to turn it back on.
fsync = $PG_FSYNC
full_page_writes = $PG_FSYNC
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  mv "$f.tmp" "$f"
  is_root && chown postgres:postgres "$f"
  grep -q "^include_if_exists = 'triageflow.conf'" "$PG_DATA/postgresql.conf" ||
    echo "include_if_exists = 'triageflow.conf'" >>"$PG_DATA/postgresql.conf"
}

pg_init() {
  mkdir -p "$PG_DIR" "$PG_SOCK"
  if is_root; then chown postgres:postgres "$PG_DIR" "$PG_SOCK"; fi
  chmod 700 "$PG_DIR" "$PG_SOCK"
  if [[ -s $PG_DATA/PG_VERSION ]]; then
    local have want
    have=$(cat "$PG_DATA/PG_VERSION"); want=$(basename "$(dirname "$PG_BIN")")
    [[ $have == "$want" ]] || die "postgres: $PG_DATA was initialised by PostgreSQL $have but $want is installed; run \`infra.sh reset postgres\`"
    return 0
  fi
  log "postgres: initdb $PG_DATA ($("$PG_BIN/postgres" --version))"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; die "postgres: initdb failed"; }
}

pg_bootstrap_sql() {
  pg_psql_admin <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB CREATEROLE PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB CREATEROLE PASSWORD '$PG_PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
ALTER DATABASE $PG_DB OWNER TO $PG_USER;
SQL
}

pg_up() {
  ensure_pg_installed
  pg_resolve_dirs
  local pid t0
  t0=$(now)
  pid=$(pg_postmaster_pid)
  if [[ -n $pid ]] && pg_url_ok; then
    log "postgres already running (pid $pid) at $PG_URL — PostgreSQL $(pg_server_version)"
    return 0
  fi
  if [[ -z $pid ]]; then
    local old
    old=$(head -1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
    [[ $old =~ ^[0-9]+$ ]] && wait_gone "$old" 15
    if tcp_open "$HOST" "$PG_PORT"; then
      local hint=""
      command -v pg_lsclusters >/dev/null &&
        hint=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3==p && $4=="online"{printf " (Debian cluster %s/%s: pg_ctlcluster %s %s stop)", $1,$2,$1,$2}')
      die "postgres: port $PG_PORT is already in use by another process ($(port_owner "$PG_PORT"))$hint; or set TRIAGEFLOW_PG_PORT"
    fi
    pg_init
    pg_write_conf
    [[ -f $PG_LOG ]] && mv -f "$PG_LOG" "$PG_LOG.1"
    if is_root; then touch "$PG_LOG"; chown postgres:postgres "$PG_LOG"; fi
    local runner=()
    is_root && runner=(runuser -u postgres --)
    # Own session, so the postmaster survives the calling shell and its terminal.
    if ! setsid -w "${runner[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" start \
          </dev/null >"$PG_DIR/pg_ctl.out" 2>&1 9>&-; then
      cat "$PG_DIR/pg_ctl.out" >&2; tail -30 "$PG_LOG" >&2 || true
      die "postgres: pg_ctl start failed; log: $PG_LOG"
    fi
    pid=$(pg_postmaster_pid)
    log "postgres: started pid ${pid:-?}, data $PG_DATA, log $PG_LOG"
  fi
  pg_bootstrap_sql
  local deadline=$(( $(now) + PG_START_TIMEOUT ))
  until pg_url_ok; do
    (( $(now) < deadline )) || { tail -30 "$PG_LOG" >&2 || true; die "postgres: '$PG_URL' not answering after ${PG_START_TIMEOUT}s"; }
    sleep 0.5
  done
  log "postgres ready: PostgreSQL $(pg_server_version) at $PG_URL ($(( $(now) - t0 ))s)"
}

pg_down() {
  pg_resolve_dirs
  local pid
  pid=$(pg_postmaster_pid)
  if [[ -z $pid ]]; then log "postgres: not running"; return 0; fi
  PG_BIN=$(pg_bindir || true)
  local t0; t0=$(now)
  log "postgres: stopping pid $pid (fast shutdown)..."
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1; then
    warn "postgres: fast shutdown timed out, trying immediate"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 stop >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null || true
  fi
  while pid_alive "$pid"; do sleep 0.1; done
  log "postgres: stopped ($(( $(now) - t0 ))s)"
}

pg_kill() {
  pg_resolve_dirs
  local pid; pid=$(pg_postmaster_pid)
  [[ -n $pid ]] || { log "postgres: not running"; return 0; }
  local children c
  children=$(pgrep -P "$pid" || true)
  kill -KILL "$pid"
  # The backends notice the postmaster's death and exit.
  for c in $pid $children; do wait_gone "$c" 10; done
  log "postgres: killed (SIGKILL postmaster $pid); \`infra.sh up postgres\` restarts it with crash recovery"
}

pg_status() {
  pg_resolve_dirs
  local pid; pid=$(pg_postmaster_pid)
  if [[ -z $pid ]]; then log "postgres  stopped    $HOST:$PG_PORT"; return 1; fi
  if pg_url_ok; then
    log "postgres  running    pid $pid  $PG_URL  PostgreSQL $(pg_server_version)"; return 0
  fi
  log "postgres  unhealthy  pid $pid  $HOST:$PG_PORT (postmaster alive, '$PG_URL' does not answer)"; return 1
}

# ------------------------------------------ secure: kafka-secure, postgres-tls ---
# For the security integration tests and for trying TLS locally. A throwaway local CA
# (<state>/tls) issues the server certificates; every password is random, made at the first
# `up`, and kept only in 0600 files of the state dir. Nothing here is ever committed.

TLS_DIR=$STATE_DIR/tls
KS_DIR=$STATE_DIR/kafka-secure
KS_PORT=${TRIAGEFLOW_KAFKA_SECURE_PORT:-9192}
KS_CONTROLLER_PORT=${TRIAGEFLOW_KAFKA_SECURE_CONTROLLER_PORT:-9193}
KS_HEAP=${TRIAGEFLOW_KAFKA_SECURE_HEAP:--Xms128m -Xmx384m}
KS_USER=triageflow
KS_BROKER_USER=triageflow-broker
PG_TLS_DIR=$STATE_DIR/postgres-tls
PG_TLS_ROLE=triageflow_tls
PG_TLS_MARK="triageflow-tls (deploy/local/infra.sh up postgres-tls)"

new_secret() { openssl rand -hex 24; }

ensure_openssl() { command -v openssl >/dev/null || need_apt openssl openssl; }

# The local CA: created once, renewed when it expires within a day.
tls_ensure_ca() {
  ensure_openssl
  mkdir -p "$TLS_DIR"
  if [[ -s $TLS_DIR/ca.crt && -s $TLS_DIR/ca.key ]] &&
      openssl x509 -checkend 86400 -noout -in "$TLS_DIR/ca.crt" >/dev/null 2>&1; then
    return 0
  fi
  log "tls: creating a throwaway local CA in $TLS_DIR"
  cat >"$TLS_DIR/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = triageflow local test CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
  if ! (umask 077; openssl req -x509 -config "$TLS_DIR/ca.cnf" -extensions v3_ca -newkey rsa:2048 \
        -nodes -sha256 -days 825 -keyout "$TLS_DIR/ca.key.tmp" -out "$TLS_DIR/ca.crt.tmp") \
        >"$TLS_DIR/openssl.log" 2>&1; then
    cat "$TLS_DIR/openssl.log" >&2; die "tls: openssl could not create the CA"
  fi
  mv -f "$TLS_DIR/ca.key.tmp" "$TLS_DIR/ca.key"
  mv -f "$TLS_DIR/ca.crt.tmp" "$TLS_DIR/ca.crt"
  chmod 644 "$TLS_DIR/ca.crt"
  rm -f "$TLS_DIR/ca.cnf" "$TLS_DIR/openssl.log"
}

# tls_ensure_leaf NAME: <tls>/NAME.{key,crt}, issued by the current CA for 127.0.0.1 and
# localhost; reissued when missing, expiring within a day, or not signed by the CA.
tls_ensure_leaf() {
  local name=$1 key=$TLS_DIR/$1.key crt=$TLS_DIR/$1.crt
  if [[ -s $key && -s $crt ]] && openssl x509 -checkend 86400 -noout -in "$crt" >/dev/null 2>&1 &&
      openssl verify -CAfile "$TLS_DIR/ca.crt" "$crt" >/dev/null 2>&1; then
    return 0
  fi
  log "tls: issuing the $name server certificate (SAN IP:$HOST, DNS:localhost)"
  cat >"$TLS_DIR/$name.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:$HOST,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  if ! (umask 077
        openssl req -new -newkey rsa:2048 -nodes -subj "/CN=localhost" \
          -keyout "$key.tmp" -out "$TLS_DIR/$name.csr" &&
        openssl x509 -req -in "$TLS_DIR/$name.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
          -set_serial "0x$(openssl rand -hex 12)" -days 825 -sha256 \
          -extfile "$TLS_DIR/$name.ext" -out "$crt.tmp") >"$TLS_DIR/openssl.log" 2>&1; then
    cat "$TLS_DIR/openssl.log" >&2; die "tls: openssl could not issue the $name certificate"
  fi
  mv -f "$key.tmp" "$key"
  mv -f "$crt.tmp" "$crt"
  chmod 644 "$crt"
  rm -f "$TLS_DIR/$name.csr" "$TLS_DIR/$name.ext" "$TLS_DIR/openssl.log"
}

# write_env_file FILE KEY=VALUE...: `export` lines, mode 0600 (they hold passwords).
write_env_file() {
  local f=$1 kv; shift
  (umask 077
   {
     echo "# Written by deploy/local/infra.sh; holds secrets: never commit, print or copy it."
     for kv in "$@"; do printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"; done
   } >"$f.tmp")
  mv -f "$f.tmp" "$f"
}

# Load the secure broker's passwords (KS_*_PASSWORD), creating them once.
ks_credentials() {
  local f=$KS_DIR/credentials
  mkdir -p "$KS_DIR"
  if [[ ! -s $f ]]; then
    ensure_openssl
    (umask 077
     printf 'KS_CLIENT_PASSWORD=%s\nKS_BROKER_PASSWORD=%s\nKS_KEYSTORE_PASSWORD=%s\n' \
       "$(new_secret)" "$(new_secret)" "$(new_secret)" >"$f.tmp")
    mv -f "$f.tmp" "$f"
    # SCRAM credentials are written into the metadata log at format time: new passwords
    # need new storage.
    rm -rf "$KS_DIR/data"
  fi
  # shellcheck disable=SC1090
  . "$f"
}

ks_write_env() {
  write_env_file "$KS_DIR/env-secure.sh" \
    TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS="$HOST:$KS_PORT" \
    TRIAGEFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL \
    TRIAGEFLOW_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 \
    TRIAGEFLOW_KAFKA_SASL_USERNAME="$KS_USER" \
    TRIAGEFLOW_KAFKA_SASL_PASSWORD="$KS_CLIENT_PASSWORD" \
    TRIAGEFLOW_KAFKA_SSL_CAFILE="$TLS_DIR/ca.crt"
}

# Same contract as kafka_check, over SASL_SSL as the client user (password via the environment,
# never on a command line).
kafka_secure_check() {
  local bs=$1 logf=$3 host=${1%%:*} port=${1##*:}
  tcp_open "$host" "$port" || { echo "port $port closed"; return 1; }
  if [[ -n $PYTHON ]] && "$PYTHON" -c 'import aiokafka' 2>/dev/null; then
    TF_KS_PASSWORD=$KS_CLIENT_PASSWORD timeout 20 "$PYTHON" - "$bs" "$KS_USER" "$TLS_DIR/ca.crt" 2>/dev/null <<'PY'
import asyncio, os, ssl, sys
from aiokafka.admin import AIOKafkaAdminClient

async def main() -> int:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=sys.argv[1], request_timeout_ms=5000, client_id="triageflow-infra",
        security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=sys.argv[2], sasl_plain_password=os.environ["TF_KS_PASSWORD"],
        ssl_context=ssl.create_default_context(cafile=sys.argv[3]),
    )
    await admin.start()
    try:
        c = await admin.describe_cluster()
    finally:
        await admin.close()
    if not c.get("brokers") or c.get("controller_id", -1) < 0:
        print(f"metadata: brokers {c.get('brokers')}, controller {c.get('controller_id')}")
        return 1
    print(f"metadata ok over SASL_SSL/SCRAM-SHA-512 (aiokafka): cluster {c.get('cluster_id')}")
    return 0

sys.exit(asyncio.run(asyncio.wait_for(main(), 15)))
PY
    return
  fi
  grep -q 'Kafka Server started' "$logf" 2>/dev/null || { echo "waiting for 'Kafka Server started'"; return 1; }
  echo "port open and log says 'Kafka Server started' (aiokafka not available)"
}

# Phase 1 of `up kafka-secure` (KS_NEEDS_WAIT=1 when a broker was spawned / is starting).
kafka_secure_start() {
  KS_NEEDS_WAIT=0
  local conf=$KS_DIR/server.properties pid out port
  pid=$(kafka_node_pid "$conf" "$KS_DIR/broker.pid")
  if [[ -n $pid ]]; then
    echo "$pid" >"$KS_DIR/broker.pid"
    ks_credentials
    ks_write_env
    if out=$(kafka_secure_check "$HOST:$KS_PORT" 1 "$KS_DIR/broker.log" 2>&1); then
      log "kafka-secure already running (pid $pid) at SASL_SSL://$HOST:$KS_PORT"
      return 0
    fi
    log "kafka-secure: process $pid exists but does not answer yet ($out), waiting"
    KS_NEEDS_WAIT=1; return 0
  fi
  for port in "$KS_PORT" "$KS_CONTROLLER_PORT"; do
    if tcp_open "$HOST" "$port"; then
      die "kafka-secure: port $port is already in use by another process ($(port_owner "$port")); set TRIAGEFLOW_KAFKA_SECURE_PORT / TRIAGEFLOW_KAFKA_SECURE_CONTROLLER_PORT"
    fi
  done
  ensure_java
  ensure_kafka_libs
  tls_ensure_ca
  tls_ensure_leaf kafka
  ks_credentials
  mkdir -p "$KS_DIR/data"
  local ports="$KS_PORT/$KS_CONTROLLER_PORT"
  if [[ -f $KS_DIR/formatted.ports && $(cat "$KS_DIR/formatted.ports") != "$ports" ]]; then
    log "kafka-secure: ports changed ($(cat "$KS_DIR/formatted.ports") -> $ports), wiping $KS_DIR/data"
    rm -rf "$KS_DIR/data"; mkdir -p "$KS_DIR/data"
  fi
  echo "$ports" >"$KS_DIR/formatted.ports"
  # The keystore is rebuilt on every start: it follows a reissued certificate or password.
  if ! (umask 077; TF_KS_KEYSTORE_PASSWORD=$KS_KEYSTORE_PASSWORD openssl pkcs12 -export -name broker -in "$TLS_DIR/kafka.crt" \
        -inkey "$TLS_DIR/kafka.key" -certfile "$TLS_DIR/ca.crt" -out "$KS_DIR/broker.p12.tmp" \
        -passout env:TF_KS_KEYSTORE_PASSWORD) >"$KS_DIR/openssl.log" 2>&1 \
        </dev/null; then
    cat "$KS_DIR/openssl.log" >&2; die "kafka-secure: openssl could not build the keystore"
  fi
  mv -f "$KS_DIR/broker.p12.tmp" "$KS_DIR/broker.p12"
  rm -f "$KS_DIR/openssl.log"
  (umask 077
   render "$SCRIPT_DIR/kafka/secure-server.properties.template" "$conf" \
     HOST="$HOST" PORT="$KS_PORT" CONTROLLER_PORT="$KS_CONTROLLER_PORT" LOG_DIRS="$KS_DIR/data" \
     BROKER_USER="$KS_BROKER_USER" BROKER_PASSWORD="$KS_BROKER_PASSWORD" \
     KEYSTORE="$KS_DIR/broker.p12" KEYSTORE_PASSWORD="$KS_KEYSTORE_PASSWORD" \
     CAFILE="$TLS_DIR/ca.crt")
  CLUSTER_ID_FILE=$KS_DIR/cluster.id
  [[ -s $CLUSTER_ID_FILE ]] || new_cluster_id >"$CLUSTER_ID_FILE"
  # The SCRAM users exist from the first metadata record on: the broker's own user (for
  # inter-broker SASL_SSL) and the client user.
  format_kafka_node kafka-secure "$KS_DIR" --standalone \
    --add-scram "SCRAM-SHA-512=[name=$KS_BROKER_USER,password=$KS_BROKER_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=$KS_USER,password=$KS_CLIENT_PASSWORD]"
  start_kafka_node kafka-secure "$KS_DIR" "$KS_HEAP"
  ks_write_env
  KS_NEEDS_WAIT=1
}

kafka_secure_wait() {
  [[ ${KS_NEEDS_WAIT:-0} -eq 1 ]] || return 0
  KAFKA_CHECK=kafka_secure_check wait_kafka kafka-secure "$HOST:$KS_PORT" 1 \
    "$KS_DIR/broker.log" "$KS_DIR/broker.pid"
  log "kafka-secure: client settings in $KS_DIR/env-secure.sh (mode 0600)"
}

kafka_secure_down() {
  local conf=$KS_DIR/server.properties pids
  pids=$( { kafka_node_pid "$conf" "$KS_DIR/broker.pid"; java_pids_with_arg "$conf"; } | sort -u)
  if [[ -z $pids ]]; then
    log "kafka-secure: not running"
  else
    log "kafka-secure: stopping pid ${pids//$'\n'/ } (controlled shutdown)..."
    local t0; t0=$(now)
    # shellcheck disable=SC2086
    stop_pids kafka-secure $pids
    log "kafka-secure: stopped ($(( $(now) - t0 ))s)"
  fi
  rm -f "$KS_DIR/broker.pid"
}

kafka_secure_status() {
  [[ -f $KS_DIR/server.properties ]] || return 0   # only reported once it was set up
  local pid out
  pid=$(kafka_node_pid "$KS_DIR/server.properties" "$KS_DIR/broker.pid")
  if [[ -z $pid ]]; then log "kafka-secure stopped  SASL_SSL://$HOST:$KS_PORT"; return 0; fi
  ks_credentials
  if out=$(kafka_secure_check "$HOST:$KS_PORT" 1 "$KS_DIR/broker.log" 2>&1); then
    log "kafka-secure running  pid $pid  SASL_SSL://$HOST:$KS_PORT (SCRAM-SHA-512; env $KS_DIR/env-secure.sh)"
  else
    log "kafka-secure unhealthy pid $pid  SASL_SSL://$HOST:$KS_PORT ($out)"
  fi
}

# ------------------------------------------------------------- postgres-tls ---
# TLS on the (shared) local PostgreSQL without a restart: `ssl = on` in an included file and a
# reload. ssl=on does not force TLS, so plaintext loopback connections keep working; only the
# dedicated login role `triageflow_tls` is refused without TLS (pg_hba `hostnossl ... reject`).

# install_pg_file SRC DEST: copy for the postgres user (key files must be 0600 and theirs);
# returns 0 when DEST changed.
install_pg_file() {
  if cmp -s "$1" "$2" 2>/dev/null; then return 1; fi
  if is_root; then install -o postgres -g postgres -m 600 "$1" "$2"; else install -m 600 "$1" "$2"; fi
}

# pg_hba.conf with our block first (first match wins), whatever it held before without it.
pg_tls_hba() {
  local hba=$PG_DATA/pg_hba.conf
  awk -v mark="$PG_TLS_MARK" '
    $0 == "# BEGIN " mark {skip = 1; next}
    $0 == "# END " mark {skip = 0; next}
    !skip {print}' "$hba"
}

pg_tls_write_hba() {  # pg_tls_write_hba on|off -> returns 0 when pg_hba.conf changed
  local hba=$PG_DATA/pg_hba.conf
  {
    if [[ $1 == on ]]; then
      echo "# BEGIN $PG_TLS_MARK"
      echo "hostnossl all $PG_TLS_ROLE 0.0.0.0/0 reject"
      echo "hostnossl all $PG_TLS_ROLE ::/0 reject"
      echo "hostssl   all $PG_TLS_ROLE 127.0.0.1/32 scram-sha-256"
      echo "# END $PG_TLS_MARK"
    fi
    pg_tls_hba
  } >"$hba.tf.tmp"
  if cmp -s "$hba.tf.tmp" "$hba"; then rm -f "$hba.tf.tmp"; return 1; fi
  is_root && chown postgres:postgres "$hba.tf.tmp"
  chmod 600 "$hba.tf.tmp"
  mv -f "$hba.tf.tmp" "$hba"
}

pg_tls_url() { echo "$PG_URL?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.crt"; }

# TLS is on when a verify-full connection as the local role reports an encrypted session.
pg_tls_ok() {
  [[ $(PGCONNECT_TIMEOUT=3 psql -X -qAt "$(pg_tls_url)" \
        -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>/dev/null) == t ]]
}

pg_tls_up() {
  pg_up
  tls_ensure_ca
  tls_ensure_leaf postgres
  mkdir -p "$PG_TLS_DIR"
  local changed=0 dir=$PG_DATA/triageflow-tls conf=$PG_DATA/triageflow-tls.conf
  if is_root; then install -d -o postgres -g postgres -m 700 "$dir"; else install -d -m 700 "$dir"; fi
  install_pg_file "$TLS_DIR/postgres.crt" "$dir/server.crt" && changed=1
  install_pg_file "$TLS_DIR/postgres.key" "$dir/server.key" && changed=1
  cat >"$PG_TLS_DIR/triageflow-tls.conf" <<EOF
# Written by deploy/local/infra.sh up postgres-tls; included from postgresql.conf.
# TLS is offered to every client; pg_hba.conf forces it only for role $PG_TLS_ROLE.
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
ssl_min_protocol_version = 'TLSv1.2'
EOF
  install_pg_file "$PG_TLS_DIR/triageflow-tls.conf" "$conf" && changed=1
  if ! grep -q "^include_if_exists = 'triageflow-tls.conf'" "$PG_DATA/postgresql.conf"; then
    echo "include_if_exists = 'triageflow-tls.conf'" >>"$PG_DATA/postgresql.conf"; changed=1
  fi
  pg_tls_write_hba on && changed=1
  # The TLS-only login role; its random password is made once and kept in a 0600 file.
  local secret=$PG_TLS_DIR/credentials
  if [[ ! -s $secret ]]; then
    (umask 077; printf 'PG_TLS_PASSWORD=%s\n' "$(new_secret)" >"$secret.tmp"); mv -f "$secret.tmp" "$secret"
  fi
  # shellcheck disable=SC1090
  . "$secret"
  pg_psql_admin <<SQL
SET client_min_messages = warning;
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_TLS_ROLE') THEN
    CREATE ROLE $PG_TLS_ROLE LOGIN PASSWORD '$PG_TLS_PASSWORD';
  ELSE
    ALTER ROLE $PG_TLS_ROLE LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$PG_TLS_PASSWORD';
  END IF;
  -- The local admin role may end this role's sessions (DROP DATABASE ... WITH (FORCE) of a
  -- test database). pg_hba matches the user name itself, not its members: no TLS forced on it.
  GRANT $PG_TLS_ROLE TO $PG_USER;
  -- The audit writer group exists once the audit migrations ran somewhere in the cluster.
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'triageflow_audit_writer') THEN
    GRANT triageflow_audit_writer TO $PG_TLS_ROLE;
  END IF;
END
\$\$;
SQL
  if (( changed )) || ! pg_tls_ok; then
    pg_psql_admin -c 'SELECT pg_reload_conf()' >/dev/null
    local deadline=$(( $(now) + 15 ))
    until pg_tls_ok; do
      if (( $(now) >= deadline )); then
        tail -20 "$PG_LOG" >&2 || true
        die "postgres-tls: no TLS session after reloading; log: $PG_LOG"
      fi
      sleep 0.3
    done
    local errors
    errors=$(pg_psql_admin -At -c 'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL')
    [[ $errors == 0 ]] || die "postgres-tls: pg_hba.conf has $errors invalid line(s): see pg_hba_file_rules"
    log "postgres-tls: TLS on (reloaded, no restart); role $PG_TLS_ROLE may only connect over TLS"
  else
    log "postgres-tls already on at $HOST:$PG_PORT"
  fi
  write_env_file "$PG_TLS_DIR/env-secure.sh" \
    TRIAGEFLOW_DATABASE_URL="postgresql://$PG_TLS_ROLE:$PG_TLS_PASSWORD@$HOST:$PG_PORT/$PG_DB" \
    TRIAGEFLOW_DATABASE_SSLMODE=verify-full \
    TRIAGEFLOW_DATABASE_SSLROOTCERT="$TLS_DIR/ca.crt"
  log "postgres-tls: client settings in $PG_TLS_DIR/env-secure.sh (mode 0600)"
}

# Turn TLS off again (reload, no restart); the certificates and the role stay.
pg_tls_down() {
  pg_resolve_dirs
  local changed=0
  [[ -f $PG_DATA/triageflow-tls.conf ]] && { rm -f "$PG_DATA/triageflow-tls.conf"; changed=1; }
  [[ -f $PG_DATA/pg_hba.conf ]] && pg_tls_write_hba off && changed=1
  if (( changed )) && [[ -n $(pg_postmaster_pid) ]]; then
    PG_BIN=$(pg_bindir || true)
    pg_psql_admin -c 'SELECT pg_reload_conf()' >/dev/null
    log "postgres-tls: TLS off (reloaded)"
  else
    log "postgres-tls: not on"
  fi
}

pg_tls_status() {
  pg_resolve_dirs
  [[ -f $PG_DATA/triageflow-tls.conf ]] || return 0   # only reported when configured
  if pg_tls_ok; then
    log "postgres-tls on       $HOST:$PG_PORT  verify-full with $TLS_DIR/ca.crt; env $PG_TLS_DIR/env-secure.sh"
  else
    log "postgres-tls broken   configured, but no TLS session at $HOST:$PG_PORT"
  fi
}

print_env_secure() {
  local f any=0
  for f in "$KS_DIR/env-secure.sh" "$PG_TLS_DIR/env-secure.sh"; do
    [[ -s $f ]] && { cat "$f"; any=1; }
  done
  [[ $any -eq 1 ]] || die "nothing secure is set up: run \`infra.sh up secure\`"
}

# ------------------------------------------------------------------- main ---

print_env() {
  cat <<EOF
export KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT
export DATABASE_URL=$PG_URL
export TRIAGEFLOW_KAFKA3_BOOTSTRAP_SERVERS=$K3_BOOTSTRAP
EOF
}

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

cmd=${1:-}
what=${2:-all}
case $cmd in
  up)
    take_lock; t0=$(now)
    case $what in
      all) kafka_start; pg_up; kafka_wait ;;
      kafka) kafka_start; kafka_wait ;;
      postgres|pg) pg_up ;;
      kafka3) kafka3_up ;;
      kafka-secure) kafka_secure_start; kafka_secure_wait ;;
      postgres-tls) pg_tls_up ;;
      secure) kafka_secure_start; pg_tls_up; kafka_secure_wait ;;
      *) die "unknown component '$what' (all|kafka|postgres|kafka3|kafka-secure|postgres-tls|secure)" ;;
    esac
    log "up $what: done in $(( $(now) - t0 ))s"
    if [[ $what == all ]]; then log "KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT"; log "DATABASE_URL=$PG_URL"; fi
    ;;
  down)
    take_lock
    case $what in
      all) kafka3_down; kafka_secure_down; kafka_down; pg_down ;;
      kafka) kafka_down ;;
      postgres|pg) pg_down ;;
      kafka3) kafka3_down ;;
      kafka-secure) kafka_secure_down ;;
      postgres-tls) pg_tls_down ;;
      secure) kafka_secure_down; pg_tls_down ;;
      *) die "unknown component '$what' (all|kafka|postgres|kafka3|kafka-secure|postgres-tls|secure)" ;;
    esac
    ;;
  restart)
    take_lock
    case $what in
      all) kafka_down; pg_down; kafka_start; pg_up; kafka_wait ;;
      kafka) kafka_down; kafka_start; kafka_wait ;;
      postgres|pg) pg_down; pg_up ;;
      kafka3) kafka3_down; kafka3_up ;;
      kafka-secure) kafka_secure_down; kafka_secure_start; kafka_secure_wait ;;
      *) die "unknown component '$what' (all|kafka|postgres|kafka3|kafka-secure)" ;;
    esac
    ;;
  kill)
    case $what in
      kafka) kafka_kill ;;
      postgres|pg) pg_kill ;;
      *) die "usage: infra.sh kill kafka|postgres" ;;
    esac
    ;;
  kill-node) kafka3_kill_node "${2:-}" ;;
  status)
    rc=0
    kafka_status || rc=1
    pg_status || rc=1
    kafka3_status
    kafka_secure_status
    pg_tls_status
    exit $rc
    ;;
  reset)
    take_lock
    case $what in
      all) kafka3_down; kafka_secure_down; kafka_down; pg_down; pg_resolve_dirs
           rm -rf "$KAFKA_DIR/data" "$KAFKA_DIR/cluster.id" "$KAFKA_DIR/formatted.ports" "$KAFKA3_DIR" "$PG_DIR" \
             "$KS_DIR" "$PG_TLS_DIR" "$TLS_DIR" ;;
      kafka) kafka_down; rm -rf "$KAFKA_DIR/data" "$KAFKA_DIR/cluster.id" "$KAFKA_DIR/formatted.ports" ;;
      kafka3) kafka3_down; rm -rf "$KAFKA3_DIR" ;;
      kafka-secure) kafka_secure_down; rm -rf "$KS_DIR" ;;
      postgres|pg) pg_down; pg_resolve_dirs; rm -rf "$PG_DIR" ;;
      *) die "unknown component '$what' (all|kafka|postgres|kafka3)" ;;
    esac
    log "reset $what: data deleted (jar cache kept)"
    ;;
  logs)
    case $what in
      kafka) tail -n 50 "$KAFKA_DIR/broker.log" ;;
      postgres|pg) pg_resolve_dirs; tail -n 50 "$PG_LOG" ;;
      kafka3-[123]) tail -n 50 "$KAFKA3_DIR/node${what#kafka3-}/broker.log" ;;
      kafka-secure) tail -n 50 "$KS_DIR/broker.log" ;;
      *) die "usage: infra.sh logs kafka|postgres|kafka3-N|kafka-secure" ;;
    esac
    ;;
  env) print_env ;;
  env-secure) print_env_secure ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
