//! A shard received into memory laid out as its file is (the hash's room, then the bytes), in a
//! buffer aligned for `O_DIRECT`, so that a large parity shard goes to its file straight from
//! the buffer the network filled: the kernel does not copy it into the page cache first. That
//! copy was the storage nodes' largest cost in a 64 MiB PUT (docs/benchmarks.md, "Where a 64 MiB
//! PUT's ... CPU go"). Only parity shards: a GET reads data shards, which the page cache keeps
//! for the next reader (writing every large shard directly made a 64 MiB GET right after its PUT
//! cost 1.23x the CPU, its data coming from the disk: docs/benchmarks.md, "Parity shards around
//! the page cache"); parity is read to rebuild, by the scrubber, and by a GET only when a data
//! shard fails or is late (a hedge, which then reads from the disk), so caching it mostly
//! pushes data out (a node set with `AroundCache::All` writes every large shard directly, for
//! stores that mostly read old data). Small shards, and filesystems that refuse direct I/O, go
//! through the page cache as before; reads always do.

use std::collections::TryReserveError;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes of the BLAKE3 hash that opens every shard file.
pub const HASH_BYTES: usize = 32;
/// Alignment of a direct write's buffer address, file offset and length (4 KiB: at least any
/// device's logical block).
const DIRECT_ALIGN_BYTES: usize = 4096;
/// Shards at least this long may be written directly; a direct write of a few KiB would cost a
/// synchronous device round trip for what the page cache absorbs.
pub const DIRECT_MIN_BYTES: usize = 128 * 1024;

/// A shard's file contents in memory: `HASH_BYTES` of room for the hash, then up to the
/// capacity's bytes of shard, the first at an address aligned for direct I/O.
pub struct ShardBuffer {
    raw: Vec<u8>,
    /// Where the file's first byte is in `raw` (aligned).
    start: usize,
    capacity: usize,
}

/// A body longer than the buffer announced for it.
#[derive(Debug)]
pub struct Overflow;

impl ShardBuffer {
    /// An empty buffer for a shard of at most `capacity` bytes, or the allocator's refusal.
    pub fn with_capacity(capacity: usize) -> Result<Self, TryReserveError> {
        // Allocated once and never moved (`extend` stays within it); not zeroed but for the
        // alignment's slack and the hash's room: the shard's bytes are copied in once.
        let mut raw: Vec<u8> = Vec::new();
        raw.try_reserve_exact(HASH_BYTES + capacity + DIRECT_ALIGN_BYTES)?;
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN_BYTES).min(DIRECT_ALIGN_BYTES);
        raw.resize(start + HASH_BYTES, 0);
        Ok(Self { raw, start, capacity })
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice(data: &[u8]) -> Result<Self, TryReserveError> {
        let mut buffer = Self::with_capacity(data.len())?;
        buffer.extend(data).expect("the buffer was made for these bytes");
        Ok(buffer)
    }

    /// Appends `chunk` to the shard's bytes.
    pub fn extend(&mut self, chunk: &[u8]) -> Result<(), Overflow> {
        if self.len() + chunk.len() > self.capacity {
            return Err(Overflow);
        }
        self.raw.extend_from_slice(chunk);
        Ok(())
    }

    /// The shard's bytes.
    pub fn data(&self) -> &[u8] {
        &self.raw[self.start + HASH_BYTES..]
    }

