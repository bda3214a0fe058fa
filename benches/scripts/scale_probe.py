#!/usr/bin/env python3
"""Latency of HEAD, GET and ListObjectsV2 at random places of a bucket already filled, one
request at a time (boto3, so each figure includes this client's own ~1 ms per request, the same
at every size), and the resident memory and metadata bytes on disk of every process of an
`ignifuge dev` cluster. Used by scale-cluster.sh; prints one JSON line.

Usage: scale_probe.py DATA_DIR BUCKET KEY_PREFIX KEYS BUCKET_KEYS [REQUESTS]
  HEADs and GETs go to random keys of KEY_PREFIX0 .. KEY_PREFIX{KEYS-1} (s3bench's put keys:
  <prefix>put/<index>); each listing starts after a random one of them, in the order S3 lists
  them, at least 1000 keys before the last, so every page is full. BUCKET_KEYS: how many keys
  the bucket holds in all (reported).
"""
import gc
import json
import os
import random
import statistics
import sys
import time

import boto3
from botocore.config import Config


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def timed(samples, call):
    started = time.perf_counter()
    result = call()
    samples.append((time.perf_counter() - started) * 1000)
    return result


def summary(samples):
    return {"p50_ms": round(statistics.median(samples), 3), "p99_ms": round(percentile(samples, 99), 3), "n": len(samples)}


def dir_bytes(path):
    """The apparent size of every file under `path` (RocksDB's tables, WAL and info logs)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def main():
    data_dir, bucket, key_prefix = sys.argv[1], sys.argv[2], sys.argv[3]
    keys, bucket_keys = int(sys.argv[4]), int(sys.argv[5])
    requests = int(sys.argv[6]) if len(sys.argv) > 6 else 2000
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        # One attempt: an error is counted, never retried away.
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )
    rng = random.Random(7)
    key = lambda: f"{key_prefix}{rng.randrange(keys)}"
    heads, gets, lists, errors = [], [], [], 0

    def attempt(samples, call):
        nonlocal errors
        try:
            timed(samples, call)
        except Exception as e:  # counted, never hidden
            errors += 1
            print(f"scale_probe: {e}", file=sys.stderr)

    # A few requests first: connections and the client's own first-use costs are not measured.
    for _ in range(20):
        attempt([], lambda: s3.head_object(Bucket=bucket, Key=key()))
    for _ in range(requests):
        attempt(heads, lambda: s3.head_object(Bucket=bucket, Key=key()))
        attempt(gets, lambda: s3.get_object(Bucket=bucket, Key=key())["Body"].read())
    pages = max(requests // 10, 20)
    in_order = sorted(f"{key_prefix}{n}" for n in range(keys))[: max(keys - 1000, 1)]
    # Out of the collector's sight: at 10 million keys its full collections, which boto3's
    # parsing sets off, would walk this list during timed requests (the listings' p99 at 10 M was
    # 206-225 ms before this, 81-119 ms after: the client's cost, not the store's).
    gc.freeze()
    for _ in range(pages):
        start = rng.choice(in_order)
        try:
            page = timed(lists, lambda: s3.list_objects_v2(Bucket=bucket, Prefix=key_prefix, StartAfter=start, MaxKeys=1000))
        except Exception as e:  # counted, never hidden
            errors += 1
            print(f"scale_probe: {e}", file=sys.stderr)
            continue
        if page.get("KeyCount", 0) != min(1000, keys - 1):
            errors += 1
            print(f"scale_probe: a page after {start} held {page.get('KeyCount')} keys", file=sys.stderr)
    cluster = json.load(open(os.path.join(data_dir, "cluster.json")))
    memory = {}
    for process in cluster["processes"]:
        with open(f"/proc/{process['pid']}/status") as status:
            rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        memory[process["node_id"] or process["role"]] = {"role": process["role"], "rss_mib": round(rss_kib / 1024, 1)}
    meta_bytes = {}
    for name in sorted(os.listdir(data_dir)):
        meta = os.path.join(data_dir, name, "meta")
        if os.path.isdir(meta):
            meta_bytes[name] = {
                "meta": dir_bytes(meta),
                "snapshots": dir_bytes(os.path.join(data_dir, name, "meta-snapshots")),
                "shard_index": dir_bytes(os.path.join(data_dir, name, "index")),
            }
    print(json.dumps({
        "keys": keys,
        "bucket_keys": bucket_keys,
        "head": summary(heads),
        "get": summary(gets),
        "list_1000": summary(lists),
        "errors": errors,
        "memory": memory,
        "disk": meta_bytes,
    }))


if __name__ == "__main__":
    main()
