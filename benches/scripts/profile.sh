#!/usr/bin/env bash
# Where the CPU of one s3bench workload goes, process role by process role: starts `ignifuge dev`,
# runs s3bench (WORKLOAD, SIZE, CONCURRENCY; 25 s) and, from its 8th second, samples every
# process of the cluster with `perf record -g` for 12 s. Prints the share of samples of the dc1
# gateway, of the busiest storage node (the metadata leader, which also serves shards), and of
# the other nodes together, each with its hottest functions (self time) and the inclusive share
# of a few known costs (hashing, checksums, RocksDB, JSON, shard reads). Also prints s3bench's
# JSON line (ops/s, latency, server CPU over the timed phase).
# Usage: WORKLOAD=get SIZE=1MiB CONCURRENCY=16 benches/scripts/profile.sh   (OBJECTS: objects prepared,
#        default 64; WORKLOAD=list OBJECTS=10000 SIZE=4KiB for the LIST of issue 15)
# Needs perf (Debian's linux-perf) and the release binaries ignifuge and s3bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORKLOAD=${WORKLOAD:-get}
SIZE=${SIZE:-1MiB}
CONCURRENCY=${CONCURRENCY:-16}
command -v perf > /dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
source benches/scripts/dev-cluster.sh 29950 ignifuge-profile
PIDS=$(python3 -c "import json; m=json.load(open('$DATA/cluster.json')); print(','.join(str(p['pid']) for p in m['processes']))")
GATEWAY=$(python3 -c "import json; m=json.load(open('$DATA/cluster.json')); \
print([p['pid'] for p in m['processes'] if p['role']=='gateway' and p['datacenter']=='dc1'][0])")
"$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload "$WORKLOAD" --size "$SIZE" --objects "${OBJECTS:-64}" \
    --concurrency "$CONCURRENCY" --duration-secs 25 --json --server-pids "$PIDS" > "$DATA/bench.json" &
BENCH=$!
# PERF_DELAY: seconds before sampling starts (after the preparation of OBJECTS objects).
sleep "${PERF_DELAY:-8}"
perf record -F 499 -g -p "$PIDS" -o "$DATA/perf.data" -- sleep 12 2> "$DATA/perf.err" > /dev/null
wait $BENCH
perf script -i "$DATA/perf.data" -F pid,ip,sym 2> /dev/null > "$DATA/perf.txt"
cat "$DATA/bench.json"
python3 - "$DATA/perf.txt" "$GATEWAY" <<'PY'
import collections, sys
path, gateway = sys.argv[1], sys.argv[2]
leaf = collections.defaultdict(collections.Counter)
inclusive = collections.defaultdict(collections.Counter)
pid, stack = None, []
def flush():
    if pid is not None and stack:
        leaf[pid][stack[0]] += 1
        for symbol in set(stack):
            inclusive[pid][symbol] += 1
for line in open(path):
    if not line.strip():
        flush(); pid, stack = None, []
    elif not line.startswith("\t"):
        # The header line: the pid, right-aligned (so maybe after spaces); stack lines begin with a tab.
        pid, stack = line.split()[0], []
    else:
        parts = line.strip().split(None, 1)
        stack.append(parts[1] if len(parts) > 1 else "?")
flush()
total = sum(sum(c.values()) for c in leaf.values())
nodes = sorted((p for p in leaf if p != gateway), key=lambda p: -sum(leaf[p].values()))
KNOWN = ("blake3", "crc_fast", "md5", "reed_solomon", "rocksdb", "serde_json", "ShardStore::get",
         "ShardStore::put", "std::sys::fs::metadata", "httparse", "finish_task_switch", "fsync", "fdatasync")
def show(name, pids):
    self_time, incl = collections.Counter(), collections.Counter()
    for p in pids:
        self_time.update(leaf[p]); incl.update(inclusive[p])
    n = sum(self_time.values())
    if not n:
        return
    print(f"== {name}: {100 * n / total:.1f}% of all samples")
    for symbol, count in self_time.most_common(12):
        print(f"   self {100 * count / n:5.1f}%  {symbol[:100]}")
    for known in KNOWN:
        share = max((c for s, c in incl.items() if known in s), default=0)
        if share:
            print(f"   incl {100 * share / n:5.1f}%  *{known}*")
show("dc1 gateway (serving the client)", [gateway])
show("busiest storage node (the metadata leader)", nodes[:1])
show(f"the other {len(nodes) - 1} processes", nodes[1:])
PY
