#!/usr/bin/env bash
# Compaction of packs (issue 15, point 4): what deleting most small objects leaves on disk before
# and after the compactor (`services/src/compact.rs`). A fresh `ignifuge dev`; OBJECTS (default
# 20000) PutObjects of SIZE (default 4KiB, 16 in flight, s3bench); then DeleteObjects of three
# keys in four (boto3, 1000 per request); then it waits for the compactor and the collector
# until the shards on disk hold still. Prints one JSON line: the shard bytes and blob
# directories on all nodes after the PUTs, after the deletes (packs with a live object keep all
# their bytes), and once compaction has settled, over the bytes of the objects left; how long
# compaction took and the CPU seconds every process spent meanwhile.
# The cluster runs with IGNIFUGE_COMPACT_MIN_AGE_MS=${MIN_AGE_MS:-60000} (no pack is compacted
# while the PUTs run), rounds every 5 s and garbage collected at once (IGNIFUGE_GC_GRACE_MS=0);
# any other IGNIFUGE_* setting passes through.
# Usage: CARGO_TARGET_DIR=<build> benches/scripts/compaction.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export IGNIFUGE_COMPACT_MIN_AGE_MS=${MIN_AGE_MS:-60000} IGNIFUGE_COMPACT_INTERVAL_MS=5000
export IGNIFUGE_GC_GRACE_MS=0 IGNIFUGE_GC_INTERVAL_MS=5000
source benches/scripts/dev-cluster.sh 29980 ignifuge-compaction
OBJECTS=${OBJECTS:-20000}
SIZE=${SIZE:-4KiB}
shards() {
    python3 - "$DATA" <<'PY'
import json, os, subprocess, sys
cluster = json.load(open(os.path.join(sys.argv[1], "cluster.json")))
nodes = [p for p in cluster["processes"] if p["role"] == "node"]
kib = sum(int(subprocess.run(["du", "-sk", os.path.join(p["data_dir"], "shards")], capture_output=True, text=True).stdout.split()[0]) for p in nodes)
dirs = sum(len(os.listdir(os.path.join(root, d))) for p in nodes for root in [os.path.join(p["data_dir"], "shards")] for d in os.listdir(root))
cpu = 0
for p in cluster["processes"]:
    fields = open(f"/proc/{p['pid']}/stat").read().rsplit(")", 1)[1].split()
    cpu += int(fields[11]) + int(fields[12])
print(json.dumps({"shard_bytes": kib * 1024, "blob_dirs": dirs, "cpu_ticks": cpu}))
PY
}
start=$(shards)
bench=$("$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload put --size "$SIZE" --concurrency 16 \
    --ops "$OBJECTS" --json 2> /dev/null | tail -1)
sleep 10
put=$(shards)
left=$(python3 - "http://127.0.0.1:$PORT" <<'PY'
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
keys, left = [], 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="s3bench"):
    keys.extend((o["Key"], o["Size"]) for o in page.get("Contents", []))
doomed = [k for i, (k, _) in enumerate(sorted(keys)) if i % 4 != 0]
left = sum(size for i, (_, size) in enumerate(sorted(keys)) if i % 4 == 0)
for i in range(0, len(doomed), 1000):
    answer = s3.delete_objects(Bucket="s3bench", Delete={"Objects": [{"Key": k} for k in doomed[i:i + 1000]], "Quiet": True})
    assert not answer.get("Errors"), answer["Errors"][:3]
print(left)
PY
)
sleep 15
deleted=$(shards)
# Compaction starts once the packs are MIN_AGE_MS old; settled when the shards hold still for
# 30 s (or after 30 min).
began=$(date +%s)
last=""
stable=0
for _ in $(seq 1 180); do
    sleep 10
    now=$(shards | python3 -c 'import json,sys; print(json.load(sys.stdin)["shard_bytes"])')
    if [ "$now" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
    last=$now
    [ "$stable" -ge 3 ] && [ $(( $(date +%s) - began )) -gt $(( ${MIN_AGE_MS:-60000} / 1000 )) ] && break
done
settled=$(shards)
took=$(( $(date +%s) - began - 30 ))
python3 - "$start" "$put" "$deleted" "$settled" "$left" "$bench" "$took" <<'PY'
import json, sys
start, put, deleted, settled = (json.loads(a) for a in sys.argv[1:5])
left, bench, took = int(sys.argv[5]), json.loads(sys.argv[6]), int(sys.argv[7])
stored = bench["bytes"]
def state(s, over):
    return {"shard_bytes_over_stored": round((s["shard_bytes"] - start["shard_bytes"]) / over, 2),
            "blob_dirs": s["blob_dirs"] - start["blob_dirs"]}
print(json.dumps({"size": bench["size"], "objects": bench["ops"], "errors": bench["errors"],
                  "stored_mb": round(stored / 1e6, 1), "left_mb": round(left / 1e6, 1),
                  "after_puts": state(put, stored), "after_deletes_over_left": state(deleted, left),
                  "compacted_over_left": state(settled, left),
                  "compaction_seconds_about": took,
                  "cpu_seconds_all_processes_while_compacting": round((settled["cpu_ticks"] - deleted["cpu_ticks"]) / 100, 1)}))
PY
