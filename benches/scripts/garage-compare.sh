#!/usr/bin/env bash
# Ignifuge against Garage, the store users would pick instead, side by side on this machine:
# `ignifuge dev` (3 datacenters, 5+4 erasure coding, 9 metadata voters) next to a 3-zone Garage
# cluster with replication factor 3 (consistency "consistent", metadata and data fsync on, as
# Ignifuge always fsyncs), the same s3bench runs against both, interleaved, for two rounds (or
# ROUNDS, alternating which store goes first), with each store's CPU seconds (every process of it,
# from /proc, sampled by s3bench around the timed phase only) per run, and in every round the
# PUT pipeline's CPU floor (`pipeline-floor.sh`) that a 64 MiB PUT's server CPU is set against.
#
#   benches/scripts/garage-compare.sh                 # JSON lines on stdout, the table on stderr
#   GARAGE_BIN=/path/to/garage benches/scripts/garage-compare.sh
#   GARAGE_INSTALL=1 benches/scripts/garage-compare.sh   # cargo install garage 2.0.0 first
#
# Garage is found as $GARAGE_BIN, on PATH, or under $GARAGE_ROOT/bin (default
# /var/tmp/garage-install); with GARAGE_INSTALL=1 it is built from the crates registry
# (`cargo install garage --version 2.0.0 --locked`, 7 to 12 minutes on 2 cores here). It is a
# benchmark peer only (AGPL), never a dependency, and never downloaded from anywhere else.
# Environment: CARGO_TARGET_DIR, ROUNDS (2), S3BENCH_DURATION_SECS (10), BASE_PORT (27100, for
# Ignifuge), GARAGE_PORT (27500: node i uses +10i for S3, +10i+1 for RPC), OUT (also append the
# JSON lines there).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${ROUNDS:-2}"
duration_secs="${S3BENCH_DURATION_SECS:-10}"
garage_port="${GARAGE_PORT:-27500}"
garage_root="${GARAGE_ROOT:-/var/tmp/garage-install}"
garage_version="2.0.0"

garage="${GARAGE_BIN:-}"
if [[ -z "$garage" ]]; then
    garage="$(command -v garage || true)"
fi
if [[ -z "$garage" && -x "$garage_root/bin/garage" ]]; then
    garage="$garage_root/bin/garage"
fi
if [[ -z "$garage" && "${GARAGE_INSTALL:-0}" == 1 ]]; then
    echo "garage-compare: building garage $garage_version from the crates registry into $garage_root" >&2
    cargo install garage --version "$garage_version" --locked --root "$garage_root" >&2
    garage="$garage_root/bin/garage"
fi
if [[ -z "$garage" ]]; then
    echo "garage-compare: no garage binary (set GARAGE_BIN, or GARAGE_INSTALL=1 to build it)" >&2
    exit 2
fi
echo "garage-compare: $("$garage" --version 2>/dev/null | head -1) at $garage" >&2

cargo build --release -p ignifuge -p ignifuge-benches --bin ignifuge --bin s3bench --bin stripe-profile >&2
# shellcheck source=dev-cluster.sh
source benches/scripts/dev-cluster.sh 27100 garage-compare-ignifuge
ignifuge_endpoint="$AWS_ENDPOINT_URL"
ignifuge_key="$AWS_ACCESS_KEY_ID"
ignifuge_secret="$AWS_SECRET_ACCESS_KEY"

# --- Garage: three nodes, one per zone.
garage_dir="$(mktemp -d /var/tmp/garage-compare-garage.XXXXXX)"
garage_pids=()
cleanup() {
    for pid in "${garage_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${garage_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$garage_dir"
    dev_stop
    rm -rf "$DATA"
}
trap cleanup EXIT
secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
for i in 1 2 3; do
    node="$garage_dir/n$i"
    mkdir -p "$node/meta" "$node/data"
    cat >"$node/garage.toml" <<EOF
metadata_dir = "$node/meta"
data_dir = "$node/data"
db_engine = "lmdb"
metadata_fsync = true
data_fsync = true
replication_factor = 3
consistency_mode = "consistent"
rpc_secret = "$secret"
rpc_bind_addr = "127.0.0.1:$((garage_port + 10 * i + 1))"
rpc_public_addr = "127.0.0.1:$((garage_port + 10 * i + 1))"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$((garage_port + 10 * i))"
EOF
    "$garage" -c "$node/garage.toml" server >"$node/out" 2>"$node/err" &
    garage_pids+=("$!")
done
g() { "$garage" -c "$garage_dir/n1/garage.toml" "$@"; }
# Retries a garage command until it succeeds (the cluster settles in seconds), or fails loudly.
settle() {
    local attempt
    for attempt in $(seq 1 60); do
        if "$@"; then return 0; fi
        sleep 0.5
    done
    echo "garage-compare: '$*' kept failing" >&2
    return 1
}
ids=()
for i in 1 2 3; do
    id="$(settle "$garage" -c "$garage_dir/n$i/garage.toml" node id -q 2>/dev/null)"
    ids+=("${id%@*}")
    if ((i > 1)); then settle g node connect "$id" >/dev/null; fi
