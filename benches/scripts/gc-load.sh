#!/usr/bin/env bash
# Client latency while garbage collection reclaims a mass delete, at a busy share of the time
# (IGNIFUGE_GC_BUSY_SHARE: 1 is full speed, the default 0.25 rests three times what each batch
# took) and the repair survey's share (IGNIFUGE_REPAIR_SURVEY_BUSY_SHARE).
# 1. timed, baseline: WINDOWS (default 6) windows with no garbage, each 3 s of 4 KiB GETs then
#    3 s of 1 MiB PUTs (kept: no garbage of their own), 16 in flight;
# 2. not timed: GARBAGE (default 4000) 1 MiB objects written and deleted (grace 1 s, a GC round
#    every 2 s, a repair round every 10 s);
# 3. timed: the same windows while the garbage is collected, each with the garbage's blob
#    directories still on the nodes' disks at its end (9 per blob of 1 MiB at 5+4: all blob
#    directories less those of live objects, 9 per 1 MiB PUT of the windows).
# Prints one line per window, then the medians of each phase and the ratios (GC over baseline).
# Usage: benches/scripts/gc-load.sh   (release binaries ignifuge and s3bench; CARGO_TARGET_DIR
#        picks the build)
set -euo pipefail
cd "$(dirname "$0")/../.."
export IGNIFUGE_GC_GRACE_MS=1000 IGNIFUGE_GC_INTERVAL_MS=2000 IGNIFUGE_REPAIR_INTERVAL_MS=10000
source benches/scripts/dev-cluster.sh 29980 ignifuge-gc-load
run() { "$S3BENCH" --endpoint "http://127.0.0.1:$PORT" --json "$@" 2> /dev/null; }
blob_dirs() { find "$DATA" -type d -path '*/shards/??/?*' -prune -print 2> /dev/null | wc -l; }
windows() {
    for window in $(seq 1 "${WINDOWS:-6}"); do
        get=$(run --workload get --size 4KiB --concurrency 16 --duration-secs 3 | tail -1)
        put=$(run --workload put --size 1MiB --concurrency 16 --duration-secs 3 | tail -1)
        echo "{\"phase\": \"$1\", \"get\": $get, \"put\": $put, \"blob_dirs\": $(blob_dirs)}"
    done
}
{
    windows baseline
    echo "{\"live_dirs\": $(blob_dirs)}"
    run --workload put --size 1MiB --concurrency 16 --ops "${GARBAGE:-4000}" --cleanup > /dev/null
    echo "{\"garbage_made\": true, \"blob_dirs\": $(blob_dirs)}"
    windows gc
} | python3 -c "
import json, statistics, sys
rows = [json.loads(line) for line in sys.stdin if line.startswith('{')]
phases = {}
live = None
for r in rows:
    if 'live_dirs' in r:
        live = r['live_dirs']
        continue
    if 'garbage_made' in r:
        r['garbage_dirs'] = r['blob_dirs'] - live
        print('garbage made: %d blob directories on the nodes' % r['garbage_dirs'])
        continue
    g, p = r['get'], r['put']
    if live is not None and r['phase'] == 'gc':
        live += 9 * p['ops']
    left = '' if r['phase'] == 'baseline' else ' | garbage dirs left %d' % max(r['blob_dirs'] - live, 0)
    r['garbage_dirs'] = max(r['blob_dirs'] - live, 0) if live is not None else None
    print('%-8s GET 4KiB %7.1f ops/s p99 %6.1f ms | PUT 1MiB %6.1f ops/s p99 %7.1f ms%s' % (
        r['phase'], g['ops_per_sec'], g['latency_ms']['p99'], p['ops_per_sec'], p['latency_ms']['p99'], left))
    phases.setdefault(r['phase'], []).append(r)
def med(phase, op, f):
    return statistics.median(f(r[op]) for r in phases[phase])
out = {'bench': 'gc_load'}
for op in ('get', 'put'):
    for name, f in (('ops_s', lambda x: x['ops_per_sec']), ('p99_ms', lambda x: x['latency_ms']['p99'])):
        b, g = med('baseline', op, f), med('gc', op, f)
        out['%s_%s' % (op, name)] = [round(b, 1), round(g, 1), round(g / b, 2)]
out['garbage_dirs_left'] = phases['gc'][-1]['garbage_dirs']
print(json.dumps(out))
"
