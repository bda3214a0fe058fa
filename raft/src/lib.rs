//! The metadata replicated by Raft (openraft 0.9): voters named by the layout (3 per datacenter in
//! `ignifuge dev`) and optional learners, log and state machine in the node's ordered store,
//! transport over the authenticated internode HTTP API, membership kept equal to the cluster
//! layout stored in the metadata itself (`membership`).
//!
//! Owns: the Raft type configuration, the log store and state machine adapters (over
//! `ignifuge-kv` and `ignifuge-meta::StateMachine`), the network client, and `RaftMetadata`, the
//! node-side service that turns metadata commands into Raft proposals and answers linearizable
//! queries.
//! Must never depend on: the gateway or the storage node.
//! Invariants: a command's outcome is returned only after it is committed by a majority of voters
//! (each of which fsynced it) and applied; a query is answered only by the leader, within its lease
//! (`lease`) or after it has confirmed its leadership (read-index), and only once it has applied
//! its whole log if it was restored as leader after a restart, so it observes every acknowledged
//! write; the applied position is written atomically with the state it describes.

mod digest_at;
pub mod lease;
mod log_store;
mod membership;
mod network;
mod pacing;
mod read_index;
/// Public for the scale benchmark only, which builds and installs a snapshot of a large store
/// (`install` alone skips the crash-safe mark a replica's install sets first).
#[doc(hidden)]
pub mod snapshot_file;
mod state_machine;
#[cfg(test)]
mod storage_suite;

pub use digest_at::{DIGEST_MARKS_MAX, DigestAt, DigestAtRequest, DigestMarks};
pub use log_store::LogStore;
pub use membership::{
    CATCH_UP_MAX_LAG_ENTRIES, CurrentMembership, DesiredMembership, MEMBERSHIP_CHECK_INTERVAL_MS, MembershipStep,
    next_step,
};
pub use network::Network;
pub use state_machine::{SmStore, SnapshotBuilder};

use ignifuge_kv::KvStore;
use ignifuge_meta::{Answer, MetaError, Outcome, Proposal, Query, StateMachine};
use ignifuge_rpc::NodeClient;
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What applying a command returned (refusals such as PreconditionFailed are outcomes too).
pub type CommandResult = Result<Outcome, MetaError>;

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proposal,
        R = CommandResult,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type RaftNodeId = u64;

/// Internode paths of the Raft transport.
pub mod paths {
    pub const APPEND: &str = "/v1/raft/append";
    pub const VOTE: &str = "/v1/raft/vote";
    pub const SNAPSHOT: &str = "/v1/raft/snapshot";
    pub const INITIALIZE: &str = "/v1/raft/initialize";
    pub const STATUS: &str = "/v1/raft/status";
    pub const DIGEST: &str = "/v1/raft/digest";
    /// The digest of the state right after one log index (`DigestAtRequest` -> `DigestAt`).
    pub const DIGEST_AT: &str = "/v1/raft/digest-at";
}

/// Timing of elections. A leader's datacenter that burns is replaced after about
/// `ELECTION_TIMEOUT_MAX_MS` plus one round trip.
pub const HEARTBEAT_INTERVAL_MS: u64 = 250;
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 1_000;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 2_000;
/// Log entries applied since the last snapshot that trigger the next one (the environment's
/// `IGNIFUGE_RAFT_SNAPSHOT_ENTRIES` overrides it: tests make replicas catch up by snapshot).
pub const LOGS_SINCE_SNAPSHOT: u64 = 5_000;
/// Log entries kept behind a snapshot, for followers slightly behind.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 1_000;

pub use ignifuge_rpc::Redirect;

/// The voters: Raft id -> internode address.
pub type Voters = BTreeMap<RaftNodeId, String>;

