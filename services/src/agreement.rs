//! Whether every metadata replica holds the same state: each hashes its state right after one log
//! index (`ignifuge_raft::digest_at`) and the digests are compared. Damage on one replica that
//! RocksDB's checksums cannot see (a bug, a firmware fault writing a valid block at the wrong
//! place) shows as a digest that differs from the others'. `ignifuge admin digest --agree` runs
//! the check on demand; the repair service runs it on a schedule and its report carries the last
//! result (`RepairReport::metadata_check`, which `ignifuge admin durability` reads).

use crate::{ServiceError, ServiceResult};
use ignifuge_meta::{Command, Metadata, MetadataCheck};
use ignifuge_raft::{DigestAt, DigestAtRequest, RaftStatus};
use ignifuge_rpc::{ClusterConfig, NodeClient};
use ignifuge_types::NodeId;
use ignifuge_types::time::now_ms;
use rand::Rng as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Tries at marking an index on every member before one of them has applied it (each with a
/// margin four times wider).
const DIGEST_AT_ATTEMPTS: usize = 6;

/// Every metadata member's answer for the digest of its state right after `index`.
pub struct DigestsAtIndex {
    pub index: u64,
    pub members: Vec<(String, Result<DigestAt, String>)>,
}

impl DigestsAtIndex {
    /// The members whose digest differs from the one most members hold (all members with a
    /// digest when no digest is held by more members than every other). Empty when they agree.
    pub fn diverged(&self) -> Vec<String> {
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (node, answer) in &self.members {
            if let Ok(DigestAt::Done { digest }) = answer {
                groups.entry(digest.as_str()).or_default().push(node.as_str());
            }
        }
        if groups.len() <= 1 {
            return Vec::new();
        }
        let largest = groups.values().map(Vec::len).max().unwrap_or(0);
        let majority: Vec<&str> = groups.iter().filter(|(_, n)| n.len() == largest).map(|(d, _)| *d).collect();
        let keep = if majority.len() == 1 { Some(majority[0]) } else { None };
        let mut out: Vec<String> = groups
            .iter()
            .filter(|(digest, _)| Some(**digest) != keep)
            .flat_map(|(_, nodes)| nodes.iter().map(|n| n.to_string()))
            .collect();
        out.sort();
        out
    }

    /// Members that gave no digest (unreachable, behind, failed, or past the index).
    pub fn unknown(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, answer)| !matches!(answer, Ok(DigestAt::Done { .. })))
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// The result as the repair report keeps it, `last_agreed_ms` carried over from the check
    /// before unless this one agreed.
    pub fn outcome(&self, started_ms: i64, finished_ms: i64, last_agreed_ms: Option<i64>) -> MetadataCheck {
        let nodes = |names: Vec<String>| names.into_iter().map(NodeId::new).collect();
        let mut check = MetadataCheck {
            started_ms,
            finished_ms,
            index: Some(self.index),
            members: self.members.len() as u32,
            diverged: nodes(self.diverged()),
            unknown: nodes(self.unknown()),
            error: None,
            last_agreed_ms,
        };
        if check.agreed() {
            check.last_agreed_ms = Some(finished_ms);
        }
        check
    }
}

/// The metadata members `layout` names, voters then learners, with their addresses.
pub fn members(layout: &ClusterConfig) -> Vec<(String, SocketAddr)> {
    layout.voters().into_iter().chain(layout.learners()).map(|(_, n)| (n.id.0.clone(), n.address)).collect()
}

