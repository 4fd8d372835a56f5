#!/usr/bin/env bash
# Team mode on one machine: a throwaway PostgreSQL cluster (the catalog) and SeaweedFS (the S3
# object store) on free 127.0.0.1 ports, a `grid server` on both, a user and a team, then two
# client "machines" (two GRID_HOMEs, one login): the first creates datastores, the second reads
# and verifies them. Every command is printed before it runs; everything it starts or writes
# lives under one temporary folder and is stopped and deleted on exit, failure included.
# Idempotent: each run starts from nothing. Exits non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
PG_BIN=/usr/lib/postgresql/15/bin

if [ ! -x .venv/bin/grid ] || [ ! -x .venv/bin/weed ] || [ ! -x "$PG_BIN/initdb" ]; then
    bash scripts/install.sh
fi
export PATH="$repo/.venv/bin:$PATH"
py="$repo/.venv/bin/python"

work=$(mktemp -d "${TMPDIR:-/tmp}/grid-team-demo.XXXXXX")
server_pid="" weed_pid="" pg_started=""
as_postgres=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    echo
    echo "--- cleaning up (exit status $status)"
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    if [ -n "$weed_pid" ]; then kill "$weed_pid" 2>/dev/null || true; fi
    for pid in $server_pid $weed_pid; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$pg_started" ]; then
        "${as_postgres[@]}" "$PG_BIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    if [ "$status" != 0 ]; then echo "team demo FAILED (exit status $status)" >&2; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Show a command, then run it. `on A|B CMD...` runs CMD as client machine A or B (its GRID_HOME).
show() { printf '\n$'; printf ' %q' "$@"; printf '\n'; }
say() { printf '\n$ %s\n' "$*"; }  # show a command line as written (pipes, &, ...)
run() { show "$@"; "$@"; }
run_quietly() { show "$@"; "$@" >/dev/null; }  # show it, keep its chatter out
on() {
    local machine=$1
    shift
    printf '\n[machine %s] $' "$machine"
    printf ' %q' "$@"
    printf '\n'
    GRID_HOME="$work/machine-$machine" "$@"
}
free_port() {  # a free loopback port whose port + 10000 is free too (SeaweedFS gRPC)
    "$py" - <<'EOF'
import socket
for _ in range(100):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if port + 10000 > 65535:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free port")
EOF
}
wait_for() {  # wait_for WHAT LOG PID CMD...: until CMD succeeds; fail, showing LOG, if PID dies
    local what=$1 log=$2 pid=$3
    shift 3
    for _ in $(seq 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.2
    done
    echo "$what did not start; its log:" >&2
    tail -n 40 "$log" >&2 || true
    return 1
}

echo "=== working folder: $work"

echo
echo "=== 1. PostgreSQL (the catalog): a throwaway cluster on 127.0.0.1"
mkdir -p "$work/pg/run"
if [ "$(id -u)" = 0 ]; then  # initdb refuses root: the cluster runs as the postgres user
    chmod 755 "$work"
    chown postgres:postgres "$work/pg" "$work/pg/run"
    as_postgres=(runuser -u postgres --)
fi
pg_port=$(free_port)
run_quietly "${as_postgres[@]}" "$PG_BIN/initdb" -D "$work/pg/data" -A trust -U postgres
pg_started=1
run_quietly "${as_postgres[@]}" "$PG_BIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/postgres.log" \
    -w start -o "-h 127.0.0.1 -p $pg_port -k $work/pg/run -c fsync=off -c max_connections=200"
wait_for PostgreSQL "$work/pg/postgres.log" "" "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$pg_port"
run "$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres grid
database="postgresql+psycopg://postgres@127.0.0.1:$pg_port/grid"

echo
echo "=== 2. SeaweedFS (the S3 object store) on 127.0.0.1, and a bucket"
mkdir -p "$work/seaweedfs"
master=$(free_port) volume=$(free_port) filer=$(free_port) s3=$(free_port)
say "weed server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir=$work/seaweedfs -s3 -s3.port=$s3 ... &"
weed server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$work/seaweedfs" \
    -master.port="$master" -volume.port="$volume" -filer.port="$filer" -s3 -s3.port="$s3" \
    -s3.port.iceberg=0 -s3.port.lance=0 -volume.max=0 -master.volumeSizeLimitMB=64 \
    >"$work/weed.log" 2>&1 &
weed_pid=$!
# SeaweedFS without an identity config accepts any key; the server's AWS chain needs one.
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$s3"
make_bucket() {
    "$py" -c 'import boto3, sys; boto3.client("s3").create_bucket(Bucket=sys.argv[1])' "$1"
}
wait_for SeaweedFS "$work/weed.log" "$weed_pid" make_bucket grid-demo-ready
say "python -c 'boto3.client(\"s3\").create_bucket(Bucket=\"grid-demo\")'"
make_bucket grid-demo
storage="s3://grid-demo/grid"

echo
echo "=== 3. grid server on PostgreSQL + $storage"
grid_port=$(free_port)
grid_url="http://127.0.0.1:$grid_port"
say "grid server --database-url $database --storage-url $storage --port $grid_port &"
GRID_HOME="$work/server-home" grid server --database-url "$database" --storage-url "$storage" \
    --port "$grid_port" >"$work/server.log" 2>&1 &
server_pid=$!
wait_for "grid server" "$work/server.log" "$server_pid" \
    "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "$grid_url/v1/health"
# The clients reach the object store only through the server's presigned URLs.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL

echo
echo "=== 4. An operator makes a user and a team"
show grid admin user create alice --json --database-url "$database"
user_json=$(grid admin user create alice --json --database-url "$database")
api_key=$("$py" -c 'import json, sys; print(json.load(sys.stdin)["api_key"])' <<<"$user_json")
echo "{\"username\": \"alice\", \"api_key\": \"${api_key:0:12}...\"}"
run grid admin team create vision --database-url "$database"
run grid admin team add vision alice --database-url "$database"

echo
echo "=== 5. Machine A: log in, make a small folder, create datastores, list them"
export GRID_CONFIG_DIR="$work/config"  # the saved login (both machines use it)
export GRID_FSYNC=0
show grid login --username alice --key 'grid_...' --url "$grid_url"
GRID_HOME="$work/machine-A" grid login --username alice --key - --url "$grid_url" <<<"$api_key"
on A grid whoami
sample="$work/sample/cats"
mkdir -p "$sample/train/cats" "$sample/train/dogs" "$sample/val"
for i in 1 2 3; do
    head -c 20000 /dev/urandom >"$sample/train/cats/$i.jpg"
    head -c 30000 /dev/urandom >"$sample/train/dogs/$i.jpg"
done
printf 'path,label\ntrain/cats/1.jpg,cat\ntrain/dogs/1.jpg,dog\n' >"$sample/val/labels.csv"
on A grid datastore create "$sample" --name cats
on A grid datastore create "$sample" --name pets --team vision
on A grid datastore list

echo
echo "=== 6. Machine B (another GRID_HOME, same login): read back and verify"
on B grid datastore list
on B grid datastore ls cats:1 train/cats
on B grid datastore cat cats:1 val/labels.csv
on B grid datastore cat vision/pets:1 val/labels.csv
printf '\n[machine B] $ cmp <(grid datastore cat cats:1 train/dogs/2.jpg) %s\n' "$sample/train/dogs/2.jpg"
cmp <(GRID_HOME="$work/machine-B" grid datastore cat cats:1 train/dogs/2.jpg) \
    "$sample/train/dogs/2.jpg" && echo "identical"
on B grid datastore verify cats:1
on B grid datastore verify vision/pets:1

echo
echo "=== team demo OK"
