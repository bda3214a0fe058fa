//! Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, and the
//! `x-amz-tagging` header of PutObject, CreateMultipartUpload and CopyObject.

use super::IgnifugeS3;
use super::objects::parse_version_id;
use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::{BucketRecord, Command, Tags};
use ignifuge_types::ObjectKey;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

/// AWS's limits on tags.
pub const OBJECT_TAGS_MAX: usize = 10;
pub const BUCKET_TAGS_MAX: usize = 50;
pub const TAG_KEY_MAX_CHARS: usize = 128;
pub const TAG_VALUE_MAX_CHARS: usize = 256;

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::InvalidTag(message.into())
}

/// Checks a tag set against AWS's rules: unique keys, lengths, count.
pub(super) fn validate(tags: &Tags, max: usize) -> GatewayResult<()> {
    if tags.len() > max {
        return Err(GatewayError::BadRequest(format!("Object tags cannot be greater than {max}")));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() || key.chars().count() > TAG_KEY_MAX_CHARS {
            return Err(invalid("The TagKey you have provided is invalid"));
        }
        if value.chars().count() > TAG_VALUE_MAX_CHARS {
            return Err(invalid("The TagValue you have provided is invalid"));
        }
        if tags[..i].iter().any(|(k, _)| k == key) {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(())
}

/// Parses `x-amz-tagging` (URL query encoding: `k1=v1&k2=v2`).
pub(super) fn parse_header(header: Option<&str>) -> GatewayResult<Tags> {
    let Some(header) = header.filter(|h| !h.is_empty()) else { return Ok(Vec::new()) };
    let decode = |s: &str| {
        urlencoding::decode(&s.replace('+', " "))
            .map(|c| c.into_owned())
            .map_err(|_| invalid("malformed x-amz-tagging"))
    };
    let mut tags = Vec::new();
    for pair in header.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((decode(key)?, decode(value)?));
    }
    validate(&tags, OBJECT_TAGS_MAX)?;
    Ok(tags)
}

/// Parses a form upload's `tagging` field: a `<Tagging><TagSet>` XML document, as AWS's
/// PostObject takes it. Returned in `x-amz-tagging`'s encoding, which PutObject reads.
pub(super) fn xml_as_header(xml: &str) -> GatewayResult<String> {
    use s3s::xml::Deserialize as _;
    let mut deserializer = s3s::xml::Deserializer::new(xml.as_bytes());
    let tags = from_dto(Tagging::deserialize(&mut deserializer).map_err(|_| GatewayError::MalformedXml)?);
    validate(&tags, OBJECT_TAGS_MAX)?;
    let pairs: Vec<String> =
        tags.iter().map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v))).collect();
    Ok(pairs.join("&"))
}

fn from_dto(tagging: Tagging) -> Tags {
    tagging.tag_set.into_iter().map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())).collect()
}

fn to_dto(tags: Tags) -> TagSet {
    tags.into_iter().map(|(key, value)| Tag { key: Some(key), value: Some(value) }).collect()
}

pub async fn put_object_tagging(
    s3: &IgnifugeS3,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let input = req.input;
    let tags = from_dto(input.tagging);
    validate(&tags, OBJECT_TAGS_MAX)?;
    let version_id = set_object_tags(s3, &bucket, input.key, input.version_id, tags).await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

/// Replaces (an empty set deletes) the tags of a key's current version or of `version_id`;
/// returns the version id to answer.
async fn set_object_tags(
    s3: &IgnifugeS3,
    bucket: &BucketRecord,
    key: String,
    version_id: Option<String>,
    tags: Tags,
) -> S3Result<Option<String>> {
    let version = parse_version_id(version_id.as_deref())?;
    let command =
        Command::SetObjectTags { bucket: bucket.reference(), key: ObjectKey::new(key), tags, version: version.clone() };
    let record = s3.gateway.metadata.apply_object(command).await.map_err(GatewayError::Meta)?;
    // The version tagged: the one asked for, else the current one when it has an id.
    Ok(version.map(|v| v.0).or_else(|| super::objects::version_header(&record, false)))
}

pub async fn get_object_tagging(
    s3: &IgnifugeS3,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?;
    let input = &req.input;
    let read = s3.get_record(authorized, &input.key, input.version_id.as_deref(), 0).await?;
    let version_id = read.version_id();
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set: to_dto(read.record.tags), version_id }))
}

pub async fn delete_object_tagging(
    s3: &IgnifugeS3,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let input = req.input;
    let version_id = set_object_tags(s3, &bucket, input.key, input.version_id, Vec::new()).await?;
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
}

pub async fn put_bucket_tagging(
    s3: &IgnifugeS3,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let input = req.input;
    let tags = from_dto(input.tagging);
    validate(&tags, BUCKET_TAGS_MAX)?;
    let command = Command::SetBucketTags { bucket: bucket.reference(), tags: Some(tags) };
    s3.gateway.metadata.apply(command).await.map_err(GatewayError::Meta)?;
    Ok(S3Response::new(PutBucketTaggingOutput {}))
}

pub async fn get_bucket_tagging(
    _s3: &IgnifugeS3,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    match bucket.tags {
        Some(tags) => Ok(S3Response::new(GetBucketTaggingOutput { tag_set: to_dto(tags) })),
        None => Err(s3s::s3_error!(NoSuchTagSet, "The TagSet does not exist")),
    }
}

pub async fn delete_bucket_tagging(
    s3: &IgnifugeS3,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let command = Command::SetBucketTags { bucket: bucket.reference(), tags: None };
    s3.gateway.metadata.apply(command).await.map_err(GatewayError::Meta)?;
    Ok(S3Response::new(DeleteBucketTaggingOutput {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tagging_header_is_url_query_encoded_and_checked() {
        assert_eq!(
            parse_header(Some("a=1&b%20c=d%26e&empty=")).unwrap(),
            vec![("a".into(), "1".into()), ("b c".into(), "d&e".into()), ("empty".into(), String::new())]
        );
        assert!(parse_header(None).unwrap().is_empty());
        assert!(matches!(parse_header(Some("a=1&a=2")), Err(GatewayError::InvalidTag(_))));
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(matches!(parse_header(Some(&eleven.join("&"))), Err(GatewayError::BadRequest(_))));
        assert!(matches!(parse_header(Some(&format!("{}=v", "k".repeat(129)))), Err(GatewayError::InvalidTag(_))));
    }
}

#[cfg(test)]
mod form_tests {
    use super::*;

    #[test]
    fn a_forms_tagging_document_becomes_the_header_put_reads() {
        let xml = "<Tagging><TagSet><Tag><Key>team a</Key><Value>x&amp;y</Value></Tag>\
                   <Tag><Key>b</Key><Value></Value></Tag></TagSet></Tagging>";
        let header = xml_as_header(xml).unwrap();
        assert_eq!(
            parse_header(Some(&header)).unwrap(),
            vec![("team a".into(), "x&y".into()), ("b".into(), String::new())]
        );
        assert!(matches!(xml_as_header("<Tagging><TagSet>"), Err(GatewayError::MalformedXml)));
        let twice = "<Tagging><TagSet><Tag><Key>k</Key><Value>1</Value></Tag>\
                     <Tag><Key>k</Key><Value>2</Value></Tag></TagSet></Tagging>";
        assert!(matches!(xml_as_header(twice), Err(GatewayError::InvalidTag(_))));
    }
}
