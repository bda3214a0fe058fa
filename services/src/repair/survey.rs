//! Deciding, without I/O, what state a stripe is in and where its shards should go: which shards
//! are present (on a live node that really holds the file), its remaining margin, whether to
//! repair it now or wait for a node that may come back, and the target node of every shard to
//! (re)write.

use ignifuge_meta::StripeRecord;
use ignifuge_placement::{FailureBudget, Geometry, Slot, Topology};
use ignifuge_types::{DatacenterId, DiskIndex, NodeId};
use std::collections::HashMap;

/// What the repair service knows of a node this round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeState {
    Live,
    /// Unreachable for less than the down-out interval: it may come back with its shards.
    Down,
    /// Unreachable for longer, or not in the topology: its shards are lost.
    Out,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShardState {
    Present,
    /// On a node that is down but not yet out.
    Waiting,
    Missing,
}

/// How many more failures a stripe (or an object: its worst stripe) can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Margin {
    /// Fewer than k shards found: not readable now.
    Unreadable,
    /// Below the class's budget; `n` more shard losses can be tolerated (0: one from loss).
    Spare(u32),
    /// Meets the class's full budget.
    Full,
}

impl Margin {
    pub(crate) fn label(self) -> String {
        match self {
            Margin::Unreadable => "unreadable".into(),
            Margin::Spare(n) => format!("spare-{n}"),
            Margin::Full => "full".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    None,
    /// Below budget only because of nodes that may come back.
    Wait,
    Repair,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StripeSurvey {
    pub states: Vec<ShardState>,
    pub margin: Margin,
    pub action: Action,
}

/// The slot of a node (its datacenter), or None when the node left the topology.
pub(crate) fn slot_of(topology: &Topology, node: &NodeId) -> Option<Slot> {
    topology.datacenters.iter().find_map(|dc| {
        dc.nodes.iter().any(|n| &n.id == node).then(|| Slot {
            datacenter: dc.id.clone(),
            node: node.clone(),
            disk: DiskIndex(0),
        })
    })
}

fn meets(topology: &Topology, geometry: Geometry, budget: FailureBudget, nodes: &[&NodeId]) -> bool {
    let slots: Vec<Slot> = nodes.iter().filter_map(|n| slot_of(topology, n)).collect();
    ignifuge_placement::check_survivability(topology, geometry, &slots, budget).meets_budget
}

/// Classifies one stripe. `held(node, i)` says whether the node's inventory lists shard `i`.
pub(crate) fn survey_stripe(
    topology: &Topology,
    geometry: Geometry,
    budget: FailureBudget,
    record: &StripeRecord,
    held: impl Fn(&NodeId, usize) -> bool,
    node_state: impl Fn(&NodeId) -> NodeState,
) -> StripeSurvey {
    let states: Vec<ShardState> = record
        .shards
        .iter()
        .enumerate()
        .map(|(i, shard)| match node_state(&shard.node) {
            NodeState::Live if held(&shard.node, i) => ShardState::Present,
            NodeState::Down => ShardState::Waiting,
            _ => ShardState::Missing,
        })
        .collect();
    let present: Vec<&NodeId> =
        record.shards.iter().zip(&states).filter(|(_, s)| **s == ShardState::Present).map(|(r, _)| &r.node).collect();
    let k = geometry.data_shards as usize;
    let margin = if present.len() < k {
        Margin::Unreadable
    } else if meets(topology, geometry, budget, &present) {
        Margin::Full
    } else {
        Margin::Spare((present.len() - k) as u32)
    };
    let missing = states.contains(&ShardState::Missing);
    let waiting = states.contains(&ShardState::Waiting);
    let action = if present.len() < k {
        // Nothing can be rebuilt now; a node coming back may make it readable again.
        if waiting { Action::Wait } else { Action::None }
    } else if missing {
        Action::Repair
    } else if waiting {
        Action::Wait
    } else if margin != Margin::Full || record.debt {
        Action::Repair // every shard present but badly spread (debt written during an outage)
    } else {
        Action::None
    };
    StripeSurvey { states, margin, action }
}

/// The node each shard should be (re)written to, or None to leave it where it is. Missing shards
/// go to their ideal slot when its node is live and holds no other shard of the stripe, else to
/// a live node of the same datacenter, else to any live node (doubling up only as a last resort:
/// a doubled-up shard still beats a missing one). Present shards are moved only when the stripe
/// is below its budget (or carries debt) and the move lands on a node holding nothing of it.
pub(crate) fn plan_targets(
    topology: &Topology,
    ideal: &[Slot],
    record: &StripeRecord,
    survey: &StripeSurvey,
    node_state: impl Fn(&NodeId) -> NodeState,
) -> Vec<Option<NodeId>> {
    let n = record.shards.len();
    let respread = survey.margin != Margin::Full || record.debt;
    let mut targets: Vec<Option<NodeId>> = vec![None; n];
    let mut load: HashMap<NodeId, usize> = HashMap::new();
    for (shard, state) in record.shards.iter().zip(&survey.states) {
        if *state != ShardState::Missing {
            *load.entry(shard.node.clone()).or_default() += 1;
        }
    }
    let live = |node: &NodeId| node_state(node) == NodeState::Live;
    let free = |load: &HashMap<NodeId, usize>, node: &NodeId| live(node) && load.get(node).copied().unwrap_or(0) == 0;
    // Candidates in the stripe's own pseudo-random slot order, then the rest of the topology, so
    // that fallbacks spread over the nodes instead of always landing on the first one.
    let mut order: Vec<(DatacenterId, NodeId)> = ideal.iter().map(|s| (s.datacenter.clone(), s.node.clone())).collect();
    for dc in &topology.datacenters {
        for node in &dc.nodes {
            if !order.iter().any(|(_, n)| n == &node.id) {
                order.push((dc.id.clone(), node.id.clone()));
            }
        }
    }
    // Missing shards first, in index order.
    for i in (0..n).filter(|&i| survey.states[i] == ShardState::Missing) {
        let want = ideal.get(i);
        let same_dc = |dc: &DatacenterId| want.is_some_and(|w| &w.datacenter == dc);
        let choice = want
            .map(|w| w.node.clone())
            .filter(|node| free(&load, node))
            .or_else(|| order.iter().find(|(dc, node)| same_dc(dc) && free(&load, node)).map(|(_, n)| n.clone()))
            .or_else(|| order.iter().find(|(_, node)| free(&load, node)).map(|(_, n)| n.clone()))
            .or_else(|| {
                // Doubling up: the least loaded live node, of the same datacenter if possible
                // (the stripe keeps its spread over datacenters).
                order
                    .iter()
                    .filter(|(_, node)| live(node))
                    .min_by_key(|(dc, node)| (load.get(node).copied().unwrap_or(0), !same_dc(dc)))
                    .map(|(_, n)| n.clone())
            });
        if let Some(node) = choice {
            *load.entry(node.clone()).or_default() += 1;
            targets[i] = Some(node);
        }
    }
    if !respread {
        return targets;
    }
    // Then present shards that share a node with another shard of the stripe, or sit off their
    // ideal slot while it is free.
    for i in (0..n).filter(|&i| survey.states[i] == ShardState::Present) {
        let current = &record.shards[i].node;
        let Some(want) = ideal.get(i) else { continue };
        if &want.node == current {
            continue;
        }
        let doubled = load.get(current).copied().unwrap_or(0) > 1;
        let choice = if free(&load, &want.node) {
            Some(want.node.clone())
        } else if doubled {
            order
                .iter()
                .filter(|(_, node)| free(&load, node))
                .min_by_key(|(dc, _)| *dc != want.datacenter)
                .map(|(_, n)| n.clone())
        } else {
            None
        };
        if let Some(node) = choice {
            *load.entry(current.clone()).or_default() -= 1;
            *load.entry(node.clone()).or_default() += 1;
            targets[i] = Some(node);
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_meta::ShardRecord;
    use ignifuge_placement::{Datacenter, Node};

    fn topology() -> Topology {
        Topology {
            datacenters: (1..=3)
                .map(|d| Datacenter {
                    id: DatacenterId::new(format!("dc{d}")),
                    nodes: (1..=3)
                        .map(|n| Node { id: NodeId::new(format!("dc{d}-n{n}")), capacity_weight: 1, disks: 1 })
                        .collect(),
                })
                .collect(),
        }
    }

    const GEOMETRY: Geometry = Geometry { data_shards: 5, parity_shards: 4, shards_per_datacenter: 3 };
    const BUDGET: FailureBudget = FailureBudget { datacenters: 1, nodes: 1 };

    fn nodes() -> Vec<NodeId> {
        topology().datacenters.iter().flat_map(|dc| dc.nodes.iter().map(|n| n.id.clone())).collect()
    }

    fn record(nodes: &[NodeId]) -> StripeRecord {
        StripeRecord {
            data_len: 10,
            shards: nodes.iter().map(|n| ShardRecord { node: n.clone(), blake3: String::new() }).collect(),
            debt: false,
        }
    }

    fn ideal(nodes: &[NodeId]) -> Vec<Slot> {
        nodes.iter().map(|n| slot_of(&topology(), n).unwrap()).collect()
    }

    fn dc_down(state: NodeState) -> impl Fn(&NodeId) -> NodeState {
        move |n: &NodeId| if n.0.starts_with("dc2") { state } else { NodeState::Live }
    }

    #[test]
    fn a_well_spread_stripe_needs_nothing() {
        let r = record(&nodes());
        let s = survey_stripe(&topology(), GEOMETRY, BUDGET, &r, |_, _| true, |_| NodeState::Live);
        assert_eq!((s.margin, s.action), (Margin::Full, Action::None));
    }

    #[test]
    fn a_datacenter_down_waits_then_is_rebuilt_on_the_survivors_once_out() {
        let r = record(&nodes());
        let topology = topology();
        let s = survey_stripe(&topology, GEOMETRY, BUDGET, &r, |_, _| true, dc_down(NodeState::Down));
        assert_eq!((s.margin, s.action), (Margin::Spare(1), Action::Wait));
        let s = survey_stripe(&topology, GEOMETRY, BUDGET, &r, |_, _| true, dc_down(NodeState::Out));
        assert_eq!((s.margin, s.action), (Margin::Spare(1), Action::Repair));
        let targets = plan_targets(&topology, &ideal(&nodes()), &r, &s, dc_down(NodeState::Out));
        // The three lost shards double up on live nodes of the other datacenters (debt).
        let placed: Vec<&NodeId> = targets.iter().flatten().collect();
        assert_eq!(placed.len(), 3);
        assert!(placed.iter().all(|n| !n.0.starts_with("dc2")));
        assert!(targets[..3].iter().all(Option::is_none) && targets[6..].iter().all(Option::is_none));
    }

    #[test]
    fn a_lost_node_is_doubled_up_in_its_own_datacenter_following_the_stripe_order() {
        let all = nodes();
        let r = record(&all);
        let state = |n: &NodeId| if n.0 == "dc2-n3" { NodeState::Out } else { NodeState::Live };
        let s = survey_stripe(&topology(), GEOMETRY, BUDGET, &r, |_, _| true, state);
        // Ideal order rotated: the first dc2 node in slot order takes the lost shard.
        let mut ideal_order = ideal(&all);
        ideal_order.rotate_left(4);
        let mut rotated = r.clone();
        rotated.shards.rotate_left(4);
        let targets = plan_targets(&topology(), &ideal_order, &rotated, &s_rotated(&s), state);
        let placed: Vec<&NodeId> = targets.iter().flatten().collect();
        assert_eq!(placed.len(), 1);
        assert!(placed[0].0.starts_with("dc2"), "doubled up in the lost node's datacenter: {placed:?}");
        assert_eq!(
            placed[0].0, "dc2-n2",
            "the first dc2 node in this stripe's slot order, not the topology's: {placed:?}"
        );
    }

    fn s_rotated(s: &StripeSurvey) -> StripeSurvey {
        let mut s = s.clone();
        s.states.rotate_left(4);
        s
    }

    #[test]
    fn a_wiped_node_gets_its_shard_back_and_a_debt_stripe_is_spread_again() {
        let all = nodes();
        let r = record(&all);
        // dc1-n2 came back empty: its shard is missing, its ideal slot is free again.
        let s = survey_stripe(&topology(), GEOMETRY, BUDGET, &r, |n, _| n.0 != "dc1-n2", |_| NodeState::Live);
        assert_eq!((s.margin, s.action), (Margin::Spare(3), Action::Repair));
        let targets = plan_targets(&topology(), &ideal(&all), &r, &s, |_| NodeState::Live);
        assert_eq!(targets.iter().flatten().collect::<Vec<_>>(), [&all[1]]);
        assert_eq!(targets[1].as_ref(), Some(&all[1]));

        // Written during an outage of dc2: shards 3..6 doubled up on dc1 and dc3 nodes.
        let mut doubled = all.clone();
        doubled[3] = all[0].clone();
        doubled[4] = all[6].clone();
        doubled[5] = all[7].clone();
        let mut r = record(&doubled);
        r.debt = true;
        let s = survey_stripe(&topology(), GEOMETRY, BUDGET, &r, |_, _| true, |_| NodeState::Live);
        assert_eq!(s.action, Action::Repair);
        assert_ne!(s.margin, Margin::Full);
        let targets = plan_targets(&topology(), &ideal(&all), &r, &s, |_| NodeState::Live);
        assert_eq!(
            targets,
            [None, None, None, Some(all[3].clone()), Some(all[4].clone()), Some(all[5].clone()), None, None, None]
        );
    }

    #[test]
    fn fewer_than_k_shards_is_unreadable_and_waits_for_nodes_that_may_return() {
        let all = nodes();
        let r = record(&all);
        let down = ["dc1-n1", "dc1-n2", "dc1-n3", "dc2-n1", "dc2-n2"];
        let state = |n: &NodeId| if down.contains(&n.0.as_str()) { NodeState::Down } else { NodeState::Live };
        let s = survey_stripe(&topology(), GEOMETRY, BUDGET, &r, |_, _| true, state);
        assert_eq!((s.margin, s.action), (Margin::Unreadable, Action::Wait));
        assert!(
            Margin::Unreadable < Margin::Spare(0)
                && Margin::Spare(0) < Margin::Spare(2)
                && Margin::Spare(9) < Margin::Full
        );
    }
}