    pub fn len(&self) -> usize {
        self.raw.len() - self.start - HASH_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's contents: `hash`, then the bytes.
    pub(crate) fn seal(mut self, hash: &blake3::Hash) -> SealedShard {
        self.raw[self.start..self.start + HASH_BYTES].copy_from_slice(hash.as_bytes());
        SealedShard(self)
    }
}

/// A shard's file contents, its hash written in front of its bytes.
pub struct SealedShard(ShardBuffer);

impl SealedShard {
    /// The whole file.
    pub(crate) fn file(&self) -> &[u8] {
        &self.0.raw[self.0.start..]
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// How a shard is kept once written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Through the page cache, which keeps it for the next reader (data shards).
    Cached,
    /// Around the page cache when it is large (parity shards: read only to rebuild).
    Bypassed,
}

/// Which large shards a node writes around the page cache (`IGNIFUGE_SHARDS_AROUND_CACHE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AroundCache {
    /// Parity shards only (the default): the page cache keeps data shards for the GETs that
    /// follow a PUT.
    #[default]
    Parity,
    /// Every shard: for a store whose reads are mostly of data written long ago. 64 MiB PUTs were
    /// 1.25x faster at 0.79x the CPU in a first A/B (a GET right after its PUT 0.82x as fast, its
    /// data from the disk) and 1.15-1.19x at 0.85-0.90x in a second (those GETs within the
    /// noise; docs/benchmarks.md, "Parity shards around the page cache").
    All,
}

impl AroundCache {
    /// How a shard its writer asked to keep as `asked` is kept on this node.
    pub fn caching(self, asked: Caching) -> Caching {
        match self {
            AroundCache::Parity => asked,
            AroundCache::All => Caching::Bypassed,
        }
    }
}

impl std::str::FromStr for AroundCache {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "parity" => Ok(AroundCache::Parity),
            "all" => Ok(AroundCache::All),
            other => Err(format!("{other:?} is neither `parity` nor `all`")),
        }
    }
}

/// Writes `shard` to a new file at `path`, not synced: a large shard to be `Bypassed` directly
/// when `direct` says the filesystem takes direct writes, else through the page cache. A
/// filesystem that refuses to open a file for direct I/O (EINVAL) turns `direct` off for good.
pub(crate) fn write_new_file(
    path: &Path,
    shard: &SealedShard,
    caching: Caching,
    direct: &AtomicBool,
) -> io::Result<File> {
    write_new_file_with(path, shard, caching, direct, open_direct)
}

pub(crate) fn open_direct(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create(true).truncate(true).custom_flags(libc::O_DIRECT).open(path)
}

/// `write_new_file` with the opening of a file for direct I/O given (tests stand in for a
/// filesystem that refuses, and count the calls).
fn write_new_file_with(
    path: &Path,
    shard: &SealedShard,
    caching: Caching,
    direct: &AtomicBool,
    open_direct: fn(&Path) -> io::Result<File>,
) -> io::Result<File> {
    let file = shard.file();
    let aligned = file.as_ptr().align_offset(DIRECT_ALIGN_BYTES) == 0;
    if caching == Caching::Bypassed && shard.len() >= DIRECT_MIN_BYTES && aligned && direct.load(Ordering::Relaxed) {
        match write_direct(path, file, open_direct) {
            Ok(cached) => return Ok(cached),
            // Refused at the open (no direct I/O here) or at the write (an alignment this
            // device does not take): through the page cache from now on, this shard included.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                if direct.swap(false, Ordering::Relaxed) {
                    tracing::warn!("direct I/O refused ({e}): large shards go through the page cache");
                }
            }
            Err(e) => return Err(e),
        }
    }
    let mut cached = File::create(path)?;
    cached.write_all(file)?;
    Ok(cached)
}

