//! Bounded shares of the cluster for background work. A service that does its work in steps
//! (a batch of garbage collected, a page of the repair survey) rests after each step for as
//! long as the step took times (1 - share) / share, so it is busy at most `share` of the
//! wall-clock time (for steps shorter than `REST_MAX` x share / (1 - share): 100 s at 1/4). Under client load a step takes longer (its RPCs and fsyncs queue
//! behind the clients'), so the service slows down with it instead of competing at full
//! speed; an idle cluster still gets through the backlog at `share` of its speed.

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
    /// Sleeps for the step's share of rest.
    pub async fn rest(self) {
        let rest = self.cycle.rest_after(self.started.elapsed());
        if !rest.is_zero() {
            tokio::time::sleep(rest).await;
        }
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
