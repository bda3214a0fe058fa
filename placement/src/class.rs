//! Storage classes, failure budgets and the Reed-Solomon geometry that meets a budget.
//!
//! The model: a stripe of `k` data and `m` parity shards puts exactly `s` shards in each of the
//! `D` datacenters, each on its own node. Losing `d` whole datacenters then loses `d*s` shards,
//! and each further lost node at most one more, so surviving `d` datacenters plus `n` more nodes
//! needs `m >= d*s + n` and leaves `k = D*s - m >= 1` data shards.

use crate::{PlacementError, Topology};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most shards one stripe may have. Bounds the fan-out of a PUT, the cost of a GET that has to
/// reconstruct, and the matrices the codec builds.
pub const MAX_TOTAL_SHARDS: u32 = 32;

/// What a storage class promises to survive: the loss of `datacenters` whole datacenters plus
/// `nodes` more nodes anywhere else, all at the same time.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct FailureBudget {
    pub datacenters: u32,
    pub nodes: u32,
}

impl FailureBudget {
    pub const fn new(datacenters: u32, nodes: u32) -> Self {
        Self { datacenters, nodes }
    }
}

impl fmt::Display for FailureBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u32| if n == 1 { "" } else { "s" };
        match (self.datacenters, self.nodes) {
            (0, 0) => write!(f, "no failure"),
            (0, n) => write!(f, "{n} node{}", plural(n)),
            (d, 0) => write!(f, "{d} datacenter{}", plural(d)),
            (d, n) => write!(f, "{d} datacenter{} + {n} more node{}", plural(d), plural(n)),
        }
    }
}

/// A Reed-Solomon geometry and its spread: `data_shards + parity_shards` shards per stripe,
/// exactly `shards_per_datacenter` of them in every datacenter.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub data_shards: u32,
    pub parity_shards: u32,
    pub shards_per_datacenter: u32,
}

impl Geometry {
    /// `k + m`. Saturates rather than overflows on nonsense input; `check_shape` rejects it.
    pub fn total_shards(&self) -> u32 {
        self.data_shards.saturating_add(self.parity_shards)
    }

    /// Bytes stored per byte of data: `(k + m) / k`.
    pub fn overhead(&self) -> f64 {
        f64::from(self.total_shards()) / f64::from(self.data_shards)
    }

    /// Checks the geometry on its own, before any topology is involved.
    pub fn check_shape(&self) -> Result<(), PlacementError> {
        let invalid = |reason: String| Err(PlacementError::InvalidGeometry { geometry: *self, reason });
        if self.data_shards == 0 {
            return invalid("it needs at least one data shard".into());
        }
        if self.shards_per_datacenter == 0 {
            return invalid("it needs at least one shard per datacenter".into());
        }
        let total = u64::from(self.data_shards) + u64::from(self.parity_shards);
        if total > u64::from(MAX_TOTAL_SHARDS) {
            return invalid(format!("{total} shards is more than the maximum of {MAX_TOTAL_SHARDS}"));
        }
        if !self.total_shards().is_multiple_of(self.shards_per_datacenter) {
            return invalid(format!(
                "{} shards cannot be split evenly into {} per datacenter",
                self.total_shards(),
                self.shards_per_datacenter
            ));
        }
        Ok(())
    }

    /// Overhead as an exact fraction, for comparisons that must not depend on float rounding.
    fn overhead_less_than(&self, other: &Geometry) -> bool {
        u64::from(self.total_shards()) * u64::from(other.data_shards)
            < u64::from(other.total_shards()) * u64::from(self.data_shards)
    }
}

impl fmt::Display for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{} ({} per datacenter)", self.data_shards, self.parity_shards, self.shards_per_datacenter)
    }
}

/// A named durability promise. `pinned` replaces the derived geometry with the operator's choice,
/// which is still verified against the budget on every topology it is used with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StorageClass {
    pub name: String,
    pub budget: FailureBudget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Geometry>,
}

impl StorageClass {
    /// Survives one whole datacenter plus one more node: the default class.
    pub fn standard() -> Self {
        Self { name: "standard".into(), budget: FailureBudget::new(1, 1), pinned: None }
    }

