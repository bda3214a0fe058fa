//! Snapshot files: the metadata state at one applied position, written from one consistent view
//! of the store and read back in bounded pieces, so neither building, sending nor installing a
//! snapshot ever holds the whole state in memory.
//!
//! Format: one LZ4 frame (`lz4_flex`) holding a sequence of (u32 BE key length, key, u32 BE value
//! length, value), keys ascending, every key of the state except the replication layer's own
//! (`r/`). Binary, because the values are already serialised records; compressed, because they
//! are mostly JSON field names and hex hashes (a snapshot is written, fsynced and sent whole, and
//! every voter keeps one). Files written before snapshots were compressed hold the sequence
//! bare; `install` still reads them (an LZ4 frame opens with its magic number, which as a key
//! length would announce a 69 MB key, which no state holds).

use ignifuge_kv::{Durability, KvError, KvSnapshot, KvStore, WriteBatch, prefix_end};
use ignifuge_meta::keys::REPLICATION_PREFIX;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Keys read from the store per page while writing a snapshot or clearing the state.
const PAGE_KEYS: usize = 1024;
/// Bytes of pairs written to the store per batch while installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The state's key ranges: everything before and after `r/`.
fn state_ranges() -> [(Vec<u8>, Option<Vec<u8>>); 2] {
    let after = prefix_end(REPLICATION_PREFIX).expect("the prefix is not all 0xff");
    [(Vec::new(), Some(REPLICATION_PREFIX.to_vec())), (after, None)]
}

/// Calls `each` for every state pair of `view`, a page at a time.
fn for_each_state_pair(
    view: &dyn KvSnapshot,
    mut each: impl FnMut(&[u8], &[u8]) -> io::Result<()>,
) -> Result<(), KvError> {
    for (start, end) in state_ranges() {
        let mut from = start;
        loop {
            let page = view.scan(&from, end.as_deref(), PAGE_KEYS)?;
            for (k, v) in &page {
                each(k, v).map_err(|e| KvError::Engine(format!("writing a snapshot: {e}")))?;
            }
            match page.last() {
                Some((last, _)) if page.len() == PAGE_KEYS => {
                    from = last.clone();
                    from.push(0);
                }
                _ => break,
            }
        }
    }
    Ok(())
}

/// The LZ4 frame format's magic number, as the frame's first four bytes.
const LZ4_FRAME_MAGIC: [u8; 4] = 0x184D_2204u32.to_le_bytes();

/// Written after the last pair, inside the frame, where a key's length would be (no key is 4 GiB).
const END_MARK: u32 = u32::MAX;

/// Passes bytes on to the file and hashes them on the way.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What `write` wrote.
pub struct Written {
    /// Bytes of state (keys, values and their lengths) before compression: what building the
    /// snapshot cost, which paces the next one.
    pub state_bytes: u64,
    /// The BLAKE3 of the file as written (compressed): the receiver checks the file it got.
    pub file_hash: blake3::Hash,
}

/// Writes the state of `view` to `path`, compressed and fsynced.
pub fn write(view: &dyn KvSnapshot, path: &Path) -> Result<Written, KvError> {
    let io = |e: io::Error| KvError::Engine(format!("snapshot file {}: {e}", path.display()));
    let file = File::create(path).map_err(io)?;
    let hashing = Hashing { inner: BufWriter::with_capacity(1 << 20, file), hasher: blake3::Hasher::new() };
    // Linked blocks: each block may refer to the one before, as one stream would (independent
    // blocks compress worse); 4 MiB blocks, since the first write (4 bytes) would pick 64 KiB.
    let frame = lz4_flex::frame::FrameInfo::new()
        .content_checksum(true)
        .block_mode(lz4_flex::frame::BlockMode::Linked)
        .block_size(lz4_flex::frame::BlockSize::Max4MB);
    let mut out = lz4_flex::frame::FrameEncoder::with_frame_info(frame, hashing);
    let mut state_bytes = 0u64;
    for_each_state_pair(view, |k, v| {
        for item in [k, v] {
            out.write_all(&(item.len() as u32).to_be_bytes())?;
            out.write_all(item)?;
            state_bytes += 4 + item.len() as u64;
        }
        Ok(())
    })?;
    out.write_all(&END_MARK.to_be_bytes()).map_err(io)?;
    let mut hashing = out.finish().map_err(|e| io(e.into()))?;
    hashing.flush().map_err(io)?;
    let file_hash = hashing.hasher.finalize();
    let file = hashing.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(Written { state_bytes, file_hash })
}

