//! The bounded run loop: `concurrency` workers claim operations from one budget until the
//! deadline passes or the operation budget is spent, whichever comes first. Operations already
//! started when the deadline passes finish (each is bounded by the SDK's operation timeout), and
//! the elapsed time runs until the last of them has.

use super::baseline::BaselineClient;
use super::errors::OpError;
use super::s3;
use super::stats::{LiveCounters, Recorder};
use aws_sdk_s3::Client;
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The progress bar redraws this often.
const PROGRESS_TICK_MS: u64 = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// PutObject of new keys.
    Put,
    /// GetObject of objects written before the clock starts.
    Get,
    /// GETs and PUTs (overwrites) over one prepared set of keys; see --mixed-get-percent.
    Mixed,
    /// ListObjectsV2 pages over a prepared prefix.
    List,
    /// Create, upload parts sequentially, complete: one operation per object.
    Multipart,
    /// One DeleteObjects of --delete-batch-keys prepared keys per operation, each batch its own
    /// keys (the run ends when the prepared keys do).
    DeleteObjects,
    /// One DeleteObject of a prepared key per operation: the per-key baseline of delete-objects.
    Delete,
    /// Raw HTTP GETs against a loopback hyper server (no S3): the floor to compare with.
    HttpBaseline,
}

impl Workload {
    pub fn label(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Mixed => "mixed",
            Self::List => "list",
            Self::Multipart => "multipart",
            Self::DeleteObjects => "delete-objects",
            Self::Delete => "delete",
            Self::HttpBaseline => "http-baseline",
        }
    }
}

/// Stop when the first of the two is reached.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub duration: Duration,
    pub ops_max: u64,
}

struct Budget {
    deadline: Instant,
    ops_max: u64,
    claimed: AtomicU64,
}

impl Budget {
    /// The next operation's index, or None once the deadline or the budget is reached.
    fn claim(&self) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let index = self.claimed.fetch_add(1, Ordering::Relaxed);
        (index < self.ops_max).then_some(index)
    }
}

/// Bodies for PUTs, every one different from its neighbours: slices, at multiples of their size,
/// of one pool of random bytes generated before the clock starts (zero-copy). One body shared by
/// every PUT would let any compression in the store (its metadata engine's, its snapshots')
/// fold a run's objects into one and report a space no user's data would get.
#[derive(Clone)]
pub struct Payloads {
    pool: Bytes,
    size: usize,
}

impl Payloads {
    /// Random bytes beyond one body that the pool holds: 64 MiB, so 16,384 different 4 KiB
    /// bodies (a run of more takes them again in the same order, 64 MiB of bodies apart) and two
    /// 64 MiB ones.
    pub const POOL_EXTRA_BYTES: usize = 64 << 20;

    /// Bodies of `size` bytes, drawn from `pool`, which holds at least one.
    pub fn new(pool: Bytes, size: usize) -> Self {
        assert!(pool.len() >= size, "a pool of {} bytes for bodies of {size}", pool.len());
        Self { pool, size }
    }

    /// The body of operation `index`.
    pub fn body(&self, index: u64) -> Bytes {
        let slots = ((self.pool.len() - self.size) / self.size.max(1) + 1) as u64;
        let at = (index % slots) as usize * self.size;
        self.pool.slice(at..at + self.size)
    }
}

/// What one operation does, chosen from its index so workers carry no state.
pub enum Driver {
    S3 {
        client: Client,
        bucket: String,
        /// Every key of this run starts with it.
        prefix: String,
        workload: Workload,
        /// Keys written before the clock started (get, mixed, list).
        prepared: Arc<Vec<String>>,
        /// put, mixed: the objects; multipart: the parts.
        payloads: Payloads,
        size_bytes: u64,
        get_percent: u8,
        list_page_keys_max: i32,
        /// delete-objects: keys per DeleteObjects.
        delete_batch_keys: usize,
    },
    /// Writes `keys[index]` (the untimed preparation of get, mixed and list).
    Prepare {
        client: Client,
        bucket: String,
        keys: Arc<Vec<String>>,
        payloads: Payloads,
    },
    Http {
        client: BaselineClient,
    },
}

