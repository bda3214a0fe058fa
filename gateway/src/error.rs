//! The gateway's error type and the one place where every error becomes an S3 error.

use ignifuge_meta::MetaError;
use ignifuge_placement::PlacementError;
use ignifuge_rpc::RpcError;
use s3s::{S3Error, S3ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("internode call failed: {0}")]
    Rpc(#[from] RpcError),
    #[error("placement: {0}")]
    Placement(#[from] PlacementError),
    #[error("Access Denied")]
    AccessDenied,
    /// A Range past the end of an object of `size` bytes (416, with Content-Range: bytes */size).
    #[error("The requested range is not satisfiable")]
    InvalidRange { size: u64 },
    #[error("{0}")]
    BadDigest(String),
    #[error("{0}")]
    InvalidDigest(String),
    #[error("the request body ended before its announced length")]
    IncompleteBody,
    #[error("Your socket connection to the server was not read from or written to within the timeout period.")]
    RequestTimeout,
    #[error("reading the request body: {0}")]
    BodyRead(String),
    #[error("the provided 'x-amz-content-sha256' header does not match what was computed")]
    PayloadHashMismatch,
    #[error("your key is too long")]
    KeyTooLong,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidTag(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("not modified")]
    NotModified,
    #[error("precondition failed")]
    PreconditionFailed,
    /// The precondition held when the request began, but another write or delete of the key
    /// committed before this one: 409 ConditionalRequestConflict, as AWS.
    #[error(
        "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload \
         you should initiate another CreateMultipartUpload request and re-upload each part."
    )]
    ConditionalRequestConflict,
    #[error("metadata headers exceed the 2 KB limit")]
    MetadataTooLarge,
    #[error("Your proposed upload exceeds the maximum allowed size")]
    EntityTooLarge,
    /// A form upload's file below its policy's content-length-range.
    #[error("Your proposed upload is smaller than the minimum allowed size")]
    EntityTooSmall,
    /// A form upload its own policy refuses (expired, a condition failed, a field the policy
    /// does not name): 403 AccessDenied, in AWS's words.
    #[error("Invalid according to Policy: {0}")]
    PolicyRefused(String),
    #[error("{0}")]
    InvalidPolicyDocument(String),
    /// A form body that is not multipart/form-data as RFC 7578 writes it.
    #[error("The body of your POST request is not well-formed multipart/form-data. {0}")]
    MalformedPost(String),
    #[error("Your POST request fields preceding the upload file were too large.")]
    PostFieldsTooLarge,
    /// A form upload (POST of multipart/form-data) to anything but a bucket's URL.
    #[error("The specified method is not allowed against this resource.")]
    MethodNotAllowed,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your key and signing \
         method."
    )]
    SignatureDoesNotMatch,
    #[error("not enough healthy shards to read stripe {stripe} of blob {blob}")]
    Unreadable { blob: String, stripe: u32 },
    #[error("write could not be placed to meet its durability budget: {0}")]
    DurabilityNotMet(String),
    #[error("internal: {0}")]
    Internal(String),
    /// A CORS preflight that no rule allows (or no configuration, or no bucket): 403 AccessForbidden.
    #[error("{0}")]
    CorsForbidden(String),
    #[error("The XML you provided was not well-formed or did not validate against our published schema")]
    MalformedXml,
    #[error("Your request was too big: at most {0} bytes")]
    MessageTooLong(u64),
    /// The version read is a delete marker: 404 NoSuchKey when it is the current version, 405
    /// MethodNotAllowed when asked for by version id; both with x-amz-delete-marker: true.
    #[error("{}", if *by_version_id { "The specified method is not allowed against this resource." } else { "The specified key does not exist." })]
    DeleteMarker { version: String, by_version_id: bool },
    #[error("Invalid version id specified")]
    InvalidVersionId,
    #[error("{0}")]
    MalformedPolicy(#[from] ignifuge_access::PolicyError),
    #[error("The bucket does not allow ACLs")]
    AclNotSupported,
    #[error("Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting")]
    InvalidBucketAclWithObjectOwnership,
    #[error("The XML you provided was not well-formed or did not validate against our published schema")]
    MalformedAcl,
    #[error("Grants by email address are not supported: grant to a canonical user id or a group uri")]
    UnresolvableGrantByEmailAddress,
    #[error("The public access block configuration was not found")]
    NoSuchPublicAccessBlockConfiguration,
    /// A partNumber past the object's parts: 416 InvalidPartNumber, as AWS.
    #[error("The requested partnumber is not satisfiable")]
    InvalidPartNumber,
    #[error("The website redirect location must have a prefix of 'http://' or 'https://' or '/', and at most 2 KB.")]
    InvalidRedirectLocation,
    /// A request asking for what the gateway does not do (501), rather than served without it.
    #[error("A header you provided implies functionality that is not implemented: {0}")]
    NotImplemented(String),
    #[error("The storage class you specified is not valid")]
    InvalidStorageClass,
}

pub type GatewayResult<T> = Result<T, GatewayError>;

