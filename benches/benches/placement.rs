//! Placement micro benchmarks: `select_slots` per stripe at 9 and 100 nodes, and the
//! survivability check the gateway runs before acknowledging each stripe.
//!
//! Run: `CARGO_TARGET_DIR=/var/tmp/ignifuge-target cargo bench -p ignifuge-benches --bench placement`.
//! Target: under 10 us per stripe at 100 nodes.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ignifuge_placement::{
    Datacenter, FailureBudget, Geometry, Node, Topology, check_survivability, derive_geometry, select_slot_refs,
    select_slots,
};
use ignifuge_types::{DatacenterId, NodeId};
use std::hint::black_box;

/// `datacenters` datacenters sharing `nodes` nodes as evenly as possible, weights 1-3, 4 disks.
fn topology(datacenters: usize, nodes: usize) -> Topology {
    Topology {
        datacenters: (0..datacenters)
            .map(|d| Datacenter {
                id: DatacenterId::new(format!("dc{d}")),
                nodes: (0..nodes)
                    .filter(|n| n % datacenters == d)
                    .map(|n| Node {
                        id: NodeId::new(format!("dc{d}-node{n:03}")),
                        capacity_weight: 1 + (n as u64 % 3),
                        disks: 4,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn bench_select_slots(c: &mut Criterion) {
    let budget = FailureBudget::new(1, 1);
    let mut group = c.benchmark_group("select_slots");
    let cases: [(&str, Topology, Option<Geometry>); 4] = [
        ("9 nodes, 3 dc, 5+4", topology(3, 9), None),
        (
            "100 nodes, 4 dc, 8+4",
            topology(4, 100),
            Some(Geometry { data_shards: 8, parity_shards: 4, shards_per_datacenter: 3 }),
        ),
        ("100 nodes, 3 dc, derived", topology(3, 100), None),
        ("100 nodes, 4 dc, derived", topology(4, 100), None),
    ];
    for (name, topology, pinned) in cases {
        let geometry = pinned.unwrap_or_else(|| derive_geometry(&topology, budget).expect("derivable"));
        let mut stripe: u64 = 0;
        group.bench_function(BenchmarkId::new(name, geometry.to_string()), |b| {
            b.iter(|| {
                stripe = stripe.wrapping_add(1);
                let key = format!("0123456789abcdef0123456789abcdef/{stripe}");
                black_box(select_slots(&topology, geometry, key.as_bytes()).expect("placeable"))
            })
        });
        group.bench_function(BenchmarkId::new(format!("{name}, indices"), geometry.to_string()), |b| {
            b.iter(|| {
                stripe = stripe.wrapping_add(1);
                let key = format!("0123456789abcdef0123456789abcdef/{stripe}");
                black_box(select_slot_refs(&topology, geometry, key.as_bytes()).expect("placeable"))
            })
        });
    }
    group.finish();
}

fn bench_check_survivability(c: &mut Criterion) {
    let budget = FailureBudget::new(1, 1);
    let topology = topology(3, 9);
    let geometry = derive_geometry(&topology, budget).expect("derivable");
    let slots = select_slots(&topology, geometry, b"stripe").expect("placeable");
    c.bench_function("check_survivability 5+4", |b| {
        b.iter(|| black_box(check_survivability(&topology, geometry, black_box(&slots), budget)))
    });
}

criterion_group!(benches, bench_select_slots, bench_check_survivability);
criterion_main!(benches);