    /// Survives one whole datacenter.
    pub fn site() -> Self {
        Self { name: "site".into(), budget: FailureBudget::new(1, 0), pinned: None }
    }
}

/// The TOML shape of a class: `[[classes]] name = "standard" datacenters = 1 nodes = 1`, with an
/// optional `pinned = { data_shards = 5, parity_shards = 4, shards_per_datacenter = 3 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassEntry {
    name: String,
    datacenters: u32,
    nodes: u32,
    #[serde(default)]
    pinned: Option<Geometry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassesFile {
    #[serde(default)]
    classes: Vec<ClassEntry>,
    /// Classes may live in the topology file; the topology itself is read by `Topology::from_toml_str`.
    #[serde(default)]
    #[allow(dead_code)]
    datacenters: Option<toml::Value>,
}

/// Reads the `[[classes]]` of a classes file or of a topology file. A file without classes gives
/// an empty list. Names must be unique and non-empty; pinned geometries must be well formed.
pub fn classes_from_toml_str(s: &str) -> Result<Vec<StorageClass>, PlacementError> {
    let file: ClassesFile = toml::from_str(s)?;
    let mut classes: Vec<StorageClass> = Vec::with_capacity(file.classes.len());
    for entry in file.classes {
        if entry.name.trim().is_empty() {
            return Err(PlacementError::InvalidClass { name: entry.name, reason: "the name is empty".into() });
        }
        if classes.iter().any(|class| class.name == entry.name) {
            return Err(PlacementError::DuplicateClass(entry.name));
        }
        if let Some(geometry) = entry.pinned {
            geometry
                .check_shape()
                .map_err(|e| PlacementError::InvalidClass { name: entry.name.clone(), reason: e.to_string() })?;
        }
        classes.push(StorageClass {
            name: entry.name,
            budget: FailureBudget::new(entry.datacenters, entry.nodes),
            pinned: entry.pinned,
        });
    }
    Ok(classes)
}

/// The class called `name`, or an error that lists the known ones.
pub fn find_class<'a>(classes: &'a [StorageClass], name: &str) -> Result<&'a StorageClass, PlacementError> {
    classes.iter().find(|class| class.name == name).ok_or_else(|| PlacementError::UnknownClass {
        name: name.to_string(),
        known: if classes.is_empty() {
            "none".to_string()
        } else {
            classes.iter().map(|class| class.name.as_str()).collect::<Vec<_>>().join(", ")
        },
    })
}

/// The cheapest geometry (lowest `(k+m)/k`) that survives `budget` on `topology`.
///
/// Every `s` from 1 to the smallest datacenter's node count (and `D*s <= MAX_TOTAL_SHARDS`) is
/// tried with `m = budget.datacenters*s + budget.nodes`, `k = D*s - m`. Ties in overhead go to the
/// larger stripe: at the same cost it survives more node failures when no datacenter is lost
/// (3x3 with budget "1 datacenter" gives 6+3, which survives any 3 nodes, not 2+1, which survives 1).
///
/// Refuses when no geometry exists, and also when the cheapest one costs 2x or more: at that point
/// erasure coding is no cheaper than replication (2 datacenters surviving the loss of one is
/// exactly the 2x case). Such a geometry can still be used by pinning it in the class, which
/// `verify_geometry` accepts: the choice to pay 2x or more should be made by a person.
pub fn derive_geometry(topology: &Topology, budget: FailureBudget) -> Result<Geometry, PlacementError> {
    let best = cheapest_geometry(topology, budget)?;
    if best.data_shards <= best.parity_shards {
        return Err(PlacementError::NotCheaperThanReplication(not_cheaper_message(topology, budget, best)));
    }
    Ok(best)
}

