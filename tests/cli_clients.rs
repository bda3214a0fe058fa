//! Real S3 clients against a real cluster: the aws CLI (v1), boto3, and — when installed —
//! rclone and s3cmd. Each gets its configuration from the environment and flags only, never
//! from files in $HOME.

mod common;

use std::process::Command;

use common::cli::*;
use common::*;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn aws_cli() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("aws_cli");
    let scratch = tempfile::tempdir().expect("tempdir");
    let s3 = cluster.s3_client();

    let version = aws(&cluster, scratch.path(), &["--version"]);
    assert!(version.starts_with("aws-cli/1."), "pip's aws CLI v1: {version}");
    let out = aws(&cluster, scratch.path(), &["s3", "mb", "s3://cli-bucket"]);
    assert!(out.contains("make_bucket: cli-bucket"), "mb output: {out}");
    let out = aws(&cluster, scratch.path(), &["s3", "ls"]);
    assert!(out.lines().any(|l| l.trim_end().ends_with(" cli-bucket")), "s3 ls: {out}");

    // 200 MiB up (multipart, 8 MiB parts) and back down.
    let big_size = 200 * MIB;
    let upload = scratch.path().join("big.bin");
    let upload_md5 = rng.write_file(&upload, big_size);
    let upload_arg = upload.to_str().expect("utf-8 path");
    aws(&cluster, scratch.path(), &["s3", "cp", "--no-progress", upload_arg, "s3://cli-bucket/data/big.bin"]);
    let download = scratch.path().join("big.down");
    let download_arg = download.to_str().expect("utf-8 path");
    aws(&cluster, scratch.path(), &["s3", "cp", "--no-progress", "s3://cli-bucket/data/big.bin", download_arg]);
    assert_eq!(md5_file(&download), upload_md5, "aws s3 cp round trip of 200 MiB");
    std::fs::remove_file(&download).expect("remove download");

    let head = aws(
        &cluster,
        scratch.path(),
        &["s3api", "head-object", "--bucket", "cli-bucket", "--key", "data/big.bin", "--output", "json"],
    );
    let head: serde_json::Value =
        serde_json::from_str(&head).unwrap_or_else(|e| panic!("head-object JSON ({e}): {head}"));
    assert_eq!(head["ContentLength"].as_u64(), Some(big_size as u64), "head-object ContentLength: {head}");
    let etag = head["ETag"].as_str().expect("ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with("-25\""), "ETag of a 25-part upload: {etag}");

    // A server-side copy: above the multipart threshold the CLI copies with UploadPartCopy.
    aws(&cluster, scratch.path(), &["s3", "mb", "s3://cli-copies"]);
    aws(
        &cluster,
        scratch.path(),
        &["s3", "cp", "--no-progress", "s3://cli-bucket/data/big.bin", "s3://cli-copies/big.bin"],
    );
    let copied = scratch.path().join("big.copy");
    let copied_arg = copied.to_str().expect("utf-8 path");
    aws(&cluster, scratch.path(), &["s3", "cp", "--no-progress", "s3://cli-copies/big.bin", copied_arg]);
    assert_eq!(md5_file(&copied), upload_md5, "aws s3 cp between buckets (UploadPartCopy) of 200 MiB");
    std::fs::remove_file(&copied).expect("remove copy");
    // mv: a server-side copy, then the source is deleted.
    aws(
        &cluster,
        scratch.path(),
        &["s3", "mv", "--no-progress", "s3://cli-copies/big.bin", "s3://cli-copies/moved.bin"],
    );
    let listing = aws(&cluster, scratch.path(), &["s3", "ls", "s3://cli-copies/"]);
    assert!(listing.contains("moved.bin") && !listing.contains("big.bin"), "after aws s3 mv: {listing}");
    aws(&cluster, scratch.path(), &["s3", "mv", "--no-progress", "s3://cli-copies/moved.bin", copied_arg]);
    assert_eq!(md5_file(&copied), upload_md5, "aws s3 mv from the bucket to a file");
    std::fs::remove_file(&copied).expect("remove moved file");
    let listing = aws(&cluster, scratch.path(), &["s3", "ls", "s3://cli-copies/"]);
    assert!(listing.trim().is_empty(), "aws s3 mv removed the source: {listing}");
    aws(&cluster, scratch.path(), &["s3", "rb", "s3://cli-copies"]);

    // sync of a nested tree, and back.
    let tree = scratch.path().join("tree");
    let files = ["top.txt", "sub/a.txt", "sub/deeper/b.bin", "sub/deeper/deepest/c.bin", "other dir/d.txt"];
    let mut contents = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let path = tree.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let data = rng.bytes(1000 + index * 40_000);
        std::fs::write(&path, &data).expect("write");
        contents.push(data);
    }
    let tree_arg = tree.to_str().expect("utf-8 path");
    aws(&cluster, scratch.path(), &["s3", "sync", "--no-progress", tree_arg, "s3://cli-bucket/tree/"]);
    let mut expected_keys: Vec<String> = files.iter().map(|f| format!("tree/{f}")).collect();
    expected_keys.sort();
    let mut keys: Vec<String> =
        list_all_keys(&s3, "cli-bucket").await.into_iter().filter(|k| k.starts_with("tree/")).collect();
    keys.sort();
    assert_eq!(keys, expected_keys, "keys after aws s3 sync");
    for (file, data) in files.iter().zip(&contents) {
        assert_bytes_eq(&get_object(&s3, "cli-bucket", &format!("tree/{file}")).await, data, file);
    }
    let listing = aws(&cluster, scratch.path(), &["s3", "ls", "--recursive", "s3://cli-bucket/tree/"]);
    for key in &expected_keys {
        assert!(listing.contains(key.as_str()), "s3 ls --recursive misses {key}: {listing}");
    }
    let listing = aws(&cluster, scratch.path(), &["s3", "ls", "s3://cli-bucket/"]);
    assert!(listing.contains("PRE tree/") && listing.contains("PRE data/"), "s3 ls of the bucket: {listing}");

    // A second sync has nothing to do (sizes and LastModified are listed right).
    let again = aws(&cluster, scratch.path(), &["s3", "sync", "--no-progress", tree_arg, "s3://cli-bucket/tree/"]);
    assert!(!again.contains("upload:"), "second sync uploaded again: {again}");

    let back = scratch.path().join("back");
    let back_arg = back.to_str().expect("utf-8 path");
    aws(&cluster, scratch.path(), &["s3", "sync", "--no-progress", "s3://cli-bucket/tree/", back_arg]);
    for (file, data) in files.iter().zip(&contents) {
        let got = std::fs::read(back.join(file)).unwrap_or_else(|e| panic!("synced back {file}: {e}"));
        assert_bytes_eq(&got, data, &format!("synced back {file}"));
    }

    // rm --recursive, then the bucket itself.
    let out = aws(&cluster, scratch.path(), &["s3", "rm", "--recursive", "s3://cli-bucket/tree/"]);
    assert_eq!(out.matches("delete:").count(), files.len(), "rm --recursive output: {out}");
    assert_eq!(list_all_keys(&s3, "cli-bucket").await, vec!["data/big.bin"], "keys after rm --recursive");
    aws(&cluster, scratch.path(), &["s3", "rm", "--recursive", "s3://cli-bucket"]);
    aws(&cluster, scratch.path(), &["s3", "rb", "s3://cli-bucket"]);
    assert!(ok(s3.list_buckets().send().await, "ListBuckets").buckets().is_empty(), "bucket after rb");
}

