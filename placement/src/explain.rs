//! `ignifuge placement explain`: what a storage class costs and survives on a topology, and why.

use crate::durability::{DurabilityAssumptions, DurabilityEstimate, durability_estimate};
use crate::{
    FailureBudget, Geometry, PlacementError, StorageClass, Topology, check_survivability, derive_geometry,
    replica_count, select_slots, verify_geometry,
};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Everything `explain` knows about a class on a topology. Its JSON is the CLI's `--json` output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Explanation {
    pub class: String,
    pub budget: FailureBudget,
    /// True when the geometry was pinned by the class rather than derived.
    pub pinned: bool,
    pub k: u32,
    pub m: u32,
    /// `(k + m) / k`.
    pub overhead: f64,
    pub shards_per_datacenter: u32,
    pub total_shards: u32,
    /// The strongest failure set a full stripe survives, datacenters first.
    pub survives: FailureBudget,
    /// What a stripe written while one datacenter is down (its shards in the others only)
    /// survives; `None` when such a stripe cannot even be read.
    pub survives_during_datacenter_outage: Option<FailureBudget>,
    /// Copies a small object stored as replicas needs for the same budget; `None` if impossible.
    pub replicas: Option<u32>,
    pub datacenters: u32,
    pub nodes: u32,
    pub durability: DurabilityEstimate,
    /// Remarks for the operator: what limits the geometry, what to watch.
    pub notes: Vec<String>,
}

/// Explains `class` on `topology` with the default durability assumptions.
pub fn explain(topology: &Topology, class: &StorageClass) -> Result<Explanation, PlacementError> {
    explain_with(topology, class, &DurabilityAssumptions::default())
}

/// Explains `class` on `topology` with the given durability assumptions.
pub fn explain_with(
    topology: &Topology,
    class: &StorageClass,
    assumptions: &DurabilityAssumptions,
) -> Result<Explanation, PlacementError> {
    topology.validate()?;
    let budget = class.budget;
    let geometry = match class.pinned {
        Some(geometry) => {
            verify_geometry(topology, geometry, budget)?;
            geometry
        }
        None => derive_geometry(topology, budget)?,
    };

    // Every stripe has the same shape (s per datacenter, distinct nodes), so any one stripe's
    // survivability is every stripe's.
    let slots = select_slots(topology, geometry, b"explain")?;
    let survives = check_survivability(topology, geometry, &slots, budget).survives;
    let outage = {
        let lost = &slots[0].datacenter;
        let remaining: Vec<_> = slots.iter().filter(|slot| &slot.datacenter != lost).cloned().collect();
        let report = check_survivability(topology, geometry, &remaining, FailureBudget::new(0, 0));
        report.meets_budget.then_some(report.survives)
    };

    let mut notes = Vec::new();
    if let Some(pinned) = class.pinned {
        if let Ok(derived) = derive_geometry(topology, budget)
            && derived != pinned
        {
            notes.push(format!(
                "pinned {pinned} at {:.2}x; the derived geometry would be {derived} at {:.2}x",
                pinned.overhead(),
                derived.overhead()
            ));
        }
        if pinned.data_shards <= pinned.parity_shards {
            notes.push("the pinned geometry costs 2x or more: replication would be as cheap or cheaper to run".into());
        }
    }
    let min_nodes = topology.min_nodes_per_datacenter();
    if geometry.shards_per_datacenter == min_nodes
        && let Some(smallest) = topology.datacenters.iter().find(|dc| dc.nodes.len() as u32 == min_nodes)
    {
        notes.push(format!(
            "{} shards per datacenter is limited by the smallest datacenter, {}, with {min_nodes} node(s): every \
             node there holds a shard of every stripe, so a node of it that is down blocks full-spread writes",
            geometry.shards_per_datacenter, smallest.id
        ));
    }
    if class.pinned.is_none() {
        notes.push("derived: the lowest overhead meeting the budget; ties go to the wider stripe".into());
    }
    match outage {
        Some(reduced) => notes.push(format!(
            "while one datacenter is down, a stripe written to the others survives {reduced}: accept such writes \
             only as recorded durability debt, or refuse them"
        )),
        None => notes.push(
            "while one datacenter is down, a stripe cannot be written readably to the others: refuse writes".into(),
        ),
    }

    Ok(Explanation {
        class: class.name.clone(),
        budget,
        pinned: class.pinned.is_some(),
        k: geometry.data_shards,
        m: geometry.parity_shards,
        overhead: geometry.overhead(),
        shards_per_datacenter: geometry.shards_per_datacenter,
        total_shards: geometry.total_shards(),
        survives,
        survives_during_datacenter_outage: outage,
        replicas: replica_count(budget, topology).ok(),
        datacenters: topology.datacenters.len() as u32,
        nodes: topology.node_count() as u32,
        durability: durability_estimate(topology, geometry, assumptions),
        notes,
    })
}

