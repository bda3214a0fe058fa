//! Writes in progress. A blob's shards are written before its record is committed, so for a
//! while they are referenced by nothing in the metadata. The orphan sweep must not take them for
//! orphans: every blob being written is registered here from its first byte until its commit
//! has answered, and the gateway renews the whole set in the metadata every
//! `INTENT_RENEW_INTERVAL_MS` (`Command::RenewIntents`), which the sweep's fence respects
//! (`Command::ReclaimOrphans` skips a blob whose intent was renewed within the orphan grace).
//! A body that streams for hours therefore keeps its shards; one that stalls is cut by the body
//! idle timeout, and its intent then stops being renewed.

use ignifuge_meta::{Command, Metadata};
use ignifuge_types::BlobId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often a gateway renews the intents of its writes in progress. The orphan grace (1 h by
/// default) must exceed it by more than the clock difference between any two gateways.
pub const INTENT_RENEW_INTERVAL_MS: u64 = 60_000;
/// Blobs named by one `RenewIntents` command.
const INTENTS_PER_COMMAND_MAX: usize = 1_000;

/// The blobs this gateway is writing, with how many writers hold each.
#[derive(Default)]
pub struct Intents {
    blobs: Mutex<HashMap<BlobId, usize>>,
}

/// Held from a blob's first byte until its commit answered; dropping it ends the intent.
pub struct WriteIntent {
    intents: Arc<Intents>,
    blob: BlobId,
}

impl Intents {
    fn blobs(&self) -> std::sync::MutexGuard<'_, HashMap<BlobId, usize>> {
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn begin(self: &Arc<Self>, blob: BlobId) -> Arc<WriteIntent> {
        *self.blobs().entry(blob.clone()).or_default() += 1;
        Arc::new(WriteIntent { intents: self.clone(), blob })
    }

    /// The blobs being written now.
    pub fn in_progress(&self) -> Vec<BlobId> {
        self.blobs().keys().cloned().collect()
    }

    /// Renews the intents of every write in progress, forever (one task per gateway).
    pub async fn renew_forever(self: Arc<Self>, metadata: Arc<dyn Metadata>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let blobs = self.in_progress();
            for chunk in blobs.chunks(INTENTS_PER_COMMAND_MAX) {
                let command = Command::RenewIntents { blobs: chunk.to_vec(), now_ms: ignifuge_types::time::now_ms() };
                if let Err(e) = metadata.apply(command).await {
                    // The next tick tries again; the grace is many ticks long.
                    tracing::warn!(error = %e, blobs = chunk.len(), "could not renew the intents of writes in progress");
                }
            }
        }
    }
}

impl Drop for WriteIntent {
    fn drop(&mut self) {
        let mut blobs = self.intents.blobs();
        if let Some(count) = blobs.get_mut(&self.blob) {
            *count -= 1;
            if *count == 0 {
                blobs.remove(&self.blob);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_in_progress_until_its_last_holder_drops() {
        let intents = Arc::new(Intents::default());
        let blob = BlobId::new("ab");
        let first = intents.begin(blob.clone());
        let second = first.clone();
        assert_eq!(intents.in_progress(), vec![blob.clone()]);
        drop(first);
        assert_eq!(intents.in_progress(), vec![blob]);
        drop(second);
        assert!(intents.in_progress().is_empty());
    }
}
