//! The leader's lease: linearizable reads without a round to the followers.
//!
//! openraft 0.9 gives followers half of a lease: a follower that has accepted an append from the
//! leader (any append answered Success, PartialSuccess or Conflict: each first accepted the
//! leader's vote and set the vote's time to the follower's `now`) refuses every vote request for
//! `leader_lease` = `election_timeout_max` (`ELECTION_TIMEOUT_MAX_MS`, 2 s) by its own monotonic
//! clock, and does not campaign itself for longer than that.
//!
//! This module is the leader's half. `Leases` remembers, per voter, the leader's clock when it
//! *sent* the latest append that voter accepted under the leader's current vote (the follower
//! received it later, so its refusal lasts at least until that instant plus the lease). If, for
//! every configuration of the membership (two during a joint change), a majority counting the
//! leader itself accepted appends sent at or after instant `t`, no other leader can be elected
//! before `t + lease` as measured by those followers: any election needs a majority of each
//! configuration, which meets one of them (the leader's own vote included: see below). So until
//! then this leader still leads, and its state machine, once it holds an entry of its own term
//! (every entry committed by earlier leaders is before it), holds every write acknowledged
//! anywhere: a leader answers a write only once it has applied it. A query read from it is
//! linearizable.
//!
//! The leader uses only `LEASE_READ_MS` = half the lease, so the followers' and the leader's
//! clocks may run at rates differing by up to 2x before the argument fails (NTP keeps monotonic
//! clocks within 500 ppm of each other). The leader measures with `CLOCK_BOOTTIME`, which keeps
//! counting while its host is suspended (a suspended leader must not wake up believing little time
//! passed); followers measure with `CLOCK_MONOTONIC` (openraft's), which stops while theirs is: a
//! suspended follower refuses votes for longer, never shorter. A frozen process (SIGSTOP, a long
//! pause) counts the time it was frozen on either clock.
//!
//! The follower's promise survives its restart: openraft gives the vote it loads at start the
//! time of the start, so a restarted voter refuses votes for another lease's length
//! (`tests::a_restarted_voter_keeps_refusing_candidates_for_a_lease_after_following_a_leader` in
//! `lib.rs` holds openraft to it). The leader's side has two holes openraft leaves, closed in
//! `RaftMetadata`: the leader itself grants its vote to a newer candidate once its own vote is
//! older than the lease, so once it has handed a vote request of a newer term to Raft its lease
//! no longer holds (`vote_terms_seen`); and a leader restored by a restart in its own term
//! appends no new first entry when its log already ends in that term, so it answers nothing
//! until it has applied its whole log of then (`restored_as_leader`).
//!
//! When the lease does not hold (a new leader, a quorum not heard from within `LEASE_READ_MS`,
//! an entry of its own term not applied yet), the query falls back to a read-index round.

use crate::RaftNodeId;
use openraft::Vote;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// How long after the instant a quorum acknowledged the leader answers reads from its lease:
/// half of what followers promise (`ELECTION_TIMEOUT_MAX_MS`), the margin for clock rates.
pub const LEASE_READ_MS: u64 = crate::ELECTION_TIMEOUT_MAX_MS / 2;

