//! How internode answers are encoded: JSON, or MessagePack when the client asks for it.
//!
//! Requests are JSON. A client that can read MessagePack says so with `Accept: ANSWER_MSGPACK`;
//! a node that can write it (the metadata's answers: `paths::META_QUERY`, `paths::META_APPLY`)
//! answers so and names it in `Content-Type`; every other answer, and every answer of a node
//! from before this encoding, is JSON. The client decodes by the answer's `Content-Type`; a
//! client that asks for nothing (an older binary, a debugging tool) gets JSON.
//!
//! Why: a 1000-key listing page is ~124 KB of JSON that the leader writes and the gateway parses,
//! about a fifth of a LIST's server CPU; MessagePack skips the escaping and the number text, and
//! carries inline bodies as raw bytes instead of base64 (docs/benchmarks.md, "Metadata answers
//! in MessagePack"). Structs are written as maps (field names kept), so `#[serde(default)]` and
//! `skip_serializing_if` mean what they mean in JSON; nothing stored changes (stored records and
//! log entries stay JSON).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The media type of a MessagePack answer.
pub const ANSWER_MSGPACK: &str = "application/vnd.msgpack";
/// The media type of a JSON answer.
pub const ANSWER_JSON: &str = "application/json";

/// An answer ready to send: its bytes and their media type.
#[derive(Debug)]
pub struct EncodedAnswer {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

/// Encodes `answer` as the request's `Accept` header allows: MessagePack if it names
/// `ANSWER_MSGPACK` with a quality above 0 (whatever it prefers among the types it names), JSON
/// otherwise.
pub fn encode_answer<T: Serialize>(answer: &T, accept: Option<&str>) -> Result<EncodedAnswer, String> {
    if accept.is_some_and(accepts_msgpack) {
        let body = rmp_serde::to_vec_named(answer).map_err(|e| e.to_string())?;
        Ok(EncodedAnswer { body, content_type: ANSWER_MSGPACK })
    } else {
        let body = serde_json::to_vec(answer).map_err(|e| e.to_string())?;
        Ok(EncodedAnswer { body, content_type: ANSWER_JSON })
    }
}

/// Decodes an answer by its `Content-Type`: MessagePack if it is `ANSWER_MSGPACK`, JSON otherwise
/// (a node that does not write MessagePack names no type).
pub fn decode_answer<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, String> {
    match content_type {
        Some(t) if is_msgpack(t) => decode_msgpack(body),
        _ => serde_json::from_slice(body).map_err(|e| e.to_string()),
    }
}

/// One MessagePack value that is the whole of `body`: bytes after it are refused, as
/// `serde_json::from_slice` refuses them (`rmp_serde::from_slice` stops after the first value,
/// so an answer cut and another's bytes appended would otherwise decode as the first).
fn decode_msgpack<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let len = msgpack_value_len(body).ok_or("the MessagePack answer is cut short or malformed")?;
    if len != body.len() {
        return Err(format!("{} bytes after the MessagePack answer", body.len() - len));
    }
    rmp_serde::from_slice(body).map_err(|e| e.to_string())
}

