//! Writes and reads in progress, renewed in the metadata so that background work leaves their
//! blobs alone.
//!
//! Writes: a blob's shards are written before its record is committed, so for a while they are
//! referenced by nothing in the metadata. The orphan sweep must not take them for orphans: every
//! blob being written is registered here from its first byte until its commit has answered, and
//! the gateway renews the whole set in the metadata every `INTENT_RENEW_INTERVAL_MS`
//! (`Command::RenewIntents`), which the sweep's fence respects (`Command::ReclaimOrphans` skips a
//! blob whose intent was renewed within the orphan grace). A body that streams for hours
//! therefore keeps its shards; one that stalls is cut by the body idle timeout, and its intent
//! then stops being renewed.
//!
//! Reads: a GET streams the blobs of the record it read, and the object may be replaced or
//! deleted meanwhile. Its blobs are then garbage, collected a grace (15 minutes) after; a GET
//! that outlasted it (a slow client reading a large object) was cut mid-stream. Every blob a read
//! streams is registered here until the read ends, and renewed with the writes
//! (`Command::HoldGarbage`): the collector leaves a held blob alone until a grace after its last
//! hold. A read stalled by its client is cut after `ANSWER_STALL_MAX_MS` and its holds end, and
//! no hold counts a day after the blob became garbage (`ignifuge_meta::GARBAGE_HOLD_MAX_MS`).

use ignifuge_meta::{Command, Metadata};
use ignifuge_types::BlobId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often a gateway renews the intents of its writes and the holds of its reads in progress.
/// Renewals and holds are dated by the metadata leader's clock and judged by the sweeper's or
/// the collector's: the orphan grace (1 h by default) and the garbage grace (15 minutes) must
/// exceed it by more than those clocks' difference (10 minutes across a failover).
pub const INTENT_RENEW_INTERVAL_MS: u64 = 60_000;
/// Blobs named by one `RenewIntents` or `HoldGarbage` command.
const INTENTS_PER_COMMAND_MAX: usize = 1_000;

/// Blobs with how many writers or readers hold each.
#[derive(Default)]
struct Held(Mutex<HashMap<BlobId, usize>>);

impl Held {
    fn blobs(&self) -> std::sync::MutexGuard<'_, HashMap<BlobId, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self, blob: &BlobId) {
        *self.blobs().entry(blob.clone()).or_default() += 1;
    }

    fn leave(&self, blob: &BlobId) {
        let mut blobs = self.blobs();
        if let Some(count) = blobs.get_mut(blob) {
            *count -= 1;
            if *count == 0 {
                blobs.remove(blob);
            }
        }
    }

    fn list(&self) -> Vec<BlobId> {
        self.blobs().keys().cloned().collect()
    }
}

/// The blobs this gateway is writing and reading.
#[derive(Default)]
pub struct Intents {
    writes: Held,
    reads: Held,
}

/// Held from a blob's first byte until its commit answered; dropping it ends the intent.
pub struct WriteIntent {
    intents: Arc<Intents>,
    blob: BlobId,
}

/// Held while a read streams a blob; dropping it ends the hold.
pub struct ReadHold {
    intents: Arc<Intents>,
    blob: BlobId,
}

impl Intents {
    pub fn begin(self: &Arc<Self>, blob: BlobId) -> Arc<WriteIntent> {
        self.writes.enter(&blob);
        Arc::new(WriteIntent { intents: self.clone(), blob })
    }

    pub fn hold_read(self: &Arc<Self>, blob: BlobId) -> ReadHold {
        self.reads.enter(&blob);
        ReadHold { intents: self.clone(), blob }
    }

    /// The blobs being written now.
    pub fn in_progress(&self) -> Vec<BlobId> {
        self.writes.list()
    }

    /// The blobs being read now.
    pub fn being_read(&self) -> Vec<BlobId> {
        self.reads.list()
    }

    /// Renews the intents of every write and the holds of every read in progress, forever (one
    /// task per gateway).
    pub async fn renew_forever(self: Arc<Self>, metadata: Arc<dyn Metadata>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now_ms = ignifuge_types::time::now_ms();
            let writes = self.in_progress();
            let reads = self.being_read();
            let commands = writes
                .chunks(INTENTS_PER_COMMAND_MAX)
                .map(|chunk| Command::RenewIntents { blobs: chunk.to_vec(), now_ms })
                .chain(
                    reads
                        .chunks(INTENTS_PER_COMMAND_MAX)
                        .map(|chunk| Command::HoldGarbage { blobs: chunk.to_vec(), now_ms }),
                );
            for command in commands {
                let what = if matches!(command, Command::HoldGarbage { .. }) { "reads" } else { "writes" };
                if let Err(e) = metadata.apply(command).await {
                    // The next tick tries again; the grace is many ticks long.
                    tracing::warn!(error = %e, what, "could not renew what is in progress");
                }
            }
        }
    }
}

impl Drop for WriteIntent {
    fn drop(&mut self) {
        self.intents.writes.leave(&self.blob);
    }
}

impl Drop for ReadHold {
    fn drop(&mut self) {
        self.intents.reads.leave(&self.blob);
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
        assert_eq!(intents.in_progress(), vec![blob.clone()]);
        drop(second);
        assert!(intents.in_progress().is_empty());
        // Reads are held apart from writes.
        let read = intents.hold_read(blob.clone());
        let again = intents.hold_read(blob.clone());
        assert!(intents.in_progress().is_empty());
        assert_eq!(intents.being_read(), vec![blob.clone()]);
        drop(read);
        assert_eq!(intents.being_read(), vec![blob]);
        drop(again);
        assert!(intents.being_read().is_empty());
    }
}