/// The Raft replica of the metadata hosted by one storage node.
pub struct RaftMetadata {
    pub raft: Raft,
    machine: Arc<StateMachine>,
    kv: Arc<dyn KvStore>,
    amnesia: std::sync::Mutex<Amnesia>,
    /// A check that a majority follows the leader this replica caught up with is under way.
    confirming: std::sync::atomic::AtomicBool,
    /// For that check: the status of the other voters.
    client: NodeClient,
    /// Read-index rounds shared by the queries that arrive together.
    reads: Arc<read_index::ReadBatcher>,
    /// When followers last accepted this replica's appends, as leader (`lease`).
    leases: Arc<lease::Leases>,
    /// The highest term of the vote requests handed to Raft: once this leader may have granted a
    /// newer term its vote, its lease no longer says that no other leader exists (openraft's
    /// leader refuses votes only for a lease's length after it took office or restarted, not
    /// for a lease after each of its appends as its followers do).
    vote_terms_seen: std::sync::atomic::AtomicU64,
    /// Set when this replica restarted as the leader it was (openraft restores a leader whose own
    /// vote is stored, in the same term, and appends no new first entry if its log already ends
    /// in its own term): that vote and the last index of its log then. Entries up to there may
    /// have been acknowledged before the restart while the applied position (not fsynced) fell
    /// behind them, so no query is answered under that vote until they are applied.
    restored_as_leader: Option<(openraft::Vote<RaftNodeId>, u64)>,
    /// Queries answered from the lease, and after a read-index round (`RaftStatus`).
    reads_by_lease: std::sync::atomic::AtomicU64,
    reads_confirmed: std::sync::atomic::AtomicU64,
    /// Indexes whose state digest was asked for (`digest_at`).
    digest_marks: Arc<DigestMarks>,
    /// Stamps the `StartTicket`s of the queries this replica answers as leader.
    start_clock: ignifuge_meta::StartClock,
    /// Set by `release`: this replica writes its store no more.
    released: std::sync::atomic::AtomicBool,
}

/// Why a replica's Raft stopped (`RaftMetadata::stopped`).
#[derive(Clone, Debug)]
pub struct Stopped {
    /// Its store failed a read or a write (openraft's `Fatal::StorageError`): a replica started
    /// again on the store once it takes writes carries on. Otherwise (a panic in openraft, a
    /// shutdown) it is left stopped, for an operator to look at.
    pub by_store: bool,
    pub why: String,
}

/// Set while a replica that started with no Raft state at all (a new node, or a voter whose
/// metadata disk was lost: a fire, a replaced disk) has not yet caught up; removed in the same
/// store once it has. Kept across restarts, so a crash half-way through catching up does not
/// make the replica look whole.
const UNPROVEN_KEY: &[u8] = b"r/unproven";

/// Whether this replica may vote and campaign. A voter that lost its log may have acknowledged
/// entries that were committed counting its acknowledgement; if it voted (or campaigned, counting
/// its own vote) before holding them again, a candidate without them could win, and committed
/// metadata would be lost (Raft assumes stable storage). So such a replica neither votes nor
/// campaigns until
/// 1. a leader of term T whose announced commit is of its own term T has appended to it
///    successfully (a leader that has committed in its own term has every entry committed before,
///    at or below that commit; a success comes after the leader dealt with this replica's empty
///    log, so no later commit counts its lost acknowledgements);
/// 2. its log holds that commit index; and
/// 3. a majority of the voters, counting itself, are in term T following that leader, so no newer
///    leader can have committed anything it lacks (a newer term needs a majority, and this replica
///    gave it no vote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Amnesia {
    /// Has kept its log since it first caught up: votes normally.
    Whole,
    /// Started empty; `target` is what to catch up with, once a leader has said.
    Unproven { target: Option<CatchUpTarget> },
}

/// The leader and the commit index an unproven replica must catch up with (`Amnesia`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CatchUpTarget {
    term: u64,
    leader: RaftNodeId,
    commit: u64,
}

impl RaftMetadata {
    /// Starts the replica: log and state in `kv`, snapshot files under `snapshot_dir`.
    pub async fn start(
        id: RaftNodeId,
        kv: Arc<dyn KvStore>,
        snapshot_dir: PathBuf,
        client: NodeClient,
        tuning: RaftTuning,
    ) -> Result<Arc<Self>, String> {
        let config = openraft::Config {
            cluster_name: "ignifuge-metadata".into(),
            heartbeat_interval: HEARTBEAT_INTERVAL_MS,
            election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
            // Snapshots are asked for by `pacing::run`, in proportion to the state's size.
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: tuning.logs_kept_after_snapshot,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(|e| e.to_string())?);
        let amnesia = Self::amnesia_at_start(kv.as_ref())?;
        let machine = Arc::new(StateMachine::new(kv.clone()));
        let pacing = Arc::new(pacing::SnapshotPacing::new(id));
        let mut log = LogStore::new(kv.clone(), pacing.clone());
        let restored_as_leader = {
            use openraft::storage::RaftLogStorage;
            let vote = log.read_vote().await.map_err(|e| e.to_string())?;
            let last = log.get_log_state().await.map_err(|e| e.to_string())?.last_log_id.map(|l| l.index);
            match (vote, last) {
                (Some(vote), Some(last)) if vote.is_committed() && vote.leader_id().voted_for() == Some(id) => {
                    Some((vote, last))
                }
                _ => None,
            }
        };
        let sm = SmStore::new(machine.clone(), kv.clone(), snapshot_dir, pacing.clone()).map_err(|e| e.to_string())?;
        let digest_marks = sm.digest_marks();
        // The log kept from an earlier run counts toward the next snapshot (after `SmStore::new`
        // has told the pacing the current snapshot's size, which restarts the count).
        pacing.appended(log.stored_bytes().map_err(|e| e.to_string())?);
        let leases = Arc::new(lease::Leases::default());
        let raft = openraft::Raft::new(id, config, Network::factory(client.clone(), leases.clone()), log, sm)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(pacing::run(raft.clone(), pacing, tuning.snapshot_entries));
        if amnesia != Amnesia::Whole {
            // Not even for itself: a replica without its log must not lead (see `Amnesia`).
            raft.runtime_config().elect(false);
        }
        Ok(Arc::new(Self {
            raft,
            machine,
            kv,
            amnesia: std::sync::Mutex::new(amnesia),
            confirming: Default::default(),
            client,
            reads: Default::default(),
            leases,
            vote_terms_seen: Default::default(),
            restored_as_leader,
            reads_by_lease: Default::default(),
            reads_confirmed: Default::default(),
            digest_marks,
            start_clock: Default::default(),
            released: Default::default(),
        }))
    }

