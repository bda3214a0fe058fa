//! PutBucketWebsite, GetBucketWebsite, DeleteBucketWebsite: the configuration the website
//! endpoint (`crate::website`) serves a bucket by, validated as AWS validates it.

pub mod domains;
pub mod endpoint;

use super::IgnifugeS3;
use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::{BucketSetting, RoutingRedirect, WebsiteConfiguration, WebsiteRedirectAll};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

/// Most routing rules in one website configuration, as on AWS.
pub const ROUTING_RULES_MAX: usize = 50;

fn invalid(message: &str) -> GatewayError {
    GatewayError::InvalidRequest(message.to_string())
}

fn check_protocol(protocol: Option<&str>) -> GatewayResult<()> {
    match protocol {
        None | Some("http" | "https") => Ok(()),
        Some(_) => Err(invalid(
            "Invalid protocol, protocol can be http or https. If not defined the protocol will be selected automatically.",
        )),
    }
}

/// AWS's rules for a website configuration; the first broken one is named.
pub fn validate(config: &WebsiteConfiguration) -> GatewayResult<()> {
    if let Some(all) = &config.redirect_all {
        if config.index_suffix.is_some() || config.error_key.is_some() || !config.routing_rules.is_empty() {
            return Err(invalid("RedirectAllRequestsTo cannot be provided in conjunction with other Routing Rules."));
        }
        if all.host_name.is_empty() {
            return Err(GatewayError::InvalidArgument("RedirectAllRequestsTo HostName must not be empty.".into()));
        }
        return check_protocol(all.protocol.as_deref());
    }
    match config.index_suffix.as_deref() {
        None => {
            return Err(GatewayError::InvalidArgument(
                "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty".into(),
            ));
        }
        Some(suffix) if suffix.is_empty() || suffix.contains('/') => {
            return Err(GatewayError::InvalidArgument("The IndexDocument Suffix is not well formed".into()));
        }
        Some(_) => {}
    }
    if config.error_key.as_deref().is_some_and(str::is_empty) {
        return Err(GatewayError::InvalidArgument("The ErrorDocument Key is not well formed".into()));
    }
    if config.routing_rules.len() > ROUTING_RULES_MAX {
        return Err(invalid("The number of routing rules must not exceed the allowed limit of 50."));
    }
    for rule in &config.routing_rules {
        if let Some(code) = &rule.http_error_code_returned_equals {
            let valid = code.parse::<u16>().is_ok_and(|c| (400..600).contains(&c));
            if !valid {
                return Err(invalid(&format!(
                    "The provided HTTP error code ({code}) is not valid. Valid codes are 4XX or 5XX."
                )));
            }
        }
        let redirect = &rule.redirect;
        if redirect.replace_key_prefix_with.is_some() && redirect.replace_key_with.is_some() {
            return Err(invalid("You can only define ReplaceKeyPrefix or ReplaceKey but not both."));
        }
        check_protocol(redirect.protocol.as_deref())?;
        if let Some(code) = &redirect.http_redirect_code {
            let valid = code.parse::<u16>().is_ok_and(|c| (301..400).contains(&c));
            if !valid {
                return Err(invalid(&format!(
                    "The provided HTTP redirect code ({code}) is not valid. Valid codes are 3XX except 300."
                )));
            }
        }
        let redirects_somewhere = redirect.host_name.is_some()
            || redirect.protocol.is_some()
            || redirect.replace_key_prefix_with.is_some()
            || redirect.replace_key_with.is_some()
            || redirect.http_redirect_code.is_some();
        if !redirects_somewhere {
            return Err(invalid("A routing rule must redirect: give at least one element of Redirect."));
        }
    }
    Ok(())
}

fn from_dto(dto: s3s::dto::WebsiteConfiguration) -> WebsiteConfiguration {
    WebsiteConfiguration {
        index_suffix: dto.index_document.map(|d| d.suffix),
        error_key: dto.error_document.map(|d| d.key),
        redirect_all: dto.redirect_all_requests_to.map(|r| WebsiteRedirectAll {
            host_name: r.host_name,
            protocol: r.protocol.map(|p| p.as_str().to_string()),
        }),
        routing_rules: dto
            .routing_rules
            .unwrap_or_default()
            .into_iter()
            .map(|rule| ignifuge_meta::RoutingRule {
                key_prefix_equals: rule.condition.as_ref().and_then(|c| c.key_prefix_equals.clone()),
                http_error_code_returned_equals: rule
                    .condition
                    .as_ref()
                    .and_then(|c| c.http_error_code_returned_equals.clone()),
                redirect: RoutingRedirect {
                    host_name: rule.redirect.host_name,
                    protocol: rule.redirect.protocol.map(|p| p.as_str().to_string()),
                    replace_key_prefix_with: rule.redirect.replace_key_prefix_with,
                    replace_key_with: rule.redirect.replace_key_with,
                    http_redirect_code: rule.redirect.http_redirect_code,
                },
            })
            .collect(),
    }
}

