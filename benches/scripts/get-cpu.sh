#!/usr/bin/env bash
# Gateway CPU per byte of large GETs (no reconstruction) against the CPU of moving the same bytes
# over loopback TCP, in one run. s3bench GETs 64 MiB objects (4 in flight, 15 s) through the dc1
# gateway of `ignifuge dev` while a sampler reads that gateway's utime+stime from /proc every
# 0.2 s; the gateway's CPU over the timed window (interpolated from the samples) is divided by the
# bytes served. The baseline is s3bench's http-baseline: the same concurrency of 64 MiB GETs from
# a minimal hyper server on 127.0.0.1, whose client and server share one process, so its CPU covers
# one send and one receive of every byte. The gateway also does one receive (shards from the
# nodes) and one send (to the client) per byte, plus BLAKE3 verification and S3. Prints one JSON line.
# Usage: benches/scripts/get-cpu.sh   (needs the release binaries ignifuge and s3bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/scripts/dev-cluster.sh 29930 ignifuge-get-cpu
GATEWAY_PID=$(python3 -c "import json,sys; m=json.load(open('$DATA/cluster.json')); \
print([p['pid'] for p in m['processes'] if p['role']=='gateway' and p['datacenter']=='dc1'][0])")
TICK=$(getconf CLK_TCK)
sample() {
    while kill -0 "$GATEWAY_PID" 2>/dev/null; do
        echo "$(date +%s%3N) $(awk '{print $14 + $15}' "/proc/$GATEWAY_PID/stat")"
        sleep 0.2
    done
}
sample > "$DATA/cpu.samples" &
SAMPLER=$!
"$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --workload get --size 64MiB --objects 4 --concurrency 4 \
    --duration-secs 15 --json > "$DATA/get.json"
sleep 0.5   # one more sample after the timed window
kill "$SAMPLER" 2>/dev/null || true
"$S3BENCH" --workload http-baseline --size 64MiB --concurrency 4 --duration-secs 15 --json > "$DATA/base.json"
python3 - "$DATA/get.json" "$DATA/base.json" "$DATA/cpu.samples" "$TICK" <<'PY'
import json, sys
get, base = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
tick = float(sys.argv[4])
samples = [tuple(map(float, l.split())) for l in open(sys.argv[3]) if len(l.split()) == 2]
def cpu_at(t_ms):
    # Linear interpolation of the gateway's cumulative CPU seconds at time t_ms.
    for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
        if t0 <= t_ms <= t1:
            return (c0 + (c1 - c0) * (t_ms - t0) / max(t1 - t0, 1)) / tick
    raise SystemExit(f"no CPU samples around {t_ms}")
start = get["started_unix_ms"]
end = start + get["seconds"] * 1000
gateway_cpu = cpu_at(end) - cpu_at(start)
gib = get["bytes"] / 2**30
base_gib = base["bytes"] / 2**30
gw_per_gib = gateway_cpu / gib
base_per_gib = base["client_cpu_seconds"] / base_gib
print(json.dumps({"bench": "get_cpu", "get_mib_s": round(get["mib_per_sec"], 1), "get_errors": get["errors"],
                  "gateway_cpu_s_per_gib": round(gw_per_gib, 3),
                  "loopback_mib_s": round(base["mib_per_sec"], 1),
                  "loopback_cpu_s_per_gib": round(base_per_gib, 3),
                  "gateway_over_loopback": round(gw_per_gib / base_per_gib, 2),
                  "get_p50_ms": get["latency_ms"]["p50"], "loopback_p50_ms": base["latency_ms"]["p50"]}))
PY
