//! Bucket policies: parsing and validating the JSON document, matching statements to a request,
//! and AWS's test of whether a policy is public.
//!
//! The language is the IAM policy language as S3 bucket policies use it (IAM user guide, "IAM JSON
//! policy element reference"; S3 user guide, "Bucket policies for Amazon S3"). What Ignifuge adds
//! or leaves out:
//! - Principals name tenants (AWS accounts), users and access keys: `"*"`, `{"AWS": "*"}`,
//!   `{"AWS": "<tenant>"}`, `arn:aws:iam::<tenant>:root`, `arn:aws:iam::<tenant>:user/<user>`,
//!   `arn:aws:iam::<tenant>:key/<access key id>`, and `{"CanonicalUser": "<tenant>"}` (a tenant id
//!   is the canonical user id). `Service` and `Federated` principals are refused: there are no
//!   service principals here, and a statement granting to one would silently do nothing.
//! - Resources must name this bucket: `arn:aws:s3:::<bucket>`, `arn:aws:s3:::<bucket>/<key pattern>`
//!   or `*`.
//! - Policy variables (`${aws:username}`) are compared literally, not substituted.

use ignifuge_types::{AccessKeyId, TenantId, UserId};
use serde_json::{Map, Value};

use crate::actions::{self, ResourceKind};
use crate::condition::{Condition, Facts, Kind, Operator, Qualifier, Values};
use crate::decide::Requester;
use crate::wildcard;

/// AWS's bound on a bucket policy: "Bucket policies are limited to 20 KB in size" (S3 user guide,
/// "Adding a bucket policy by using the Amazon S3 console"). Counted without the whitespace
/// between JSON tokens, since AWS measures the policy it stores, not the bytes as sent.
pub const POLICY_SIZE_MAX_BYTES: usize = 20 * 1024;

/// The policy language versions AWS accepts.
const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// Condition keys whose fixed values keep a wildcard-principal Allow from being public (S3 user
/// guide, "Blocking public access to your Amazon S3 storage", "The meaning of 'public'"), lowercase.
/// `aws:userid` is on AWS's list but not here: AWS's user ids are unique across accounts, while an
/// Ignifuge user id is only unique within its tenant (every tenant's first user is `admin`), so
/// pinning it would pin nothing.
const PINNING_KEYS: [&str; 9] = [
    "aws:sourceip",
    "aws:sourcearn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceowner",
    "aws:sourceaccount",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:dataaccesspointarn",
    "s3:dataaccesspointaccount",
];

const NOT_JSON: &str = "Policies must be valid JSON and the first byte must be '{'";
const INVALID_ACTION: &str = "Policy has invalid action";
const INVALID_RESOURCE: &str = "Policy has invalid resource";
const INVALID_PRINCIPAL: &str = "Invalid principal in policy";
const ACTION_WITHOUT_RESOURCE: &str = "Action does not apply to any resource(s) in statement";

/// A bucket policy document that was refused. The text is AWS's reason where AWS documents or is
/// known to return one; the gateway answers 400 MalformedPolicy with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Malformed(String),
}

fn malformed(message: impl Into<String>) -> PolicyError {
    PolicyError::Malformed(message.into())
}

/// A parsed, validated bucket policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
    public: bool,
}

/// A principal a policy names, for the gateway to check that it exists (AWS refuses a policy
/// naming an unknown principal with "Invalid principal in policy").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NamedPrincipal {
    Tenant(TenantId),
    User { tenant: TenantId, user: UserId },
    Key { tenant: TenantId, access_key: AccessKeyId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Statement {
    sid: Option<String>,
    /// 1-based position in the document, to name a statement without a Sid.
    position: usize,
    pub(crate) effect: Effect,
    principals: Principals,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq)]
struct Principals {
    /// NotPrincipal: the statement applies to everyone but these.
    negated: bool,
    entries: Vec<PrincipalEntry>,
}

#[derive(Clone, Debug, PartialEq)]
enum PrincipalEntry {
    Everyone,
    Named(NamedPrincipal),
}

