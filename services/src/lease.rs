//! Leases in the replicated metadata that make one process at a time the worker of a background
//! service (`repair`, `gc`). A lease is taken with `Command::TakeLease` (the same holder renews
//! it) and lasts `duration`; a worker renews it whenever a third of that has passed and stops its
//! round as soon as a renewal is refused, so two rounds of one service never run at once for
//! longer than the time between two renewals.

use crate::Services;
use crate::error::ServiceResult;
use ignifuge_meta::{Command, MetaError, Metadata};
use std::time::{Duration, Instant};

pub struct Lease {
    name: &'static str,
    holder: String,
    duration: Duration,
    /// When it was last taken or renewed by this worker.
    taken: Option<Instant>,
}

impl Lease {
    pub fn new(name: &'static str, holder: String, duration: Duration) -> Self {
        Self { name, holder, duration, taken: None }
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

    /// Takes or renews the lease now. False: another worker holds it.
    pub async fn take(&mut self, metadata: &dyn Metadata) -> ServiceResult<bool> {
        // The lease runs from before the request: a slow answer shortens it, never lengthens it.
        let asked = Instant::now();
        let command = Command::TakeLease {
            name: self.name.into(),
            holder: self.holder.clone(),
            now_ms: ignifuge_types::time::now_ms(),
            duration_ms: self.duration.as_millis() as i64,
        };
        match metadata.apply(command).await {
            Ok(_) => {
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

    /// Renews the lease if a third of it has passed since it was last taken. False: it was lost
    /// (the round must stop).
    pub async fn keep(&mut self, metadata: &dyn Metadata) -> ServiceResult<bool> {
        match self.taken {
            Some(taken) if taken.elapsed() < self.duration / 3 => Ok(true),
            _ => self.take(metadata).await,
        }
    }
}
