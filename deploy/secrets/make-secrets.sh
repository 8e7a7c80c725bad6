#!/usr/bin/env bash
# The secrets a deployment mounts, made fresh with openssl (nothing here is a placeholder: every
# key, token and password is random, made on the machine that runs this, and never committed).
#
#   deploy/secrets/make-secrets.sh [DIR]      DIR defaults to deploy/secrets/generated (git-ignored)
#
# It writes, into DIR (mode 0700; an existing DIR with a ca.pem is left alone: remove it for new ones):
#
#   ca.pem, ca.key               the platform's CA (ca.key stays here: nothing mounts it)
#   <service>.pem, <service>.key for intake, review and authorization: each serves it over gRPC and
#                                presents it as its client certificate (mutual TLS); names
#                                <service>, ur-<service>, ur-<service>.<namespace>.svc(.cluster.local),
#                                ur-<service>-pods.<namespace>.svc(.cluster.local) (the headless
#                                Services), localhost and 127.0.0.1 (the probes)
#   operator.pem, operator.key   a client certificate for urctl on the host (principal "operator")
#   postgres.pem, postgres.key   compose's PostgreSQL server certificate (name "postgres")
#   postgres-password            compose's PostgreSQL password (the services read it from a file:
#                                UR_DATABASE_PASSWORD_FILE)
#   grafana-admin-password       compose's Grafana admin password
#   kafka.p12, kafka-server.properties, kafka-client.properties
#                                compose's Kafka broker: its keystore (a random password, written
#                                only into the two properties files), an SSL listener that requires
#                                client certificates signed by ca.pem
#   credentials.yaml             UR_CREDENTIALS_FILE: who may call the services, tokens as HMAC-SHA256
#                                digests with a random salt (services/common/credentials.py)
#   tokens/<principal>.token     the tokens themselves, one per principal, for the callers to send
#
# deploy/compose.yaml mounts these as compose secrets; deploy/secrets/k8s-secrets.sh makes the
# Kubernetes Secrets of deploy/k8s from them. The keys that containers read are mode 0644 because a
# compose secret is a bind mount of the file as it is here, read by the containers' own users
# (10001, postgres, kafka): DIR itself is 0700, so on this machine only its owner reaches them.
#
# UR_SECRETS_NAMESPACE (default ur) is the Kubernetes namespace named in the certificates;
# UR_SECRETS_DAYS (default 397) how long the certificates are valid.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${1:-$SCRIPT_DIR/generated}
NAMESPACE=${UR_SECRETS_NAMESPACE:-ur}
DAYS=${UR_SECRETS_DAYS:-397}
SERVICES=(intake review authorization)

log() { printf '[secrets] %s\n' "$*" >&2; }

if [[ -f "$DIR/ca.pem" ]]; then
    log "$DIR already holds secrets (ca.pem): left as they are; remove $DIR to make new ones"
    exit 0
fi
command -v openssl >/dev/null || { log "needs openssl"; exit 1; }

umask 077
mkdir -p "$DIR/tokens"
chmod 700 "$DIR" "$DIR/tokens"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