#[derive(Clone, Debug, PartialEq)]
struct Patterns {
    /// NotAction / NotResource.
    negated: bool,
    patterns: Vec<String>,
}

impl Patterns {
    fn matches(&self, value: &str, ignore_case: bool) -> bool {
        let any = self.patterns.iter().any(|pattern| {
            if ignore_case {
                wildcard::matches_ignore_ascii_case(pattern, value)
            } else {
                wildcard::matches(pattern, value)
            }
        });
        any != self.negated
    }
}

impl Policy {
    /// Parses and validates a bucket policy document (JSON text) for bucket `bucket`.
    pub fn parse(text: &str, bucket: &str) -> Result<Policy, PolicyError> {
        // Leading whitespace is tolerated (a lenient reading of AWS's "first byte" rule).
        let text = text.trim_start();
        if !text.starts_with('{') {
            return Err(malformed(NOT_JSON));
        }
        if stored_size_bytes(text) > POLICY_SIZE_MAX_BYTES {
            return Err(malformed("Policy exceeds the maximum allowed document size."));
        }
        let document: Value = serde_json::from_str(text).map_err(|_| malformed(NOT_JSON))?;
        let Value::Object(document) = document else {
            return Err(malformed(NOT_JSON));
        };
        for field in document.keys() {
            if !matches!(field.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed(format!("Unknown field {field}")));
            }
        }
        match document.get("Version") {
            None => {}
            Some(Value::String(version)) if VERSIONS.contains(&version.as_str()) => {}
            Some(_) => return Err(malformed("Policy has invalid Version")),
        }
        if let Some(id) = document.get("Id")
            && !id.is_string()
        {
            return Err(malformed("Policy has invalid Id"));
        }
        let statements = match document.get("Statement") {
            None => return Err(malformed("Missing required field Statement")),
            Some(Value::Object(statement)) => vec![statement],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|item| item.as_object().ok_or_else(|| malformed("Statement must be an object")))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(malformed("Missing required field Statement")),
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(index, statement)| Statement::parse(statement, index + 1, bucket))
            .collect::<Result<Vec<_>, _>>()?;
        let public = statements.iter().any(Statement::is_public);
        Ok(Policy { statements, public })
    }

    /// AWS's "public" test (S3 user guide, "Blocking public access to your Amazon S3 storage", "The
    /// meaning of 'public'"): a policy is public when some Allow statement grants to a wildcard
    /// principal (or through NotPrincipal) without a condition that pins the request to fixed values
    /// of one of the documented keys (`aws:SourceIp` whose every range is at most a /8 of IPv4 or a
    /// /32 of IPv6, so that a list of wide ranges cannot cover the Internet, `aws:SourceArn`,
    /// `aws:SourceVpc`, `aws:SourceVpce`, `aws:SourceOwner`,
    /// `aws:SourceAccount`, `s3:x-amz-server-side-encryption-aws-kms-key-id`,
    /// `s3:DataAccessPointArn`, `s3:DataAccessPointAccount`). A fixed value holds no wildcard and no
    /// policy variable.
    pub fn is_public(&self) -> bool {
        self.public
    }

    /// Every tenant, user and key the policy names, so the gateway can refuse names that do not
    /// exist ("Invalid principal in policy"), as AWS does.
    pub fn named_principals(&self) -> Vec<NamedPrincipal> {
        let mut names: Vec<NamedPrincipal> = self
            .statements
            .iter()
            .flat_map(|statement| statement.principals.entries.iter())
            .filter_map(|entry| match entry {
                PrincipalEntry::Named(name) => Some(name.clone()),
                PrincipalEntry::Everyone => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether some condition tests `s3:ExistingObjectTag/<key>`: then a decision on an object
    /// depends on the object's stored tags, and the gateway must read them before authorizing.
    pub fn mentions_existing_object_tags(&self) -> bool {
        self.statements
            .iter()
            .flat_map(|statement| statement.conditions.iter())
            .any(|condition| condition.key.starts_with("s3:existingobjecttag/"))
    }

    /// The first Deny statement and the first Allow statement that apply to the request, if any.
    pub(crate) fn matching(&self, facts: &Facts, action: &str, resource_arn: &str) -> Matching<'_> {
        let mut matching = Matching { deny: None, allow: None };
        for statement in &self.statements {
            let slot = match statement.effect {
                Effect::Deny => &mut matching.deny,
                Effect::Allow => &mut matching.allow,
            };
            if slot.is_none() && statement.applies(facts, action, resource_arn) {
                *slot = Some(statement);
            }
        }
        matching
    }
}

pub(crate) struct Matching<'a> {
    pub(crate) deny: Option<&'a Statement>,
    pub(crate) allow: Option<&'a Statement>,
}

