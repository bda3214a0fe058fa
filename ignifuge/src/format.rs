//! The data format of a data directory: `ignifuge dev`'s cluster directory, and each storage
//! node's own. A directory written in a format this version cannot read is refused before any
//! process opens it, rather than half-started (a replica that cannot decode its own log, or one
//! whose state differs from the other replicas' for the same entries).

use anyhow::Context as _;
use ignifuge_meta::DATA_FORMAT;
use std::path::Path;

/// The name of the file holding a directory's format (`ignifuge_meta::DATA_FORMAT`, whose
/// documentation lists every format and what it changed).
pub const FORMAT_FILE: &str = "format";
/// The older formats this version reads, and marks as its own when it opens a directory of one.
const UPGRADED_IN_PLACE: [&str; 10] = ["6", "7", "8", "9", "10", "11", "12", "13", "14", "15"];
/// The format of node directories made before nodes kept a format file.
const BEFORE_NODE_FORMAT_FILES: &str = "6";

fn upgradable(found: &str) -> bool {
    UPGRADED_IN_PLACE.contains(&found.trim())
}

/// What a storage node keeps in its directory: a directory holding any of them is not new.
const NODE_STORES: [&str; 4] = ["meta", "meta-snapshots", "index", "shards"];

/// Refuses a cluster directory of `ignifuge dev` whose metadata was created in another format.
pub fn check_cluster_dir(data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.join("metadata-initialized").exists() {
        return Ok(());
    }
    let found = std::fs::read_to_string(data_dir.join(FORMAT_FILE)).unwrap_or_default();
    if upgradable(&found) {
        return upgrade_in_place(data_dir, found.trim());
    }
    anyhow::ensure!(
        found.trim() == DATA_FORMAT,
        "{} was created by an older `ignifuge dev` (data format {:?}, this version needs {DATA_FORMAT}: \
         the metadata's commands and snapshots changed); remove it or choose another --data-dir",
        data_dir.display(),
        if found.is_empty() { "1" } else { found.trim() }
    );
    Ok(())
}