fn to_dto(config: WebsiteConfiguration) -> GetBucketWebsiteOutput {
    let rules: Vec<RoutingRule> = config
        .routing_rules
        .into_iter()
        .map(|rule| {
            let has_condition = rule.key_prefix_equals.is_some() || rule.http_error_code_returned_equals.is_some();
            RoutingRule {
                condition: has_condition.then(|| Condition {
                    key_prefix_equals: rule.key_prefix_equals,
                    http_error_code_returned_equals: rule.http_error_code_returned_equals,
                }),
                redirect: Redirect {
                    host_name: rule.redirect.host_name,
                    protocol: rule.redirect.protocol.map(Protocol::from),
                    replace_key_prefix_with: rule.redirect.replace_key_prefix_with,
                    replace_key_with: rule.redirect.replace_key_with,
                    http_redirect_code: rule.redirect.http_redirect_code,
                },
            }
        })
        .collect();
    GetBucketWebsiteOutput {
        index_document: config.index_suffix.map(|suffix| IndexDocument { suffix }),
        error_document: config.error_key.map(|key| ErrorDocument { key }),
        redirect_all_requests_to: config
            .redirect_all
            .map(|r| RedirectAllRequestsTo { host_name: r.host_name, protocol: r.protocol.map(Protocol::from) }),
        routing_rules: (!rules.is_empty()).then_some(rules),
    }
}

pub async fn put_bucket_website(
    s3: &IgnifugeS3,
    req: S3Request<PutBucketWebsiteInput>,
) -> S3Result<S3Response<PutBucketWebsiteOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let config = from_dto(req.input.website_configuration);
    validate(&config)?;
    s3.set_bucket_setting(&bucket, BucketSetting::Website(Some(config))).await?;
    Ok(S3Response::new(PutBucketWebsiteOutput {}))
}

pub async fn get_bucket_website(
    _s3: &IgnifugeS3,
    req: S3Request<GetBucketWebsiteInput>,
) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
    match IgnifugeS3::bucket(&req)?.website {
        Some(config) => Ok(S3Response::new(to_dto(config))),
        None => Err(s3s::s3_error!(
            NoSuchWebsiteConfiguration,
            "The specified bucket does not have a website configuration"
        )),
    }
}

pub async fn delete_bucket_website(
    s3: &IgnifugeS3,
    req: S3Request<DeleteBucketWebsiteInput>,
) -> S3Result<S3Response<DeleteBucketWebsiteOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    s3.set_bucket_setting(&bucket, BucketSetting::Website(None)).await?;
    Ok(S3Response::with_status(DeleteBucketWebsiteOutput {}, http::StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_meta::RoutingRule;

    fn site() -> WebsiteConfiguration {
        WebsiteConfiguration { index_suffix: Some("index.html".into()), ..Default::default() }
    }

    fn rule(redirect: RoutingRedirect) -> RoutingRule {
        RoutingRule { key_prefix_equals: Some("docs/".into()), http_error_code_returned_equals: None, redirect }
    }

    fn message(config: &WebsiteConfiguration) -> String {
        validate(config).expect_err("refused").to_string()
    }

    #[test]
    fn a_site_needs_an_index_suffix_without_slashes_unless_everything_redirects() {
        assert!(validate(&site()).is_ok());
        assert!(message(&WebsiteConfiguration::default()).contains("IndexDocument Suffix must be provided"));
        let slashed = WebsiteConfiguration { index_suffix: Some("a/index.html".into()), ..Default::default() };
        assert!(message(&slashed).contains("not well formed"));
        let all = WebsiteRedirectAll { host_name: "example.com".into(), protocol: Some("https".into()) };
        let redirect_all = WebsiteConfiguration { redirect_all: Some(all.clone()), ..Default::default() };
        assert!(validate(&redirect_all).is_ok());
        let mixed = WebsiteConfiguration { redirect_all: Some(all), ..site() };
        assert!(message(&mixed).contains("in conjunction"));
    }

    #[test]
    fn routing_rules_follow_aws_limits() {
        let good = RoutingRedirect { replace_key_prefix_with: Some("documents/".into()), ..Default::default() };
        let many = WebsiteConfiguration { routing_rules: vec![rule(good.clone()); 51], ..site() };
        assert!(message(&many).contains("limit of 50"));
        let fifty = WebsiteConfiguration { routing_rules: vec![rule(good.clone()); 50], ..site() };
        assert!(validate(&fifty).is_ok());
        let both = RoutingRedirect { replace_key_with: Some("x".into()), ..good.clone() };
        assert!(message(&WebsiteConfiguration { routing_rules: vec![rule(both)], ..site() }).contains("not both"));
        let code = RoutingRedirect { http_redirect_code: Some("300".into()), ..good.clone() };
        assert!(message(&WebsiteConfiguration { routing_rules: vec![rule(code)], ..site() }).contains("3XX"));
        let ftp = RoutingRedirect { protocol: Some("ftp".into()), ..good.clone() };
        assert!(message(&WebsiteConfiguration { routing_rules: vec![rule(ftp)], ..site() }).contains("protocol"));
        let mut bad_condition = rule(good);
        bad_condition.http_error_code_returned_equals = Some("200".into());
        assert!(message(&WebsiteConfiguration { routing_rules: vec![bad_condition], ..site() }).contains("4XX"));
        let nowhere = rule(RoutingRedirect::default());
        assert!(message(&WebsiteConfiguration { routing_rules: vec![nowhere], ..site() }).contains("must redirect"));
    }
}
