#!/usr/bin/env bash
# A project-local PostgreSQL cluster for `make test` / `make bench`.
#
#   deploy/postgres/pg.sh start         start it (initdb on first use), create role + databases, wait until ready
#   deploy/postgres/pg.sh stop          stop it
#   deploy/postgres/pg.sh status        say whether it runs (exit 0 running, 3 not running)
#   deploy/postgres/pg.sh url DBNAME    print the SQLAlchemy URL of database DBNAME
#
# External server: when UR_PG_ADMIN_URL is set (postgresql://user:pw@host:5432/postgres), nothing
# local is managed: `start` only checks that it answers, `stop` does nothing, and `url DBNAME`
# prints that URL with the database replaced (and the scheme made postgresql+psycopg://, the
# driver this project installs). Creating databases there is up to whoever owns that server.
#
# Local cluster: 127.0.0.1:55432 only, role `ur` / password `ur` (LOGIN CREATEDB SUPERUSER: it is a
# test cluster), databases ur_intake, ur_review, ur_authorization.
#   * Binaries: `pg_config --bindir` when it holds initdb, else the newest /usr/lib/postgresql/*/bin.
#   * Authentication: trust on the Unix socket (its directory is private to the cluster's owner),
#     scram-sha-256 over TCP, so 127.0.0.1 needs the `ur` password.
#   * Where: <repo>/.cache/postgres/{data,run,postgres.log}.
#     initdb and postgres refuse to run as root. As root the cluster therefore belongs to the
#     `postgres` OS user (Debian's postgresql package creates it; created here as a system user
#     when missing) and initdb/pg_ctl run through `runuser -u postgres --`. That user must be able
#     to traverse every directory down to .cache/postgres; a checkout under /root (mode 0700) is
#     not traversable. Rather than loosening permissions of directories that are not ours, the
#     cluster then lives in /tmp/ur-postgres-<uid> instead (same layout). The same fallback is
#     used when the socket path would exceed the ~107 byte limit of Unix socket paths. The choice
#     is re-derived on every call (same inputs, same answer), and `status` prints it.
#     Not root: the cluster simply belongs to the invoking user, under .cache/postgres.
#   * When a server this checkout did not start already answers on 127.0.0.1:55432 (another
#     checkout's cluster) and lets `ur`/`ur` in, `start` uses it (creating missing databases)
#     instead of failing; `stop` leaves it alone.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

HOST=127.0.0.1
PORT=55432
ROLE=ur
PASSWORD=ur
DATABASES=(ur_intake ur_review ur_authorization)
READY_TIMEOUT_S=60
PG_OS_USER=postgres

