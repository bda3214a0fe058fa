//! How object records are stored under `o/` and `v/`: JSON without the parts' inline bodies,
//! then, when any body is not empty, a NUL byte and the bodies, raw, in part order (each as long
//! as its part's `size`). JSON text never holds a NUL byte (serde_json escapes control
//! characters), so the first one ends the head. (Recorded outcomes of proposals carry no parts:
//! `StateMachine::plan`.)
//!
//! Inline bodies used to be base64 strings inside the JSON: a 4 KiB object's record was 5.5 KB,
//! and a listing copied and skimmed every body of a page to reach the fields it needs (skimming
//! strings and copying were 35 % of the metadata leader's samples in a 1000-key LIST,
//! docs/benchmarks.md). A listing now reads only the first fields of the head
//! (`list::decode_listed`), and the bytes are stored once, not a third larger. Records stored before (JSON with
//! base64 bodies, no NUL byte) still decode: their bodies are in the JSON. The Raft log stores
//! PutObject entries the same way (`encode_with_bodies`).

use crate::{DataLocation, ObjectRecord, PartData};
use serde::Serialize;
use serde::de::DeserializeOwned;

const BODIES_SEPARATOR: u8 = 0;

/// The JSON head of a stored record or log entry: all of it when it carries no bodies.
pub(crate) fn head(stored: &[u8]) -> &[u8] {
    split(stored).0
}

fn split(stored: &[u8]) -> (&[u8], Option<&[u8]>) {
    // memchr: a byte-by-byte search for the end of the JSON was 9.5 % of a 1000-key LIST's CPU
    // on the metadata leader (object listings now read records without finding it:
    // `list::decode_listed`).
    match memchr::memchr(BODIES_SEPARATOR, stored) {
        Some(at) => (&stored[..at], Some(&stored[at + 1..])),
        None => (stored, None),
    }
}

/// Whether `parts` have inline bytes to store apart: some, and each body exactly its part's size
/// (always so; a part that were not would be stored whole, in the JSON).
fn has_bodies(parts: &[PartData]) -> bool {
    let mut any = false;
    for part in parts {
        if let DataLocation::Inline(body) = &part.location {
            if body.len() as u64 != part.size {
                return false;
            }
            any |= !body.is_empty();
        }
    }
    any
}

/// Moves every inline body of `parts` into one buffer, in part order.
fn take_bodies(parts: &mut [PartData]) -> Vec<u8> {
    let mut tail = Vec::new();
    for part in parts {
        if let DataLocation::Inline(body) = &mut part.location {
            tail.append(body);
        }
    }
    tail
}

/// Gives every inline part its body back from `tail`, which must hold them all exactly.
fn restore_bodies(parts: &mut [PartData], mut tail: &[u8]) -> Result<(), String> {
    for part in parts {
        if let DataLocation::Inline(body) = &mut part.location {
            if !body.is_empty() {
                return Err(format!("part {} holds its body in the record too", part.part_number));
            }
            let size = usize::try_from(part.size).unwrap_or(usize::MAX);
            if size > tail.len() {
                return Err(format!("part {}: {} bytes of body where {size} are due", part.part_number, tail.len()));
            }
            body.extend_from_slice(&tail[..size]);
            tail = &tail[size..];
        }
    }
    if !tail.is_empty() {
        return Err(format!("{} bytes of body beyond the parts", tail.len()));
    }
    Ok(())
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("metadata records always serialise")
}

/// `value` as this module stores a record, the bodies being those of the parts `parts` finds in
/// it (`parts_mut` the same, mutably); plain JSON when it finds none with a body. The Raft log
/// stores a PutObject's entry so too (`ignifuge-raft`'s log store).
pub fn encode_with_bodies<T: Serialize + Clone>(
    value: &T,
    parts: impl Fn(&T) -> Option<&Vec<PartData>>,
    parts_mut: impl Fn(&mut T) -> Option<&mut Vec<PartData>>,
) -> Vec<u8> {
    if !parts(value).is_some_and(|p| has_bodies(p)) {
        return json(value);
    }
    let mut value = value.clone();
    let mut tail = take_bodies(parts_mut(&mut value).expect("the same value has parts"));
    let mut stored = json(&value);
    stored.push(BODIES_SEPARATOR);
    stored.append(&mut tail);
    stored
}

/// A value stored by `encode_with_bodies` (or as plain JSON: bodies inside it, or none).
pub fn decode_with_bodies<T: DeserializeOwned>(
    stored: &[u8],
    parts_mut: impl Fn(&mut T) -> Option<&mut Vec<PartData>>,
) -> Result<T, String> {
    let (head, tail) = split(stored);
    let mut value: T = serde_json::from_slice(head).map_err(|e| e.to_string())?;
    match (tail, parts_mut(&mut value)) {
        (Some(tail), Some(parts)) => restore_bodies(parts, tail)?,
        (Some(_), None) => return Err("bodies after a value that has no parts".into()),
        // Plain JSON: every body is inside it. A head cut off from its bodies (an inline part
        // with no body but a size) is refused, so no reader takes it for the object; a body whose
        // length is not its part's size is never split off (`has_bodies`) and reads back as it
        // was written.
        (None, Some(parts)) => {
            if let Some(part) = parts
                .iter()
                .find(|p| p.size > 0 && matches!(&p.location, DataLocation::Inline(body) if body.is_empty()))
            {
                return Err(format!("part {}: the body is missing", part.part_number));
            }
        }
        (None, None) => {}
    }
    Ok(value)
}