/// The BLAKE3 of the state of `view`: its pairs as a snapshot holds them before compression
/// (replicas compare digests).
pub fn digest(view: &dyn KvSnapshot) -> Result<blake3::Hash, KvError> {
    // The pairs are gathered into 64 KiB pieces before hashing: BLAKE3 over a few bytes at a time
    // (a length, a short key) cannot use its SIMD width. The bytes hashed, and so the digest, are
    // the same.
    const PIECE_BYTES: usize = 64 * 1024;
    let mut hasher = blake3::Hasher::new();
    let mut piece = Vec::with_capacity(PIECE_BYTES);
    for_each_state_pair(view, |k, v| {
        for item in [k, v] {
            piece.extend_from_slice(&(item.len() as u32).to_be_bytes());
            piece.extend_from_slice(item);
            if piece.len() >= PIECE_BYTES {
                hasher.update(&piece);
                piece.clear();
            }
        }
        Ok(())
    })?;
    hasher.update(&piece);
    Ok(hasher.finalize())
}

/// The BLAKE3 of a snapshot file's contents (as `write` returns it, `Written::file_hash`).
pub fn hash_file(path: &Path) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
    io::copy(&mut input, &mut hasher)?;
    Ok(hasher.finalize())
}

/// Whether the file at `path` is the one `snapshot_id` names: the id ends with the first 16 hex
/// digits of the file's BLAKE3.
pub fn file_matches(path: &Path, snapshot_id: &str) -> io::Result<bool> {
    Ok(snapshot_id.ends_with(&hash_file(path)?.to_hex()[..16]))
}

/// What a snapshot file holds next.
enum Item {
    Bytes(Vec<u8>),
    /// `END_MARK`: a compressed file's state is complete.
    End,
    /// The input ended between two items.
    Eof,
}

fn read_item(input: &mut impl Read) -> io::Result<Item> {
    let mut len = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        match input.read(&mut len[filled..])? {
            0 if filled == 0 => return Ok(Item::Eof),
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated inside a length")),
            n => filled += n,
        }
    }
    let len = u32::from_be_bytes(len);
    if len == END_MARK {
        return Ok(Item::End);
    }
    let mut item = vec![0u8; len as usize];
    input.read_exact(&mut item)?;
    Ok(Item::Bytes(item))
}

/// The state pairs of the snapshot file at `path`, decompressed, and whether it was compressed
/// (a bare file was written before snapshots were).
fn open_pairs(path: &Path) -> io::Result<(Box<dyn Read>, bool)> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
    if input.fill_buf()?.starts_with(&LZ4_FRAME_MAGIC) {
        Ok((Box::new(lz4_flex::frame::FrameDecoder::new(input)), true))
    } else {
        Ok((Box::new(input), false))
    }
}

/// Replaces the state in `kv` with the snapshot `snapshot_id` in `path`, in bounded batches.
/// Not atomic by itself: the caller marks the install in progress first and clears the mark in
/// `last`, the final batch, so a crash in between is finished by installing the same file again.
/// The file is checked against the id first (whoever calls: a restart finishing an install
/// reads a file no receipt check just read), so a damaged, cut or empty file never replaces
/// the state. Returns the bytes of state installed, as `Written::state_bytes` counts them.
pub fn install(kv: &dyn KvStore, path: &Path, snapshot_id: &str, last: WriteBatch) -> Result<u64, KvError> {
    let io = |e: io::Error| KvError::Engine(format!("snapshot file {}: {e}", path.display()));
    if !file_matches(path, snapshot_id).map_err(io)? {
        return Err(KvError::Engine(format!("snapshot file {} is not snapshot {snapshot_id}", path.display())));
    }
    install_pairs(kv, path, last)
}

