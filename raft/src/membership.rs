//! Keeping the Raft membership equal to the cluster layout stored in the metadata.
//!
//! The layout (`Query::Layout`, a `ClusterConfig` document) names the metadata's voters and
//! learners. Whichever replica leads compares it with the membership every
//! `MEMBERSHIP_CHECK_INTERVAL_MS` and closes the gap one safe step at a time:
//!
//! 1. a node the layout names but the group lacks is added as a learner (the leader then sends it
//!    a snapshot and the log);
//! 2. once every voter the layout names is a member and caught up (within
//!    `CATCH_UP_MAX_LAG_ENTRIES` of the leader's log), the voters are replaced in one joint-consensus
//!    change (openraft commits the joint configuration, then the new one), old voters kept as
//!    learners;
//! 3. members the layout no longer names are removed, and a member whose address changed gets it.
//!
//! So replacing a lost voter is a layout change (`ignifuge admin layout apply`): name a learner,
//! or a new empty node, as the voter instead of the lost one; the group promotes it when it has
//! caught up and removes the lost one. The change needs a majority of the current voters, like any
//! write.

use crate::{RaftMetadata, RaftNodeId};
use ignifuge_meta::{Answer, Query};
use ignifuge_rpc::ClusterConfig;
use openraft::{BasicNode, ChangeMembers};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How often the leader compares the membership with the layout.
pub const MEMBERSHIP_CHECK_INTERVAL_MS: u64 = 2_000;
/// A learner is promoted only when it is at most this many entries behind the leader's log.
pub const CATCH_UP_MAX_LAG_ENTRIES: u64 = 100;

/// The membership a layout asks for: Raft id -> internode address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredMembership {
    pub voters: BTreeMap<RaftNodeId, String>,
    pub learners: BTreeMap<RaftNodeId, String>,
}

impl DesiredMembership {
    pub fn of(layout: &ClusterConfig) -> Self {
        let map = |members: Vec<(u64, &ignifuge_rpc::NodeEndpoint)>| {
            members.into_iter().map(|(id, n)| (id, n.address.to_string())).collect()
        };
        Self { voters: map(layout.voters()), learners: map(layout.learners()) }
    }
}

/// The next step from the current membership towards the desired one, or None when they agree
/// (or a step must wait). Pure, so every case is unit-tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipStep {
    AddLearner(RaftNodeId, String),
    ReplaceVoters(BTreeSet<RaftNodeId>),
    RemoveNodes(BTreeSet<RaftNodeId>),
    SetAddresses(BTreeMap<RaftNodeId, String>),
}

/// What the leader knows of the group right now.
pub struct CurrentMembership {
    pub voters: BTreeSet<RaftNodeId>,
    /// Every member (voters and learners) and its address.
    pub nodes: BTreeMap<RaftNodeId, String>,
    /// Each member's last replicated log index, as the leader sees it.
    pub matched: BTreeMap<RaftNodeId, Option<u64>>,
    pub leader_last_log: Option<u64>,
}

pub fn next_step(current: &CurrentMembership, desired: &DesiredMembership) -> Option<MembershipStep> {
    let wanted: BTreeMap<RaftNodeId, &String> =
        desired.voters.iter().chain(&desired.learners).map(|(i, a)| (*i, a)).collect();
    if let Some((id, address)) = wanted.iter().find(|(id, _)| !current.nodes.contains_key(id)) {
        return Some(MembershipStep::AddLearner(*id, (*address).clone()));
    }
    let desired_voters: BTreeSet<RaftNodeId> = desired.voters.keys().copied().collect();
    if desired_voters != current.voters && !desired_voters.is_empty() {
        let caught_up = |id: &RaftNodeId| {
            current.voters.contains(id)
                || match (current.matched.get(id).copied().flatten(), current.leader_last_log) {
                    (Some(matched), Some(last)) => last.saturating_sub(matched) <= CATCH_UP_MAX_LAG_ENTRIES,
                    (_, None) => true,
                    (None, Some(_)) => false,
                }
        };
        return desired_voters.iter().all(caught_up).then_some(MembershipStep::ReplaceVoters(desired_voters));
    }
    let unwanted: BTreeSet<RaftNodeId> =
        current.nodes.keys().filter(|id| !wanted.contains_key(id) && !current.voters.contains(id)).copied().collect();
    if !unwanted.is_empty() {
        return Some(MembershipStep::RemoveNodes(unwanted));
    }
    let moved: BTreeMap<RaftNodeId, String> = wanted
        .iter()
        .filter(|(id, address)| current.nodes.get(id).is_some_and(|a| a != **address))
        .map(|(id, address)| (*id, (*address).clone()))
        .collect();
    (!moved.is_empty()).then_some(MembershipStep::SetAddresses(moved))
}

impl RaftMetadata {
    /// The layout in this replica's applied state (not linearizable; the leader's is current).
    fn stored_layout(&self) -> Option<ClusterConfig> {
        match self.machine.query(Query::Layout) {
            Ok(Answer::Layout(Some(record))) => match ClusterConfig::parse(&record.document) {
                Ok(layout) => Some(layout),
                Err(e) => {
                    tracing::error!(version = %record.version, error = %e, "the stored cluster layout does not parse");
                    None
                }
            },
            _ => None,
        }
    }

