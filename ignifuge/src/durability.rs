//! `ignifuge admin durability`: one honest view of how well the data is protected, assembled
//! from the write-time debt records (a scan of the object index), the last repair round's survey
//! of every stripe against the nodes' real files, and every node's scrubber.
//!
//! It says healthy only when all of these hold: a repair round has completed, it could read
//! every metadata record and found no stripe below its budget, every object record could be read
//! here, no debt is recorded (neither at write time nor after the round), every node answers now,
//! no node has quarantined a corrupt shard since that round started, and the metadata replicas
//! were compared (the repair service does it daily) with none differing, all of them alike
//! within two days. Anything else is listed as a problem.

use ignifuge_meta::{MetadataCheck, RepairReport, TenantDurability};
use ignifuge_rpc::ScrubStatus;
use ignifuge_types::NodeId;
use std::fmt::Write as _;

pub struct DurabilityView {
    pub healthy: bool,
    pub problems: Vec<String>,
    pub written: Vec<TenantDurability>,
    pub repair: Option<RepairReport>,
    pub scrub: Vec<(NodeId, Result<ScrubStatus, String>)>,
    /// Metadata replicas whose Raft has stopped (`with_stopped_replicas`).
    pub stopped_replicas: Vec<String>,
    /// Why the stored cluster layout could not be read (`with_unreadable_layout`): the nodes
    /// were then asked from the layout file's list.
    pub layout_unreadable: Option<String>,
    pub now_ms: i64,
}

/// A repair report older than this means rounds stopped completing (the default round interval
/// is 1 minute, and a round that compares the metadata replicas waits up to 10 more for it): the
/// view says unhealthy rather than trust margins that nobody re-checks.
pub const REPAIR_REPORT_STALE_MS: i64 = 30 * 60 * 1000;
/// The metadata replicas not all compared and found alike for longer than this (the comparison
/// is daily by default, and at most a day apart) is reported: damage on one replica would go
/// unseen.
pub const METADATA_CHECK_STALE_MS: i64 = 2 * 24 * 60 * 60 * 1000;
/// A node whose last complete scrub pass (daily by default) is older than this, or that has run
/// this long without completing one, is reported: its shards are not being re-read.
pub const SCRUB_STALE_MS: i64 = 2 * 24 * 60 * 60 * 1000;

fn age_secs(now_ms: i64, then_ms: i64) -> i64 {
    (now_ms - then_ms).max(0) / 1000
}

/// What the last comparison of the metadata replicas (`RepairReport::metadata_check`) says is
/// wrong: a replica that differs; none made yet; none that compared every replica and found
/// them alike for over two days. A comparison that could not reach every replica (a node down,
/// reported as such) is not a problem by itself until then.
fn metadata_check_problems(check: Option<&MetadataCheck>, now_ms: i64, problems: &mut Vec<String>) {
    let Some(check) = check else {
        problems.push("the metadata replicas have not been compared yet (the next repair round compares them)".into());
        return;
    };
    if !check.diverged.is_empty() {
        let names: Vec<&str> = check.diverged.iter().map(|n| n.0.as_str()).collect();
        let index = check.index.map_or("?".into(), |i| i.to_string());
        if !check.rebuild_advised() {
            // No state is held by a majority of the replicas: none can be told right.
            problems.push(format!(
                "the metadata replicas hold different states at log index {index} ({} s ago) and none is held by \
                 a majority of them; differing from the most common: {} (compare them with `ignifuge admin \
                 digest --agree` once every replica answers, before rebuilding any)",
                age_secs(now_ms, check.finished_ms),
                names.join(", ")
            ));
        } else {
            problems.push(format!(
                "metadata replica(s) whose state differs from the others' at log index {index} ({} s ago): {} \
                 (rebuild each from the others: stop it, remove its metadata directory, start it)",
                age_secs(now_ms, check.finished_ms),
                names.join(", ")
            ));
        }
    }
    let unchecked_since = check.last_agreed_ms.unwrap_or(check.started_ms);
    if check.diverged.is_empty() && now_ms - unchecked_since > METADATA_CHECK_STALE_MS {
        problems.push(format!(
            "the metadata replicas have not all been compared and found alike for over 2 days (the last \
             comparison: {}; replicas still hashing at its deadline need a longer \
             IGNIFUGE_METADATA_CHECK_TIMEOUT_MS)",
            describe_check(check)
        ));
    }
}

