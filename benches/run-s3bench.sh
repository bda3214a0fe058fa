#!/usr/bin/env bash
# Runs s3bench's fixed matrix against a fresh `ignifuge dev` cluster on 127.0.0.1 and prints
# one JSON line per run. The cluster is stopped (SIGTERM, then wait) however the script ends.
#
#   benches/run-s3bench.sh                       # results on stdout, progress on stderr
#   S3BENCH_OUT=results.jsonl benches/run-s3bench.sh
#
# Environment: CARGO_TARGET_DIR (default target), S3BENCH_BASE_PORT (default 29000; the
# cluster uses base..base+2 for gateways and base+10..base+18 for nodes),
# S3BENCH_DURATION_SECS (default 10 per run), S3BENCH_OUT (also append the lines there),
# S3BENCH_KEEP_DATA=1 (keep the cluster's data directory and logs), S3BENCH_SKIP_BUILD=1 (use
# the binaries already in the target directory, e.g. while the tree does not build),
# S3BENCH_MATRIX=website (instead of the default matrix: a 4 KiB object read anonymously through
# the S3 API and through the website endpoint of the same gateway, interleaved, two rounds, with
# the gateway's CPU per request; needs the aws CLI); S3BENCH_MATRIX=delete (1000 keys deleted by
# one DeleteObjects against the same deleted one DeleteObject at a time, interleaved, two rounds).
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
base_port="${S3BENCH_BASE_PORT:-29000}"
duration_secs="${S3BENCH_DURATION_SECS:-10}"
out="${S3BENCH_OUT:-}"
ready_timeout_secs=180
stop_timeout_secs=30

