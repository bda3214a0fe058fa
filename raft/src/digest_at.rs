//! State digests taken at one log index on every replica, so that replicas can be compared while
//! the cluster is being written to (`ignifuge admin digest --agree`).
//!
//! Every replica applies the same entries in the same order, so the state right after entry N is
//! the same on all of them, whatever each one's pace. A replica asked for index N before it has
//! applied it keeps a mark; its apply loop, once entry N is in the store, takes a view of the
//! store between that apply and the next (`SmStore::apply`) and hashes it off the apply path
//! (`snapshot_file::digest`, the digest `admin digest` prints). A replica that had already applied
//! N when asked, or that jumped past it by installing a snapshot, answers `Missed`: the asker
//! chooses a later index. Damage on one replica that RocksDB's checksums missed (a bug, a
//! firmware fault writing a valid block at the wrong place) shows as a digest that differs from
//! the others' at the same index.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Marks a replica keeps at once. Asking for more forgets the lowest answered ones; while this
/// many are still to be taken or hashed, a new one is refused (`Failed`).
pub const DIGEST_MARKS_MAX: usize = 16;

/// What a replica says of the digest of its state at one index (`paths::DIGEST_AT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DigestAt {
    /// Not applied yet: the view will be taken when it is.
    Waiting,
    /// Applied; the view is being hashed.
    Computing,
    Done {
        digest: String,
    },
    Failed {
        error: String,
    },
    /// Applied (or passed by a snapshot install) before anyone asked: no view of it was kept.
    Missed {
        applied_index: u64,
    },
    /// The answer to a `forget`: no mark waits for this index any more.
    Forgotten,
}

/// The request of `paths::DIGEST_AT`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DigestAtRequest {
    pub index: u64,
    /// The asker gave the index up: a mark not yet taken is dropped, so no scan of the whole
    /// state is made for nobody (a hash already running finishes).
    #[serde(default)]
    pub forget: bool,
}

#[derive(Debug, Default)]
struct Marks {
    /// The last index applied to the store (an entry, or a snapshot installed).
    applied: u64,
    marks: BTreeMap<u64, DigestAt>,
    /// The `Computing` marks whose hash has begun (the others' views wait for `hashing`).
    hashing: std::collections::BTreeSet<u64>,
}

/// The marks of one replica, shared by its apply loop and the requests that ask.
#[derive(Debug, Default)]
pub struct DigestMarks {
    inner: Mutex<Marks>,
    /// Held while a view is hashed: one digest-at scan at a time per replica (snapshot builds
    /// and plain `admin digest` read the state on their own).
    hashing: Mutex<()>,
}

impl DigestMarks {
    pub fn new(applied: Option<u64>) -> Self {
        Self {
            inner: Mutex::new(Marks { applied: applied.unwrap_or(0), ..Default::default() }),
            hashing: Mutex::new(()),
        }
    }