/// `aws s3api put-bucket-cors` sends Content-MD5 and the CLI's own XML; get-bucket-cors must
/// read back what a browser app's deploy script wrote.
#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_bucket_cors() {
    let cluster = Cluster::start().await;
    let scratch = tempfile::tempdir().expect("tempdir");
    aws(&cluster, scratch.path(), &["s3", "mb", "s3://cli-cors"]);
    let rules = r#"{"CORSRules":[{"ID":"app","AllowedOrigins":["http://*.example.com"],"AllowedMethods":["GET","PUT"],"AllowedHeaders":["*"],"ExposeHeaders":["ETag"],"MaxAgeSeconds":600}]}"#;
    aws(&cluster, scratch.path(), &["s3api", "put-bucket-cors", "--bucket", "cli-cors", "--cors-configuration", rules]);
    let got = aws(&cluster, scratch.path(), &["s3api", "get-bucket-cors", "--bucket", "cli-cors", "--output", "json"]);
    let got: serde_json::Value =
        serde_json::from_str(&got).unwrap_or_else(|e| panic!("get-bucket-cors JSON ({e}): {got}"));
    let expected: serde_json::Value = serde_json::from_str(rules).expect("rules JSON");
    assert_eq!(got, expected, "get-bucket-cors returns what put-bucket-cors wrote");

    aws(&cluster, scratch.path(), &["s3api", "delete-bucket-cors", "--bucket", "cli-cors"]);
    let mut command = aws_v1_command(&cluster, scratch.path());
    command.arg("--endpoint-url").arg(&cluster.endpoint).args(["s3api", "get-bucket-cors", "--bucket", "cli-cors"]);
    let output = run_with_timeout(&mut command, CLI_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("NoSuchCORSConfiguration"), "after delete: {stderr}");
}