/// The cheapest geometry meeting the budget, whatever its overhead.
fn cheapest_geometry(topology: &Topology, budget: FailureBudget) -> Result<Geometry, PlacementError> {
    topology.validate()?;
    let datacenters = topology.datacenters.len() as u32;
    if budget.datacenters >= datacenters {
        return Err(PlacementError::BudgetExceedsDatacenters { budget, datacenters });
    }
    let max_per_datacenter = topology.min_nodes_per_datacenter().min(MAX_TOTAL_SHARDS / datacenters);
    let mut best: Option<Geometry> = None;
    for per_datacenter in 1..=max_per_datacenter {
        let total = datacenters * per_datacenter;
        let parity = u64::from(budget.datacenters) * u64::from(per_datacenter) + u64::from(budget.nodes);
        if parity >= u64::from(total) {
            continue;
        }
        let candidate = Geometry {
            data_shards: total - parity as u32,
            parity_shards: parity as u32,
            shards_per_datacenter: per_datacenter,
        };
        let better = match &best {
            None => true,
            Some(current) => {
                candidate.overhead_less_than(current)
                    || (!current.overhead_less_than(&candidate) && candidate.total_shards() > current.total_shards())
            }
        };
        if better {
            best = Some(candidate);
        }
    }
    best.ok_or_else(|| PlacementError::BudgetExceedsNodes(budget_exceeds_nodes_message(topology, budget)))
}

fn budget_exceeds_nodes_message(topology: &Topology, budget: FailureBudget) -> String {
    let datacenters = topology.datacenters.len() as u32;
    let min_nodes = topology.min_nodes_per_datacenter();
    let by_shards = MAX_TOTAL_SHARDS / datacenters;
    let max_per_datacenter = min_nodes.min(by_shards);
    let limit = if max_per_datacenter == min_nodes {
        let smallest = topology
            .datacenters
            .iter()
            .find(|dc| dc.nodes.len() as u32 == min_nodes)
            .map(|dc| dc.id.to_string())
            .unwrap_or_default();
        format!("the smallest datacenter, {smallest}, has {min_nodes} node(s)")
    } else {
        format!("a stripe has at most {MAX_TOTAL_SHARDS} shards")
    };
    let surviving = datacenters - budget.datacenters;
    format!(
        "cannot survive {budget} on {datacenters} datacenter(s): a stripe has at most {max_per_datacenter} shard(s) \
         per datacenter ({limit}), so the {surviving} datacenter(s) left after losing {lost} hold at most {left} \
         shard(s), one per node, and losing {nodes} more node(s) leaves none to read; add nodes or lower the budget",
        lost = budget.datacenters,
        left = surviving * max_per_datacenter,
        nodes = budget.nodes,
    )
}

fn not_cheaper_message(topology: &Topology, budget: FailureBudget, best: Geometry) -> String {
    let datacenters = topology.datacenters.len();
    let lead = if datacenters == 2 && budget.datacenters == 1 {
        "two datacenters cannot survive the loss of one at under 2x; use replication or add a datacenter".to_string()
    } else {
        format!(
            "{datacenters} datacenter(s) of at least {} node(s) cannot survive {budget} at under 2x; \
             use replication or add {}",
            topology.min_nodes_per_datacenter(),
            if budget.datacenters > 0 { "a datacenter" } else { "nodes" }
        )
    };
    let replicas = match replica_count(budget, topology) {
        Ok(copies) => format!("replication needs {copies} copies ({copies}.00x)"),
        Err(_) => "replication cannot meet this budget either".to_string(),
    };
    format!(
        "{lead}. The cheapest erasure-coded geometry is {best} at {:.2}x and {replicas}; \
         to accept {best} anyway, pin it in the storage class",
        best.overhead()
    )
}

/// Checks that `geometry` can be placed on `topology` and survives `budget` there: the shard count
/// matches the datacenters, every datacenter has a node for each of its shards, and
/// `m >= budget.datacenters * s + budget.nodes`.
pub fn verify_geometry(topology: &Topology, geometry: Geometry, budget: FailureBudget) -> Result<(), PlacementError> {
    geometry.check_shape()?;
    topology.validate()?;
    check_fits(topology, geometry)?;
    let datacenters = topology.datacenters.len() as u32;
    if budget.datacenters >= datacenters {
        return Err(PlacementError::BudgetExceedsDatacenters { budget, datacenters });
    }
    let per_datacenter = geometry.shards_per_datacenter;
    let left_after_datacenters = (datacenters - budget.datacenters) * per_datacenter;
    let worst_case_remaining = left_after_datacenters.saturating_sub(budget.nodes);
    if worst_case_remaining < geometry.data_shards {
        return Err(PlacementError::GeometryTooWeak {
            geometry,
            budget,
            reason: format!(
                "losing {lost} datacenter(s) leaves {left_after_datacenters} shards and losing {nodes} more node(s) \
                 leaves {worst_case_remaining}, fewer than the {k} needed; it needs at least {needed} parity shards",
                lost = budget.datacenters,
                nodes = budget.nodes,
                k = geometry.data_shards,
                needed = budget.datacenters * per_datacenter + budget.nodes,
            ),
        });
    }
    Ok(())
}