/// The length of the MessagePack value that begins `body`, found by walking its markers (no
/// allocation; rmp-serde's slice reader does not tell where it stopped, and its stream reader
/// copies every string once more). None if `body` ends inside it or holds a reserved marker.
fn msgpack_value_len(body: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    // Values still to walk: one, then each container adds its elements.
    let mut pending = 1usize;
    let be = |at: usize, n: usize| -> Option<usize> {
        body.get(at..at + n).map(|b| b.iter().fold(0usize, |v, &byte| (v << 8) | byte as usize))
    };
    while pending > 0 {
        pending -= 1;
        let marker = *body.get(at)?;
        at += 1;
        // (bytes of the header after the marker, bytes of payload, values it contains)
        let (header, payload, values) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0, 0),
            0x80..=0x8f => (0, 0, 2 * (marker & 0x0f) as usize),
            0x90..=0x9f => (0, 0, (marker & 0x0f) as usize),
            0xa0..=0xbf => (0, (marker & 0x1f) as usize, 0),
            0xc4 | 0xd9 => (1, be(at, 1)?, 0),
            0xc5 | 0xda => (2, be(at, 2)?, 0),
            0xc6 | 0xdb => (4, be(at, 4)?, 0),
            0xc7 => (2, be(at, 1)?, 0),
            0xc8 => (3, be(at, 2)?, 0),
            0xc9 => (5, be(at, 4)?, 0),
            0xca => (0, 4, 0),
            0xcb => (0, 8, 0),
            0xcc | 0xd0 => (0, 1, 0),
            0xcd | 0xd1 => (0, 2, 0),
            0xce | 0xd2 => (0, 4, 0),
            0xcf | 0xd3 => (0, 8, 0),
            0xd4 => (0, 2, 0),
            0xd5 => (0, 3, 0),
            0xd6 => (0, 5, 0),
            0xd7 => (0, 9, 0),
            0xd8 => (0, 17, 0),
            0xdc => (2, 0, be(at, 2)?),
            0xdd => (4, 0, be(at, 4)?),
            0xde => (2, 0, 2 * be(at, 2)?),
            0xdf => (4, 0, 2usize.checked_mul(be(at, 4)?)?),
            0xc1 => return None,
        };
        at = at.checked_add(header)?.checked_add(payload)?;
        if at > body.len() {
            return None;
        }
        pending = pending.checked_add(values)?;
    }
    Some(at)
}

fn is_msgpack(media_type: &str) -> bool {
    media_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(ANSWER_MSGPACK))
}

