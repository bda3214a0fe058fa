//! Issue 15 point 5 at 10 million objects through the processes: fills one bucket of a stopped
//! `ignifuge dev` cluster with COUNT objects by writing their records straight into every
//! metadata voter's store, where filling through the S3 API (about 1000 PUT/s here) would take
//! hours.
//!
//!   scale-seed DATA_DIR BUCKET TEMPLATE_KEY KEY_PREFIX COUNT
//!
//! TEMPLATE_KEY names an object the cluster stored through the API (an s3bench PUT of a small
//! object, whose body lives inline in its record). Each new object `KEY_PREFIX<i>`, i in
//! 0..COUNT, gets that record with its key changed: the bytes the state machine's apply of a
//! PutObject of a new key in an unversioned bucket writes (`o/<bucket>/<key>`, the record, and
//! nothing else), encoded by the metadata's own `stored::encode_record`. The pairs go into
//! RocksDB table files once, which are then ingested into every voter's store (`DATA_DIR/*/meta`).
//! Every voter gets the same pairs at the same applied log index, so the replicas stay one state
//! (`ignifuge admin digest --agree` checks it), without log entries: the Raft log does not grow,
//! and snapshots already on disk do not hold the new objects (a replica that installed one would
//! lose them, so nothing may lag behind a snapshot while the seeded cluster runs).
//!
//! Refuses to run unless every voter's store opens (RocksDB's lock: no process may hold it), all
//! hold the same template record, and none holds a key under KEY_PREFIX. Prints one JSON line.

use ignifuge_kv::{KvStore, RocksKv};
use ignifuge_meta::{DataLocation, NULL_VERSION, keys, stored};
use ignifuge_types::{BucketName, ObjectKey};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Pairs per table file: about 100 MB of compressed records for small inline objects.
const PAIRS_PER_FILE: usize = 1_000_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, data_dir, bucket, template, prefix, count] = &args[..] else {
        anyhow::bail!("usage: scale-seed DATA_DIR BUCKET TEMPLATE_KEY KEY_PREFIX COUNT");
    };
    let (data_dir, count): (&Path, usize) = (Path::new(data_dir), count.parse()?);
    let bucket = BucketName::new(bucket.as_str());
    let started = Instant::now();

    let mut voters: Vec<PathBuf> = std::fs::read_dir(data_dir)?
        .flatten()
        .map(|entry| entry.path().join("meta"))
        .filter(|meta| meta.is_dir())
        .collect();
    voters.sort();
    anyhow::ensure!(!voters.is_empty(), "no metadata store under {}", data_dir.display());

    // The template, the same on every voter; no voter holds a key under the prefix.
    let template_key = keys::object(&bucket, &ObjectKey::new(template.as_str()));
    let prefix_key = keys::object(&bucket, &ObjectKey::new(prefix.as_str()));
    let mut stored_template: Option<Vec<u8>> = None;
    for voter in &voters {
        let kv =
            RocksKv::open(voter).map_err(|e| anyhow::anyhow!("{}: {e} (is the cluster stopped?)", voter.display()))?;
        let value =
            kv.get(&template_key)?.ok_or_else(|| anyhow::anyhow!("{}: no object {template}", voter.display()))?;
        anyhow::ensure!(
            stored_template.as_ref().is_none_or(|first| *first == value),
            "{}: the template differs between voters",
            voter.display()
        );
        let end = ignifuge_kv::prefix_end(&prefix_key);
        anyhow::ensure!(
            kv.scan(&prefix_key, end.as_deref(), 1)?.is_empty(),
            "{}: keys under {prefix} exist already",
            voter.display()
        );
        stored_template = Some(value);
    }
    let stored_template = stored_template.expect("at least one voter");
    let mut record = stored::decode_record(&stored_template).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(stored::encode_record(&record) == stored_template, "the template does not re-encode to its bytes");
    anyhow::ensure!(
        record.version.0 == NULL_VERSION
            && !record.versioned
            && record.sequence == 0
            && !record.delete_marker
            && record.parts.len() == 1
            && matches!(record.parts[0].location, DataLocation::Inline(_)),
        "the template must be the only version of an inline object in an unversioned bucket"
    );

    // Keys in the store's order, then table files of PAIRS_PER_FILE pairs.
    let mut names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    names.sort_unstable();
    let tables_dir = data_dir.join("scale-seed-tables");
    std::fs::create_dir_all(&tables_dir)?;
    let mut files = Vec::new();
    let mut table_bytes = 0;
    for (n, chunk) in names.chunks(PAIRS_PER_FILE).enumerate() {
        let path = tables_dir.join(format!("{n:04}.sst"));
        let pairs = chunk.iter().map(|name| {
            record.key = ObjectKey::new(name.as_str());
            (keys::object(&bucket, &record.key), stored::encode_record(&record))
        });
        table_bytes += RocksKv::write_table_file(&path, pairs)?;
        files.push(path);
    }
    let written_secs = started.elapsed().as_secs_f64();

    // Every voter: the same files, then a read of the first and last new keys.
    let (first, last) = (names.first(), names.last());
    for voter in &voters {
        let kv = RocksKv::open(voter)?;
        kv.ingest_table_files(&files)?;
        for name in [first, last].into_iter().flatten() {
            let value = kv.get(&keys::object(&bucket, &ObjectKey::new(name.as_str())))?;
            let loaded = stored::decode_record(&value.unwrap_or_default()).map_err(anyhow::Error::msg)?;
            anyhow::ensure!(loaded.key.0 == *name, "{}: {name} did not load", voter.display());
        }
    }
    std::fs::remove_dir_all(&tables_dir)?;
    println!(
        r#"{{"objects":{count},"voters":{},"table_bytes":{table_bytes},"bytes_per_object":{:.1},"tables_secs":{written_secs:.1},"secs":{:.1}}}"#,
        voters.len(),
        table_bytes as f64 / count.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