/// Shape checks shared with `select_slots`: `D*s` shards, and `s` nodes in every datacenter.
pub(crate) fn check_fits(topology: &Topology, geometry: Geometry) -> Result<(), PlacementError> {
    let datacenters = topology.datacenters.len() as u32;
    if u64::from(datacenters) * u64::from(geometry.shards_per_datacenter) != u64::from(geometry.total_shards()) {
        return Err(PlacementError::GeometryDoesNotFitTopology { geometry, datacenters });
    }
    for datacenter in &topology.datacenters {
        if (datacenter.nodes.len() as u32) < geometry.shards_per_datacenter {
            return Err(PlacementError::NotEnoughNodes {
                datacenter: datacenter.id.clone(),
                nodes: datacenter.nodes.len() as u32,
                needed: geometry.shards_per_datacenter,
            });
        }
    }
    Ok(())
}

/// How many whole copies a small object needs to survive `budget`, copies spread as evenly as
/// possible over all datacenters (each on its own node). Even spreading is optimal: the worst case
/// removes the fullest datacenters, and an even spread keeps the fullest as empty as possible.
/// For 3 datacenters and "1 datacenter + 1 node" that is 3 copies, one per datacenter; for 2
/// datacenters it is 4, two per datacenter.
///
/// (The argument order, budget first, follows the gateway's call sites.)
pub fn replica_count(budget: FailureBudget, topology: &Topology) -> Result<u32, PlacementError> {
    topology.validate()?;
    let datacenters = topology.datacenters.len() as u32;
    if budget.datacenters >= datacenters {
        return Err(PlacementError::BudgetExceedsDatacenters { budget, datacenters });
    }
    let min_nodes = topology.min_nodes_per_datacenter();
    for copies in 1..=MAX_TOTAL_SHARDS {
        let per_datacenter_max = copies.div_ceil(datacenters);
        if per_datacenter_max > min_nodes {
            break;
        }
        if replica_worst_case_remaining(copies, datacenters, budget) >= 1 {
            return Ok(copies);
        }
    }
    Err(PlacementError::BudgetExceedsNodes(format!(
        "cannot keep a copy through {budget} with at most {max} copies spread over {datacenters} datacenter(s) \
         whose smallest has {min_nodes} node(s); add nodes or lower the budget",
        max = (datacenters * min_nodes).min(MAX_TOTAL_SHARDS),
    )))
}

