//! Get/PutBucketAcl, Get/PutObjectAcl, Put/Get/DeleteBucketOwnershipControls, and the ACLs that
//! CreateBucket, PutObject, CopyObject and CreateMultipartUpload carry (x-amz-acl and
//! x-amz-grant-*). As on AWS, new buckets have ACLs disabled (Object Ownership
//! BucketOwnerEnforced): reading an ACL answers the owner's FULL_CONTROL, and setting any ACL but
//! the owner's full control is refused with AccessControlListNotSupported. With ACLs enabled
//! they are stored and the authorizer evaluates them; Block Public Access refuses public ones.

use super::IgnifugeS3;
use crate::authorize::BucketView;
use crate::error::{GatewayError, GatewayResult};
use ignifuge_access::{Acl, CannedAcl, Grant, Grantee, ObjectOwnership, Permission, Requester};
use ignifuge_meta::{BucketSetting, Command};
use ignifuge_types::{ObjectKey, TenantId};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

/// The ACL a request asks for, in any of AWS's three forms: a canned ACL (x-amz-acl), grant
/// headers (x-amz-grant-*), or an AccessControlPolicy body. Only one form may be used.
#[derive(Default)]
pub(super) struct AclRequest {
    pub canned: Option<String>,
    /// (permission, header value) of each x-amz-grant-* header given.
    pub grant_headers: Vec<(Permission, String)>,
    pub body: Option<AccessControlPolicy>,
}

impl AclRequest {
    pub fn headers(
        canned: Option<String>,
        full_control: Option<String>,
        read: Option<String>,
        read_acp: Option<String>,
        write: Option<String>,
        write_acp: Option<String>,
    ) -> Self {
        let grant_headers = [
            (Permission::FullControl, full_control),
            (Permission::Read, read),
            (Permission::ReadAcp, read_acp),
            (Permission::Write, write),
            (Permission::WriteAcp, write_acp),
        ]
        .into_iter()
        .filter_map(|(p, v)| v.map(|v| (p, v)))
        .collect();
        AclRequest { canned, grant_headers, body: None }
    }

    fn is_empty(&self) -> bool {
        self.canned.is_none() && self.grant_headers.is_empty() && self.body.is_none()
    }

    /// The ACL asked for, owned by `owner` in a bucket owned by `bucket_owner`.
    fn resolve(self, owner: &TenantId, bucket_owner: &TenantId) -> GatewayResult<Option<Acl>> {
        let forms = usize::from(self.canned.is_some())
            + usize::from(!self.grant_headers.is_empty())
            + usize::from(self.body.is_some());
        if forms > 1 {
            return Err(GatewayError::InvalidRequest(
                "Specifying both Canned ACLs and Header Grants is not allowed".into(),
            ));
        }
        if let Some(canned) = self.canned {
            let canned = CannedAcl::parse(&canned)
                .ok_or_else(|| GatewayError::InvalidArgument(format!("{canned} is not a valid canned ACL")))?;
            return Ok(Some(canned.to_acl(owner, bucket_owner)));
        }
        if !self.grant_headers.is_empty() {
            let mut grants = Vec::new();
            for (permission, value) in self.grant_headers {
                for grantee in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                    grants.push(Grant { grantee: grantee_of_header(grantee)?, permission });
                }
            }
            return Ok(Some(Acl { owner: owner.clone(), grants }));
        }
        if let Some(body) = self.body {
            let mut grants = Vec::new();
            for grant in body.grants.unwrap_or_default() {
                let (Some(grantee), Some(permission)) = (grant.grantee, grant.permission) else {
                    return Err(GatewayError::MalformedAcl);
                };
                grants.push(Grant { grantee: grantee_of_dto(grantee)?, permission: permission_of_dto(&permission)? });
            }
            return Ok(Some(Acl { owner: owner.clone(), grants }));
        }
        Ok(None)
    }
}

