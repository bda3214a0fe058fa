#!/usr/bin/env bash
# The CPU floor of a PUT: the work no design can skip, per GiB of body, on one core. Runs
# `stripe-profile` (MD5 and CRC64NVME of the body, one copy into the stripe buffer, Reed-Solomon
# 5+4 and BLAKE3 of all nine shards: exactly the gateway's functions) over STRIPES stripes
# (default 64, 320 MiB) and prints one JSON line: the process's CPU seconds per GiB of body. (The
# issue's floor names MD5, BLAKE3, Reed-Solomon and one copy; the CRC64NVME every SDK now sends
# is counted too, about 1 % of it.)
# garage-compare.sh runs it in every round and sets a 64 MiB PUT's server CPU per GiB against it.
# Usage: benches/scripts/pipeline-floor.sh   (the release binary stripe-profile; CARGO_TARGET_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$(realpath -m "${CARGO_TARGET_DIR:-target}/release/stripe-profile")"
[[ -x "$BIN" ]] || { echo "pipeline-floor: no $BIN (cargo build --release -p ignifuge-benches --bin stripe-profile)" >&2; exit 1; }
python3 - "$BIN" "${STRIPES:-64}" <<'PY'
import json, resource, subprocess, sys
binary, stripes = sys.argv[1], int(sys.argv[2])
subprocess.run([binary, str(stripes)], check=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime
gib = stripes * 5 * (1 << 20) / (1 << 30)
print(json.dumps({"workload": "pipeline-floor", "store": "floor", "stripes": stripes,
                  "cpu_seconds": round(cpu, 3), "cpu_seconds_per_gib": round(cpu / gib, 3)}))
PY
