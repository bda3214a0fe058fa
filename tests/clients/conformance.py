"""The conformance cases of tests/conformance/cases.json, signed by boto3 (botocore's SigV4 signer).

Usage: conformance.py CASES_JSON ENDPOINT
Credentials and region come from the environment (AWS_ACCESS_KEY_ID, ...), as `ignifuge dev`
prints them. Each case gets its own bucket (conformance-py-<index>). Prints "conformance: all N
cases as AWS" and exits 0, or lists every case that differs and exits 1.
"""

import http.client
import json
import re
import sys
import urllib.parse

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest


def fill(template, values):
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def xml_value(text, tag):
    match = re.search("<" + tag + ">(.*?)</" + tag + ">", text, re.S)
    return match.group(1) if match else None


def send(endpoint, credentials, region, method, path, headers, body, anonymous):
    url = endpoint + path
    if not anonymous:
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        S3SigV4Auth(credentials, "s3", region).add_auth(request)
        headers = dict(request.headers.items())
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data.decode("utf-8", "replace")
    finally:
        connection.close()


def mismatches(expect, status, headers, text, values):
    wrong = []
    if "status" in expect and status != expect["status"]:
        wrong.append("status %s (expected %s)" % (status, expect["status"]))
    code = xml_value(text, "Code")
    if "code" in expect and code != expect["code"]:
        wrong.append("code %r (expected %s)" % (code, expect["code"]))
    if "message" in expect and expect["message"] not in (xml_value(text, "Message") or ""):
        wrong.append("message %r (expected to contain %r)" % (xml_value(text, "Message"), expect["message"]))
    for name, want in expect.get("headers", {}).items():
        want = fill(want, values)
        got = headers.get(name.lower())
        if got is None or (want != "*" and got != want):
            wrong.append("header %s: %r (expected %r)" % (name, got, want))
    for name in expect.get("absent_headers", []):
        if name.lower() in headers:
            wrong.append("header %s: %r (expected none)" % (name, headers[name.lower()]))
    for piece in expect.get("body_contains", []):
        piece = fill(piece, values)
        if piece not in text:
            wrong.append("body lacks %r" % piece)
    for piece in expect.get("body_lacks", []):
        if piece in text:
            wrong.append("body has %r" % piece)
    return wrong


def main():
    cases_path, endpoint = sys.argv[1:3]
    with open(cases_path) as handle:
        cases = json.load(handle)["cases"]
    session = boto3.session.Session()
    credentials = session.get_credentials().get_frozen_credentials()
    region = session.region_name or "us-east-1"
    failures = []
    for index, case in enumerate(cases):
        values = {"bucket": "conformance-py-%d" % index}
        for step_index, step in enumerate(case["steps"]):
            path = fill(step["path"], values)
            body = fill(step.get("body", ""), values).encode()
            headers = {k: fill(v, values) for k, v in step.get("headers", {}).items()}
            status, answer_headers, text = send(
                endpoint, credentials, region, step["method"], path, headers, body, step.get("anonymous", False)
            )
            wrong = mismatches(step["expect"], status, answer_headers, text, values)
            if wrong:
                failures.append(
                    'case %d "%s" step %d (%s %s): %s\n  answer: %s %s'
                    % (index, case["name"], step_index, step["method"], path, "; ".join(wrong), status, text[:300])
                )
                break
            for name, source in step["expect"].get("capture", {}).items():
                kind, _, what = source.partition(":")
                value = answer_headers.get(what.lower()) if kind == "header" else xml_value(text, what)
                if value is None:
                    print("case %d: step %d has no %s" % (index, step_index, source), file=sys.stderr)
                    sys.exit(1)
                values[name] = value
    if failures:
        print("%d of %d cases differ from AWS:\n%s" % (len(failures), len(cases), "\n".join(failures)), file=sys.stderr)
        sys.exit(1)
    print("conformance: all %d cases as AWS" % len(cases))


if __name__ == "__main__":
    main()
