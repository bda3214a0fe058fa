//! Garbage collection of blobs that no committed version references any more (replaced or
//! deleted objects, unused or aborted multipart parts). The metadata records them as garbage in
//! the same command that drops the last reference; after a grace period (so that reads that
//! started before the overwrite can finish), this task deletes their shards from every node that
//! holds one, a batch of blobs per request and node, and then forgets the records. A node that
//! cannot be reached (down, or gone from the layout) holds a batch up for at most the batch
//! delete's timeout: the records are forgotten anyway, and the shards left on
//! that node are orphans from then on, which the repair round's orphan sweep fences in the
//! metadata and deletes once the node answers again. One process at a time collects (the `gc`
//! lease), so rounds never race each other. A round goes on while its fetches of garbage past
//! the grace come back full, a batch at a time, resting after each so that it is busy at most
//! `GcConfig::busy_share` of the time (`pace`): a mass delete is reclaimed steadily without
//! taking the nodes' disks from clients.

use crate::Services;
use crate::error::ServiceResult;
use crate::lease::Lease;
use crate::pace::DutyCycle;
use ignifuge_meta::{Command, DataLocation};
use ignifuge_rpc::BLOBS_PER_DELETE_MAX;
use ignifuge_types::{BlobId, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How long a replaced blob stays readable before its shards are deleted: 5 minutes for a GET
/// that read the old record to finish, plus twice the clock difference allowed between processes
/// that talk (`ignifuge_rpc::INTERNODE_CLOCK_SKEW_MAX_MS`, 5 minutes): a blob's garbage record
/// is stamped by the clock of the metadata leader of the time and judged by the collector's,
/// and after a failover the collector talks to another leader, so the stamping leader and the
/// collector may be two differences apart (10 minutes).
pub const GC_GRACE_MS_DEFAULT: u64 = 5 * 60 * 1000 + 2 * ignifuge_rpc::INTERNODE_CLOCK_SKEW_MAX_MS;
/// Pause between collection rounds.
pub const GC_INTERVAL_MS_DEFAULT: u64 = 30 * 1000;
/// Share of the time a round may be busy (the rest it waits): clients keep three quarters of
/// what garbage collection would take from the nodes at full speed.
pub const GC_BUSY_SHARE_DEFAULT: f64 = 0.25;
/// Garbage records fetched at once; a round fetches again while a fetch comes back full.
const GC_BLOBS_PER_FETCH: usize = 256;
/// Shard files one batch deletes across the cluster at most (a blob of more is a batch alone):
/// a batch of 256 large objects would be hundreds of thousands of unlinks.
const GC_SHARD_FILES_PER_BATCH_MAX: u64 = 4096;

#[derive(Clone, Debug)]
pub struct GcConfig {
    /// `GC_GRACE_MS_DEFAULT`.
    pub grace: Duration,
    /// `GC_INTERVAL_MS_DEFAULT`.
    pub interval: Duration,
    /// `GC_BUSY_SHARE_DEFAULT`.
    pub busy_share: f64,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_millis(GC_GRACE_MS_DEFAULT),
            interval: Duration::from_millis(GC_INTERVAL_MS_DEFAULT),
            busy_share: GC_BUSY_SHARE_DEFAULT,
        }
    }
}

/// Runs collection rounds forever (until the process stops), while this process holds the `gc`
/// lease.
pub async fn run(services: Arc<Services>, config: GcConfig) {
    let mut lease = Lease::for_rounds("gc", services.holder.clone(), config.interval);
    let cycle = DutyCycle::new(config.busy_share);
    loop {
        lease.next_round(&services, config.interval).await;
        match collect(&services, config.grace, cycle, &mut lease).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(blobs = n, "garbage collected"),
            Err(e) => tracing::warn!(error = %e, "garbage collection round failed; retrying later"),
        }
    }
}