/// The file's aligned head (all of it but its last partial block) directly, the tail (under
/// 4 KiB) through the cache from a second descriptor, which is returned: padding the file to the
/// block and cutting it back instead made the kernel read the last block back from the disk to
/// zero its end. (One descriptor or the other, `fdatasync` syncs the inode.)
fn write_direct(path: &Path, file: &[u8], open_direct: fn(&Path) -> io::Result<File>) -> io::Result<File> {
    let head = file.len() / DIRECT_ALIGN_BYTES * DIRECT_ALIGN_BYTES;
    let mut direct_file = open_direct(path)?;
    direct_file.write_all(&file[..head])?;
    drop(direct_file);
    let cached = OpenOptions::new().write(true).open(path)?;
    cached.write_all_at(&file[head..], head as u64)?;
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(data: &[u8]) -> SealedShard {
        ShardBuffer::from_slice(data).unwrap().seal(&blake3::hash(data))
    }

    #[test]
    fn a_buffer_holds_the_shard_after_the_hash_at_an_aligned_address() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut buffer = ShardBuffer::with_capacity(data.len()).unwrap();
        for chunk in data.chunks(65_536) {
            buffer.extend(chunk).unwrap();
        }
        assert!(buffer.extend(b"x").is_err(), "past its capacity");
        assert_eq!(buffer.data(), &data[..]);
        let shard = buffer.seal(&blake3::hash(&data));
        assert_eq!(&shard.file()[..HASH_BYTES], blake3::hash(&data).as_bytes());
        assert_eq!(&shard.file()[HASH_BYTES..], &data[..]);
        assert_eq!(shard.file().as_ptr() as usize % DIRECT_ALIGN_BYTES, 0);
        assert!(ShardBuffer::with_capacity(usize::MAX / 2).is_err(), "an impossible size is refused, not fatal");
    }

    #[test]
    fn shards_are_written_whole_around_or_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        // Whether this filesystem takes direct I/O at all (tmpfs did not before Linux 6.6).
        let takes_direct = open_direct(&dir.path().join("probe")).is_ok();
        let lengths = [0, 1, 4064, 4065, DIRECT_MIN_BYTES - 1, DIRECT_MIN_BYTES, DIRECT_MIN_BYTES + 4064, 1_048_589];
        for len in lengths {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            let shard = sealed(&data);
            for caching in [Caching::Bypassed, Caching::Cached] {
                let path = dir.path().join(format!("{len}-{caching:?}"));
                let direct = AtomicBool::new(true);
                write_new_file(&path, &shard, caching, &direct).unwrap();
                assert_eq!(direct.load(Ordering::Relaxed), takes_direct, "direct writes turned off by a write");
                let file = std::fs::read(&path).unwrap();
                assert_eq!(file.len(), HASH_BYTES + len, "{len} bytes, {caching:?}");
                assert_eq!(&file[..HASH_BYTES], blake3::hash(&data).as_bytes());
                assert_eq!(&file[HASH_BYTES..], &data[..]);
            }
        }
    }

    #[test]
    fn a_filesystem_that_refuses_direct_io_gets_parity_through_the_page_cache() {
        fn refused(_: &Path) -> io::Result<File> {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        }
        fn failed(_: &Path) -> io::Result<File> {
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; DIRECT_MIN_BYTES + 5];
        let shard = sealed(&data);
        let direct = AtomicBool::new(true);
        let path = dir.path().join("shard");
        write_new_file_with(&path, &shard, Caching::Bypassed, &direct, refused).unwrap();
        assert!(!direct.load(Ordering::Relaxed), "direct writes stay on after a refusal");
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file.len(), HASH_BYTES + data.len());
        assert_eq!(&file[HASH_BYTES..], &data[..]);
        // Another error is the disk's, not the filesystem's refusal: it is the write's answer.
        let direct = AtomicBool::new(true);
        assert!(write_new_file_with(&path, &shard, Caching::Bypassed, &direct, failed).is_err());
        assert!(direct.load(Ordering::Relaxed));
    }

    #[test]
    fn only_large_parity_shards_are_written_directly() {
        static OPENED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        fn counted(path: &Path) -> io::Result<File> {
            OPENED.fetch_add(1, Ordering::SeqCst);
            open_direct(path)
        }
        let dir = tempfile::tempdir().unwrap();
        if open_direct(&dir.path().join("probe")).is_err() {
            return; // no direct I/O on this filesystem: the test above covers the fallback
        }
        let cases = [
            (DIRECT_MIN_BYTES, Caching::Bypassed, true),
            (DIRECT_MIN_BYTES - 1, Caching::Bypassed, false),
            (DIRECT_MIN_BYTES, Caching::Cached, false),
            (1 << 20, Caching::Cached, false),
            (1 << 20, Caching::Bypassed, true),
        ];
        for (len, caching, directly) in cases {
            let data = vec![3u8; len];
            let before = OPENED.load(Ordering::SeqCst);
            let path = dir.path().join(format!("{len}-{caching:?}"));
            write_new_file_with(&path, &sealed(&data), caching, &AtomicBool::new(true), counted).unwrap();
            assert_eq!(OPENED.load(Ordering::SeqCst) - before, usize::from(directly), "{len} bytes, {caching:?}");
            assert_eq!(std::fs::read(&path).unwrap().len(), HASH_BYTES + len);
        }
    }
}
