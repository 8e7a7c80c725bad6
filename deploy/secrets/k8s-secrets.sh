#!/usr/bin/env bash
# The Kubernetes Secrets deploy/k8s mounts, from what deploy/secrets/make-secrets.sh made:
#
#   deploy/secrets/k8s-secrets.sh [--print] [DIR]       DIR defaults to deploy/secrets/generated
#
# applies (kubectl apply; --print: writes the manifests to stdout instead, nothing is sent):
#
#   ur-<service>-tls       tls.crt, tls.key, ca.crt: the service's certificate (gRPC, mutual TLS)
#   ur-credentials         credentials.yaml: who may call the services (UR_CREDENTIALS_FILE); apply
#                          it again after a change and the pods read it without a restart
#   ur-<service>-database  password, ca.crt: the service's PostgreSQL role's password (role
#                          ur_<service>) and the CA of the server's certificate (sslmode=verify-full)
#   ur-kafka               password, ca.crt: the SCRAM-SHA-512 user "ur" the services log in as
#                          (SASL_SSL) and the CA of the brokers' certificates
#
# The database and Kafka secrets come from the cluster's own PostgreSQL and Kafka, which this
# repository does not run in Kubernetes: pass their CA bundles and the passwords set there,
#
#   UR_DATABASE_CA=FILE  UR_KAFKA_CA=FILE  UR_KAFKA_PASSWORD_FILE=FILE
#   UR_<SERVICE>_DATABASE_PASSWORD_FILE=FILE (for intake, review, authorization)
#
# or let this script make the passwords (DIR/database/<service>.password, DIR/kafka-scram.password)
# and set them there: `ALTER ROLE ur_intake PASSWORD '...'` in PostgreSQL, and
# `kafka-configs.sh --alter --add-config 'SCRAM-SHA-512=[password=...]' --entity-type users
# --entity-name ur` (or a Strimzi KafkaUser) in Kafka. The CAs default to DIR/ca.pem.
# UR_SECRETS_NAMESPACE (default ur) is the namespace.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PRINT=0
if [[ ${1-} == --print ]]; then
    PRINT=1
    shift
fi
DIR=${1:-$SCRIPT_DIR/generated}
NAMESPACE=${UR_SECRETS_NAMESPACE:-ur}
SERVICES=(intake review authorization)

log() { printf '[k8s-secrets] %s\n' "$*" >&2; }

[[ -f "$DIR/ca.pem" ]] || { log "no secrets in $DIR: run deploy/secrets/make-secrets.sh $DIR first"; exit 1; }
umask 077

# A password file: the one named by the variable, else one made once in DIR.
password_file() {
    local variable=$1 made=$2
    if [[ -n ${!variable-} ]]; then
        echo "${!variable}"
        return
    fi
    if [[ ! -f "$made" ]]; then
        mkdir -p "$(dirname "$made")"
        openssl rand -hex 24 >"$made"
        log "made $made: set it as that password in the cluster's PostgreSQL or Kafka"
    fi
    echo "$made"
}

secret() {  # secret NAME --from-file=KEY=PATH...
    local name=$1
    shift
    local manifest
    manifest=$(kubectl create secret generic "$name" --namespace "$NAMESPACE" --dry-run=client -o yaml "$@")
    manifest=$(printf '%s\n' "$manifest" | sed '/^metadata:/a\  labels:\n    app.kubernetes.io/part-of: ur-platform')
    if [[ $PRINT == 1 ]]; then
        printf -- '---\n%s\n' "$manifest"
    else
        printf '%s\n' "$manifest" | kubectl apply -f -
    fi
}

for service in "${SERVICES[@]}"; do
    secret "ur-$service-tls" --from-file=tls.crt="$DIR/$service.pem" --from-file=tls.key="$DIR/$service.key" \
        --from-file=ca.crt="$DIR/ca.pem"
done
secret ur-credentials --from-file=credentials.yaml="$DIR/credentials.yaml"
for service in "${SERVICES[@]}"; do
    upper=$(echo "$service" | tr '[:lower:]' '[:upper:]')
    secret "ur-$service-database" \
        --from-file=password="$(password_file "UR_${upper}_DATABASE_PASSWORD_FILE" "$DIR/database/$service.password")" \
        --from-file=ca.crt="${UR_DATABASE_CA:-$DIR/ca.pem}"
done
secret ur-kafka --from-file=password="$(password_file UR_KAFKA_PASSWORD_FILE "$DIR/kafka-scram.password")" \
    --from-file=ca.crt="${UR_KAFKA_CA:-$DIR/ca.pem}"
