# Sourced by the benchmark scripts: starts `ignifuge dev` from the release build on BASE_PORT (or
# the port given) with a fresh data directory, stops it and removes the directory when the
# script exits, waits until it is ready and exports its endpoint and credentials.
# Sets BIN (the ignifuge binary), S3BENCH (the s3bench binary), DATA, PORT and DEV (its pid);
# `dev_stop` stops every process of the cluster and `dev_start` starts it again on $DATA.
# Usage: source benches/scripts/dev-cluster.sh <default port> <data dir name>
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$(realpath "$TARGET/release/ignifuge")"
S3BENCH="$(realpath -m "$TARGET/release/s3bench")"
PORT=${BASE_PORT:-$1}
DATA=$(mktemp -d "/var/tmp/$2.XXXXXX")
dev_start() {
    : > "$DATA/out" # now, not in the child: a restart must not find the last start's ready line
    IGNIFUGE_LOG="${IGNIFUGE_LOG:-warn}" "$BIN" dev --data-dir "$DATA" --base-port "$PORT" > "$DATA/out" 2>> "$DATA/err" &
    DEV=$!
    for _ in $(seq 1 300); do grep -q '^# ready' "$DATA/out" 2>/dev/null && break; sleep 0.2; done
    grep -q '^# ready' "$DATA/out" || { echo "ignifuge dev did not become ready: $(tail -5 "$DATA/err")" >&2; exit 1; }
    eval "$(grep '^export' "$DATA/out")"
}
dev_stop() { # `ignifuge dev` stops its processes (SIGTERM, SIGKILL after 10 s) before it exits
    [ -n "${DEV:-}" ] || return 0
    kill -TERM "$DEV" 2>/dev/null || true
    wait "$DEV" 2>/dev/null || true
    DEV=
}
trap 'dev_stop; rm -rf "$DATA"' EXIT
dev_start
