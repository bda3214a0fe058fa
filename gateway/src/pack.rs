//! Packing small objects. A PutObject whose body is announced at most
//! `DataPathTuning::pack_max_bytes` (and more than the inline limit) is read whole into memory,
//! checked, and queued here; the packer writes the bodies waiting together as one erasure-coded
//! stripe (a *pack*: one blob, placed and proved survivable like any stripe, fsynced on its nodes)
//! and commits every object of it with one `Command::PutPacked`, then answers each request with
//! its own outcome. A pack is written as soon as its lane's writer is free (one pack in flight
//! per lane), so a PUT alone waits for nothing; under load the bodies arriving while a pack is
//! being written form the next one. Small objects then cost the class's overhead on disk instead
//! of k+m shard files each (or the body in every voter's log and state when inline), and one Raft
//! entry per pack instead of one per object.
//!
//! Lanes (`LANES`): bodies are packed with bodies of their size class, in packs of at most 16
//! times the class's largest body. A read fetches whole shards (their BLAKE3 is checked on every
//! read), so a 4 KiB object packed among 1 MiB ones would cost a 1 MiB shard read; by lane, a
//! 4 KiB object's shard is at most 52 KiB (256 KiB packs at 5+4).
//!
//! What becomes of a pack: each object installed records its slot (`keys::pack_member`); a
//! replaced or deleted version frees its slot, and the state machine turns a pack with no slot
//! left into garbage, which the collector deletes like any blob. Bytes of objects deleted while
//! others of their pack live stay on disk until the last one goes or the compactor
//! (`ignifuge_services::compact`) moves the live ones into a new pack; it also merges the small
//! packs written under low load.

use crate::commit;
use crate::datapath::{DataPath, new_blob_id};
use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::{
    Command, DataLocation, MetaError, Metadata, ObjectRecord, Outcome, PACK_OBJECTS_MAX, PackedPut, PackedSlice,
    StripedBlob,
};
use ignifuge_types::{BucketName, ObjectKey};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Packs being written or committed at once by one lane: one. Measured at 4 KiB x 16 in flight
/// (docs/benchmarks.md "Small objects packed together"): 1 writer 793 PUT/s with shards at 3.7x
/// the bytes stored, 2 writers 530/s at 5.2x, 4 writers 451/s at 7.6x: fewer, larger packs cost
/// less CPU per object (one stripe write and one Raft entry per pack) and less disk.
pub const PACKS_IN_FLIGHT_MAX: usize = 1;
/// Objects of keys already in the pack that one pack's gathering looks past before it ends.
const PASSED_OVER_MAX: usize = 4 * PACK_OBJECTS_MAX;
/// The lanes: (largest body, largest pack) in bytes; a pack is also at most one stripe.
const LANES: [(usize, usize); 3] = [(16 * 1024, 256 * 1024), (128 * 1024, 2 * 1024 * 1024), (usize::MAX, usize::MAX)];
/// Bodies of packable objects held in memory at once by one gateway, from before their first
/// byte until their pack is written (a global bound: uploads beyond it wait for room).
pub const PACK_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// What one packed object's request gets back: the version installed (without its parts), or
/// why not.
pub type PackAnswer = GatewayResult<Box<ObjectRecord>>;

/// One object waiting for a pack.
struct Queued {
    put: PackedPut,
    body: Vec<u8>,
    answer: oneshot::Sender<PackAnswer>,
    /// Its share of `PACK_BUDGET_BYTES`, given back once its pack is written.
    _budget: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    /// Whether a task is taking packs off `waiting` (at most one).
    flushing: bool,
}

/// The bodies of one size class waiting, and the writers of their packs.
struct Lane {
    queue: Mutex<Queue>,
    writers: Arc<Semaphore>,
}

pub struct Packer {
    data: Arc<DataPath>,
    metadata: Arc<dyn Metadata>,
    lanes: Vec<Lane>,
}

impl Packer {
    pub fn new(data: Arc<DataPath>, metadata: Arc<dyn Metadata>) -> Arc<Self> {
        let lanes = LANES
            .iter()
            .map(|_| Lane {
                queue: Mutex::new(Queue::default()),
                writers: Arc::new(Semaphore::new(PACKS_IN_FLIGHT_MAX)),
            })
            .collect();
        Arc::new(Self { data, metadata, lanes })
    }

    fn queue(&self, lane: usize) -> std::sync::MutexGuard<'_, Queue> {
        self.lanes[lane].queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `body` as `put.record`'s bytes in the next pack and commits the record (its one
    /// part's location is set here); returns once the commit has answered. `budget` is the
    /// body's share of the pack budget (`DataPath::write_blob` took it).
    pub async fn put(self: &Arc<Self>, put: PackedPut, body: Vec<u8>, budget: OwnedSemaphorePermit) -> PackAnswer {
        let (tx, rx) = oneshot::channel();
        let lane = lane_of(body.len());
        {
            let mut queue = self.queue(lane);
            queue.waiting.push_back(Queued { put, body, answer: tx, _budget: budget });
            if !queue.flushing {
                queue.flushing = true;
                tokio::spawn(self.clone().flush(lane));
            }
        }
        // The pack's task always answers; a dropped sender is a task that panicked.
        rx.await.unwrap_or_else(|_| Err(GatewayError::Internal("the pack writer stopped".into())))
    }

