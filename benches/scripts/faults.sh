#!/usr/bin/env bash
# CPU and page faults per operation of one role's processes, two builds against each other:
# ROUNDS rounds (default 2), order alternating, a fresh `ignifuge dev` per run. s3bench runs
# WORKLOAD (16 s; OBJECTS, default 16, prepared for get); from its 4th second `perf stat` counts
# the page faults and CPU of the dc1 gateway (ROLE=gateway, the default) or of every other
# process (ROLE=others: the nine storage nodes and two idle gateways) for 10 s. Each line: build,
# ops/s, the cluster's server CPU per operation over s3bench's timed phase, then the role's CPU
# and page faults per operation. (Written for the stripe buffers kept for reuse:
# docs/benchmarks.md, "Stripe buffers kept for reuse".)
# Usage: benches/scripts/faults.sh A_TARGET_DIR B_TARGET_DIR [WORKLOAD SIZE CONCURRENCY]
#   (target directories as benches/scripts/ab.sh takes them, `:NAME=value` settings included)
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$1 B=$2 WORKLOAD=${3:-put} SIZE=${4:-64MiB} CONCURRENCY=${5:-4}
command -v perf > /dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
one() {
    (
        export CARGO_TARGET_DIR=${1%%:*}
        if [[ $1 == *:* ]]; then export "${1#*:}"; fi
        source benches/scripts/dev-cluster.sh 29970 ignifuge-faults
        PIDS=$(python3 -c "import json; m=json.load(open('$DATA/cluster.json')); print(','.join(str(p['pid']) for p in m['processes']))")
        GATEWAY=$(python3 -c "import json; m=json.load(open('$DATA/cluster.json')); \
print([p['pid'] for p in m['processes'] if p['role']=='gateway' and p['datacenter']=='dc1'][0])")
        if [ "${ROLE:-gateway}" = gateway ]; then COUNTED=$GATEWAY; else COUNTED=$(echo "$PIDS" | tr , '\n' | grep -vx "$GATEWAY" | paste -sd,); fi
        "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload "$WORKLOAD" --size "$SIZE" --objects "${OBJECTS:-16}" \
            --concurrency "$CONCURRENCY" --duration-secs 16 --json --server-pids "$PIDS" > "$DATA/bench.json" &
        BENCH=$!
        sleep 4
        perf stat -x, -e page-faults,task-clock -p "$COUNTED" -- sleep 10 2> "$DATA/stat"
        wait $BENCH
        python3 - "$DATA" "$1" "${ROLE:-gateway}" <<'PY'
import json, sys
data, build, role = sys.argv[1:]
r = json.load(open(data + "/bench.json"))
counts = {}
for line in open(data + "/stat"):
    fields = line.split(",")
    if len(fields) > 2:
        try:
            counts[fields[2]] = float(fields[0])
        except ValueError:
            pass
ops = r["ops_per_sec"] * 10  # operations in perf's 10 s, at the run's rate
print(f"{build} {r['ops_per_sec']:.1f} ops/s, server CPU {1000 * r['server_cpu_seconds'] / max(r['ops'], 1):.1f} ms/op; "
      f"{role}: CPU {counts.get('task-clock', 0) / ops:.2f} ms/op, page faults {counts.get('page-faults', 0) / ops:.0f}/op")
PY
    )
}
for round in $(seq 1 "${ROUNDS:-2}"); do
    if [ $((round % 2)) = 1 ]; then order="$A $B"; else order="$B $A"; fi
    for target in $order; do echo "round $round: $(one "$target" 2> /dev/null | tail -1)"; done
done
