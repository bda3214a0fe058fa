#!/usr/bin/env bash
# GET latency with every process of one datacenter killed, against the same GETs on the healthy
# cluster, through the same gateway (dc2), in one run. Objects are written while healthy, so the
# degraded reads must reconstruct the shards dc1 held (3 of every 9).
# Usage: benches/scripts/degraded-read.sh   (needs the release binary; prints one JSON line)
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/scripts/dev-cluster.sh 29500 ignifuge-degraded-read
python3 - "$DATA" "$PORT" <<'PY'
import boto3, json, os, signal, statistics, sys, time
from botocore.config import Config
data, port = sys.argv[1], int(sys.argv[2])
cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port + 1}", config=cfg)
s3.create_bucket(Bucket="degraded")
SIZE, OBJECTS, ROUNDS = 8 << 20, 8, 3
body = os.urandom(SIZE)
for i in range(OBJECTS):
    s3.put_object(Bucket="degraded", Key=f"o{i}", Body=body)
def timed():
    out = []
    for _ in range(ROUNDS):
        for i in range(OBJECTS):
            t = time.perf_counter()
            got = s3.get_object(Bucket="degraded", Key=f"o{i}")["Body"].read()
            out.append(time.perf_counter() - t)
            assert got == body
    return out
healthy = timed()
procs = json.load(open(f"{data}/cluster.json"))["processes"]
for p in procs:
    if p["datacenter"] == "dc1":
        os.kill(p["pid"], signal.SIGKILL)
time.sleep(0.5)
degraded = timed()
p50 = lambda xs: statistics.median(xs) * 1000
print(json.dumps({"bench": "degraded_read", "object_mib": SIZE >> 20, "gets": len(healthy),
                  "healthy_p50_ms": round(p50(healthy), 1), "dc1_down_p50_ms": round(p50(degraded), 1),
                  "ratio": round(p50(degraded) / p50(healthy), 2),
                  "healthy_max_ms": round(max(healthy) * 1000, 1), "dc1_down_max_ms": round(max(degraded) * 1000, 1)}))
PY
