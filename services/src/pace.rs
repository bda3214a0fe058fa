//! Bounded shares of the cluster for background work. A service that does its work in steps
//! (a batch of garbage collected, a page of the repair survey) rests after each step for as
//! long as the step took times (1 - share) / share, so it is busy at most `share` of the
//! wall-clock time (for steps shorter than `REST_MAX` x share / (1 - share): 100 s at 1/4). Under client load a step takes longer (its RPCs and fsyncs queue
//! behind the clients'), so the service slows down with it instead of competing at full
//! speed; an idle cluster still gets through the backlog at `share` of its speed.
//!
//! Work that runs several pieces at once at a rate in bytes (the repair's rebuilds) goes through
//! `run_rated`, which keeps polling the pieces under way while the next one waits for its start.

use crate::error::ServiceResult;
use crate::lease::Lease;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use ignifuge_meta::Metadata;
use std::future::Future;
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

/// Runs `start`'s work for each of `items`, in order, at most `in_flight_max` at once, and starts
/// the next only while the cost of the work finished so far (what `finished` answers for each, in
/// bytes) is within `bytes_per_sec` since the first began; it returns once all are done and their
/// cost is paid (a round that ends early would start the next unpaced, and report a rate above
/// its own). The lease is kept meanwhile (checked at least every quarter of it, renewed once a
/// third has passed). Work under way is polled all along, through a
/// wait for the rate and a renewal: work left unpolled while the next start waits stalls
/// mid-transfer, and its requests' timeouts run all the same (a repair's shard reads: a wait
/// longer than their 10 s made them all fail, at a low rate every time, each failure adding its
/// cost to the next wait). False: the lease was lost (the work under way is dropped).
pub async fn run_rated<C, W: Future>(
    items: impl IntoIterator<Item = C>,
    in_flight_max: usize,
    bytes_per_sec: u64,
    lease: &mut Lease,
    metadata: &dyn Metadata,
    mut start: impl FnMut(C) -> W,
    mut finished: impl FnMut(W::Output) -> u64,
) -> ServiceResult<bool> {
    let began = Instant::now();
    let renew_every = (lease.duration() / 4).max(Duration::from_millis(10));
    let mut waiting = items.into_iter().peekable();
    let mut under_way = FuturesUnordered::new();
    let mut spent = 0u64;
    loop {
        let allowed_at = began + Duration::from_secs_f64(spent as f64 / bytes_per_sec.max(1) as f64);
        while under_way.len() < in_flight_max.max(1) && Instant::now() >= allowed_at {
            let Some(item) = waiting.next() else { break };
            under_way.push(start(item));
        }
        let room = under_way.len() < in_flight_max.max(1);
        if under_way.is_empty() && waiting.peek().is_none() && Instant::now() >= allowed_at {
            return Ok(true);
        }
        let mut wake = Instant::now() + renew_every;
        if room && (waiting.peek().is_some() || under_way.is_empty()) {
            wake = wake.min(allowed_at);
        }
        let mut done = Vec::new();
        tokio::select! {
            Some(output) = under_way.next(), if !under_way.is_empty() => done.push(output),
            () = tokio::time::sleep_until(wake) => {}
        }
        let kept = {
            let keep = lease.keep(metadata);
            tokio::pin!(keep);
            loop {
                tokio::select! {
                    kept = &mut keep => break kept,
                    Some(output) = under_way.next(), if !under_way.is_empty() => done.push(output),
                }
            }
        };
        for output in done {
            spent += finished(output);
        }
        if !kept? {
            return Ok(false);
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

    /// Work under way goes on while the next start waits for the rate: each piece here moves
    /// only while it is polled (20 ms steps) and times out 1.5 s after it began, as a shard read
    /// does; the first to finish costs two seconds at the rate, so a runner that stopped polling
    /// while it waited would find the other three timed out. The next start still keeps to the
    /// rate (not before 2 s), and the runner returns only once the last one's cost is paid.
    #[tokio::test]
    async fn work_under_way_goes_on_while_the_next_start_waits_for_the_rate() {
        let metadata = crate::testkit::metadata();
        let mut lease = Lease::new("t", "us".into(), Duration::from_secs(60));
        assert!(lease.take(&metadata).await.unwrap());
        let began = Instant::now();
        let started = std::sync::Mutex::new(Vec::new());
        let work = |steps: u32| {
            started.lock().unwrap().push(began.elapsed());
            tokio::time::timeout(Duration::from_millis(1500), async move {
                for _ in 0..steps {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                steps
            })
        };
        let mut outcomes = Vec::new();
        let finished = |outcome: Result<u32, tokio::time::error::Elapsed>| {
            let first = outcomes.is_empty();
            outcomes.push(outcome);
            if first || outcomes.len() == 5 { 2000 } else { 0 }
        };
        let kept = run_rated([5, 10, 15, 20, 1], 4, 1000, &mut lease, &metadata, work, finished).await.unwrap();
        assert!(kept);
        assert!(began.elapsed() >= Duration::from_millis(4000), "returned before the last cost was paid");
        assert_eq!(outcomes.len(), 5);
        assert!(outcomes.iter().all(Result::is_ok), "work timed out while the runner waited: {outcomes:?}");
        let started = started.into_inner().unwrap();
        assert!(started[..4].iter().all(|at| *at < Duration::from_millis(100)), "{started:?}");
        assert!(started[4] >= Duration::from_millis(2000), "started ahead of the rate: {started:?}");
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