    /// A store with no Raft key at all is a replica that never had, or has lost, its log: it is
    /// marked unproven (synced) before Raft can use it. A mark left by an earlier run stays.
    fn amnesia_at_start(kv: &dyn KvStore) -> Result<Amnesia, String> {
        if kv.get(UNPROVEN_KEY).map_err(|e| e.to_string())?.is_some() {
            return Ok(Amnesia::Unproven { target: None });
        }
        let raft_end = ignifuge_kv::prefix_end(b"r/");
        if !kv.scan(b"r/", raft_end.as_deref(), 1).map_err(|e| e.to_string())?.is_empty() {
            return Ok(Amnesia::Whole);
        }
        let mut batch = ignifuge_kv::WriteBatch::new();
        batch.put(UNPROVEN_KEY, b"1".to_vec());
        kv.write(batch, ignifuge_kv::Durability::Synced).map_err(|e| e.to_string())?;
        Ok(Amnesia::Unproven { target: None })
    }

    /// Whether this replica has not yet caught up after starting without its log (it does not vote).
    pub fn unproven(&self) -> bool {
        *self.amnesia.lock().expect("amnesia lock") != Amnesia::Whole
    }

    /// After a successful append from a leader of `term`: its commit becomes the target if it
    /// is of the leader's own term and the leader is newer than the current target's.
    fn leader_appended(&self, term: u64, leader: Option<RaftNodeId>, commit: Option<openraft::LogId<u64>>) {
        let (Some(leader), Some(commit)) = (leader, commit) else { return };
        if commit.leader_id.get_term() != term {
            return; // this leader has not committed in its own term yet
        }
        let mut amnesia = self.amnesia.lock().expect("amnesia lock");
        if let Amnesia::Unproven { target } = &mut *amnesia
            && target.is_none_or(|t| term >= t.term)
        {
            *target = Some(CatchUpTarget { term, leader, commit: commit.index });
        }
    }

