//! Leases in the replicated metadata that make one process at a time the worker of a background
//! service (`repair`, `gc`). A lease is taken with `Command::TakeLease` (the same holder renews
//! it) and lasts `duration`; a worker renews it whenever a third of that has passed and stops its
//! round as soon as a renewal is refused, so two rounds of one service never run at once for
//! longer than the time between two renewals. A worker stalled past its lease (a paused VM)
//! learns it only at its next renewal; what it commits meanwhile can name its tenure
//! ([`Lease::fence`]), and the metadata refuses it once another tenure began.

use crate::Services;
use crate::error::ServiceResult;
use ignifuge_meta::{Command, LeaseFence, MetaError, Metadata, Outcome};
use std::time::{Duration, Instant};

pub struct Lease {
    name: &'static str,
    holder: String,
    duration: Duration,
    /// When it was last taken or renewed by this worker.
    taken: Option<Instant>,
    /// The tenure of this worker's last `take` (`LeaseRecord::epoch`); a renewal (`keep`) that
    /// finds another has lost it meanwhile.
    epoch: Option<u64>,
}

impl Lease {
    pub fn new(name: &'static str, holder: String, duration: Duration) -> Self {
        Self { name, holder, duration, taken: None, epoch: None }
    }

    /// The lease of a service whose rounds start every `interval`: it lasts three intervals (at
    /// least 30 s), so a worker between two rounds keeps it.
    pub fn for_rounds(name: &'static str, holder: String, interval: Duration) -> Self {
        Self::new(name, holder, (interval * 3).max(Duration::from_secs(30)))
    }

    /// Waits `interval`, then takes the lease; again and again until this worker holds it (a
    /// round may start). Not tried while the process does not know the cluster layout yet
    /// (`Services::layout_known`): a lease it held meanwhile would keep the service from others.
    pub async fn next_round(&mut self, services: &Services, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            if !services.layout_known() {
                continue;
            }
            match self.take(services.metadata.as_ref()).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(lease = self.name, error = %e, "could not take the lease; retrying later"),
            }
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How long the lease lasts once taken.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Takes or renews the lease now, in whichever tenure (a round starting). False: another
    /// worker holds it.
    pub async fn take(&mut self, metadata: &dyn Metadata) -> ServiceResult<bool> {
        self.apply(metadata, false).await
    }