    /// Takes packs off a lane's queue while there are objects waiting, each once a writer of
    /// the lane is free.
    async fn flush(self: Arc<Self>, lane: usize) {
        loop {
            let writer = self.lanes[lane].writers.clone().acquire_owned().await.expect("never closed");
            let pack_bytes = lane_pack_bytes(lane, self.data.stripe_data_bytes());
            let pack = {
                let mut queue = self.queue(lane);
                let pack = take_pack(&mut queue.waiting, pack_bytes);
                if pack.is_empty() {
                    queue.flushing = false;
                    return;
                }
                pack
            };
            tokio::spawn(self.clone().write(pack, writer));
        }
    }

    /// Writes one pack, commits its objects, and answers each.
    async fn write(self: Arc<Self>, mut pack: Vec<Queued>, _writer: OwnedSemaphorePermit) {
        let blob = new_blob_id();
        let born_ms = ignifuge_types::time::now_ms();
        // Until the commit has answered: the orphan sweep spares the pack's shards meanwhile.
        let _intent = self.data.intents.begin(blob.clone());
        let bytes: usize = pack.iter().map(|q| q.body.len()).sum();
        let mut data = self.data.pack_buffer(bytes);
        let mut offsets = Vec::with_capacity(pack.len());
        for queued in &mut pack {
            offsets.push(data.len() as u64);
            data.extend_from_slice(&queued.body);
            // Each body freed as it is copied: the pack holds its bytes once, not twice.
            queued.body = Vec::new();
        }
        let written = match self.data.write_pack(blob.clone(), born_ms, data).await {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!(pack = %blob, objects = pack.len(), error = %e, "pack write failed");
                for queued in pack {
                    let _ = queued.answer.send(Err(shared_failure(&e)));
                }
                return;
            }
        };
        let header = StripedBlob { stripes: Vec::new(), ..written.clone() };
        let mut objects = Vec::with_capacity(pack.len());
        let mut answers = Vec::with_capacity(pack.len());
        for (slot, (queued, offset)) in pack.into_iter().zip(offsets).enumerate() {
            // The body was copied into the pack: its budget goes back with it.
            let Queued { mut put, answer, .. } = queued;
            let slice = PackedSlice { pack: header.clone(), offset, slot: slot as u32 };
            put.record.parts[0].location = DataLocation::Packed(slice);
            objects.push(put);
            answers.push(answer);
        }
        let command = Command::PutPacked { pack: written, objects, member_versions: true, leader_ms: None };
        match commit::answer(self.metadata.as_ref(), command).await {
            Ok(Outcome::Packed(outcomes)) if outcomes.len() == answers.len() => {
                if outcomes.iter().all(Result::is_err) {
                    // None installed: the pack was not admitted, nothing references it.
                    commit::give_up(self.metadata.clone(), self.data.clone(), vec![blob]);
                }
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = answer.send(outcome.map_err(GatewayError::Meta));
                }
            }
            Ok(other) => {
                // Applied, but answered as something else: what it installed is not known, so
                // nothing is given up.
                let e = MetaError::Unexpected(format!("a pack's commit was answered with {other:?}"));
                for answer in answers {
                    let _ = answer.send(Err(GatewayError::Meta(e.clone())));
                }
            }
            Err(e) => {
                if e.is_known_refusal() {
                    commit::give_up(self.metadata.clone(), self.data.clone(), vec![blob]);
                } else {
                    tracing::warn!(pack = %blob, error = %e, "pack commit outcome unknown; its shards are left to the fenced orphan sweep");
                }
                for answer in answers {
                    let _ = answer.send(Err(GatewayError::Meta(e.clone())));
                }
            }
        }
    }
}

/// The next pack off the front of `waiting`: objects in arrival order while their bodies fit in
/// `pack_bytes` and the command's limit, never one key of a bucket twice (each object of a
/// `PutPacked` reads the state before the command: the later one waits for the next pack, keeping
/// its place, so PUTs of one key go one pack at a time). At most `PASSED_OVER_MAX` objects
/// passed over are looked past.
fn take_pack(waiting: &mut VecDeque<Queued>, pack_bytes: usize) -> Vec<Queued> {
    take_fitting(waiting, pack_bytes, |q| q.body.len(), |q| (q.put.bucket.name.clone(), q.put.record.key.clone()))
}

