//! `s3bench`: an S3 load generator for any S3 endpoint, Ignifuge or not.
//!
//! ```text
//! s3bench --workload put --size 4KiB --concurrency 16 --duration-secs 10 --json
//! ```
//!
//! Reads AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN,
//! AWS_REGION) as `ignifuge dev` prints them. Results go to stdout (one JSON line with
//! `--json`), the progress bar and error examples to stderr. See docs/benchmarks.md.

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use hyper::Uri;
use ignifuge_benches::s3bench::baseline::{self, BaselineClient};
use ignifuge_benches::s3bench::run::{self, Bounds, Driver, Payloads, Workload};
use ignifuge_benches::s3bench::s3::{self, ChecksumPolicy, DELETE_BATCH_KEYS_MAX, MULTIPART_PARTS_MAX, S3Options};
use ignifuge_benches::s3bench::stats::{self, Recorder, Report, latency_json};
use ignifuge_benches::s3bench::units::{format_size, parse_size};
use serde_json::{Map, Value};
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DURATION_DEFAULT_SECS: f64 = 10.0;
const DURATION_MAX_SECS: f64 = 3600.0;
const OPS_MAX: u64 = 10_000_000;
const CONCURRENCY_MAX: u32 = 4096;
/// S3's limit for one PutObject; also what one payload may hold in memory.
const OBJECT_SIZE_MAX_BYTES: u64 = 5 << 30;
const PART_SIZE_MAX_BYTES: u64 = 5 << 30;
/// get and mixed prepare this many objects per worker by default...
const PREPARED_OBJECTS_PER_WORKER: u64 = 4;
const PREPARED_OBJECTS_MIN: u64 = 16;
/// ...but never more than this many bytes of them.
const PREPARED_BYTES_MAX: u64 = 4 << 30;
const PREPARED_OBJECTS_MAX: u64 = 1_000_000;
const LIST_PREPARED_OBJECTS_DEFAULT: u64 = 1000;
/// delete-objects and delete: batches (or keys) deleted when neither --objects nor --ops says.
const DELETE_OPS_DEFAULT: u64 = 4;
/// Writing the prepared objects may take at most this long.
const PREPARE_DURATION_MAX_SECS: u64 = 3600;

#[derive(Parser)]
#[command(
    name = "s3bench",
    about = "S3 load generator for any S3 endpoint: put, get, mixed, list, multipart, and a raw \
             loopback HTTP baseline"
)]
struct Args {
    /// S3 endpoint URL; without one, AWS's endpoint for the region.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// Created if missing. Every key of a run lives under `s3bench/<run id>/`.
    #[arg(long, default_value = "s3bench")]
    bucket: String,
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    workload: Workload,
    /// Object size: 4KiB, 1MiB, 64MiB, 4096... (for http-baseline: the response body).
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    size: u64,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=CONCURRENCY_MAX as i64))]
    concurrency: u32,
    /// Stop after this many seconds (default 10 unless --ops is given; at most 3600).
    #[arg(long, value_parser = parse_duration_secs)]
    duration_secs: Option<f64>,
    /// Stop after this many operations (at most 10 million); with --duration-secs, whichever
    /// comes first.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=OPS_MAX))]
    ops: Option<u64>,
    /// mixed: the share of GETs, in percent; the rest are PUTs overwriting the same keys.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    mixed_get_percent: u8,
    /// multipart: the size of every part but the last.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    part_size: u64,
    /// get, mixed, list: how many objects to write before the clock starts (default: 4 per
    /// worker, at least 16, at most 4 GiB in all; list: 1000).
    #[arg(long)]
    objects: Option<u64>,
    /// list: keys per ListObjectsV2 page.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=1000))]
    list_page_keys: i32,
    /// delete-objects: keys per DeleteObjects (each operation deletes its own prepared keys).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=DELETE_BATCH_KEYS_MAX as u64))]
    delete_batch_keys: u64,
    /// Server processes whose CPU seconds (from /proc) to report for the timed phase only, as
    /// `server_cpu_seconds`: comma-separated pids.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// http-baseline: GET this URL instead of starting the tool's own server on 127.0.0.1.
    #[arg(long)]
    target: Option<String>,
    /// http-baseline with --target: send this Host header (a website endpoint's bucket host).
    #[arg(long, requires = "target")]
    host_header: Option<String>,
    /// Request checksums and response validation as current SDKs do by default
    /// (when-supported), or only where an operation requires them.
    #[arg(long, value_enum, default_value_t = ChecksumPolicy::WhenSupported)]
    checksums: ChecksumPolicy,
    /// Attempts per operation; 1 (no retries) counts every error instead of hiding it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    attempts: u32,
    /// Upper bound on one operation, so a run always ends.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    operation_timeout_secs: u64,
    /// Delete this run's objects afterwards (not timed).
    #[arg(long)]
    cleanup: bool,
    /// Print exactly one JSON line on stdout at the end.
    #[arg(long)]
    json: bool,
}

