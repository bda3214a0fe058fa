#!/usr/bin/env bash
# Durable PUT throughput against the raw sequential write bandwidth (with fdatasync) of the same
# disk, in one run: `dd bs=1M count=1024 conv=fdatasync` into the cluster's data directory, then
# s3bench PUTs of 8 MiB objects (4 in flight, 10 s) through the dc1 gateway of `ignifuge dev`,
# then dd again. Every PUT writes 9/5 of its bytes as shards (5+4), each shard fdatasynced with its
# directory before the PUT is acknowledged. Prints one JSON line.
# Usage: benches/scripts/put-vs-disk.sh   (needs the release binaries ignifuge and s3bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/scripts/dev-cluster.sh 29960 ignifuge-put-disk
dd_mib_s() {
    local start end
    start=$(date +%s.%N)
    dd if=/dev/zero of="$DATA/dd-probe" bs=1M count=1024 conv=fdatasync status=none
    end=$(date +%s.%N)
    rm -f "$DATA/dd-probe"
    python3 -c "print(1024 / ($end - $start))"
}
DD1=$(dd_mib_s)
"$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload put --size 8MiB --concurrency 4 --duration-secs 10 --json > "$DATA/put.json"
DD2=$(dd_mib_s)
python3 - "$DD1" "$DD2" "$DATA/put.json" <<'PY'
import json, sys
dd1, dd2 = float(sys.argv[1]), float(sys.argv[2])
put = json.load(open(sys.argv[3]))
disk = (dd1 + dd2) / 2
shard_mib_s = put["mib_per_sec"] * 9 / 5
print(json.dumps({"bench": "put_vs_disk", "dd_fdatasync_mib_s": [round(dd1, 1), round(dd2, 1)],
                  "put_mib_s": round(put["mib_per_sec"], 1), "shard_write_mib_s": round(shard_mib_s, 1),
                  "put_p50_ms": put["latency_ms"]["p50"], "errors": put["errors"],
                  "object_bytes_fraction_of_disk": round(put["mib_per_sec"] / disk, 3),
                  "shard_bytes_fraction_of_disk": round(shard_mib_s / disk, 3)}))
PY