/// An error with an AWS error code that s3s's code table lacks.
fn custom(code: &'static str, status: http::StatusCode, message: String) -> S3Error {
    let mut error = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    error.set_status_code(status);
    error
}

fn custom_400(code: &'static str, message: String) -> S3Error {
    custom(code, http::StatusCode::BAD_REQUEST, message)
}

/// AWS's message for a metadata refusal a client sees (the S3 error-code reference), so that
/// clients print what AWS's would; None where the metadata's own words say more.
fn aws_message(error: &MetaError) -> Option<&'static str> {
    Some(match error {
        MetaError::NoSuchTenant | MetaError::NoSuchAccessKey => {
            "The AWS access key Id you provided does not exist in our records."
        }
        MetaError::NoSuchBucket => "The specified bucket does not exist",
        MetaError::BucketAlreadyExists => {
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. \
             Please select a different name and try again."
        }
        MetaError::BucketAlreadyOwnedByYou => {
            "Your previous request to create the named bucket succeeded and you already own it."
        }
        MetaError::BucketNotEmpty => "The bucket you tried to delete is not empty",
        MetaError::AccessDenied => "Access Denied",
        MetaError::NoSuchKey => "The specified key does not exist.",
        MetaError::NoSuchUpload => {
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted \
             or completed."
        }
        MetaError::InvalidPartOrder => {
            "The list of parts was not in ascending order. Parts must be ordered by part number."
        }
        MetaError::EntityTooSmall { .. } => "Your proposed upload is smaller than the minimum allowed object size.",
        MetaError::PreconditionFailed => "At least one of the pre-conditions you specified did not hold",
        MetaError::NoSuchVersion => "The specified version does not exist.",
        _ => return None,
    })
}

