//! Histories of concurrent operations on S3 keys and a linearizability checker for them, one
//! register per key (as Knossos and Porcupine check histories).
//!
//! Each operation has an invocation time and, if its outcome is known, a completion time. An
//! operation whose outcome is unknown (a timeout, a 503, a dropped connection) may have taken
//! effect at any point after its invocation, or never. The checker searches for an order of the
//! operations of one key that respects real time (an operation that completed before another
//! was invoked comes first) and explains every answer: every read saw the value of the last
//! write before it, every conditional write's success or 412 matches the state it was applied to.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// A value written: unique per write in a history.
pub type Value = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PutObject (or CompleteMultipartUpload) of `value`; with `if_none_match`, only if the key
    /// has no current object.
    Put { value: Value, if_none_match: bool },
    /// DeleteObject (the key has no current object after it).
    Delete,
    /// GetObject that saw `observed` (None: 404).
    Get { observed: Option<Value> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged (200/204, or a GET's answer).
    Ok,
    /// A conditional write refused with 412: the key had a current object when it applied.
    PreconditionFailed,
    /// Not known: it may have taken effect once, after its invocation, or never.
    Unknown,
    /// Never sent (refused at connect): no effect. Histories need not record such operations.
    NotSent,
}

#[derive(Clone, Debug)]
pub struct Op {
    pub client: usize,
    pub key: String,
    pub kind: Kind,
    pub outcome: Outcome,
    /// Nanoseconds since the history began.
    pub invoked_ns: u64,
    /// None when the outcome is unknown.
    pub completed_ns: Option<u64>,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.completed_ns.map_or("?".to_string(), |c| format!("{:.3}", c as f64 / 1e9));
        write!(
            f,
            "[{:>8.3} .. {:>8}] client {} {}: {:?} -> {:?}",
            self.invoked_ns as f64 / 1e9,
            end,
            self.client,
            self.key,
            self.kind,
            self.outcome
        )
    }
}

/// The state of one register: the current value, or none.
type State = Option<Value>;

/// Applies `op` to `state` as the store would, if the answer the client got is possible there.
/// Unknown outcomes take effect as the store would decide at that point.
fn step(op: &Op, state: State) -> Option<State> {
    match (&op.kind, &op.outcome) {
        (_, Outcome::NotSent) => Some(state),
        (Kind::Get { observed }, _) => (*observed == state).then_some(state),
        // An unconditional write has no precondition to fail: a refusal of one explains nothing.
        (Kind::Put { if_none_match: false, .. }, Outcome::PreconditionFailed) => None,
        (Kind::Put { value, if_none_match: false }, _) => Some(Some(*value)),
        (Kind::Put { value, if_none_match: true }, Outcome::Ok) => state.is_none().then_some(Some(*value)),
        (Kind::Put { .. }, Outcome::PreconditionFailed) => state.is_some().then_some(state),
        (Kind::Put { value, if_none_match: true }, Outcome::Unknown) => {
            Some(if state.is_none() { Some(*value) } else { state })
        }
        (Kind::Delete, Outcome::PreconditionFailed) => None,
        (Kind::Delete, _) => Some(None),
    }
}

/// Why a key's history is not linearizable: its operations, in invocation order.
#[derive(Debug)]
pub struct Anomaly {
    pub key: String,
    pub verdict: Verdict,
    pub ops: Vec<Op>,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:?}: no linearization explains the history of key {:?}:", self.verdict, self.key)?;
        for op in &self.ops {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// Most operations of one key the search handles (the bit set of linearized operations).
pub const OPS_PER_KEY_MAX: usize = 4096;
/// Most search states visited for one key before the check gives up as inconclusive (a failure:
/// a test must not pass on a history it could not check).
pub const SEARCH_STATES_MAX: usize = 4_000_000;

struct Search<'a> {
    ops: &'a [Op],
    seen: HashSet<(Vec<u64>, State)>,
    exhausted: bool,
}

impl Search<'_> {
    fn done(bits: &[u64], i: usize) -> bool {
        bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn explains(&mut self, bits: &mut Vec<u64>, state: State) -> bool {
        // Every operation with a known outcome must be placed; unknown ones may never happen.
        let pending_known = (0..self.ops.len()).filter(|&i| !Self::done(bits, i) && self.ops[i].completed_ns.is_some());
        let Some(frontier) = pending_known.map(|i| self.ops[i].completed_ns.expect("known")).min() else {
            return true;
        };
        for i in 0..self.ops.len() {
            // Only an operation invoked before the earliest pending completion can come next.
            if Self::done(bits, i) || self.ops[i].invoked_ns > frontier {
                continue;
            }
            let Some(next) = step(&self.ops[i], state) else { continue };
            bits[i / 64] |= 1 << (i % 64);
            if self.seen.len() >= SEARCH_STATES_MAX {
                self.exhausted = true;
                return false;
            }
            if self.seen.insert((bits.clone(), next)) && self.explains(bits, next) {
                return true;
            }
            bits[i / 64] &= !(1 << (i % 64));
        }
        false
    }
}

/// The answer of a check: explained, not explainable, or too costly to decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    Inconclusive,
}

fn search(ops: &[Op], initial: State) -> Verdict {
    assert!(ops.len() <= OPS_PER_KEY_MAX, "{} operations on one key; the checker handles {OPS_PER_KEY_MAX}", ops.len());
    let mut search = Search { ops, seen: HashSet::new(), exhausted: false };
    let mut bits = vec![0u64; ops.len().div_ceil(64).max(1)];
    match search.explains(&mut bits, initial) {
        true => Verdict::Linearizable,
        false if search.exhausted => Verdict::Inconclusive,
        false => Verdict::NotLinearizable,
    }
}

/// Checks one key's operations (any order) against a register that starts with `initial`.
/// Unknown writes whose value no read saw are first left out (not happening is always one of
/// their possibilities), which keeps the search small; only if that fails are they put back.
pub fn check_key(ops: &[Op], initial: State) -> Verdict {
    let observed: HashSet<Value> =
        ops.iter().filter_map(|o| if let Kind::Get { observed: Some(v) } = o.kind { Some(v) } else { None }).collect();
    let reduced: Vec<Op> = ops
        .iter()
        .filter(|o| !matches!(o.kind, Kind::Put { value, .. } if o.outcome == Outcome::Unknown && !observed.contains(&value)))
        .cloned()
        .collect();
    match search(&reduced, initial) {
        Verdict::Linearizable => Verdict::Linearizable,
        _ if reduced.len() == ops.len() => search(ops, initial),
        _ => search(ops, initial),
    }
}

/// Checks every key of a history (keys start absent); returns the anomalies found (a key whose
/// check was inconclusive counts as one).
pub fn check(history: &[Op]) -> Vec<Anomaly> {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    by_key
        .into_iter()
        .filter_map(|(key, mut ops)| {
            ops.sort_by_key(|o| o.invoked_ns);
            let verdict = check_key(&ops, None);
            (verdict != Verdict::Linearizable).then(|| Anomaly { key: key.to_string(), verdict, ops })
        })
        .collect()
}