fn parse_duration_secs(text: &str) -> Result<f64, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= DURATION_MAX_SECS) {
        return Err(format!("{text}: must be more than 0 and at most {DURATION_MAX_SECS} s"));
    }
    Ok(secs)
}

/// Always bounded: neither given means 10 s; only --ops means that many, within an hour.
fn bounds(args: &Args) -> Bounds {
    let duration_secs = match (args.duration_secs, args.ops) {
        (Some(secs), _) => secs,
        (None, Some(_)) => DURATION_MAX_SECS,
        (None, None) => DURATION_DEFAULT_SECS,
    };
    Bounds { duration: Duration::from_secs_f64(duration_secs), ops_max: args.ops.unwrap_or(OPS_MAX) }
}

/// Random bytes, generated once, before any clock starts, and shared by every operation.
fn random_payload(bytes: u64) -> Bytes {
    let mut buffer = vec![0u8; bytes as usize];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut buffer);
    Bytes::from(buffer)
}

fn credential(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (try `eval \"$(ignifuge dev)\"`'s exports)"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run_and_report(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("s3bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exits 0 once a run completed, whatever its errors (they are in the report); fails only when
/// no run could start (bad arguments, no credentials, no bucket, preparation failed).
async fn run_and_report(args: Args) -> anyhow::Result<()> {
    let mut bounds = bounds(&args);
    let show_progress = std::io::stderr().is_terminal();
    let mut extra = Map::new();

    let (driver, prepared_objects) = match args.workload {
        Workload::HttpBaseline => {
            ensure!(args.size <= OBJECT_SIZE_MAX_BYTES, "--size at most {}", format_size(OBJECT_SIZE_MAX_BYTES));
            let target = match &args.target {
                Some(target) => {
                    extra.insert("server".into(), "external".into());
                    target.clone()
                }
                None => {
                    let (address, _server) = baseline::start_server(random_payload(args.size))
                        .await
                        .context("starting the loopback HTTP server")?;
                    extra.insert("server".into(), "in-process hyper on 127.0.0.1".into());
                    format!("http://{address}/")
                }
            };
            let uri: Uri = target.parse().with_context(|| format!("--target {target:?} is not a URL"))?;
            extra.insert("target".into(), target.into());
            if let Some(host) = &args.host_header {
                extra.insert("host_header".into(), host.clone().into());
            }
            let driver = Driver::Http { client: BaselineClient::new(uri, args.host_header.clone()) };
            (driver, 0)
        }
        workload => prepare_s3(&args, workload, &mut extra, show_progress).await?,
    };
    // The delete workloads end when their prepared keys do.
    match args.workload {
        Workload::DeleteObjects => {
            bounds.ops_max = bounds.ops_max.min(prepared_objects.div_ceil(args.delete_batch_keys))
        }
        Workload::Delete => bounds.ops_max = bounds.ops_max.min(prepared_objects),
        _ => {}
    }

    // Wall-clock start of the timed phase, to line a run up with the server's logs.
    let started_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    extra.insert("started_unix_ms".into(), started_unix_ms.into());
    let cpu_before = stats::process_cpu_time();
    let servers_before = stats::processes_cpu_time(&args.server_pids);
    let driver = Arc::new(driver);
    let (recorder, elapsed) =
        run::run(driver.clone(), args.concurrency, bounds, show_progress.then_some(args.workload.label())).await;
    let client_cpu = stats::process_cpu_time().saturating_sub(cpu_before);
    if !args.server_pids.is_empty() {
        let servers = stats::processes_cpu_time(&args.server_pids).saturating_sub(servers_before);
        extra.insert("server_cpu_seconds".into(), ((servers.as_secs_f64() * 1000.0).round() / 1000.0).into());
    }

    if args.cleanup
        && let Driver::S3 { client, bucket, prefix, .. } = &*driver
    {
        // At most one page per object this run could have written, plus the last empty one.
        let pages_max = (recorder.ops() + prepared_objects) / 1000 + 2;
        match s3::delete_prefix(client, bucket, prefix, pages_max).await {
            Ok(deleted) => eprintln!("s3bench: deleted {deleted} objects under {prefix}"),
            Err(error) => eprintln!("s3bench: cleanup failed: {}", error.message),
        }
    }

    for (kind, message) in recorder.error_examples() {
        eprintln!("s3bench: first {kind} error: {message}");
    }
    let report = Report {
        workload: args.workload.label(),
        size_bytes: args.size,
        concurrency: args.concurrency,
        elapsed,
        client_cpu,
        recorder: &recorder,
        extra,
    }
    .to_json();
    if args.json {
        println!("{report}");
    } else {
        print_human(&report, &recorder);
    }
    Ok(())
}

/// The bucket, the payload and, for get, mixed and list, the objects written before the clock
/// starts. Returns the timed driver and how many objects were prepared.
async fn prepare_s3(
    args: &Args,
    workload: Workload,
    extra: &mut Map<String, Value>,
    show_progress: bool,
) -> anyhow::Result<(Driver, u64)> {
    if workload == Workload::Multipart {
        ensure!(
            (1..=PART_SIZE_MAX_BYTES).contains(&args.part_size),
            "--part-size must be 1 byte to {}",
            format_size(PART_SIZE_MAX_BYTES)
        );
        ensure!(
            args.size.div_ceil(args.part_size) <= MULTIPART_PARTS_MAX,
            "--size {} needs more than {MULTIPART_PARTS_MAX} parts of --part-size {}",
            format_size(args.size),
            format_size(args.part_size)
        );
    } else {
        ensure!(
            args.size <= OBJECT_SIZE_MAX_BYTES,
            "--size at most {} (S3's PutObject limit); use --workload multipart beyond",
            format_size(OBJECT_SIZE_MAX_BYTES)
        );
    }
    let options = S3Options {
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        access_key_id: credential("AWS_ACCESS_KEY_ID")?,
        secret_access_key: credential("AWS_SECRET_ACCESS_KEY")?,
        session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
        checksums: args.checksums,
        attempts_max: args.attempts,
        operation_timeout: Duration::from_secs(args.operation_timeout_secs),
    };
    let client = s3::client(&options);
    let created = s3::ensure_bucket(&client, &args.bucket, &args.region)
        .await
        .map_err(|e| anyhow::anyhow!("bucket {}: {} ({})", args.bucket, e.kind, e.message))?;
    if created {
        eprintln!("s3bench: created bucket {}", args.bucket);
    }
    let run_id = format!(
        "{}-{}",
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis(),
        std::process::id()
    );
    let prefix = format!("s3bench/{run_id}/");
    extra.insert("endpoint".into(), args.endpoint.clone().into());
    extra.insert("bucket".into(), args.bucket.clone().into());
    extra.insert("prefix".into(), prefix.clone().into());
    extra.insert("checksums".into(), args.checksums.label().into());

    let body_bytes = if workload == Workload::Multipart {
        extra.insert("part_size".into(), args.part_size.into());
        args.part_size.min(args.size)
    } else {
        args.size
    };
    let payloads = Payloads::new(random_payload(body_bytes + Payloads::POOL_EXTRA_BYTES as u64), body_bytes as usize);

    let prepared_count = match workload {
        Workload::Get | Workload::Mixed => args.objects.unwrap_or_else(|| {
            let by_workers = (u64::from(args.concurrency) * PREPARED_OBJECTS_PER_WORKER).max(PREPARED_OBJECTS_MIN);
            by_workers.min(PREPARED_BYTES_MAX / args.size.max(1)).max(1)
        }),
        Workload::List => args.objects.unwrap_or(LIST_PREPARED_OBJECTS_DEFAULT),
        Workload::DeleteObjects => {
            args.objects.unwrap_or(args.ops.unwrap_or(DELETE_OPS_DEFAULT).saturating_mul(args.delete_batch_keys))
        }
        Workload::Delete => args.objects.unwrap_or(args.ops.unwrap_or(DELETE_OPS_DEFAULT)),
        _ => 0,
    };
    if workload == Workload::DeleteObjects {
        extra.insert("delete_batch_keys".into(), args.delete_batch_keys.into());
    }
    if workload == Workload::Mixed {
        extra.insert("get_percent".into(), args.mixed_get_percent.into());
    }
    if workload == Workload::List {
        extra.insert("list_page_keys".into(), args.list_page_keys.into());
    }
    ensure!(prepared_count <= PREPARED_OBJECTS_MAX, "--objects at most {PREPARED_OBJECTS_MAX}");
    let prepared: Vec<String> = (0..prepared_count)
        .map(|i| match workload {
            Workload::List => format!("{prefix}list/{i:07}"),
            _ => format!("{prefix}objects/{i}"),
        })
        .collect();
    let prepared = Arc::new(prepared);
    if prepared_count > 0 {
        extra.insert("objects".into(), prepared_count.into());
        eprintln!("s3bench: writing {prepared_count} objects of {} (not timed)", format_size(args.size));
        let preparation = Driver::Prepare {
            client: client.clone(),
            bucket: args.bucket.clone(),
            keys: prepared.clone(),
            payloads: payloads.clone(),
        };
        let (recorder, _) = run::run(
            Arc::new(preparation),
            args.concurrency,
            Bounds { duration: Duration::from_secs(PREPARE_DURATION_MAX_SECS), ops_max: prepared_count },
            show_progress.then_some("prepare"),
        )
        .await;
        if recorder.ops() < prepared_count {
            let examples: Vec<String> =
                recorder.error_examples().iter().map(|(kind, message)| format!("{kind}: {message}")).collect();
            bail!("only {} of {prepared_count} objects could be written: {}", recorder.ops(), examples.join("; "));
        }
    }
    let driver = Driver::S3 {
        client,
        bucket: args.bucket.clone(),
        prefix,
        workload,
        prepared,
        payloads,
        size_bytes: args.size,
        get_percent: args.mixed_get_percent,
        list_page_keys_max: args.list_page_keys,
        delete_batch_keys: args.delete_batch_keys as usize,
    };
    Ok((driver, prepared_count))
}

fn print_human(report: &Value, recorder: &Recorder) {
    let size = report["size"].as_u64().unwrap_or(0);
    println!(
        "{} {} x{}: {} ops in {:.2} s = {} ops/s, {} MiB/s; client CPU {} s",
        report["workload"].as_str().unwrap_or("?"),
        format_size(size),
        report["concurrency"],
        report["ops"],
        report["seconds"].as_f64().unwrap_or(0.0),
        report["ops_per_sec"],
        report["mib_per_sec"],
        report["client_cpu_seconds"],
    );
    let latency = |name: &str, value: &Value| {
        println!(
            "  latency ms {name}: p50 {} p90 {} p99 {} max {} mean {}",
            value["p50"], value["p90"], value["p99"], value["max"], value["mean"]
        );
    };
    latency("all", &report["latency_ms"]);
    let by_operation = recorder.latency_by_operation();
    if by_operation.len() > 1 {
        for (name, histogram) in by_operation {
            latency(name, &latency_json(histogram));
        }
    }
    if recorder.errors().is_empty() {
        println!("  errors: none");
    } else {
        for (kind, count) in recorder.errors() {
            println!("  errors {kind}: {count}");
        }
    }
}
