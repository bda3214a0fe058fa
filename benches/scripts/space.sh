#!/usr/bin/env bash
# Bytes on disk per byte stored and resident memory per million objects, by object size (issue 15,
# point 4). For each SIZE:COUNT in SIZES (default "4KiB:20000 64KiB:5000 1MiB:1000"): a fresh
# `ignifuge dev` (nine nodes, each a metadata voter and a shard store, three gateways), the disk
# use of every node's directories (`du`, allocated blocks) and every process's RSS, then COUNT
# PutObjects of SIZE (16 in flight, as the AWS CLI sends them), SETTLE seconds (default 10), and
# the same again. Prints one JSON line per size: the growth per part of the node's directory
# (meta: the metadata's RocksDB with its Raft log; meta-snapshots; index: the shard index; shards:
# shard files), over the bytes stored, and the RSS growth by role, per million objects.
# Usage: benches/scripts/space.sh   (release binaries ignifuge and s3bench; CARGO_TARGET_DIR picks
#        the build; any IGNIFUGE_* setting passes through to the cluster)
set -euo pipefail
cd "$(dirname "$0")/../.."
measure() {
    python3 - "$DATA" <<'PY'
import json, os, subprocess, sys
data = sys.argv[1]
cluster = json.load(open(os.path.join(data, "cluster.json")))
out = {"disk": {}, "rss_kib": {}}
for p in cluster["processes"]:
    if p["role"] == "node":
        for part in ("meta", "meta-snapshots", "index", "shards"):
            path = os.path.join(p["data_dir"], part)
            kib = int(subprocess.run(["du", "-sk", path], capture_output=True, text=True).stdout.split()[0] or 0) if os.path.exists(path) else 0
            out["disk"][part] = out["disk"].get(part, 0) + kib * 1024
    status = open(f"/proc/{p['pid']}/status").read()
    rss = int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmRSS")))
    out["rss_kib"].setdefault(p["role"], []).append(rss)
print(json.dumps(out))
PY
}
for spec in ${SIZES:-4KiB:20000 64KiB:5000 1MiB:1000}; do
    size=${spec%%:*}
    count=${spec##*:}
    (
        source benches/scripts/dev-cluster.sh 29990 ignifuge-space
        before=$(measure)
        bench=$("$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload put --size "$size" --concurrency 16 \
            --ops "$count" --json 2> /dev/null | tail -1)
        sleep "${SETTLE:-10}"
        after=$(measure)
        python3 - "$before" "$after" "$bench" <<'PY'
import json, sys
before, after, bench = (json.loads(a) for a in sys.argv[1:4])
stored = bench["bytes"]
objects = bench["ops"]
disk = {part: after["disk"][part] - before["disk"][part] for part in after["disk"]}
total = sum(disk.values())
rss = {role: round((sum(after["rss_kib"][role]) - sum(before["rss_kib"][role])) / 1024 * 1e6 / objects)
       for role in after["rss_kib"]}
print(json.dumps({"size": bench["size"], "objects": objects, "errors": bench["errors"],
                  "stored_mb": round(stored / 1e6, 1), "disk_mb": round(total / 1e6, 1),
                  "disk_per_byte_stored": round(total / stored, 2),
                  "disk_per_byte_by_part": {p: round(b / stored, 2) for p, b in disk.items()},
                  "disk_bytes_per_object": round(total / objects),
                  "rss_growth_mib_per_million_objects_by_role": rss,
                  "rss_after_mib_by_role": {r: [round(k / 1024) for k in v] for r, v in after["rss_kib"].items()},
                  "put_ops_per_sec": bench["ops_per_sec"]}))
PY
    )
done
