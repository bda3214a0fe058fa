//! Bounded shares of the cluster for background work. A service that does its work in steps
//! (a batch of garbage collected, a page of the repair survey) rests after each step for as
//! long as the step took times (1 - share) / share, so it is busy at most `share` of the
//! wall-clock time (for steps shorter than `REST_MAX` x share / (1 - share): 100 s at 1/4). Under client load a step takes longer (its RPCs and fsyncs queue
//! behind the clients'), so the service slows down with it instead of competing at full
//! speed; an idle cluster still gets through the backlog at `share` of its speed.

use crate::lease::Lease;
use ignifuge_meta::Metadata;
use std::time::Duration;
use tokio::time::Instant;

/// The longest rest after one step, so that one step that hung for a long time (a node that
/// never answered) does not stop the service for an hour.
const REST_MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug)]
pub struct DutyCycle {
    share: f64,
}

impl DutyCycle {
    /// `share` is clamped to (0, 1]: 1 never rests.
    pub fn new(share: f64) -> Self {
        let share = if share.is_finite() { share.clamp(0.01, 1.0) } else { 1.0 };
        Self { share }
    }

    /// How long to rest after a step that took `worked`.
    pub fn rest_after(&self, worked: Duration) -> Duration {
        worked.mul_f64((1.0 - self.share) / self.share).min(REST_MAX)
    }

    /// Starts timing a step.
    pub fn step(&self) -> Step {
        Step { cycle: *self, started: Instant::now() }
    }
}

/// One step being timed: `rest` ends it.
pub struct Step {
    cycle: DutyCycle,
    started: Instant,
}

impl Step {
    /// Sleeps for the step's share of rest, renewing `lease` as it comes due meanwhile (a rest
    /// may be up to `REST_MAX`, longer than a lease: a worker that rested past its lease lost it
    /// to another, which started the round over). Ends the rest early once the lease is lost or
    /// cannot be renewed; the caller's next `Lease::keep` says which.
    pub async fn rest(self, lease: &mut Lease, metadata: &dyn Metadata) {
        lease.sleep(self.cycle.rest_after(self.started.elapsed()), metadata).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_share_rests_three_times_the_work() {
        let cycle = DutyCycle::new(0.25);
        assert_eq!(cycle.rest_after(Duration::from_millis(20)), Duration::from_millis(60));
        assert_eq!(DutyCycle::new(1.0).rest_after(Duration::from_secs(3)), Duration::ZERO);
    }

    /// A rest longer than the lease keeps it (renewed as it comes due, so another worker cannot
    /// take it meanwhile), and ends early once it is lost.
    #[tokio::test]
    async fn a_rest_longer_than_the_lease_keeps_it_and_ends_when_it_is_lost() {
        let metadata = crate::testkit::metadata();
        let lease = Duration::from_millis(200);
        let mut ours = Lease::new("t", "us".into(), lease);
        assert!(ours.take(&metadata).await.unwrap());
        // A step of 300 ms at a quarter share: 900 ms of rest, four and a half leases.
        let worked = || Step { cycle: DutyCycle::new(0.25), started: Instant::now() - Duration::from_millis(300) };
        let started = Instant::now();
        worked().rest(&mut ours, &metadata).await;
        assert!(started.elapsed() >= Duration::from_millis(850), "{:?}", started.elapsed());
        let mut theirs = Lease::new("t", "them".into(), lease);
        assert!(!theirs.take(&metadata).await.unwrap(), "the lease was kept through the rest");
        // Lost: ours runs out, theirs is taken; our next rest ends at its first renewal.
        tokio::time::sleep(lease + Duration::from_millis(50)).await;
        assert!(theirs.take(&metadata).await.unwrap());
        let started = Instant::now();
        worked().rest(&mut ours, &metadata).await;
        assert!(started.elapsed() < Duration::from_millis(400), "rested {:?} without the lease", started.elapsed());
    }

    #[test]
    fn shares_out_of_range_are_clamped_and_rests_bounded() {
        // 0 means the smallest share (1 %), never a service that stops.
        let rest = DutyCycle::new(0.0).rest_after(Duration::from_millis(1));
        assert!(rest > Duration::from_micros(98_900) && rest <= Duration::from_millis(99), "{rest:?}");
        assert_eq!(DutyCycle::new(f64::NAN).rest_after(Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(DutyCycle::new(7.0).rest_after(Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(DutyCycle::new(0.1).rest_after(Duration::from_secs(60)), REST_MAX);
        assert_eq!(DutyCycle::new(0.25).rest_after(Duration::from_secs(60)), Duration::from_secs(180));
    }
}