fn take_fitting<T>(
    waiting: &mut VecDeque<T>,
    stripe_bytes: usize,
    size: impl Fn(&T) -> usize,
    key: impl Fn(&T) -> (BucketName, ObjectKey),
) -> Vec<T> {
    let mut pack = Vec::new();
    let mut bytes = 0usize;
    let mut keys: HashSet<(BucketName, ObjectKey)> = HashSet::new();
    let mut passed = Vec::new();
    while let Some(next) = waiting.pop_front() {
        let fits = pack.is_empty() || bytes + size(&next) <= stripe_bytes;
        if !fits || pack.len() >= PACK_OBJECTS_MAX {
            waiting.push_front(next);
            break;
        }
        if !keys.insert(key(&next)) {
            passed.push(next);
            // A hot key queued many times: the pack ends rather than walk the whole queue.
            if passed.len() >= PASSED_OVER_MAX {
                break;
            }
            continue;
        }
        bytes += size(&next);
        pack.push(next);
    }
    // The objects passed over keep their place at the front, in order.
    for next in passed.into_iter().rev() {
        waiting.push_front(next);
    }
    pack
}

/// The lane of a body of `len` bytes.
pub fn lane_of(len: usize) -> usize {
    LANES.iter().position(|&(body_max, _)| len <= body_max).unwrap_or(LANES.len() - 1)
}

/// The most bytes of bodies one pack of `lane` holds, in a cluster whose stripes hold
/// `stripe_bytes` of data: the packer's bound, and the compactor's.
pub fn lane_pack_bytes(lane: usize, stripe_bytes: usize) -> usize {
    LANES[lane.min(LANES.len() - 1)].1.min(stripe_bytes)
}

/// One object's error for a failure of its whole pack's write.
fn shared_failure(e: &GatewayError) -> GatewayError {
    match e {
        GatewayError::DurabilityNotMet(why) => GatewayError::DurabilityNotMet(why.clone()),
        other => GatewayError::Internal(format!("writing the pack: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(items: &[(&str, usize)]) -> VecDeque<(String, usize)> {
        items.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    fn take(waiting: &mut VecDeque<(String, usize)>, stripe: usize) -> Vec<String> {
        let key = |q: &(String, usize)| (BucketName::new("b"), ObjectKey::new(q.0.clone()));
        take_fitting(waiting, stripe, |q| q.1, key).into_iter().map(|q| q.0).collect()
    }

    #[test]
    fn a_pack_takes_what_fits_in_a_stripe_in_order_and_a_key_once() {
        let mut waiting = queued(&[("a", 40), ("b", 30), ("a", 10), ("c", 30), ("d", 1)]);
        assert_eq!(take(&mut waiting, 100), ["a", "b", "c"], "the second a waits; d does not fit after c");
        let left: Vec<&str> = waiting.iter().map(|q| q.0.as_str()).collect();
        assert_eq!(left, ["a", "d"], "the passed-over key keeps its place at the front");
        assert_eq!(take(&mut waiting, 100), ["a", "d"]);
        assert!(waiting.is_empty());
        // A body larger than the stripe still goes, alone (the gateway never queues one).
        let mut waiting = queued(&[("big", 500), ("small", 1)]);
        assert_eq!(take(&mut waiting, 100), ["big"]);
        assert_eq!(take(&mut waiting, 100), ["small"]);
        assert!(take(&mut waiting, 100).is_empty());
    }

    #[test]
    fn bodies_go_to_the_lane_of_their_size_and_a_lanes_packs_hold_sixteen_of_its_largest() {
        assert_eq!([lane_of(1), lane_of(16 * 1024), lane_of(16 * 1024 + 1)], [0, 0, 1]);
        assert_eq!(
            [lane_of(128 * 1024), lane_of(128 * 1024 + 1), lane_of(crate::datapath::PACK_LIMIT_BYTES)],
            [1, 2, 2]
        );
        for (body_max, pack_max) in LANES {
            assert!(pack_max >= body_max.saturating_mul(16), "a lane's packs hold 16 of its largest bodies");
        }
    }

    #[test]
    fn a_hot_key_queued_many_times_ends_the_walk() {
        let mut waiting: VecDeque<(String, usize)> =
            std::iter::repeat_n(("hot".to_string(), 1), PASSED_OVER_MAX + 5).chain([("cold".to_string(), 1)]).collect();
        assert_eq!(take(&mut waiting, usize::MAX), ["hot"]);
        assert_eq!(waiting.len(), PASSED_OVER_MAX + 5, "the rest wait, in order");
        assert_eq!(waiting.back().map(|q| q.0.as_str()), Some("cold"));
    }

    #[test]
    fn a_pack_holds_at_most_the_commands_limit_of_objects() {
        let names: Vec<String> = (0..PACK_OBJECTS_MAX + 3).map(|i| format!("k{i}")).collect();
        let mut waiting: VecDeque<(String, usize)> = names.iter().map(|n| (n.clone(), 1)).collect();
        assert_eq!(take(&mut waiting, usize::MAX).len(), PACK_OBJECTS_MAX);
        assert_eq!(take(&mut waiting, usize::MAX).len(), 3);
    }
}