/// `aws s3api list-object-versions` pages with NextKeyMarker / NextVersionIdMarker itself
/// (`--page-size`), merging every page: what a backup script that walks versions sees.
#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_object_versions() {
    let cluster = Cluster::start().await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path();
    aws(&cluster, dir, &["s3", "mb", "s3://cli-versions"]);
    let enable = ["s3api", "put-bucket-versioning", "--bucket", "cli-versions"];
    aws(&cluster, dir, &[&enable[..], &["--versioning-configuration", "Status=Enabled"]].concat());
    let status =
        aws(&cluster, dir, &["s3api", "get-bucket-versioning", "--bucket", "cli-versions", "--output", "json"]);
    assert!(status.contains("\"Enabled\""), "get-bucket-versioning: {status}");
    let body = dir.join("body.txt");
    std::fs::write(&body, b"version body").expect("write body");
    let body = body.to_str().expect("UTF-8 path");
    for key in ["a", "a", "a", "b", "b", "c"] {
        aws(&cluster, dir, &["s3api", "put-object", "--bucket", "cli-versions", "--key", key, "--body", body]);
    }
    aws(&cluster, dir, &["s3api", "delete-object", "--bucket", "cli-versions", "--key", "b"]);
    let listed = aws(
        &cluster,
        dir,
        &["s3api", "list-object-versions", "--bucket", "cli-versions", "--page-size", "2", "--output", "json"],
    );
    let listed: serde_json::Value =
        serde_json::from_str(&listed).unwrap_or_else(|e| panic!("list-object-versions JSON ({e}): {listed}"));
    let versions = listed["Versions"].as_array().expect("Versions");
    let markers = listed["DeleteMarkers"].as_array().expect("DeleteMarkers");
    let keys: Vec<&str> = versions.iter().filter_map(|v| v["Key"].as_str()).collect();
    assert_eq!(keys, ["a", "a", "a", "b", "b", "c"], "every version, across pages of 2: {listed}");
    assert_eq!(markers.len(), 1, "{listed}");
    assert_eq!((markers[0]["Key"].as_str(), markers[0]["IsLatest"].as_bool()), (Some("b"), Some(true)));
    let latest: Vec<bool> = versions.iter().filter_map(|v| v["IsLatest"].as_bool()).collect();
    assert_eq!(latest, [true, false, false, false, false, true]);
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_managed_transfers_and_plain_calls() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("boto3_managed_transfers_and_plain_calls");
    let size = 30 * MIB;
    let run = python_client_round_trip(&cluster, &mut rng, "boto3_roundtrip.py", "boto3-bucket", size);
    let (report, upload_md5, upload) = (&run.report, &run.upload_md5, &run.upload);
    assert_eq!(&run.download_md5, upload_md5, "download_file bytes");
    assert_eq!(report["upload_size"].as_u64(), Some(size as u64), "{report}");
    // 30 MiB in 8 MiB parts: 8 + 8 + 8 + 6.
    let etag = report["upload_etag"].as_str().expect("ETag");
    assert!(etag.ends_with("-4\""), "ETag of boto3's 4-part upload: {etag}");

    let s3 = cluster.s3_client();
    let data = get_object(&s3, "boto3-bucket", "boto3/upload.bin").await;
    assert_eq!(&md5_hex(&data), upload_md5, "bytes uploaded by boto3, read by the Rust SDK");
    drop(data);
    let upload_bytes = std::fs::read(upload).expect("read upload");
    let parts: Vec<&[u8]> = upload_bytes.chunks(8 * MIB).collect();
    assert_eq!(etag, multipart_etag(&parts), "multipart ETag of boto3's upload");
}