/// A deterministic, well-mixed 64-bit value of the operation index (splitmix64), so the
/// choice between GET and PUT costs nothing and a run is reproducible.
fn mix(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Driver {
    async fn run(&self, index: u64) -> (&'static str, Result<u64, OpError>) {
        match self {
            Driver::S3 {
                client,
                bucket,
                prefix,
                workload,
                prepared,
                payloads,
                size_bytes,
                get_percent,
                list_page_keys_max,
                delete_batch_keys,
            } => {
                let prepared_key = |n: u64| &prepared[(n % prepared.len().max(1) as u64) as usize];
                match workload {
                    Workload::Put => {
                        let key = format!("{prefix}put/{index}");
                        ("put", s3::put(client, bucket, &key, payloads.body(index)).await)
                    }
                    Workload::Get => {
                        let key = prepared_key(index);
                        ("get", s3::get(client, bucket, key, *size_bytes).await)
                    }
                    Workload::Mixed => {
                        let choice = mix(index);
                        let key = prepared_key(choice / 100);
                        if choice % 100 < u64::from(*get_percent) {
                            ("get", s3::get(client, bucket, key, *size_bytes).await)
                        } else {
                            ("put", s3::put(client, bucket, key, payloads.body(index)).await)
                        }
                    }
                    Workload::List => {
                        let listed =
                            s3::list_page(client, bucket, &format!("{prefix}list/"), *list_page_keys_max).await;
                        // A list moves keys, not object bytes: bytes stay 0, and an empty
                        // page of a prefix we filled is an error.
                        let result = match listed {
                            Ok(0) => Err(OpError::new("EmptyListing", "ListObjectsV2: no keys")),
                            Ok(_) => Ok(0),
                            Err(e) => Err(e),
                        };
                        ("list", result)
                    }
                    Workload::Multipart => {
                        let key = format!("{prefix}multipart/{index}");
                        ("multipart", s3::multipart(client, bucket, &key, *size_bytes, &payloads.body(index)).await)
                    }
                    Workload::DeleteObjects => {
                        let start = (index as usize).saturating_mul(*delete_batch_keys).min(prepared.len());
                        let end = start.saturating_add(*delete_batch_keys).min(prepared.len());
                        let result = match &prepared[start..end] {
                            [] => Err(OpError::new("NoKeysLeft", "every prepared key is deleted")),
                            keys => s3::delete_batch(client, bucket, keys).await,
                        };
                        ("delete-objects", result)
                    }
                    Workload::Delete => match prepared.get(index as usize) {
                        Some(key) => ("delete", s3::delete(client, bucket, key).await),
                        None => ("delete", Err(OpError::new("NoKeysLeft", "every prepared key is deleted"))),
                    },
                    Workload::HttpBaseline => {
                        ("http-get", Err(OpError::new("construction", "http-baseline needs Driver::Http")))
                    }
                }
            }
            Driver::Prepare { client, bucket, keys, payloads } => {
                let key = &keys[(index % keys.len().max(1) as u64) as usize];
                ("prepare", s3::put(client, bucket, key, payloads.body(index)).await)
            }
            Driver::Http { client } => ("http-get", client.get().await),
        }
    }
}

/// Runs `driver` with `concurrency` workers within `bounds`; returns the merged measurements
/// and the elapsed time.
pub async fn run(
    driver: Arc<Driver>,
    concurrency: u32,
    bounds: Bounds,
    progress_label: Option<&str>,
) -> (Recorder, Duration) {
    let live = Arc::new(LiveCounters::default());
    let started = Instant::now();
    let budget =
        Arc::new(Budget { deadline: started + bounds.duration, ops_max: bounds.ops_max, claimed: AtomicU64::new(0) });
    let progress = progress_label.map(|label| Progress::start(label, bounds, live.clone()));
    let mut workers = Vec::with_capacity(concurrency as usize);
    for _ in 0..concurrency {
        let driver = driver.clone();
        let budget = budget.clone();
        let live = live.clone();
        workers.push(tokio::spawn(async move {
            let mut recorder = Recorder::new();
            while let Some(index) = budget.claim() {
                let start = Instant::now();
                let (operation, result) = driver.run(index).await;
                match result {
                    Ok(bytes) => {
                        recorder.success(operation, start.elapsed(), bytes);
                        live.success(bytes);
                    }
                    Err(error) => {
                        recorder.error(error.kind, error.message);
                        live.error();
                    }
                }
            }
            recorder
        }));
    }
    let mut merged = Recorder::new();
    for worker in workers {
        match worker.await {
            Ok(recorder) => merged.merge(recorder),
            Err(join_error) => merged.error("worker-panic".into(), join_error.to_string()),
        }
    }
    let elapsed = started.elapsed();
    if let Some(progress) = progress {
        progress.finish();
    }
    (merged, elapsed)
}

/// A progress bar on stderr, redrawn by its own task until the run ends.
struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(label: &str, bounds: Bounds, live: Arc<LiveCounters>) -> Self {
        const SCALE: u64 = 1000;
        let bar = ProgressBar::with_draw_target(Some(SCALE), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {bar:30} {msg}")
                .expect("constant template is valid"),
        );
        bar.set_prefix(label.to_string());
        let ticker_bar = bar.clone();
        let started = Instant::now();
        // Bounded by the run: finish() aborts it; the iteration cap is a second bound for a
        // run whose last operations outlive the deadline by up to an hour.
        let ticks_max = (bounds.duration.as_millis() as u64 + 3_600_000) / PROGRESS_TICK_MS;
        let ticker = tokio::spawn(async move {
            for _ in 0..ticks_max {
                tokio::time::sleep(Duration::from_millis(PROGRESS_TICK_MS)).await;
                let elapsed = started.elapsed().as_secs_f64();
                let ops = live.ops.load(Ordering::Relaxed);
                let bytes = live.bytes.load(Ordering::Relaxed);
                let errors = live.errors.load(Ordering::Relaxed);
                let by_time = elapsed / bounds.duration.as_secs_f64().max(f64::MIN_POSITIVE);
                let by_ops = (ops + errors) as f64 / bounds.ops_max.max(1) as f64;
                let done = by_time.max(by_ops).min(1.0);
                ticker_bar.set_position((done * SCALE as f64) as u64);
                ticker_bar.set_message(format!(
                    "{ops} ops {:.0}/s {:.1} MiB/s {errors} errors",
                    ops as f64 / elapsed.max(1e-9),
                    bytes as f64 / (1u64 << 20) as f64 / elapsed.max(1e-9),
                ));
            }
        });
        Self { bar, ticker }
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_operations_get_different_bodies_of_the_size_asked() {
        let pool: Bytes = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let payloads = Payloads::new(pool.clone(), 4096);
        // 10,000 bytes hold two 4096-byte bodies side by side (and 1808 bytes never used).
        assert_eq!(payloads.body(0), pool.slice(0..4096));
        assert_eq!(payloads.body(1), pool.slice(4096..8192));
        assert_ne!(payloads.body(0), payloads.body(1));
        assert_eq!(payloads.body(2), payloads.body(0), "the pool's bodies come round again");
        for index in 0..5 {
            assert_eq!(payloads.body(index).len(), 4096);
        }
        let whole = Payloads::new(pool.clone(), pool.len());
        assert_eq!(whole.body(7), pool);
        assert_eq!(Payloads::new(pool, 0).body(3).len(), 0);
    }
}