/// Every member's digest of its state right after one log index (`DigestAt`): the longest log's
/// last index plus a margin, marked on every member before any reaches it (a member that already
/// has answers `Missed`, and the next try leaves a wider margin). While members wait for it,
/// no-op lease entries are proposed so that an idle cluster reaches it. Replicas are given
/// `timeout` to reach the index and hash their state there.
pub async fn digests_at_one_index(
    metadata: &dyn Metadata,
    client: &NodeClient,
    members: &[(String, SocketAddr)],
    timeout: Duration,
) -> ServiceResult<DigestsAtIndex> {
    // Every member at once: a frozen one costs its timeout once per round, not per member.
    let ask = |index: u64, forget: bool| {
        futures::future::join_all(members.iter().map(move |(node, address)| async move {
            let request = DigestAtRequest { index, forget };
            let answer = client
                .post_json::<_, DigestAt>(*address, ignifuge_raft::paths::DIGEST_AT, &request)
                .await
                .map_err(|e| e.to_string());
            (node.clone(), answer)
        }))
    };
    let holder = ignifuge_types::random_id();
    // A random part, so that two checks run at once rarely pick one index (each gives its marks
    // up when it is done, which would make the other fail: never pass wrongly).
    let mut margin = 2 + rand::rng().random_range(0..8u64);
    for _ in 0..DIGEST_AT_ATTEMPTS {
        let statuses = futures::future::join_all(
            members
                .iter()
                .map(|(_, address)| client.post_json::<_, RaftStatus>(*address, ignifuge_raft::paths::STATUS, &())),
        )
        .await;
        let longest = statuses.iter().flatten().filter_map(|s| s.last_log_index).max().unwrap_or(0);
        let index = longest + margin;
        let deadline = Instant::now() + timeout;
        let mut proposed = 0u64;
        loop {
            let answers = ask(index, false).await;
            let missed = answers.iter().any(|(_, a)| matches!(a, Ok(DigestAt::Missed { .. })));
            let waiting = answers.iter().any(|(_, a)| matches!(a, Ok(DigestAt::Waiting | DigestAt::Computing)));
            let late = Instant::now() >= deadline;
            let retry = missed && proposed == 0;
            if retry || !waiting || late {
                // Given up or done: marks not hashed yet are given up everywhere, so that no
                // replica scans its state for nobody (a hash already running finishes; a member
                // that does not answer now may still hash once).
                ask(index, true).await;
            }
            if retry {
                break; // marked too late somewhere: a wider margin
            }
            if !waiting || late {
                return Ok(DigestsAtIndex { index, members: answers });
            }
            // One no-op entry at a time while some member has not reached the index (an idle
            // cluster appends none of its own); at most as many as the margin, and a few for
            // members that are behind.
            if proposed < margin + 4 {
                let command = Command::take_lease("admin-digest", holder.clone(), now_ms(), 1);
                let _ = metadata.apply(command).await;
                proposed += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        margin *= 4;
    }
    Err(ServiceError::Internal(format!(
        "every replica could not be marked before it applied the chosen index ({DIGEST_AT_ATTEMPTS} tries)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_index(answers: &[(&str, Result<DigestAt, String>)]) -> DigestsAtIndex {
        DigestsAtIndex { index: 7, members: answers.iter().map(|(n, a)| (n.to_string(), a.clone())).collect() }
    }

    fn done(digest: &str) -> Result<DigestAt, String> {
        Ok(DigestAt::Done { digest: digest.into() })
    }

    #[test]
    fn the_replicas_outside_the_largest_group_of_one_digest_diverge_and_with_no_largest_all_do() {
        let agree =
            at_index(&[("a", done("x")), ("b", done("x")), ("c", Ok(DigestAt::Waiting)), ("d", Err("down".into()))]);
        assert!(agree.diverged().is_empty());
        assert_eq!(agree.unknown(), vec!["c".to_string(), "d".to_string()]);
        let one = at_index(&[("a", done("x")), ("b", done("y")), ("c", done("x")), ("d", done("x"))]);
        assert_eq!(one.diverged(), vec!["b".to_string()]);
        let tie = at_index(&[("a", done("x")), ("b", done("y")), ("c", done("y")), ("d", done("x")), ("e", done("z"))]);
        assert_eq!(tie.diverged(), vec!["a", "b", "c", "d", "e"].into_iter().map(String::from).collect::<Vec<_>>());
    }

    #[test]
    fn the_outcome_kept_in_the_report_names_who_differs_and_who_gave_no_digest() {
        let check = at_index(&[("a", done("x")), ("b", done("x")), ("c", done("y")), ("d", Err("down".into()))]);
        let outcome = check.outcome(10, 20, Some(5));
        assert_eq!(outcome.diverged, vec![NodeId::new("c")]);
        assert_eq!(outcome.unknown, vec![NodeId::new("d")]);
        assert_eq!((outcome.started_ms, outcome.finished_ms, outcome.index), (10, 20, Some(7)));
        assert_eq!((outcome.members, outcome.error.as_deref()), (4, None));
        assert_eq!(outcome.last_agreed_ms, Some(5), "carried over: this one did not agree");
        assert!(!outcome.agreed());
        let whole = at_index(&[("a", done("x")), ("b", done("x"))]).outcome(10, 20, Some(5));
        assert!(whole.agreed());
        assert_eq!(whole.last_agreed_ms, Some(20));
        assert!(!outcome.rebuild_advised(), "two of four alike is no majority of the four asked");
        let three_of_four = at_index(&[("a", done("x")), ("b", done("x")), ("c", done("x")), ("d", done("y"))]);
        assert!(three_of_four.outcome(10, 20, None).rebuild_advised());
        let one_silent = at_index(&[("a", done("x")), ("b", Ok(DigestAt::Waiting))]).outcome(10, 20, None);
        assert!(!one_silent.agreed() && one_silent.diverged.is_empty());
        assert_eq!(one_silent.last_agreed_ms, None);
    }
}