random_hex() { openssl rand -hex "$1"; }
# 256 random bits as URL-safe text (what `urctl credentials token` makes).
random_token() { openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n'; }

# A key (P-256) and a certificate signed by the CA: issue NAME COMMON_NAME EXTENDED_KEY_USAGE SAN...
issue() {
    local name=$1 cn=$2 usage=$3
    shift 3
    local san
    san=$(IFS=,; echo "$*")
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
        -keyout "$DIR/$name.key" -out "$WORK/$name.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'`
          `'extendedKeyUsage=%s\nsubjectAltName=%s\n' "$usage" "$san" >"$WORK/$name.ext"
    openssl x509 -req -in "$WORK/$name.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
        -CAserial "$WORK/ca.srl" -days "$DAYS" -sha256 -extfile "$WORK/$name.ext" -out "$DIR/$name.pem" 2>/dev/null
}

log "the CA"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$DAYS" -sha256 \
    -subj "/CN=ur-platform CA" -keyout "$DIR/ca.key" -out "$DIR/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

for service in "${SERVICES[@]}"; do
    log "$service's certificate"
    issue "$service" "ur-$service" serverAuth,clientAuth "DNS:$service" "DNS:ur-$service" \
        "DNS:ur-$service.$NAMESPACE.svc" "DNS:ur-$service.$NAMESPACE.svc.cluster.local" \
        "DNS:ur-$service-pods.$NAMESPACE.svc" "DNS:ur-$service-pods.$NAMESPACE.svc.cluster.local" \
        DNS:localhost IP:127.0.0.1
done
log "the operator's client certificate, PostgreSQL's and Kafka's"
issue operator ur-operator clientAuth "DNS:ur-operator"
issue postgres postgres serverAuth "DNS:postgres" "DNS:postgres.$NAMESPACE.svc.cluster.local" DNS:localhost
issue kafka kafka serverAuth,clientAuth "DNS:kafka" DNS:localhost

random_hex 24 >"$DIR/postgres-password"
random_hex 16 >"$DIR/grafana-admin-password"

# Kafka (Java) reads a PKCS#12 keystore; its password goes only into the properties files.
store_password=$(random_hex 24)
openssl pkcs12 -export -in "$DIR/kafka.pem" -inkey "$DIR/kafka.key" -certfile "$DIR/ca.pem" -name kafka \
    -out "$DIR/kafka.p12" -passout "pass:$store_password"
cat >"$DIR/kafka-server.properties" <<PROPERTIES
# Compose's Kafka broker (KRaft, one node): one SSL listener on the compose network that requires a
# client certificate signed by the platform's CA; the controller listens on the container's loopback.
# Made by deploy/secrets/make-secrets.sh (it holds the keystore's password).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=SSL://:9092,CONTROLLER://localhost:9093
advertised.listeners=SSL://kafka:9092
listener.security.protocol.map=SSL:SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SSL
ssl.client.auth=required
ssl.keystore.type=PKCS12
ssl.keystore.location=/run/secrets/kafka-keystore
ssl.keystore.password=$store_password
ssl.key.password=$store_password
ssl.truststore.type=PEM
ssl.truststore.location=/run/secrets/ur-ca
log.dirs=/var/lib/kafka/data
num.partitions=6
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPERTIES
cat >"$DIR/kafka-client.properties" <<PROPERTIES
# The broker's own client settings (compose's health check), with the broker's certificate.
security.protocol=SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=/run/secrets/kafka-keystore
ssl.keystore.password=$store_password
ssl.key.password=$store_password
ssl.truststore.type=PEM
ssl.truststore.location=/run/secrets/ur-ca
PROPERTIES

log "credentials.yaml and the tokens"
salt=$(random_hex 16)
digest_of() {
    local token
    token=$(random_token)
    printf '%s\n' "$token" >"$DIR/tokens/$1.token"
    printf '%s' "$token" | openssl dgst -sha256 -hmac "$salt" | awk '{print $NF}'
}
cat >"$DIR/credentials.yaml" <<CREDENTIALS
# Who may call the services (UR_CREDENTIALS_FILE; services/common/credentials.py). Made by
# deploy/secrets/make-secrets.sh: the tokens are in tokens/<principal>.token, only their HMAC-SHA256
# digests (keyed with the salt) are here. Add a caller: urctl credentials token --file credentials.yaml
salt: $salt
principals:
  - id: svc-review                # review asks authorization about overlapping authorizations
    scopes: [authorizations:read]
    certificates: [{common_name: ur-review}]
  - id: operator                  # urctl on the host: the queue, determinations, notices, authorizations
    scopes: [review:read, authorizations:read]
    certificates: [{common_name: ur-operator}]
    tokens: [{hmac_sha256: $(digest_of operator)}]
  - id: provider-portal           # a submitting organization: sees only its own requests
    scopes: [requests:submit, requests:read]
    tokens: [{hmac_sha256: $(digest_of provider-portal)}]
  - id: claims-system             # checks claim lines, draws the units of paid ones
    scopes: [authorizations:check, authorizations:consume]
    tokens: [{hmac_sha256: $(digest_of claims-system)}]
  - id: svc-workbench             # the workbench: reads requests and authorizations for reviewers
    scopes: [requests:read-all, authorizations:read]
    tokens: [{hmac_sha256: $(digest_of svc-workbench)}]
CREDENTIALS

# What the containers read (see the header); the CA's key and the tokens stay 0600.
chmod 644 "$DIR"/*.pem "$DIR"/{intake,review,authorization,postgres,kafka}.key "$DIR/postgres-password" \
    "$DIR/grafana-admin-password" "$DIR/kafka.p12" "$DIR"/kafka-*.properties "$DIR/credentials.yaml"
log "done: $DIR (tokens in $DIR/tokens)"