log() { printf '[postgres %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[postgres %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

external() { [[ -n "${UR_PG_ADMIN_URL:-}" ]]; }

# ---------------------------------------------------------------- URLs

# URL with the database (path) replaced, query string kept, scheme made postgresql+psycopg.
url_with_db() {
    local url=$1 db=$2 scheme rest authority query=""
    [[ "$url" == *://* ]] || die "not a URL: $url"
    scheme=${url%%://*}
    rest=${url#*://}
    if [[ "$rest" == *\?* ]]; then
        query="?${rest#*\?}"
        rest=${rest%%\?*}
    fi
    authority=${rest%%/*}
    case "$scheme" in
        postgres | postgresql | postgresql+psycopg) scheme=postgresql+psycopg ;;
        *) ;; # another explicit driver: keep it
    esac
    printf '%s://%s/%s%s\n' "$scheme" "$authority" "$db" "$query"
}

# libpq (psql) does not understand the +driver part of SQLAlchemy URLs.
libpq_url() { sed -E 's#^postgres(ql)?(\+[a-z0-9_]+)?://#postgresql://#' <<<"$1"; }

local_url() { printf 'postgresql+psycopg://%s:%s@%s:%s/%s\n' "$ROLE" "$PASSWORD" "$HOST" "$PORT" "$1"; }

cmd_url() {
    local db=${1:-}
    [[ -n "$db" ]] || { echo "usage: $0 url DBNAME" >&2; exit 2; }
    [[ "$db" =~ ^[A-Za-z0-9_.-]+$ ]] || die "unusual database name: $db"
    if external; then
        url_with_db "$UR_PG_ADMIN_URL" "$db"
    else
        local_url "$db"
    fi
}

# ---------------------------------------------------------------- binaries

find_bindir() {
    local dir=""
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir 2>/dev/null || true)
        # pg_config also comes with libpq-dev, without any server binaries.
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]] || dir=""
    fi
    if [[ -z "$dir" ]]; then
        local candidate
        while read -r candidate; do
            [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]] && dir=$candidate
        done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V)
    fi
    [[ -n "$dir" ]] || die "PostgreSQL server binaries not found: apt-get install postgresql"
    echo "$dir"
}

# ---------------------------------------------------------------- location and users

as_root() { [[ $EUID -eq 0 ]]; }

ensure_os_user() {
    as_root || return 0
    id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
    log "creating system user $PG_OS_USER (owner of the cluster; initdb/postgres refuse to run as root)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$PG_OS_USER" \
        || die "could not create the system user $PG_OS_USER"
}

# Runs a command as the cluster's owner.
as_owner() {
    if as_root; then
        runuser -u "$PG_OS_USER" -- "$@"
    else
        "$@"
    fi
}

SOCKET_SUFFIX="/run/.s.PGSQL.$PORT"

# Prints the cluster's base directory (see the header for why it may be under /tmp).
choose_base() {
    local preferred="$ROOT/.cache/postgres" fallback="/tmp/ur-postgres-$EUID"
    if ((${#preferred} + ${#SOCKET_SUFFIX} > 100)); then
        echo "$fallback"
        return
    fi
    if ! as_root; then
        echo "$preferred"
        return
    fi
    # Can the postgres user reach .cache? (.cache/postgres itself will be made its own.)
    if id -u "$PG_OS_USER" >/dev/null 2>&1 && mkdir -p "$ROOT/.cache" \
            && runuser -u "$PG_OS_USER" -- test -x "$ROOT/.cache" 2>/dev/null; then
        echo "$preferred"
    else
        echo "$fallback"
    fi
}

BASE=""
DATA=""
RUN=""
LOGFILE=""

set_paths() {
    BASE=$(choose_base)
    DATA="$BASE/data"
    RUN="$BASE/run"
    LOGFILE="$BASE/postgres.log"
}

prepare_dirs() {
    if [[ "$BASE" == /tmp/* && -e "$BASE" ]]; then
        # A shared directory: never adopt one somebody else planted.
        [[ ! -L "$BASE" ]] || die "$BASE is a symlink; remove it"
        local owner
        owner=$(stat -c %U "$BASE")
        [[ "$owner" == "$(as_root && echo "$PG_OS_USER" || id -un)" ]] || die "$BASE is owned by $owner; remove it"
    fi
    mkdir -p "$BASE" "$DATA" "$RUN"
    if as_root; then
        chown "$PG_OS_USER:" "$BASE" "$DATA" "$RUN"
    fi
    chmod 0700 "$DATA" "$RUN"
    chmod 0755 "$BASE"
    as_owner test -w "$DATA" || die "$PG_OS_USER cannot write to $DATA"
}

# Serialises concurrent start/stop (two `make` runs at once).
take_lock() {
    if command -v flock >/dev/null 2>&1; then
        exec 9>>"$BASE/.lock"
        flock 9
    fi
}

# ---------------------------------------------------------------- the cluster

ready() { "$BINDIR/pg_isready" -q -h "$HOST" -p "$PORT" -t 2 >/dev/null 2>&1; }

server_running() { [[ -f "$DATA/postmaster.pid" ]] && as_owner "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

# psql as the superuser over the cluster's private socket.
admin_psql() {
    as_owner "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$PORT" -U postgres -d postgres "$@"
}

init_cluster() {
    if [[ -f "$DATA/PG_VERSION" ]]; then
        local have want
        have=$(cat "$DATA/PG_VERSION")
        want=$("$BINDIR/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
        [[ "$have" == "$want" ]] \
            || die "$DATA was made by PostgreSQL $have but the binaries are $want; remove $DATA to start afresh"
        return 0
    fi
    log "initdb $DATA (PostgreSQL $("$BINDIR/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9][0-9.]*).*/\1/')) ..."
    local pwfile
    pwfile=$(mktemp)
    # The bootstrap superuser gets a random password; it is reached through the socket (trust).
    head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$pwfile"
    as_root && chown "$PG_OS_USER:" "$pwfile"
    if ! as_owner "$BINDIR/initdb" -D "$DATA" -U postgres --pwfile="$pwfile" --encoding=UTF8 --no-locale \
            --auth-local=trust --auth-host=scram-sha-256 >"$BASE/initdb.log" 2>&1; then
        rm -f "$pwfile"
        cat "$BASE/initdb.log" >&2
        die "initdb failed"
    fi
    rm -f "$pwfile"
    # Our settings live in their own file, rewritten on every start.
    echo "include_if_exists = 'ur-dev.conf'" >>"$DATA/postgresql.conf"
}

write_config() {
    as_owner tee "$DATA/ur-dev.conf" >/dev/null <<EOF
# Written by deploy/postgres/pg.sh on every start; edit the script, not this file.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$RUN'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 256MB
fsync = on
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

# psql as the `ur` role over TCP: for a cluster on our port that this checkout did not start
# (another checkout's, typically).
ur_psql() {
    PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=10 \
        "$BINDIR/psql" -w -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U "$ROLE" -d postgres "$@"
}

# Role and databases, idempotent. $1: admin_psql (our cluster) or ur_psql (a foreign one).
provision() {
    local psql_fn=$1
    "$psql_fn" <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB SUPERUSER PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN CREATEDB SUPERUSER PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
SQL
    local db
    for db in "${DATABASES[@]}"; do
        if [[ -z "$("$psql_fn" -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
            "$psql_fn" -c "CREATE DATABASE $db OWNER $ROLE" >/dev/null
            log "created database $db"
        fi
    done
}

fail_start() {
    printf '[postgres %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$1" >&2
    if [[ -s "$LOGFILE" ]]; then
        echo "---- last lines of $LOGFILE ----" >&2
        tail -n 30 "$LOGFILE" >&2
    fi
    exit 1
}

wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    until ready; do
        ((SECONDS < deadline)) || fail_start "PostgreSQL did not accept connections on $HOST:$PORT within ${READY_TIMEOUT_S}s"
        sleep 0.5
    done
}

cmd_start() {
    if external; then
        command -v psql >/dev/null 2>&1 || die "psql not found (apt-get install postgresql-client)"
        if PGCONNECT_TIMEOUT=10 psql "$(libpq_url "$UR_PG_ADMIN_URL")" -w -X -q -Atc 'SELECT 1' >/dev/null; then
            log "using the external server UR_PG_ADMIN_URL (answers); no local cluster managed"
            return 0
        fi
        die "the server of UR_PG_ADMIN_URL does not answer or refuses the credentials (see psql's message above)"
    fi
    BINDIR=$(find_bindir)
    ensure_os_user
    set_paths
    prepare_dirs
    take_lock
    if server_running; then
        log "already running (${DATA})"
    else
        if ready; then
            # Not our data directory, e.g. the cluster of another checkout of this project: use it
            # when the `ur` role gets in (the port is fixed, there can only be one).
            if ur_psql -Atc 'SELECT 1' >/dev/null 2>&1; then
                log "a PostgreSQL server not started from this checkout answers on $HOST:$PORT and accepts $ROLE; using it"
                provision ur_psql
                log "PostgreSQL ready on $HOST:$PORT"
                return 0
            fi
            die "something else already listens on $HOST:$PORT (not the cluster in $DATA, and role $ROLE cannot log in); stop it or set UR_PG_ADMIN_URL"
        fi
        init_cluster
        write_config
        log "starting PostgreSQL (data: $DATA, log: $LOGFILE) ..."
        # -w: wait until the server accepts connections; pg_isready below double-checks TCP.
        # 9>&-: the server must not inherit (and so hold forever) the lock taken by take_lock.
        if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t "$READY_TIMEOUT_S" start >/dev/null 9>&-; then
            fail_start "pg_ctl could not start PostgreSQL"
        fi
    fi
    wait_ready
    provision admin_psql
    log "PostgreSQL ready on $HOST:$PORT"
}

cmd_stop() {
    if external; then
        log "UR_PG_ADMIN_URL is set: the external server is not ours to stop"
        return 0
    fi
    BINDIR=$(find_bindir)
    set_paths
    [[ -d "$DATA" ]] || { log "not running (no cluster at $DATA)"; return 0; }
    take_lock
    if ! server_running; then
        log "not running"
        return 0
    fi
    log "stopping PostgreSQL ($DATA) ..."
    if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null; then
        log "fast shutdown did not finish in 30s, using immediate"
        as_owner "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null
    fi
    log "stopped"
}

cmd_status() {
    if external; then
        log "external server (UR_PG_ADMIN_URL); no local cluster managed"
        return 0
    fi
    BINDIR=$(find_bindir)
    set_paths
    if [[ -d "$DATA" ]] && server_running; then
        if ready; then
            log "running on $HOST:$PORT (data: $DATA)"
        else
            log "running (data: $DATA) but not accepting connections on $HOST:$PORT yet"
        fi
        return 0
    fi
    if ready; then
        log "something answers on $HOST:$PORT, but not the cluster in $DATA"
        return 0
    fi
    log "not running (data: $DATA)"
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) cmd_url "${2:-}" ;;
    *)
        echo "usage: $0 {start|stop|status|url DBNAME}" >&2
        exit 2
        ;;
esac
