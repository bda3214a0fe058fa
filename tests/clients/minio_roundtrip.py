"""minio-py against an Ignifuge endpoint: bucket, multipart fput/fget, stat, list, remove.

Usage: minio_roundtrip.py ENDPOINT BUCKET UPLOAD_PATH DOWNLOAD_PATH (credentials from the
environment). Prints one JSON line; any S3 error raises and fails the calling test.
"""
import json
import os
import sys
from urllib.parse import urlparse

from minio import Minio

endpoint, bucket, upload, download = sys.argv[1:5]
url = urlparse(endpoint)
client = Minio(
    url.netloc,
    access_key=os.environ["AWS_ACCESS_KEY_ID"],
    secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    region=os.environ.get("AWS_REGION", "us-east-1"),
    secure=False,
)
client.make_bucket(bucket)
assert client.bucket_exists(bucket)
# 5 MiB parts force minio-py's multipart path for the upload.
client.fput_object(bucket, "minio/upload.bin", upload, part_size=5 * 1024 * 1024)
stat = client.stat_object(bucket, "minio/upload.bin")
client.fget_object(bucket, "minio/upload.bin", download)
listed = [o.object_name for o in client.list_objects(bucket, prefix="minio/", recursive=True)]
client.remove_object(bucket, "minio/upload.bin")
after = [o.object_name for o in client.list_objects(bucket, prefix="minio/", recursive=True)]
client.remove_bucket(bucket)
print(json.dumps({"size": stat.size, "etag": stat.etag, "listed": listed, "after_remove": after}))