    fn current_membership(&self) -> Option<CurrentMembership> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(m.id) {
            return None;
        }
        let membership = m.membership_config.membership();
        if membership.get_joint_config().len() > 1 {
            return None; // a change is still being committed
        }
        Some(CurrentMembership {
            voters: membership.voter_ids().collect(),
            nodes: membership.nodes().map(|(id, n)| (*id, n.addr.clone())).collect(),
            matched: m
                .replication
                .map(|r| r.into_iter().map(|(id, l)| (id, l.map(|l| l.index))).collect())
                .unwrap_or_default(),
            leader_last_log: m.last_log_index,
        })
    }

    /// One comparison of the membership with the stored layout, and at most one step.
    /// `own_address` is where this replica listens: as leader it is reachable only there, so the
    /// membership lists it at that address whatever the layout says (a node moved before the
    /// layout did would otherwise lead at an address every follower redirects clients to in vain,
    /// and no client could ever reach it to change the layout).
    pub async fn keep_membership_once(&self, own_address: &str) -> Result<Option<MembershipStep>, String> {
        let (Some(current), Some(layout)) = (self.current_membership(), self.stored_layout()) else {
            return Ok(None);
        };
        let mut desired = DesiredMembership::of(&layout);
        let me = self.raft.metrics().borrow().id;
        for members in [&mut desired.voters, &mut desired.learners] {
            if let Some(address) = members.get_mut(&me) {
                *address = own_address.to_string();
            }
        }
        let Some(step) = next_step(&current, &desired) else {
            return Ok(None);
        };
        tracing::info!(?step, "changing the metadata membership to match the cluster layout");
        let node = |addr: &String| BasicNode { addr: addr.clone() };
        let done = match &step {
            MembershipStep::AddLearner(id, addr) => self.raft.add_learner(*id, node(addr), false).await,
            MembershipStep::ReplaceVoters(voters) => {
                self.raft.change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), true).await
            }
            MembershipStep::RemoveNodes(ids) => {
                self.raft.change_membership(ChangeMembers::RemoveNodes(ids.clone()), false).await
            }
            MembershipStep::SetAddresses(nodes) => {
                let nodes = nodes.iter().map(|(id, a)| (*id, node(a))).collect();
                self.raft.change_membership(ChangeMembers::SetNodes(nodes), false).await
            }
        };
        done.map(|_| Some(step)).map_err(|e| e.to_string())
    }

    /// Runs `keep_membership_once` from start-up on, until this replica's Raft stops (every
    /// replica runs it; only the leader acts). `own_address` is where this replica listens now.
    pub async fn keep_membership(self: Arc<Self>, own_address: String) {
        while self.running() {
            if let Err(e) = self.keep_membership_once(&own_address).await {
                tracing::warn!(error = %e, "could not change the metadata membership; will retry");
            }
            tokio::time::sleep(std::time::Duration::from_millis(MEMBERSHIP_CHECK_INTERVAL_MS)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(id: u64) -> String {
        format!("127.0.0.1:{}", 7000 + id)
    }

    fn current(voters: &[u64], learners: &[u64], matched: &[(u64, u64)], last: u64) -> CurrentMembership {
        CurrentMembership {
            voters: voters.iter().copied().collect(),
            nodes: voters.iter().chain(learners).map(|id| (*id, addr(*id))).collect(),
            matched: matched.iter().map(|(id, i)| (*id, Some(*i))).collect(),
            leader_last_log: Some(last),
        }
    }

    fn desired(voters: &[u64], learners: &[u64]) -> DesiredMembership {
        DesiredMembership {
            voters: voters.iter().map(|id| (*id, addr(*id))).collect(),
            learners: learners.iter().map(|id| (*id, addr(*id))).collect(),
        }
    }

    #[test]
    fn an_equal_membership_needs_nothing() {
        assert_eq!(next_step(&current(&[1, 2, 3], &[4], &[], 10), &desired(&[1, 2, 3], &[4])), None);
    }

    #[test]
    fn new_learners_are_added_before_anything_else() {
        let step = next_step(&current(&[1, 2, 3], &[], &[], 10), &desired(&[1, 2, 4], &[5]));
        assert_eq!(step, Some(MembershipStep::AddLearner(4, addr(4))));
    }

    #[test]
    fn a_learner_is_promoted_only_once_caught_up() {
        let want = desired(&[1, 2, 4], &[]);
        assert_eq!(next_step(&current(&[1, 2, 3], &[4], &[(4, 500)], 1000), &want), None);
        assert_eq!(
            next_step(&current(&[1, 2, 3], &[4], &[(4, 950)], 1000), &want),
            Some(MembershipStep::ReplaceVoters([1, 2, 4].into()))
        );
    }

    #[test]
    fn a_replaced_voter_is_kept_as_a_learner_and_then_removed() {
        // After ReplaceAllVoters with retain, 3 is a learner the layout no longer names.
        let step = next_step(&current(&[1, 2, 4], &[3], &[], 10), &desired(&[1, 2, 4], &[]));
        assert_eq!(step, Some(MembershipStep::RemoveNodes([3].into())));
    }

    #[test]
    fn a_moved_member_gets_its_new_address() {
        let mut want = desired(&[1, 2, 3], &[]);
        want.voters.insert(2, "127.0.0.2:9000".into());
        let step = next_step(&current(&[1, 2, 3], &[], &[], 10), &want);
        assert_eq!(step, Some(MembershipStep::SetAddresses([(2, "127.0.0.2:9000".to_string())].into())));
    }

    #[test]
    fn a_layout_without_voters_never_empties_the_group() {
        assert_eq!(next_step(&current(&[1, 2, 3], &[], &[], 10), &desired(&[], &[])), None);
    }
}