    /// Takes or renews the lease; with `same_tenure`, false also when this worker lost it since
    /// it took it (it ran out and another tenure began, whoever holds it now: what the worker
    /// prepared under the old one is stale).
    async fn apply(&mut self, metadata: &dyn Metadata, same_tenure: bool) -> ServiceResult<bool> {
        // The lease runs from before the request: a slow answer shortens it, never lengthens it.
        let asked = Instant::now();
        let command = Command::take_lease(
            self.name,
            self.holder.clone(),
            ignifuge_types::time::now_ms(),
            self.duration.as_millis() as i64,
        );
        match metadata.apply(command).await {
            Ok(outcome) => {
                let Outcome::Lease { epoch } = outcome else {
                    return Err(MetaError::Corrupt(format!("a lease take answered {outcome:?}")).into());
                };
                if same_tenure && self.epoch.is_some_and(|held| held != epoch) {
                    self.taken = None;
                    return Ok(false);
                }
                self.epoch = Some(epoch);
                self.taken = Some(asked);
                Ok(true)
            }
            Err(MetaError::LeaseHeld { .. }) => {
                self.taken = None;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The tenure this worker holds the lease in, for the commands it prepares under it; None
    /// before it took it.
    pub fn fence(&self) -> Option<LeaseFence> {
        Some(LeaseFence { name: self.name.into(), holder: self.holder.clone(), epoch: self.epoch? })
    }

    /// Sleeps `duration`, renewing the lease as it comes due meanwhile (a pause may be longer
    /// than the lease: a worker that paused past it without renewing lost it to another). Ends
    /// early once the lease is lost or cannot be renewed; the caller's next `keep` says which.
    pub async fn sleep(&mut self, duration: Duration, metadata: &dyn Metadata) {
        let mut left = duration;
        while !left.is_zero() {
            let slice = left.min(self.duration / 4);
            tokio::time::sleep(slice).await;
            left -= slice;
            if !left.is_zero() && !matches!(self.keep(metadata).await, Ok(true)) {
                return;
            }
        }
    }

    /// Renews the lease if a third of it has passed since it was last taken. False: it was lost,
    /// even if this worker holds it again in a new tenure (the round must stop).
    pub async fn keep(&mut self, metadata: &dyn Metadata) -> ServiceResult<bool> {
        match self.taken {
            Some(taken) if taken.elapsed() < self.duration / 3 => Ok(true),
            _ => self.apply(metadata, true).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pause longer than the lease (a paced service's rest) keeps it, in
    /// its tenure: another worker cannot take it meanwhile, and the round's commits still apply.
    #[tokio::test]
    async fn a_sleep_longer_than_the_lease_keeps_it_in_its_tenure() {
        let metadata = crate::testkit::metadata();
        let lease = Duration::from_millis(300);
        let mut ours = Lease::new("repair", "us".into(), lease);
        assert!(ours.take(&metadata).await.unwrap());
        let fence = ours.fence();
        let started = Instant::now();
        ours.sleep(lease * 4, &metadata).await;
        assert!(started.elapsed() >= lease * 4, "slept {:?}", started.elapsed());
        let mut theirs = Lease::new("repair", "them".into(), lease);
        assert!(!theirs.take(&metadata).await.unwrap(), "kept through the sleep");
        assert!(ours.keep(&metadata).await.unwrap());
        assert_eq!(ours.fence(), fence);
    }

    /// A worker stalled past its lease learns at its next renewal that it lost it, even when it
    /// gets it back then (another tenure began meanwhile: the repairs it prepared are fenced
    /// out); a new round takes it afresh and renews it in the new tenure.
    #[tokio::test]
    async fn a_renewal_after_another_tenure_began_says_the_lease_was_lost() {
        let metadata = crate::testkit::metadata();
        let lease = Duration::from_millis(60);
        let mut ours = Lease::new("repair", "us".into(), lease);
        assert_eq!(ours.fence(), None, "no tenure before the lease is taken");
        assert!(ours.take(&metadata).await.unwrap());
        let first = ours.fence().unwrap();
        assert_eq!((first.name.as_str(), first.holder.as_str()), ("repair", "us"));
        tokio::time::sleep(lease + Duration::from_millis(20)).await;
        assert!(ours.keep(&metadata).await.unwrap(), "ran out, but nobody took it: the same tenure");
        assert_eq!(ours.fence(), Some(first.clone()));
        // Stalled: ours runs out, theirs is taken and runs out in turn.
        tokio::time::sleep(lease + Duration::from_millis(20)).await;
        let mut theirs = Lease::new("repair", "them".into(), lease);
        assert!(theirs.take(&metadata).await.unwrap());
        assert_ne!(theirs.fence().unwrap().epoch, first.epoch);
        tokio::time::sleep(lease + Duration::from_millis(20)).await;
        assert!(!ours.keep(&metadata).await.unwrap(), "lost, though this worker holds the lease again");
        assert_eq!(ours.fence(), Some(first.clone()), "the round's tenure, which commits are refused in");
        // The next round takes it in the tenure it holds now, and keeps it.
        assert!(ours.take(&metadata).await.unwrap());
        let now = ours.fence().unwrap();
        assert!(now.epoch > theirs.fence().unwrap().epoch, "{now:?}");
        tokio::time::sleep(lease / 2).await;
        assert!(ours.keep(&metadata).await.unwrap());
        assert_eq!(ours.fence(), Some(now));
    }
}
