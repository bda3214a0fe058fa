//! Issue 15 point 5 at 10 million objects through the processes: fills one bucket of a stopped
//! `ignifuge dev` cluster with COUNT objects by writing their records straight into every
//! metadata replica's store (voters and learners), where filling through the S3 API (about 1000
//! PUT/s here) would take hours.
//!
//!   scale-seed DATA_DIR BUCKET TEMPLATE_KEY KEY_PREFIX COUNT
//!   (build: cargo build --release -p ignifuge-benches --features scale-seed --bin scale-seed)
//!
//! TEMPLATE_KEY names an object the cluster stored through the API (an s3bench PUT of a small
//! object, whose body lives inline in its record). Object `KEY_PREFIX<i>`, i in 0..COUNT, gets
//! that record with its key, its body (as long as the template's, bytes of its own, so that
//! compression sees what distinct objects would give it), its ETag and checksums (recomputed over
//! that body, of the template's algorithms) and its date (i ms before the template's) changed:
//! the state pair that applying a PutObject of a new key in an unversioned bucket writes
//! (`o/<bucket>/<key>`, encoded by the metadata's own `stored::encode_record`; the apply adds
//! only its bookkeeping: the proposal's outcome and age, the clock, housekeeping cursors and, in
//! the Raft layer, the applied index; meta's unit test
//! `a_put_of_a_new_key_in_an_unversioned_bucket_writes_its_record_and_nothing_else`). The pairs
//! go into sorted RocksDB table files once, which are then ingested into every replica's store.
//! Every replica gets the same pairs, so they stay one state (`ignifuge admin digest --agree`
//! checks it), without log entries: the Raft log does not grow, and snapshots already on disk do
//! not hold the new objects (a replica that installed one would lose them, so nothing may lag
//! behind a snapshot while the seeded cluster runs).
//!
//! Refuses to run unless: every replica the stored layout names (the cluster file's if none is
//! stored) has a store under `DATA_DIR/<node>/meta` that opens (RocksDB's lock: no process may
//! hold it), and no other node directory has one; all hold the same layout, the same template
//! record and the same bucket record, with versioning never set; none holds a key under
//! KEY_PREFIX; all have applied the same log index and none is in the middle of installing a
//! snapshot (its restart would finish the install, from a snapshot without the seeded objects);
//! the template is consistent (its ETag and checksums are its body's); the disk has room for the
//! files and every copy. It holds every store open from the first check to the last ingest, and
//! on a failure once a replica has ingested, says which replicas hold the objects. Prints one
//! JSON line.

