"""boto3 against an Ignifuge gateway, as a Python user would drive it.

Usage: boto3_roundtrip.py ENDPOINT BUCKET UPLOAD_FILE DOWNLOAD_FILE
Credentials and region come from the environment (AWS_ACCESS_KEY_ID, ...).
Prints one JSON line with what it observed; exits non-zero on the first mismatch.
"""

import hashlib
import json
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def md5_file(path):
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(condition, message):
    if not condition:
        print("FAILED: " + message, file=sys.stderr)
        sys.exit(1)


def main():
    endpoint, bucket, upload_path, download_path = sys.argv[1:5]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
    )
    s3.create_bucket(Bucket=bucket)

    # Managed transfers with the default TransferConfig: multipart above 8 MiB, 8 MiB parts.
    config = TransferConfig()
    s3.upload_file(upload_path, bucket, "boto3/upload.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="boto3/upload.bin")
    s3.download_file(bucket, "boto3/upload.bin", download_path, Config=config)
    check(md5_file(download_path) == md5_file(upload_path), "download_file bytes differ from upload_file bytes")

    # Plain put/get with the default checksum behaviour (CRC32 when supported).
    body = b"boto3 put_object body \x00\x01\x02" * 100
    put = s3.put_object(Bucket=bucket, Key="boto3/small.bin", Body=body, Metadata={"lang": "python"})
    check(put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), "put_object ETag %r" % put["ETag"])
    got = s3.get_object(Bucket=bucket, Key="boto3/small.bin")
    check(got["Body"].read() == body, "get_object body differs")
    check(got["Metadata"] == {"lang": "python"}, "get_object Metadata %r" % got["Metadata"])
    checked = s3.get_object(Bucket=bucket, Key="boto3/small.bin", ChecksumMode="ENABLED")
    check(checked["Body"].read() == body, "get_object (checksum mode) body differs")
    put_crc = put.get("ChecksumCRC32")
    got_crc = checked.get("ChecksumCRC32")
    check(got_crc is not None, "no ChecksumCRC32 with ChecksumMode=ENABLED: %r" % sorted(checked.keys()))
    check(put_crc is None or put_crc == got_crc, "ChecksumCRC32 put %r get %r" % (put_crc, got_crc))

    # Listing decodes keys that boto3 asks to be URL-encoded.
    odd_key = "boto3/with space+plus&amp.txt"
    s3.put_object(Bucket=bucket, Key=odd_key, Body=b"odd")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="boto3/")
    keys = sorted(item["Key"] for item in listed.get("Contents", []))
    expected = sorted(["boto3/upload.bin", "boto3/small.bin", odd_key])
    check(keys == expected, "list_objects_v2 keys %r, expected %r" % (keys, expected))
    check(s3.get_object(Bucket=bucket, Key=odd_key)["Body"].read() == b"odd", "odd key body")

    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": odd_key}, {"Key": "boto3/small.bin"}]})
    check(not deleted.get("Errors"), "delete_objects errors %r" % deleted.get("Errors"))
    remaining = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    check(remaining == ["boto3/upload.bin"], "keys after delete_objects %r" % remaining)

    print(json.dumps({
        "upload_etag": head["ETag"],
        "upload_size": head["ContentLength"],
        "small_crc32": got_crc,
    }))


if __name__ == "__main__":
    main()