impl Statement {
    fn parse(statement: &Map<String, Value>, position: usize, bucket: &str) -> Result<Statement, PolicyError> {
        for field in statement.keys() {
            if !matches!(
                field.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(malformed(format!("Unknown field {field}")));
            }
        }
        let sid = match statement.get("Sid") {
            None => None,
            Some(Value::String(sid)) => Some(sid.clone()),
            Some(_) => return Err(malformed("Statement has invalid Sid")),
        };
        let effect = match statement.get("Effect") {
            None => return Err(malformed("Missing required field Effect")),
            Some(Value::String(effect)) if effect == "Allow" => Effect::Allow,
            Some(Value::String(effect)) if effect == "Deny" => Effect::Deny,
            Some(other) => return Err(malformed(format!("Invalid effect: {}", display(other)))),
        };
        let (principal, principal_negated) = one_of(statement, "Principal", "NotPrincipal")?;
        let principals = Principals { negated: principal_negated, entries: parse_principals(principal)? };

        let (action, action_negated) = one_of(statement, "Action", "NotAction")?;
        let actions = Patterns { negated: action_negated, patterns: strings(action, INVALID_ACTION)? };
        let mut action_kinds = Vec::with_capacity(actions.patterns.len());
        for pattern in &actions.patterns {
            action_kinds.push(action_resource_kinds(pattern)?);
        }

        let (resource, resource_negated) = one_of(statement, "Resource", "NotResource")?;
        let resources = Patterns { negated: resource_negated, patterns: strings(resource, INVALID_RESOURCE)? };
        let mut resource_kinds = Vec::with_capacity(resources.patterns.len());
        for pattern in &resources.patterns {
            resource_kinds.push(resource_kind(pattern, bucket)?);
        }

        // Each listed action must be able to name one of the listed resources. With NotAction or
        // NotResource the statement is open-ended, and AWS does not check.
        if !actions.negated && !resources.negated {
            for kinds in &action_kinds {
                let applies = kinds.iter().any(|kind| {
                    resource_kinds.iter().any(|resource| match resource {
                        None => *kind != ResourceKind::Other,
                        Some(resource) => resource == kind,
                    })
                });
                if !applies {
                    return Err(malformed(ACTION_WITHOUT_RESOURCE));
                }
            }
        }

        let conditions = match statement.get("Condition") {
            None => Vec::new(),
            Some(value) => parse_conditions(value)?,
        };
        Ok(Statement { sid, position, effect, principals, actions, resources, conditions })
    }

    /// How the decision log names this statement: `'Sid'`, or `#2` when it has none.
    pub(crate) fn label(&self) -> String {
        match &self.sid {
            Some(sid) if !sid.is_empty() => format!("'{sid}'"),
            _ => format!("#{}", self.position),
        }
    }

    fn applies(&self, facts: &Facts, action: &str, resource_arn: &str) -> bool {
        self.principals.matches(facts.requester)
            && self.actions.matches(action, true)
            && self.resources.matches(resource_arn, false)
            && self.conditions.iter().all(|condition| condition.holds(facts))
    }

