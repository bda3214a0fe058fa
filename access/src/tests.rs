//! Behaviour tests: each asserts the decision, or the refusal text, a user would see.

use std::collections::BTreeMap;

use ignifuge_types::{AccessKeyId, TenantId, UserId};

use crate::*;

const BUCKET: &str = "photos";

fn tenant(id: &str) -> TenantId {
    TenantId::new(id)
}

/// A key `<tenant>-key` of user `<tenant>-user`, or of the user and key given.
fn key_of(tenant_id: &str) -> Requester {
    key(tenant_id, &format!("{tenant_id}-user"), &format!("{tenant_id}-key"))
}

fn key(tenant_id: &str, user: &str, access_key: &str) -> Requester {
    Requester::Key { tenant: tenant(tenant_id), user: UserId::new(user), access_key: AccessKeyId::new(access_key) }
}

/// The bucket `photos`, owned by tenant `alice`.
struct Bucket {
    owner: TenantId,
    policy: Option<Policy>,
    acl: Option<Acl>,
    ownership: ObjectOwnership,
    block: PublicAccessBlock,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            owner: tenant("alice"),
            policy: None,
            acl: None,
            ownership: ObjectOwnership::BucketOwnerEnforced,
            block: PublicAccessBlock::NONE,
        }
    }

    fn with_policy(json: &str) -> Bucket {
        let mut bucket = Bucket::new();
        bucket.policy = Some(parse(json));
        bucket
    }

    fn decide(&self, requester: &Requester, action: &str, key: Option<&str>) -> Decision {
        self.decide_with(requester, action, key, None, &RequestContext::default())
    }

    fn decide_with(
        &self,
        requester: &Requester,
        action: &str,
        key: Option<&str>,
        object_acl: Option<&Acl>,
        context: &RequestContext,
    ) -> Decision {
        let access = BucketAccess {
            bucket: BUCKET,
            owner: &self.owner,
            policy: self.policy.as_ref(),
            acl: self.acl.as_ref(),
            ownership: self.ownership,
            public_access_block: self.block,
        };
        authorize(requester, action, &Target { key, object_acl }, &access, context)
    }

    fn allows(&self, requester: &Requester, action: &str, key: Option<&str>) -> bool {
        self.decide(requester, action, key).allowed
    }
}

fn parse(json: &str) -> Policy {
    match Policy::parse(json, BUCKET) {
        Ok(policy) => policy,
        Err(error) => panic!("policy refused: {error}\n{json}"),
    }
}

fn refusal(json: &str) -> String {
    match Policy::parse(json, BUCKET) {
        Ok(_) => panic!("policy accepted: {json}"),
        Err(PolicyError::Malformed(reason)) => reason,
    }
}

/// A one-statement policy document.
fn statement(body: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":{body}}}"#)
}

const PUBLIC_READ: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": ["s3:GetObject", "s3:GetObjectVersion"],
        "Resource": "arn:aws:s3:::photos/*"
    }]
}"#;

fn context(values: &[(&str, &[&str])]) -> RequestContext {
    let values = values
        .iter()
        .map(|(key, values)| (key.to_string(), values.iter().map(|v| v.to_string()).collect()))
        .collect::<BTreeMap<_, _>>();
    RequestContext { values, ..RequestContext::default() }
}

/// Whether anonymous GetObject on `photos/a.jpg` is allowed by a public-read statement carrying
/// `condition`, in `context`.
fn condition_allows(condition: &str, context: &RequestContext) -> bool {
    let bucket = Bucket::with_policy(&statement(&format!(
        r#"{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*","Condition":{condition}}}"#
    )));
    bucket.decide_with(&Requester::Anonymous, "s3:GetObject", Some("a.jpg"), None, context).allowed
}

// ---- Decisions: owner, deny, allow ------------------------------------------------------------

#[test]
fn the_owner_tenant_may_do_anything_without_a_policy_and_others_nothing() {
    let bucket = Bucket::new();
    let decision = bucket.decide(&key_of("alice"), "s3:PutObject", Some("a.jpg"));
    assert_eq!(decision, Decision { allowed: true, reason: "owner".into() });
    assert!(bucket.allows(&key("alice", "another-user", "another-key"), "s3:DeleteBucket", None));
    let decision = bucket.decide(&key_of("bob"), "s3:GetObject", Some("a.jpg"));
    assert_eq!(decision, Decision { allowed: false, reason: "no statement allows".into() });
    assert!(!bucket.allows(&Requester::Anonymous, "s3:ListBucket", None));
}

#[test]
fn explicit_deny_beats_allow_also_for_the_owner() {
    let bucket = Bucket::with_policy(
        r#"{"Statement":[
            {"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"},
            {"Sid":"DenyAll","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::photos/secret/*"}
        ]}"#,
    );
    for requester in [Requester::Anonymous, key_of("bob"), key_of("alice")] {
        let decision = bucket.decide(&requester, "s3:GetObject", Some("secret/plans.pdf"));
        assert_eq!(decision, Decision { allowed: false, reason: "explicit deny by statement 'DenyAll'".into() });
    }
    let decision = bucket.decide(&key_of("bob"), "s3:GetObject", Some("holiday.jpg"));
    assert_eq!(decision, Decision { allowed: true, reason: "allowed by statement 'PublicRead'".into() });
}

