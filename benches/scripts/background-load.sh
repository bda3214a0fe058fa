#!/usr/bin/env bash
# Client latency while background work runs: small PUTs measured in consecutive windows while the
# cluster builds metadata snapshots (on every voter, of a state holding tens of thousands of small
# objects: raft/src/pacing.rs says when) and garbage-collects the blobs of deleted 1 MiB objects.
# 1. not timed: 2,000 1 MiB objects written and deleted (2,000 blobs of garbage; grace 1 s, a GC
#    round every 5 s), and 20,000 4 KiB objects written (inline in the metadata: the state grows);
# 2. timed: WINDOWS (default 8) runs of 5 s of 4 KiB PUTs, 16 in flight; one line per window
#    with ops/s, p50, p99 and the snapshot builds that ended in it (all voters), then the median
#    and the worst window.
# Usage: benches/scripts/background-load.sh   (release binaries ignifuge and s3bench;
#        CARGO_TARGET_DIR picks the build)
set -euo pipefail
cd "$(dirname "$0")/../.."
export IGNIFUGE_GC_GRACE_MS=1000 IGNIFUGE_GC_INTERVAL_MS=5000
# openraft says when each snapshot build ends: counted per window below.
export IGNIFUGE_LOG="warn,openraft::core::raft_core=info"
source benches/scripts/dev-cluster.sh 29990 ignifuge-background
run() { "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --json "$@" 2> /dev/null; }
run --workload put --size 1MiB --concurrency 16 --ops 2000 --cleanup > /dev/null
run --workload put --size 4KiB --concurrency 16 --ops 20000 > /dev/null
for window in $(seq 1 "${WINDOWS:-8}"); do
    run --workload put --size 4KiB --concurrency 16 --duration-secs 5
done | python3 -c "
import datetime, glob, json, statistics, sys
rows = [json.loads(line) for line in sys.stdin if line.startswith('{')]
# Snapshot builds that ended in each window, all voters together.
ends = []
for path in glob.glob('$DATA/logs/dc*.log'):
    for line in open(path, errors='replace'):
        if 'command done: BuildSnapshot' in line:
            stamp = datetime.datetime.strptime(line[:26], '%Y-%m-%dT%H:%M:%S.%f').replace(tzinfo=datetime.timezone.utc)
            ends.append(stamp.timestamp() * 1000)
for i, r in enumerate(rows, 1):
    start, end = r['started_unix_ms'], r['started_unix_ms'] + r['seconds'] * 1000
    built = sum(1 for t in ends if start <= t < end)
    print('window %d: %.1f ops/s p50 %.1f p99 %.1f ms errors %s snapshots built %d' % (i, r['ops_per_sec'], r['latency_ms']['p50'], r['latency_ms']['p99'], r['errors'], built))
ops = [r['ops_per_sec'] for r in rows]
p99 = [r['latency_ms']['p99'] for r in rows]
print(json.dumps({'bench': 'background_load', 'median_ops_s': round(statistics.median(ops), 1), 'worst_ops_s': round(min(ops), 1),
                  'median_p99_ms': round(statistics.median(p99), 1), 'worst_p99_ms': round(max(p99), 1)}))
"