    fn is_public(&self) -> bool {
        if self.effect != Effect::Allow {
            return false;
        }
        let wide = self.principals.negated || self.principals.entries.contains(&PrincipalEntry::Everyone);
        wide && !self.conditions.iter().any(pins_to_fixed_values)
    }
}

impl Principals {
    fn matches(&self, requester: &Requester) -> bool {
        let any = self.entries.iter().any(|entry| match (entry, requester) {
            (PrincipalEntry::Everyone, _) => true,
            (PrincipalEntry::Named(_), Requester::Anonymous) => false,
            (PrincipalEntry::Named(name), Requester::Key { tenant, user, access_key }) => match name {
                NamedPrincipal::Tenant(t) => t == tenant,
                NamedPrincipal::User { tenant: t, user: u } => t == tenant && u == user,
                NamedPrincipal::Key { tenant: t, access_key: k } => t == tenant && k == access_key,
            },
        });
        any != self.negated
    }
}

/// Whether a condition restricts a wildcard principal to fixed values in AWS's sense. Negated and
/// IfExists operators never do (an absent key satisfies them), nor does ForAllValues (true for an
/// absent key).
fn pins_to_fixed_values(condition: &Condition) -> bool {
    let operator = &condition.operator;
    if operator.negated || operator.if_exists || operator.qualifier == Qualifier::ForAllValues {
        return false;
    }
    if !PINNING_KEYS.contains(&condition.key.as_str()) {
        return false;
    }
    match (&operator.kind, &condition.values) {
        (Kind::IpAddress, Values::Networks(networks)) => {
            condition.key == "aws:sourceip" && networks.iter().all(|network| network.is_narrow())
        }
        (Kind::String { .. } | Kind::Arn, Values::Strings(values)) => {
            !values.is_empty() && values.iter().all(|value| !wildcard::has_wildcard(value) && !value.contains("${"))
        }
        _ => false,
    }
}

/// Exactly one of a field and its negation: the value and whether it was the negation.
fn one_of<'a>(
    statement: &'a Map<String, Value>,
    field: &str,
    negation: &str,
) -> Result<(&'a Value, bool), PolicyError> {
    match (statement.get(field), statement.get(negation)) {
        (Some(value), None) => Ok((value, false)),
        (None, Some(value)) => Ok((value, true)),
        (None, None) => Err(malformed(format!("Missing required field {field}"))),
        (Some(_), Some(_)) => Err(malformed(format!("Statement cannot have both {field} and {negation}"))),
    }
}

/// A string or a non-empty array of strings.
fn strings(value: &Value, error: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().map(|item| item.as_str().map(str::to_string).ok_or_else(|| malformed(error))).collect()
        }
        _ => Err(malformed(error)),
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn parse_principals(value: &Value) -> Result<Vec<PrincipalEntry>, PolicyError> {
    match value {
        Value::String(text) if text == "*" => Ok(vec![PrincipalEntry::Everyone]),
        Value::Object(map) if !map.is_empty() => {
            let mut entries = Vec::new();
            for (kind, names) in map {
                for name in strings(names, INVALID_PRINCIPAL)? {
                    entries.push(match kind.as_str() {
                        "AWS" => parse_aws_principal(&name)?,
                        "CanonicalUser" => PrincipalEntry::Named(NamedPrincipal::Tenant(tenant_id(&name)?)),
                        _ => return Err(malformed(INVALID_PRINCIPAL)),
                    });
                }
            }
            Ok(entries)
        }
        _ => Err(malformed(INVALID_PRINCIPAL)),
    }
}