fn grantee_of_header(text: &str) -> GatewayResult<Grantee> {
    let (kind, value) = text.split_once('=').ok_or(GatewayError::MalformedAcl)?;
    let value = value.trim().trim_matches('"');
    match kind.trim().to_ascii_lowercase().as_str() {
        "id" => Ok(Grantee::Tenant(TenantId::new(value))),
        "uri" => grantee_of_uri(value),
        "emailaddress" => Err(GatewayError::UnresolvableGrantByEmailAddress),
        _ => Err(GatewayError::MalformedAcl),
    }
}

fn grantee_of_uri(uri: &str) -> GatewayResult<Grantee> {
    match uri {
        ALL_USERS => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
        LOG_DELIVERY => Ok(Grantee::LogDelivery),
        _ => Err(GatewayError::InvalidArgument(format!("Invalid group uri: {uri}"))),
    }
}

fn grantee_of_dto(grantee: s3s::dto::Grantee) -> GatewayResult<Grantee> {
    match grantee.type_.as_str() {
        Type::CANONICAL_USER => {
            grantee.id.map(|id| Grantee::Tenant(TenantId::new(id))).ok_or(GatewayError::MalformedAcl)
        }
        Type::GROUP => grantee_of_uri(grantee.uri.as_deref().unwrap_or("")),
        Type::AMAZON_CUSTOMER_BY_EMAIL => Err(GatewayError::UnresolvableGrantByEmailAddress),
        _ => Err(GatewayError::MalformedAcl),
    }
}

fn permission_of_dto(permission: &s3s::dto::Permission) -> GatewayResult<Permission> {
    Ok(match permission.as_str() {
        s3s::dto::Permission::FULL_CONTROL => Permission::FullControl,
        s3s::dto::Permission::READ => Permission::Read,
        s3s::dto::Permission::READ_ACP => Permission::ReadAcp,
        s3s::dto::Permission::WRITE => Permission::Write,
        s3s::dto::Permission::WRITE_ACP => Permission::WriteAcp,
        _ => return Err(GatewayError::MalformedAcl),
    })
}

fn owner_dto(tenant: &TenantId) -> Owner {
    Owner { display_name: Some(tenant.0.clone()), id: Some(tenant.0.clone()) }
}

