#!/bin/bash
# up.sh -- team mode on this machine (`make up`): PostgreSQL, S3 (Ceph radosgw on loopback), an MLflow tracking
# server, a Prefect server, the work pool `edgeops` and its process workers. Data under .team/ (kept by down.sh).
# Idempotent: starts only what is not running, then health-checks everything, writes .team/env and prints the
# seconds from start to all healthy (also in .team/up.json). A server that fails to start: one line naming it and
# its log, what this run started is stopped again, exit 1.
#   WORKERS=1  number of workers (one training each)    TEAM_S3=1  0 = folders for MLflow artifacts and the DVC remote
#   PG_PORT=5433  S3_PORT=7480 (mon: S3_PORT+1)  MLFLOW_PORT=5000  PREFECT_PORT=4200
#   TEAM_DIR=.team  data, logs, pids (another folder, e.g. the tests': the project's .dvc/config.local is not touched)
set -euo pipefail
T0=$(date +%s.%N)
ROOT=$(cd "$(dirname "$0")/../.." && pwd); cd "$ROOT"
TEAM=${TEAM_DIR:-$ROOT/.team}; PIDS=$TEAM/pids; LOGS=$TEAM/logs; BIN=$ROOT/.venv/bin
PG_PORT=${PG_PORT:-5433}; S3_PORT=${S3_PORT:-7480}; MLFLOW_PORT=${MLFLOW_PORT:-5000}; PREFECT_PORT=${PREFECT_PORT:-4200}
WORKERS=${WORKERS:-1}; TEAM_S3=${TEAM_S3:-1}; HOST=$(hostname -s); SHOW=${TEAM#"$ROOT"/}   # .team, for messages
MLFLOW_URL=http://127.0.0.1:$MLFLOW_PORT; PREFECT_API=http://127.0.0.1:$PREFECT_PORT/api
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
export PATH=$BIN:$PATH PREFECT_HOME=$TEAM/prefect
umask 077                                        # passwords and keys live in here
mkdir -p "$PIDS" "$LOGS" "$PREFECT_HOME" "$TEAM/workspaces"
chmod 711 "$TEAM"                                # the postgres user must reach .team/postgres

STARTED=()   # what this run started: stopped again when a later step fails
fail() {
  echo "make up: $1" >&2
  [ ${#STARTED[@]} = 0 ] || "$ROOT/scripts/team/down.sh" "${STARTED[@]}" >/dev/null 2>&1 || true
  exit 1
}
# alive NAME: the process group in pids/NAME still has a process of ours (a PID is not reused while its group lives)
alive() { local p; p=$(cat "$PIDS/$1" 2>/dev/null) && pgrep -g "$p" -f "$BIN" >/dev/null; }
# launch NAME CMD...: CMD in its own session/process group (PID = PGID), output to logs/NAME.log
launch() {
  local name=$1; shift
  echo "--- $(date -Is) up.sh starts $name" >> "$LOGS/$name.log"     # not the command: it holds passwords
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name"; STARTED+=("$name")
}
# wait_http NAME URL TEXT: until URL answers with TEXT; fail if NAME's process exits or after 120 s
wait_http() {
  local i
  for i in $(seq 1 600); do
    curl -fsS -m 2 "$2" 2>/dev/null | grep -q "$3" && return 0
    alive "$1" || fail "$1 failed to start (exited): see $LOGS/$1.log"
    sleep 0.2
  done
  fail "$1 not healthy after 120 s: see $LOGS/$1.log"
}

# 1. PostgreSQL (start-postgres.sh reuses a running server and prints the URL again)
pg_alive() { local p; p=$(head -1 "$TEAM/postgres/data/postmaster.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }
pg_alive || STARTED+=(postgres)
out=$(DBS="mlflow prefect edgeops" "$ROOT/scripts/postgres/start-postgres.sh" "$TEAM/postgres" "$PG_PORT" 2>> "$LOGS/postgres.log") \
  || fail "PostgreSQL failed to start: see $LOGS/postgres.log and $TEAM/postgres/data/server.log"
DB=$(sed -n 's/^DATABASE_URL=//p' <<< "$out" | tail -1)            # postgresql://edgeops:PW@127.0.0.1:PORT
PG_PASSWORD=$(cat "$TEAM/postgres/password")

# 2. S3: radosgw with keys made once for this .team/, or folders (TEAM_S3=0)
if [ "$TEAM_S3" = 1 ]; then
  [ -s "$TEAM/s3.keys" ] || printf 'ACCESS_KEY=%s\nSECRET_KEY=%s\n' "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" > "$TEAM/s3.keys"
  source "$TEAM/s3.keys"
  n=0; for p in $(cat "$TEAM/s3/pids" 2>/dev/null); do kill -0 "$p" 2>/dev/null && n=$((n+1)); done
  [ $n = 3 ] || STARTED+=(s3)
  out=$(ACCESS_KEY=$ACCESS_KEY SECRET_KEY=$SECRET_KEY "$ROOT/scripts/rgw/start-rgw.sh" "$TEAM/s3" "$S3_PORT" 2>> "$LOGS/s3.log") \
    || fail "S3 (radosgw) failed to start: see $LOGS/s3.log and $TEAM/s3/log/"
  S3_ENDPOINT=$(sed -n 's/^ENDPOINT=\([^ ]*\) .*/\1/p' <<< "$out" | tail -1)
  export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_DEFAULT_REGION=us-east-1
  ARTIFACTS=s3://edgeops/mlflow; DVC_REMOTE=s3://edgeops/dvc
else
  S3_ENDPOINT=; ARTIFACTS=$TEAM/artifacts; DVC_REMOTE=$TEAM/dvc-remote; mkdir -p "$ARTIFACTS" "$DVC_REMOTE"
fi
s3_check() {  # creates the bucket if missing, then lists the buckets
  AWS_ENDPOINT_URL_S3=$S3_ENDPOINT "$BIN/python" -c 'import boto3
s3 = boto3.client("s3")
try:
    s3.create_bucket(Bucket="edgeops")
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
assert "edgeops" in [b["Name"] for b in s3.list_buckets()["Buckets"]]' >> "$LOGS/s3.log" 2>&1
}
[ "$TEAM_S3" = 1 ] && { s3_check || fail "S3 (radosgw) not answering at $S3_ENDPOINT: see $LOGS/s3.log and $TEAM/s3/log/"; }

# 3. + 4. MLflow and Prefect servers, started together (both create their tables on the first start)
if ! alive mlflow; then
  # the store URL (with its password) and the S3 credentials go through the environment, not the command line;
  # no job execution: MLflow's GenAI job runner (7 huey processes, ~2 GB RSS) serves nothing this pipeline uses
  launch mlflow env ${S3_ENDPOINT:+MLFLOW_S3_ENDPOINT_URL=$S3_ENDPOINT} MLFLOW_BACKEND_STORE_URI="$DB/mlflow" \
    MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    "$BIN/mlflow" server --artifacts-destination "$ARTIFACTS" --serve-artifacts \
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1
fi
if ! alive prefect; then
  launch prefect env -u PREFECT_API_URL PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://${DB#postgresql://}/prefect" \
    PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_ENABLED=true \
    PREFECT_UI_API_URL="$PREFECT_API" PREFECT_UI_URL="http://127.0.0.1:$PREFECT_PORT" \
    "$BIN/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT" --ui --analytics-off
fi
wait_http mlflow "$MLFLOW_URL/health" OK
wait_http prefect "$PREFECT_API/health" true

# 5.-7. the settings users and workers share: .team/env (mode 600), the project's DVC remote in .dvc/config.local
{
  echo "# team mode (scripts/team/up.sh): source $SHOW/env"
  echo "export MLFLOW_TRACKING_URI=$MLFLOW_URL"
  echo "export PREFECT_API_URL=$PREFECT_API"
  echo "export EDGEOPS_LOCK_URL=$DB/edgeops"
  echo "export EDGEOPS_WORKSPACES=$TEAM/workspaces"
  echo "export EDGEOPS_DVC_REMOTE=$DVC_REMOTE"
  # flow runs report every 30 s; `edgeops deploy`'s automation marks one Crashed after 90 s of silence
  echo "export PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30"
  if [ "$TEAM_S3" = 1 ]; then
    echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY"
    echo "export AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
    echo "export AWS_DEFAULT_REGION=us-east-1"
    echo "export AWS_ENDPOINT_URL_S3=$S3_ENDPOINT"
    echo "export MLFLOW_S3_ENDPOINT_URL=$S3_ENDPOINT"
  fi
} > "$TEAM/env.tmp"
chmod 600 "$TEAM/env.tmp"; mv "$TEAM/env.tmp" "$TEAM/env"
if [ "$TEAM" = "$ROOT/.team" ]; then   # another TEAM_DIR (the tests') leaves the project's DVC remote alone
  {
    dvc remote add --local --default --force team "$DVC_REMOTE"
    if [ "$TEAM_S3" = 1 ]; then dvc remote modify --local team endpointurl "$S3_ENDPOINT"; fi
  } >> "$LOGS/dvc.log" 2>&1 || fail "dvc remote setup failed: see $LOGS/dvc.log"
fi

export PREFECT_API_URL=$PREFECT_API
curl -fsS -m 5 -o /dev/null "$PREFECT_API/work_pools/edgeops" 2>/dev/null \
  || prefect work-pool create edgeops --type process >> "$LOGS/work-pool.log" 2>&1 \
  || fail "work pool edgeops could not be created: see $LOGS/work-pool.log"
for f in "$PIDS"/worker-*; do                    # workers beyond WORKERS (from an earlier WORKERS=…) stop
  [ -e "$f" ] && [ "${f##*-}" -gt "$WORKERS" ] && "$ROOT/scripts/team/down.sh" "${f##*/}"
done
# this machine's workers share its cores: each trains with its share of torch threads (OMP_NUM_THREADS), as
# two trainings that each use every core slowed each other down up to 20x (OpenMP threads contending)
THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / WORKERS ))}; [ "$THREADS" -ge 1 ] || THREADS=1
for i in $(seq 1 "$WORKERS"); do
  alive "worker-$i" && continue
  mkdir -p "$TEAM/workers/$HOST-$i"
  # the team env (EDGEOPS_WORKSPACES: one workspace per flow run, shared by this machine's workers, so a
  # retried run finds its workspace whichever worker takes it); its own working directory, never the submitter's
  launch "worker-$i" bash -c 'source "$1"; cd "$2"; export OMP_NUM_THREADS=$5
    exec "$3/prefect" worker start --pool edgeops --name "$4" --limit 1' \
    worker "$TEAM/env" "$TEAM/workers/$HOST-$i" "$BIN" "$HOST-$i" "$THREADS"
done

# health of every server; workers must show ONLINE in the pool
PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U edgeops -d edgeops -tAc 'SELECT 1' 2>> "$LOGS/postgres.log" \
  | grep -qx 1 && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" \
  || fail "PostgreSQL not answering on 127.0.0.1:$PG_PORT: see $TEAM/postgres/data/server.log"
[ "$TEAM_S3" = 1 ] && { s3_check || fail "S3 (radosgw) not answering at $S3_ENDPOINT: see $LOGS/s3.log and $TEAM/s3/log/"; }
wait_http mlflow "$MLFLOW_URL/health" OK
wait_http prefect "$PREFECT_API/health" true
online() {  # NAME SINCE: NAME is ONLINE in the pool with a heartbeat after SINCE (epoch s; a restarted worker's
            # old heartbeat can still read ONLINE)
  curl -fsS -m 5 -X POST -H 'Content-Type: application/json' -d '{}' "$PREFECT_API/work_pools/edgeops/workers/filter" \
    | "$BIN/python" -c 'import datetime, json, sys
name, since = sys.argv[1], float(sys.argv[2])
ok = [w for w in json.load(sys.stdin) if w["name"] == name and w["status"] == "ONLINE"
      and datetime.datetime.fromisoformat(w["last_heartbeat_time"].replace("Z", "+00:00")).timestamp() > since]
sys.exit(0 if ok else 1)' "$1" "$2"
}
for i in $(seq 1 "$WORKERS"); do
  since=0; [[ " ${STARTED[*]} " == *" worker-$i "* ]] && since=$T0
  for t in $(seq 1 600); do
    online "$HOST-$i" "$since" 2>/dev/null && break
    alive "worker-$i" || fail "worker-$i failed to start (exited): see $LOGS/worker-$i.log"
    [ "$t" = 600 ] && fail "worker-$i not ONLINE in pool edgeops after 120 s: see $LOGS/worker-$i.log"
    sleep 0.2
  done
done

SECONDS_UP=$("$BIN/python" -c 'import json, sys, time
seconds = round(time.time() - float(sys.argv[1]), 1)
up = {"seconds": seconds, "started": sys.argv[2].split(), "workers": int(sys.argv[3]), "s3": sys.argv[4] == "1",
      "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
json.dump(up, open(sys.argv[5], "w")); print(seconds)' "$T0" "${STARTED[*]}" "$WORKERS" "$TEAM_S3" "$TEAM/up.json")
if [ ${#STARTED[@]} = 0 ]; then echo "team mode already up; health re-checked"; else echo "started: ${STARTED[*]}"; fi
echo "  MLflow UI:  $MLFLOW_URL"
echo "  Prefect UI: http://127.0.0.1:$PREFECT_PORT   (work pool edgeops: $WORKERS worker(s) ONLINE)"
echo "  S3:         ${S3_ENDPOINT:-off (TEAM_S3=0: folders)}   DVC remote: team -> $DVC_REMOTE"
echo "  PostgreSQL: 127.0.0.1:$PG_PORT (mlflow, prefect, edgeops)   logs: $SHOW/logs/"
echo "use it in your shell:  source $SHOW/env"
echo "all healthy in $SECONDS_UP s ($SHOW/up.json); \`make down\` stops it, the data stays in $SHOW/"