/// `*`, a bare tenant id, or `arn:aws:iam::<tenant>:root|user/<user>|key/<access key id>`.
fn parse_aws_principal(name: &str) -> Result<PrincipalEntry, PolicyError> {
    if name == "*" {
        return Ok(PrincipalEntry::Everyone);
    }
    let Some(rest) = name.strip_prefix("arn:aws:iam::") else {
        return Ok(PrincipalEntry::Named(NamedPrincipal::Tenant(tenant_id(name)?)));
    };
    let (tenant, resource) = rest.split_once(':').ok_or_else(|| malformed(INVALID_PRINCIPAL))?;
    let tenant = tenant_id(tenant)?;
    let named = if resource == "root" {
        NamedPrincipal::Tenant(tenant)
    } else if let Some(user) = resource.strip_prefix("user/") {
        NamedPrincipal::User { tenant, user: UserId::new(plain_name(user)?) }
    } else if let Some(key) = resource.strip_prefix("key/") {
        NamedPrincipal::Key { tenant, access_key: AccessKeyId::new(plain_name(key)?) }
    } else {
        return Err(malformed(INVALID_PRINCIPAL));
    };
    Ok(PrincipalEntry::Named(named))
}

fn tenant_id(text: &str) -> Result<TenantId, PolicyError> {
    Ok(TenantId::new(plain_name(text)?))
}

/// A principal name: non-empty, no wildcard (AWS allows `*` only as the whole principal), no
/// separator, no whitespace.
fn plain_name(text: &str) -> Result<&str, PolicyError> {
    let valid = !text.is_empty() && !text.chars().any(|c| matches!(c, '*' | '?' | ':' | '/') || c.is_whitespace());
    if valid { Ok(text) } else { Err(malformed(INVALID_PRINCIPAL)) }
}

/// The resource kinds the actions an Action entry names apply to; refuses unknown actions.
fn action_resource_kinds(pattern: &str) -> Result<Vec<ResourceKind>, PolicyError> {
    if pattern == "*" {
        return Ok(vec![ResourceKind::Bucket, ResourceKind::Object]);
    }
    let valid_prefix = pattern.get(..3).is_some_and(|prefix| prefix.eq_ignore_ascii_case("s3:"));
    if !valid_prefix || pattern.len() == 3 {
        return Err(malformed(INVALID_ACTION));
    }
    let kinds = actions::kinds_matching(pattern);
    if kinds.is_empty() { Err(malformed(INVALID_ACTION)) } else { Ok(kinds) }
}

/// `None` for `*` (any resource of this bucket), else whether it names the bucket or objects.
fn resource_kind(pattern: &str, bucket: &str) -> Result<Option<ResourceKind>, PolicyError> {
    if pattern == "*" {
        return Ok(None);
    }
    let rest = pattern.strip_prefix("arn:aws:s3:::").ok_or_else(|| malformed(INVALID_RESOURCE))?;
    match rest.split_once('/') {
        None if rest == bucket => Ok(Some(ResourceKind::Bucket)),
        Some((name, _)) if name == bucket => Ok(Some(ResourceKind::Object)),
        _ => Err(malformed(INVALID_RESOURCE)),
    }
}

fn parse_conditions(value: &Value) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = value else {
        return Err(malformed("Condition must be an object"));
    };
    let mut conditions = Vec::new();
    for (name, keys) in operators {
        let operator = Operator::parse(name)?;
        let Value::Object(keys) = keys else {
            return Err(malformed(format!("Invalid Condition block for {name}")));
        };
        for (key, values) in keys {
            let scalar = |value: &Value| match value {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                Value::Bool(flag) => Some(flag.to_string()),
                _ => None,
            };
            let raw = match values {
                Value::Array(items) if !items.is_empty() => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
                Value::Array(_) => None,
                single => scalar(single).map(|value| vec![value]),
            }
            .ok_or_else(|| malformed(format!("Invalid Condition value for {name} on key {key}")))?;
            conditions.push(Condition::parse(&operator, key, &raw)?);
        }
    }
    Ok(conditions)
}

/// The document's size without the whitespace between JSON tokens.
fn stored_size_bytes(text: &str) -> usize {
    let (mut size, mut in_string, mut escaped) = (0, false, false);
    for byte in text.bytes() {
        if in_string {
            size += 1;
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if !byte.is_ascii_whitespace() {
            size += 1;
            in_string = byte == b'"';
        }
    }
    size
}