/// An object record as stored (public for the `scale-seed` benchmark tool, which writes
/// records into a stopped cluster's stores; the running system writes them only in `apply`).
pub fn encode_record(record: &ObjectRecord) -> Vec<u8> {
    encode_with_bodies(record, |r| Some(&r.parts), |r| Some(&mut r.parts))
}

/// A stored object record (either encoding).
pub fn decode_record(stored: &[u8]) -> Result<ObjectRecord, String> {
    decode_with_bodies(stored, |r: &mut ObjectRecord| Some(&mut r.parts))
}

/// A stored object record's fields without its parts, from the record or its `head` alone (a
/// listing reads no part).
pub(crate) fn decode_summary(stored: &[u8]) -> Result<ObjectRecord, String> {
    let mut record: ObjectRecord = serde_json::from_slice(head(stored)).map_err(|e| e.to_string())?;
    record.parts.clear();
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checksums, StripedBlob};
    use ignifuge_types::{BlobId, ObjectKey, VersionId};

    fn inline_part(n: u32, body: &[u8]) -> PartData {
        PartData {
            part_number: n,
            size: body.len() as u64,
            etag: format!("etag{n}"),
            checksums: Checksums::default(),
            location: DataLocation::Inline(body.to_vec()),
            last_modified_ms: 1,
            started_ms: 0,
            began: None,
        }
    }

    fn record(parts: Vec<PartData>) -> ObjectRecord {
        ObjectRecord {
            size: parts.iter().map(|p| p.size).sum(),
            parts,
            ..ObjectRecord::delete_marker(ObjectKey::new("k"), VersionId::new("v"), 1)
        }
    }

    fn striped_part(n: u32) -> PartData {
        let blob = StripedBlob {
            blob: BlobId::new("b"),
            data_shards: 5,
            parity_shards: 4,
            shard_size_bytes: 1 << 20,
            stripe_count: 1,
            first_stripe: 0,
            stripes: Vec::new(),
            born_ms: 0,
        };
        PartData { location: DataLocation::Striped(blob), size: 100_000, ..inline_part(n, b"") }
    }

    #[test]
    fn inline_bodies_are_stored_raw_after_the_json_and_come_back_in_part_order() {
        let body1: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let body3 = b"\0\0tail with NUL bytes\0".to_vec();
        let original = record(vec![inline_part(1, &body1), striped_part(2), inline_part(3, &body3)]);
        let stored = encode_record(&original);
        let head = head(&stored);
        assert!(!head.contains(&0) && head.len() < 2000, "the head is JSON without bodies: {} bytes", head.len());
        assert_eq!(stored.len(), head.len() + 1 + body1.len() + body3.len(), "bodies once, raw");
        assert_eq!(&stored[head.len() + 1..head.len() + 1 + body1.len()], &body1[..]);
        assert_eq!(decode_record(&stored).unwrap(), original);
    }

    #[test]
    fn records_without_bodies_and_records_stored_before_are_plain_json() {
        for original in [record(vec![striped_part(1)]), record(vec![inline_part(1, b"")]), record(Vec::new())] {
            let stored = encode_record(&original);
            assert_eq!(stored, serde_json::to_vec(&original).unwrap());
            assert_eq!(decode_record(&stored).unwrap(), original);
        }
        // The encoding before this module: base64 bodies inside the JSON.
        let original = record(vec![inline_part(1, b"old body")]);
        assert_eq!(decode_record(&serde_json::to_vec(&original).unwrap()).unwrap(), original);
    }

    #[test]
    fn a_tail_that_does_not_match_the_parts_is_refused() {
        let stored = encode_record(&record(vec![inline_part(1, b"abcdef")]));
        assert!(decode_record(&stored[..stored.len() - 1]).unwrap_err().contains("bytes of body where 6"));
        let mut longer = stored.clone();
        longer.push(b'x');
        assert!(decode_record(&longer).unwrap_err().contains("beyond the parts"));
        let mut both = serde_json::to_vec(&record(vec![inline_part(1, b"abcdef")])).unwrap();
        both.push(0);
        both.extend_from_slice(b"abcdef");
        assert!(decode_record(&both).unwrap_err().contains("in the record too"));
        // The head alone is no record, but it is a summary.
        let stored = encode_record(&record(vec![inline_part(1, b"abcdef")]));
        assert!(decode_record(head(&stored)).unwrap_err().contains("the body is missing"));
        let summary = decode_summary(head(&stored)).unwrap();
        assert_eq!((summary.size, summary.parts.len()), (6, 0));
        // A body that is not its part's size stays in the JSON, and reads back as written.
        let mut odd = record(vec![inline_part(1, b"abc")]);
        odd.parts[0].size = 5;
        let stored = encode_record(&odd);
        assert_eq!(stored, serde_json::to_vec(&odd).unwrap());
        assert_eq!(decode_record(&stored).unwrap(), odd);
    }
}
