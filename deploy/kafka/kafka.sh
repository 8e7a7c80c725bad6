#!/usr/bin/env bash
# A project-local, single-node Apache Kafka broker (KRaft, combined broker+controller)
# for `make run` / `make test` / `make bench`.
#
#   deploy/kafka/kafka.sh fetch    download the broker jars with Maven (deploy/kafka/pom.xml)
#   deploy/kafka/kafka.sh start    fetch, format storage once, start the broker, wait until it answers
#   deploy/kafka/kafka.sh stop     stop the broker this script started
#   deploy/kafka/kafka.sh status   say whether it runs (exit 0 running, 3 not running)
#
#   deploy/kafka/kafka.sh secure-start DIR SASL_PORT SSL_PORT CONTROLLER_PORT
#       a throw-away broker for the tests of Kafka over TLS, everything under DIR: a fresh CA, the
#       broker's keystore and truststore, SCRAM users created when its storage is formatted, and two
#       client listeners on 127.0.0.1: SASL_SSL (SCRAM-SHA-512) on SASL_PORT and SSL requiring a client
#       certificate on SSL_PORT (the controller listens on loopback). Writes DIR/sasl_ssl.env and
#       DIR/ssl.env, the settings (KAFKA_BOOTSTRAP_SERVERS, UR_KAFKA_*) a client needs for each. It
#       ignores KAFKA_BOOTSTRAP_SERVERS and never touches the broker of `start`.
#   deploy/kafka/kafka.sh secure-stop DIR   stop that broker (its files stay until DIR is removed)
#
# Everything lives under <repo>/.cache/kafka: libs/ (jars), data/ (KRaft log dirs),
# server.properties, log4j2.xml, broker.log (log4j), broker.out (JVM stdout/stderr), broker.pid.
# `rm -rf .cache/kafka/data` throws the topics away; the next start formats a fresh cluster.
#
# When KAFKA_BOOTSTRAP_SERVERS is set (non-empty) an external cluster is used: start and stop
# do nothing. Needs java >= 17 (the broker) and, only when the jars are missing or stale, mvn.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
POM="$SCRIPT_DIR/pom.xml"
CACHE="$ROOT/.cache/kafka"
LIBS="$CACHE/libs"
DATA="$CACHE/data"
PROPS="$CACHE/server.properties"
LOG4J="$CACHE/log4j2.xml"
LOG="$CACHE/broker.log"
OUT="$CACHE/broker.out"
PIDFILE="$CACHE/broker.pid"
CLUSTER_ID_FILE="$CACHE/cluster.id"
# Records which pom.xml the jars in libs/ were fetched from: a changed pom refetches.
FETCH_STAMP="$LIBS/.fetched-from-pom.sha256"

HOST=127.0.0.1
PORT=9092
CONTROLLER_PORT=9093
BOOTSTRAP="$HOST:$PORT"
READY_TIMEOUT_S=90
STOP_TIMEOUT_S=30