#[tokio::test(flavor = "multi_thread")]
async fn rclone_smoke() {
    if !on_path("rclone") {
        println!("note: rclone is not installed; skipping the rclone smoke test");
        return;
    }
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("rclone_smoke");
    let scratch = tempfile::tempdir().expect("tempdir");
    let local = scratch.path().join("local.bin");
    let local_md5 = rng.write_file(&local, 3 * MIB + 11);
    let back = scratch.path().join("back.bin");

    let rclone = |args: &[&str]| -> String {
        let mut command = Command::new("rclone");
        clear_aws_env(&mut command);
        command
            .env("RCLONE_CONFIG", scratch.path().join("rclone.conf"))
            .env("RCLONE_S3_PROVIDER", "Other")
            .env("RCLONE_S3_ENDPOINT", &cluster.endpoint)
            .env("RCLONE_S3_ACCESS_KEY_ID", &cluster.access_key)
            .env("RCLONE_S3_SECRET_ACCESS_KEY", &cluster.secret_key)
            .env("RCLONE_S3_REGION", &cluster.region)
            .env("RCLONE_S3_FORCE_PATH_STYLE", "true")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .args(args);
        run_ok(&mut command, CLI_TIMEOUT)
    };
    rclone(&["mkdir", ":s3:rclone-bucket"]);
    rclone(&["copyto", local.to_str().expect("path"), ":s3:rclone-bucket/dir/file.bin"]);
    let listing = rclone(&["lsf", "-R", ":s3:rclone-bucket"]);
    assert!(listing.lines().any(|l| l == "dir/file.bin"), "rclone lsf: {listing}");
    let sums = rclone(&["md5sum", ":s3:rclone-bucket/dir/file.bin"]);
    assert!(sums.starts_with(&local_md5), "rclone md5sum (from the ETag): {sums}, expected {local_md5}");
    rclone(&["copyto", ":s3:rclone-bucket/dir/file.bin", back.to_str().expect("path")]);
    assert_eq!(md5_file(&back), local_md5, "rclone round trip");
    rclone(&["deletefile", ":s3:rclone-bucket/dir/file.bin"]);
    assert!(list_all_keys(&cluster.s3_client(), "rclone-bucket").await.is_empty(), "after rclone deletefile");
    rclone(&["rmdir", ":s3:rclone-bucket"]);
    assert!(ok(cluster.s3_client().list_buckets().send().await, "ListBuckets").buckets().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn s3cmd_smoke() {
    if !on_path("s3cmd") {
        println!("note: s3cmd is not installed; skipping the s3cmd smoke test");
        return;
    }
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("s3cmd_smoke");
    let scratch = tempfile::tempdir().expect("tempdir");
    let local = scratch.path().join("local.bin");
    // Above s3cmd's 15 MiB multipart chunk: two parts.
    let local_md5 = rng.write_file(&local, 17 * MIB);
    let back = scratch.path().join("back.bin");
    let host = cluster.gateway_addr();

    let s3cmd = |args: &[&str]| -> String {
        let mut command = Command::new("s3cmd");
        clear_aws_env(&mut command);
        command
            .env("HOME", scratch.path())
            .env("NO_PROXY", "127.0.0.1,localhost")
            .arg("-c")
            .arg("/dev/null")
            .arg(format!("--host={host}"))
            .arg(format!("--host-bucket={host}"))
            .arg("--no-ssl")
            .arg(format!("--access_key={}", cluster.access_key))
            .arg(format!("--secret_key={}", cluster.secret_key))
            .arg(format!("--region={}", cluster.region))
            .args(args);
        run_ok(&mut command, CLI_TIMEOUT)
    };
    s3cmd(&["mb", "s3://s3cmd-bucket"]);
    s3cmd(&["put", local.to_str().expect("path"), "s3://s3cmd-bucket/file.bin"]);
    let listing = s3cmd(&["ls", "s3://s3cmd-bucket"]);
    assert!(listing.contains("s3://s3cmd-bucket/file.bin"), "s3cmd ls: {listing}");
    s3cmd(&["get", "--force", "s3://s3cmd-bucket/file.bin", back.to_str().expect("path")]);
    assert_eq!(md5_file(&back), local_md5, "s3cmd round trip");
    s3cmd(&["del", "s3://s3cmd-bucket/file.bin"]);
    s3cmd(&["rb", "s3://s3cmd-bucket"]);
    assert!(ok(cluster.s3_client().list_buckets().send().await, "ListBuckets").buckets().is_empty());
}

/// minio-py (PyPI): bucket, multipart fput_object, stat, fget_object, list, remove.
#[tokio::test(flavor = "multi_thread")]
async fn minio_py_round_trip() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("minio_py_round_trip");
    let size = 12 * MIB;
    let run = python_client_round_trip(&cluster, &mut rng, "minio_roundtrip.py", "minio-bucket", size);
    let report = &run.report;
    assert_eq!(run.download_md5, run.upload_md5, "fget_object bytes");
    assert_eq!(report["size"].as_u64(), Some(size as u64), "{report}");
    assert!(report["etag"].as_str().is_some_and(|e| e.ends_with("-3")), "12 MiB in 5 MiB parts: {report}");
    assert_eq!(report["listed"], serde_json::json!(["minio/upload.bin"]), "{report}");
    assert_eq!(report["after_remove"], serde_json::json!([]), "{report}");
}

/// What a Python client script reported, with the MD5s of the file it uploaded and downloaded.
struct PythonRun {
    report: serde_json::Value,
    upload: std::path::PathBuf,
    upload_md5: String,
    download_md5: String,
    _scratch: tempfile::TempDir,
}

/// Runs `tests/clients/<script> ENDPOINT BUCKET UPLOAD DOWNLOAD` with a random file of `size`
/// bytes and the cluster's credentials; the script's last stdout line is its JSON report.
fn python_client_round_trip(
    cluster: &Cluster,
    rng: &mut TestRng,
    script: &str,
    bucket: &str,
    size: usize,
) -> PythonRun {
    let scratch = tempfile::tempdir().expect("tempdir");
    let upload = scratch.path().join("upload.bin");
    let upload_md5 = rng.write_file(&upload, size);
    let download = scratch.path().join("download.bin");
    let script = format!("{}/../tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = aws_command(cluster, "python3", scratch.path());
    command.arg(&script).arg(&cluster.endpoint).arg(bucket).arg(&upload).arg(&download);
    let stdout = run_ok(&mut command, CLI_TIMEOUT);
    let report = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{script} output is no JSON ({e}): {stdout}"));
    let download_md5 = md5_file(&download);
    PythonRun { report, upload, upload_md5, download_md5, _scratch: scratch }
}

/// The AWS SDK for JavaScript v3 with the defaults its users get (retries, request checksums,
/// response validation): PutObject from buffers, strings and streams (aws-chunked with a CRC32
/// trailer), GetObject with ranges and conditions, lib-storage's parallel multipart Upload and a
/// manual one, listings with delimiters and pagination, CopyObject, tagging, DeleteObjects
/// (tests/clients/js/roundtrip.mjs; `scripts/prerequisites test` runs `npm ci` there).
#[tokio::test(flavor = "multi_thread")]
async fn aws_sdk_for_javascript_v3() {
    let cluster = Cluster::start().await;
    let scratch = tempfile::tempdir().expect("scratch dir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/js/roundtrip.mjs");
    let mut command = Command::new("node");
    clear_aws_env(&mut command);
    for (key, value) in &cluster.exports {
        command.env(key, value);
    }
    command
        .env("AWS_CONFIG_FILE", scratch.path().join("no-config-file"))
        .env("AWS_SHARED_CREDENTIALS_FILE", scratch.path().join("no-credentials-file"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED", "true")
        .arg(&script)
        .arg("js-sdk-bucket");
    let output = run_with_timeout(&mut command, std::time::Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("all checks passed"),
        "roundtrip.mjs failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The AWS CLI v2 (Debian's `awscli` 2.9, installed by scripts/prerequisites), with its defaults:
/// multipart above 8 MiB, sync, listings, s3api calls whose list parameters travel as one
/// comma-separated header (get-object-attributes), tagging, and `rm --recursive` (one
/// DeleteObject per key). Version 2.9 predates the CLI's default checksums (2.23, January 2025);
/// those are what the JS SDK v3 and boto3 tests send.
#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_v2() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("aws_cli_v2");
    let scratch = tempfile::tempdir().expect("tempdir");
    let v2 = |args: &[&str]| aws_program(&cluster, scratch.path(), AWS_CLI_V2, args);
    let version = v2(&["--version"]);
    assert!(version.starts_with("aws-cli/2."), "{AWS_CLI_V2} is the CLI v2: {version}");

    v2(&["s3", "mb", "s3://cli-v2"]);
    let upload = scratch.path().join("forty.bin");
    let upload_md5 = rng.write_file(&upload, 40 * MIB);
    let upload_arg = upload.to_str().expect("utf-8 path");
    v2(&["s3", "cp", "--no-progress", upload_arg, "s3://cli-v2/forty.bin"]);
    let download = scratch.path().join("forty.down");
    let download_arg = download.to_str().expect("utf-8 path");
    v2(&["s3", "cp", "--no-progress", "s3://cli-v2/forty.bin", download_arg]);
    assert_eq!(md5_file(&download), upload_md5, "aws (v2) s3 cp round trip of 40 MiB");

    let attributes = v2(&[
        "s3api",
        "get-object-attributes",
        "--bucket",
        "cli-v2",
        "--key",
        "forty.bin",
        "--object-attributes",
        "ETag",
        "ObjectSize",
        "ObjectParts",
        "--output",
        "json",
    ]);
    let attributes: serde_json::Value =
        serde_json::from_str(&attributes).unwrap_or_else(|e| panic!("get-object-attributes JSON ({e}): {attributes}"));
    assert_eq!(attributes["ObjectSize"].as_u64(), Some(40 * MIB as u64), "{attributes}");
    assert_eq!(attributes["ObjectParts"]["TotalPartsCount"].as_u64(), Some(5), "8 MiB parts: {attributes}");
    let etag = attributes["ETag"].as_str().expect("ETag");
    assert!(!etag.starts_with('"') && etag.ends_with("-5"), "unquoted multipart ETag, as AWS: {etag}");

    v2(&[
        "s3api",
        "put-object-tagging",
        "--bucket",
        "cli-v2",
        "--key",
        "forty.bin",
        "--tagging",
        "TagSet=[{Key=k,Value=v}]",
    ]);
    let tags = v2(&["s3api", "get-object-tagging", "--bucket", "cli-v2", "--key", "forty.bin", "--output", "json"]);
    assert!(tags.contains("\"Key\": \"k\"") && tags.contains("\"Value\": \"v\""), "{tags}");

    let site = scratch.path().join("tree");
    for i in 0..30 {
        let dir = site.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(format!("f{i}.txt")), rng.bytes(100 + i)).expect("write");
    }
    v2(&["s3", "sync", "--no-progress", site.to_str().expect("utf-8 path"), "s3://cli-v2/tree"]);
    let listed = v2(&["s3", "ls", "--recursive", "s3://cli-v2/tree/"]);
    assert_eq!(listed.lines().count(), 30, "{listed}");
    let again = v2(&["s3", "sync", "--no-progress", site.to_str().expect("utf-8 path"), "s3://cli-v2/tree"]);
    assert!(again.trim().is_empty(), "a second sync uploads nothing: {again}");

    v2(&["s3", "rm", "--recursive", "s3://cli-v2/"]);
    let left = v2(&["s3", "ls", "--recursive", "s3://cli-v2/"]);
    assert!(left.trim().is_empty(), "rm --recursive left {left}");
    v2(&["s3", "rb", "s3://cli-v2"]);
}