    /// Once the log holds the target's commit index, checks (in a task of its own) that a majority
    /// follows the target's leader, and then clears the unproven mark.
    fn check_caught_up(self: &Arc<Self>) {
        let Amnesia::Unproven { target: Some(target) } = *self.amnesia.lock().expect("amnesia lock") else {
            return;
        };
        if !self.running() {
            return;
        }
        if !self.holds(target.commit) || self.confirming.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            match me.confirm(target).await {
                Ok(true) => {}
                Ok(false) => tracing::info!(
                    ?target,
                    "caught up, but not proven yet (no majority confirmed the leader, or the store has not applied the target)"
                ),
                Err(e) => tracing::warn!(error = %e, "could not clear the unproven mark"),
            }
            me.confirming.store(false, std::sync::atomic::Ordering::Release);
        });
    }

    /// `mark_whole`, if its store has applied `target`'s commit index (its own record, not
    /// openraft's metrics: an entry accepted whose write failed is counted there) and it still
    /// runs: a replica stopped by its store and released (`release`) writes it no more, since
    /// another replica started on the same store may not hold that index. Called with the
    /// amnesia lock held, under which `release` marks the replica released.
    fn become_whole(&self, amnesia: &mut Amnesia, target: CatchUpTarget) -> Result<bool, String> {
        if self.released.load(std::sync::atomic::Ordering::Acquire) || !self.running() {
            return Ok(false);
        }
        let applied = state_machine::stored_applied_index(self.kv.as_ref()).map_err(|e| e.to_string())?;
        if applied.is_none_or(|applied| applied < target.commit) {
            return Ok(false);
        }
        self.mark_whole(amnesia)?;
        Ok(true)
    }

    /// Removes the unproven mark (synced) and lets this replica vote and campaign again.
    fn mark_whole(&self, amnesia: &mut Amnesia) -> Result<(), String> {
        let mut batch = ignifuge_kv::WriteBatch::new();
        batch.delete(UNPROVEN_KEY);
        self.kv.write(batch, ignifuge_kv::Durability::Synced).map_err(|e| e.to_string())?;
        *amnesia = Amnesia::Whole;
        self.raft.runtime_config().elect(true);
        Ok(())
    }

    fn holds(&self, index: u64) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let held = m.last_log_index.max(m.snapshot.map(|s| s.index)).max(m.last_applied.map(|l| l.index));
        held.is_some_and(|held| held >= index)
    }

    async fn confirm(&self, target: CatchUpTarget) -> Result<bool, String> {
        let (me, voters) = {
            let m = self.raft.metrics().borrow().clone();
            let membership = m.membership_config.membership().clone();
            let voters: Vec<(RaftNodeId, Option<String>)> =
                membership.voter_ids().map(|id| (id, membership.get_node(&id).map(|n| n.addr.clone()))).collect();
            (m.id, voters)
        };
        let quorum = voters.len() / 2 + 1;
        let mut following = usize::from(voters.iter().any(|(id, _)| *id == me));
        for (id, address) in voters.iter().filter(|(id, _)| *id != me) {
            let Some(address) = address.as_ref().and_then(|a| a.parse::<std::net::SocketAddr>().ok()) else {
                continue;
            };
            match self.client.post_json::<_, RaftStatus>(address, paths::STATUS, &()).await {
                Ok(status) if status.term == target.term && status.leader == Some(target.leader) => following += 1,
                Ok(_) => {}
                Err(e) => tracing::debug!(voter = id, error = %e, "voter status unavailable for the catch-up check"),
            }
        }
        if following < quorum || !self.holds(target.commit) {
            return Ok(false);
        }
        let mut amnesia = self.amnesia.lock().expect("amnesia lock");
        match *amnesia {
            Amnesia::Whole => return Ok(true),
            Amnesia::Unproven { target: Some(current) } if current == target => {}
            // A newer leader was seen meanwhile: the next append checks against it.
            Amnesia::Unproven { .. } => return Ok(false),
        }
        if !self.become_whole(&mut amnesia, target)? {
            return Ok(false);
        }
        drop(amnesia);
        tracing::info!(
            commit = target.commit,
            term = target.term,
            following,
            "this metadata replica caught up after starting without its log: it votes again"
        );
        Ok(true)
    }

    /// The applied log index and the BLAKE3 of the whole state at that index, read from one
    /// consistent view: two replicas at the same index must have the same digest.
    pub async fn digest(&self) -> Result<StateDigest, String> {
        let kv = self.kv.clone();
        tokio::task::spawn_blocking(move || {
            let view = kv.snapshot().map_err(|e| e.to_string())?;
            let applied = view
                .get(b"r/applied")
                .map_err(|e| e.to_string())?
                .and_then(|bytes| serde_json::from_slice::<Option<openraft::LogId<u64>>>(&bytes).ok().flatten())
                .map(|l| l.index);
            let digest = snapshot_file::digest(view.as_ref()).map_err(|e| e.to_string())?;
            Ok(StateDigest { applied_index: applied, digest: digest.to_hex().to_string() })
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The digest of the state right after entry `request.index`: taken when it is applied if
    /// asked for before (`digest_at`), else `Missed`; or the mark given up (`forget`).
    pub fn digest_at(&self, request: DigestAtRequest) -> DigestAt {
        if request.forget { self.digest_marks.forget(request.index) } else { self.digest_marks.ask(request.index) }
    }

    /// Makes a brand-new cluster of `voters`: called once on every voter when the cluster is
    /// created, so each starts with the same first membership entry (and none is unproven).
    pub async fn initialize(&self, voters: &Voters) -> Result<(), String> {
        if self.raft.is_initialized().await.map_err(|e| e.to_string())? {
            return Ok(());
        }
        let members: BTreeMap<RaftNodeId, BasicNode> =
            voters.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
        match self.raft.initialize(members).await {
            Ok(()) => {}
            // Another voter was initialised first and has already replicated to this one, which
            // then proves itself by catching up like any other.
            Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        }
        // The first entry of a brand-new group: this replica has lost nothing.
        self.mark_whole(&mut self.amnesia.lock().expect("amnesia lock"))
    }

    fn leader_address(&self, leader: Option<RaftNodeId>) -> Option<String> {
        let leader = leader?;
        let metrics = self.raft.metrics().borrow().clone();
        metrics.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())
    }

    /// Proposes a command and returns its outcome once committed and applied. Proposing the same
    /// proposal id again returns the first outcome (idempotent retries).
    pub async fn apply(&self, mut proposal: Proposal) -> Result<CommandResult, Redirect> {
        // The leader's clock, not the caller's, ages proposal ids (`StateMachine`'s clock).
        proposal.issued_ms = ignifuge_types::time::now_ms();
        proposal.aged_by_entries = true;
        // And dates what a proposer's clock would have dated: leases, garbage (of deletes, aborts
        // and overwrites), intents and the orphan sweep (`Command::stamp_leader_time`). The entry
        // carries the leader's time in the command's own fields, so the rules that apply it are
        // unchanged.
        proposal.command.stamp_leader_time(proposal.issued_ms);
        match self.raft.client_write(proposal).await {
            Ok(response) => Ok(response.data),
            Err(openraft::error::RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
                Err(Redirect::NotLeader { leader: f.leader_node.map(|n| n.addr) })
            }
            Err(e) => Err(Redirect::Unavailable(e.to_string())),
        }
    }

    /// The index this replica must have applied before it answers a query as the leader of
    /// `vote`: its whole log as of a restart as that same leader (`restored_as_leader`).
    fn restored_floor(&self, vote: &openraft::Vote<RaftNodeId>) -> Option<u64> {
        self.restored_as_leader.filter(|(restored, _)| restored == vote).map(|(_, last)| last)
    }

    /// Whether this replica, as leader, may answer a query that arrived now from its lease: no
    /// vote request of a newer term reached it, it leads, has applied an entry of its own term (so
    /// every entry committed before it) and its whole log if restored as leader, and a majority of
    /// each configuration accepted appends it sent within `LEASE_READ_MS` (`lease`).
    fn lease_holds(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        // First: a vote handed to Raft after this point cannot have been granted before it.
        let seen = self.vote_terms_seen.load(SeqCst);
        let m = self.raft.metrics();
        let m = m.borrow();
        let term = m.vote.leader_id().get_term();
        let applied = m.last_applied;
        seen <= term
            && m.state == openraft::ServerState::Leader
            && m.vote.is_committed()
            && m.vote.leader_id().voted_for() == Some(m.id)
            && applied.is_some_and(|applied| applied.leader_id.term == term)
            && self.restored_floor(&m.vote).is_none_or(|floor| applied.is_some_and(|a| a.index >= floor))
            && self.leases.holds(m.id, &m.vote, m.membership_config.membership().get_joint_config(), lease::boottime())
    }

    /// Answers a query from the leader's lease (`lease`), or else after confirming leadership
    /// (read-index, in rounds shared by the queries that arrive together: `read_index`) and once
    /// the state machine has applied up to the read index: linearizable either way.
    pub async fn query(&self, query: Query) -> Result<Result<Answer, MetaError>, Redirect> {
        use openraft::error::{CheckIsLeaderError, RaftError};
        use read_index::NotConfirmed;
        use std::sync::atomic::Ordering::Relaxed;
        let confirmed = if self.lease_holds() {
            self.reads_by_lease.fetch_add(1, Relaxed);
            Ok(None)
        } else {
            self.reads_confirmed.fetch_add(1, Relaxed);
            // The read index is the commit position, which a leader restored after a restart
            // starts from its applied position or the commit hint, neither fsynced: its own log
            // may hold acknowledged entries past both. Taken before the round: if the vote
            // changes during it, a round confirmed under a newer vote of this replica is past that
            // term's first entry, which covers its whole log.
            let floor = self.restored_floor(&self.raft.metrics().borrow().vote);
            self.reads.confirm(&self.raft).await.map(|read| read.max(floor))
        };
        let read = match confirmed {
            Ok(read) => read,
            Err(NotConfirmed::Raft(e)) => {
                return Err(match *e {
                    RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => {
                        Redirect::NotLeader { leader: f.leader_node.map(|n| n.addr) }
                    }
                    RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)) => {
                        Redirect::Unavailable(format!("no quorum: {e}"))
                    }
                    e => Redirect::Unavailable(e.to_string()),
                });
            }
            Err(NotConfirmed::TimedOut) => {
                return Err(Redirect::Unavailable("leadership was not confirmed in time".into()));
            }
        };
        let wait = std::time::Duration::from_millis(read_index::APPLY_WAIT_MS);
        if read.is_some()
            && let Err(e) = self.raft.wait(Some(wait)).applied_index_at_least(read, "linearizable query").await
        {
            return Err(Redirect::Unavailable(format!("the state machine did not reach the read index: {e}")));
        }
        // A query reads the store (a listing page, a scan): off the async runtime, so that a
        // slow one never holds up the Raft tasks and heartbeats sharing it.
        let machine = self.machine.clone();
        let mut answer = tokio::task::spawn_blocking(move || machine.query(query))
            .await
            .map_err(|e| Redirect::Unavailable(format!("the query task failed: {e}")))?;
        // Applied as of the answer, which is at or past the read (a leader's applied index never
        // goes back, and a new leader's is past every index an old one answered).
        if let Ok(ignifuge_meta::Answer::UploadForPart { began, .. }) = &mut answer {
            let applied = self.raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
            *began = self.start_clock.stamp(applied);
        }
        Ok(answer)
    }

    /// Waits until this replica's Raft has stopped (a store that failed a write, a panic in its
    /// core, a shutdown) and says why.
    pub async fn stopped(&self) -> Stopped {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return Stopped {
                    by_store: matches!(fatal, openraft::error::Fatal::StorageError(_)),
                    why: fatal.to_string(),
                };
            }
            if metrics.changed().await.is_err() {
                return Stopped { by_store: false, why: "the Raft core is gone".into() };
            }
        }
    }

    /// Whether this replica's Raft still runs.
    pub fn running(&self) -> bool {
        self.raft.metrics().borrow().running_state.is_ok()
    }

    /// Shuts this replica's Raft down and waits, up to `timeout`, until no task of it can still
    /// write its store: openraft's core (joined by `shutdown`), its state machine worker and
    /// snapshot builds (each holds the state machine until it ends), and the catch-up check
    /// (`become_whole`, which writes nothing once this has marked the replica released). Then
    /// another replica may be started on the same store.
    pub async fn release(&self, timeout: std::time::Duration) -> bool {
        {
            // Under the lock `become_whole` holds from its check to its write: once this is set,
            // none is under way and none will write.
            let _amnesia = self.amnesia.lock().expect("amnesia lock");
            self.released.store(true, std::sync::atomic::Ordering::Release);
        }
        let _ = self.raft.shutdown().await;
        let deadline = std::time::Instant::now() + timeout;
        while Arc::strong_count(&self.machine) > 1 {
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        true
    }

    /// A snapshot of the replica's view, for `ignifuge admin status`.
    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        let voters: Vec<RaftNodeId> = m.membership_config.membership().voter_ids().collect();
        let learners: Vec<RaftNodeId> = m.membership_config.membership().learner_ids().collect();
        RaftStatus {
            id: m.id,
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            leader_address: self.leader_address(m.current_leader),
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            voters,
            learners,
            unproven: self.unproven(),
            stopped: m.running_state.is_err(),
            reads_by_lease: self.reads_by_lease.load(std::sync::atomic::Ordering::Relaxed),
            reads_confirmed: self.reads_confirmed.load(std::sync::atomic::Ordering::Relaxed),
            replication: m
                .replication
                .map(|r| r.into_iter().map(|(id, l)| (id, l.map(|l| l.index))).collect())
                .unwrap_or_default(),
        }
    }

    /// Serves the Raft transport: `path` is one of `paths::{APPEND, VOTE, SNAPSHOT}`.
    pub async fn handle_rpc(self: &Arc<Self>, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
            serde_json::to_vec(v).map_err(|e| e.to_string())
        }
        match path {
            paths::APPEND => {
                let request: openraft::raft::AppendEntriesRequest<TypeConfig> =
                    serde_json::from_slice(body).map_err(|e| e.to_string())?;
                let (term, leader, commit) =
                    (request.vote.leader_id().get_term(), request.vote.leader_id().voted_for(), request.leader_commit);
                let answer = self.raft.append_entries(request).await;
                if self.unproven() {
                    if matches!(
                        answer,
                        Ok(openraft::raft::AppendEntriesResponse::Success
                            | openraft::raft::AppendEntriesResponse::PartialSuccess(_))
                    ) {
                        self.leader_appended(term, leader, commit);
                    }
                    self.check_caught_up();
                }
                json(&answer)
            }
            paths::VOTE => {
                if self.unproven() {
                    return Err("this metadata replica started without its log and has not caught up: it does not \
                                vote yet"
                        .into());
                }
                let request: openraft::raft::VoteRequest<RaftNodeId> =
                    serde_json::from_slice(body).map_err(|e| e.to_string())?;
                // Before Raft sees it: from now on this replica's lease does not hold (`lease_holds`).
                let term = request.vote.leader_id().get_term();
                let seen = self.vote_terms_seen.fetch_max(term, std::sync::atomic::Ordering::SeqCst);
                let (current, me) = {
                    let metrics = self.raft.metrics();
                    let m = metrics.borrow();
                    (m.vote, m.id)
                };
                if term > seen.max(current.leader_id().get_term()) && current.leader_id().voted_for() == Some(me) {
                    tracing::info!(
                        term,
                        current = current.leader_id().get_term(),
                        "a vote request of a newer term reached the leader: no more reads from its lease in this term"
                    );
                }
                json(&self.raft.vote(request).await)
            }
            paths::SNAPSHOT => {
                let request = serde_json::from_slice(body).map_err(|e| e.to_string())?;
                let answer = json(&self.raft.install_snapshot(request).await);
                if self.unproven() {
                    self.check_caught_up();
                }
                answer
            }
            other => Err(format!("no raft route {other}")),
        }
    }
}

