#!/usr/bin/env bash
# PUT and GET throughput of small objects stored inline in the metadata against erasure-coded,
# for the choice of IGNIFUGE_INLINE_MAX_BYTES (docs/benchmarks.md "Small objects: inline or
# striped"). For each threshold in THRESHOLDS (default "65536 4096") a fresh `ignifuge dev`,
# then for each size in OBJECT_SIZES (default "4KiB 16KiB 64KiB") SECS seconds (default 10) of
# PUTs, then of GETs, 16 in flight; ROUNDS rounds (default 2) interleave the thresholds.
# Prints one JSON line per run.
# Usage: benches/scripts/inline-threshold.sh   (release binaries ignifuge and s3bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
for round in $(seq 1 "${ROUNDS:-2}"); do
    for threshold in ${THRESHOLDS:-65536 4096}; do
        (
            export IGNIFUGE_INLINE_MAX_BYTES=$threshold
            source benches/scripts/dev-cluster.sh 30010 ignifuge-inline
            for size in ${OBJECT_SIZES:-4KiB 16KiB 64KiB}; do
                for workload in put get; do
                    "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload $workload --size "$size" \
                        --concurrency 16 --duration-secs "${SECS:-10}" --json 2> /dev/null | tail -1 |
                        python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
print(json.dumps({'round': $round, 'inline_max_bytes': $threshold, 'workload': r['workload'], 'size': r['size'],
                  'ops_per_sec': r['ops_per_sec'], 'p50_ms': r['latency_ms']['p50'], 'p99_ms': r['latency_ms']['p99'],
                  'errors': r['errors']}))"
                done
            done
        )
    done
done
