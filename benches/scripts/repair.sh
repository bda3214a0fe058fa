#!/usr/bin/env bash
# Repair throughput and time to full protection after a datacenter is replaced by empty nodes,
# against the sequential write bandwidth (with fdatasync) of the same disk, in one run.
# The cluster is filled with DATA_MIB of 16 MiB objects; dc3 burns (kill -9, disks deleted) and
# comes back empty at once; the repair service (rounds every second, no rate limit) rebuilds the
# 3 shards of every 9 that dc3 held. Usage: benches/scripts/repair.sh   (needs the release binary;
# prints one JSON line). DATA_MIB (default 512) sets the amount of data.
set -euo pipefail
cd "$(dirname "$0")/../.."
export IGNIFUGE_REPAIR_INTERVAL_MS=1000 IGNIFUGE_REPAIR_BYTES_PER_SEC=100000000000
source benches/scripts/dev-cluster.sh 29600 ignifuge-repair-bench
python3 - "$BIN" "$DATA" "$PORT" "${DATA_MIB:-512}" <<'PY'
import boto3, json, os, subprocess, sys, time
from botocore.config import Config
binary, data, port, data_mib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = Config(s3={"addressing_style": "path"})
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", config=cfg)
s3.create_bucket(Bucket="repair")
SIZE = 16 << 20
body = os.urandom(SIZE)
for i in range(data_mib * (1 << 20) // SIZE):
    s3.put_object(Bucket="repair", Key=f"o{i}", Body=body)

def durability():
    out = subprocess.run([binary, "admin", "--data-dir", data, "durability", "--json"], capture_output=True, check=True)
    return json.loads(out.stdout)

deadline = time.time() + 120
while not durability()["healthy"]:
    assert time.time() < deadline, "cluster not healthy before the fire"
    time.sleep(0.5)

# The disk's sequential write bandwidth with fdatasync, measured now (1 GiB, like the shards' disk).
probe = os.path.join(data, "dd-probe")
t = time.perf_counter()
subprocess.run(["dd", "if=/dev/zero", f"of={probe}", "bs=1M", "count=1024", "conv=fdatasync"],
               capture_output=True, check=True)
disk_bps = (1 << 30) / (time.perf_counter() - t)
os.remove(probe)

subprocess.run([binary, "drill", "--data-dir", data, "fire", "--datacenter", "dc3"], capture_output=True, check=True)
subprocess.run([binary, "drill", "--data-dir", data, "replace", "--datacenter", "dc3"], capture_output=True, check=True)
t = time.perf_counter()
while True:
    report = durability()
    if report["healthy"]:
        break
    assert time.perf_counter() - t < 1800, "no full protection within 30 min"
    time.sleep(0.5)
elapsed = time.perf_counter() - t
shard_bytes = sum(os.path.getsize(os.path.join(root, f))
                  for n in (1, 2, 3) for root, _, files in os.walk(os.path.join(data, f"dc3-n{n}", "shards")) for f in files)
rate = shard_bytes / elapsed
print(json.dumps({"bench": "repair_after_datacenter_replacement", "data_mib": data_mib,
                  "rebuilt_mib": round(shard_bytes / (1 << 20), 1), "time_to_full_protection_s": round(elapsed, 2),
                  "rebuild_mib_per_s": round(rate / (1 << 20), 1), "disk_write_mib_per_s": round(disk_bps / (1 << 20), 1),
                  "fraction_of_disk_bandwidth": round(rate / disk_bps, 3)}))
PY
