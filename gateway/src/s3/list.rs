//! ListObjectsV2 and ListObjects (v1).

use super::{IgnifugeS3, etag, timestamp};
use base64::Engine as _;
use ignifuge_meta::{BucketRecord, LIST_MAX_KEYS, ListPage, ListRequest, ObjectSummary};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

/// Percent-encodes a key for `encoding-type=url`: everything but unreserved characters and '/'.
fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(super) struct Encoder {
    url: bool,
}

impl Encoder {
    pub(super) fn new(encoding: Option<&EncodingType>) -> S3Result<Self> {
        match encoding.map(|e| e.as_str()) {
            None => Ok(Self { url: false }),
            Some(EncodingType::URL) => Ok(Self { url: true }),
            Some(other) => {
                Err(s3s::s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request: {other}"))
            }
        }
    }

    pub(super) fn apply(&self, value: String) -> String {
        if self.url { url_encode(&value) } else { value }
    }

    pub(super) fn opt(&self, value: Option<String>) -> Option<String> {
        value.map(|v| self.apply(v))
    }
}

pub(super) fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(LIST_MAX_KEYS),
        Some(n) if n < 0 => Err(s3s::s3_error!(InvalidArgument, "max-keys must be a non-negative integer")),
        Some(n) => Ok((n as usize).min(LIST_MAX_KEYS)),
    }
}

async fn page(s3: &IgnifugeS3, bucket: &BucketRecord, request: ListRequest) -> S3Result<ListPage> {
    s3.in_bucket(bucket, s3.gateway.metadata.list_objects(bucket.reference(), request).await)
}

fn object_entry(record: ObjectSummary, encoder: &Encoder, owner: Option<&Owner>) -> Object {
    Object {
        key: Some(encoder.apply(record.key.0)),
        size: Some(record.size as i64),
        e_tag: Some(etag(&record.etag)),
        last_modified: Some(timestamp(record.last_modified_ms)),
        storage_class: Some(ObjectStorageClass::from(ObjectStorageClass::STANDARD.to_string())),
        checksum_algorithm: None,
        checksum_type: None,
        owner: owner.cloned(),
        restore_status: None,
    }
}

fn prefixes(page: &mut ListPage, encoder: &Encoder) -> Vec<CommonPrefix> {
    std::mem::take(&mut page.common_prefixes)
        .into_iter()
        .map(|p| CommonPrefix { prefix: Some(encoder.apply(p)) })
        .collect()
}

pub async fn list_objects_v2(
    s3: &IgnifugeS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let mut input = req.input;
    // AWS: an empty delimiter is no delimiter, and is not echoed.
    input.delimiter = input.delimiter.filter(|d| !d.is_empty());
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let start_after = match &input.continuation_token {
        Some(token) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3s::s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
        ),
        None => input.start_after.clone(),
    };
    let request = ListRequest {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        start_after,
        max_keys: max,
    };
    let mut listed = page(s3, &bucket, request).await?;
    let owner = input
        .fetch_owner
        .unwrap_or(false)
        .then(|| Owner { display_name: Some(bucket.tenant.0.clone()), id: Some(bucket.tenant.0.clone()) });
    let common_prefixes = prefixes(&mut listed, &encoder);
    let contents: Vec<Object> = listed.objects.into_iter().map(|r| object_entry(r, &encoder, owner.as_ref())).collect();
    let output = ListObjectsV2Output {
        name: Some(bucket.name.0),
        key_count: Some((contents.len() + common_prefixes.len()) as i32),
        max_keys: Some(max as i32),
        is_truncated: Some(listed.is_truncated),
        next_continuation_token: listed
            .next_start_after
            .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.as_bytes())),
        continuation_token: input.continuation_token,
        contents: Some(contents),
        common_prefixes: Some(common_prefixes),
        prefix: Some(encoder.apply(input.prefix.unwrap_or_default())),
        delimiter: encoder.opt(input.delimiter),
        start_after: encoder.opt(input.start_after),
        encoding_type: input.encoding_type,
        request_charged: None,
    };
    Ok(S3Response::new(output))
}

pub async fn list_objects(
    s3: &IgnifugeS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let mut input = req.input;
    // AWS: an empty delimiter is no delimiter, and is not echoed.
    input.delimiter = input.delimiter.filter(|d| !d.is_empty());
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let request = ListRequest {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        start_after: input.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max,
    };
    let mut listed = page(s3, &bucket, request).await?;
    let owner = Owner { display_name: Some(bucket.tenant.0.clone()), id: Some(bucket.tenant.0.clone()) };
    let common_prefixes = prefixes(&mut listed, &encoder);
    let contents: Vec<Object> = listed.objects.into_iter().map(|r| object_entry(r, &encoder, Some(&owner))).collect();
    let output = ListObjectsOutput {
        name: Some(bucket.name.0),
        max_keys: Some(max as i32),
        is_truncated: Some(listed.is_truncated),
        // NextMarker: AWS returns it when a delimiter is given; clients fall back to the last key.
        next_marker: encoder.opt(listed.next_start_after),
        marker: Some(encoder.apply(input.marker.unwrap_or_default())),
        contents: Some(contents),
        common_prefixes: Some(common_prefixes),
        prefix: Some(encoder.apply(input.prefix.unwrap_or_default())),
        delimiter: encoder.opt(input.delimiter),
        encoding_type: input.encoding_type,
        request_charged: None,
    };
    Ok(S3Response::new(output))
}

#[cfg(test)]
mod tests {
    use super::url_encode;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved_characters() {
        assert_eq!(url_encode("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
        assert_eq!(url_encode("plain-key_1.txt~"), "plain-key_1.txt~");
    }
}
