//! The process's tunable settings, read once from the environment when a node or a gateway
//! starts, and handed to each part as its own config struct: nothing below the binary reads the
//! environment (the fault-injection points of `ignifuge-faults`, compiled in for tests only,
//! aside). Every variable is optional; production runs on the defaults, tests and benchmarks
//! shorten schedules and shrink limits. A value that does not parse stops the process at start
//! rather than being silently replaced by the default.

use anyhow::Context as _;
use ignifuge_gateway::datapath::{DataPathTuning, INLINE_LIMIT_BYTES, PACK_LIMIT_BYTES};
use ignifuge_raft::RaftTuning;
use ignifuge_services::ServicesConfig;
use ignifuge_services::repair::METADATA_CHECK_INTERVAL_MS_DEFAULT;
use ignifuge_storage_node::{AroundCache, ScrubConfig, SyncMode};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// IGNIFUGE_GATEWAY_READ_STRIPES, IGNIFUGE_GATEWAY_STRIPES_IN_FLIGHT,
    /// IGNIFUGE_GATEWAY_STRIPE_FILL_MS, IGNIFUGE_GATEWAY_READ_STRIPES_IN_FLIGHT,
    /// IGNIFUGE_GATEWAY_ANSWER_STALL_MS, IGNIFUGE_INTENT_RENEW_MS, IGNIFUGE_INLINE_MAX_BYTES,
    /// IGNIFUGE_PACK_MAX_BYTES, IGNIFUGE_GATEWAY_PACK_BUDGET_BYTES,
    /// IGNIFUGE_GATEWAY_SHARD_CACHE_BYTES.
    pub data_path: DataPathTuning,
    /// IGNIFUGE_GC_GRACE_MS, IGNIFUGE_GC_INTERVAL_MS, IGNIFUGE_GC_BUSY_SHARE,
    /// IGNIFUGE_REPAIR_INTERVAL_MS, IGNIFUGE_REPAIR_DOWN_OUT_MS, IGNIFUGE_REPAIR_BYTES_PER_SEC,
    /// IGNIFUGE_REPAIR_SURVEY_BUSY_SHARE, IGNIFUGE_ORPHAN_GRACE_MS, IGNIFUGE_COMPACT_INTERVAL_MS,
    /// IGNIFUGE_COMPACT_MIN_AGE_MS, IGNIFUGE_COMPACT_BUSY_SHARE, IGNIFUGE_METADATA_CHECK_INTERVAL_MS
    /// (at most a day), IGNIFUGE_METADATA_CHECK_TIMEOUT_MS.
    pub services: ServicesConfig,
    /// IGNIFUGE_SCRUB_INTERVAL_MS, IGNIFUGE_SCRUB_BYTES_PER_SEC.
    pub scrub: ScrubConfig,
    /// IGNIFUGE_RAFT_SNAPSHOT_ENTRIES (tests make replicas catch up by snapshot with a short
    /// log; half of it is kept behind each snapshot).
    pub raft: RaftTuning,
    /// IGNIFUGE_SHARD_SYNC: `group` (the default) or `file`.
    pub shard_sync: SyncMode,
    /// IGNIFUGE_SHARDS_AROUND_CACHE: which large shards (128 KiB or more) a storage node writes
    /// around the page cache, `parity` (the default) or `all`.
    pub shards_around_cache: AroundCache,
}

fn var<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(text) => {
            let value = text
                .trim()
                .parse::<T>()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("{name}={text:?} is not a valid value"))?;
            Ok(Some(value))
        }
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {name}")),
    }
}

/// A share of the time, in (0, 1] (not a percentage).
fn share(name: &str, default: f64) -> anyhow::Result<f64> {
    match var::<f64>(name)? {
        None => Ok(default),
        Some(v) if v > 0.0 && v <= 1.0 => Ok(v),
        Some(v) => anyhow::bail!("{name}={v} is not a share of the time in (0, 1]"),
    }
}

/// A count of at most `max`.
fn at_most(name: &str, default: usize, max: usize) -> anyhow::Result<usize> {
    let value = var(name)?.unwrap_or(default);
    if value > max {
        anyhow::bail!("{name} is {value}: at most {max}");
    }
    Ok(value)
}