log() { printf '[kafka %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[kafka %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

external() { [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; }

require_java() {
    command -v java >/dev/null 2>&1 \
        || die "java not found: install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
    local version major
    version=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
    major=${version%%.*}
    [[ "$major" == 1 ]] && major=$(cut -d. -f2 <<<"$version")
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major < 17)); then
        die "java $version found, but Kafka 4 needs Java 17 or newer (apt-get install openjdk-17-jre-headless)"
    fi
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

jars_present() {
    compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null && compgen -G "$LIBS/kafka-tools-*.jar" >/dev/null
}

jars_current() {
    jars_present && [[ -f "$FETCH_STAMP" && "$(cat "$FETCH_STAMP")" == "$(pom_hash)" ]]
}

# Serialises fetch/start/stop of concurrent invocations (two `make` runs at once).
take_lock() {
    mkdir -p "$CACHE"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$CACHE/.lock"
        flock 9
    fi
}

cmd_fetch() {
    require_java
    if jars_current; then
        log "broker jars present in ${LIBS#"$ROOT"/}"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 \
        || die "mvn not found; it downloads the Kafka jars once (Debian: apt-get install maven)"
    log "downloading Kafka broker jars with Maven (${POM#"$ROOT"/}) ..."
    # Into a fresh directory, then swapped in: never a mix of two Kafka versions on the classpath.
    local tmp="$CACHE/libs.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # Output to a file (shown on failure): -q still leaves terminal escape codes behind.
    if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" -DincludeScope=runtime >"$CACHE/mvn.out" 2>&1; then
        cat "$CACHE/mvn.out" >&2
        rm -rf "$tmp"
        die "Maven could not fetch the Kafka jars (is Maven Central reachable?)"
    fi
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "Maven ran but no kafka_2.13 jar arrived in $tmp"
    pom_hash >"$tmp/$(basename "$FETCH_STAMP")"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    log "fetched $(compgen -G "$LIBS/*.jar" | wc -l) jars into ${LIBS#"$ROOT"/}"
}

# Port accepts TCP connections.
tcp_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

python_bin() {
    if [[ -x "$ROOT/.venv/bin/python" ]]; then echo "$ROOT/.venv/bin/python"; else echo python3; fi
}

# A Kafka broker answers a metadata request (not just something listening on the port).
broker_answers() {
    tcp_open || return 1
    local py
    py=$(python_bin)
    if "$py" -c 'import kafka' >/dev/null 2>&1; then
        "$py" - "$BOOTSTRAP" >/dev/null 2>&1 <<'PY'
import sys

from kafka import KafkaAdminClient

admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], client_id="ur-kafka-sh",
                         request_timeout_ms=5000, bootstrap_timeout_ms=5000)
try:
    admin.list_topics()
finally:
    admin.close()
PY
    else
        # No kafka-python yet (venv not built): ask with Kafka's own admin client instead.
        timeout 30 java -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J" \
            org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1
    fi
}

read_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid=$(tr -dc '0-9' <"$PIDFILE")
    [[ -n "$pid" ]] || return 1
    echo "$pid"
}

# The pid is alive and really is this checkout's broker (guards against pid reuse).
is_our_broker() {
    local pid=$1 cmdline
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$PROPS"* ]]
}

running_pid() {
    local pid
    pid=$(read_pid) || return 1
    is_our_broker "$pid" || return 1
    echo "$pid"
}

# The part of server.properties every single-node broker here shares: DATA, partitions, I/O threads.
single_node_properties() {
    local data=$1 partitions=$2 io_threads=$3
    cat <<PROPERTIES
log.dirs=$data
num.partitions=$partitions
auto.create.topics.enable=true
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=$partitions
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=$partitions
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=$io_threads
num.recovery.threads.per.data.dir=1
PROPERTIES
}

write_config() {
    mkdir -p "$DATA"
    cat >"$PROPS" <<EOF
# Written by deploy/kafka/kafka.sh on every start; edit the script, not this file.
# Single node, KRaft: this process is both the broker and the (only) controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
$(single_node_properties "$DATA" 6 4)
log.retention.hours=24
log.segment.bytes=104857600
EOF
    cat >"$LOG4J" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by deploy/kafka/kafka.sh. WARN everywhere, INFO for the broker lifecycle. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="file" fileName="$LOG" filePattern="$LOG.%i">
      <PatternLayout pattern="[%d{ISO8601}] %-5p %m (%c{1})%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Logger name="kafka.server.BrokerServer" level="INFO"/>
    <Logger name="kafka.server.ControllerServer" level="INFO"/>
    <Logger name="kafka.Kafka" level="INFO"/>
    <Root level="WARN"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
EOF
}

format_storage() {
    if [[ -f "$DATA/meta.properties" ]]; then
        log "storage already formatted (${DATA#"$ROOT"/})"
        return 0
    fi
    local cluster_id
    if [[ -s "$CLUSTER_ID_FILE" ]]; then
        cluster_id=$(cat "$CLUSTER_ID_FILE")
    else
        cluster_id=$(java -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J" kafka.tools.StorageTool random-uuid)
        echo "$cluster_id" >"$CLUSTER_ID_FILE"
    fi
    log "formatting KRaft storage (cluster id $cluster_id) ..."
    # --standalone: this node alone is the initial controller quorum (matches
    # controller.quorum.bootstrap.servers; a dynamic quorum, KIP-853).
    if ! java -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J" kafka.tools.StorageTool \
            format --standalone --ignore-formatted -t "$cluster_id" -c "$PROPS" >"$CACHE/format.out" 2>&1; then
        cat "$CACHE/format.out" >&2
        die "formatting the Kafka storage failed"
    fi
}

fail_start() {
    local msg=$1
    printf '[kafka %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$msg" >&2
    if [[ -s "$LOG" ]]; then
        # Stack traces would push the cause out of a plain tail: errors and causes first.
        echo "---- errors in ${LOG#"$ROOT"/} ----" >&2
        grep -E '^\[[^]]*\] (ERROR|FATAL)|^Caused by:' "$LOG" | tail -n 12 >&2 || true
        echo "---- last lines of ${LOG#"$ROOT"/} ----" >&2
        tail -n 25 "$LOG" >&2
    fi
    if [[ -s "$OUT" ]]; then
        echo "---- last lines of ${OUT#"$ROOT"/} ----" >&2
        tail -n 20 "$OUT" >&2
    fi
    exit 1
}

wait_ready() {
    local pid=$1 deadline=$((SECONDS + READY_TIMEOUT_S)) next_note=$((SECONDS + 10))
    log "waiting for the broker on $BOOTSTRAP (up to ${READY_TIMEOUT_S}s) ..."
    until broker_answers; do
        # Not kill -0: a broker that died is our zombie child until this script exits.
        if ! is_our_broker "$pid"; then
            rm -f "$PIDFILE"
            fail_start "the Kafka broker (pid $pid) exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            fail_start "the Kafka broker (pid $pid) did not answer on $BOOTSTRAP within ${READY_TIMEOUT_S}s (still running; 'deploy/kafka/kafka.sh stop' stops it)"
        fi
        if ((SECONDS >= next_note)); then
            log "... still starting ($((SECONDS - deadline + READY_TIMEOUT_S))s)"
            next_note=$((SECONDS + 10))
        fi
        sleep 1
    done
    log "Kafka broker ready on $BOOTSTRAP"
}

cmd_start() {
    if external; then
        log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: using that external cluster, not starting a local broker"
        return 0
    fi
    take_lock
    cmd_fetch
    local pid
    if pid=$(running_pid); then
        # Ours, maybe still starting (a concurrent start, or a previous timeout).
        log "broker already running (pid $pid)"
        wait_ready "$pid"
        return 0
    fi
    if broker_answers; then
        log "a Kafka broker already answers on $BOOTSTRAP (not started by this script); using it"
        log "Kafka broker ready on $BOOTSTRAP"
        return 0
    fi
    if tcp_open; then
        die "something that is not a Kafka broker listens on $BOOTSTRAP; stop it or set KAFKA_BOOTSTRAP_SERVERS"
    fi
    rm -f "$PIDFILE"
    write_config
    format_storage
    log "starting the Kafka broker (log: ${LOG#"$ROOT"/}) ..."
    : >"$OUT"
    # setsid: the broker outlives this script and the terminal's Ctrl-C of `make`.
    # The inner shell writes its own pid and execs java, so the pid file names the JVM.
    # 9>&-: the broker must not inherit (and so hold forever) the lock taken by take_lock.
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
        java -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J" -Dkafka.logs.dir="$CACHE" \
        -cp "$LIBS/*" kafka.Kafka "$PROPS" \
        </dev/null >>"$OUT" 2>&1 9>&- &
    local waited=0
    until pid=$(read_pid); do
        ((waited++ < 50)) || fail_start "the broker process did not write its pid file"
        sleep 0.1
    done
    log "broker pid $pid"
    wait_ready "$pid"
}

# SIGTERM, then SIGKILL if the broker is still there after STOP_TIMEOUT_S.
terminate() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT_S))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "still running after ${STOP_TIMEOUT_S}s, sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.5
    done
}

cmd_stop() {
    if external; then
        log "KAFKA_BOOTSTRAP_SERVERS is set: the external cluster is not ours to stop"
        return 0
    fi
    take_lock
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PIDFILE"
        if tcp_open; then
            log "not stopping: something answers on $BOOTSTRAP but this script did not start it"
        else
            log "not running"
        fi
        return 0
    fi
    log "stopping the Kafka broker (pid $pid) ..."
    terminate "$pid"
    rm -f "$PIDFILE"
    log "stopped"
}

cmd_status() {
    if external; then
        log "external cluster KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS (no local broker managed)"
        return 0
    fi
    local pid
    if pid=$(running_pid); then
        if broker_answers; then
            log "running (pid $pid), answering on $BOOTSTRAP"
        else
            log "running (pid $pid), not answering on $BOOTSTRAP yet"
        fi
        return 0
    fi
    if broker_answers; then
        log "a broker answers on $BOOTSTRAP, but not one this script started"
        return 0
    fi
    log "not running"
    return 3
}

# ---------------------------------------------------------------- a throw-away broker over TLS

# openssl: a CA, and certificates it signs for 127.0.0.1/localhost; keytool: the broker's truststore.
make_certificates() {
    local dir=$1 storepass=$2 name
    openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=ur throw-away test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    for name in broker client; do
        openssl req -newkey rsa:2048 -nodes -subj "/CN=ur-$name" -keyout "$dir/$name.key" \
            -out "$dir/$name.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
            >"$dir/$name.ext"
        openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
            -days 3 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
    done
    openssl pkcs12 -export -in "$dir/broker.pem" -inkey "$dir/broker.key" -certfile "$dir/ca.pem" \
        -name broker -out "$dir/broker.p12" -passout "pass:$storepass"
    keytool -importcert -noprompt -alias ca -file "$dir/ca.pem" -keystore "$dir/truststore.p12" \
        -storetype PKCS12 -storepass "$storepass" >/dev/null 2>&1
}

# The secure broker answers over SASL_SSL, with the client settings it wrote.
secure_answers() {
    local env_file=$1
    "$(python_bin)" - "$env_file" >/dev/null 2>&1 <<'PY'
import sys
from pathlib import Path

from kafka import KafkaAdminClient

env = dict(line.split("=", 1) for line in Path(sys.argv[1]).read_text().splitlines() if "=" in line)
admin = KafkaAdminClient(
    bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], client_id="ur-kafka-sh", request_timeout_ms=5000,
    security_protocol="SASL_SSL", ssl_cafile=env["UR_KAFKA_SSL_CAFILE"], sasl_mechanism=env["UR_KAFKA_SASL_MECHANISM"],
    sasl_plain_username=env["UR_KAFKA_SASL_USERNAME"],
    sasl_plain_password=Path(env["UR_KAFKA_SASL_PASSWORD_FILE"]).read_text().strip())
try:
    admin.list_topics()
finally:
    admin.close()
PY
}

# The pid of the broker running from DIR (guards against pid reuse), or fail.
secure_pid() {
    local dir=$1 pid cmdline
    [[ -f "$dir/broker.pid" ]] || return 1
    pid=$(tr -dc '0-9' <"$dir/broker.pid")
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$dir/server.properties"* ]] || return 1
    echo "$pid"
}

write_secure_config() {
    local dir=$1 sasl_port=$2 ssl_port=$3 controller_port=$4 storepass=$5 admin_password=$6
    cat >"$dir/server.properties" <<PROPERTIES
# Written by deploy/kafka/kafka.sh secure-start: a throw-away broker for tests of Kafka over TLS.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$controller_port
listeners=SASL_SSL://$HOST:$sasl_port,SSL://$HOST:$ssl_port,CONTROLLER://$HOST:$controller_port
advertised.listeners=SASL_SSL://$HOST:$sasl_port,SSL://$HOST:$ssl_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_password";
listener.name.ssl.ssl.client.auth=required
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/broker.p12
ssl.keystore.password=$storepass
ssl.key.password=$storepass
ssl.truststore.type=PKCS12
ssl.truststore.location=$dir/truststore.p12
ssl.truststore.password=$storepass
$(single_node_properties "$dir/data" 3 2)
PROPERTIES
    cat >"$dir/log4j2.xml" <<LOG4J
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="$dir/broker.log"><PatternLayout pattern="[%d{ISO8601}] %-5p %m (%c{1})%n"/></File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Root level="WARN"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
LOG4J
    cat >"$dir/sasl_ssl.env" <<SETTINGS
KAFKA_BOOTSTRAP_SERVERS=$HOST:$sasl_port
UR_KAFKA_SECURITY_PROTOCOL=SASL_SSL
UR_KAFKA_SSL_CAFILE=$dir/ca.pem
UR_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
UR_KAFKA_SASL_USERNAME=ur
UR_KAFKA_SASL_PASSWORD_FILE=$dir/ur.password
SETTINGS
    cat >"$dir/ssl.env" <<SETTINGS
KAFKA_BOOTSTRAP_SERVERS=$HOST:$ssl_port
UR_KAFKA_SECURITY_PROTOCOL=SSL
UR_KAFKA_SSL_CAFILE=$dir/ca.pem
UR_KAFKA_SSL_CERTFILE=$dir/client.pem
UR_KAFKA_SSL_KEYFILE=$dir/client.key
SETTINGS
}

cmd_secure_start() {
    local dir=${1:-} sasl_port=${2:-} ssl_port=${3:-} controller_port=${4:-}
    [[ -n "$dir" && "$sasl_port" =~ ^[0-9]+$ && "$ssl_port" =~ ^[0-9]+$ && "$controller_port" =~ ^[0-9]+$ ]] \
        || { echo "usage: $0 secure-start DIR SASL_PORT SSL_PORT CONTROLLER_PORT" >&2; exit 2; }
    command -v openssl >/dev/null 2>&1 || die "openssl not found (apt-get install openssl)"
    command -v keytool >/dev/null 2>&1 || die "keytool not found (it comes with the Java runtime)"
    (take_lock && cmd_fetch)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 700 "$dir"
    if secure_pid "$dir" >/dev/null; then
        die "a broker already runs from $dir; deploy/kafka/kafka.sh secure-stop $dir first"
    fi
    local storepass admin_password user_password cluster_id
    storepass=$(openssl rand -hex 16)
    admin_password=$(openssl rand -hex 16)
    user_password=$(openssl rand -hex 16)
    make_certificates "$dir" "$storepass"
    printf '%s\n' "$user_password" >"$dir/ur.password"
    chmod 600 "$dir"/*.key "$dir/ur.password"
    write_secure_config "$dir" "$sasl_port" "$ssl_port" "$controller_port" "$storepass" "$admin_password"
    cluster_id=$(java -cp "$LIBS/*" -Dlog4j2.configurationFile="$dir/log4j2.xml" kafka.tools.StorageTool random-uuid)
    log "formatting a throw-away KRaft storage in $dir with SCRAM users admin and ur ..."
    if ! java -cp "$LIBS/*" -Dlog4j2.configurationFile="$dir/log4j2.xml" kafka.tools.StorageTool \
            format --standalone -t "$cluster_id" -c "$dir/server.properties" \
            --add-scram "SCRAM-SHA-512=[name=admin,password=$admin_password]" \
            --add-scram "SCRAM-SHA-512=[name=ur,password=$user_password]" >"$dir/format.out" 2>&1; then
        cat "$dir/format.out" >&2
        die "formatting the secure broker's storage failed"
    fi
    log "starting a broker with SASL_SSL on $HOST:$sasl_port and SSL on $HOST:$ssl_port (log: $dir/broker.log) ..."
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$dir/broker.pid" \
        java -Xms128m -Xmx384m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$dir/log4j2.xml" -Dkafka.logs.dir="$dir" \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" </dev/null >>"$dir/broker.out" 2>&1 9>&- &
    local deadline=$((SECONDS + READY_TIMEOUT_S)) pid="" waited=0
    until [[ -s "$dir/broker.pid" ]]; do
        ((waited++ < 50)) || die "the secure broker did not write its pid file"
        sleep 0.1
    done
    until secure_answers "$dir/sasl_ssl.env"; do
        if ! pid=$(secure_pid "$dir"); then
            tail -n 30 "$dir/broker.out" "$dir/broker.log" >&2 2>/dev/null || true
            die "the secure broker exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$dir/broker.log" >&2 2>/dev/null || true
            die "the secure broker (pid $pid) did not answer over SASL_SSL within ${READY_TIMEOUT_S}s"
        fi
        sleep 1
    done
    log "secure broker ready: SASL_SSL $HOST:$sasl_port, SSL $HOST:$ssl_port (client settings in $dir/*.env)"
}

cmd_secure_stop() {
    local dir=${1:-} pid
    [[ -n "$dir" ]] || { echo "usage: $0 secure-stop DIR" >&2; exit 2; }
    dir=$(cd "$dir" 2>/dev/null && pwd) || { log "no directory $1: nothing to stop"; return 0; }
    if ! pid=$(secure_pid "$dir"); then
        log "no secure broker runs from $dir"
        return 0
    fi
    log "stopping the secure broker (pid $pid) ..."
    terminate "$pid"
    rm -f "$dir/broker.pid"
    log "stopped"
}

case "${1:-}" in
    fetch) take_lock; cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    secure-start) shift; cmd_secure_start "$@" ;;
    secure-stop) shift; cmd_secure_stop "$@" ;;
    *)
        echo "usage: $0 {fetch|start|stop|status|secure-start DIR SASL_PORT SSL_PORT CONTROLLER_PORT|secure-stop DIR}" >&2
        exit 2
        ;;
esac