/// One line on a comparison of the metadata replicas.
fn describe_check(check: &MetadataCheck) -> String {
    let names = |nodes: &[NodeId]| nodes.iter().map(|n| n.0.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(error) = &check.error {
        return format!("failed: {error}");
    }
    let index = check.index.map_or("?".into(), |i| i.to_string());
    if !check.diverged.is_empty() {
        return format!("at log index {index}, differing: {}", names(&check.diverged));
    }
    if !check.unknown.is_empty() {
        return format!(
            "at log index {index}, {} of {} alike, no digest from: {}",
            check.members as usize - check.unknown.len(),
            check.members,
            names(&check.unknown)
        );
    }
    format!("at log index {index}, all {} alike", check.members)
}

impl DurabilityView {
    pub fn assess(
        written: Vec<TenantDurability>,
        repair: Option<RepairReport>,
        scrub: Vec<(NodeId, Result<ScrubStatus, String>)>,
        now_ms: i64,
    ) -> Self {
        let mut problems = Vec::new();
        let written_debt: u64 = written.iter().map(|t| t.debt_stripes).sum();
        if written_debt > 0 {
            problems.push(format!("{written_debt} stripe(s) recorded as durability debt (below the full budget)"));
        }
        let unreadable: u64 = written.iter().map(|t| t.unreadable_objects).sum();
        if unreadable > 0 {
            problems.push(format!(
                "{unreadable} object record(s) could not be read (see the metadata voters' logs): \
                 their protection is unknown"
            ));
        }
        let down: Vec<String> = scrub.iter().filter(|(_, s)| s.is_err()).map(|(n, _)| n.0.clone()).collect();
        if !down.is_empty() {
            problems.push(format!("node(s) unreachable now: {}", down.join(", ")));
        }
        match &repair {
            None => problems.push("no repair round has completed yet: stripe margins are unknown".into()),
            Some(r) => {
                if now_ms - r.finished_ms > REPAIR_REPORT_STALE_MS {
                    problems.push(format!(
                        "the last repair round finished {} s ago: rounds have stopped completing (see the gateways' logs)",
                        age_secs(now_ms, r.finished_ms)
                    ));
                }
                if r.records_unreadable > 0 {
                    let more = r.records_unreadable.saturating_sub(r.unreadable_keys.len() as u64);
                    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                    problems.push(format!(
                        "{} metadata record(s) could not be read by the last repair round, so the blobs they name may \
                         not have been surveyed (see the gateways' logs): {}{more}",
                        r.records_unreadable,
                        r.unreadable_keys.join(", ")
                    ));
                }
                if r.stripes_below_budget > 0 {
                    problems.push(format!(
                        "{} stripe(s) ({} bytes) below budget at the last repair round ({} waiting for nodes that may \
                         return, {} unreadable now)",
                        r.stripes_below_budget, r.bytes_below_budget, r.stripes_waiting, r.stripes_unreadable
                    ));
                }
                metadata_check_problems(r.metadata_check.as_ref(), now_ms, &mut problems);
                // Nodes that answer now but that the round could not survey (their shard listing
                // failed): their stripes were waited for or rebuilt around them.
                let unsurveyed: Vec<&str> = r
                    .nodes_down
                    .iter()
                    .filter(|n| scrub.iter().any(|(node, s)| node == *n && s.is_ok()))
                    .map(|n| n.0.as_str())
                    .collect();
                if !unsurveyed.is_empty() {
                    problems.push(format!(
                        "node(s) that answer but that the last repair round could not survey (down then, or \
                         their shards could not be listed: see the gateways' logs): {}",
                        unsurveyed.join(", ")
                    ));
                }
                let restarted: Vec<String> = scrub
                    .iter()
                    .filter(|(_, s)| s.as_ref().is_ok_and(|s| s.node_started_ms >= r.started_ms))
                    .map(|(n, _)| n.0.clone())
                    .collect();
                if !restarted.is_empty() {
                    problems.push(format!(
                        "node(s) started since the last repair round began (their disks are not surveyed yet): {}",
                        restarted.join(", ")
                    ));
                }
                let corrupt_since: Vec<String> = scrub
                    .iter()
                    .filter(|(_, s)| s.as_ref().is_ok_and(|s| s.last_corrupt_ms.is_some_and(|t| t >= r.started_ms)))
                    .map(|(n, _)| n.0.clone())
                    .collect();
                if !corrupt_since.is_empty() {
                    problems.push(format!(
                        "corrupt or unreadable shard(s) set aside since the last repair round started, on: {}",
                        corrupt_since.join(", ")
                    ));
                }
            }
        }
        let unscrubbed: Vec<String> = scrub
            .iter()
            .filter(|(_, s)| {
                s.as_ref().is_ok_and(|s| match s.last_complete_ms {
                    Some(done) => now_ms - done > SCRUB_STALE_MS,
                    None => s.node_started_ms > 0 && now_ms - s.node_started_ms > SCRUB_STALE_MS,
                })
            })
            .map(|(n, _)| n.0.clone())
            .collect();
        if !unscrubbed.is_empty() {
            problems.push(format!("no complete scrub pass for over 2 days on: {}", unscrubbed.join(", ")));
        }
        Self {
            healthy: problems.is_empty(),
            problems,
            written,
            repair,
            scrub,
            stopped_replicas: Vec::new(),
            layout_unreadable: None,
            now_ms,
        }
    }

    /// Adds the metadata replicas whose Raft has stopped (a store that failed a write: each node
    /// starts its own again once its store takes writes, `ignifuge_storage_node::MetadataReplica`):
    /// until then the metadata has one copy fewer of each new entry.
    pub fn with_stopped_replicas(mut self, stopped: Vec<String>) -> Self {
        if !stopped.is_empty() {
            self.problems.push(format!(
                "metadata replica(s) stopped: {} (their store failed a write, a full disk or an I/O error; each is \
                 started again once its store takes writes: see its node's log)",
                stopped.join(", ")
            ));
            self.healthy = false;
        }
        self.stopped_replicas = stopped;
        self
    }

    /// Adds that the stored cluster layout could not be read (`reason`): every gateway and admin
    /// command that follows it is stuck on it, and the nodes this view asked are the layout
    /// file's, which may not be the cluster's.
    pub fn with_unreadable_layout(mut self, reason: Option<String>) -> Self {
        if let Some(reason) = &reason {
            self.problems.push(format!(
                "the stored cluster layout cannot be read ({reason}): written by another version? Gateways, \
                 `layout show` and `layout apply` cannot use it (run the version that wrote it); the nodes asked \
                 here are the layout file's"
            ));
            self.healthy = false;
        }
        self.layout_unreadable = reason;
        self
    }

    /// The oldest "last complete scrub" among the nodes; None if some node never completed one.
    fn oldest_scrub_ms(&self) -> Option<i64> {
        let mut oldest = i64::MAX;
        for (_, status) in &self.scrub {
            oldest = oldest.min(status.as_ref().ok()?.last_complete_ms?);
        }
        (oldest != i64::MAX).then_some(oldest)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let scrub: Vec<serde_json::Value> = self
            .scrub
            .iter()
            .map(|(node, status)| match status {
                Ok(s) => serde_json::json!({
                    "node": node, "reachable": true, "status": s,
                    "age_secs": s.last_complete_ms.map(|t| age_secs(self.now_ms, t)),
                }),
                Err(e) => serde_json::json!({"node": node, "reachable": false, "error": e}),
            })
            .collect();
        serde_json::json!({
            "healthy": self.healthy,
            "problems": self.problems,
            "debt_stripes": self.written.iter().map(|t| t.debt_stripes).sum::<u64>(),
            "tenants": self.written,
            "repair": self.repair,
            "repair_age_secs": self.repair.as_ref().map(|r| age_secs(self.now_ms, r.finished_ms)),
            "scrub": scrub,
            "last_complete_scrub_age_secs": self.oldest_scrub_ms().map(|t| age_secs(self.now_ms, t)),
            "metadata_replicas_stopped": self.stopped_replicas,
            "layout_unreadable": self.layout_unreadable,
        })
    }

    /// The same figures as Prometheus gauges (text exposition format).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, samples: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        gauge(
            "ignifuge_durability_healthy",
            "1 when every stripe meets its budget (see problems)",
            vec![(String::new(), f64::from(u8::from(self.healthy)))],
        );
        let class = self.repair.as_ref().map(|r| r.class.clone()).unwrap_or_else(|| "default".into());
        let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        let mut objects = Vec::new();
        let mut bytes = Vec::new();
        for tenant in self.repair.iter().flat_map(|r| &r.tenants) {
            for m in &tenant.margins {
                let labels = format!(
                    "{{class=\"{}\",tenant=\"{}\",margin=\"{}\"}}",
                    esc(&class),
                    esc(&tenant.tenant.0),
                    m.margin
                );
                objects.push((labels.clone(), m.objects as f64));
                bytes.push((labels, m.bytes as f64));
            }
        }
        for t in &self.written {
            let labels = format!("{{class=\"{}\",tenant=\"{}\",margin=\"inline\"}}", esc(&class), esc(&t.tenant.0));
            objects.push((labels.clone(), t.inline_objects as f64));
            bytes.push((labels, t.inline_bytes as f64));
        }
        gauge("ignifuge_objects", "Objects by remaining margin at the last repair round", objects);
        gauge("ignifuge_object_bytes", "Object bytes by remaining margin at the last repair round", bytes);
        let debt = self
            .written
            .iter()
            .map(|t| (format!("{{class=\"{}\",tenant=\"{}\"}}", esc(&class), esc(&t.tenant.0)), t.debt_stripes as f64))
            .collect();
        gauge("ignifuge_debt_stripes", "Stripes recorded as durability debt", debt);
        if let Some(r) = &self.repair {
            let singles: [(&str, &str, f64); 8] = [
                (
                    "ignifuge_repair_queue_stripes",
                    "Stripes below budget at the last round",
                    r.stripes_below_budget as f64,
                ),
                ("ignifuge_repair_queue_bytes", "Bytes below budget at the last round", r.bytes_below_budget as f64),
                (
                    "ignifuge_repair_waiting_stripes",
                    "Stripes waiting for nodes that may return",
                    r.stripes_waiting as f64,
                ),
                ("ignifuge_unreadable_stripes", "Stripes with fewer than k shards found", r.stripes_unreadable as f64),
                (
                    "ignifuge_repair_unreadable_records",
                    "Metadata records the last round could not read (their blobs not surveyed)",
                    r.records_unreadable as f64,
                ),
                (
                    "ignifuge_repair_bytes_per_second",
                    "Repair write rate in the last round",
                    r.repair_bytes_per_sec as f64,
                ),
                (
                    "ignifuge_repair_eta_seconds",
                    "Estimated time to full protection (-1: unknown)",
                    r.eta_secs.map_or(-1.0, |s| s as f64),
                ),
                (
                    "ignifuge_repair_round_age_seconds",
                    "Time since the last round ended",
                    age_secs(self.now_ms, r.finished_ms) as f64,
                ),
            ];
            for (name, help, value) in singles {
                gauge(name, help, vec![(String::new(), value)]);
            }
        }
        gauge(
            "ignifuge_metadata_replicas_stopped",
            "Metadata replicas whose Raft has stopped (started again once their store takes writes)",
            vec![(String::new(), self.stopped_replicas.len() as f64)],
        );
        gauge(
            "ignifuge_layout_unreadable",
            "1 when the stored cluster layout cannot be read (see problems)",
            vec![(String::new(), f64::from(u8::from(self.layout_unreadable.is_some())))],
        );
        if let Some(check) = self.repair.as_ref().and_then(|r| r.metadata_check.as_ref()) {
            gauge(
                "ignifuge_metadata_replicas_differing",
                "Metadata replicas whose state differed from the others' at the last comparison",
                vec![(String::new(), check.diverged.len() as f64)],
            );
            gauge(
                "ignifuge_metadata_check_age_seconds",
                "Time since the metadata replicas were last all compared and found alike (-1: never)",
                vec![(String::new(), check.last_agreed_ms.map_or(-1.0, |t| age_secs(self.now_ms, t) as f64))],
            );
        }
        let scrub_age = self
            .scrub
            .iter()
            .filter_map(|(node, s)| {
                let t = s.as_ref().ok()?.last_complete_ms?;
                Some((format!("{{node=\"{}\"}}", esc(&node.0)), age_secs(self.now_ms, t) as f64))
            })
            .collect();
        gauge("ignifuge_scrub_age_seconds", "Time since the node's last complete scrub", scrub_age);
        let corrupt = self
            .scrub
            .iter()
            .filter_map(|(node, s)| {
                Some((format!("{{node=\"{}\"}}", esc(&node.0)), s.as_ref().ok()?.corrupt_found as f64))
            })
            .collect();
        gauge("ignifuge_corrupt_shards_found", "Corrupt shards quarantined since the node started", corrupt);
        out
    }

    pub fn print(&self, json: bool, prometheus: bool) -> anyhow::Result<()> {
        if prometheus {
            print!("{}", self.to_prometheus());
            return Ok(());
        }
        if json {
            println!("{}", serde_json::to_string_pretty(&self.to_json())?);
            return Ok(());
        }
        if self.healthy {
            println!("HEALTHY: every stripe meets its budget, no debt, every node answers");
        } else {
            println!("NOT HEALTHY:");
            for p in &self.problems {
                println!("  - {p}");
            }
        }
        if let Some(r) = &self.repair {
            println!(
                "\nclass {}; last repair round by {} ended {} s ago: {} below budget, {} repaired ({} B, {} B/s), ETA {}",
                r.class,
                r.holder,
                age_secs(self.now_ms, r.finished_ms),
                r.stripes_below_budget,
                r.stripes_repaired,
                r.bytes_repaired,
                r.repair_bytes_per_sec,
                r.eta_secs.map_or("unknown".into(), |s| format!("{s} s"))
            );
            println!("{:<16} {:<12} {:>10} {:>16}", "tenant", "margin", "objects", "bytes");
            for t in &r.tenants {
                for m in &t.margins {
                    println!("{:<16} {:<12} {:>10} {:>16}", t.tenant.0, m.margin, m.objects, m.bytes);
                }
            }
        }
        println!("\n{:<16} {:>14} {:>14} {:>12}", "tenant", "inline", "in debt", "debt stripes");
        for t in &self.written {
            println!(
                "{:<16} {:>14} {:>14} {:>12}",
                t.tenant.0,
                format!("{} / {} B", t.inline_objects, t.inline_bytes),
                format!("{} / {} B", t.debt_objects, t.debt_bytes),
                t.debt_stripes
            );
        }
        if let Some(check) = self.repair.as_ref().and_then(|r| r.metadata_check.as_ref()) {
            println!(
                "\nmetadata replicas last compared {} s ago: {}",
                age_secs(self.now_ms, check.finished_ms),
                describe_check(check)
            );
        }
        match self.oldest_scrub_ms() {
            Some(t) => println!("\nlast complete scrub of every node: {} s ago", age_secs(self.now_ms, t)),
            None => println!("\nsome node has not completed a scrub pass yet (or is unreachable)"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_types::TenantId;

    fn scrub_ok(last_corrupt_ms: Option<i64>) -> Result<ScrubStatus, String> {
        Ok(ScrubStatus { last_complete_ms: Some(1), last_corrupt_ms, ..Default::default() })
    }

    fn agreed_at(ms: i64) -> MetadataCheck {
        MetadataCheck {
            started_ms: ms - 10,
            finished_ms: ms,
            index: Some(40),
            members: 3,
            last_agreed_ms: Some(ms),
            ..Default::default()
        }
    }

    fn report(below: u64) -> RepairReport {
        RepairReport {
            started_ms: 100,
            finished_ms: 200,
            stripes_below_budget: below,
            metadata_check: Some(agreed_at(190)),
            ..Default::default()
        }
    }

    #[test]
    fn the_metadata_replicas_must_have_been_compared_none_differing_and_all_alike_within_two_days() {
        let node = NodeId::new("n1");
        let view = |check: Option<MetadataCheck>, now_ms| {
            let repair = RepairReport { metadata_check: check, ..report(0) };
            DurabilityView::assess(vec![], Some(repair), vec![(node.clone(), scrub_ok(None))], now_ms)
        };
        assert!(view(Some(agreed_at(190)), 300).healthy);
        let never = view(None, 300);
        assert!(!never.healthy && never.problems[0].contains("not been compared yet"), "{:?}", never.problems);
        let differs = MetadataCheck { diverged: vec![NodeId::new("dc3-n2")], ..agreed_at(190) };
        let damaged = view(Some(differs.clone()), 300);
        assert!(!damaged.healthy, "a replica differs");
        assert!(
            damaged.problems.iter().any(|p| p.contains("dc3-n2") && p.contains("index 40")),
            "{:?}",
            damaged.problems
        );
        assert!(damaged.to_prometheus().contains("ignifuge_metadata_replicas_differing 1"));
        // A node down at the last comparison: reported as down, not as unchecked, until two days
        // without a whole comparison have passed.
        let partial = MetadataCheck { unknown: vec![NodeId::new("dc2-n1")], ..agreed_at(290) };
        let partial = MetadataCheck { last_agreed_ms: Some(190), ..partial };
        assert!(view(Some(partial.clone()), 300).healthy);
        let stale = view(Some(partial), 190 + METADATA_CHECK_STALE_MS + 1);
        assert!(
            stale.problems.iter().any(|p| p.contains("over 2 days") && p.contains("dc2-n1")),
            "{:?}",
            stale.problems
        );
        let never_alike = MetadataCheck { error: Some("no index".into()), last_agreed_ms: None, ..agreed_at(290) };
        assert!(view(Some(never_alike.clone()), 300).healthy, "failed once, minutes ago");
        assert!(!view(Some(never_alike), 280 + METADATA_CHECK_STALE_MS + 1).healthy, "never alike for 2 days");
        assert!(view(Some(agreed_at(190)), 300).to_prometheus().contains("ignifuge_metadata_check_age_seconds 0"));
        // Two answered, with two states, the third silent: neither can be told right, so no
        // advice to rebuild one.
        let tie = MetadataCheck {
            diverged: vec![NodeId::new("a"), NodeId::new("b")],
            unknown: vec![NodeId::new("c")],
            ..agreed_at(190)
        };
        let tied = view(Some(tie), 300);
        assert!(!tied.healthy);
        assert!(tied.problems.iter().any(|p| p.contains("none is held by") && !p.contains("remove its")));
        // Two alike and one different out of nine, six silent: not a majority to rebuild from.
        let few = MetadataCheck {
            members: 9,
            diverged: vec![NodeId::new("c")],
            unknown: (1..=6).map(|i| NodeId::new(format!("u{i}"))).collect(),
            ..agreed_at(190)
        };
        assert!(
            view(Some(few), 300).problems.iter().any(|p| p.contains("none is held by") && !p.contains("remove its"))
        );
    }

    #[test]
    fn a_node_that_answers_but_that_the_round_could_not_survey_is_a_problem() {
        let node = NodeId::new("n1");
        let unsurveyed = RepairReport { nodes_down: vec![node.clone()], ..report(0) };
        let view = DurabilityView::assess(vec![], Some(unsurveyed.clone()), vec![(node.clone(), scrub_ok(None))], 300);
        assert!(!view.healthy && view.problems.iter().any(|p| p.contains("could not survey") && p.contains("n1")));
        // Down now as then: reported as unreachable, once.
        let down = DurabilityView::assess(vec![], Some(unsurveyed), vec![(node, Err("down".into()))], 300);
        assert!(!down.problems.iter().any(|p| p.contains("could not survey")), "{:?}", down.problems);
    }

    #[test]
    fn an_unreadable_stored_layout_is_a_problem() {
        let view =
            || DurabilityView::assess(Vec::new(), Some(report(0)), vec![(NodeId::new("n1"), scrub_ok(None))], 100);
        let readable = view().with_unreadable_layout(None);
        assert!(readable.healthy, "{:?}", readable.problems);
        assert!(readable.to_prometheus().contains("ignifuge_layout_unreadable 0"));
        assert!(readable.to_json()["layout_unreadable"].is_null());
        let unreadable = view().with_unreadable_layout(Some("version 7: unknown field `zone`".into()));
        assert!(!unreadable.healthy);
        let problem = unreadable.problems.iter().find(|p| p.contains("layout cannot be read")).expect("listed");
        assert_eq!(
            problem,
            "the stored cluster layout cannot be read (version 7: unknown field `zone`): written by another \
             version? Gateways, `layout show` and `layout apply` cannot use it (run the version that wrote it); \
             the nodes asked here are the layout file's"
        );
        assert!(unreadable.to_prometheus().contains("ignifuge_layout_unreadable 1"));
        assert_eq!(unreadable.to_json()["layout_unreadable"], "version 7: unknown field `zone`");
    }

    #[test]
    fn a_stopped_metadata_replica_is_a_problem() {
        let node = NodeId::new("n1");
        let view = || DurabilityView::assess(vec![], Some(report(0)), vec![(node.clone(), scrub_ok(None))], 300);
        let running = view().with_stopped_replicas(vec![]);
        assert!(running.healthy, "{:?}", running.problems);
        assert!(running.to_prometheus().contains("ignifuge_metadata_replicas_stopped 0"));
        let stopped = view().with_stopped_replicas(vec!["dc2-n2".into()]);
        assert!(!stopped.healthy);
        assert!(stopped.problems.iter().any(|p| p.contains("stopped: dc2-n2")), "{:?}", stopped.problems);
        assert!(stopped.to_prometheus().contains("ignifuge_metadata_replicas_stopped 1"));
        assert_eq!(stopped.to_json()["metadata_replicas_stopped"][0], "dc2-n2");
    }

    #[test]
    fn healthy_only_when_a_round_found_nothing_below_budget_and_nothing_happened_since() {
        let node = NodeId::new("n1");
        let view = |repair, scrub, written| DurabilityView::assess(written, repair, vec![(node.clone(), scrub)], 300);
        assert!(view(Some(report(0)), scrub_ok(None), vec![]).healthy);
        assert!(!view(None, scrub_ok(None), vec![]).healthy, "no round yet");
        assert!(!view(Some(report(3)), scrub_ok(None), vec![]).healthy, "stripes below budget");
        let mut unreadable = TenantDurability::empty(TenantId::new("t"));
        unreadable.unreadable_objects = 1;
        assert!(!view(Some(report(0)), scrub_ok(None), vec![unreadable]).healthy, "a record the view could not read");
        let keys = vec!["o/b/k1".to_string(), "n/p".to_string()];
        let unsurveyed = RepairReport { records_unreadable: 2, unreadable_keys: keys, ..report(0) };
        let unhealthy = view(Some(unsurveyed), scrub_ok(None), vec![]);
        assert!(!unhealthy.healthy, "records the round could not read");
        assert!(unhealthy.problems.iter().any(|p| p.contains("o/b/k1, n/p")), "named: {:?}", unhealthy.problems);
        assert!(unhealthy.to_prometheus().contains("ignifuge_repair_unreadable_records 2"));
        assert!(!view(Some(report(0)), Err("down".into()), vec![]).healthy, "a node is down");
        assert!(!view(Some(report(0)), scrub_ok(Some(150)), vec![]).healthy, "corruption since the round");
        assert!(view(Some(report(0)), scrub_ok(Some(50)), vec![]).healthy, "corruption before the round");
        let restarted = Ok(ScrubStatus { node_started_ms: 150, ..Default::default() });
        assert!(!view(Some(report(0)), restarted, vec![]).healthy, "a node (maybe wiped) restarted since the round");
        let mut debt = TenantDurability::empty(TenantId::new("t"));
        debt.debt_stripes = 1;
        assert!(!view(Some(report(0)), scrub_ok(None), vec![debt]).healthy, "debt written since");
        let later =
            |now_ms| DurabilityView::assess(vec![], Some(report(0)), vec![(node.clone(), scrub_ok(None))], now_ms);
        assert!(!later(200 + REPAIR_REPORT_STALE_MS + 1).healthy, "repair rounds stopped completing");
        let never_scrubbed = Ok(ScrubStatus { node_started_ms: 1, ..Default::default() });
        let stale =
            DurabilityView::assess(vec![], Some(report(0)), vec![(node.clone(), never_scrubbed)], SCRUB_STALE_MS + 2);
        assert!(stale.problems.iter().any(|p| p.contains("scrub")), "{:?}", stale.problems);
        let text = view(Some(report(2)), scrub_ok(None), vec![]).to_prometheus();
        assert!(text.contains("ignifuge_durability_healthy 0"), "{text}");
        assert!(text.contains("ignifuge_repair_queue_stripes 2"), "{text}");
    }
}
