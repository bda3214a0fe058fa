//! Static website hosting end to end, as the S3 user guide's "Hosting a static website" describes
//! it: a site published with the aws CLI (`aws s3 website`, `aws s3 sync`), made public with a
//! bucket policy, then read from the website endpoint with raw HTTP (every rule: index and error
//! documents, the `dir` -> `dir/` redirect, routing rules, object redirects, Range, conditional
//! requests, stored headers, GET and HEAD only, CORS, custom domains) and with headless Chromium
//! (the page renders with its stylesheet, script and image).

mod common;

use common::cli::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const SITE: &str = "site";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/site")
}

/// Anyone may read the bucket's objects and list it (so that a missing page is 404, not 403).
fn public_read_policy(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
    )
}

/// Publishes the fixture site as `bucket` with the aws CLI, as a user would, and makes it
/// public; adds two routing rules and an object redirect.
fn publish(cluster: &Cluster, scratch: &Path, bucket: &str) {
    aws(cluster, scratch, &["s3", "mb", &format!("s3://{bucket}")]);
    aws(cluster, scratch, &["s3", "sync", &fixture().display().to_string(), &format!("s3://{bucket}")]);
    aws(
        cluster,
        scratch,
        &[
            "s3",
            "website",
            &format!("s3://{bucket}"),
            "--index-document",
            "index.html",
            "--error-document",
            "error.html",
        ],
    );
    aws(cluster, scratch, &["s3api", "delete-public-access-block", "--bucket", bucket]);
    aws(cluster, scratch, &["s3api", "put-bucket-policy", "--bucket", bucket, "--policy", &public_read_policy(bucket)]);
    let website = r#"{
        "IndexDocument": {"Suffix": "index.html"},
        "ErrorDocument": {"Key": "error.html"},
        "RoutingRules": [
            {"Condition": {"KeyPrefixEquals": "manual/"}, "Redirect": {"ReplaceKeyPrefixWith": "docs/"}},
            {"Condition": {"KeyPrefixEquals": "gone/", "HttpErrorCodeReturnedEquals": "404"},
             "Redirect": {"HostName": "archive.example", "Protocol": "https", "ReplaceKeyWith": "moved.html", "HttpRedirectCode": "302"}}
        ]}"#;
    aws(cluster, scratch, &["s3api", "put-bucket-website", "--bucket", bucket, "--website-configuration", website]);
    let empty = scratch.join("empty");
    std::fs::write(&empty, b"").unwrap();
    aws(
        cluster,
        scratch,
        &[
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            "old.html",
            "--body",
            &empty.display().to_string(),
            "--website-redirect-location",
            "/docs/",
        ],
    );
    let styled = scratch.join("styled.txt");
    std::fs::write(&styled, b"cached and encoded").unwrap();
    aws(
        cluster,
        scratch,
        &[
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            "styled.txt",
            "--body",
            &styled.display().to_string(),
            "--content-type",
            "text/plain; charset=utf-8",
            "--cache-control",
            "max-age=60",
            "--content-encoding",
            "identity",
            "--metadata",
            "origin=test",
        ],
    );
}

/// A website request to the endpoint of gateway `gateway`, with Host `host`.
async fn web(
    cluster: &Cluster,
    gateway: usize,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    let addr = cluster.website_addr(gateway);
    let port = addr.rsplit_once(':').map(|(_, p)| p).unwrap_or("80");
    let mut all = vec![("Host".to_string(), format!("{host}:{port}"))];
    all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    raw_request(&addr, method, path, &all, b"").await.unwrap_or_else(|e| panic!("{method} {host}{path}: {e:#}"))
}

