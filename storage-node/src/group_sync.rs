//! Group commit of shard writes: many writers, one `syncfs`.
//!
//! A shard write used to cost an `fdatasync` of its file and an `fsync` of its directory (two
//! when the blob's directory was new), each a journal commit the writer waits for. With
//! `GroupSync` a writer writes and renames its file without syncing, then calls [`GroupSync::sync`]:
//! if no sync is running it runs one `syncfs` of the shard file system for itself and everyone who
//! arrived meanwhile; if one is running, it waits for the next, which starts as soon as the running
//! one ends and covers every writer that arrived during it. `syncfs` makes all of it durable at
//! once: file data, renames, new directories (Linux reports writeback errors to it since 5.8, and
//! the file system's own since 5.17: on older kernels a node syncs each file instead,
//! `SyncMode::for_this_kernel`).
//!
//! A writeback error is reported once, to the first `syncfs` on our descriptor after it happened,
//! which need not be the round that covers the failed write: a writer's pages may fail while an
//! earlier round is running, and that round gets the error. So a writer notes the number of failed
//! rounds before it writes (`begin`), and `sync` refuses its write if any round failed since, its
//! own or another: a failure is never attributed to a round that excludes the write that caused it
//! (innocent writers in flight are refused too: they are retried, never acknowledged wrongly).
//!
//! Measured on this machine's disk (docs/benchmarks.md): for 16 KiB files, one `syncfs` per batch
//! reached 2.2-2.3x the files per second of 8 threads each syncing their own; for 1 MiB files
//! both were within noise. `IGNIFUGE_SHARD_SYNC=file` restores the per-file syncs (a node whose
//! file system is shared with heavy unrelated writers, which `syncfs` would wait for too).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// How a shard write is made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync` of the file, `fsync` of its directory (and of new parent directories).
    PerFile,
    /// One `syncfs` for every writer waiting at the same time.
    #[default]
    Group,
}

impl std::str::FromStr for SyncMode {
    type Err = String;

    /// `file` or `group`.
    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "file" => Ok(SyncMode::PerFile),
            "group" => Ok(SyncMode::Group),
            other => Err(format!("unknown shard sync mode {other:?} (file or group)")),
        }
    }
}

/// The first kernel whose `syncfs` returns both the writeback errors of the file system (5.8) and
/// the errors of its own `->sync_fs` (5.17: a journal commit that failed). Before it, a `syncfs`
/// could succeed over a write that never reached the disk, and a shard would be acknowledged
/// durable when it is not.
const SYNCFS_REPORTS_ERRORS_SINCE: (u32, u32) = (5, 17);

/// Whether a kernel of this release (`/proc/sys/kernel/osrelease`, "6.1.0-18-amd64") reports
/// every error of a `syncfs`. A release that does not parse is taken as not.
pub fn syncfs_reports_errors(release: &str) -> bool {
    let mut numbers = release.trim().split(|c: char| !c.is_ascii_digit()).map(str::parse::<u32>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= SYNCFS_REPORTS_ERRORS_SINCE,
        _ => false,
    }
}