/// How often snapshots are taken and how much log is kept behind one.
#[derive(Clone, Copy, Debug)]
pub struct RaftTuning {
    pub snapshot_entries: u64,
    pub logs_kept_after_snapshot: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self { snapshot_entries: LOGS_SINCE_SNAPSHOT, logs_kept_after_snapshot: LOGS_KEPT_AFTER_SNAPSHOT }
    }
}

/// A replica's applied index and the digest of its state there (`RaftMetadata::digest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDigest {
    pub applied_index: Option<u64>,
    pub digest: String,
}

/// One replica's view of the metadata group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftStatus {
    pub id: RaftNodeId,
    pub state: String,
    pub term: u64,
    pub leader: Option<RaftNodeId>,
    pub leader_address: Option<String>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub voters: Vec<RaftNodeId>,
    pub learners: Vec<RaftNodeId>,
    /// Started without its log and not yet caught up: it does not vote (`Amnesia`).
    #[serde(default)]
    pub unproven: bool,
    /// Its Raft has stopped (a store that failed a write): its node starts it again once the
    /// store takes writes.
    #[serde(default)]
    pub stopped: bool,
    /// Queries this replica answered from its lease as leader, and after a read-index round,
    /// since it started.
    #[serde(default)]
    pub reads_by_lease: u64,
    #[serde(default)]
    pub reads_confirmed: u64,
    /// On the leader: each follower's last replicated index.
    pub replication: BTreeMap<RaftNodeId, Option<u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_rpc::InternodeAuth;

    async fn replica(kv: Arc<dyn KvStore>, dir: &std::path::Path) -> Arc<RaftMetadata> {
        let client = NodeClient::new(Arc::new(InternodeAuth::new(&[9u8; 32])));
        RaftMetadata::start(1, kv, dir.join("snapshots"), client, RaftTuning::default()).await.expect("replica")
    }

    /// Asks `replica` for its vote with `request`; whether it was granted.
    async fn vote_granted(replica: &Arc<RaftMetadata>, request: &openraft::raft::VoteRequest<u64>) -> bool {
        let answer = replica.handle_rpc(paths::VOTE, &serde_json::to_vec(request).unwrap()).await.unwrap();
        let answer: Result<openraft::raft::VoteResponse<u64>, serde_json::Value> =
            serde_json::from_slice(&answer).unwrap();
        answer.expect("a vote answer").vote_granted
    }

    fn vote_request() -> Vec<u8> {
        let request: openraft::raft::VoteRequest<u64> =
            openraft::raft::VoteRequest::new(openraft::Vote::new(7, 2), None);
        serde_json::to_vec(&request).unwrap()
    }

    /// What the leader's lease (`lease`) relies on from openraft across a restart: a voter that
    /// accepted a leader's append keeps refusing other candidates for `ELECTION_TIMEOUT_MAX_MS`,
    /// counted again from its restart (openraft gives the stored vote the time of the start),
    /// so a restart cannot free a promise it made to a leader just before.
    #[tokio::test]
    async fn a_restarted_voter_keeps_refusing_candidates_for_a_lease_after_following_a_leader() {
        let dir = tempfile::tempdir().unwrap();
        let kv: Arc<dyn KvStore> = Arc::new(ignifuge_kv::MemoryKv::default());
        let voter = replica(kv.clone(), dir.path()).await;
        let voters = Voters::from([
            (1, "127.0.0.1:1".to_string()),
            (2, "127.0.0.1:2".to_string()),
            (3, "127.0.0.1:3".to_string()),
        ]);
        voter.initialize(&voters).await.unwrap();
        // Node 2 leads term 7: its (empty) append is accepted.
        let append: openraft::raft::AppendEntriesRequest<TypeConfig> = openraft::raft::AppendEntriesRequest {
            vote: openraft::Vote::new_committed(7, 2),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        };
        let answer = voter.handle_rpc(paths::APPEND, &serde_json::to_vec(&append).unwrap()).await.unwrap();
        let answer: Result<openraft::raft::AppendEntriesResponse<u64>, serde_json::Value> =
            serde_json::from_slice(&answer).unwrap();
        assert!(matches!(answer, Ok(openraft::raft::AppendEntriesResponse::Success)), "{answer:?}");
        voter.raft.shutdown().await.unwrap();
        drop(voter);

        // Restarted at once; node 3 campaigns in term 8 with a longer log.
        let restarted = replica(kv, dir.path()).await;
        let candidate: openraft::raft::VoteRequest<u64> = openraft::raft::VoteRequest::new(
            openraft::Vote::new(8, 3),
            Some(openraft::LogId::new(openraft::CommittedLeaderId::new(7, 2), 100)),
        );
        assert!(
            !vote_granted(&restarted, &candidate).await,
            "a voter granted another candidate its vote right after restarting"
        );
        tokio::time::sleep(std::time::Duration::from_millis(ELECTION_TIMEOUT_MAX_MS + 100)).await;
        assert!(vote_granted(&restarted, &candidate).await, "once the lease is over the candidate gets the vote");
        restarted.raft.shutdown().await.unwrap();
    }

    /// The lease in one replica that leads a group of one (its own acknowledgement is a quorum):
    /// it holds once the leader has applied an entry of its term, and a vote request of a newer
    /// term that reaches it ends it for the term, even one openraft refuses (openraft's leader
    /// grants such votes once it has led for a lease's length, and a grant must never be
    /// followed by a read from the lease).
    #[tokio::test]
    async fn a_vote_request_of_a_newer_term_ends_the_leaders_lease() {
        let dir = tempfile::tempdir().unwrap();
        let leader = replica(Arc::new(ignifuge_kv::MemoryKv::default()), dir.path()).await;
        leader.initialize(&Voters::from([(1, "127.0.0.1:1".to_string())])).await.unwrap();
        leader
            .raft
            .wait(Some(std::time::Duration::from_secs(10)))
            .metrics(
                |m| {
                    m.state == openraft::ServerState::Leader
                        && m.last_applied.is_some_and(|a| a.leader_id.term == m.current_term)
                },
                "leading, first entry applied",
            )
            .await
            .unwrap();
        assert!(leader.lease_holds(), "a leader of one, its first entry applied, holds its lease");
        let term = leader.raft.metrics().borrow().current_term;
        // Refused by openraft (the leader took office less than a lease ago), yet the lease ends.
        let candidate: openraft::raft::VoteRequest<u64> = openraft::raft::VoteRequest::new(
            openraft::Vote::new(term + 1, 2),
            Some(openraft::LogId::new(openraft::CommittedLeaderId::new(term, 1), 100)),
        );
        assert!(!vote_granted(&leader, &candidate).await, "openraft's leader refused within its own lease");
        assert_eq!(leader.raft.metrics().borrow().state, openraft::ServerState::Leader);
        assert!(!leader.lease_holds(), "the lease outlived a vote request of a newer term");
        leader.raft.shutdown().await.unwrap();
    }

    /// A replica that starts with an empty store (a new node, or a wiped voter) refuses votes,
    /// across a restart, until it is proven; one created as a member of a brand-new group is whole.
    #[tokio::test]
    async fn a_replica_without_its_log_refuses_votes_until_it_is_proven() {
        let dir = tempfile::tempdir().unwrap();
        let kv: Arc<dyn KvStore> = Arc::new(ignifuge_kv::MemoryKv::default());
        let wiped = replica(kv.clone(), dir.path()).await;
        assert!(wiped.unproven());
        assert!(wiped.status().unproven);
        let refused = wiped.handle_rpc(paths::VOTE, &vote_request()).await.unwrap_err();
        assert!(refused.contains("does not vote"), "{refused}");
        wiped.raft.shutdown().await.unwrap();
        drop(wiped);
        // A restart half-way keeps the mark: the store is no longer empty, but still unproven.
        let restarted = replica(kv.clone(), dir.path()).await;
        assert!(restarted.unproven());
        assert!(restarted.handle_rpc(paths::VOTE, &vote_request()).await.is_err());
        restarted.raft.shutdown().await.unwrap();
        drop(restarted);

        // A member of a brand-new group, initialised with it, votes.
        let dir = tempfile::tempdir().unwrap();
        let fresh = replica(Arc::new(ignifuge_kv::MemoryKv::default()), dir.path()).await;
        fresh
            .initialize(&Voters::from([(1, "127.0.0.1:1".to_string()), (2, "127.0.0.1:2".to_string())]))
            .await
            .unwrap();
        assert!(!fresh.unproven());
        let answered = fresh.handle_rpc(paths::VOTE, &vote_request()).await.expect("a whole replica answers votes");
        let response: Result<openraft::raft::VoteResponse<u64>, serde_json::Value> =
            serde_json::from_slice(&answered).unwrap();
        assert!(response.is_ok(), "{response:?}");
        fresh.raft.shutdown().await.unwrap();
    }
}