    /// Hashes a view taken at a marked index, one at a time per replica; `finished` with the
    /// result, or with the failure if the hash panicked (a mark never stays `Computing`). A mark
    /// given up while its view waited for its turn is not hashed (the view is dropped).
    pub(crate) fn hash(&self, index: u64, hash: impl FnOnce() -> Result<String, String>) {
        let _one = self.hashing.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let mut inner = self.lock();
            if inner.marks.get(&index) != Some(&DigestAt::Computing) {
                return;
            }
            inner.hashing.insert(index);
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hash))
            .unwrap_or_else(|_| Err("the state digest panicked".to_string()));
        self.finished(index, result);
    }

    /// The asker gave `index` up: its mark is dropped unless it is being hashed or answered
    /// (then it says so, as `ask` would); a view waiting for its turn to be hashed is dropped.
    pub fn forget(&self, index: u64) -> DigestAt {
        let mut inner = self.lock();
        let hashing = inner.hashing.contains(&index);
        match inner.marks.get(&index) {
            Some(DigestAt::Waiting) | None => {
                inner.marks.remove(&index);
                DigestAt::Forgotten
            }
            Some(DigestAt::Computing) if !hashing => {
                inner.marks.remove(&index);
                DigestAt::Forgotten
            }
            Some(other) => other.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Marks> {
        // Every update leaves the map whole: a panic elsewhere cannot leave it half-written.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The digest at `index`: where it stands, marked to be taken if it has not been applied yet.
    /// Under the same lock as `applied`, so an index is either marked before its apply looks or
    /// answered `Missed`.
    pub fn ask(&self, index: u64) -> DigestAt {
        let mut inner = self.lock();
        if let Some(mark) = inner.marks.get(&index) {
            return mark.clone();
        }
        if index <= inner.applied {
            return DigestAt::Missed { applied_index: inner.applied };
        }
        if inner.marks.len() >= DIGEST_MARKS_MAX {
            let answered = inner.marks.iter().find(|(_, m)| !matches!(m, DigestAt::Waiting | DigestAt::Computing));
            match answered.map(|(i, _)| *i) {
                Some(oldest) => {
                    inner.marks.remove(&oldest);
                }
                None => {
                    return DigestAt::Failed {
                        error: format!("{DIGEST_MARKS_MAX} digests are pending on this replica"),
                    };
                }
            }
        }
        inner.marks.insert(index, DigestAt::Waiting);
        DigestAt::Waiting
    }

    /// Entry `index` is in the store: whether a view must be taken now (its mark then says
    /// `Computing` until `finished`).
    pub(crate) fn applied(&self, index: u64) -> bool {
        let mut inner = self.lock();
        inner.applied = inner.applied.max(index);
        match inner.marks.get_mut(&index) {
            Some(mark @ DigestAt::Waiting) => {
                *mark = DigestAt::Computing;
                true
            }
            _ => false,
        }
    }

    /// A snapshot up to `index` was installed: the marks it passed were never applied here.
    pub(crate) fn installed(&self, index: u64) {
        let mut inner = self.lock();
        inner.applied = inner.applied.max(index);
        let applied = inner.applied;
        for (_, mark) in inner.marks.range_mut(..=index) {
            if *mark == DigestAt::Waiting {
                *mark = DigestAt::Missed { applied_index: applied };
            }
        }
    }

    pub(crate) fn finished(&self, index: u64, result: Result<String, String>) {
        let mut inner = self.lock();
        inner.hashing.remove(&index);
        if let Some(mark @ DigestAt::Computing) = inner.marks.get_mut(&index) {
            *mark = match result {
                Ok(digest) => DigestAt::Done { digest },
                Err(error) => DigestAt::Failed { error },
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_taken_only_if_asked_for_before_its_apply() {
        let marks = DigestMarks::new(Some(10));
        assert_eq!(marks.ask(10), DigestAt::Missed { applied_index: 10 }, "already applied");
        assert_eq!(marks.ask(12), DigestAt::Waiting);
        assert!(!marks.applied(11), "not asked for");
        assert_eq!(marks.ask(11), DigestAt::Missed { applied_index: 11 });
        assert!(marks.applied(12));
        assert_eq!(marks.ask(12), DigestAt::Computing);
        assert!(!marks.applied(12), "taken once");
        marks.finished(12, Ok("abc".into()));
        assert_eq!(marks.ask(12), DigestAt::Done { digest: "abc".into() });
        assert_eq!(marks.ask(13), DigestAt::Waiting);
        marks.finished(13, Err("ignored: never taken".into()));
        assert!(marks.applied(13));
        marks.finished(13, Err("disk".into()));
        assert_eq!(marks.ask(13), DigestAt::Failed { error: "disk".into() });
    }

    #[test]
    fn a_snapshot_install_passing_a_mark_misses_it_and_old_marks_are_forgotten() {
        let marks = DigestMarks::new(None);
        assert_eq!(marks.ask(5), DigestAt::Waiting);
        assert_eq!(marks.ask(50), DigestAt::Waiting);
        marks.installed(20);
        assert_eq!(marks.ask(5), DigestAt::Missed { applied_index: 20 });
        assert_eq!(marks.ask(50), DigestAt::Waiting, "beyond the snapshot");
        assert!(!marks.applied(5), "a missed mark is never taken");
        // Two marks held (5 answered, 50 waiting): 14 more fit; the next forgets 5, the
        // answered one, never a pending one; with all pending a new one is refused.
        for index in 100..100 + DIGEST_MARKS_MAX as u64 - 2 {
            assert_eq!(marks.ask(index), DigestAt::Waiting);
        }
        assert_eq!(marks.ask(200), DigestAt::Waiting);
        assert!(!marks.lock().marks.contains_key(&5), "the answered mark is forgotten first");
        assert!(matches!(marks.ask(300), DigestAt::Failed { .. }), "all pending: refused");
        assert_eq!(marks.ask(50), DigestAt::Waiting, "a pending mark is never dropped for a new one");
        assert_eq!(marks.lock().marks.len(), DIGEST_MARKS_MAX);
        // Given up: dropped while waiting, kept once taken.
        assert_eq!(marks.forget(200), DigestAt::Forgotten);
        assert!(!marks.lock().marks.contains_key(&200));
        // Taken and waiting for its turn: given up, its view is never hashed.
        assert!(marks.applied(100));
        assert_eq!(marks.forget(100), DigestAt::Forgotten);
        marks.hash(100, || panic!("a view given up is hashed"));
        assert_eq!(marks.ask(100), DigestAt::Missed { applied_index: 100 });
        // Being hashed: kept, and a panicking hash is answered, not left computing.
        assert!(marks.applied(101));
        let during = std::cell::RefCell::new(None);
        marks.hash(101, || {
            *during.borrow_mut() = Some(marks.forget(101));
            panic!("a damaged store")
        });
        assert_eq!(during.into_inner(), Some(DigestAt::Computing), "being hashed: kept");
        assert!(matches!(marks.ask(101), DigestAt::Failed { .. }), "a panicking hash is answered, not left computing");
    }
}
