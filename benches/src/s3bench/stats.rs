//! What a run measured: a latency histogram per operation, bytes, errors by kind, CPU time.
//!
//! Each worker records into its own [`Recorder`] (no lock on the hot path); the recorders are
//! merged once the run is over. Live counters for the progress bar are separate atomics.

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latencies are recorded in microseconds, from 1 µs to one hour, to 3 significant digits.
const LATENCY_LOWEST_US: u64 = 1;
const LATENCY_HIGHEST_US: u64 = 3_600_000_000;
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_LOWEST_US, LATENCY_HIGHEST_US, LATENCY_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// One worker's measurements.
pub struct Recorder {
    /// Latency of successful operations, by operation name (`put`, `get`, `list`, ...).
    latency_us: BTreeMap<&'static str, Histogram<u64>>,
    ops: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
    /// The first message seen for each error kind, to print once at the end.
    error_examples: BTreeMap<String, String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self { latency_us: BTreeMap::new(), ops: 0, bytes: 0, errors: BTreeMap::new(), error_examples: BTreeMap::new() }
    }

    pub fn success(&mut self, operation: &'static str, latency: Duration, bytes: u64) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us
            .entry(operation)
            .or_insert_with(new_histogram)
            .saturating_record(micros.clamp(LATENCY_LOWEST_US, LATENCY_HIGHEST_US));
        self.ops += 1;
        self.bytes += bytes;
    }

    pub fn error(&mut self, kind: String, message: String) {
        *self.errors.entry(kind.clone()).or_default() += 1;
        self.error_examples.entry(kind).or_insert(message);
    }

    pub fn merge(&mut self, other: Recorder) {
        for (operation, histogram) in other.latency_us {
            self.latency_us
                .entry(operation)
                .or_insert_with(new_histogram)
                .add(&histogram)
                .expect("histograms share their bounds");
        }
        self.ops += other.ops;
        self.bytes += other.bytes;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        for (kind, message) in other.error_examples {
            self.error_examples.entry(kind).or_insert(message);
        }
    }

    pub fn ops(&self) -> u64 {
        self.ops
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    pub fn error_examples(&self) -> &BTreeMap<String, String> {
        &self.error_examples
    }

    /// All operations together.
    pub fn overall_latency(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for histogram in self.latency_us.values() {
            all.add(histogram).expect("histograms share their bounds");
        }
        all
    }

    pub fn latency_by_operation(&self) -> &BTreeMap<&'static str, Histogram<u64>> {
        &self.latency_us
    }
}

/// p50, p90, p99, max and mean in milliseconds, rounded to the microsecond.
pub fn latency_json(histogram: &Histogram<u64>) -> Value {
    let ms = |micros: f64| Value::from(micros.round() / 1000.0);
    if histogram.is_empty() {
        return json!({ "p50": null, "p90": null, "p99": null, "max": null, "mean": null });
    }
    json!({
        "p50": ms(histogram.value_at_quantile(0.50) as f64),
        "p90": ms(histogram.value_at_quantile(0.90) as f64),
        "p99": ms(histogram.value_at_quantile(0.99) as f64),
        "max": ms(histogram.max() as f64),
        "mean": ms(histogram.mean()),
    })
}

/// Counters shared by the workers and the progress bar.
#[derive(Default)]
pub struct LiveCounters {
    pub ops: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

impl LiveCounters {
    pub fn success(&self, bytes: u64) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// User plus system CPU time of this process so far (getrusage RUSAGE_SELF).
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we hand it; all-zero is a valid rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a live rusage; RUSAGE_SELF is always a valid target.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let timeval =
        |t: libc::timeval| Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64);
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU time (user + system) the processes `pids` have used so far, from /proc/<pid>/stat; a
/// process that is gone counts nothing. Sampled around the timed phase, it is the servers' CPU
/// for exactly the operations timed (not the untimed preparation or cleanup).
pub fn processes_cpu_time(pids: &[u32]) -> Duration {
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total = 0.0;
    for pid in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The command name (field 2) may hold spaces; fields 14 and 15 (utime, stime) follow
        // the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        // After ')': field 3 is at index 0, so utime (14) is at 11 and stime (15) at 12.
        total += (ticks(11) + ticks(12)) / ticks_per_sec;
    }
    Duration::from_secs_f64(total)
}

