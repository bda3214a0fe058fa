#!/usr/bin/env bash
# The gateway's resident memory under 32 concurrent uploads of 1 GiB each, against the bound the
# design gives (docs/benchmarks.md). s3bench starts 32 PutObjects of 1 GiB at once through the dc1
# gateway and cuts each off after OPERATION_TIMEOUT_SECS (default 45: completing them all would
# write 58 GB of shards); abandoned uploads are never committed and their shards are discarded.
# The script samples the gateway's RSS every 0.2 s meanwhile; the peak is VmHWM.
# Usage: benches/scripts/gateway-memory.sh   (needs the release binaries ignifuge and s3bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/scripts/dev-cluster.sh 29900 ignifuge-memory-bench
GW=$(python3 -c "import json,sys; print([p['pid'] for p in json.load(open('$DATA/cluster.json'))['processes'] if p['role']=='gateway' and p['datacenter']=='dc1'][0])")
rss() { awk '/^VmRSS/ {print $2}' /proc/"$GW"/status; }
IDLE_KIB=$(rss)
"$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload put --size 1GiB --concurrency 32 \
    --duration-secs "${DURATION_SECS:-30}" --operation-timeout-secs "${OPERATION_TIMEOUT_SECS:-45}" --json > "$DATA/bench.json" 2> "$DATA/bench.err" &
BENCH=$!
PEAK=0
while kill -0 $BENCH 2>/dev/null; do
    NOW=$(rss); [ "$NOW" -gt "$PEAK" ] && PEAK=$NOW
    sleep 0.2
done
wait $BENCH || true
HWM_KIB=$(awk '/^VmHWM/ {print $2}' /proc/"$GW"/status)
python3 - "$IDLE_KIB" "$PEAK" "$HWM_KIB" "$DATA/bench.json" <<'PY'
import json, sys
idle, peak, hwm = (int(x) / 1024 for x in sys.argv[1:4])
bench = json.load(open(sys.argv[4]))
# The design's bound: 48 stripe permits x (5 data + 4 parity) MiB, plus per upload the hashing
# queue (64 chunks) and the body being read, plus the idle gateway.
stripes = 48 * 9
print(json.dumps({"bench": "gateway_memory_32x1GiB", "idle_rss_mib": round(idle, 1),
                  "peak_rss_sampled_mib": round(peak, 1), "peak_rss_hwm_mib": round(hwm, 1),
                  "stripe_buffers_bound_mib": stripes, "uploads_completed": bench.get("ops"),
                  "mib_per_sec": bench.get("mib_per_sec"), "errors": bench.get("errors")}))
PY