/// One round: returns how many blobs were reclaimed. The round walks the garbage records once,
/// in blob id order, fetching up to 256 past the grace at a time, and deletes them in batches
/// of at most `GC_SHARD_FILES_PER_BATCH_MAX` shard files: each node is asked once per batch
/// (`delete_blobs`, one sync on the node) for every blob of it that it holds shards of, all
/// nodes at once; then the batch is forgotten and the round rests. The grace is judged as of
/// the round's start (what ages meanwhile waits for the next round, so a steady stream of
/// overwrites does not keep one round going). Records are keyed by random blob id, so young
/// ones lie among old ones: the walk goes on past them (each fetch from the front found
/// nothing behind 10,000 young records, and a busy cluster's old garbage stayed for ever). The
/// lease is renewed between batches; a round whose lease was lost stops.
async fn collect(services: &Services, grace: Duration, cycle: DutyCycle, lease: &mut Lease) -> ServiceResult<usize> {
    let mut total = 0;
    let older_than_ms = ignifuge_types::time::now_ms() - grace.as_millis() as i64;
    let mut after = None;
    loop {
        // The fetch is the metadata leader's part of the work: timed with the first batch.
        let mut step = cycle.step();
        let page = services.metadata.garbage(older_than_ms, after, GC_BLOBS_PER_FETCH).await?;
        after = page.next;
        let young_only = page.garbage.is_empty();
        for batch in batches(page.garbage) {
            if !lease.keep(services.metadata.as_ref()).await? {
                tracing::info!(
                    holder = lease.holder(),
                    "the garbage collection lease was lost (another worker took it, or a new tenure of it began)"
                );
                return Ok(total);
            }
            delete_everywhere(services, &batch).await;
            let blobs: Vec<BlobId> = batch.into_iter().map(|(blob, _)| blob).collect();
            total += blobs.len();
            services.metadata.apply(Command::ForgetGarbage { blobs }).await?;
            step.rest(lease, services.metadata.as_ref()).await;
            step = cycle.step();
        }
        if after.is_none() {
            return Ok(total);
        }
        if young_only {
            // A page of records still within their grace (a scan of up to 10,000 on the
            // leader): rested as a batch is, so that a walk past many young records keeps to
            // the same share; and a round that lost its lease stops.
            step.rest(lease, services.metadata.as_ref()).await;
            if !lease.keep(services.metadata.as_ref()).await? {
                return Ok(total);
            }
        }
    }
}

type Garbage = Vec<(BlobId, ignifuge_meta::GarbageRecord)>;

/// Splits fetched garbage into batches of at most `GC_SHARD_FILES_PER_BATCH_MAX` shard files
/// (a blob of more is a batch of its own) and `BLOBS_PER_DELETE_MAX` blobs.
fn batches(garbage: Garbage) -> Vec<Garbage> {
    let mut out: Vec<Garbage> = Vec::new();
    let mut files = 0u64;
    for (blob, record) in garbage {
        let blob_files = match &record.location {
            DataLocation::Striped(s) => u64::from(s.stripe_count) * u64::from(s.data_shards + s.parity_shards),
            _ => 0,
        };
        let full = out.last().is_none_or(|b| {
            b.len() >= BLOBS_PER_DELETE_MAX || (files + blob_files > GC_SHARD_FILES_PER_BATCH_MAX && !b.is_empty())
        });
        if full {
            out.push(Vec::new());
            files = 0;
        }
        files += blob_files;
        out.last_mut().expect("a batch was just pushed").push((blob, record));
    }
    out
}