/// Everything the one JSON line reports.
pub struct Report<'a> {
    pub workload: &'a str,
    pub size_bytes: u64,
    pub concurrency: u32,
    pub elapsed: Duration,
    pub client_cpu: Duration,
    pub recorder: &'a Recorder,
    /// Workload-specific fields (part size, GET share, prepared objects, endpoint...).
    pub extra: Map<String, Value>,
}

impl Report<'_> {
    pub fn to_json(&self) -> Value {
        let seconds = self.elapsed.as_secs_f64();
        let per_second = |x: f64| {
            if seconds > 0.0 { round3(x / seconds) } else { 0.0 }
        };
        let mut object = Map::new();
        object.insert("workload".into(), self.workload.into());
        object.insert("size".into(), self.size_bytes.into());
        object.insert("concurrency".into(), self.concurrency.into());
        object.insert("ops".into(), self.recorder.ops().into());
        object.insert("bytes".into(), self.recorder.bytes().into());
        object.insert("seconds".into(), round3(seconds).into());
        object.insert("ops_per_sec".into(), per_second(self.recorder.ops() as f64).into());
        object.insert("mib_per_sec".into(), per_second(self.recorder.bytes() as f64 / (1u64 << 20) as f64).into());
        object.insert("latency_ms".into(), latency_json(&self.recorder.overall_latency()));
        let by_operation = self.recorder.latency_by_operation();
        if by_operation.len() > 1 {
            let map: Map<String, Value> =
                by_operation.iter().map(|(name, h)| ((*name).to_string(), latency_json(h))).collect();
            object.insert("latency_ms_by_operation".into(), Value::Object(map));
        }
        let errors: Map<String, Value> =
            self.recorder.errors().iter().map(|(kind, count)| (kind.clone(), (*count).into())).collect();
        object.insert("errors".into(), Value::Object(errors));
        object.insert("client_cpu_seconds".into(), round3(self.client_cpu.as_secs_f64()).into());
        for (key, value) in &self.extra {
            object.insert(key.clone(), value.clone());
        }
        Value::Object(object)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_recorders_report_percentiles_and_errors() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for ms in 1..=100u64 {
            a.success("put", Duration::from_millis(ms), 10);
        }
        b.success("get", Duration::from_secs(2), 10);
        b.error("SlowDown".into(), "503".into());
        b.error("SlowDown".into(), "503 again".into());
        a.merge(b);
        let report = Report {
            workload: "mixed",
            size_bytes: 10,
            concurrency: 2,
            elapsed: Duration::from_secs(1),
            client_cpu: Duration::from_millis(1500),
            recorder: &a,
            extra: Map::new(),
        }
        .to_json();
        assert_eq!(report["ops"], 101);
        assert_eq!(report["bytes"], 1010);
        assert_eq!(report["errors"]["SlowDown"], 2);
        // 3 significant digits: the max is reported within 0.1 % above the recorded value.
        let max = report["latency_ms"]["max"].as_f64().unwrap();
        assert!((2000.0..=2002.0).contains(&max), "max {max}");
        let p50 = report["latency_ms"]["p50"].as_f64().unwrap();
        assert!((50.0..=52.0).contains(&p50), "p50 {p50}");
        assert!(report["latency_ms_by_operation"]["get"].is_object());
        assert_eq!(report["client_cpu_seconds"], 1.5);
        assert_eq!(a.error_examples()["SlowDown"], "503");
    }

    #[test]
    fn cpu_time_is_monotonic() {
        let before = process_cpu_time();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_time() >= before);
    }
}