fn accepts_msgpack(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        parts.next().is_some_and(is_msgpack)
            && parts.all(|parameter| match parameter.split_once('=') {
                Some((name, q)) if name.trim().eq_ignore_ascii_case("q") => {
                    q.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
                }
                _ => true,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_meta::{
        Answer, Checksums, DataLocation, ListPage, MetaError, ObjectHeaders, ObjectRecord, ObjectSummary, Outcome,
        PartData, ShardRecord, StripeRecord, StripedBlob,
    };
    use ignifuge_types::{BlobId, NodeId, ObjectKey, VersionId};

    fn page() -> Result<Answer, MetaError> {
        Ok(Answer::Objects(ListPage {
            objects: (0..3)
                .map(|i| ObjectSummary {
                    key: ObjectKey::new(format!("dir/\"quoted\" é {i}")),
                    size: u64::MAX - i,
                    etag: format!("\"{i:032x}\""),
                    last_modified_ms: -1 - i as i64,
                })
                .collect(),
            common_prefixes: vec!["dir/sub/".into()],
            is_truncated: true,
            next_start_after: None,
        }))
    }

    #[test]
    fn an_answer_reads_back_alike_in_either_encoding() {
        let answers = [page(), Err(MetaError::NoSuchBucket), Err(MetaError::Unavailable("no quorum".into()))];
        for accept in [None, Some(ANSWER_MSGPACK), Some("application/json, application/vnd.msgpack; q=0.9")] {
            for answer in &answers {
                let encoded = encode_answer(answer, accept).unwrap();
                assert_eq!(encoded.content_type, if accept.is_some() { ANSWER_MSGPACK } else { ANSWER_JSON });
                let back: Result<Answer, MetaError> = decode_answer(Some(encoded.content_type), &encoded.body).unwrap();
                assert_eq!(format!("{back:?}"), format!("{answer:?}"), "{accept:?}");
            }
        }
    }

    #[test]
    fn json_is_answered_unless_msgpack_is_asked_for_and_read_without_a_type() {
        for accept in [None, Some(""), Some("*/*"), Some(ANSWER_JSON), Some("application/vnd.msgpack;q=0, text/plain")]
        {
            let encoded = encode_answer(&page(), accept).unwrap();
            assert_eq!(encoded.content_type, ANSWER_JSON);
            assert_eq!(encoded.body, serde_json::to_vec(&page()).unwrap());
        }
        // A node from before this encoding answers JSON and names no type.
        let json = serde_json::to_vec(&page()).unwrap();
        let back: Result<Answer, MetaError> = decode_answer(None, &json).unwrap();
        assert_eq!(back.unwrap(), page().unwrap());
        let encoded = encode_answer(&page(), Some("Application/Vnd.MsgPack")).unwrap();
        assert_eq!(encoded.content_type, ANSWER_MSGPACK);
        assert!(decode_answer::<Result<Answer, MetaError>>(None, &encoded.body).is_err(), "not JSON");
    }

    fn part(location: DataLocation, size: u64) -> PartData {
        PartData {
            part_number: 1,
            size,
            etag: "0123456789abcdef0123456789abcdef".into(),
            checksums: Checksums { crc64nvme: Some("AAAAAAAAAAA=".into()), ..Default::default() },
            location,
            last_modified_ms: 1_790_000_000_000,
            started_ms: 1_790_000_000_000,
            began: None,
        }
    }

    /// Records of every kind (inline, striped, a delete marker), with fields skipped when empty,
    /// inside the answers and outcomes that carry them, read back alike from MessagePack.
    #[test]
    fn records_and_outcomes_read_back_alike_from_msgpack() {
        let shards = vec![ShardRecord { node: NodeId::new("dc1-n1"), blake3: "00".repeat(32) }];
        let stripe = StripeRecord { data_len: 1 << 20, shards, debt: true };
        let inline = ObjectRecord::single_part(
            ObjectKey::new("a/inline"),
            VersionId::new("null"),
            part(DataLocation::Inline(b"\0\xff raw".to_vec()), 6),
        );
        let striped = ObjectRecord {
            headers: ObjectHeaders { content_type: Some("text/plain".into()), ..Default::default() },
            ..ObjectRecord::single_part(
                ObjectKey::new("a/striped"),
                VersionId::new("v1"),
                part(
                    DataLocation::Striped(StripedBlob::whole(BlobId::new("b1"), (5, 4), 1 << 20, vec![stripe], -3)),
                    1 << 20,
                ),
            )
        };
        let marker = ObjectRecord::delete_marker(ObjectKey::new("a/gone"), VersionId::new("v2"), 7);
        let outcome: Result<Outcome, MetaError> = Ok(Outcome::Packed(vec![
            Ok(Box::new(inline.clone())),
            Err(MetaError::PreconditionFailed),
            Ok(Box::new(striped.clone())),
        ]));
        let answers: Vec<Result<Answer, MetaError>> = vec![
            Ok(Answer::ObjectVersion { record: Box::new(marker), versioning: None }),
            Ok(Answer::ObjectVersion { record: Box::new(striped), versioning: None }),
            Ok(Answer::NodesOut(vec![(NodeId::new("dc2-n3"), -5), (NodeId::new("dc3-n1"), i64::MAX)])),
            Ok(Answer::Layout(None)),
        ];
        let encoded = encode_answer(&outcome, Some(ANSWER_MSGPACK)).unwrap();
        assert_eq!(decode_answer::<Result<Outcome, MetaError>>(Some(ANSWER_MSGPACK), &encoded.body).unwrap(), outcome);
        for answer in answers {
            let encoded = encode_answer(&answer, Some(ANSWER_MSGPACK)).unwrap();
            assert_eq!(
                decode_answer::<Result<Answer, MetaError>>(Some(ANSWER_MSGPACK), &encoded.body).unwrap(),
                answer
            );
        }
    }

    /// The walk that finds where a MessagePack value ends agrees with the encoder on every kind
    /// of marker, and nothing after the answer is taken.
    #[test]
    fn bytes_after_an_answer_are_refused_and_every_marker_is_walked() {
        use std::collections::BTreeMap;
        fn check<T: Serialize>(value: &T) {
            let body = rmp_serde::to_vec_named(value).unwrap();
            assert_eq!(msgpack_value_len(&body), Some(body.len()), "{body:02x?}");
            // Cut anywhere short, it is not a value.
            for cut in (0..body.len().min(64)).chain(body.len().saturating_sub(64)..body.len()) {
                assert_eq!(msgpack_value_len(&body[..cut]), None, "cut at {cut}");
            }
        }
        check(&(0u8, 127u8, 128u8, 255u16, 256u16, 65_535u32, 65_536u32, u64::MAX));
        check(&(-1i8, -32i8, -33i8, -128i16, -129i16, -32_768i32, -32_769i64, i64::MIN));
        check(&(1.5f32, -2.25f64, true, false, Option::<u8>::None, ()));
        for len in [0usize, 31, 32, 255, 256, 65_535, 65_536] {
            check(&"x".repeat(len));
            check(&DataLocation::Inline(vec![7u8; len]));
            check(&vec![1u8; len.min(20_000)]);
            check(&(0..len.min(20_000) as u32).map(|i| (i, "v")).collect::<BTreeMap<_, _>>());
        }
        // 32-bit lengths: an array and a map of more than 65,535 elements.
        check(&vec![1u8; 70_000]);
        check(&(0..70_000u32).map(|i| (i, 0u8)).collect::<BTreeMap<_, _>>());
        // Extension values, which serde never writes but a value may hold.
        for ext in [&[0xd4u8, 1, 9][..], &[0xd5, 1, 9, 9], &[0xd6, 1, 0, 0, 0, 0], &[0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0]] {
            assert_eq!(msgpack_value_len(ext), Some(ext.len()));
        }
        let ext16: Vec<u8> = [0xd8, 1].into_iter().chain([0u8; 16]).collect();
        assert_eq!(msgpack_value_len(&ext16), Some(18));
        assert_eq!(msgpack_value_len(&[0xc7, 2, 1, 5, 5]), Some(5));
        assert_eq!(msgpack_value_len(&[0xc8, 0, 1, 1, 5]), Some(5));
        assert_eq!(msgpack_value_len(&[0xc9, 0, 0, 0, 1, 1, 5]), Some(7));
        assert_eq!(msgpack_value_len(&[0xc1]), None, "the reserved marker");
        assert_eq!(msgpack_value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff]), None, "an array longer than the body");

        let answer = page();
        let mut body = encode_answer(&answer, Some(ANSWER_MSGPACK)).unwrap().body;
        assert_eq!(decode_answer::<Result<Answer, MetaError>>(Some(ANSWER_MSGPACK), &body).unwrap(), answer);
        // Another answer's bytes after it, or one more byte: refused, as JSON refuses them.
        let whole = body.len();
        body.extend_from_slice(&encode_answer(&Answer::Layout(None), Some(ANSWER_MSGPACK)).unwrap().body);
        let e = decode_answer::<Result<Answer, MetaError>>(Some(ANSWER_MSGPACK), &body).unwrap_err();
        assert!(e.contains("bytes after"), "{e}");
        body.truncate(whole + 1);
        assert!(decode_answer::<Result<Answer, MetaError>>(Some(ANSWER_MSGPACK), &body).is_err());
        body.truncate(whole - 1);
        assert!(decode_answer::<Result<Answer, MetaError>>(Some(ANSWER_MSGPACK), &body).is_err());
        let mut json = encode_answer(&answer, None).unwrap().body;
        json.extend_from_slice(b"{}");
        assert!(decode_answer::<Result<Answer, MetaError>>(None, &json).is_err());
    }

    /// An inline body travels as raw bytes in MessagePack and as base64 in JSON.
    #[test]
    fn an_inline_body_travels_raw_in_msgpack() {
        let body: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let location = DataLocation::Inline(body.clone());
        let msgpack = encode_answer(&location, Some(ANSWER_MSGPACK)).unwrap();
        let json = encode_answer(&location, None).unwrap();
        assert!(msgpack.body.len() < body.len() + 32, "{} bytes", msgpack.body.len());
        assert!(json.body.len() > body.len() * 4 / 3, "{} bytes", json.body.len());
        for encoded in [msgpack, json] {
            assert_eq!(decode_answer::<DataLocation>(Some(encoded.content_type), &encoded.body).unwrap(), location);
        }
    }
}