fn grants_dto(acl: &Acl) -> Grants {
    let mut grants = vec![s3s::dto::Grant {
        grantee: Some(s3s::dto::Grantee {
            display_name: Some(acl.owner.0.clone()),
            email_address: None,
            id: Some(acl.owner.0.clone()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(s3s::dto::Permission::from_static(s3s::dto::Permission::FULL_CONTROL)),
    }];
    for grant in &acl.grants {
        let owner_again =
            grant.permission == Permission::FullControl && grant.grantee == Grantee::Tenant(acl.owner.clone());
        if owner_again {
            continue;
        }
        let (type_, id, uri) = match &grant.grantee {
            Grantee::Tenant(t) => (Type::CANONICAL_USER, Some(t.0.clone()), None),
            Grantee::AllUsers => (Type::GROUP, None, Some(ALL_USERS.to_string())),
            Grantee::AuthenticatedUsers => (Type::GROUP, None, Some(AUTHENTICATED_USERS.to_string())),
            Grantee::LogDelivery => (Type::GROUP, None, Some(LOG_DELIVERY.to_string())),
        };
        let permission = match grant.permission {
            Permission::FullControl => s3s::dto::Permission::FULL_CONTROL,
            Permission::Read => s3s::dto::Permission::READ,
            Permission::ReadAcp => s3s::dto::Permission::READ_ACP,
            Permission::Write => s3s::dto::Permission::WRITE,
            Permission::WriteAcp => s3s::dto::Permission::WRITE_ACP,
        };
        grants.push(s3s::dto::Grant {
            grantee: Some(s3s::dto::Grantee {
                display_name: id.clone(),
                email_address: None,
                id,
                type_: Type::from_static(type_),
                uri,
            }),
            permission: Some(s3s::dto::Permission::from_static(permission)),
        });
    }
    grants
}

/// Whether an ACL request only gives the bucket owner full control (what a bucket with ACLs
/// disabled accepts).
fn only_owner_full_control(acl: &Option<Acl>, bucket_owner: &TenantId) -> bool {
    acl.as_ref().is_none_or(|acl| {
        acl.grants
            .iter()
            .all(|g| g.permission == Permission::FullControl && g.grantee == Grantee::Tenant(bucket_owner.clone()))
    })
}

fn acls_disabled() -> GatewayError {
    GatewayError::AclNotSupported
}

/// The ACL to store with an object a requester writes into the bucket of `view`: None when no
/// ACL is asked for (or ACLs are disabled and the request asks only for the owner's full
/// control). Refused as AWS refuses: AccessControlListNotSupported when ACLs are disabled,
/// AccessDenied for a public ACL under BlockPublicAcls.
pub(super) fn object_acl(view: &BucketView, writer: &Requester, request: AclRequest) -> GatewayResult<Option<Acl>> {
    let bucket_owner = &view.record.tenant;
    let writer_tenant = match writer {
        Requester::Key { tenant, .. } => tenant.clone(),
        Requester::Anonymous => bucket_owner.clone(),
    };
    let ownership = view.ownership();
    let explicit = !request.is_empty();
    let bucket_owner_full_control = request.canned.as_deref() == Some("bucket-owner-full-control");
    // Who owns the object: the bucket owner, except under ObjectWriter (always the writer) and
    // BucketOwnerPreferred (the writer unless it hands the object over with
    // bucket-owner-full-control).
    let owner = match ownership {
        ObjectOwnership::BucketOwnerEnforced => bucket_owner.clone(),
        ObjectOwnership::BucketOwnerPreferred if bucket_owner_full_control => bucket_owner.clone(),
        _ => writer_tenant.clone(),
    };
    let acl = request.resolve(&owner, bucket_owner)?;
    if !ownership.acls_enabled() {
        return if only_owner_full_control(&acl, bucket_owner) { Ok(None) } else { Err(acls_disabled()) };
    }
    if acl.as_ref().is_some_and(Acl::is_public) && view.public_access_block().block_public_acls {
        return Err(GatewayError::AccessDenied);
    }
    Ok(match acl {
        Some(acl) => Some(acl),
        // The default ACL: its owner's full control; stored when the owner is not the bucket's.
        None if owner != *bucket_owner => Some(Acl::private(&owner)),
        None => None,
    }
    .filter(|_| explicit || owner != *bucket_owner))
}

/// A new bucket's Object Ownership and ACL, from CreateBucket's headers.
pub(super) fn new_bucket_access(
    owner: &TenantId,
    ownership: Option<&s3s::dto::ObjectOwnership>,
    request: AclRequest,
) -> GatewayResult<(ObjectOwnership, Option<Acl>)> {
    let ownership = match ownership {
        Some(o) => ObjectOwnership::parse(o.as_str())
            .ok_or_else(|| GatewayError::InvalidArgument(format!("Invalid x-amz-object-ownership: {}", o.as_str())))?,
        None => ObjectOwnership::default(),
    };
    let acl = request.resolve(owner, owner)?;
    if !ownership.acls_enabled() {
        return if only_owner_full_control(&acl, owner) {
            Ok((ownership, None))
        } else {
            Err(GatewayError::InvalidBucketAclWithObjectOwnership)
        };
    }
    // New buckets have BlockPublicAcls on: a public ACL cannot be set until it is turned off.
    if acl.as_ref().is_some_and(Acl::is_public) {
        return Err(GatewayError::AccessDenied);
    }
    Ok((ownership, acl))
}

pub async fn get_bucket_acl(
    _s3: &IgnifugeS3,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let acl = bucket.acl.clone().unwrap_or_else(|| Acl::private(&bucket.tenant));
    Ok(S3Response::new(GetBucketAclOutput { owner: Some(owner_dto(&acl.owner)), grants: Some(grants_dto(&acl)) }))
}

pub async fn put_bucket_acl(
    s3: &IgnifugeS3,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let view = IgnifugeS3::authorized(&req)?.view()?.clone();
    let input = req.input;
    let mut request = AclRequest::headers(
        input.acl.map(|a| a.as_str().to_string()),
        input.grant_full_control,
        input.grant_read,
        input.grant_read_acp,
        input.grant_write,
        input.grant_write_acp,
    );
    request.body = input.access_control_policy;
    let owner = &view.record.tenant;
    let acl = request.resolve(owner, owner)?;
    if !view.ownership().acls_enabled() {
        if only_owner_full_control(&acl, owner) {
            return Ok(S3Response::new(PutBucketAclOutput {}));
        }
        return Err(acls_disabled().into());
    }
    let acl = acl.ok_or(GatewayError::MalformedAcl)?;
    if acl.is_public() && view.public_access_block().block_public_acls {
        return Err(GatewayError::AccessDenied.into());
    }
    s3.set_bucket_setting(&view.record, BucketSetting::Acl(Some(acl))).await?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

pub async fn get_object_acl(
    s3: &IgnifugeS3,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?;
    let input = &req.input;
    let read = s3.get_record(authorized, &input.key, input.version_id.as_deref(), 0).await?;
    let bucket_owner = &authorized.view()?.record.tenant;
    let acl = read.record.acl.unwrap_or_else(|| Acl::private(bucket_owner));
    Ok(S3Response::new(GetObjectAclOutput {
        owner: Some(owner_dto(&acl.owner)),
        grants: Some(grants_dto(&acl)),
        request_charged: None,
    }))
}

pub async fn put_object_acl(
    s3: &IgnifugeS3,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?.clone();
    let view = authorized.view()?.clone();
    let input = req.input;
    let mut request = AclRequest::headers(
        input.acl.map(|a| a.as_str().to_string()),
        input.grant_full_control,
        input.grant_read,
        input.grant_read_acp,
        input.grant_write,
        input.grant_write_acp,
    );
    request.body = input.access_control_policy;
    let bucket_owner = &view.record.tenant;
    let acl = request.resolve(bucket_owner, bucket_owner)?;
    if !view.ownership().acls_enabled() {
        if only_owner_full_control(&acl, bucket_owner) {
            return Ok(S3Response::new(PutObjectAclOutput::default()));
        }
        return Err(acls_disabled().into());
    }
    let acl = acl.ok_or(GatewayError::MalformedAcl)?;
    if acl.is_public() && view.public_access_block().block_public_acls {
        return Err(GatewayError::AccessDenied.into());
    }
    let version = super::objects::parse_version_id(input.version_id.as_deref())?;
    let command =
        Command::SetObjectAcl { bucket: view.record.reference(), key: ObjectKey::new(input.key), version, acl };
    s3.gateway.metadata.apply_object(command).await.map_err(GatewayError::Meta)?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

pub async fn put_bucket_ownership_controls(
    s3: &IgnifugeS3,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let rules = req.input.ownership_controls.rules;
    let [rule] = rules.as_slice() else {
        return Err(GatewayError::MalformedXml.into());
    };
    let ownership = ObjectOwnership::parse(rule.object_ownership.as_str()).ok_or(GatewayError::MalformedXml)?;
    // AWS: ACLs cannot be disabled while the bucket ACL grants anyone but the owner.
    if !ownership.acls_enabled() && !only_owner_full_control(&bucket.acl, &bucket.tenant) {
        return Err(GatewayError::InvalidBucketAclWithObjectOwnership.into());
    }
    s3.set_bucket_setting(&bucket, BucketSetting::Ownership(Some(ownership))).await?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
}

pub async fn get_bucket_ownership_controls(
    _s3: &IgnifugeS3,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let Some(ownership) = IgnifugeS3::bucket(&req)?.ownership else {
        return Err(s3s::s3_error!(OwnershipControlsNotFoundError, "The bucket ownership controls were not found"));
    };
    let rule =
        OwnershipControlsRule { object_ownership: s3s::dto::ObjectOwnership::from(ownership.as_str().to_string()) };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
    }))
}

pub async fn delete_bucket_ownership_controls(
    s3: &IgnifugeS3,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    s3.set_bucket_setting(&bucket, BucketSetting::Ownership(None)).await?;
    Ok(S3Response::with_status(DeleteBucketOwnershipControlsOutput {}, http::StatusCode::NO_CONTENT))
}
