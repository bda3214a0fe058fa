#!/usr/bin/env bash
# Two builds of Ignifuge against each other on one s3bench workload, interleaved: ROUNDS rounds
# (default 3), the build that goes first alternating, each run on a fresh `ignifuge dev`. Each
# line: build, ops/s, p50/p99 ms and the cluster's server CPU per operation over the timed phase.
# A and B are target directories holding release/ignifuge and release/s3bench (copy the binaries
# of each build into one), each optionally followed by `:NAME=value`, a setting its cluster runs
# with (one build under two settings: `T:IGNIFUGE_SHARDS_AROUND_CACHE=parity T:...=all`).
# OBJECTS (default 64) objects are written first for get and list.
# Usage: benches/scripts/ab.sh A_TARGET_DIR B_TARGET_DIR [WORKLOAD SIZE CONCURRENCY SECONDS]
#   e.g. benches/scripts/ab.sh /tmp/tgt-old /tmp/tgt-new get 1MiB 16 12
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$1 B=$2 WORKLOAD=${3:-get} SIZE=${4:-1MiB} CONCURRENCY=${5:-16} SECONDS_PER_RUN=${6:-12}
one() {
    (
        export CARGO_TARGET_DIR=${1%%:*}
        if [[ $1 == *:* ]]; then export "${1#*:}"; fi
        source benches/scripts/dev-cluster.sh 29970 ignifuge-ab
        PIDS=$(python3 -c "import json; m=json.load(open('$DATA/cluster.json')); print(','.join(str(p['pid']) for p in m['processes']))")
        "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload "$WORKLOAD" --size "$SIZE" --objects "${OBJECTS:-64}" \
            --concurrency "$CONCURRENCY" --duration-secs "$SECONDS_PER_RUN" --json --server-pids "$PIDS" |
            python3 -c "import json, sys; r = json.load(sys.stdin); print('$1', '%.1f ops/s' % r['ops_per_sec'], \
'p50 %.1f p99 %.1f ms' % (r['latency_ms']['p50'], r['latency_ms']['p99']), \
'%.3f server CPU ms/op' % (1000 * r['server_cpu_seconds'] / max(r['ops'], 1)), 'errors', r['errors'])"
    )
}
for round in $(seq 1 "${ROUNDS:-3}"); do
    if [ $((round % 2)) = 1 ]; then order="$A $B"; else order="$B $A"; fi
    for target in $order; do echo "round $round: $(one "$target")"; done
done
