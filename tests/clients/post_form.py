"""Browser form uploads (PostObject), as boto3's generate_presigned_post makes them and as a
browser sends them.

Usage: post_form.py ENDPOINT BUCKET [--browser SCREENSHOT_DIR]
Credentials and region come from the environment (AWS_ACCESS_KEY_ID, ...), as `ignifuge dev`
prints them. BUCKET exists, is private and unversioned. Each check prints "ok: ..."; the script
ends with "post_form: all checks passed" and exits 0, or prints "FAILED: ..." and exits 1.

Forms are built by boto3 (policy, credential, date, signature) and sent with urllib3's
multipart encoder, or by headless Chromium (--browser) from an HTML page holding the form.
"""

import hashlib
import http.client
import json
import os
import socket
import sys
import tempfile
import time
import urllib.parse
import xml.sax.saxutils

import boto3
import botocore.config
import urllib3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser_site  # noqa: E402  (its check helpers; selenium is imported only to start a browser)
from browser_site import CHECKS, CheckFailed, check, ok  # noqa: E402


def client(endpoint):
    # botocore signs presigned POSTs with SigV2 unless told otherwise; Ignifuge takes SigV4 only.
    config = botocore.config.Config(
        s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4"
    )
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def post(url, fields, file_name, content, after=None, file_type="application/octet-stream", headers=None):
    """POSTs the form: fields in order, then the file (then `after`, fields a server ignores).
    `fields` is a dict or a list of pairs (to send a name twice); `headers` are sent besides."""
    pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
    form = pairs + [("file", (file_name, content, file_type))]
    if after:
        form += list(after.items())
    body, content_type = urllib3.encode_multipart_formdata(form)
    pool = urllib3.PoolManager(retries=False, timeout=60)
    headers = dict(headers or {}, **{"Content-Type": content_type})
    return pool.request("POST", url, body=body, headers=headers, redirect=False)


def error_code(response):
    text = response.data.decode("utf-8", "replace")
    start, end = text.find("<Code>"), text.find("</Code>")
    code = text[start + 6 : end] if start >= 0 and end > start else None
    start, end = text.find("<Message>"), text.find("</Message>")
    message = text[start + 9 : end] if start >= 0 and end > start else None
    if message is not None:
        message = xml.sax.saxutils.unescape(message, {"&apos;": "'", "&quot;": '"'})
    return code, message


def expect_error(response, status, code, message_part, what):
    got_code, message = error_code(response)
    check(
        response.status == status and got_code == code and message_part in (message or ""),
        "%s: expected %d %s (%r), got %d %s %r" % (what, status, code, message_part, response.status, got_code, message),
    )
    ok("%s: %d %s %r" % (what, status, code, message))


def absent(s3, bucket, key, what):
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as e:
        check(e.response["Error"]["Code"] in ("404", "NoSuchKey"), "%s: %s" % (what, e))
        return
    raise CheckFailed("%s: %s/%s exists" % (what, bucket, key))


TAGGING = "<Tagging><TagSet><Tag><Key>team</Key><Value>blue &amp; green</Value></Tag></TagSet></Tagging>"


