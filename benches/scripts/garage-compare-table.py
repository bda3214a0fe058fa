"""The table of benches/scripts/garage-compare.sh: medians over rounds per workload and store,
and Ignifuge's ratio to Garage (above 1: Ignifuge better; for latencies and CPU the ratio is
Garage's figure over Ignifuge's, so above 1 is better too), then a 64 MiB PUT's server CPU per GiB
against the median of the rounds' pipeline floors (pipeline-floor.sh lines).

Usage: garage-compare-table.py RESULTS.jsonl
"""

import json
import statistics
import sys
from collections import defaultdict

GIB = 1 << 30


def main():
    runs = defaultdict(list)
    floors = []
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        if r["workload"] == "pipeline-floor":
            floors.append(r["cpu_seconds_per_gib"])
            continue
        runs[(r["workload"], r["size"], r["concurrency"], r["store"])].append(r)
    put64 = None
    keys = sorted({(w, s, c) for (w, s, c, _) in runs}, key=lambda k: (k[0], k[1]))
    print("| workload | size | conc. | Ignifuge ops/s | Garage ops/s | ratio | Ignifuge p50 / p99 ms | Garage p50 / p99 ms | p99 ratio | server CPU Ignifuge | server CPU Garage | CPU ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for workload, size, conc in keys:
        row = {}
        for store in ("ignifuge", "garage"):
            rs = runs.get((workload, size, conc, store), [])
            if not rs:
                row[store] = None
                continue
            ok = [r for r in rs if r["ops"] > 0 and r["latency_ms"]["p50"] is not None]
            errors = sum(sum(r["errors"].values()) for r in rs)
            if not ok:
                row[store] = {"ops": None, "p50": None, "p99": None, "cpu": None, "errors": errors}
                continue
            # CPU per GiB where the workload moves object bytes, per operation (ms) where it
            # does not (a listing page, a DeleteObjects of 1000 keys).
            moves_bytes = workload in ("put", "get", "multipart", "mixed")
            cpu = [
                r["server_cpu_seconds"] / (r["ops"] * r["size"] / GIB) if moves_bytes else 1000 * r["server_cpu_seconds"] / r["ops"]
                for r in ok
            ]
            row[store] = {
                "ops": statistics.median(r["ops_per_sec"] for r in ok),
                "p50": statistics.median(r["latency_ms"]["p50"] for r in ok),
                "p99": statistics.median(r["latency_ms"]["p99"] for r in ok),
                "cpu": statistics.median(cpu),
                "cpu_unit": "s/GiB" if moves_bytes else "ms/op",
                "errors": errors,
            }
        i, g = row["ignifuge"], row["garage"]

        def ratio(a, b):
            return "%.2fx" % (a / b) if a and b else "n/a"

        def cell(x, f):
            return f(x) if x and x["ops"] is not None else "n/a"

        print(
            "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
            % (
                workload,
                size,
                conc,
                cell(i, lambda x: "%.1f" % x["ops"]),
                cell(g, lambda x: "%.1f" % x["ops"]),
                ratio(i and i["ops"], g and g["ops"]),
                cell(i, lambda x: "%.1f / %.1f" % (x["p50"], x["p99"])),
                cell(g, lambda x: "%.1f / %.1f" % (x["p50"], x["p99"])),
                ratio(g and g["p99"], i and i["p99"]),
                cell(i, lambda x: "%.2f %s" % (x["cpu"], x["cpu_unit"])),
                cell(g, lambda x: "%.2f %s" % (x["cpu"], x["cpu_unit"])),
                ratio(g and g["cpu"], i and i["cpu"]),
            )
        )
        for store, x in (("Ignifuge", i), ("Garage", g)):
            if x and x["errors"]:
                print("|  | %s errors: %d |" % (store, x["errors"]))
        if (workload, size) == ("put", 64 << 20):
            put64 = i
    if floors and put64 and put64["cpu"]:
        floor = statistics.median(floors)
        print(
            "\nPUT 64 MiB server CPU %.2f s/GiB against the pipeline floor %.2f s/GiB (MD5, CRC64NVME, one copy,"
            " RS 5+4, BLAKE3, one core, median of %d): %.2fx (issue 15's target: <= 1.25x)"
            % (put64["cpu"], floor, len(floors), put64["cpu"] / floor)
        )


if __name__ == "__main__":
    main()
