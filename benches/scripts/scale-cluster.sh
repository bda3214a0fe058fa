#!/usr/bin/env bash
# Issue 15 point 5 through the processes: one bucket of an `ignifuge dev` cluster (9 storage nodes,
# each a metadata voter, 3 gateways) filled with SMALL objects (10,000 by default) then with
# LARGE (1,000,000 by default) by s3bench PUTs of 16-byte objects, 64 in flight; at each size
# `scale_probe.py` times HEAD, GET and ListObjectsV2 (1000 keys) at random keys, one request at a
# time, and reads every process's resident memory and each voter's metadata bytes on disk.
# Prints one JSON line per size. Needs the release build (ignifuge, s3bench) and boto3.
# Usage: [SMALL=10000] [LARGE=1000000] [REQUESTS=2000] [SETTLE=30] benches/scripts/scale-cluster.sh
# (SETTLE: seconds between a fill and its probe, for the snapshots and compactions it started.)
set -euo pipefail
cd "$(dirname "$0")/../.."
SMALL=${SMALL:-10000} LARGE=${LARGE:-1000000} REQUESTS=${REQUESTS:-2000}
source benches/scripts/dev-cluster.sh 29800 ignifuge-scale
fill() { # fill N: PUTs N 16-byte objects under a new prefix; prints the prefix
    "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload put --size 16 --concurrency 64 \
        --ops "$1" --duration-secs 3600 --json 2>"$DATA/fill.err" |
        python3 -c "import json, sys; r = json.load(sys.stdin); assert r['ops'] == $1 and not r['errors'], r; \
print(r['prefix']); print('filled %d in %.0f s (%.0f PUT/s)' % (r['ops'], r['seconds'], r['ops_per_sec']), file=sys.stderr)" ||
        { echo "the fill failed: $(tail -5 "$DATA/fill.err")" >&2; exit 1; }
}
probe() { # probe PREFIX KEYS BUCKET_KEYS
    python3 benches/scripts/scale_probe.py "$DATA" s3bench "${1}put/" "$2" "$3" "$REQUESTS"
}
small=$(fill "$SMALL")
sleep "${SETTLE:-30}"
probe "$small" "$SMALL" "$SMALL"
# (At 800-1300 PUT/s here: 13-20 minutes for a million; s3bench's own bound is an hour.)
large=$(fill "$((LARGE - SMALL))")
sleep "${SETTLE:-30}"
probe "$large" "$((LARGE - SMALL))" "$LARGE"
