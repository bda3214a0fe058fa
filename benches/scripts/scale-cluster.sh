#!/usr/bin/env bash
# Issue 15 point 5 through the processes: one bucket of an `ignifuge dev` cluster (9 storage nodes,
# each a metadata voter, 3 gateways) filled with SMALL objects (10,000 by default) then with
# LARGE (1,000,000 by default) by s3bench PUTs of 16-byte objects, 64 in flight; at each size
# `scale_probe.py` times HEAD, GET and ListObjectsV2 (1000 keys) at random keys, one request at a
# time, and reads every process's resident memory and each voter's metadata bytes on disk.
# Prints one JSON line per probe. Needs the release build (ignifuge, s3bench) and boto3.
# Usage: [SMALL=10000] [LARGE=1000000] [REQUESTS=2000] [SETTLE=30] benches/scripts/scale-cluster.sh
# (SETTLE: seconds between a fill and its probe, for the snapshots and compactions it started.)
# SEED=10000000: instead of the API fill to LARGE, restarts the cluster after the SMALL probe and
# probes again (memory after a restart, as the seeded probes are), stops it, writes SEED more
# objects (copies of the first small one's record, each with a body, ETag and checksums of its
# own) straight into every metadata replica's store (`scale-seed`, which needs
# `cargo build --release -p ignifuge-benches --features scale-seed --bin scale-seed`: the API
# fill would take hours; its JSON line goes to stderr), starts the cluster again, probes the
# bucket at SMALL + SEED, times `ignifuge admin digest --agree` (every replica hashes its whole
# state) and probes again; prints what RocksDB compacted on every replica since the seeding.
set -euo pipefail
cd "$(dirname "$0")/../.."
SMALL=${SMALL:-10000} LARGE=${LARGE:-1000000} REQUESTS=${REQUESTS:-2000}
SEEDER="$(realpath -m "${CARGO_TARGET_DIR:-target}/release/scale-seed")"
[ -z "${SEED:-}" ] || [ -x "$SEEDER" ] || { echo "SEED needs $SEEDER (see the header)" >&2; exit 1; }
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
if [ -n "${SEED:-}" ]; then
    dev_stop
    dev_start
    sleep "${SETTLE:-30}"
    probe "$small" "$SMALL" "$SMALL"
    dev_stop
    seeded="seed/$(date +%s)/"
    touch "$DATA/seeded"
    "$SEEDER" "$DATA" s3bench "${small}put/0" "${seeded}put/" "$SEED" >&2
    dev_start
    compactions() { # what RocksDB compacted on every replica since the seeding (its info logs
        # since then: the one the seeding's session rolled, and the running one)
        for log in "$DATA"/*/meta/LOG "$DATA"/*/meta/LOG.old.*; do
            if [ "$log" -nt "$DATA/seeded" ]; then cat "$log"; fi
        done | { grep -h '"event": "compaction_finished"' || true; } | python3 -c "import json, sys; \
e = [json.loads(l[l.index('{'):]) for l in sys.stdin]; print('compactions on all replicas since the seeding: %d, %.0f MB written' % \
(len(e), sum(x.get('total_output_size', 0) for x in e) / 1e6))" >&2
    }
    sleep "${SETTLE:-30}"
    compactions
    probe "$seeded" "$SEED" "$((SMALL + SEED))"
    started=$(date +%s%N)
    "$BIN" admin --data-dir "$DATA" digest --agree --timeout-secs 1800 >&2
    echo "digest --agree at $((SMALL + SEED)) objects: $((($(date +%s%N) - started) / 1000000)) ms" >&2
    probe "$seeded" "$SEED" "$((SMALL + SEED))"
    compactions
    exit 0
fi
# (At 800-1300 PUT/s here: 13-20 minutes for a million; s3bench's own bound is an hour.)
large=$(fill "$((LARGE - SMALL))")
sleep "${SETTLE:-30}"
probe "$large" "$((LARGE - SMALL))" "$LARGE"
