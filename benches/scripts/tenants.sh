#!/usr/bin/env bash
# Several tenants putting small objects at once, two builds against each other: ROUNDS rounds
# (default 2), order alternating, a fresh `ignifuge dev` per run. TENANTS tenants (default 4, the
# first the cluster's own) each run s3bench with CONCURRENCY PUTs in flight (default 4) into a
# bucket of their own, all at once. Each line: build, the PUTs per second of all tenants together,
# the worst tenant's p99, and the cluster's server CPU per PUT. Written to measure a packer queue
# per tenant against the one shared queue (`gateway/src/pack.rs`; tried and reverted:
# docs/benchmarks.md, "One tenant's objects per pack").
# Usage: benches/scripts/tenants.sh A_TARGET_DIR B_TARGET_DIR [TENANTS CONCURRENCY SECONDS SIZE]
#   (target directories as benches/scripts/ab.sh takes them: release/ignifuge and release/s3bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$1 B=$2 TENANTS=${3:-4} CONCURRENCY=${4:-4} SECONDS_PER_RUN=${5:-12} SIZE=${6:-4KiB}
one() {
    (
        export CARGO_TARGET_DIR=$1
        source benches/scripts/dev-cluster.sh 29970 ignifuge-tenants
        PIDS=$(python3 -c "import json; m=json.load(open('$DATA/cluster.json')); print(','.join(str(p['pid']) for p in m['processes']))")
        for t in $(seq 2 "$TENANTS"); do
            "$BIN" admin --data-dir "$DATA" tenant create "bench$t" > "$DATA/tenant$t.env"
        done
        BENCHES=()
        for t in $(seq 1 "$TENANTS"); do
            (
                if [ "$t" != 1 ]; then eval "$(cat "$DATA/tenant$t.env")"; fi
                "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --bucket "tenant$t-bench" --workload put --size "$SIZE" \
                    --concurrency "$CONCURRENCY" --duration-secs "$SECONDS_PER_RUN" --json --server-pids "$PIDS" \
                    > "$DATA/result$t.json" 2> "$DATA/s3bench$t.err"
            ) &
            BENCHES+=($!)
        done
        wait "${BENCHES[@]}" # not the cluster, also a child of this shell
        python3 - "$1" "$DATA" "$TENANTS" <<'PY'
import json, sys
build, data, tenants = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = [json.load(open(f"{data}/result{t}.json")) for t in range(1, tenants + 1)]
ops = sum(r["ops"] for r in runs)
cpu = sum(r["server_cpu_seconds"] for r in runs) / len(runs)  # each measured the whole cluster
print(build, "%.1f PUT/s together" % sum(r["ops_per_sec"] for r in runs),
      "worst p99 %.1f ms" % max(r["latency_ms"]["p99"] for r in runs),
      "%.3f server CPU ms/PUT" % (1000 * cpu / max(ops, 1)), "errors", [r["errors"] for r in runs])
PY
    )
}
for round in $(seq 1 "${ROUNDS:-2}"); do
    if [ $((round % 2)) = 1 ]; then order="$A $B"; else order="$B $A"; fi
    for target in $order; do echo "round $round: $(one "$target")"; done
done