/// Copies left after the worst loss the budget allows, `copies` spread evenly over `datacenters`.
fn replica_worst_case_remaining(copies: u32, datacenters: u32, budget: FailureBudget) -> u32 {
    let base = copies / datacenters;
    let fuller = copies % datacenters; // datacenters holding base + 1
    let lost_datacenters = budget.datacenters.min(datacenters);
    let from_fuller = lost_datacenters.min(fuller);
    let removed = from_fuller * (base + 1) + (lost_datacenters - from_fuller) * base;
    (copies - removed).saturating_sub(budget.nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uniform;

    fn derived(datacenters: usize, nodes: usize, budget: (u32, u32)) -> Geometry {
        derive_geometry(&uniform(datacenters, nodes), FailureBudget::new(budget.0, budget.1)).expect("derivable")
    }

    fn geometry(k: u32, m: u32, s: u32) -> Geometry {
        Geometry { data_shards: k, parity_shards: m, shards_per_datacenter: s }
    }

    #[test]
    fn three_datacenters_of_three_survive_a_site_and_a_node_with_5_plus_4() {
        let g = derived(3, 3, (1, 1));
        assert_eq!(g, geometry(5, 4, 3));
        assert!((g.overhead() - 1.8).abs() < 1e-12);
    }

    #[test]
    fn three_datacenters_of_five_use_9_plus_6() {
        let g = derived(3, 5, (1, 1));
        assert_eq!(g, geometry(9, 6, 5));
        assert!((g.overhead() - 15.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn four_datacenters_of_three_use_8_plus_4() {
        let g = derived(4, 3, (1, 1));
        assert_eq!(g, geometry(8, 4, 3));
        assert!((g.overhead() - 1.5).abs() < 1e-12);
    }

    #[test]
    fn site_only_on_three_by_three_is_6_plus_3_not_the_equally_cheap_2_plus_1() {
        let g = derived(3, 3, (1, 0));
        assert_eq!(g, geometry(6, 3, 3));
        assert!((g.overhead() - 1.5).abs() < 1e-12);
    }

    #[test]
    fn the_smallest_datacenter_bounds_the_shards_per_datacenter() {
        let mut topology = uniform(3, 5);
        topology.datacenters[1].nodes.truncate(3);
        assert_eq!(derive_geometry(&topology, FailureBudget::new(1, 1)).unwrap(), geometry(5, 4, 3));
    }

    #[test]
    fn nodes_only_budgets_work_inside_one_datacenter() {
        assert_eq!(derived(1, 6, (0, 2)), geometry(4, 2, 6));
        assert_eq!(derived(3, 3, (0, 2)), geometry(7, 2, 3));
    }

    #[test]
    fn two_datacenters_surviving_one_is_refused_with_the_reason() {
        let error = derive_geometry(&uniform(2, 3), FailureBudget::new(1, 0)).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, PlacementError::NotCheaperThanReplication(_)));
        assert!(
            message.starts_with(
                "two datacenters cannot survive the loss of one at under 2x; use replication or add a datacenter"
            ),
            "{message}"
        );
        assert!(message.contains("3+3 (3 per datacenter) at 2.00x"), "{message}");
        assert!(message.contains("replication needs 2 copies"), "{message}");

        let message = derive_geometry(&uniform(2, 3), FailureBudget::new(1, 1)).unwrap_err().to_string();
        assert!(message.contains("2+4 (3 per datacenter) at 3.00x"), "{message}");
        assert!(message.contains("replication needs 4 copies"), "{message}");
    }

    #[test]
    fn a_pinned_2x_geometry_on_two_datacenters_is_accepted_by_verification() {
        verify_geometry(&uniform(2, 3), geometry(3, 3, 3), FailureBudget::new(1, 0)).expect("meets the budget");
        verify_geometry(&uniform(2, 3), geometry(2, 4, 3), FailureBudget::new(1, 1)).expect("meets the budget");
    }

    #[test]
    fn budgets_larger_than_the_topology_are_refused() {
        let error = derive_geometry(&uniform(3, 3), FailureBudget::new(3, 0)).unwrap_err();
        assert!(matches!(error, PlacementError::BudgetExceedsDatacenters { .. }), "{error}");
        let error = derive_geometry(&uniform(3, 2), FailureBudget::new(1, 4)).unwrap_err();
        assert!(matches!(error, PlacementError::BudgetExceedsNodes(_)), "{error}");
        assert!(error.to_string().contains("the smallest datacenter, dc1, has 2 node(s)"), "{error}");
        let error = derive_geometry(&uniform(1, 3), FailureBudget::new(0, 3)).unwrap_err();
        assert!(matches!(error, PlacementError::BudgetExceedsNodes(_)), "{error}");
    }

    #[test]
    fn too_many_shards_limit_the_spread() {
        // 3 datacenters of 20 nodes: s <= 10 because 3*s <= 32.
        let g = derived(3, 20, (1, 1));
        assert_eq!(g, geometry(19, 11, 10));
        assert!(g.total_shards() <= MAX_TOTAL_SHARDS);
    }

    #[test]
    fn verification_explains_a_weak_geometry() {
        let error = verify_geometry(&uniform(3, 3), geometry(6, 3, 3), FailureBudget::new(1, 1)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("leaves 5, fewer than the 6 needed"), "{message}");
        assert!(message.contains("at least 4 parity shards"), "{message}");
        verify_geometry(&uniform(3, 3), geometry(5, 4, 3), FailureBudget::new(1, 1)).expect("meets the budget");
    }

    #[test]
    fn verification_rejects_geometries_that_do_not_fit() {
        let error = verify_geometry(&uniform(3, 3), geometry(8, 4, 4), FailureBudget::new(1, 1)).unwrap_err();
        assert!(matches!(error, PlacementError::NotEnoughNodes { needed: 4, nodes: 3, .. }), "{error}");
        let error = verify_geometry(&uniform(4, 3), geometry(5, 4, 3), FailureBudget::new(1, 1)).unwrap_err();
        assert!(matches!(error, PlacementError::GeometryDoesNotFitTopology { .. }), "{error}");
        let error = verify_geometry(&uniform(3, 3), geometry(0, 3, 1), FailureBudget::new(0, 0)).unwrap_err();
        assert!(matches!(error, PlacementError::InvalidGeometry { .. }), "{error}");
        let error = verify_geometry(&uniform(3, 20), geometry(20, 13, 11), FailureBudget::new(0, 0)).unwrap_err();
        assert!(error.to_string().contains("more than the maximum of 32"), "{error}");
        let huge = geometry(u32::MAX, u32::MAX, 1);
        assert!(huge.check_shape().is_err());
    }

    #[test]
    fn replica_counts_spread_copies_over_datacenters() {
        let count = |d, n, budget: (u32, u32)| replica_count(FailureBudget::new(budget.0, budget.1), &uniform(d, n));
        assert_eq!(count(3, 3, (1, 1)).unwrap(), 3);
        assert_eq!(count(3, 3, (1, 0)).unwrap(), 2);
        assert_eq!(count(2, 3, (1, 1)).unwrap(), 4);
        assert_eq!(count(2, 3, (1, 0)).unwrap(), 2);
        assert_eq!(count(5, 3, (1, 0)).unwrap(), 2);
        assert_eq!(count(4, 3, (2, 1)).unwrap(), 4);
        assert_eq!(count(1, 3, (0, 2)).unwrap(), 3);
        assert!(count(2, 1, (1, 1)).is_err());
        assert!(count(3, 3, (3, 0)).is_err());
    }

    #[test]
    fn classes_parse_from_a_topology_file() {
        let classes = classes_from_toml_str(include_str!("../../examples/three-dc-3x3.toml")).unwrap();
        assert_eq!(classes, vec![StorageClass::standard(), StorageClass::site()]);
        assert_eq!(find_class(&classes, "site").unwrap().budget, FailureBudget::new(1, 0));
        let message = find_class(&classes, "gold").unwrap_err().to_string();
        assert_eq!(message, "no storage class named \"gold\" (known: standard, site)");
    }

    #[test]
    fn classes_may_pin_a_geometry_and_are_checked() {
        let classes = classes_from_toml_str(
            "[[classes]]\nname = \"wide\"\ndatacenters = 1\nnodes = 1\n\
             pinned = { data_shards = 4, parity_shards = 5, shards_per_datacenter = 3 }\n",
        )
        .unwrap();
        assert_eq!(classes[0].pinned, Some(geometry(4, 5, 3)));
        let error = classes_from_toml_str(
            "[[classes]]\nname = \"bad\"\ndatacenters = 1\nnodes = 1\n\
             pinned = { data_shards = 4, parity_shards = 4, shards_per_datacenter = 3 }\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("cannot be split evenly"), "{error}");
        let error = classes_from_toml_str(
            "[[classes]]\nname = \"a\"\ndatacenters = 1\nnodes = 1\n[[classes]]\nname = \"a\"\ndatacenters = 1\nnodes = 0\n",
        )
        .unwrap_err();
        assert!(matches!(error, PlacementError::DuplicateClass(_)));
        assert!(classes_from_toml_str("[[classes]]\nname = \"a\"\ndatacenter = 1\nnodes = 1\n").is_err());
        assert!(classes_from_toml_str("").unwrap().is_empty());
    }

    #[test]
    fn budgets_read_naturally() {
        assert_eq!(FailureBudget::new(1, 1).to_string(), "1 datacenter + 1 more node");
        assert_eq!(FailureBudget::new(2, 3).to_string(), "2 datacenters + 3 more nodes");
        assert_eq!(FailureBudget::new(0, 2).to_string(), "2 nodes");
        assert_eq!(FailureBudget::new(1, 0).to_string(), "1 datacenter");
        assert_eq!(FailureBudget::new(0, 0).to_string(), "no failure");
    }
}