def signed_forms(s3, bucket):
    # 1. Everything a form can say: key from the file's name, status 201, metadata, type, tags,
    #    a size range; fields after the file are ignored.
    content = b"hello from a form\n"
    fields = {
        "success_action_status": "201",
        "x-amz-meta-color": "red",
        "Content-Type": "text/plain",
        "tagging": TAGGING,
    }
    conditions = [
        {"success_action_status": "201"},
        {"x-amz-meta-color": "red"},
        ["starts-with", "$Content-Type", "text/"],
        {"tagging": TAGGING},
        ["starts-with", "$key", "uploads/"],
        ["content-length-range", 1, 1024],
    ]
    form = s3.generate_presigned_post(bucket, "uploads/${filename}", Fields=fields, Conditions=conditions, ExpiresIn=600)
    response = post(form["url"], form["fields"], "hello.txt", content, after={"x-amz-meta-after": "ignored"})
    text = response.data.decode()
    etag = '"%s"' % hashlib.md5(content).hexdigest()
    check(response.status == 201, "201 form: status %d %s" % (response.status, text))
    check("<Key>uploads/hello.txt</Key>" in text and "<Bucket>%s</Bucket>" % bucket in text, text)
    check("<ETag>&quot;%s&quot;</ETag>" % etag.strip('"') in text or "<ETag>%s</ETag>" % etag in text, text)
    check(response.headers.get("ETag") == etag, "ETag header %r" % response.headers.get("ETag"))
    head = s3.head_object(Bucket=bucket, Key="uploads/hello.txt")
    check(head["ContentType"] == "text/plain", "content type %r" % head["ContentType"])
    check(head["Metadata"] == {"color": "red"}, "metadata %r (fields after the file count)" % head["Metadata"])
    tags = s3.get_object_tagging(Bucket=bucket, Key="uploads/hello.txt")["TagSet"]
    check(tags == [{"Key": "team", "Value": "blue & green"}], "tags %r" % tags)
    body = s3.get_object(Bucket=bucket, Key="uploads/hello.txt")["Body"].read()
    check(body == content, "body %r" % body)
    ok("201 form: key from ${filename}, PostResponse, ETag, type, metadata, tags, fields after the file ignored")

    # 2. The default answer: 204 No Content, with ETag and Location.
    form = s3.generate_presigned_post(bucket, "plain.bin", ExpiresIn=600)
    content = os.urandom(3 * 1024 * 1024 + 17)
    response = post(form["url"], form["fields"], "ignored-name.bin", content)
    check(response.status == 204, "204 form: %d %s" % (response.status, response.data[:300]))
    check(response.headers.get("ETag") == '"%s"' % hashlib.md5(content).hexdigest(), "ETag %r" % response.headers)
    check(response.headers.get("Location", "").endswith("/%s/plain.bin" % bucket), "Location %r" % response.headers)
    body = s3.get_object(Bucket=bucket, Key="plain.bin")["Body"].read()
    check(body == content, "a 3 MiB file read back differs")
    ok("204 form: 3 MiB file stored whole, ETag and Location headers")

    # 2b. A form sent with x-amz-expected-bucket-owner naming another account: refused, nothing
    #    stored, as every request naming a bucket is.
    form = s3.generate_presigned_post(bucket, "expected-owner.bin", ExpiresIn=600)
    other = {"x-amz-expected-bucket-owner": "111122223333"}
    response = post(form["url"], form["fields"], "expected-owner.bin", b"not for them", headers=other)
    expect_error(response, 403, "AccessDenied", "Access Denied", "form to a bucket another account owns")
    absent(s3, bucket, "expected-owner.bin", "form refused for its expected owner")

    # 3. success_action_redirect: 303 to the URL with bucket, key and etag.
    target = "http://example.test/done?from=form"
    form = s3.generate_presigned_post(
        bucket,
        "redirected.txt",
        Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}],
        ExpiresIn=600,
    )
    content = b"redirect me"
    response = post(form["url"], form["fields"], "r.txt", content)
    location = response.headers.get("Location", "")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    check(response.status == 303 and location.startswith(target + "&"), "303: %d %r" % (response.status, location))
    check(query.get("bucket") == [bucket] and query.get("key") == ["redirected.txt"], "redirect query %r" % query)
    check(query.get("etag") == ['"%s"' % hashlib.md5(content).hexdigest()], "redirect etag %r" % query)
    ok("success_action_redirect: 303 to %s" % location)

    # 4. A file outside content-length-range: refused, nothing stored.
    form = s3.generate_presigned_post(
        bucket, "ranged.bin", Conditions=[["content-length-range", 10, 100]], ExpiresIn=600
    )
    response = post(form["url"], form["fields"], "big.bin", b"x" * 101)
    expect_error(response, 400, "EntityTooLarge", "exceeds the maximum allowed size", "file over the range")
    response = post(form["url"], form["fields"], "small.bin", b"x" * 9)
    expect_error(response, 400, "EntityTooSmall", "smaller than the minimum", "file under the range")
    absent(s3, bucket, "ranged.bin", "refused sizes store nothing")
    response = post(form["url"], form["fields"], "fits.bin", b"x" * 100)
    check(response.status == 204, "a file at the range's end: %d %s" % (response.status, response.data))
    ok("content-length-range: 101 and 9 bytes refused and not stored, 100 stored")

    # 5. The policy's own refusals, in AWS's words.
    form = s3.generate_presigned_post(bucket, "cond/${filename}", Conditions=[["starts-with", "$key", "cond/"]], ExpiresIn=600)
    fields = dict(form["fields"], key="elsewhere/${filename}")
    expect_error(post(form["url"], fields, "a.txt", b"a"), 403, "AccessDenied", "Policy Condition failed", "a key outside the policy")
    fields = dict(form["fields"], **{"x-amz-meta-sneaky": "1"})
    expect_error(post(form["url"], fields, "a.txt", b"a"), 403, "AccessDenied", "Extra input fields: x-amz-meta-sneaky", "a field the policy does not name")
    fields = dict(form["fields"])
    signature = fields["x-amz-signature"]
    fields["x-amz-signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]
    expect_error(post(form["url"], fields, "a.txt", b"a"), 403, "SignatureDoesNotMatch", "signature", "a wrong signature")
    expired = s3.generate_presigned_post(bucket, "late.txt", ExpiresIn=1)
    time.sleep(2.5)
    expect_error(post(expired["url"], expired["fields"], "late.txt", b"a"), 403, "AccessDenied", "Invalid according to Policy: Policy expired.", "an expired policy")
    absent(s3, bucket, "late.txt", "an expired policy stores nothing")
    fields = dict(form["fields"])
    fields.pop("key")
    expect_error(post(form["url"], fields, "a.txt", b"a"), 400, "InvalidArgument", "must contain a field named 'key'", "no key")
    body, content_type = urllib3.encode_multipart_formdata(list(form["fields"].items()))
    response = urllib3.PoolManager(retries=False).request("POST", form["url"], body=body, headers={"Content-Type": content_type})
    expect_error(response, 400, "InvalidArgument", "exactly one file", "no file")
    fields = dict(form["fields"], **{"x-ignore-padding": "p" * (21 * 1024)})
    expect_error(post(form["url"], fields, "a.txt", b"a"), 400, "MaxPostPreDataLengthExceededError", "too large", "fields over 20 KB")
    # Many tiny parts: their names and values stay under 20 KB, their part headers and
    # boundaries do not, and those count too.
    pairs = list(form["fields"].items()) + [("x-ignore-%d" % i, "") for i in range(2000)]
    expect_error(post(form["url"], pairs, "a.txt", b"a"), 400, "MaxPostPreDataLengthExceededError", "too large", "2000 tiny parts")

    # 6. A field sent twice (the policy would test one value, the write use another).
    form = s3.generate_presigned_post(
        bucket, "twice.txt", Fields={"x-amz-meta-uuid": "1"}, Conditions=[{"x-amz-meta-uuid": "1"}], ExpiresIn=600
    )
    pairs = list(form["fields"].items()) + [("X-Amz-Meta-Uuid", "2")]
    expect_error(post(form["url"], pairs, "t.txt", b"t"), 400, "InvalidArgument", "more than once", "a field sent twice")
    absent(s3, bucket, "twice.txt", "a form with a field sent twice")

    # 6b. A form asking for encryption or Object Lock is refused, as a PutObject would be, never
    # stored without it (even when its policy allows the field).
    for name, value, status, code in [
        ("x-amz-server-side-encryption", "AES256", 501, "NotImplemented"),
        ("x-amz-object-lock-mode", "GOVERNANCE", 400, "InvalidRequest"),
        ("x-amz-storage-class", "FASTEST", 400, "InvalidStorageClass"),
    ]:
        form = s3.generate_presigned_post(bucket, "asked.txt", Fields={name: value}, Conditions=[{name: value}], ExpiresIn=600)
        expect_error(post(form["url"], form["fields"], "a.txt", b"a"), status, code, "", "a form with %s: %s" % (name, value))
    absent(s3, bucket, "asked.txt", "refused forms store nothing")
    ok("forms asking for encryption, Object Lock or an unknown storage class are refused")

    # 7. Where a form may go: a bucket's URL (a query is ignored), nowhere else.
    form = s3.generate_presigned_post(bucket, "queried.txt", ExpiresIn=600)
    response = post(form["url"] + "?ignored=1", form["fields"], "q.txt", b"q")
    check(response.status == 204, "a form POST with a query: %d %s" % (response.status, response.data))
    response = post(form["url"] + "/some/key", form["fields"], "q.txt", b"q")
    expect_error(response, 405, "MethodNotAllowed", "not allowed", "a form POST to an object's URL")

    # 8. The file part's own Content-Type is not a field: no policy names it, so it is not stored.
    form = s3.generate_presigned_post(bucket, "typed.html", ExpiresIn=600)
    response = post(form["url"], form["fields"], "x.html", b"<script>1</script>", file_type="text/html")
    check(response.status == 204, "typed: %d %s" % (response.status, response.data))
    stored = s3.head_object(Bucket=bucket, Key="typed.html").get("ContentType")
    check(stored == "binary/octet-stream", "stored type %r, not AWS's default binary/octet-stream" % stored)
    ok("the file part's Content-Type is not stored (%r); only a Content-Type field, which the policy names, is" % stored)


def sign_policy(fields, policy_b64):
    """The fields of a boto3 form with its policy replaced and signed again (SigV4, the form's
    credential scope, this environment's secret)."""
    import base64, hmac
    scope = fields["x-amz-credential"].split("/")
    key = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in scope[1:]:
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signed = dict(fields, policy=policy_b64)
    signed["x-amz-signature"] = hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()
    return signed


def checksums_and_policy_documents(s3, bucket):
    """Checksum fields are checked as PutObject's headers are; a policy that is not a policy
    document is refused as AWS refuses it."""
    import base64, zlib

    content = b"checked bytes"
    crc32 = base64.b64encode(zlib.crc32(content).to_bytes(4, "big")).decode()
    form = s3.generate_presigned_post(
        bucket, "summed.txt", Fields={"x-amz-checksum-crc32": crc32}, Conditions=[{"x-amz-checksum-crc32": crc32}], ExpiresIn=600
    )
    response = post(form["url"], form["fields"], "s.txt", content)
    check(response.status == 204, "a right CRC32 field: %d %s" % (response.status, response.data))
    head = s3.head_object(Bucket=bucket, Key="summed.txt", ChecksumMode="ENABLED")
    check(head.get("ChecksumCRC32") == crc32, "stored CRC32 %r, sent %r" % (head.get("ChecksumCRC32"), crc32))
    response = post(form["url"], form["fields"], "s.txt", b"other bytes")
    expect_error(response, 400, "BadDigest", "", "a CRC32 field that is not the file's")
    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    form = s3.generate_presigned_post(
        bucket, "md5.txt", Fields={"Content-MD5": wrong_md5}, Conditions=[{"Content-MD5": wrong_md5}], ExpiresIn=600
    )
    response = post(form["url"], form["fields"], "m.txt", content)
    expect_error(response, 400, "BadDigest", "", "a Content-MD5 field that is not the file's")
    absent(s3, bucket, "md5.txt", "a file whose Content-MD5 does not match")
    ok("checksum fields: a right CRC32 is stored, a wrong CRC32 or Content-MD5 is 400 BadDigest and stores nothing")

    form = s3.generate_presigned_post(bucket, "doc.txt", ExpiresIn=600)
    fields = sign_policy(form["fields"], base64.b64encode(b"not a policy document").decode())
    expect_error(post(form["url"], fields, "d.txt", b"d"), 400, "InvalidPolicyDocument", "Invalid Policy", "a policy that is not JSON")
    no_expiry = base64.b64encode(json.dumps({"conditions": [{"bucket": bucket}]}).encode()).decode()
    fields = sign_policy(form["fields"], no_expiry)
    expect_error(post(form["url"], fields, "d.txt", b"d"), 400, "InvalidPolicyDocument", "Invalid Policy", "a policy without an expiration")
    absent(s3, bucket, "doc.txt", "malformed policies")


def cut_short(endpoint, s3, bucket):
    """A client that dies mid-file (the connection closes before the closing boundary): nothing
    is stored, and the gateway serves the next request."""
    form = s3.generate_presigned_post(bucket, "cut.bin", ExpiresIn=600)
    body, content_type = urllib3.encode_multipart_formdata(
        list(form["fields"].items()) + [("file", ("cut.bin", b"z" * (2 * 1024 * 1024), "application/octet-stream"))]
    )
    parsed = urllib.parse.urlsplit(form["url"])
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=30)
    head = (
        "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
        % (parsed.path, parsed.netloc, content_type, len(body))
    )
    sock.sendall(head.encode() + body[: len(body) // 2])
    time.sleep(0.5)
    sock.close()
    time.sleep(1.0)
    absent(s3, bucket, "cut.bin", "a form cut mid-file")
    # The same form sent whole afterwards is stored.
    content = b"whole"
    response = post(form["url"], form["fields"], "cut.bin", content)
    check(response.status == 204, "after a cut form: %d %s" % (response.status, response.data))
    check(s3.get_object(Bucket=bucket, Key="cut.bin")["Body"].read() == content, "cut.bin read back")
    ok("a form cut mid-file stores nothing; the gateway serves the next one")


def anonymous_forms(endpoint, s3, bucket):
    """A form without a signature is anonymous: refused by a private bucket, accepted where the
    bucket's policy lets anyone put under a prefix."""
    url = "%s/%s" % (endpoint.rstrip("/"), bucket)
    response = post(url, {"key": "drop/anon.txt"}, "anon.txt", b"anonymous")
    expect_error(response, 403, "AccessDenied", "Access Denied", "an anonymous form to a private bucket")
    absent(s3, bucket, "drop/anon.txt", "a refused anonymous form")
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": False,
        },
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::%s/drop/*" % bucket,
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    response = post(url, {"key": "drop/${filename}"}, "anon.txt", b"anonymous")
    check(response.status == 204, "anonymous form under drop/: %d %s" % (response.status, response.data))
    check(s3.get_object(Bucket=bucket, Key="drop/anon.txt")["Body"].read() == b"anonymous", "drop/anon.txt")
    response = post(url, {"key": "elsewhere.txt"}, "anon.txt", b"anonymous")
    expect_error(response, 403, "AccessDenied", "Access Denied", "an anonymous form outside the policy's prefix")
    # Tags need s3:PutObjectTagging as well, which the policy does not grant (as a PutObject's).
    tagging = "<Tagging><TagSet><Tag><Key>class</Key><Value>public</Value></Tag></TagSet></Tagging>"
    response = post(url, {"key": "drop/tagged.txt", "tagging": tagging}, "anon.txt", b"anonymous")
    expect_error(response, 403, "AccessDenied", "Access Denied", "an anonymous form with tags")
    # A condition on the ACL is met by the form's acl field, never by a request header that the
    # write would ignore.
    policy["Statement"].append(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::%s/owned/*" % bucket,
            "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}},
        }
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    form = list({"key": "owned/a.txt"}.items()) + [("file", ("a.txt", b"a", "text/plain"))]
    body, content_type = urllib3.encode_multipart_formdata(form)
    response = urllib3.PoolManager(retries=False).request(
        "POST", url, body=body, headers={"Content-Type": content_type, "x-amz-acl": "bucket-owner-full-control"}
    )
    expect_error(response, 403, "AccessDenied", "Access Denied", "an ACL condition met only by a header")
    response = post(url, {"key": "owned/a.txt", "acl": "bucket-owner-full-control"}, "a.txt", b"a")
    check(response.status == 204, "the ACL condition met by the acl field: %d %s" % (response.status, response.data))
    s3.delete_bucket_policy(Bucket=bucket)
    ok("anonymous forms: refused by a private bucket, allowed by a bucket policy under its prefix only")


def browser_form(endpoint, s3, bucket, screenshots):
    """Headless Chromium fills a real HTML form (the fields boto3 made) and submits it; the upload
    lands, and the browser follows success_action_redirect."""
    # Any page that answers will do: the gateway's own (a private object: the browser shows
    # AccessDenied, but the URL it ends on is what is checked).
    landing = "%s/%s/landing" % (endpoint.rstrip("/"), bucket)
    form = s3.generate_presigned_post(
        bucket,
        "browser/${filename}",
        Fields={"success_action_redirect": landing},
        Conditions=[["starts-with", "$key", "browser/"], {"success_action_redirect": landing}],
        ExpiresIn=600,
    )
    work = tempfile.mkdtemp(prefix="post-form-")
    upload = os.path.join(work, "photo.txt")
    content = b"chosen in a browser\n" * 1000
    with open(upload, "wb") as f:
        f.write(content)
    inputs = "\n".join(
        '<input type="hidden" name="%s" value="%s">' % (name, value.replace("&", "&amp;").replace('"', "&quot;"))
        for name, value in form["fields"].items()
    )
    page = os.path.join(work, "form.html")
    with open(page, "w") as f:
        f.write(
            '<!doctype html><html><head><meta charset="utf-8"><title>upload</title></head><body>'
            '<form id="upload" action="%s" method="post" enctype="multipart/form-data">%s'
            '<input type="file" id="file" name="file"><input type="submit" id="send" value="Upload">'
            "</form></body></html>" % (form["url"], inputs)
        )

    class Args:
        resolve_map = {}
        timeout = 30.0

    driver = browser_site.start_browser(Args, work)
    try:
        from selenium.webdriver.common.by import By

        driver.get("file://" + page)
        driver.find_element(By.ID, "file").send_keys(upload)
        driver.save_screenshot(os.path.join(screenshots, "post-form.png"))
        driver.find_element(By.ID, "send").click()
        deadline = time.time() + 30
        while time.time() < deadline and not driver.current_url.startswith(landing):
            time.sleep(0.1)
        final = driver.current_url
        check(final.startswith(landing), "the browser ended at %r, not the redirect" % final)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(final).query)
        check(query.get("key") == ["browser/photo.txt"], "redirect query %r" % query)
        check(query.get("etag") == ['"%s"' % hashlib.md5(content).hexdigest()], "redirect etag %r" % query)
    finally:
        driver.quit()
    body = s3.get_object(Bucket=bucket, Key="browser/photo.txt")["Body"].read()
    check(body == content, "the browser's upload read back differs")
    ok("Chromium submitted the form: browser/photo.txt stored, redirected to %s" % final)


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--browser"):
        print(__doc__, file=sys.stderr)
        return 2
    endpoint, bucket = argv[0], argv[1]
    s3 = client(endpoint)
    try:
        if len(argv) == 4:
            browser_form(endpoint, s3, bucket, argv[3])
        else:
            signed_forms(s3, bucket)
            checksums_and_policy_documents(s3, bucket)
            cut_short(endpoint, s3, bucket)
            anonymous_forms(endpoint, s3, bucket)
    except CheckFailed as e:
        print("FAILED: %s" % e, file=sys.stderr)
        return 1
    print("post_form: all checks passed (%d)" % CHECKS[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