impl From<GatewayError> for S3Error {
    fn from(e: GatewayError) -> Self {
        use S3ErrorCode as C;
        let message = match &e {
            GatewayError::Meta(m) => aws_message(m).map_or_else(|| e.to_string(), str::to_string),
            _ => e.to_string(),
        };
        let code = match &e {
            GatewayError::Meta(m) => match m {
                MetaError::NoSuchTenant | MetaError::NoSuchAccessKey => C::InvalidAccessKeyId,
                MetaError::TenantAlreadyExists => C::InvalidRequest,
                MetaError::NoSuchBucket => C::NoSuchBucket,
                MetaError::BucketAlreadyExists => C::BucketAlreadyExists,
                MetaError::BucketAlreadyOwnedByYou => C::BucketAlreadyOwnedByYou,
                MetaError::BucketNotEmpty => C::BucketNotEmpty,
                MetaError::NoSuchKey => C::NoSuchKey,
                MetaError::AccessDenied => C::AccessDenied,
                MetaError::NoSuchUpload => C::NoSuchUpload,
                MetaError::InvalidPart(_) => C::InvalidPart,
                MetaError::InvalidPartOrder => C::InvalidPartOrder,
                MetaError::EntityTooSmall { .. } => C::EntityTooSmall,
                MetaError::PreconditionFailed => C::PreconditionFailed,
                MetaError::Unavailable(_) => C::ServiceUnavailable,
                MetaError::Storage(_)
                | MetaError::Corrupt(_)
                | MetaError::Unexpected(_)
                | MetaError::InvalidCommand(_) => C::InternalError,
                // Maintenance outcomes (repair, leases): never the answer to an S3 request.
                MetaError::Superseded(_) | MetaError::LeaseHeld { .. } => C::InternalError,
                MetaError::NoSuchVersion => C::NoSuchVersion,
                // Not applied, for sure: the client may retry the whole request.
                MetaError::BlobReclaimed(_) | MetaError::Abandoned => C::ServiceUnavailable,
                MetaError::DomainInUse => return custom("DomainInUse", http::StatusCode::CONFLICT, message),
            },
            GatewayError::Rpc(_) => C::ServiceUnavailable,
            GatewayError::Placement(_) => C::ServiceUnavailable,
            GatewayError::AccessDenied => C::AccessDenied,
            GatewayError::InvalidRange { size } => {
                let mut error = S3Error::with_message(C::InvalidRange, message);
                let mut headers = http::HeaderMap::new();
                if let Ok(value) = http::HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(http::header::CONTENT_RANGE, value);
                }
                error.set_headers(headers);
                return error;
            }
            GatewayError::BadDigest(_) => C::BadDigest,
            GatewayError::InvalidDigest(_) => C::InvalidDigest,
            GatewayError::IncompleteBody => C::IncompleteBody,
            GatewayError::RequestTimeout => C::RequestTimeout,
            GatewayError::BodyRead(_) => C::IncompleteBody,
            GatewayError::PayloadHashMismatch => return custom_400("XAmzContentSHA256Mismatch", message),
            GatewayError::KeyTooLong => C::KeyTooLongError,
            GatewayError::InvalidArgument(_) => C::InvalidArgument,
            GatewayError::InvalidRequest(_) => C::InvalidRequest,
            GatewayError::NotModified => C::NotModified,
            GatewayError::InvalidTag(_) => C::InvalidTag,
            GatewayError::BadRequest(_) => return custom_400("BadRequest", message),
            GatewayError::PreconditionFailed => C::PreconditionFailed,
            GatewayError::ConditionalRequestConflict => {
                return custom("ConditionalRequestConflict", http::StatusCode::CONFLICT, message);
            }
            GatewayError::MetadataTooLarge => C::MetadataTooLarge,
            GatewayError::EntityTooLarge => C::EntityTooLarge,
            GatewayError::EntityTooSmall => C::EntityTooSmall,
            GatewayError::PolicyRefused(_) => C::AccessDenied,
            GatewayError::InvalidPolicyDocument(_) => C::InvalidPolicyDocument,
            GatewayError::MalformedPost(_) => C::MalformedPOSTRequest,
            GatewayError::PostFieldsTooLarge => C::MaxPostPreDataLengthExceededError,
            GatewayError::MethodNotAllowed => C::MethodNotAllowed,
            GatewayError::SignatureDoesNotMatch => C::SignatureDoesNotMatch,
            GatewayError::Unreadable { .. } => C::ServiceUnavailable,
            GatewayError::DurabilityNotMet(_) => C::SlowDown,
            GatewayError::Internal(_) => C::InternalError,
            GatewayError::CorsForbidden(_) => return custom("AccessForbidden", http::StatusCode::FORBIDDEN, message),
            GatewayError::MalformedXml => C::MalformedXML,
            GatewayError::MessageTooLong(_) => C::MaxMessageLengthExceeded,
            GatewayError::DeleteMarker { version, by_version_id } => {
                let mut headers = http::HeaderMap::new();
                headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
                if let Ok(value) = http::HeaderValue::from_str(version) {
                    headers.insert("x-amz-version-id", value);
                }
                let code = if *by_version_id { C::MethodNotAllowed } else { C::NoSuchKey };
                let mut error = S3Error::with_message(code, message);
                error.set_headers(headers);
                return error;
            }
            GatewayError::InvalidVersionId => C::InvalidArgument,
            GatewayError::MalformedPolicy(_) => C::MalformedPolicy,
            GatewayError::AclNotSupported => C::AccessControlListNotSupported,
            GatewayError::InvalidBucketAclWithObjectOwnership => C::InvalidBucketAclWithObjectOwnership,
            GatewayError::MalformedAcl => C::MalformedACLError,
            GatewayError::UnresolvableGrantByEmailAddress => C::UnresolvableGrantByEmailAddress,
            GatewayError::InvalidRedirectLocation => return custom_400("InvalidRedirectLocation", message),
            GatewayError::NotImplemented(_) => C::NotImplemented,
            GatewayError::InvalidStorageClass => C::InvalidStorageClass,
            GatewayError::InvalidPartNumber => {
                return custom("InvalidPartNumber", http::StatusCode::RANGE_NOT_SATISFIABLE, message);
            }
            GatewayError::NoSuchPublicAccessBlockConfiguration => {
                return custom("NoSuchPublicAccessBlockConfiguration", http::StatusCode::NOT_FOUND, message);
            }
        };
        // A failure on the server side is described in the gateway's log, under a reference the
        // client gets: its details (node addresses, metadata internals) are not the client's.
        let public = match code {
            C::InternalError => "We encountered an internal error. Please try again.",
            C::ServiceUnavailable => "Service is unable to handle request. Please retry.",
            C::SlowDown => "Please reduce your request rate.",
            _ => return S3Error::with_message(code, message),
        };
        let reference = &ignifuge_types::random_id()[..16];
        tracing::error!(reference, error = %message, "request failed on the server side");
        S3Error::with_message(code, format!("{public} (reference {reference})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_errors_name_a_log_reference_not_their_details() {
        for error in [
            GatewayError::Internal("node dc2-n3 at 127.0.0.1:7021 answered garbage".into()),
            GatewayError::Meta(MetaError::Unavailable("127.0.0.1:7011 is not the leader".into())),
            GatewayError::DurabilityNotMet("only 4 live nodes: dc1-n1 127.0.0.1:7011".into()),
        ] {
            let detail = error.to_string();
            let s3 = S3Error::from(error);
            let message = s3.message().unwrap_or_default().to_string();
            assert!(!message.contains("127.0.0.1") && !message.contains("dc1-n1"), "{detail} leaked as {message}");
            assert!(message.contains("(reference "), "{message}");
        }
        // Client errors keep saying what was wrong.
        let s3 = S3Error::from(GatewayError::InvalidArgument("the part number must be 1-10000".into()));
        assert!(s3.message().unwrap_or_default().contains("part number"));
        // Metadata refusals say it in AWS's words.
        let s3 = S3Error::from(GatewayError::Meta(MetaError::NoSuchBucket));
        assert_eq!(s3.message(), Some("The specified bucket does not exist"));
    }
}