#[test]
fn a_statement_without_sid_is_named_by_its_position() {
    let bucket = Bucket::with_policy(
        r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"},
            {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::photos/*"}
        ]}"#,
    );
    assert_eq!(bucket.decide(&key_of("alice"), "s3:DeleteObject", Some("a")).reason, "explicit deny by statement #2");
    assert_eq!(bucket.decide(&Requester::Anonymous, "s3:GetObject", Some("a")).reason, "allowed by statement #1");
}

#[test]
fn anonymous_public_read_policy_allows_get_object_but_not_put_object() {
    let bucket = Bucket::with_policy(PUBLIC_READ);
    assert!(bucket.allows(&Requester::Anonymous, "s3:GetObject", Some("cat.jpg")));
    assert!(bucket.allows(&Requester::Anonymous, "s3:GetObjectVersion", Some("cat.jpg")));
    let decision = bucket.decide(&Requester::Anonymous, "s3:PutObject", Some("cat.jpg"));
    assert_eq!(decision, Decision { allowed: false, reason: "no statement allows".into() });
    assert!(!bucket.allows(&Requester::Anonymous, "s3:ListBucket", None));
    assert!(!bucket.allows(&key_of("bob"), "s3:DeleteObject", Some("cat.jpg")));
}

#[test]
fn a_policy_naming_another_tenant_allows_it_and_not_a_third_in_every_principal_form() {
    for principal in [
        r#"{"AWS":"bob"}"#,
        r#"{"AWS":["carol-is-not-here","bob"]}"#,
        r#"{"AWS":"arn:aws:iam::bob:root"}"#,
        r#"{"CanonicalUser":"bob"}"#,
    ] {
        let bucket = Bucket::with_policy(&statement(&format!(
            r#"{{"Effect":"Allow","Principal":{principal},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}}"#
        )));
        assert!(bucket.allows(&key_of("bob"), "s3:GetObject", Some("a")), "{principal}");
        assert!(bucket.allows(&key("bob", "other-user", "other-key"), "s3:GetObject", Some("a")), "{principal}");
        assert!(!bucket.allows(&key_of("carol"), "s3:GetObject", Some("a")), "{principal}");
        assert!(!bucket.allows(&Requester::Anonymous, "s3:GetObject", Some("a")), "{principal}");
    }
}

#[test]
fn a_policy_naming_one_user_or_one_key_allows_only_that_user_or_key() {
    let bucket = Bucket::with_policy(&statement(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::bob:user/robert"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
    ));
    assert!(bucket.allows(&key("bob", "robert", "k1"), "s3:GetObject", Some("a")));
    assert!(bucket.allows(&key("bob", "robert", "k2"), "s3:GetObject", Some("a")));
    assert!(!bucket.allows(&key("bob", "roberta", "k3"), "s3:GetObject", Some("a")));
    assert!(!bucket.allows(&key("carol", "robert", "k1"), "s3:GetObject", Some("a")));

    let bucket = Bucket::with_policy(&statement(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::bob:key/AKBOB1"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
    ));
    assert!(bucket.allows(&key("bob", "robert", "AKBOB1"), "s3:GetObject", Some("a")));
    assert!(!bucket.allows(&key("bob", "robert", "AKBOB2"), "s3:GetObject", Some("a")));
    assert!(!bucket.allows(&key("carol", "robert", "AKBOB1"), "s3:GetObject", Some("a")));
}

#[test]
fn aws_wildcard_principal_matches_anonymous_and_every_tenant() {
    let bucket = Bucket::with_policy(&statement(
        r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::photos"}"#,
    ));
    assert!(bucket.allows(&Requester::Anonymous, "s3:ListBucket", None));
    assert!(bucket.allows(&key_of("zed"), "s3:ListBucket", None));
}

#[test]
fn not_principal_deny_applies_to_everyone_but_the_named_tenant() {
    let bucket = Bucket::with_policy(
        r#"{"Statement":[
            {"Sid":"Read","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"},
            {"Sid":"OnlyBob","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::bob:root","alice"]},"Action":"s3:*","Resource":"arn:aws:s3:::photos/*"}
        ]}"#,
    );
    assert!(bucket.allows(&key_of("bob"), "s3:GetObject", Some("a")));
    assert!(bucket.allows(&key_of("alice"), "s3:GetObject", Some("a")));
    assert_eq!(
        bucket.decide(&key_of("carol"), "s3:GetObject", Some("a")).reason,
        "explicit deny by statement 'OnlyBob'"
    );
    assert!(!bucket.allows(&Requester::Anonymous, "s3:GetObject", Some("a")));
}

#[test]
fn not_action_allows_every_action_but_the_listed_ones() {
    let bucket = Bucket::with_policy(&statement(
        r#"{"Effect":"Allow","Principal":{"AWS":"bob"},"NotAction":["s3:DeleteObject","s3:PutObject*"],"Resource":"arn:aws:s3:::photos/*"}"#,
    ));
    assert!(bucket.allows(&key_of("bob"), "s3:GetObject", Some("a")));
    assert!(bucket.allows(&key_of("bob"), "s3:GetObjectTagging", Some("a")));
    assert!(!bucket.allows(&key_of("bob"), "s3:DeleteObject", Some("a")));
    assert!(!bucket.allows(&key_of("bob"), "s3:PutObjectAcl", Some("a")));
    // The resource still has to match: the bucket itself is not under photos/*.
    assert!(!bucket.allows(&key_of("bob"), "s3:ListBucket", None));
}

#[test]
fn not_resource_applies_everywhere_but_the_listed_resources() {
    let bucket = Bucket::with_policy(
        r#"{"Statement":[
            {"Sid":"All","Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:*","Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]},
            {"Sid":"OnlyPublic","Effect":"Deny","Principal":"*","Action":"s3:GetObject","NotResource":"arn:aws:s3:::photos/public/*"}
        ]}"#,
    );
    assert!(bucket.allows(&key_of("bob"), "s3:GetObject", Some("public/a")));
    assert!(!bucket.allows(&key_of("bob"), "s3:GetObject", Some("private/a")));
    assert!(bucket.allows(&key_of("bob"), "s3:ListBucket", None));
}

#[test]
fn wildcards_in_actions_and_resources_match_as_in_aws() {
    let bucket = Bucket::with_policy(&statement(
        r#"{"Effect":"Allow","Principal":"*","Action":["s3:Get*","s3:?istBucket"],"Resource":["arn:aws:s3:::photos/public/*","arn:aws:s3:::photos"]}"#,
    ));
    assert!(bucket.allows(&Requester::Anonymous, "s3:GetObject", Some("public/2024/a.jpg")));
    assert!(bucket.allows(&Requester::Anonymous, "s3:GetObjectAcl", Some("public/a.jpg")));
    assert!(!bucket.allows(&Requester::Anonymous, "s3:GetObject", Some("private/a.jpg")));
    assert!(
        !bucket.allows(&Requester::Anonymous, "s3:GetObject", Some("Public/a.jpg")),
        "resources are case-sensitive"
    );
    assert!(bucket.allows(&Requester::Anonymous, "s3:ListBucket", None));
    assert!(!bucket.allows(&Requester::Anonymous, "s3:ListBucketVersions", None));
    assert!(!bucket.allows(&Requester::Anonymous, "s3:PutObject", Some("public/a.jpg")));

    let bucket = Bucket::with_policy(&statement(
        r#"{"Effect":"Allow","Principal":"*","Action":"S3:GETOBJECT","Resource":"arn:aws:s3:::photos/a?c"}"#,
    ));
    assert!(bucket.allows(&Requester::Anonymous, "s3:GetObject", Some("abc")), "actions are case-insensitive");
    assert!(!bucket.allows(&Requester::Anonymous, "s3:GetObject", Some("abbc")));

    let bucket =
        Bucket::with_policy(&statement(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}"#));
    assert!(bucket.allows(&Requester::Anonymous, "s3:DeleteObject", Some("x")));
    assert!(bucket.allows(&Requester::Anonymous, "s3:GetBucketTagging", None));
}

#[test]
fn policy_management_stays_with_the_owner_tenant_whatever_the_policy_says() {
    let bucket = Bucket::with_policy(
        r#"{"Statement":[
            {"Sid":"LockOut","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::photos"},
            {"Sid":"Bob","Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:*","Resource":"*"}
        ]}"#,
    );
    for action in ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"] {
        assert!(bucket.allows(&key_of("alice"), action, None), "{action}");
        assert!(!bucket.allows(&key_of("bob"), action, None), "{action}");
    }
    assert!(!bucket.allows(&key_of("alice"), "s3:ListBucket", None));
}

// ---- Conditions -------------------------------------------------------------------------------

#[test]
fn string_operators_match_values_and_treat_a_missing_key_as_aws_does() {
    let acl = |values: &[&str]| context(&[("s3:x-amz-acl", values)]);
    let none = RequestContext::default();
    let cases: [(&str, &RequestContext, bool); 16] = [
        (r#"{"StringEquals":{"s3:x-amz-acl":"private"}}"#, &acl(&["private"]), true),
        (r#"{"StringEquals":{"s3:x-amz-acl":"private"}}"#, &acl(&["Private"]), false),
        (r#"{"StringEquals":{"s3:x-amz-acl":["public-read","private"]}}"#, &acl(&["private"]), true),
        (r#"{"StringEquals":{"s3:x-amz-acl":"private"}}"#, &none, false),
        (r#"{"StringNotEquals":{"s3:x-amz-acl":["public-read","public-read-write"]}}"#, &acl(&["private"]), true),
        (r#"{"StringNotEquals":{"s3:x-amz-acl":["public-read","public-read-write"]}}"#, &acl(&["public-read"]), false),
        (r#"{"StringNotEquals":{"s3:x-amz-acl":"public-read"}}"#, &none, true),
        (r#"{"StringEqualsIgnoreCase":{"s3:x-amz-acl":"PRIVATE"}}"#, &acl(&["private"]), true),
        (r#"{"StringEqualsIgnoreCase":{"s3:x-amz-acl":"PRIVATE"}}"#, &none, false),
        (r#"{"StringNotEqualsIgnoreCase":{"s3:x-amz-acl":"PUBLIC-READ"}}"#, &acl(&["public-read"]), false),
        (r#"{"StringNotEqualsIgnoreCase":{"s3:x-amz-acl":"PUBLIC-READ"}}"#, &acl(&["private"]), true),
        (r#"{"StringLike":{"s3:x-amz-acl":"pub*"}}"#, &acl(&["public-read"]), true),
        (r#"{"StringLike":{"s3:x-amz-acl":"pub*"}}"#, &acl(&["private"]), false),
        (r#"{"StringLike":{"s3:x-amz-acl":"pub*"}}"#, &none, false),
        (r#"{"StringNotLike":{"s3:x-amz-acl":"pub*"}}"#, &acl(&["public-read"]), false),
        (r#"{"StringNotLike":{"s3:x-amz-acl":"pub*"}}"#, &none, true),
    ];
    for (condition, context, expected) in cases {
        assert_eq!(condition_allows(condition, context), expected, "{condition} with {:?}", context.values);
    }
}

#[test]
fn condition_key_names_compare_case_insensitively() {
    let context = context(&[("S3:Prefix", &["home/"])]);
    assert!(condition_allows(r#"{"StringEquals":{"s3:prefix":"home/"}}"#, &context));
    assert!(condition_allows(r#"{"StringEquals":{"S3:PREFIX":"home/"}}"#, &context));
}

#[test]
fn numeric_operators_compare_numbers_and_fail_on_a_missing_key() {
    let keys = |n: &str| context(&[("s3:max-keys", &[n])]);
    let none = RequestContext::default();
    let cases: [(&str, &RequestContext, bool); 13] = [
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, &keys("10"), true),
        (r#"{"NumericEquals":{"s3:max-keys":10}}"#, &keys("10.0"), true),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, &keys("11"), false),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, &none, false),
        (r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#, &keys("11"), true),
        (r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#, &keys("10"), false),
        (r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#, &none, true),
        (r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#, &keys("9"), true),
        (r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#, &keys("10"), false),
        (r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#, &keys("10"), true),
        (r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#, &keys("10"), false),
        (r#"{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}"#, &keys("10"), true),
        (r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#, &keys("ten"), false),
    ];
    for (condition, context, expected) in cases {
        assert_eq!(condition_allows(condition, context), expected, "{condition} with {:?}", context.values);
    }
}

#[test]
fn date_less_than_current_time_grants_until_the_deadline() {
    let at = |ms: i64| RequestContext { current_time_ms: ms, ..RequestContext::default() };
    let deadline = 1_593_561_599_000; // 2020-06-30T23:59:59Z
    let condition = r#"{"DateLessThan":{"aws:CurrentTime":"2020-06-30T23:59:59Z"}}"#;
    assert!(condition_allows(condition, &at(deadline - 1)));
    assert!(!condition_allows(condition, &at(deadline)));
    let window = r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-04-01T00:00:00Z"},"DateLessThanEquals":{"aws:EpochTime":"1593561599"}}"#;
    assert!(condition_allows(window, &at(1_585_699_200_001)));
    assert!(condition_allows(window, &at(deadline)));
    assert!(!condition_allows(window, &at(1_585_699_200_000)));
    assert!(!condition_allows(window, &at(deadline + 1)));
}

#[test]
fn date_operators_compare_request_dates_and_fail_on_a_missing_key() {
    let retain = |date: &str| context(&[("s3:object-lock-retain-until-date", &[date])]);
    let none = RequestContext::default();
    let key = "s3:object-lock-retain-until-date";
    let cases: Vec<(String, RequestContext, bool)> = vec![
        (format!(r#"{{"DateEquals":{{"{key}":"2030-01-01T00:00:00Z"}}}}"#), retain("2030-01-01"), true),
        (format!(r#"{{"DateEquals":{{"{key}":"2030-01-01T00:00:00Z"}}}}"#), retain("2030-01-02"), false),
        (format!(r#"{{"DateEquals":{{"{key}":"2030-01-01T00:00:00Z"}}}}"#), none.clone(), false),
        (format!(r#"{{"DateNotEquals":{{"{key}":"2030-01-01"}}}}"#), retain("2030-01-02T00:00:00Z"), true),
        (format!(r#"{{"DateNotEquals":{{"{key}":"2030-01-01"}}}}"#), none.clone(), true),
        (format!(r#"{{"DateGreaterThanEquals":{{"{key}":"1893456000"}}}}"#), retain("2030-01-01T00:00:00Z"), true),
        (format!(r#"{{"DateGreaterThan":{{"{key}":"2030-01-01"}}}}"#), retain("2029-12-31T23:59:59Z"), false),
        (format!(r#"{{"DateLessThan":{{"{key}":"2030-01-01"}}}}"#), retain("not a date"), false),
    ];
    for (condition, context, expected) in cases {
        assert_eq!(condition_allows(&condition, &context), expected, "{condition} with {:?}", context.values);
    }
}

#[test]
fn bool_secure_transport_denies_plain_http() {
    let bucket = Bucket::with_policy(
        r#"{"Statement":[
            {"Sid":"Read","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"},
            {"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::photos/*",
             "Condition":{"Bool":{"aws:SecureTransport":"false"}}}
        ]}"#,
    );
    let tls = RequestContext { secure_transport: true, ..RequestContext::default() };
    let plain = RequestContext::default();
    assert!(bucket.decide_with(&Requester::Anonymous, "s3:GetObject", Some("a"), None, &tls).allowed);
    let decision = bucket.decide_with(&key_of("alice"), "s3:GetObject", Some("a"), None, &plain);
    assert_eq!(decision.reason, "explicit deny by statement 'TlsOnly'");
    assert!(condition_allows(r#"{"Bool":{"aws:SecureTransport":true}}"#, &tls));
    assert!(!condition_allows(r#"{"Bool":{"aws:SecureTransport":true}}"#, &plain));
}

#[test]
fn ip_address_conditions_match_v4_and_v6_cidrs() {
    let from = |ip: &str| RequestContext { source_ip: Some(ip.parse().expect("test ip")), ..RequestContext::default() };
    let allow = r#"{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32","203.0.113.7"]}}"#;
    assert!(condition_allows(allow, &from("192.0.2.55")));
    assert!(condition_allows(allow, &from("::ffff:192.0.2.55")), "IPv4-mapped IPv6 is the IPv4 client");
    assert!(condition_allows(allow, &from("2001:db8:abcd::1")));
    assert!(condition_allows(allow, &from("203.0.113.7")));
    assert!(!condition_allows(allow, &from("203.0.113.8")));
    assert!(!condition_allows(allow, &from("2001:db9::1")));
    assert!(!condition_allows(allow, &RequestContext::default()), "no source address: IpAddress is false");

    let deny_outside = r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#;
    assert!(condition_allows(deny_outside, &from("192.0.2.1")));
    assert!(!condition_allows(deny_outside, &from("10.1.2.3")));
    assert!(condition_allows(deny_outside, &RequestContext::default()), "negated operator, missing key: true");
}

#[test]
fn null_tests_whether_a_key_is_present() {
    let tagged = context(&[("s3:RequestObjectTag/project", &["x"])]);
    let none = RequestContext::default();
    assert!(condition_allows(r#"{"Null":{"s3:RequestObjectTag/project":"true"}}"#, &none));
    assert!(!condition_allows(r#"{"Null":{"s3:RequestObjectTag/project":"true"}}"#, &tagged));
    assert!(condition_allows(r#"{"Null":{"s3:RequestObjectTag/project":false}}"#, &tagged));
    assert!(!condition_allows(r#"{"Null":{"s3:RequestObjectTag/project":"false"}}"#, &none));
    assert!(condition_allows(r#"{"Null":{"aws:SourceIp":"true"}}"#, &none), "no source address recorded");
}

#[test]
fn if_exists_is_true_when_the_key_is_missing_and_tests_it_otherwise() {
    let none = RequestContext::default();
    let condition = r#"{"StringEqualsIfExists":{"s3:x-amz-acl":"private"}}"#;
    assert!(condition_allows(condition, &none));
    assert!(condition_allows(condition, &context(&[("s3:x-amz-acl", &["private"])])));
    assert!(!condition_allows(condition, &context(&[("s3:x-amz-acl", &["public-read"])])));
    let numeric = r#"{"NumericLessThanEqualsIfExists":{"s3:max-keys":"100"}}"#;
    assert!(condition_allows(numeric, &none));
    assert!(!condition_allows(numeric, &context(&[("s3:max-keys", &["1000"])])));
    let ip = r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#;
    assert!(condition_allows(ip, &none));
}

#[test]
fn for_any_value_and_for_all_values_compare_sets() {
    let tags = |keys: &[&str]| {
        let mut context = RequestContext::default();
        context.values.insert("aws:TagKeys".into(), keys.iter().map(|k| k.to_string()).collect());
        context
    };
    let none = RequestContext::default();
    let any = r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["project","team"]}}"#;
    assert!(condition_allows(any, &tags(&["cost", "team"])));
    assert!(!condition_allows(any, &tags(&["cost", "owner"])));
    assert!(!condition_allows(any, &none), "ForAnyValue with no values: false");

    let all = r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["project","team"]}}"#;
    assert!(condition_allows(all, &tags(&["project", "team"])));
    assert!(condition_allows(all, &tags(&["team"])));
    assert!(!condition_allows(all, &tags(&["team", "cost"])));
    assert!(condition_allows(all, &none), "ForAllValues with no values: true, as the IAM guide warns");

    let none_forbidden = r#"{"ForAllValues:StringNotLike":{"aws:TagKeys":"secret*"}}"#;
    assert!(condition_allows(none_forbidden, &tags(&["project", "team"])));
    assert!(!condition_allows(none_forbidden, &tags(&["project", "secret-x"])));
    let some_allowed = r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"project"}}"#;
    assert!(condition_allows(some_allowed, &tags(&["project", "team"])));
    assert!(!condition_allows(some_allowed, &tags(&["project"])));
}

#[test]
fn several_keys_and_operators_must_all_hold_while_several_values_may_any_match() {
    let condition = r#"{
        "StringEquals": {"s3:prefix": ["home/", "shared/"], "s3:delimiter": "/"},
        "NumericLessThanEquals": {"s3:max-keys": "100"}
    }"#;
    let request = |prefix: &str, delimiter: &str, max: &str| {
        context(&[("s3:prefix", &[prefix]), ("s3:delimiter", &[delimiter]), ("s3:max-keys", &[max])])
    };
    assert!(condition_allows(condition, &request("home/", "/", "100")));
    assert!(condition_allows(condition, &request("shared/", "/", "5")));
    assert!(!condition_allows(condition, &request("other/", "/", "5")));
    assert!(!condition_allows(condition, &request("home/", "|", "5")));
    assert!(!condition_allows(condition, &request("home/", "/", "500")));
}

#[test]
fn principal_keys_come_from_the_requester() {
    let condition = r#"{"StringEquals":{"aws:PrincipalAccount":"bob","aws:username":"robert"}}"#;
    let bucket = Bucket::with_policy(&statement(&format!(
        r#"{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*","Condition":{condition}}}"#
    )));
    assert!(bucket.allows(&key("bob", "robert", "k"), "s3:GetObject", Some("a")));
    assert!(!bucket.allows(&key("bob", "rob", "k"), "s3:GetObject", Some("a")));
    assert!(!bucket.allows(&Requester::Anonymous, "s3:GetObject", Some("a")));
}

#[test]
fn existing_object_tag_conditions_are_reported_and_evaluated() {
    let with_tag = parse(&statement(
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*","Condition":{"StringEquals":{"s3:ExistingObjectTag/share":"yes"}}}"#,
    ));
    assert!(with_tag.mentions_existing_object_tags());
    assert!(!parse(PUBLIC_READ).mentions_existing_object_tags());
    let tagged = |value: &str| context(&[("s3:ExistingObjectTag/share", &[value])]);
    let condition = r#"{"StringEquals":{"s3:ExistingObjectTag/share":"yes"}}"#;
    assert!(condition_allows(condition, &tagged("yes")));
    assert!(!condition_allows(condition, &tagged("no")));
    assert!(!condition_allows(condition, &RequestContext::default()));
}

#[test]
fn policy_variables_are_compared_literally_and_so_match_nothing() {
    let home = context(&[("s3:prefix", &["home/robert/"])]);
    assert!(!condition_allows(r#"{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}"#, &home));
}

// ---- Refused policies -------------------------------------------------------------------------

#[test]
fn malformed_policies_are_refused_with_aws_reasons() {
    let read = r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*""#;
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "Policies must be valid JSON and the first byte must be '{'"),
        ("[1]".into(), "Policies must be valid JSON and the first byte must be '{'"),
        (r#"{"Statement": "#.into(), "Policies must be valid JSON and the first byte must be '{'"),
        (r#"{"Version":"2012-10-17"}"#.into(), "Missing required field Statement"),
        (
            statement(r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#),
            "Missing required field Principal",
        ),
        (
            statement(r#"{"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#),
            "Missing required field Effect",
        ),
        (
            statement(r#"{"Effect":"Allow","Principal":"*","Resource":"arn:aws:s3:::photos/*"}"#),
            "Missing required field Action",
        ),
        (statement(r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}"#), "Missing required field Resource"),
        (
            statement(
                r#"{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Invalid effect: Maybe",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObjekt","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Policy has invalid action",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":"*","Action":"ec2:RunInstances","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Policy has invalid action",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:Frobnicate*","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Policy has invalid action",
        ),
        (
            statement(r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos"}"#),
            "Action does not apply to any resource(s) in statement",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Action does not apply to any resource(s) in statement",
        ),
        (
            statement(r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListAllMyBuckets","Resource":"*"}"#),
            "Action does not apply to any resource(s) in statement",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::videos/*"}"#,
            ),
            "Policy has invalid resource",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos2/*"}"#,
            ),
            "Policy has invalid resource",
        ),
        (
            statement(r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"photos/*"}"#),
            "Policy has invalid resource",
        ),
        (
            statement(&format!(r#"{{{read},"Condition":{{"Foo":{{"s3:prefix":"a"}}}}}}"#)),
            "Invalid Condition type : Foo",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::x:role/y"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Invalid principal in policy",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::*:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Invalid principal in policy",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Invalid principal in policy",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":"bob","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Invalid principal in policy",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":{"AWS":[]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Invalid principal in policy",
        ),
        (statement(&format!(r#"{{{read},"Condtion":{{}}}}"#)), "Unknown field Condtion"),
        (r#"{"Statement":[],"Extra":1}"#.into(), "Unknown field Extra"),
        (format!(r#"{{"Version":"2020-01-01","Statement":{{{read}}}}}"#), "Policy has invalid Version"),
        (
            statement(&format!(r#"{{{read},"Condition":{{"IpAddress":{{"aws:SourceIp":"300.0.0.1/8"}}}}}}"#)),
            "Invalid Condition value for IpAddress on key aws:SourceIp: 300.0.0.1/8",
        ),
        (
            statement(&format!(r#"{{{read},"Condition":{{"NumericLessThan":{{"s3:max-keys":"many"}}}}}}"#)),
            "Invalid Condition value for NumericLessThan on key s3:max-keys: many",
        ),
        (
            statement(&format!(r#"{{{read},"Condition":{{"DateLessThan":{{"aws:CurrentTime":"soon"}}}}}}"#)),
            "Invalid Condition value for DateLessThan on key aws:CurrentTime: soon",
        ),
    ];
    for (json, reason) in cases {
        assert_eq!(refusal(&json), reason, "{json}");
    }
}

#[test]
fn a_policy_over_20_kb_is_refused_but_whitespace_does_not_count() {
    let sids: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"Sid":"S{i:03}","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/p{i}/*"}}"#
            )
        })
        .collect();
    let big = format!(r#"{{"Statement":[{}]}}"#, sids.join(","));
    assert!(big.len() > 20 * 1024);
    assert_eq!(refusal(&big), "Policy exceeds the maximum allowed document size.");

    let padded = format!("{{\"Statement\":{}{PUBLIC_READ_STATEMENT}}}", " ".repeat(30 * 1024));
    assert!(Policy::parse(&padded, BUCKET).is_ok());
}

const PUBLIC_READ_STATEMENT: &str =
    r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#;

#[test]
fn valid_documents_in_every_accepted_shape_parse() {
    for json in [
        PUBLIC_READ.to_string(),
        format!(r#"{{"Version":"2008-10-17","Id":"P1","Statement":{PUBLIC_READ_STATEMENT}}}"#),
        format!("\n  {{\"Statement\":[{PUBLIC_READ_STATEMENT}]}}"),
        statement(
            r#"{"Effect":"Deny","NotPrincipal":{"AWS":["bob","arn:aws:iam::bob:user/robert"]},"NotAction":"s3:Get*","NotResource":"arn:aws:s3:::photos/public/*"}"#,
        ),
        statement(
            r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]}"#,
        ),
        statement(
            r#"{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]}"#,
        ),
    ] {
        parse(&json);
    }
}

#[test]
fn named_principals_lists_every_tenant_user_and_key_once() {
    let policy = parse(&statement(
        r#"{"Effect":"Allow","Principal":{"AWS":["bob","arn:aws:iam::bob:root","arn:aws:iam::carol:user/c1","arn:aws:iam::dan:key/AK1","*"],"CanonicalUser":"erin"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
    ));
    assert_eq!(
        policy.named_principals(),
        vec![
            NamedPrincipal::Tenant(tenant("bob")),
            NamedPrincipal::Tenant(tenant("erin")),
            NamedPrincipal::User { tenant: tenant("carol"), user: UserId::new("c1") },
            NamedPrincipal::Key { tenant: tenant("dan"), access_key: AccessKeyId::new("AK1") },
        ]
    );
}

// ---- Public policies and Block Public Access ---------------------------------------------------

#[test]
fn is_public_follows_the_aws_examples() {
    let public = |body: &str| parse(&statement(body)).is_public();
    // AWS's examples of public policies.
    assert!(public(r#"{"Principal":"*","Resource":"*","Action":"s3:PutObject","Effect":"Allow"}"#));
    assert!(public(
        r#"{"Principal":"*","Resource":"*","Action":"s3:PutObject","Effect":"Allow","Condition":{"StringLike":{"aws:SourceVpc":"vpc-*"}}}"#
    ));
    // ... made non-public by a fixed value.
    assert!(!public(
        r#"{"Principal":"*","Resource":"*","Action":"s3:PutObject","Effect":"Allow","Condition":{"StringEquals":{"aws:SourceVpc":"vpc-91237329"}}}"#
    ));
    assert!(public(PUBLIC_READ_STATEMENT));
    assert!(public(r#"{"Principal":{"AWS":"*"},"Resource":"*","Action":"s3:GetObject","Effect":"Allow"}"#));
    assert!(public(r#"{"NotPrincipal":{"AWS":"bob"},"Resource":"*","Action":"s3:GetObject","Effect":"Allow"}"#));
    // Fixed principals and Deny statements are not public.
    assert!(!public(
        r#"{"Principal":{"AWS":"arn:aws:iam::bob:root"},"Resource":"*","Action":"s3:*","Effect":"Allow"}"#
    ));
    assert!(!public(r#"{"Principal":"*","Resource":"*","Action":"s3:*","Effect":"Deny"}"#));
    // aws:SourceIp pins only to a real network.
    let ip = |cidr: &str, operator: &str| {
        public(&format!(
            r#"{{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{{"{operator}":{{"aws:SourceIp":"{cidr}"}}}}}}"#
        ))
    };
    assert!(!ip("192.0.2.0/24", "IpAddress"));
    assert!(!ip("2001:db8::/32", "IpAddress"));
    assert!(ip("0.0.0.0/0", "IpAddress"));
    assert!(ip("::/0", "IpAddress"));
    // Wide ranges do not pin, alone or together (these two are the whole IPv4 Internet).
    assert!(ip("0.0.0.0/1", "IpAddress"));
    assert!(public(
        r#"{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"IpAddress":{"aws:SourceIp":["0.0.0.0/1","128.0.0.0/1"]}}}"#
    ));
    assert!(!ip("10.0.0.0/8", "IpAddress"));
    assert!(ip("2000::/3", "IpAddress"));
    assert!(ip("192.0.2.0/24", "NotIpAddress"));
    assert!(ip("192.0.2.0/24", "IpAddressIfExists"));
    // Conditions on keys outside the documented list do not pin.
    assert!(public(
        r#"{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"StringEquals":{"s3:prefix":"home/"}}}"#
    ));
    assert!(!public(
        r#"{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"StringEquals":{"aws:SourceAccount":"123456789012"}}}"#
    ));
    assert!(public(
        r#"{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"StringEquals":{"aws:userid":"${aws:username}"}}}"#
    ));
    // A user id is unique only within its tenant here (every tenant has an `admin`): it pins nothing.
    assert!(public(
        r#"{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"StringEquals":{"aws:userid":"admin"}}}"#
    ));
    // One public statement makes the whole policy public.
    let mixed = parse(&format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"bob"}},"Action":"s3:*","Resource":"*"}},{PUBLIC_READ_STATEMENT}]}}"#
    ));
    assert!(mixed.is_public());
}

#[test]
fn restrict_public_buckets_blocks_a_public_policy_for_others_but_not_the_owner() {
    let mut bucket = Bucket::with_policy(&format!(
        r#"{{"Statement":[{{"Sid":"Bob","Effect":"Allow","Principal":{{"AWS":"bob"}},"Action":"s3:*","Resource":"*"}},{PUBLIC_READ_STATEMENT}]}}"#
    ));
    bucket.block.restrict_public_buckets = true;
    let restricted = Decision { allowed: false, reason: "public policy restricted (RestrictPublicBuckets)".into() };
    assert_eq!(bucket.decide(&Requester::Anonymous, "s3:GetObject", Some("a")), restricted);
    assert_eq!(bucket.decide(&key_of("carol"), "s3:GetObject", Some("a")), restricted);
    // Even the statement naming bob is blocked: the policy as a whole is public.
    assert_eq!(bucket.decide(&key_of("bob"), "s3:PutObject", Some("a")), restricted);
    assert_eq!(bucket.decide(&key_of("alice"), "s3:PutObject", Some("a")).reason, "owner");

    // A non-public policy is untouched by RestrictPublicBuckets.
    let mut bucket = Bucket::with_policy(&statement(
        r#"{"Sid":"Bob","Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:*","Resource":"*"}"#,
    ));
    bucket.block = PublicAccessBlock::ALL;
    assert_eq!(bucket.decide(&key_of("bob"), "s3:GetObject", Some("a")).reason, "allowed by statement 'Bob'");
}

#[test]
fn restrict_public_buckets_also_blocks_acl_grants_to_other_tenants() {
    let mut bucket = Bucket::with_policy(PUBLIC_READ);
    bucket.ownership = ObjectOwnership::ObjectWriter;
    bucket.acl = Some(Acl {
        owner: tenant("alice"),
        grants: vec![Grant { grantee: Grantee::Tenant(tenant("bob")), permission: Permission::Read }],
    });
    assert!(bucket.allows(&key_of("bob"), "s3:ListBucket", None));
    bucket.block.restrict_public_buckets = true;
    assert!(!bucket.allows(&key_of("bob"), "s3:ListBucket", None));
}

#[test]
fn ignore_public_acls_ignores_public_read_grants_but_not_tenant_grants() {
    let mut bucket = Bucket::new();
    bucket.ownership = ObjectOwnership::BucketOwnerPreferred;
    let mut acl = CannedAcl::PublicRead.to_acl(&tenant("alice"), &tenant("alice"));
    acl.grants.push(Grant { grantee: Grantee::Tenant(tenant("bob")), permission: Permission::Read });
    bucket.acl = Some(acl);
    assert_eq!(bucket.decide(&Requester::Anonymous, "s3:ListBucket", None).reason, "allowed by bucket ACL");
    bucket.block.ignore_public_acls = true;
    assert_eq!(
        bucket.decide(&Requester::Anonymous, "s3:ListBucket", None),
        Decision { allowed: false, reason: "public ACL ignored (IgnorePublicAcls)".into() }
    );
    assert!(!bucket.allows(&key_of("carol"), "s3:ListBucket", None));
    assert!(bucket.allows(&key_of("bob"), "s3:ListBucket", None));

    let object_acl = CannedAcl::PublicRead.to_acl(&tenant("alice"), &tenant("alice"));
    let get = |bucket: &Bucket| {
        bucket.decide_with(
            &Requester::Anonymous,
            "s3:GetObject",
            Some("a"),
            Some(&object_acl),
            &RequestContext::default(),
        )
    };
    assert!(!get(&bucket).allowed);
    bucket.block = PublicAccessBlock::NONE;
    assert_eq!(get(&bucket).reason, "allowed by object ACL");
}

// ---- ACLs --------------------------------------------------------------------------------------

#[test]
fn acls_are_ignored_when_the_bucket_owner_enforces_ownership() {
    let mut bucket = Bucket::new();
    bucket.acl = Some(CannedAcl::PublicReadWrite.to_acl(&tenant("alice"), &tenant("alice")));
    let object_acl = CannedAcl::PublicRead.to_acl(&tenant("alice"), &tenant("alice"));
    let anonymous_get = |bucket: &Bucket| {
        bucket.decide_with(
            &Requester::Anonymous,
            "s3:GetObject",
            Some("a"),
            Some(&object_acl),
            &RequestContext::default(),
        )
    };
    assert_eq!(bucket.ownership, ObjectOwnership::BucketOwnerEnforced);
    assert!(!anonymous_get(&bucket).allowed);
    assert!(!bucket.allows(&Requester::Anonymous, "s3:PutObject", Some("a")));
    assert!(!bucket.allows(&Requester::Anonymous, "s3:ListBucket", None));
    bucket.ownership = ObjectOwnership::ObjectWriter;
    assert!(anonymous_get(&bucket).allowed);
    assert!(bucket.allows(&Requester::Anonymous, "s3:PutObject", Some("a")));
    assert!(bucket.allows(&Requester::Anonymous, "s3:ListBucket", None));
}

#[test]
fn acl_permissions_map_to_the_actions_in_the_aws_table() {
    let bob = key_of("bob");
    let grant = |permission: Permission| Acl {
        owner: tenant("alice"),
        grants: vec![Grant { grantee: Grantee::Tenant(tenant("bob")), permission }],
    };
    let bucket_actions = [
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:ListBucketMultipartUploads",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:GetBucketAcl",
        "s3:PutBucketAcl",
    ];
    let object_actions = [
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectAcl",
        "s3:GetObjectVersionAcl",
        "s3:PutObjectAcl",
        "s3:PutObjectVersionAcl",
    ];
    let allowed = |acl: &Acl, actions: &[&str], on_object: bool| -> Vec<String> {
        actions.iter().filter(|a| acl.allows(&bob, a, on_object, false)).map(|a| a.to_string()).collect()
    };
    use Permission::*;
    assert_eq!(
        allowed(&grant(Read), &bucket_actions, false),
        ["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"]
    );
    assert_eq!(allowed(&grant(Write), &bucket_actions, false), ["s3:PutObject", "s3:DeleteObject"]);
    assert_eq!(allowed(&grant(ReadAcp), &bucket_actions, false), ["s3:GetBucketAcl"]);
    assert_eq!(allowed(&grant(WriteAcp), &bucket_actions, false), ["s3:PutBucketAcl"]);
    assert_eq!(allowed(&grant(FullControl), &bucket_actions, false), bucket_actions);
    assert_eq!(allowed(&grant(Read), &object_actions, true), ["s3:GetObject", "s3:GetObjectVersion"]);
    assert!(allowed(&grant(Write), &object_actions, true).is_empty());
    assert_eq!(allowed(&grant(ReadAcp), &object_actions, true), ["s3:GetObjectAcl", "s3:GetObjectVersionAcl"]);
    assert_eq!(allowed(&grant(WriteAcp), &object_actions, true), ["s3:PutObjectAcl", "s3:PutObjectVersionAcl"]);
    assert_eq!(allowed(&grant(FullControl), &object_actions, true), object_actions);
    // Nothing outside the table, even with FULL_CONTROL.
    for action in ["s3:GetObjectTagging", "s3:DeleteBucket", "s3:GetBucketPolicy", "s3:PutBucketVersioning"] {
        assert!(!grant(FullControl).allows(&bob, action, false, false), "{action}");
        assert!(!grant(FullControl).allows(&bob, action, true, false), "{action}");
    }
    // The owner has implicit FULL_CONTROL even with no grant listed.
    let bare = Acl { owner: tenant("bob"), grants: vec![] };
    assert!(bare.allows(&bob, "s3:GetObjectAcl", true, false));
    assert!(!bare.allows(&key_of("carol"), "s3:GetObjectAcl", true, false));
}

#[test]
fn group_grantees_match_the_requesters_they_name() {
    let acl = |grantee: Grantee| Acl {
        owner: tenant("alice"),
        grants: vec![Grant { grantee, permission: Permission::Read }],
    };
    let all = acl(Grantee::AllUsers);
    assert!(all.allows(&Requester::Anonymous, "s3:GetObject", true, false));
    assert!(all.allows(&key_of("zed"), "s3:GetObject", true, false));
    assert!(!all.allows(&key_of("zed"), "s3:GetObject", true, true), "ignored as public");
    let authenticated = acl(Grantee::AuthenticatedUsers);
    assert!(!authenticated.allows(&Requester::Anonymous, "s3:GetObject", true, false));
    assert!(authenticated.allows(&key_of("zed"), "s3:GetObject", true, false));
    let log = acl(Grantee::LogDelivery);
    assert!(!log.allows(&key_of("zed"), "s3:GetObject", true, false));
    assert!(all.is_public() && authenticated.is_public() && !log.is_public());
}

#[test]
fn object_writes_need_bucket_write_and_reads_need_the_object_acl() {
    let mut bucket = Bucket::new();
    bucket.ownership = ObjectOwnership::ObjectWriter;
    bucket.acl = Some(Acl {
        owner: tenant("alice"),
        grants: vec![Grant { grantee: Grantee::Tenant(tenant("bob")), permission: Permission::Write }],
    });
    let bob = key_of("bob");
    assert_eq!(bucket.decide(&bob, "s3:PutObject", Some("new.txt")).reason, "allowed by bucket ACL");
    assert!(bucket.allows(&bob, "s3:DeleteObject", Some("old.txt")));
    assert!(!bucket.allows(&bob, "s3:ListBucket", None));
    // An object bob wrote is his under ObjectWriter: its ACL gives him full control over it.
    let his = CannedAcl::Private.to_acl(&tenant("bob"), &tenant("alice"));
    let read = |acl: Option<&Acl>| {
        bucket.decide_with(&bob, "s3:GetObject", Some("new.txt"), acl, &RequestContext::default()).allowed
    };
    assert!(read(Some(&his)));
    assert!(!read(Some(&Acl::private(&tenant("alice")))));
    assert!(!read(None));
}

#[test]
fn canned_acls_build_the_grants_aws_documents() {
    let (alice, bob) = (tenant("alice"), tenant("bob"));
    let grant = |grantee: Grantee, permission: Permission| Grant { grantee, permission };
    let owner_full = grant(Grantee::Tenant(bob.clone()), Permission::FullControl);
    let cases = [
        (CannedAcl::Private, vec![]),
        (CannedAcl::PublicRead, vec![grant(Grantee::AllUsers, Permission::Read)]),
        (
            CannedAcl::PublicReadWrite,
            vec![grant(Grantee::AllUsers, Permission::Read), grant(Grantee::AllUsers, Permission::Write)],
        ),
        (CannedAcl::AuthenticatedRead, vec![grant(Grantee::AuthenticatedUsers, Permission::Read)]),
        (CannedAcl::BucketOwnerRead, vec![grant(Grantee::Tenant(alice.clone()), Permission::Read)]),
        (CannedAcl::BucketOwnerFullControl, vec![grant(Grantee::Tenant(alice.clone()), Permission::FullControl)]),
        (CannedAcl::AwsExecRead, vec![]),
        (
            CannedAcl::LogDeliveryWrite,
            vec![grant(Grantee::LogDelivery, Permission::Write), grant(Grantee::LogDelivery, Permission::ReadAcp)],
        ),
    ];
    for (canned, extra) in cases {
        // bob writes an object into alice's bucket.
        let mut expected = vec![owner_full.clone()];
        expected.extend(extra);
        assert_eq!(canned.to_acl(&bob, &alice), Acl { owner: bob.clone(), grants: expected }, "{}", canned.as_str());
        assert_eq!(CannedAcl::parse(canned.as_str()), Some(canned));
    }
    // On the owner's own bucket or object, bucket-owner-* add nothing.
    assert_eq!(CannedAcl::BucketOwnerFullControl.to_acl(&alice, &alice), Acl::private(&alice));
    assert_eq!(CannedAcl::BucketOwnerRead.to_acl(&alice, &alice), Acl::private(&alice));
    assert!(CannedAcl::PublicRead.to_acl(&alice, &alice).is_public());
    assert!(!CannedAcl::BucketOwnerFullControl.to_acl(&bob, &alice).is_public());
    assert_eq!(CannedAcl::parse("Public-Read"), None);
}

#[test]
fn object_ownership_names_round_trip_and_only_enforced_disables_acls() {
    for ownership in
        [ObjectOwnership::BucketOwnerEnforced, ObjectOwnership::BucketOwnerPreferred, ObjectOwnership::ObjectWriter]
    {
        assert_eq!(ObjectOwnership::parse(ownership.as_str()), Some(ownership));
        assert_eq!(ownership.acls_enabled(), ownership != ObjectOwnership::BucketOwnerEnforced);
    }
    assert_eq!(ObjectOwnership::default(), ObjectOwnership::BucketOwnerEnforced);
    assert_eq!(ObjectOwnership::parse("objectwriter"), None);
}

#[test]
fn public_access_block_settings_unite_field_by_field() {
    let bucket = PublicAccessBlock { ignore_public_acls: true, ..PublicAccessBlock::NONE };
    let tenant_wide = PublicAccessBlock { restrict_public_buckets: true, ..PublicAccessBlock::NONE };
    assert_eq!(
        bucket.union(tenant_wide),
        PublicAccessBlock {
            block_public_acls: false,
            ignore_public_acls: true,
            block_public_policy: false,
            restrict_public_buckets: true
        }
    );
    assert_eq!(PublicAccessBlock::NONE.union(PublicAccessBlock::ALL), PublicAccessBlock::ALL);
    assert_eq!(PublicAccessBlock::NONE.union(PublicAccessBlock::NONE), PublicAccessBlock::NONE);
}
