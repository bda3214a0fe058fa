//! The wall clock, read in one place. Every timestamp a process writes or compares (object
//! times, intents, leases, garbage ages, internode request stamps, the leader's stamp on a
//! proposal) comes from `now_ms`, so that a test can shift one process's clock (a `clock` rule
//! of `ignifuge_faults`) and see what a real clock offset does. File times are the kernel's and
//! are not shifted: an offset on a storage node looks like a clock that jumped after its files
//! were written. Durations are measured with `std::time::Instant`, never with this clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch by this process's wall clock.
pub fn now_ms() -> i64 {
    let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    real.saturating_add(ignifuge_faults::clock_offset_ms())
}

/// `ms` since the Unix epoch as a `SystemTime` (times before the epoch are the epoch).
pub fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_reads_the_system_time_without_offset_rules() {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        assert!((now_ms() - real).abs() < 5_000);
        assert_eq!(system_time(-5), UNIX_EPOCH);
        assert_eq!(system_time(1_500), UNIX_EPOCH + Duration::from_millis(1_500));
    }
}