/// A clock that keeps counting while the host is suspended (`CLOCK_BOOTTIME`).
pub fn boottime() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every Linux since 2.6.39.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Per voter, the latest instant (leader's `boottime`) at which an append it accepted was sent,
/// under which vote of the leader.
#[derive(Default)]
pub struct Leases {
    acked: Mutex<BTreeMap<RaftNodeId, (Vote<RaftNodeId>, Duration)>>,
}

impl Leases {
    /// `target` accepted an append sent at `sent` by the leader of `vote`.
    pub fn acked(&self, target: RaftNodeId, vote: Vote<RaftNodeId>, sent: Duration) {
        let mut acked = self.acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match acked.get_mut(&target) {
            Some((known, at)) if *known == vote => *at = (*at).max(sent),
            _ => {
                acked.insert(target, (vote, sent));
            }
        }
    }

    /// Whether `me`, leading with `vote`, may answer a read from its lease at `now`.
    pub fn holds(
        &self,
        me: RaftNodeId,
        vote: &Vote<RaftNodeId>,
        configs: &[BTreeSet<RaftNodeId>],
        now: Duration,
    ) -> bool {
        let acked = self.acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let sent_to = |id: RaftNodeId| match acked.get(&id) {
            Some((known, at)) if known == vote => Some(*at),
            _ => None,
        };
        quorum_acked(me, configs, now, sent_to)
            .is_some_and(|t| now.saturating_sub(t) < Duration::from_millis(LEASE_READ_MS))
    }
}

/// The latest instant `t` such that, in every configuration, a majority (counting `me` at `now`)
/// accepted appends sent at or after `t`; None if some configuration has no such majority (or
/// there is no configuration at all).
pub fn quorum_acked(
    me: RaftNodeId,
    configs: &[BTreeSet<RaftNodeId>],
    now: Duration,
    sent_to: impl Fn(RaftNodeId) -> Option<Duration>,
) -> Option<Duration> {
    let mut earliest: Option<Duration> = None;
    for config in configs {
        let mut times: Vec<Duration> =
            config.iter().filter_map(|&id| if id == me { Some(now) } else { sent_to(id) }).collect();
        let majority = config.len() / 2 + 1;
        if config.is_empty() || times.len() < majority {
            return None;
        }
        times.sort_unstable_by(|a, b| b.cmp(a));
        let t = times[majority - 1];
        earliest = Some(earliest.map_or(t, |e| e.min(t)));
    }
    earliest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn the_quorum_instant_is_the_majority_s_oldest_acknowledgement() {
        let acks = BTreeMap::from([(2, ms(900)), (3, ms(500)), (4, ms(100))]);
        let sent_to = |id| acks.get(&id).copied();
        // Five voters, me (1) at 1000: the third most recent of {1000, 900, 500, 100} is 500.
        assert_eq!(quorum_acked(1, &[set(&[1, 2, 3, 4, 5])], ms(1000), sent_to), Some(ms(500)));
        // Three voters: me and 2 suffice.
        assert_eq!(quorum_acked(1, &[set(&[1, 2, 5])], ms(1000), sent_to), Some(ms(900)));
        // Nobody heard from but me: no quorum.
        assert_eq!(quorum_acked(1, &[set(&[1, 5, 6])], ms(1000), sent_to), None);
        // A joint change: both configurations need their own majority; the older bounds the lease.
        assert_eq!(quorum_acked(1, &[set(&[1, 2, 5]), set(&[1, 3, 4])], ms(1000), sent_to), Some(ms(500)));
        assert_eq!(quorum_acked(1, &[set(&[1, 2, 5]), set(&[3, 6, 7])], ms(1000), sent_to), None);
        // No configuration at all: nothing to lean on.
        assert_eq!(quorum_acked(1, &[], ms(1000), sent_to), None);
        // A leader outside a configuration (one being removed) counts only the others in it.
        assert_eq!(quorum_acked(9, &[set(&[1, 2, 5])], ms(1000), sent_to), None);
        assert_eq!(quorum_acked(9, &[set(&[2, 3, 5])], ms(1000), sent_to), Some(ms(500)));
    }

    #[test]
    fn the_lease_lapses_with_time_and_with_a_new_vote() {
        let leases = Leases::default();
        let vote = Vote::new_committed(3, 1);
        let voters = [set(&[1, 2, 3])];
        assert!(!leases.holds(1, &vote, &voters, ms(10_000)), "no acknowledgement yet");
        leases.acked(2, vote, ms(10_000));
        assert!(leases.holds(1, &vote, &voters, ms(10_000)));
        assert!(leases.holds(1, &vote, &voters, ms(10_000 + LEASE_READ_MS - 1)));
        assert!(!leases.holds(1, &vote, &voters, ms(10_000 + LEASE_READ_MS)), "the lease ran out");
        // An older send arriving late never moves the instant back.
        leases.acked(2, vote, ms(9_000));
        assert!(leases.holds(1, &vote, &voters, ms(10_000 + LEASE_READ_MS - 1)));
        // Acknowledgements of an earlier term's leadership count for nothing in a later one.
        let later = Vote::new_committed(4, 1);
        assert!(!leases.holds(1, &later, &voters, ms(10_001)));
        leases.acked(3, later, ms(10_500));
        assert!(leases.holds(1, &later, &voters, ms(10_600)));
        // ... and the earlier vote's record for voter 2 was not replaced by voter 3's.
        assert!(leases.holds(1, &vote, &voters, ms(10_600)));
    }

    #[test]
    fn boottime_moves_forward() {
        let a = boottime();
        std::thread::sleep(ms(5));
        assert!(boottime() >= a + ms(5));
    }
}
