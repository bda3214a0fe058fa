#!/usr/bin/env bash
# PUT and GET throughput and latency of small objects stored one way or another: inline in the
# metadata, packed with others into one stripe, or striped alone (docs/benchmarks.md "Small
# objects packed together"). For each size in SIZES (default "4KiB 64KiB"), each round of ROUNDS
# (default 2) and each mode of MODES, a fresh `ignifuge dev` with the mode's settings, SECS seconds
# (default 15) of PUTs of new keys, then of GETs, CONCURRENCY (default 16) in flight. A mode is
# `label` or `label:VAR=value,VAR=value` (default "default inline:IGNIFUGE_INLINE_MAX_BYTES=65536
# striped:IGNIFUGE_PACK_MAX_BYTES=0"; inline holds objects up to 64 KiB at most). Prints one JSON
# line per run.
# Usage: benches/scripts/small-objects.sh   (release binaries ignifuge and s3bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
for size in ${SIZES:-4KiB 64KiB}; do
    for round in $(seq 1 "${ROUNDS:-2}"); do
        for mode in ${MODES:-default inline:IGNIFUGE_INLINE_MAX_BYTES=65536 striped:IGNIFUGE_PACK_MAX_BYTES=0}; do
            (
                label=${mode%%:*}
                if [[ $mode == *:* ]]; then
                    IFS=, read -ra settings <<< "${mode#*:}"
                    for setting in "${settings[@]}"; do export "${setting?}"; done
                fi
                source benches/scripts/dev-cluster.sh 30010 ignifuge-small
                for workload in put get; do
                    "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload $workload --size "$size" \
                        --concurrency "${CONCURRENCY:-16}" --duration-secs "${SECS:-15}" --json 2> /dev/null | tail -1 |
                        python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
print(json.dumps({'mode': '$label', 'round': $round, 'workload': r['workload'], 'size': r['size'],
                  'ops_per_sec': r['ops_per_sec'], 'p50_ms': r['latency_ms']['p50'], 'p99_ms': r['latency_ms']['p99'],
                  'errors': r['errors']}))"
                done
            )
        done
    done
done