impl Explanation {
    /// The geometry this explanation describes.
    pub fn geometry(&self) -> Geometry {
        Geometry { data_shards: self.k, parity_shards: self.m, shards_per_datacenter: self.shards_per_datacenter }
    }

    /// The human rendering printed by `ignifuge placement explain`.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "storage class {:?}: survive {}", self.class, self.budget);
        let _ = writeln!(text, "topology: {} datacenters, {} nodes", self.datacenters, self.nodes);
        let _ = writeln!(
            text,
            "geometry: {}+{} Reed-Solomon, {} shards per datacenter, {} shards per stripe, overhead {:.2}x ({})",
            self.k,
            self.m,
            self.shards_per_datacenter,
            self.total_shards,
            self.overhead,
            if self.pinned { "pinned" } else { "derived" }
        );
        let _ = writeln!(text, "survives: {} (any, at the same time)", self.survives);
        match self.replicas {
            Some(copies) => {
                let _ = writeln!(text, "small objects: {copies} replicas ({copies}.00x) for the same budget");
            }
            None => {
                let _ = writeln!(text, "small objects: replication cannot meet this budget here");
            }
        }
        for note in &self.notes {
            let _ = writeln!(text, "note: {note}");
        }
        text.push_str(&self.durability.to_text());
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uniform;

    #[test]
    fn the_json_has_the_fields_the_cli_promises() {
        let explanation = explain(&uniform(3, 3), &StorageClass::standard()).unwrap();
        let json: serde_json::Value = serde_json::to_value(&explanation).unwrap();
        assert_eq!(json["k"], 5);
        assert_eq!(json["m"], 4);
        assert_eq!(json["shards_per_datacenter"], 3);
        assert!((json["overhead"].as_f64().unwrap() - 1.8).abs() < 1e-12);
        assert_eq!(json["survives"]["datacenters"], 1);
        assert_eq!(json["survives"]["nodes"], 1);
        assert_eq!(json["replicas"], 3);
        assert_eq!(json["survives_during_datacenter_outage"]["nodes"], 1);
        assert!(json["durability"]["stripe_annual_loss_probability"].as_f64().unwrap() > 0.0);
        assert!(json["durability"]["assumptions"]["node_repair_hours"].is_number());
    }

    #[test]
    fn the_text_reads_like_an_answer() {
        let explanation = explain(&uniform(4, 3), &StorageClass::standard()).unwrap();
        let text = explanation.to_text();
        assert!(
            text.contains(
                "geometry: 8+4 Reed-Solomon, 3 shards per datacenter, 12 shards per stripe, overhead 1.50x (derived)"
            ),
            "{text}"
        );
        assert!(text.contains("survives: 1 datacenter + 1 more node"), "{text}");
        assert!(text.contains("assumptions:"), "{text}");
    }

    #[test]
    fn a_pinned_geometry_is_verified_and_compared() {
        let class = StorageClass {
            name: "wide".into(),
            budget: FailureBudget::new(1, 1),
            pinned: Some(Geometry { data_shards: 4, parity_shards: 5, shards_per_datacenter: 3 }),
        };
        let explanation = explain(&uniform(3, 3), &class).unwrap();
        assert!(explanation.pinned);
        assert_eq!(explanation.survives, FailureBudget::new(1, 2));
        assert!(
            explanation.notes.iter().any(|n| n.contains("derived geometry would be 5+4")),
            "{:?}",
            explanation.notes
        );

        let weak = StorageClass {
            pinned: Some(Geometry { data_shards: 6, parity_shards: 3, shards_per_datacenter: 3 }),
            ..class
        };
        assert!(matches!(explain(&uniform(3, 3), &weak), Err(PlacementError::GeometryTooWeak { .. })));
    }

    #[test]
    fn an_impossible_class_is_an_error_with_its_reason() {
        let error = explain(&uniform(2, 3), &StorageClass::site()).unwrap_err();
        assert!(error.to_string().starts_with("two datacenters cannot survive the loss of one at under 2x"));
    }

    #[test]
    fn a_nodes_only_class_cannot_write_through_a_datacenter_outage() {
        let class = StorageClass { name: "local".into(), budget: FailureBudget::new(0, 2), pinned: None };
        let explanation = explain(&uniform(3, 3), &class).unwrap();
        assert_eq!((explanation.k, explanation.m), (7, 2));
        assert_eq!(explanation.survives_during_datacenter_outage, None);
        assert!(explanation.notes.iter().any(|n| n.contains("refuse writes")));
    }
}