fn site_host(bucket: &str) -> String {
    format!("{bucket}.s3-website.localhost")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_published_with_the_aws_cli_is_served_as_aws_serves_websites() {
    let cluster = Cluster::start().await;
    let scratch = tempfile::tempdir().unwrap();
    publish(&cluster, scratch.path(), SITE);
    let host = site_host(SITE);
    let port = cluster.website_addr(0).rsplit_once(':').unwrap().1.to_string();

    // The index document, for `/` and for `dir/`, with its stored Content-Type.
    let index = web(&cluster, 0, "GET", &host, "/", &[]).await;
    assert_eq!(index.status, 200, "{}", index.body_text());
    assert!(index.body_text().contains("Ignifuge test site"));
    assert_eq!(index.header("content-type"), Some("text/html"));
    let etag = index.header("etag").expect("ETag").to_string();
    assert!(index.header("last-modified").is_some());
    let docs = web(&cluster, 0, "GET", &host, "/docs/", &[]).await;
    assert_eq!(docs.status, 200);
    assert!(docs.body_text().contains("docs-page"));
    // `dir` without a slash: 302 to `dir/` because `dir/index.html` exists.
    let bare = web(&cluster, 0, "GET", &host, "/docs", &[]).await;
    assert_eq!((bare.status, bare.header("location")), (302, Some("/docs/")));
    // Served from every gateway alike.
    assert_eq!(web(&cluster, 2, "GET", &host, "/docs/", &[]).await.status, 200);
    let css = web(&cluster, 0, "GET", &host, "/css/style.css", &[]).await;
    assert_eq!(css.header("content-type"), Some("text/css"));

    // A missing page: the error document, with 404 (anyone may list the bucket).
    let missing = web(&cluster, 0, "GET", &host, "/no/such/page.html", &[]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body_text().contains("error-page"), "{}", missing.body_text());
    let head = web(&cluster, 0, "HEAD", &host, "/no/such/page.html", &[]).await;
    assert_eq!((head.status, head.body.len()), (404, 0));

    // Routing rules: a prefix rewritten before the read, an error code redirected after it.
    let manual = web(&cluster, 0, "GET", &host, "/manual/intro.html", &[]).await;
    assert_eq!(manual.status, 301);
    assert_eq!(manual.header("location"), Some(format!("http://{host}:{port}/docs/intro.html").as_str()));
    let gone = web(&cluster, 0, "GET", &host, "/gone/page", &[]).await;
    assert_eq!((gone.status, gone.header("location")), (302, Some("https://archive.example/moved.html")));
    // An object's x-amz-website-redirect-location: 301 to it.
    let old = web(&cluster, 0, "GET", &host, "/old.html", &[]).await;
    assert_eq!((old.status, old.header("location")), (301, Some("/docs/")));

    // Range and conditional requests.
    let range = web(&cluster, 0, "GET", &host, "/index.html", &[("Range", "bytes=0-14")]).await;
    assert_eq!(range.status, 206);
    assert_eq!(range.body.len(), 15);
    assert!(range.header("content-range").is_some_and(|r| r.starts_with("bytes 0-14/")));
    let not_modified = web(&cluster, 0, "GET", &host, "/", &[("If-None-Match", &etag)]).await;
    assert_eq!((not_modified.status, not_modified.header("etag")), (304, Some(etag.as_str())));
    let failed = web(&cluster, 0, "GET", &host, "/", &[("If-Match", "\"0000\"")]).await;
    assert_eq!(failed.status, 412);
    // Stored headers come back as stored.
    let styled = web(&cluster, 0, "GET", &host, "/styled.txt", &[]).await;
    assert_eq!(styled.header("cache-control"), Some("max-age=60"));
    assert_eq!(styled.header("content-encoding"), Some("identity"));
    assert_eq!(styled.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(styled.header("x-amz-meta-origin"), Some("test"));

    // The same rules as a user checks them with curl (its own resolver rule for the host name).
    let curl = |extra: &[&str], path: &str| {
        let url = format!("http://{host}:{port}{path}");
        let output = run_with_timeout(
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"])
                .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
                .args(extra)
                .arg(&url),
            std::time::Duration::from_secs(30),
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(curl(&[], "/"), "200");
    assert_eq!(curl(&[], "/docs"), format!("302 http://{host}:{port}/docs/"));
    assert_eq!(curl(&[], "/no/such/page.html"), "404");
    assert_eq!(curl(&["-X", "POST"], "/"), "405");
    assert_eq!(curl(&["-H", &format!("If-None-Match: {etag}")], "/"), "304");
    assert_eq!(curl(&["-r", "0-9"], "/index.html"), "206");
    assert_eq!(curl(&[], "/manual/x.html"), format!("301 http://{host}:{port}/docs/x.html"));

    // GET and HEAD only.
    for method in ["POST", "PUT", "DELETE"] {
        let refused = web(&cluster, 0, method, &host, "/", &[]).await;
        assert_eq!(refused.status, 405, "{method}");
        assert!(refused.body_text().contains("MethodNotAllowed"));
    }

    // CORS rules apply to the website endpoint as to the API.
    let cors = r#"{"CORSRules":[{"AllowedOrigins":["http://app.example"],"AllowedMethods":["GET"]}]}"#;
    aws(&cluster, scratch.path(), &["s3api", "put-bucket-cors", "--bucket", SITE, "--cors-configuration", cors]);
    let cross = web(&cluster, 0, "GET", &host, "/", &[("Origin", "http://app.example")]).await;
    assert_eq!(cross.header("access-control-allow-origin"), Some("http://app.example"));
    let preflight = web(
        &cluster,
        0,
        "OPTIONS",
        &host,
        "/",
        &[("Origin", "http://app.example"), ("Access-Control-Request-Method", "GET")],
    )
    .await;
    assert_eq!(preflight.status, 200);

    // What is not public is 403, with AWS's HTML page; unknown buckets and buckets without a
    // website configuration are 404.
    aws(&cluster, scratch.path(), &["s3", "mb", "s3://hidden"]);
    aws(&cluster, scratch.path(), &["s3", "website", "s3://hidden", "--index-document", "index.html"]);
    aws(
        &cluster,
        scratch.path(),
        &["s3", "cp", &fixture().join("index.html").display().to_string(), "s3://hidden/index.html"],
    );
    let hidden = web(&cluster, 0, "GET", &site_host("hidden"), "/", &[]).await;
    assert_eq!(hidden.status, 403);
    assert!(hidden.body_text().contains("<li>Code: AccessDenied</li>"), "{}", hidden.body_text());
    let unknown = web(&cluster, 0, "GET", &site_host("nobody-has-this"), "/", &[]).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body_text().contains("NoSuchBucket"));
    aws(&cluster, scratch.path(), &["s3", "mb", "s3://plain"]);
    let plain = web(&cluster, 0, "GET", &site_host("plain"), "/", &[]).await;
    assert!(plain.status == 404 && plain.body_text().contains("NoSuchWebsiteConfiguration"), "{}", plain.body_text());

    // The root domain itself names no bucket.
    let root = web(&cluster, 0, "GET", "s3-website.localhost", "/", &[]).await;
    assert_eq!(root.status, 404);
    // A redirect location must be a path or an http(s) URL.
    let bad = scratch.path().join("bad");
    std::fs::write(&bad, b"").unwrap();
    let mut command = aws_v1_command(&cluster, scratch.path());
    command.arg("--endpoint-url").arg(&cluster.endpoint).args([
        "s3api",
        "put-object",
        "--bucket",
        SITE,
        "--key",
        "bad.html",
        "--body",
        &bad.display().to_string(),
        "--website-redirect-location",
        "javascript:alert(1)",
    ]);
    let output = run_with_timeout(&mut command, CLI_TIMEOUT);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("InvalidRedirectLocation"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A copy's redirect (never the source's) is checked alike, metadata copied or replaced.
    for directive in ["COPY", "REPLACE"] {
        let mut command = aws_v1_command(&cluster, scratch.path());
        command.arg("--endpoint-url").arg(&cluster.endpoint).args([
            "s3api",
            "copy-object",
            "--bucket",
            SITE,
            "--key",
            "bad.html",
            "--copy-source",
            &format!("{SITE}/index.html"),
            "--metadata-directive",
            directive,
            "--website-redirect-location",
            "javascript:alert(1)",
        ]);
        let output = run_with_timeout(&mut command, CLI_TIMEOUT);
        assert!(!output.status.success(), "copy-object with {directive}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("InvalidRedirectLocation"),
            "copy-object with {directive}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let absent = web(&cluster, 0, "GET", &site_host(SITE), "/bad.html", &[]).await;
    assert_eq!(absent.status, 404, "a refused copy stored nothing");

    // RedirectAllRequestsTo sends every request elsewhere, path kept.
    aws(&cluster, scratch.path(), &["s3", "mb", "s3://moved"]);
    let all = r#"{"RedirectAllRequestsTo":{"HostName":"www.example.org","Protocol":"https"}}"#;
    aws(
        &cluster,
        scratch.path(),
        &["s3api", "put-bucket-website", "--bucket", "moved", "--website-configuration", all],
    );
    let moved = web(&cluster, 0, "GET", &site_host("moved"), "/a/b.html?x=1", &[]).await;
    assert_eq!((moved.status, moved.header("location")), (301, Some("https://www.example.org/a/b.html?x=1")));
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_domains_serve_the_bucket_they_name_and_belong_to_one_tenant() {
    let cluster = Cluster::start().await;
    let scratch = tempfile::tempdir().unwrap();
    publish(&cluster, scratch.path(), SITE);
    // AWS's rule: a bucket named like the host serves it.
    publish(&cluster, scratch.path(), "www.example.test");
    let named = web(&cluster, 0, "GET", "www.example.test", "/docs/", &[]).await;
    assert_eq!(named.status, 200);
    // An alias a tenant attaches to its bucket.
    let before = web(&cluster, 0, "GET", "docs.example.test", "/", &[]).await;
    assert_eq!(before.status, 404);
    cluster.admin(&["domain", "attach", "docs.example.test", SITE]);
    let listed = cluster.admin(&["domain", "list", "--tenant", "default"]);
    assert!(listed.contains("docs.example.test site"), "{listed}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let aliased = web(&cluster, 0, "GET", "docs.example.test", "/", &[]).await;
        if aliased.status == 200 {
            assert!(aliased.body_text().contains("Ignifuge test site"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the alias never served: {}", aliased.status);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Another tenant cannot take the domain while the bucket lives, nor a bucket's name.
    let other = cluster.create_tenant("other");
    let other_client = cluster.client_for_keys(&other);
    other_client.create_bucket().bucket("other-site").send().await.expect("CreateBucket");
    // Nor by making a bucket named like it: the domain attached first keeps serving its bucket.
    other_client.create_bucket().bucket("docs.example.test").send().await.expect("CreateBucket named like it");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await; // the endpoint's 1 s memory of a host
    let kept = web(&cluster, 0, "GET", "docs.example.test", "/", &[]).await;
    assert_eq!(kept.status, 200, "{}", kept.body_text());
    assert!(kept.body_text().contains("Ignifuge test site"), "{}", kept.body_text());
    other_client.delete_bucket().bucket("docs.example.test").send().await.expect("DeleteBucket");
    let output = cluster.admin_output(&["domain", "attach", "docs.example.test", "other-site"]);
    assert!(!output.status.success(), "another tenant took the domain");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("another tenant"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Detached, the domain falls back to AWS's rule (no bucket of that name: 404).
    cluster.admin(&["domain", "detach", "docs.example.test", "--tenant", "default"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while web(&cluster, 0, "GET", "docs.example.test", "/", &[]).await.status != 404 {
        assert!(std::time::Instant::now() < deadline, "the alias outlived its detach");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Now the other tenant may have it, through the S3-style call: a signed PUT of the bucket's
    // `website-domain` subresource.
    let call = |keys: Option<Keys>, method: &'static str, bucket: &'static str| {
        let url = cluster.url(&format!("/{bucket}?website-domain=docs.example.test"));
        let headers = match &keys {
            Some(keys) => cluster.sign(keys, std::time::SystemTime::now(), method, &url, &[], Payload::Bytes(b"")),
            None => Vec::new(),
        };
        async move { raw_request(authority_of(&url), method, path_and_query_of(&url), &headers, b"").await.unwrap() }
    };
    assert_eq!(call(None, "PUT", "other-site").await.status, 403, "anonymous callers are denied");
    assert_eq!(call(Some(cluster.keys()), "PUT", "other-site").await.status, 403, "another tenant's bucket");
    let attached = call(Some(other.clone()), "PUT", "other-site").await;
    assert_eq!(attached.status, 200, "{}", attached.body_text());
    let taken = call(Some(cluster.keys()), "PUT", SITE).await;
    assert_eq!(taken.status, 409, "{}", taken.body_text());
    assert!(taken.body_text().contains("DomainInUse"));
    let listed = call(Some(other.clone()), "GET", "other-site").await;
    assert!(listed.body_text().contains("<Domain>docs.example.test</Domain>"), "{}", listed.body_text());
    // It serves the other tenant's bucket now (which has no website configuration yet).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let served = web(&cluster, 0, "GET", "docs.example.test", "/", &[]).await;
        if served.body_text().contains("NoSuchWebsiteConfiguration") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the domain never moved: {}", served.body_text());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let named = {
        let url = cluster.url("/other-site?website-domain=www.example.test");
        let headers = cluster.sign(&other, std::time::SystemTime::now(), "PUT", &url, &[], Payload::Bytes(b""));
        raw_request(authority_of(&url), "PUT", path_and_query_of(&url), &headers, b"").await.unwrap()
    };
    assert_eq!(named.status, 409, "another tenant's bucket is named like the domain: {}", named.body_text());
    assert_eq!(call(Some(other.clone()), "DELETE", "other-site").await.status, 204);
    assert_eq!(call(Some(other), "DELETE", "other-site").await.status, 404, "nothing left to detach");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_renders_the_published_site() {
    let cluster = Cluster::start().await;
    let scratch = tempfile::tempdir().unwrap();
    publish(&cluster, scratch.path(), SITE);
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("website-browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/browser_site.py");
    let base = cluster.website_url(SITE);
    let output = run_with_timeout(
        Command::new("python3").arg(&script).arg(&base).arg(&artifacts).args([
            "--redirect-from",
            "manual/",
            "--redirect-to",
            "/docs/",
        ]),
        std::time::Duration::from_secs(180),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser_site.py {base} failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert!(artifacts.join("index.png").exists(), "no screenshot in {}", artifacts.display());
    eprintln!("screenshots in {}", artifacts.display());
}
