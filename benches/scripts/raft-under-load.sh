#!/usr/bin/env bash
# Whether a saturated data path costs the metadata its leader: the Raft term and leader before
# and after LOAD_SECS (default 60) of 64 MiB PUTs (8 in flight), then half that of 1 MiB PUTs and
# of 1 MiB GETs (32 in flight each), and every Raft timeout or election logged meanwhile by any
# process. Heartbeats ride their own connection pool (raft/src/network.rs) and metadata queries
# run off the async runtime, so neither queues behind shard transfers; this is the check.
# Usage: benches/scripts/raft-under-load.sh   (release binaries; CARGO_TARGET_DIR picks the build)
set -euo pipefail
cd "$(dirname "$0")/../.."
# openraft logs elections and votes at info.
export IGNIFUGE_LOG="warn,openraft=info"
source benches/scripts/dev-cluster.sh 29700 ignifuge-raft-load
SECONDS_LOADED=${LOAD_SECS:-60}
leader() { "$BIN" admin --data-dir "$DATA" status > "$DATA/status.txt"; sed -n 1p "$DATA/status.txt"; }
run() { "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --json "$@" 2> /dev/null | tail -1 |
    python3 -c "import json,sys; r=json.load(sys.stdin); print('%s %s x%d: %.1f ops/s, p99 %.0f ms, errors %s' % (r['workload'], r['size'], r['concurrency'], r['ops_per_sec'], r['latency_ms']['p99'], r['errors']))"; }
# Elections at start (replicas that have not caught up refuse votes) are not counted.
sleep 5
before=$(leader)
mark=$(date -u +%Y-%m-%dT%H:%M:%S)
run --workload put --size 64MiB --concurrency 8 --duration-secs "$SECONDS_LOADED" --cleanup
run --workload put --size 1MiB --concurrency 32 --duration-secs $((SECONDS_LOADED / 2)) --cleanup
run --workload get --size 1MiB --concurrency 32 --duration-secs $((SECONDS_LOADED / 2))
after=$(leader)
echo "before: $before"
echo "after:  $after"
# Lines logged under load that mean the leader was doubted: elections, votes, Raft timeouts.
pattern='elect|vote|heartbeat|append.*(timeout|timed out)|(timeout|timed out).*append|leader.*(lost|changed)'
under_load() { awk -v mark="$mark" 'substr($1, 1, 19) >= mark' "$DATA"/logs/*.log | grep -iE "$pattern" || true; }
echo "Raft elections, votes and timeouts logged under load: $(under_load | wc -l)"
under_load | cut -c1-240 | sed -n 1,10p
