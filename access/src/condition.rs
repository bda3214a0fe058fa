//! The `Condition` element: operators, their values, and the request facts they are tested against.
//!
//! Semantics follow the IAM user guide, "IAM JSON policy elements: Condition operators" and
//! "Single-valued vs. multivalued context keys":
//! - several operators in one Condition, and several keys under one operator, must all hold (AND);
//! - several values for one key: any may match (OR); for a negated operator (`StringNotEquals`,
//!   `NotIpAddress`, `NumericNotEquals`, ...) the request value must match none of them;
//! - a key absent from the request makes the condition false, except that a negated operator is
//!   then true ("If the policy condition requires that the key is not matched ... and the right key
//!   is not present, the condition is true"), `...IfExists` is then true, and `Null` tests presence;
//! - `ForAnyValue:` holds when at least one request value satisfies the operator (false when the
//!   key is absent); `ForAllValues:` when every request value does (true when the key is absent,
//!   as the guide warns).
//!
//! Policy variables (`${aws:username}`) are not substituted: they are compared literally. A policy
//! using one therefore matches nothing through it, which fails closed for Allow statements.

use std::net::IpAddr;

use crate::date;
use crate::decide::{RequestContext, Requester};
use crate::policy::PolicyError;
use crate::wildcard;

/// One operator applied to one key with its values, e.g. `"StringLike": {"s3:prefix": ["home/*"]}`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Condition {
    pub(crate) operator: Operator,
    /// Lowercase: condition keys compare case-insensitively.
    pub(crate) key: String,
    pub(crate) values: Values,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Operator {
    /// As written in the policy, for logs and the public test.
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) negated: bool,
    pub(crate) if_exists: bool,
    pub(crate) qualifier: Qualifier,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Qualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    String {
        ignore_case: bool,
        like: bool,
    },
    /// `ArnEquals` and `ArnLike` both take wildcards, as in IAM.
    Arn,
    Numeric(Comparison),
    Date(Comparison),
    Bool,
    IpAddress,
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Comparison {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// The policy's values, parsed once when the policy is stored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Values {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    /// Milliseconds since the epoch.
    Dates(Vec<i64>),
    Networks(Vec<Network>),
    /// `Null`: `true` means "the key must be absent".
    Absent(Vec<bool>),
}

/// A CIDR block; a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Network {
    pub(crate) address: IpAddr,
    pub(crate) prefix_len: u8,
}

impl Network {
    fn parse(text: &str) -> Option<Network> {
        let (address, prefix_len) = match text.split_once('/') {
            Some((address, prefix)) => {
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (address.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?))
            }
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = prefix_len.unwrap_or(max);
        (prefix_len <= max).then_some(Network { address, prefix_len })
    }

    fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        match (canonical(self.address), address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len)).unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }

    /// Narrow enough to pin a public grant: at most a /8 of IPv4 or a /32 of IPv6 (wider ranges,
    /// or several of them, can cover much of the Internet: `0.0.0.0/1` + `128.0.0.0/1` is all of it).
    pub(crate) fn is_narrow(&self) -> bool {
        let narrowest_public = if self.address.is_ipv4() { 8 } else { 32 };
        self.prefix_len >= narrowest_public
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is the IPv4 client.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

impl Operator {
    /// Parses an operator name: `[ForAnyValue:|ForAllValues:]<Base>[IfExists]`. Names compare
    /// case-insensitively (a lenient reading; AWS's own validator is not documented on this).
    pub(crate) fn parse(name: &str) -> Result<Operator, PolicyError> {
        let invalid = || PolicyError::Malformed(format!("Invalid Condition type : {name}"));
        let lower = name.to_ascii_lowercase();
        let (qualifier, rest) = if let Some(rest) = lower.strip_prefix("foranyvalue:") {
            (Qualifier::ForAnyValue, rest)
        } else if let Some(rest) = lower.strip_prefix("forallvalues:") {
            (Qualifier::ForAllValues, rest)
        } else {
            (Qualifier::Single, lower.as_str())
        };
        let (if_exists, base) = match rest.strip_suffix("ifexists") {
            Some(base) => (true, base),
            None => (false, rest),
        };
        use Comparison::*;
        let (kind, negated) = match base {
            "stringequals" => (Kind::String { ignore_case: false, like: false }, false),
            "stringnotequals" => (Kind::String { ignore_case: false, like: false }, true),
            "stringequalsignorecase" => (Kind::String { ignore_case: true, like: false }, false),
            "stringnotequalsignorecase" => (Kind::String { ignore_case: true, like: false }, true),
            "stringlike" => (Kind::String { ignore_case: false, like: true }, false),
            "stringnotlike" => (Kind::String { ignore_case: false, like: true }, true),
            "arnequals" | "arnlike" => (Kind::Arn, false),
            "arnnotequals" | "arnnotlike" => (Kind::Arn, true),
            "numericequals" => (Kind::Numeric(Equal), false),
            "numericnotequals" => (Kind::Numeric(Equal), true),
            "numericlessthan" => (Kind::Numeric(Less), false),
            "numericlessthanequals" => (Kind::Numeric(LessOrEqual), false),
            "numericgreaterthan" => (Kind::Numeric(Greater), false),
            "numericgreaterthanequals" => (Kind::Numeric(GreaterOrEqual), false),
            "dateequals" => (Kind::Date(Equal), false),
            "datenotequals" => (Kind::Date(Equal), true),
            "datelessthan" => (Kind::Date(Less), false),
            "datelessthanequals" => (Kind::Date(LessOrEqual), false),
            "dategreaterthan" => (Kind::Date(Greater), false),
            "dategreaterthanequals" => (Kind::Date(GreaterOrEqual), false),
            "bool" => (Kind::Bool, false),
            "ipaddress" => (Kind::IpAddress, false),
            "notipaddress" => (Kind::IpAddress, true),
            "null" => (Kind::Null, false),
            _ => return Err(invalid()),
        };
        // `Null` already tests presence: neither IfExists nor a set qualifier means anything on it.
        if kind == Kind::Null && (if_exists || qualifier != Qualifier::Single) {
            return Err(invalid());
        }
        Ok(Operator { name: name.to_string(), kind, negated, if_exists, qualifier })
    }
}

impl Condition {
    /// Parses one key's values (strings, numbers or booleans, alone or in an array) for `operator`.
    pub(crate) fn parse(operator: &Operator, key: &str, raw: &[String]) -> Result<Condition, PolicyError> {
        let bad = |value: &str| {
            PolicyError::Malformed(format!("Invalid Condition value for {} on key {key}: {value}", operator.name))
        };
        let values = match operator.kind {
            Kind::String { .. } | Kind::Arn | Kind::Bool => Values::Strings(raw.to_vec()),
            Kind::Numeric(_) => {
                Values::Numbers(raw.iter().map(|v| parse_number(v).ok_or_else(|| bad(v))).collect::<Result<_, _>>()?)
            }
            Kind::Date(_) => {
                Values::Dates(raw.iter().map(|v| date::parse_ms(v).ok_or_else(|| bad(v))).collect::<Result<_, _>>()?)
            }
            Kind::IpAddress => Values::Networks(
                raw.iter().map(|v| Network::parse(v.trim()).ok_or_else(|| bad(v))).collect::<Result<_, _>>()?,
            ),
            Kind::Null => Values::Absent(
                raw.iter()
                    .map(|v| match v.to_ascii_lowercase().as_str() {
                        "true" => Ok(true),
                        "false" => Ok(false),
                        _ => Err(bad(v)),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Condition { operator: operator.clone(), key: key.to_ascii_lowercase(), values })
    }

    /// Whether this condition holds for the request.
    pub(crate) fn holds(&self, facts: &Facts) -> bool {
        let request_values = facts.values(&self.key);
        if let Values::Absent(expect_absent) = &self.values {
            let absent = request_values.is_empty();
            return expect_absent.contains(&absent);
        }
        let op = &self.operator;
        if request_values.is_empty() {
            return match op.qualifier {
                Qualifier::ForAllValues => true,
                Qualifier::ForAnyValue => op.if_exists,
                Qualifier::Single => op.if_exists || op.negated,
            };
        }
        // One request value satisfies the operator: it matches one of the policy's values, or, for
        // a negated operator, none of them.
        let satisfies = |value: &String| self.matches_any(value, facts) != op.negated;
        match op.qualifier {
            Qualifier::ForAllValues => request_values.iter().all(satisfies),
            Qualifier::ForAnyValue => request_values.iter().any(satisfies),
            // A single-valued key: "not equal to any" for a negated operator must hold for the
            // whole request, i.e. no request value may match any policy value.
            Qualifier::Single if op.negated => !request_values.iter().any(|v| self.matches_any(v, facts)),
            Qualifier::Single => request_values.iter().any(|v| self.matches_any(v, facts)),
        }
    }

    /// Whether `value` matches at least one of the policy's values, before negation.
    fn matches_any(&self, value: &str, facts: &Facts) -> bool {
        match (&self.operator.kind, &self.values) {
            (Kind::String { ignore_case, like }, Values::Strings(expected)) => {
                expected.iter().any(|e| match (ignore_case, like) {
                    (false, false) => e == value,
                    (true, _) => e.to_lowercase() == value.to_lowercase(),
                    (false, true) => wildcard::matches(e, value),
                })
            }
            (Kind::Arn, Values::Strings(expected)) => expected.iter().any(|e| wildcard::matches(e, value)),
            (Kind::Bool, Values::Strings(expected)) => expected.iter().any(|e| e.eq_ignore_ascii_case(value)),
            (Kind::Numeric(comparison), Values::Numbers(expected)) => match parse_number(value) {
                Some(actual) => expected.iter().any(|e| compare(*comparison, actual, *e)),
                None => false,
            },
            (Kind::Date(comparison), Values::Dates(expected)) => match facts.date_ms(&self.key, value) {
                Some(actual) => expected.iter().any(|e| compare(*comparison, actual, *e)),
                None => false,
            },
            (Kind::IpAddress, Values::Networks(networks)) => match value.parse::<IpAddr>() {
                Ok(address) => networks.iter().any(|n| n.contains(address)),
                Err(_) => false,
            },
            _ => false,
        }
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn compare<T: PartialOrd>(comparison: Comparison, actual: T, expected: T) -> bool {
    match comparison {
        Comparison::Equal => actual == expected,
        Comparison::Less => actual < expected,
        Comparison::LessOrEqual => actual <= expected,
        Comparison::Greater => actual > expected,
        Comparison::GreaterOrEqual => actual >= expected,
    }
}

/// The request as conditions see it: global keys derived from the requester and the connection,
/// then the gateway's other keys (`s3:prefix`, `s3:x-amz-acl`, ...).
pub(crate) struct Facts<'a> {
    pub(crate) requester: &'a Requester,
    pub(crate) context: &'a RequestContext,
}

impl Facts<'_> {
    /// The request's values for a lowercase key; empty when the key is absent.
    pub(crate) fn values(&self, key: &str) -> Vec<String> {
        let context = self.context;
        let derived = match key {
            "aws:sourceip" => context.source_ip.map(|ip| canonical(ip).to_string()),
            "aws:securetransport" => Some(context.secure_transport.to_string()),
            "aws:referer" => context.referer.clone(),
            "aws:useragent" => context.user_agent.clone(),
            "aws:currenttime" => Some(date::format_iso8601(context.current_time_ms)),
            "aws:epochtime" => Some(context.current_time_ms.div_euclid(1000).to_string()),
            "aws:principaltype" => Some(
                match self.requester {
                    Requester::Anonymous => "Anonymous",
                    Requester::Key { .. } => "User",
                }
                .to_string(),
            ),
            _ => match self.requester {
                Requester::Key { tenant, user, .. } => match key {
                    "aws:principalaccount" => Some(tenant.0.clone()),
                    "aws:username" | "aws:userid" => Some(user.0.clone()),
                    "aws:principalarn" => Some(format!("arn:aws:iam::{tenant}:user/{user}")),
                    _ => None,
                },
                Requester::Anonymous => None,
            },
        };
        if let Some(value) = derived {
            return vec![value];
        }
        context
            .values
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(key))
            .flat_map(|(_, values)| values.iter().cloned())
            .collect()
    }

    /// A request date for the Date operators. The request time is taken at full precision rather
    /// than through its second-granular text.
    fn date_ms(&self, key: &str, value: &str) -> Option<i64> {
        match key {
            "aws:currenttime" | "aws:epochtime" => Some(self.context.current_time_ms),
            _ => date::parse_ms(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_in_both_families() {
        let v4 = Network::parse("192.0.2.0/24").expect("valid CIDR");
        assert!(v4.contains("192.0.2.77".parse().expect("ip")));
        assert!(!v4.contains("192.0.3.1".parse().expect("ip")));
        assert!(v4.contains("::ffff:192.0.2.9".parse().expect("ip")));
        let v6 = Network::parse("2001:db8::/32").expect("valid CIDR");
        assert!(v6.contains("2001:db8:1::5".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::1".parse().expect("ip")));
        assert!(Network::parse("0.0.0.0/0").expect("valid").contains("8.8.8.8".parse().expect("ip")));
        assert!(Network::parse("10.0.0.1").expect("bare address").contains("10.0.0.1".parse().expect("ip")));
        assert_eq!(Network::parse("10.0.0.0/33"), None);
        assert_eq!(Network::parse("10.0.0.0/"), None);
        assert_eq!(Network::parse("ten"), None);
    }

    #[test]
    fn operator_names_parse_with_qualifiers_and_if_exists() {
        let op = Operator::parse("ForAllValues:StringNotLikeIfExists").expect("valid");
        assert_eq!(op.qualifier, Qualifier::ForAllValues);
        assert!(op.negated && op.if_exists);
        assert_eq!(op.kind, Kind::String { ignore_case: false, like: true });
        assert!(Operator::parse("NullIfExists").is_err());
        match Operator::parse("Foo") {
            Err(PolicyError::Malformed(message)) => assert_eq!(message, "Invalid Condition type : Foo"),
            other => panic!("expected an error, got {other:?}"),
        }
    }
}