if [[ "${S3BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p ignifuge
    cargo build --release -p ignifuge-benches --bin s3bench
fi
ignifuge="$target_dir/release/ignifuge"
s3bench="$target_dir/release/s3bench"

work_dir="$(mktemp -d "${TMPDIR:-/tmp}/s3bench-XXXXXX")"
dev_pid=""

stop_cluster() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$dev_pid" ]] && kill -0 "$dev_pid" 2>/dev/null; then
        kill -TERM "$dev_pid" 2>/dev/null || true
        # `ignifuge dev` stops its children (SIGTERM, then SIGKILL after 10 s) before it exits.
        for _ in $(seq 1 $((stop_timeout_secs * 10))); do
            kill -0 "$dev_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$dev_pid" 2>/dev/null; then
            echo "run-s3bench: ignifuge dev did not stop in ${stop_timeout_secs} s; killing it" >&2
            kill -KILL "$dev_pid" 2>/dev/null || true
        fi
        wait "$dev_pid" 2>/dev/null || true
    fi
    if [[ "${S3BENCH_KEEP_DATA:-0}" == 1 ]]; then
        echo "run-s3bench: cluster data and logs kept in $work_dir" >&2
    else
        rm -rf "$work_dir"
    fi
    exit "$status"
}
trap stop_cluster EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$ignifuge" dev --data-dir "$work_dir/cluster" --base-port "$base_port" \
    >"$work_dir/dev.out" 2>"$work_dir/dev.err" &
dev_pid=$!

for _ in $(seq 1 $((ready_timeout_secs * 10))); do
    grep -q '^# ready' "$work_dir/dev.out" && break
    if ! kill -0 "$dev_pid" 2>/dev/null; then
        echo "run-s3bench: ignifuge dev exited before it was ready:" >&2
        cat "$work_dir/dev.err" >&2
        exit 1
    fi
    sleep 0.1
done
if ! grep -q '^# ready' "$work_dir/dev.out"; then
    echo "run-s3bench: ignifuge dev not ready after ${ready_timeout_secs} s" >&2
    exit 1
fi
eval "$(grep '^export ' "$work_dir/dev.out")"
echo "run-s3bench: cluster ready at $AWS_ENDPOINT_URL; $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) cores" >&2

failures=0
bench() {
    local line
    if line="$("$s3bench" --json --duration-secs "$duration_secs" "$@")"; then
        echo "$line"
        if [[ -n "$out" ]]; then echo "$line" >>"$out"; fi
    else
        echo "run-s3bench: s3bench $* failed" >&2
        failures=$((failures + 1))
    fi
}

# CPU seconds (user + system) the dc1 gateway has used so far.
gateway_cpu_secs() {
    local pid
    pid="$(python3 -c 'import json,sys; print(next(p["pid"] for p in json.load(open(sys.argv[1]))["processes"] if p["role"] == "gateway"))' "$work_dir/cluster/cluster.json")"
    awk -v tck="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / tck }' "/proc/$pid/stat"
}

# One run with the gateway's CPU seconds per request added to its JSON line.
bench_gateway_cpu() {
    local before after line
    before="$(gateway_cpu_secs)"
    if line="$("$s3bench" --json --duration-secs "$duration_secs" "$@")"; then
        after="$(gateway_cpu_secs)"
        line="$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); cpu=float(sys.argv[3])-float(sys.argv[2]); r["gateway_cpu_secs"]=cpu; r["gateway_cpu_us_per_op"]=cpu*1e6/max(r.get("ops",1),1); print(json.dumps(r))' "$line" "$before" "$after")"
        echo "$line"
        if [[ -n "$out" ]]; then echo "$line" >>"$out"; fi
    else
        echo "run-s3bench: s3bench $* failed" >&2
        failures=$((failures + 1))
    fi
}

if [[ "${S3BENCH_MATRIX:-default}" == website ]]; then
    bucket=website-bench
    web_port=$((base_port + 3))
    head -c 4096 /dev/urandom >"$work_dir/small.bin"
    aws s3 mb "s3://$bucket" >&2
    aws s3api delete-public-access-block --bucket "$bucket"
    aws s3api put-bucket-policy --bucket "$bucket" --policy "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::$bucket/*\"}]}"
    aws s3 website "s3://$bucket" --index-document index.html
    aws s3 cp "$work_dir/small.bin" "s3://$bucket/small.bin" >&2
    bench --workload http-baseline --size 4KiB --concurrency 16
    for round in 1 2; do
        bench_gateway_cpu --workload http-baseline --concurrency 16 --target "$AWS_ENDPOINT_URL/$bucket/small.bin"
        bench_gateway_cpu --workload http-baseline --concurrency 16 --target "http://127.0.0.1:$web_port/small.bin" \
            --host-header "$bucket.s3-website.localhost:$web_port"
    done
    bench --workload http-baseline --size 4KiB --concurrency 16
    if ((failures > 0)); then
        echo "run-s3bench: $failures run(s) failed" >&2
        exit 1
    fi
    exit 0
fi

if [[ "${S3BENCH_MATRIX:-default}" == delete ]]; then
    # 1000 keys removed by one DeleteObjects against the same 1000 keys removed by DeleteObject
    # one at a time (what a client without DeleteObjects, or the gateway before batching, pays),
    # interleaved, two rounds; the keys are written before each clock starts, and each run ends
    # when its keys are gone (the duration is only a bound).
    duration_secs=600
    for round in 1 2; do
        bench --workload delete --size 4KiB --concurrency 1 --objects 1000
        bench --workload delete-objects --size 4KiB --concurrency 1 --objects 1000 --delete-batch-keys 1000
    done
    if ((failures > 0)); then
        echo "run-s3bench: $failures run(s) failed" >&2
        exit 1
    fi
    exit 0
fi

# The raw loopback round trip first: the floor every small-object figure is divided by.
bench --workload http-baseline --size 4KiB --concurrency 16
bench --workload put --size 4KiB --concurrency 16
bench --workload get --size 4KiB --concurrency 16
# The same floor for large bodies: 8 MiB answers over loopback.
bench --workload http-baseline --size 8MiB --concurrency 4
bench --workload put --size 8MiB --concurrency 4
bench --workload get --size 8MiB --concurrency 4
bench --workload list --size 4KiB --concurrency 16 --objects 1000
bench --workload multipart --size 64MiB --part-size 8MiB --concurrency 4
# The floor again: how far the shared machine drifted during the matrix.
bench --workload http-baseline --size 4KiB --concurrency 16

if ((failures > 0)); then
    echo "run-s3bench: $failures run(s) failed" >&2
    exit 1
fi