/// `install` once the file is known to be the right one: reads its pairs, and refuses a file
/// whose structure is not whole all the same.
fn install_pairs(kv: &dyn KvStore, path: &Path, last: WriteBatch) -> Result<u64, KvError> {
    let io = |e: io::Error| KvError::Engine(format!("snapshot file {}: {e}", path.display()));
    let truncated = || KvError::Engine(format!("snapshot file {}: truncated", path.display()));
    let (mut input, compressed) = open_pairs(path).map_err(io)?;
    // Clear the old state.
    for (start, end) in state_ranges() {
        loop {
            let page = kv.scan(&start, end.as_deref(), PAGE_KEYS)?;
            if page.is_empty() {
                break;
            }
            let mut batch = WriteBatch::new();
            for (k, _) in page {
                batch.delete(k);
            }
            kv.write(batch, Durability::Buffered)?;
        }
    }
    let mut batch = WriteBatch::new();
    let mut batch_bytes = 0;
    let mut state_bytes = 0u64;
    loop {
        let key = match read_item(&mut input).map_err(io)? {
            Item::Bytes(key) => key,
            // LZ4 frames end cleanly at any block boundary: only the mark says the state is whole.
            Item::End if compressed => match read_item(&mut input).map_err(io)? {
                Item::Eof => break,
                _ => return Err(KvError::Engine(format!("snapshot file {}: data after its end", path.display()))),
            },
            Item::Eof if !compressed => break,
            Item::End | Item::Eof => return Err(truncated()),
        };
        let Item::Bytes(value) = read_item(&mut input).map_err(io)? else { return Err(truncated()) };
        if key.starts_with(REPLICATION_PREFIX) {
            return Err(KvError::Engine("a snapshot may not hold replication keys".into()));
        }
        batch_bytes += key.len() + value.len();
        state_bytes += 8 + (key.len() + value.len()) as u64;
        batch.put(key, value);
        if batch_bytes >= INSTALL_BATCH_BYTES {
            kv.write(std::mem::take(&mut batch), Durability::Buffered)?;
            batch_bytes = 0;
        }
    }
    // The old state is gone and the new one is in but for its last batch: a crash here is
    // finished from the file at the next start (`INSTALLING_KEY`).
    if ignifuge_faults::hit("raft.snapshot.install").is_some() {
        return Err(KvError::Engine("fault point: the snapshot install stopped before its last batch".into()));
    }
    batch.ops.extend(last.ops);
    kv.write(batch, Durability::Synced)?;
    Ok(state_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_kv::MemoryKv;

    /// The digest is of the state pairs as a stream (each key and value after its length), not of
    /// how they are gathered for hashing: replicas of different builds must agree. Checked against
    /// a hash of the same stream fed item by item, with values around and past the 64 KiB pieces,
    /// `r/` (each replica's own Raft keys) left out, and small pairs after it, so the stream ends
    /// in a partial piece that spans the ranges on either side of `r/`.
    #[test]
    fn the_digest_is_of_the_state_pairs_stream_whatever_the_pieces() {
        let kv = MemoryKv::default();
        let mut batch = WriteBatch::new();
        let mut expected_pairs = Vec::new();
        for i in 0..24u32 {
            let key = format!("o/key-{i:05}").into_bytes();
            let value = vec![(i % 251) as u8; [0, 1, 100, 65_531, 65_536, 70_000][i as usize % 6]];
            batch.put(key.clone(), value.clone());
            expected_pairs.push((key, value));
        }
        for (key, value) in [("s/a", "after r/"), ("v/b", ""), ("z", "last")] {
            batch.put(key.as_bytes().to_vec(), value.as_bytes().to_vec());
            expected_pairs.push((key.as_bytes().to_vec(), value.as_bytes().to_vec()));
        }
        batch.put(b"r/applied".to_vec(), b"not state".to_vec());
        kv.write(batch, Durability::Synced).unwrap();
        expected_pairs.sort();
        let mut reference = blake3::Hasher::new();
        for (k, v) in &expected_pairs {
            for item in [k, v] {
                reference.update(&(item.len() as u32).to_be_bytes());
                reference.update(item);
            }
        }
        assert_eq!(digest(kv.snapshot().unwrap().as_ref()).unwrap(), reference.finalize());
    }

    fn put(kv: &MemoryKv, pairs: &[(&str, &str)]) {
        let mut batch = WriteBatch::new();
        for (k, v) in pairs {
            batch.put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
        kv.write(batch, Durability::Synced).unwrap();
    }

    #[test]
    fn a_snapshot_round_trips_the_state_and_leaves_replication_keys_alone() {
        let dir = tempfile::tempdir().unwrap();
        let source = MemoryKv::default();
        let many: Vec<(String, String)> = (0..3000).map(|i| (format!("o/b/{i:05}"), format!("v{i}"))).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        put(&source, &many);
        put(&source, &[("c/tenant/t", "{}"), ("r/log/1", "entry"), ("z", "last")]);
        let view = source.snapshot().unwrap();
        put(&source, &[("o/b/late", "not in the snapshot")]);
        let path = dir.path().join("snap");
        let written = write(view.as_ref(), &path).unwrap();
        assert_eq!(written.file_hash, hash_file(&path).unwrap());
        let file_bytes = std::fs::metadata(&path).unwrap().len();
        assert!(
            file_bytes * 2 < written.state_bytes,
            "{file_bytes} bytes of file for {} of state",
            written.state_bytes
        );

        let target = MemoryKv::default();
        put(&target, &[("o/stale", "gone after install"), ("r/vote", "kept")]);
        let mut last = WriteBatch::new();
        last.put(b"r/applied".to_vec(), b"7".to_vec());
        let id = format!("1-3000-{}", &written.file_hash.to_hex()[..16]);
        assert_eq!(install(&target, &path, &id, last).unwrap(), written.state_bytes);
        assert_eq!(target.get(b"o/stale").unwrap(), None);
        assert_eq!(target.get(b"o/b/late").unwrap(), None);
        assert_eq!(target.get(b"o/b/02999").unwrap(), Some(b"v2999".to_vec()));
        assert_eq!(target.get(b"z").unwrap(), Some(b"last".to_vec()));
        assert_eq!(target.get(b"r/vote").unwrap(), Some(b"kept".to_vec()));
        assert_eq!(target.get(b"r/log/1").unwrap(), None, "the source's log is not state");
        assert_eq!(target.get(b"r/applied").unwrap(), Some(b"7".to_vec()));
        assert_eq!(digest(target.snapshot().unwrap().as_ref()).unwrap(), digest(view.as_ref()).unwrap());
    }

    /// The pairs bare, as snapshot files were written before they were compressed.
    fn bare(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in pairs {
            for item in [k, v] {
                out.extend_from_slice(&(item.len() as u32).to_be_bytes());
                out.extend_from_slice(item.as_bytes());
            }
        }
        out
    }

    #[test]
    fn a_snapshot_written_before_compression_still_installs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        std::fs::write(&path, bare(&[("a", "1"), ("o/b/k", "record")])).unwrap();
        let target = MemoryKv::default();
        put(&target, &[("o/stale", "gone")]);
        let id = format!("1-2-{}", &hash_file(&path).unwrap().to_hex()[..16]);
        assert_eq!(install(&target, &path, &id, WriteBatch::new()).unwrap(), 8 + 2 + 8 + 11);
        assert_eq!(target.get(b"o/b/k").unwrap(), Some(b"record".to_vec()));
        assert_eq!(target.get(b"o/stale").unwrap(), None);
    }

    /// Where each block of an LZ4 frame written by `write` begins, and where its trailer (end
    /// mark and content checksum) does: the frame header is 7 bytes (magic, flags, block
    /// descriptor, header checksum), each block a 4-byte little-endian size (its top bit says
    /// stored uncompressed) and that many bytes.
    fn block_boundaries(file: &[u8]) -> (Vec<usize>, usize) {
        let mut at = 7;
        let mut starts = Vec::new();
        loop {
            let size = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) & 0x7fff_ffff;
            if size == 0 {
                return (starts, at);
            }
            starts.push(at);
            at += 4 + size as usize;
        }
    }

    #[test]
    fn a_truncated_snapshot_is_refused_wherever_it_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let source = MemoryKv::default();
        // Enough pairs for several 4 MiB LZ4 blocks, whose boundaries end a frame cleanly.
        let many: Vec<(String, String)> =
            (0..120_000).map(|i| (format!("o/b/{i:06}"), format!("{:064x}", i * 7919))).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        put(&source, &many);
        let path = dir.path().join("snap");
        let written = write(source.snapshot().unwrap().as_ref(), &path).unwrap();
        let id = format!("1-120000-{}", &written.file_hash.to_hex()[..16]);
        let bytes = std::fs::read(&path).unwrap();
        let whole = digest(source.snapshot().unwrap().as_ref()).unwrap();
        let (blocks, trailer) = block_boundaries(&bytes);
        assert!(blocks.len() >= 2, "{} blocks in {} bytes", blocks.len(), bytes.len());
        assert_eq!(trailer, bytes.len() - 8, "the end mark and the content checksum close the frame");
        // The structure alone refuses every cut but those in the frame's trailer, after the
        // block holding `END_MARK`: they lose no pair (a block decodes whole or not at all).
        let cuts = (1..bytes.len()).step_by(bytes.len() / 40).chain(blocks.iter().copied()).chain([4, 7, trailer - 1]);
        for cut in cuts.chain(trailer..bytes.len()) {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let target = MemoryKv::default();
            match install_pairs(&target, &path, WriteBatch::new()) {
                Err(_) => {}
                Ok(_) if cut >= trailer => assert_eq!(digest(target.snapshot().unwrap().as_ref()).unwrap(), whole),
                Ok(_) => panic!("cut at {cut} of {} installed", bytes.len()),
            }
            // Checked against its id, no cut file installs at all, nor an empty one.
            assert!(install(&MemoryKv::default(), &path, &id, WriteBatch::new()).is_err(), "cut at {cut}");
        }
        std::fs::write(&path, b"").unwrap();
        assert!(install(&MemoryKv::default(), &path, &id, WriteBatch::new()).is_err(), "an empty file");
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"more");
        std::fs::write(&path, &longer).unwrap();
        assert!(install(&MemoryKv::default(), &path, &id, WriteBatch::new()).is_err(), "bytes after the frame");

        let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
        encoder.write_all(&bare(&[("a", "1")])).unwrap();
        encoder.write_all(&END_MARK.to_be_bytes()).unwrap();
        encoder.write_all(&bare(&[("b", "2")])).unwrap();
        std::fs::write(&path, encoder.finish().unwrap()).unwrap();
        assert!(install_pairs(&MemoryKv::default(), &path, WriteBatch::new()).is_err(), "pairs after the end mark");
        std::fs::write(&path, &bytes).unwrap();
        let target = MemoryKv::default();
        install(&target, &path, &id, WriteBatch::new()).unwrap();
        assert_eq!(digest(target.snapshot().unwrap().as_ref()).unwrap(), whole);

        // A bare file cut inside the second pair's length prefix (the first pair is 4+1+4+1 bytes).
        std::fs::write(&path, &bare(&[("a", "1"), ("b", "2")])[..12]).unwrap();
        assert!(
            install_pairs(&MemoryKv::default(), &path, WriteBatch::new()).is_err(),
            "a cut length is not a clean end"
        );
    }
}
