#!/usr/bin/env bash
# Group commit of shard writes against per-file syncs, alternated in one run: for each mode
# (IGNIFUGE_SHARD_SYNC=file, then group, twice), a fresh `ignifuge dev` and 10 s of s3bench PUTs
# of 128 KiB objects (16 in flight: 5+4 shards of 26 KiB) and of 8 MiB objects (4 in flight: 1 MiB
# shards) through the dc1 gateway. Prints one JSON line per mode and size.
# Usage: benches/scripts/shard-sync.sh   (needs the release binaries ignifuge and s3bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
for mode in file group file group; do
    (
        export IGNIFUGE_SHARD_SYNC=$mode
        source benches/scripts/dev-cluster.sh 29800 ignifuge-shard-sync
        for run in "128KiB 16" "8MiB 4"; do
            set -- $run
            "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload put --size "$1" --concurrency "$2" \
                --duration-secs 10 --json |
                python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'bench': 'shard_sync', \
'mode': '$mode', 'size': '$1', 'concurrency': $2, 'ops_per_sec': round(r['ops_per_sec'], 1), \
'mib_per_sec': round(r['mib_per_sec'], 1), 'p50_ms': r['latency_ms']['p50'], 'p99_ms': r['latency_ms']['p99'], \
'errors': r['errors']}))"
        done
    )
done
