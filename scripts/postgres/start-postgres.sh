#!/bin/bash
# start-postgres.sh DIR [PORT] -- a PostgreSQL server (Debian's package) on 127.0.0.1:PORT (default 5433), data in
# DIR/data. Reuses an existing cluster in DIR (data persists). Creates the role `edgeops` with the password in
# $PGPASSWORD (else a random one, kept in DIR/password, mode 600) and the databases in $DBS (default
# "mlflow prefect edgeops"). Prints DATABASE_URL=postgresql://edgeops:…@127.0.0.1:PORT (no database) on its last line.
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user the package creates.
#   apt-get install -y --no-install-recommends postgresql
set -euo pipefail
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -x "$BIN/initdb" ] || { echo "PostgreSQL not found: apt-get install -y --no-install-recommends postgresql" >&2; exit 1; }
DIR=$(realpath -m "${1:?usage: start-postgres.sh DIR [PORT]}"); PORT=${2:-5433}; DBS=${DBS:-mlflow prefect edgeops}
mkdir -p "$DIR"
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -s "$DIR/password" ]; then
  (umask 077; printf '%s' "${PGPASSWORD:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}" > "$DIR/password")
fi
PASSWORD=$(cat "$DIR/password")
if [ ! -e "$DIR/data/PG_VERSION" ]; then
  mkdir -p "$DIR/data" "$DIR/run"
  [ "$(id -u)" = 0 ] && chown postgres: "$DIR/data" "$DIR/run" && chmod 755 "$DIR"
  as_owner "$BIN/initdb" -D "$DIR/data" -U postgres -A trust --auth-host=scram-sha-256 -E UTF8 >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $PORT"
    echo "unix_socket_directories = '$DIR/run'"
    echo "max_connections = 200"
    echo "fsync = on"
  } >> "$DIR/data/postgresql.conf"
fi
if ! as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/data/server.log" -w -t 60 -o "-p $PORT" start >/dev/null \
    || { tail -20 "$DIR/data/server.log" >&2; exit 1; }
fi
PSQL=("$BIN/psql" -h "$DIR/run" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
as_owner "${PSQL[@]}" -d postgres -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'edgeops') THEN CREATE ROLE edgeops LOGIN; END IF; END \$\$;" >/dev/null
as_owner "${PSQL[@]}" -d postgres -c "ALTER ROLE edgeops PASSWORD '$PASSWORD'" >/dev/null
for db in $DBS; do
  if [ -z "$(as_owner "${PSQL[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    as_owner "${PSQL[@]}" -d postgres -c "CREATE DATABASE $db OWNER edgeops" >/dev/null
  fi
done
as_owner "$BIN/pg_ctl" -D "$DIR/data" status | sed -n 's/.*PID: \([0-9]*\).*/\1/p' > "$DIR/pid"
echo "DATABASE_URL=postgresql://edgeops:$PASSWORD@127.0.0.1:$PORT"