use ignifuge_gateway::checksums::{Algorithm, BodyHasher};
use ignifuge_kv::{KvStore, RocksKv};
use ignifuge_meta::{BucketRecord, DataLocation, LayoutRecord, NULL_VERSION, keys, stored};
use ignifuge_rpc::ClusterConfig;
use ignifuge_types::{BucketName, ObjectKey};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Pairs per table file.
const PAIRS_PER_FILE: usize = 1_000_000;
/// What one replica's store reports of its memory and files once loaded.
const PROPERTIES: [&str; 3] =
    ["rocksdb.estimate-table-readers-mem", "rocksdb.num-files-at-level0", "rocksdb.estimate-live-data-size"];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, data_dir, bucket, template, prefix, count] = &args[..] else {
        anyhow::bail!("usage: scale-seed DATA_DIR BUCKET TEMPLATE_KEY KEY_PREFIX COUNT");
    };
    let (data_dir, count): (&Path, usize) = (Path::new(data_dir), count.parse()?);
    anyhow::ensure!(count > 0, "nothing to seed");
    let bucket = BucketName::new(bucket.as_str());
    let started = Instant::now();

    let replicas = open_replicas(data_dir)?;
    let template_key = keys::object(&bucket, &ObjectKey::new(template.as_str()));
    let prefix_key = keys::object(&bucket, &ObjectKey::new(prefix.as_str()));
    let prefix_end = ignifuge_kv::prefix_end(&prefix_key);
    let same = |key: &[u8], what: &str| -> anyhow::Result<Vec<u8>> {
        let mut values = BTreeSet::new();
        for (node, kv) in &replicas {
            values.insert(kv.get(key)?.ok_or_else(|| anyhow::anyhow!("{node}: no {what}"))?);
        }
        anyhow::ensure!(values.len() == 1, "the replicas hold different {what}s");
        Ok(values.pop_first().expect("one value"))
    };
    // A stop can leave a replica an entry or two behind the others: then start and stop again.
    let applied = same(b"r/applied", "applied log position")?;
    for (node, kv) in &replicas {
        anyhow::ensure!(kv.get(b"r/installing")?.is_none(), "{node} is in the middle of a snapshot install");
    }
    let bucket_record: BucketRecord = serde_json::from_slice(&same(&keys::bucket(&bucket), "bucket record")?)?;
    anyhow::ensure!(bucket_record.versioning.is_none(), "versioning was set on {bucket}");
    let stored_template = same(&template_key, "template record")?;
    for (node, kv) in &replicas {
        anyhow::ensure!(
            kv.scan(&prefix_key, prefix_end.as_deref(), 1)?.is_empty(),
            "{node}: keys under {prefix} exist already"
        );
    }
    let template = stored::decode_record(&stored_template).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        stored::encode_record(&template) == stored_template,
        "the template does not re-encode to its bytes"
    );
    let Some(DataLocation::Inline(template_body)) = template.parts.first().map(|p| &p.location) else {
        anyhow::bail!("the template's body is not inline");
    };
    anyhow::ensure!(
        template.version.0 == NULL_VERSION
            && !template.versioned
            && template.sequence == 0
            && !template.promoted
            && !template.delete_marker
            && !template.multipart
            && template.parts.len() == 1
            && !template_body.is_empty(),
        "the template must be the only, null version of a one-part inline object"
    );
    let algorithms: Vec<Algorithm> =
        [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256]
            .into_iter()
            .filter(|a| a.get(&template.checksums).is_some())
            .collect();
    let body_len = template_body.len();
    let digests = |body: &[u8]| {
        let mut hasher = BodyHasher::new(&algorithms);
        hasher.update(body);
        let digests = hasher.finalize();
        let etag: String = digests.md5.iter().map(|b| format!("{b:02x}")).collect();
        let mut checksums = digests.checksums;
        checksums.checksum_type = template.checksums.checksum_type.clone();
        (etag, checksums)
    };
    anyhow::ensure!(
        digests(template_body) == (template.etag.clone(), template.checksums.clone())
            && template.parts[0].etag == template.etag
            && template.parts[0].checksums == template.checksums,
        "the template's ETag or checksums are not its body's: they would not be recomputed as the gateway does"
    );

    // Keys in the store's order, then table files of PAIRS_PER_FILE pairs.
    let mut names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    names.sort_unstable();
    let record_of = |name: &str| {
        let i: u64 = name[prefix.len()..].parse().expect("a key this tool named");
        let mut body = vec![0u8; body_len];
        blake3::Hasher::new().update(&i.to_le_bytes()).update(&stored_template).finalize_xof().fill(&mut body);
        let (etag, checksums) = digests(&body);
        let mut record = template.clone();
        record.key = ObjectKey::new(name);
        record.etag = etag.clone();
        record.checksums = checksums.clone();
        record.last_modified_ms -= i as i64;
        let part = &mut record.parts[0];
        (part.etag, part.checksums, part.location) = (etag, checksums, DataLocation::Inline(body));
        part.last_modified_ms = record.last_modified_ms;
        (keys::object(&bucket, &record.key), stored::encode_record(&record))
    };
    let tables_dir = data_dir.join("scale-seed-tables");
    let (files, table_bytes) = match write_tables(&tables_dir, &names, &record_of, &replicas) {
        Ok(written) => written,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tables_dir);
            return Err(e.context("nothing was ingested"));
        }
    };
    let tables_secs = started.elapsed().as_secs_f64();

    // Every replica: the same files, then a read of the first and last new keys.
    let (first, last) = (&names[0], &names[names.len() - 1]);
    for (n, (node, kv)) in replicas.iter().enumerate() {
        // An ingest is atomic: a replica whose ingest failed holds none of the objects; one whose
        // read-back failed holds them, unverified.
        let failed = |e: &dyn std::fmt::Display, ingested: bool| {
            let hold: Vec<&String> = replicas[..n + usize::from(ingested)].iter().map(|(node, _)| node).collect();
            anyhow::anyhow!(
                "{node}: {e}. THE REPLICAS NOW DIFFER: {hold:?} hold the seeded objects, the others do not; \
                 remove {} and start over",
                data_dir.display()
            )
        };
        kv.ingest_table_files(&files).map_err(|e| failed(&e, false))?;
        for name in [first, last] {
            let (key, value) = record_of(name);
            match kv.get(&key) {
                Ok(Some(read)) if read == value => {}
                Ok(_) => return Err(failed(&format!("{name} did not read back"), true)),
                Err(e) => return Err(failed(&e, true)),
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&tables_dir) {
        eprintln!("scale-seed: {} not removed: {e}", tables_dir.display());
    }
    let mut loaded = Vec::new();
    for (node, kv) in &replicas {
        let properties: Vec<String> = PROPERTIES
            .iter()
            .map(|p| Ok(format!(r#""{p}":{}"#, kv.int_property(p)?.map_or("null".into(), |v| v.to_string()))))
            .collect::<Result<_, ignifuge_kv::KvError>>()?;
        loaded.push(format!(r#"{{"node":"{node}",{}}}"#, properties.join(",")));
    }
    drop(replicas);
    println!(
        r#"{{"objects":{count},"applied":{},"replicas":[{}],"table_bytes":{table_bytes},"bytes_per_object":{:.1},"tables_secs":{tables_secs:.1},"secs":{:.1}}}"#,
        serde_json::to_string(&String::from_utf8_lossy(&applied))?,
        loaded.join(","),
        table_bytes as f64 / count as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Table files of PAIRS_PER_FILE pairs each under `dir`, the records of `names` (in store
/// order), and their bytes; refused if the disk cannot take a copy per replica after them.
fn write_tables(
    dir: &Path,
    names: &[String],
    record_of: &dyn Fn(&str) -> (Vec<u8>, Vec<u8>),
    replicas: &[(String, RocksKv)],
) -> anyhow::Result<(Vec<PathBuf>, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let mut table_bytes = 0;
    for (n, chunk) in names.chunks(PAIRS_PER_FILE).enumerate() {
        let path = dir.join(format!("{n:04}.sst"));
        table_bytes += RocksKv::write_table_file(&path, chunk.iter().map(|name| record_of(name)))?;
        files.push(path);
    }
    // Room for a copy per replica, and a margin for their logs and flushes.
    let free = free_bytes(dir)?;
    let needed = table_bytes * replicas.len() as u64 + (1 << 30);
    anyhow::ensure!(free > needed, "{free} bytes free, {needed} needed");
    Ok((files, table_bytes))
}

/// Every metadata replica's store, opened (and so locked) until the caller drops them: those the
/// stored layout names, or the cluster file if the replicas hold none; refused if a replica's
/// store is missing or locked, if the replicas hold different layouts, or if another node
/// directory holds a metadata store.
fn open_replicas(data_dir: &Path) -> anyhow::Result<Vec<(String, RocksKv)>> {
    let file = ClusterConfig::load(&data_dir.join("cluster.toml"))?;
    let members = |config: &ClusterConfig| -> BTreeSet<String> {
        config.metadata_voters.iter().chain(&config.metadata_learners).map(|n| n.0.clone()).collect()
    };
    let mut opened = Vec::new();
    for node in members(&file) {
        let path = data_dir.join(&node).join("meta");
        // Not even opened without one: RocksDB would leave its lock and log files in the node's
        // directory, which the node then takes for data without a format file.
        anyhow::ensure!(
            path.join("CURRENT").is_file(),
            "{}: no metadata store (a replica without its store)",
            path.display()
        );
        let kv = RocksKv::open_existing(&path).map_err(|e| {
            anyhow::anyhow!("{}: {e} (a replica without its store, or the cluster is running)", path.display())
        })?;
        opened.push((node, kv));
    }
    let layouts: BTreeSet<Option<Vec<u8>>> =
        opened.iter().map(|(_, kv)| kv.get(keys::LAYOUT)).collect::<Result<_, _>>()?;
    anyhow::ensure!(layouts.len() == 1, "the replicas hold different layouts");
    if let Some(Some(layout)) = layouts.first() {
        let record: LayoutRecord = serde_json::from_slice(layout)?;
        let stored = ClusterConfig::parse(&record.document)?;
        anyhow::ensure!(members(&stored) == members(&file), "the stored layout names other replicas than cluster.toml");
    }
    let names = members(&file);
    let others: Vec<PathBuf> = std::fs::read_dir(data_dir)?
        .flatten()
        .filter(|e| !names.contains(&e.file_name().to_string_lossy().into_owned()))
        .map(|e| e.path().join("meta"))
        .filter(|meta| meta.is_dir())
        .collect();
    anyhow::ensure!(others.is_empty(), "metadata stores outside the replicas: {others:?}");
    Ok(opened)
}

fn free_bytes(path: &Path) -> anyhow::Result<u64> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: statvfs fills the struct it is given; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    anyhow::ensure!(unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } == 0, "statvfs {}", path.display());
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}