impl SyncMode {
    /// The mode a node uses when `self` is asked for: group commit only where the running kernel
    /// reports every error of a `syncfs`; per-file syncs otherwise, with a warning.
    pub fn for_this_kernel(self) -> SyncMode {
        if self != SyncMode::Group {
            return self;
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        if syncfs_reports_errors(&release) {
            return self;
        }
        tracing::warn!(
            release = release.trim(),
            "this kernel's syncfs may not report write errors (needs {}.{}): shard writes sync each file instead",
            SYNCFS_REPORTS_ERRORS_SINCE.0,
            SYNCFS_REPORTS_ERRORS_SINCE.1
        );
        SyncMode::PerFile
    }
}

/// Failures remembered for writers that have not woken up yet.
const FAILURES_KEPT: usize = 64;

pub struct GroupSync {
    /// Any directory of the file system to sync.
    dir: File,
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// Tickets handed out: one per call to `sync`, in order.
    requested: u64,
    /// Every ticket up to this one is covered by a finished `syncfs`.
    completed: u64,
    running: bool,
    /// Tickets in `(from, to]` whose `syncfs` failed, and why.
    failures: Vec<(u64, u64, String)>,
    /// Rounds whose `syncfs` failed since the start.
    failed_rounds: u64,
}

/// What a writer notes before it writes (`GroupSync::begin`).
#[derive(Clone, Copy, Debug)]
pub struct WriteStart {
    failed_rounds: u64,
}

impl GroupSync {
    pub fn new(dir: &Path) -> io::Result<Self> {
        Ok(Self { dir: File::open(dir)?, state: Mutex::new(State::default()), done: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Call before writing anything that `sync` is to make durable.
    pub fn begin(&self) -> WriteStart {
        WriteStart { failed_rounds: self.lock().failed_rounds }
    }

    /// Returns once everything the calling thread wrote to the file system since `start` is
    /// durable, or with the error of a `syncfs` that failed meanwhile (the one that covered it, or
    /// an earlier one, which may have been handed this write's writeback error).
    pub fn sync(&self, start: WriteStart) -> io::Result<()> {
        let mut state = self.lock();
        state.requested += 1;
        let ticket = state.requested;
        loop {
            if state.completed >= ticket {
                return match state.failures.iter().find(|(from, to, _)| *from < ticket && ticket <= *to) {
                    Some((_, _, error)) => Err(io::Error::other(format!("syncfs: {error}"))),
                    None if state.failed_rounds != start.failed_rounds => Err(io::Error::other(
                        "syncfs failed while this write was in flight; its writeback may have been the one that failed",
                    )),
                    None => Ok(()),
                };
            }
            if state.running {
                state = self.done.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead a round for every ticket handed out so far: their writes finished before they
            // took their ticket, so before this syncfs starts.
            state.running = true;
            let (from, to) = (state.completed, state.requested);
            drop(state);
            let result = syncfs(&self.dir);
            state = self.lock();
            state.running = false;
            state.completed = to;
            if let Err(e) = result {
                tracing::error!(error = %e, writers = to - from, "syncfs failed: those shard writes are refused");
                state.failures.push((from, to, e.to_string()));
                state.failed_rounds += 1;
                if state.failures.len() > FAILURES_KEPT {
                    state.failures.remove(0);
                }
            }
            self.done.notify_all();
        }
    }
}

fn syncfs(dir: &File) -> io::Result<()> {
    // SAFETY: syncfs(2) on a file descriptor we own for the lifetime of the call.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::sync::Arc;

    #[test]
    fn group_commit_only_where_syncfs_reports_every_error() {
        for (release, reports) in [
            ("6.1.0-18-amd64", true),
            ("5.17.0", true),
            ("6.18.44-fc-v1272", true),
            ("10.0", true),
            ("5.16.20-generic", false),
            ("5.10.0-28-amd64", false),
            ("4.19.0", false),
            ("", false),
            ("garbage", false),
        ] {
            assert_eq!(syncfs_reports_errors(release), reports, "{release:?}");
        }
        assert_eq!(SyncMode::PerFile.for_this_kernel(), SyncMode::PerFile);
    }

    #[test]
    fn concurrent_writers_share_rounds_and_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let sync = Arc::new(GroupSync::new(dir.path()).unwrap());
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let (sync, path) = (sync.clone(), dir.path().join(format!("f{i}")));
                std::thread::spawn(move || {
                    for round in 0..10 {
                        let start = sync.begin();
                        let mut file = File::create(&path).unwrap();
                        file.write_all(format!("{i} {round}").as_bytes()).unwrap();
                        sync.sync(start).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let state = sync.lock();
        assert_eq!((state.requested, state.completed, state.running), (160, 160, false));
        assert!(state.failures.is_empty());
    }

    #[test]
    fn a_failed_round_fails_exactly_its_writers() {
        let dir = tempfile::tempdir().unwrap();
        let sync = GroupSync::new(dir.path()).unwrap();
        {
            let mut state = sync.lock();
            // Tickets 1..=3 were covered by a failed round; the next caller gets ticket 4.
            state.requested = 3;
            state.completed = 3;
            state.failures.push((0, 3, "EIO".into()));
        }
        sync.sync(sync.begin()).unwrap();
        let state = sync.lock();
        let failed = |ticket: u64| state.failures.iter().any(|(from, to, _)| *from < ticket && ticket <= *to);
        assert!(failed(1) && failed(3) && !failed(4));
    }

    /// The writeback error of a write in flight may be reported to an earlier round that does not
    /// cover it; that write must be refused too, although its own round succeeds.
    #[test]
    fn a_round_that_failed_while_a_write_was_in_flight_fails_it() {
        let dir = tempfile::tempdir().unwrap();
        let sync = GroupSync::new(dir.path()).unwrap();
        let in_flight = sync.begin();
        {
            // Another round fails (tickets 1..=2) after this writer began and before it syncs.
            let mut state = sync.lock();
            state.requested = 2;
            state.completed = 2;
            state.failures.push((0, 2, "EIO".into()));
            state.failed_rounds += 1;
        }
        let refused = sync.sync(in_flight).unwrap_err();
        assert!(refused.to_string().contains("in flight"), "{refused}");
        // A write that begins after the failure is not refused for it.
        sync.sync(sync.begin()).unwrap();
    }
}