/// A count of at least one (a budget of none would stop every read or write).
fn at_least_one(name: &str, default: usize) -> anyhow::Result<usize> {
    match var::<usize>(name)? {
        None => Ok(default),
        Some(0) => anyhow::bail!("{name}=0: at least 1"),
        Some(v) => Ok(v),
    }
}

/// A rate in bytes per second, above 0.
fn rate(name: &str, default: u64) -> anyhow::Result<u64> {
    match var::<u64>(name)? {
        None => Ok(default),
        Some(0) => anyhow::bail!("{name}=0: a rate in bytes per second is above 0"),
        Some(v) => Ok(v),
    }
}

fn millis(name: &str, default: Duration) -> anyhow::Result<Duration> {
    Ok(var::<u64>(name)?.map(Duration::from_millis).unwrap_or(default))
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let mut s = Settings::default();
        let d = &mut s.data_path;
        d.read_stripes = var("IGNIFUGE_GATEWAY_READ_STRIPES")?.unwrap_or(d.read_stripes);
        d.stripes_in_flight_max = at_least_one("IGNIFUGE_GATEWAY_STRIPES_IN_FLIGHT", d.stripes_in_flight_max)?;
        d.stripe_fill_max_ms = var("IGNIFUGE_GATEWAY_STRIPE_FILL_MS")?.unwrap_or(d.stripe_fill_max_ms);
        d.read_stripes_in_flight_max =
            at_least_one("IGNIFUGE_GATEWAY_READ_STRIPES_IN_FLIGHT", d.read_stripes_in_flight_max)?;
        d.answer_stall_max_ms = var("IGNIFUGE_GATEWAY_ANSWER_STALL_MS")?.unwrap_or(d.answer_stall_max_ms);
        d.intent_renew_ms = var("IGNIFUGE_INTENT_RENEW_MS")?.unwrap_or(d.intent_renew_ms);
        d.inline_max_bytes = at_most("IGNIFUGE_INLINE_MAX_BYTES", d.inline_max_bytes, INLINE_LIMIT_BYTES)?;
        d.pack_max_bytes = at_most("IGNIFUGE_PACK_MAX_BYTES", d.pack_max_bytes, PACK_LIMIT_BYTES)?;
        // Never below one packable body, which would wait for budget that cannot exist.
        d.pack_budget_bytes =
            var("IGNIFUGE_GATEWAY_PACK_BUDGET_BYTES")?.unwrap_or(d.pack_budget_bytes).max(d.pack_max_bytes);
        d.shard_cache_bytes = var("IGNIFUGE_GATEWAY_SHARD_CACHE_BYTES")?.unwrap_or(d.shard_cache_bytes);

        let gc = &mut s.services.gc;
        gc.grace = millis("IGNIFUGE_GC_GRACE_MS", gc.grace)?;
        gc.interval = millis("IGNIFUGE_GC_INTERVAL_MS", gc.interval)?;
        gc.busy_share = share("IGNIFUGE_GC_BUSY_SHARE", gc.busy_share)?;
        let compact = &mut s.services.compact;
        compact.interval = millis("IGNIFUGE_COMPACT_INTERVAL_MS", compact.interval)?;
        compact.min_age = millis("IGNIFUGE_COMPACT_MIN_AGE_MS", compact.min_age)?;
        compact.busy_share = share("IGNIFUGE_COMPACT_BUSY_SHARE", compact.busy_share)?;
        let repair = &mut s.services.repair;
        repair.interval = millis("IGNIFUGE_REPAIR_INTERVAL_MS", repair.interval)?;
        repair.down_out = millis("IGNIFUGE_REPAIR_DOWN_OUT_MS", repair.down_out)?;
        repair.bytes_per_sec = rate("IGNIFUGE_REPAIR_BYTES_PER_SEC", repair.bytes_per_sec)?;
        repair.survey_busy_share = share("IGNIFUGE_REPAIR_SURVEY_BUSY_SHARE", repair.survey_busy_share)?;
        repair.orphan_grace_ms =
            millis("IGNIFUGE_ORPHAN_GRACE_MS", Duration::from_millis(repair.orphan_grace_ms as u64))?.as_millis()
                as i64;
        repair.metadata_check_interval = millis("IGNIFUGE_METADATA_CHECK_INTERVAL_MS", repair.metadata_check_interval)?;
        anyhow::ensure!(
            repair.metadata_check_interval <= Duration::from_millis(METADATA_CHECK_INTERVAL_MS_DEFAULT),
            "IGNIFUGE_METADATA_CHECK_INTERVAL_MS is at most a day ({METADATA_CHECK_INTERVAL_MS_DEFAULT}): `admin \
             durability` reports the metadata replicas unchecked after two"
        );
        repair.metadata_check_timeout = millis("IGNIFUGE_METADATA_CHECK_TIMEOUT_MS", repair.metadata_check_timeout)?;

        s.scrub.interval = millis("IGNIFUGE_SCRUB_INTERVAL_MS", s.scrub.interval)?;
        s.scrub.bytes_per_sec = rate("IGNIFUGE_SCRUB_BYTES_PER_SEC", s.scrub.bytes_per_sec)?;
        if let Some(entries) = var::<u64>("IGNIFUGE_RAFT_SNAPSHOT_ENTRIES")? {
            s.raft = RaftTuning { snapshot_entries: entries, logs_kept_after_snapshot: entries / 2 };
        }
        s.shard_sync = var("IGNIFUGE_SHARD_SYNC")?.unwrap_or(s.shard_sync);
        s.shards_around_cache = var("IGNIFUGE_SHARDS_AROUND_CACHE")?.unwrap_or(s.shards_around_cache);
        if s.data_path.intent_renew_ms as i64 >= s.services.repair.orphan_grace_ms {
            tracing::warn!(
                renew_ms = s.data_path.intent_renew_ms,
                orphan_grace_ms = s.services.repair.orphan_grace_ms,
                "intents are renewed less often than the orphan grace: slow uploads may be cut"
            );
        }
        let gc_grace_ms = s.services.gc.grace.as_millis();
        if gc_grace_ms > 0 && u128::from(s.data_path.intent_renew_ms) >= gc_grace_ms {
            tracing::warn!(
                renew_ms = s.data_path.intent_renew_ms,
                gc_grace_ms,
                "reads are held less often than the garbage grace: a GET of an object replaced meanwhile may be cut"
            );
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_does_not_parse_is_an_error_naming_the_variable() {
        // SAFETY: this test module's tests are the only code of this binary's unit tests reading
        // the variables, and only this test sets one.
        unsafe { std::env::set_var("IGNIFUGE_TEST_SETTING_MS", "ten") };
        let error = millis("IGNIFUGE_TEST_SETTING_MS", Duration::ZERO).unwrap_err();
        assert!(format!("{error:#}").contains("IGNIFUGE_TEST_SETTING_MS"), "{error:#}");
        // SAFETY: as above.
        unsafe { std::env::set_var("IGNIFUGE_TEST_SETTING_SHARE", "25") };
        let error = share("IGNIFUGE_TEST_SETTING_SHARE", 0.5).unwrap_err();
        assert!(format!("{error:#}").contains("(0, 1]"), "{error:#}");
        // SAFETY: as above.
        unsafe { std::env::set_var("IGNIFUGE_TEST_SETTING_SHARE", "0.5") };
        assert_eq!(share("IGNIFUGE_TEST_SETTING_SHARE", 0.25).unwrap(), 0.5);
        // SAFETY: as above.
        unsafe { std::env::set_var("IGNIFUGE_TEST_SETTING_BYTES", "65537") };
        let error = at_most("IGNIFUGE_TEST_SETTING_BYTES", 4096, 65536).unwrap_err();
        assert!(format!("{error:#}").contains("at most 65536"), "{error:#}");
        assert_eq!(at_most("IGNIFUGE_TEST_SETTING_UNSET_BYTES", 4096, 65536).unwrap(), 4096);
        // SAFETY: as above.
        unsafe { std::env::set_var("IGNIFUGE_TEST_SETTING_RATE", "0") };
        let error = rate("IGNIFUGE_TEST_SETTING_RATE", 1).unwrap_err();
        assert!(format!("{error:#}").contains("above 0"), "{error:#}");
        assert_eq!(rate("IGNIFUGE_TEST_SETTING_UNSET_RATE", 7).unwrap(), 7);
        let error = at_least_one("IGNIFUGE_TEST_SETTING_RATE", 2).unwrap_err();
        assert!(format!("{error:#}").contains("at least 1"), "{error:#}");
        assert_eq!(millis("IGNIFUGE_TEST_SETTING_UNSET_MS", Duration::from_secs(3)).unwrap(), Duration::from_secs(3));
    }
}