/// Before a storage node opens anything in `node_dir`: a new directory gets this version's
/// format (synced); one that holds this format is opened, one of `UPGRADED_IN_PLACE` marked with
/// it and opened; one that holds another, or holds data and no format at all (written by a
/// version before format 6), is refused.
pub fn check_node_dir(node_dir: &Path) -> anyhow::Result<()> {
    let path = node_dir.join(FORMAT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(found) if upgradable(&found) => upgrade_in_place(node_dir, found.trim()),
        Ok(found) => {
            anyhow::ensure!(
                found.trim() == DATA_FORMAT,
                "{} holds data format {:?}; this version reads format {DATA_FORMAT} only (the metadata's \
                 records and log entries changed): start the version that wrote it, or empty the directory",
                node_dir.display(),
                found.trim()
            );
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let holds_data = NODE_STORES.iter().any(|store| node_dir.join(store).exists());
            anyhow::ensure!(
                !holds_data,
                "{} holds data but no `{FORMAT_FILE}` file: it was written before storage nodes kept one. If the \
                 version that wrote it read data format {BEFORE_NODE_FORMAT_FILES} (its `ignifuge dev` wrote \
                 {BEFORE_NODE_FORMAT_FILES} into the cluster directory's `{FORMAT_FILE}`), write \
                 {BEFORE_NODE_FORMAT_FILES} into {} and start again; otherwise start that version",
                node_dir.display(),
                node_dir.join(FORMAT_FILE).display()
            );
            write_format(node_dir)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Marks the node directories of `ignifuge dev`'s cluster directory `data_dir`, made before
/// nodes kept a format file, with this version's format: only once the cluster's own format is
/// known to be it (its metadata was created and `check_cluster_dir` passed). Node directories
/// of a cluster whose metadata was never created are left to their nodes' own check.
pub fn adopt_node_dirs<'a>(data_dir: &Path, node_dirs: impl IntoIterator<Item = &'a Path>) -> anyhow::Result<()> {
    check_cluster_dir(data_dir)?;
    if !data_dir.join("metadata-initialized").exists() {
        return Ok(());
    }
    for node_dir in node_dirs {
        if node_dir.exists() && !node_dir.join(FORMAT_FILE).exists() {
            write_format(node_dir)?;
        }
    }
    Ok(())
}

/// Marks a directory of one of `UPGRADED_IN_PLACE`, which this version reads as it is, with
/// this version's format.
fn upgrade_in_place(dir: &Path, found: &str) -> anyhow::Result<()> {
    tracing::info!("{}: data format {found} upgraded to {DATA_FORMAT} in place", dir.display());
    write_format(dir)
}

fn write_format(dir: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FORMAT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(DATA_FORMAT.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(FORMAT_FILE))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_directory_of_another_format_or_of_none_is_refused_and_a_new_one_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("dc1-n1");
        // New: marked with this version's format, then opened again.
        check_node_dir(&node).unwrap();
        assert_eq!(std::fs::read_to_string(node.join(FORMAT_FILE)).unwrap(), DATA_FORMAT);
        check_node_dir(&node).unwrap();
        // The formats before: upgraded in place.
        for older in UPGRADED_IN_PLACE {
            std::fs::write(node.join(FORMAT_FILE), older).unwrap();
            check_node_dir(&node).unwrap();
            assert_eq!(std::fs::read_to_string(node.join(FORMAT_FILE)).unwrap(), DATA_FORMAT);
        }
        // Another format: refused, and left as it was.
        std::fs::write(node.join(FORMAT_FILE), "5").unwrap();
        let refused = check_node_dir(&node).unwrap_err().to_string();
        assert!(refused.contains("holds data format \"5\""), "{refused}");
        assert_eq!(std::fs::read_to_string(node.join(FORMAT_FILE)).unwrap(), "5");
        // Data and no format file: written before nodes kept one; refused, not marked.
        std::fs::remove_file(node.join(FORMAT_FILE)).unwrap();
        std::fs::create_dir_all(node.join("meta")).unwrap();
        let refused = check_node_dir(&node).unwrap_err().to_string();
        assert!(refused.contains("no `format` file"), "{refused}");
        assert!(!node.join(FORMAT_FILE).exists());
        // `ignifuge dev` adopts it only once its cluster's metadata exists in this format.
        adopt_node_dirs(dir.path(), [node.as_path()]).unwrap();
        assert!(!node.join(FORMAT_FILE).exists(), "adopted by a cluster whose metadata was never created");
        std::fs::write(dir.path().join("metadata-initialized"), "").unwrap();
        assert!(adopt_node_dirs(dir.path(), [node.as_path()]).is_err(), "adopted by a cluster of another format");
        std::fs::write(dir.path().join(FORMAT_FILE), DATA_FORMAT).unwrap();
        adopt_node_dirs(dir.path(), [node.as_path()]).unwrap();
        check_node_dir(&node).unwrap();
    }

    #[test]
    fn a_cluster_directory_is_checked_once_its_metadata_exists() {
        let dir = tempfile::tempdir().unwrap();
        check_cluster_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("metadata-initialized"), "").unwrap();
        assert!(check_cluster_dir(dir.path()).unwrap_err().to_string().contains("data format \"1\""));
        std::fs::write(dir.path().join(FORMAT_FILE), "5").unwrap();
        assert!(check_cluster_dir(dir.path()).unwrap_err().to_string().contains("data format \"5\""));
        for older in UPGRADED_IN_PLACE {
            std::fs::write(dir.path().join(FORMAT_FILE), older).unwrap();
            check_cluster_dir(dir.path()).unwrap();
            assert_eq!(std::fs::read_to_string(dir.path().join(FORMAT_FILE)).unwrap(), DATA_FORMAT, "upgraded");
            check_cluster_dir(dir.path()).unwrap();
        }
    }
}