/// Deletes a batch's shards from every node that holds some. Whatever a node does not delete
/// (unreachable, refused, an answer that never came, a disk error) is unreferenced once the
/// batch is forgotten, so the orphan sweep takes it later.
async fn delete_everywhere(services: &Services, batch: &Garbage) {
    let mut by_node: BTreeMap<NodeId, Vec<BlobId>> = BTreeMap::new();
    for (blob, record) in batch {
        if let DataLocation::Striped(striped) = &record.location {
            let nodes: BTreeSet<&NodeId> =
                striped.stripes.iter().flat_map(|s| s.shards.iter().map(|r| &r.node)).collect();
            for node in nodes {
                by_node.entry(node.clone()).or_default().push(blob.clone());
            }
        }
    }
    let deletes = by_node.into_iter().filter_map(|(node, blobs)| {
        // A node gone from the layout has nothing to ask.
        let address = services.data.address(&node).ok()?;
        Some(async move {
            crate::delete_blobs_on(&services.data, &node, address, &blobs).await;
        })
    });
    futures::future::join_all(deletes).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{put_striped, services};
    use ignifuge_meta::{GarbageRecord, StripedBlob};

    fn garbage(name: &str, stripes: u32) -> (BlobId, GarbageRecord) {
        let striped = StripedBlob {
            blob: BlobId::new(name),
            data_shards: 5,
            parity_shards: 4,
            shard_size_bytes: 1 << 20,
            stripe_count: stripes,
            first_stripe: 0,
            stripes: Vec::new(),
            born_ms: 0,
        };
        (BlobId::new(name), GarbageRecord::new(DataLocation::Striped(striped), 0))
    }

    #[test]
    fn batches_are_bounded_by_shard_files_and_blobs() {
        // 9 files per stripe: 455 one-stripe blobs are 4095 files.
        let small: Garbage = (0..600).map(|i| garbage(&format!("{i:04x}"), 1)).collect();
        let sizes: Vec<usize> = batches(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [256, 256, 88], "at most BLOBS_PER_DELETE_MAX blobs");
        let mixed: Garbage =
            vec![garbage("aa", 400), garbage("bb", 100), garbage("cc", 1000), garbage("dd", 1), garbage("ee", 1)];
        let sizes: Vec<usize> = batches(mixed).iter().map(Vec::len).collect();
        // 3600 + 900 > 4096: bb starts a batch; cc (9000 files) is one of its own.
        assert_eq!(sizes, [1, 1, 1, 2]);
    }

    /// A storage node that answers batch deletes (as failed for the blobs in `fails`) and
    /// records each batch it was asked.
    struct FakeNode {
        address: std::net::SocketAddr,
        asked: Arc<std::sync::Mutex<Vec<Vec<BlobId>>>>,
    }

    async fn fake_node(fails: Vec<BlobId>) -> FakeNode {
        use http_body_util::BodyExt as _;
        use ignifuge_rpc::{BlobDeleteAnswer, BlobDeleteRequest};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = asked.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (recorded, fails) = (recorded.clone(), fails.clone());
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (recorded, fails) = (recorded.clone(), fails.clone());
                    async move {
                        assert_eq!(request.uri().path(), ignifuge_rpc::paths::BLOBS_DELETE);
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let asked: BlobDeleteRequest = serde_json::from_slice(&body).unwrap();
                        let failed: Vec<BlobId> = asked.blobs.iter().filter(|b| fails.contains(b)).cloned().collect();
                        let answer = BlobDeleteAnswer { deleted: asked.blobs.len() - failed.len(), failed };
                        recorded.lock().unwrap().push(asked.blobs);
                        let json = bytes::Bytes::from(serde_json::to_vec(&answer).unwrap());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(json)))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
            }
        });
        FakeNode { address, asked }
    }

    /// Writes each object and deletes it at `deleted_ms`, leaving its blob garbage since then.
    async fn garbage_of(services: &Services, objects: &[(&str, &str, &[usize])], deleted_ms: i64) {
        use ignifuge_meta::WriteCondition;
        let m = services.metadata.as_ref();
        for (key, blob, nodes) in objects {
            let bucket = put_striped(services, key, blob, nodes).await;
            m.apply(Command::DeleteObject {
                bucket: bucket.clone(),
                key: ignifuge_types::ObjectKey::new(*key),
                condition: WriteCondition::default(),
                now_ms: deleted_ms,
                version: None,
                marker_nonce: None,
            })
            .await
            .unwrap();
        }
    }

    async fn garbage_left(services: &Services) -> Vec<String> {
        let all = services.metadata.garbage(i64::MAX, None, 10_000).await.unwrap();
        all.garbage.into_iter().map(|(blob, _)| blob.0).collect()
    }

    /// A round deletes the shards of garbage past its grace from each node holding some (one
    /// request per node and batch), forgets it whatever a node answered (what a node kept is the
    /// orphan sweep's), and leaves garbage within its grace alone; a worker without the lease
    /// collects nothing.
    #[tokio::test]
    async fn a_round_deletes_garbage_past_its_grace_from_every_node_holding_it() {
        let (n1, n2, n3) =
            (fake_node(vec![]).await, fake_node(vec![BlobId::new("old-2")]).await, fake_node(vec![]).await);
        let services = services(&[n1.address, n2.address, n3.address]);
        let now = ignifuge_types::time::now_ms();
        let grace = Duration::from_secs(60);
        // old-1 also has a shard on node 4, which refuses connections.
        garbage_of(&services, &[("a", "old-1", &[0, 1, 4]), ("b", "old-2", &[1, 2, 2])], now - 120_000).await;
        garbage_of(&services, &[("c", "young", &[0, 1, 2])], now - 1).await;
        let everyone = DutyCycle::new(1.0);

        // Another worker holds the lease: nothing is deleted or forgotten.
        let mut theirs = Lease::new("gc", "another-worker".into(), Duration::from_secs(60));
        assert!(theirs.take(services.metadata.as_ref()).await.unwrap());
        let mut ours = Lease::new("gc", services.holder.clone(), Duration::from_secs(60));
        assert_eq!(collect(&services, grace, everyone, &mut ours).await.unwrap(), 0);
        assert!([&n1, &n2, &n3].iter().all(|n| n.asked.lock().unwrap().is_empty()));
        assert_eq!(garbage_left(&services).await, ["old-1", "old-2", "young"]);

        // (A lease of another name: the other worker's holds "gc" for a minute.)
        let mut ours = Lease::new("gc-test", services.holder.clone(), Duration::from_secs(60));
        assert_eq!(collect(&services, grace, everyone, &mut ours).await.unwrap(), 2);
        let ids = |n: &FakeNode| -> Vec<Vec<String>> {
            n.asked.lock().unwrap().iter().map(|batch| batch.iter().map(|b| b.0.clone()).collect()).collect()
        };
        assert_eq!(ids(&n1), [vec!["old-1"]]);
        assert_eq!(ids(&n2), [vec!["old-1", "old-2"]], "one request for both blobs");
        assert_eq!(ids(&n3), [vec!["old-2"]], "asked once for a blob of two shards there");
        assert_eq!(garbage_left(&services).await, ["young"], "forgotten, whatever nodes answered; young kept");

        // The grace passed: collected too; then a round finds nothing.
        assert_eq!(collect(&services, Duration::ZERO, everyone, &mut ours).await.unwrap(), 1);
        assert_eq!(ids(&n1).last().unwrap(), &["young"]);
        assert_eq!(collect(&services, Duration::ZERO, everyone, &mut ours).await.unwrap(), 0);
        assert!(garbage_left(&services).await.is_empty());
    }

    /// Garbage past its grace is collected however many young records (more than one scan of
    /// the metadata looks at) sort before it: a round walks them all.
    #[tokio::test]
    async fn a_round_finds_old_garbage_behind_more_young_records_than_one_scan() {
        let n1 = fake_node(vec![]).await;
        let services = services(&[n1.address]);
        let now = ignifuge_types::time::now_ms();
        let keys: Vec<(String, String)> = (0..10_050).map(|i| (format!("k{i:05}"), format!("a{i:05}"))).collect();
        let young: Vec<(&str, &str, &[usize])> =
            keys.iter().map(|(k, b)| (k.as_str(), b.as_str(), &[0usize][..])).collect();
        garbage_of(&services, &young, now).await;
        garbage_of(&services, &[("old-1", "z-old-1", &[0]), ("old-2", "z-old-2", &[0])], now - 120_000).await;
        let mut lease = Lease::new("gc", services.holder.clone(), Duration::from_secs(60));
        let collected = collect(&services, Duration::from_secs(60), DutyCycle::new(1.0), &mut lease).await.unwrap();
        assert_eq!(collected, 2, "the old garbage behind the young records");
        let asked: Vec<Vec<BlobId>> = n1.asked.lock().unwrap().clone();
        assert_eq!(asked, [vec![BlobId::new("z-old-1"), BlobId::new("z-old-2")]]);
    }

    /// More garbage than one fetch holds is collected in one round, a fetch at a time.
    #[tokio::test]
    async fn a_round_goes_on_while_fetches_come_back_full() {
        let n1 = fake_node(vec![]).await;
        let services = services(&[n1.address]);
        let keys: Vec<(String, String)> = (0..300).map(|i| (format!("k{i:03}"), format!("blob-{i:03}"))).collect();
        let objects: Vec<(&str, &str, &[usize])> =
            keys.iter().map(|(k, b)| (k.as_str(), b.as_str(), &[0usize][..])).collect();
        garbage_of(&services, &objects, 0).await;
        let mut lease = Lease::new("gc", services.holder.clone(), Duration::from_secs(60));
        let collected = collect(&services, Duration::ZERO, DutyCycle::new(1.0), &mut lease).await.unwrap();
        assert_eq!(collected, 300);
        let sizes: Vec<usize> = n1.asked.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [GC_BLOBS_PER_FETCH, 300 - GC_BLOBS_PER_FETCH]);
        assert!(garbage_left(&services).await.is_empty());
    }
}