done
for i in 1 2 3; do settle g layout assign -z "dc$i" -c 10G "${ids[$((i - 1))]}" >/dev/null; done
settle g layout apply --version 1 >/dev/null
key_info="$(settle g key create s3bench-key)"
garage_key="$(echo "$key_info" | awk -F': *' '/Key ID/ {print $2; exit}')"
garage_secret="$(echo "$key_info" | awk -F': *' '/Secret key/ {print $2; exit}')"
settle g bucket create s3bench >/dev/null
settle g bucket allow --read --write --owner s3bench --key s3bench-key >/dev/null
garage_endpoint="http://127.0.0.1:$((garage_port + 10))"
garage_ready=0
for _ in $(seq 1 100); do
    if AWS_ENDPOINT_URL="$garage_endpoint" AWS_ACCESS_KEY_ID="$garage_key" AWS_SECRET_ACCESS_KEY="$garage_secret" \
        "$S3BENCH" --workload put --size 1KiB --concurrency 1 --ops 1 --json --cleanup 2>/dev/null | grep -q '"ops":1,'; then
        garage_ready=1
        break
    fi
    sleep 0.5
done
if ((garage_ready == 0)); then
    echo "garage-compare: garage does not take a PUT: $(tail -3 "$garage_dir/n1/err")" >&2
    exit 1
fi
echo "garage-compare: garage ready at $garage_endpoint; ignifuge at $ignifuge_endpoint" >&2

# Every process of each store, for s3bench's --server-pids (CPU of the timed phase only).
ignifuge_pids="$(python3 -c 'import json,sys; print(",".join([sys.argv[2]] + [str(p["pid"]) for p in json.load(open(sys.argv[1]))["processes"]]))' \
    "$DATA/cluster.json" "$DEV")"
garage_pid_list="$(IFS=,; echo "${garage_pids[*]}")"

run() {
    local store="$1"
    shift
    local endpoint key secret pids line
    if [[ "$store" == ignifuge ]]; then
        endpoint="$ignifuge_endpoint" key="$ignifuge_key" secret="$ignifuge_secret" pids="$ignifuge_pids"
    else
        endpoint="$garage_endpoint" key="$garage_key" secret="$garage_secret" pids="$garage_pid_list"
    fi
    if line="$(AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" \
        AWS_REGION=us-east-1 "$S3BENCH" --json --bucket s3bench --server-pids "$pids" "$@")"; then
        line="$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["store"]=sys.argv[2]; print(json.dumps(r))' \
            "$line" "$store")"
        echo "$line"
        if [[ -n "${OUT:-}" ]]; then echo "$line" >>"$OUT"; fi
    else
        echo "garage-compare: $store s3bench $* failed" >&2
    fi
}

workloads=(
    "--workload put --size 64MiB --concurrency 4 --duration-secs $duration_secs"
    "--workload get --size 64MiB --concurrency 4 --duration-secs $duration_secs"
    "--workload put --size 1MiB --concurrency 16 --duration-secs $duration_secs"
    "--workload get --size 1MiB --concurrency 16 --duration-secs $duration_secs"
    "--workload put --size 4KiB --concurrency 16 --duration-secs $duration_secs"
    "--workload get --size 4KiB --concurrency 16 --duration-secs $duration_secs"
    "--workload list --size 4KiB --concurrency 16 --objects 10000 --list-page-keys 1000 --duration-secs $duration_secs"
    "--workload delete-objects --size 4KiB --concurrency 1 --objects 1000 --delete-batch-keys 1000 --duration-secs 600"
    "--workload multipart --size 64MiB --part-size 8MiB --concurrency 4 --duration-secs $duration_secs"
)
results="$garage_dir/results.jsonl"
for round in $(seq 1 "$rounds"); do
    # Alternate which store goes first, so that neither always runs on a machine the other
    # has just warmed or left busy.
    order=(ignifuge garage)
    if ((round % 2 == 0)); then order=(garage ignifuge); fi
    for workload in "${workloads[@]}"; do
        for store in "${order[@]}"; do
            # shellcheck disable=SC2086
            run "$store" $workload --cleanup | tee -a "$results"
        done
    done
    # The PUT pipeline's CPU floor on this machine now (issue 15: a 64 MiB PUT's server CPU per
    # GiB within 1.25x of it).
    if floor="$(benches/scripts/pipeline-floor.sh)"; then
        echo "$floor" | tee -a "$results"
        if [[ -n "${OUT:-}" ]]; then echo "$floor" >>"$OUT"; fi
    else
        echo "garage-compare: the pipeline floor failed" >&2
    fi
done
python3 benches/scripts/garage-compare-table.py "$results" >&2
