//! S3 conformance cases kept as data (`tests/conformance/cases.json`: requests, and the status,
//! error code, message, headers and body AWS answers, each case citing the AWS documentation page
//! it follows), run against a dev cluster twice: signed by aws-sdk-s3's SigV4 signer
//! (`aws-sigv4`, this file) and by boto3's (`tests/clients/conformance.py`). A behaviour changed
//! by mistake fails both; a new rule is one more case in the file.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn cases_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/cases.json")
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(cases_path()).expect("read tests/conformance/cases.json");
    let document: Value = serde_json::from_str(&text).expect("cases.json is JSON");
    document["cases"].as_array().expect("a list of cases").clone()
}

/// `template` with every `{name}` of `values` replaced.
fn fill(template: &str, values: &BTreeMap<String, String>) -> String {
    values.iter().fold(template.to_string(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
}

/// What one step saw that does not match what its case expects (empty: it matches).
fn mismatches(expect: &Value, answer: &RawResponse, values: &BTreeMap<String, String>) -> Vec<String> {
    let mut wrong = Vec::new();
    let text = answer.body_text();
    if let Some(status) = expect["status"].as_u64()
        && u64::from(answer.status) != status
    {
        wrong.push(format!("status {} (expected {status})", answer.status));
    }
    if let Some(code) = expect["code"].as_str()
        && answer.error_code().as_deref() != Some(code)
    {
        wrong.push(format!("code {:?} (expected {code})", answer.error_code()));
    }
    if let Some(message) = expect["message"].as_str() {
        let got = xml_value(&text, "Message").unwrap_or_default();
        if !got.contains(message) {
            wrong.push(format!("message {got:?} (expected to contain {message:?})"));
        }
    }
    for (name, value) in expect["headers"].as_object().into_iter().flatten() {
        let want = fill(value.as_str().unwrap_or_default(), values);
        match answer.header(name) {
            Some(_) if want == "*" => {}
            Some(got) if got == want => {}
            got => wrong.push(format!("header {name}: {got:?} (expected {want:?})")),
        }
    }
    for name in expect["absent_headers"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if let Some(got) = answer.header(name) {
            wrong.push(format!("header {name}: {got:?} (expected none)"));
        }
    }
    for piece in expect["body_contains"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let piece = fill(piece, values);
        if !text.contains(&piece) {
            wrong.push(format!("body lacks {piece:?}"));
        }
    }
    for piece in expect["body_lacks"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if text.contains(piece) {
            wrong.push(format!("body has {piece:?}"));
        }
    }
    wrong
}

/// Runs every case through the gateway with raw requests signed as aws-sdk-s3 signs them.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_cases_signed_by_the_rust_sdk_signer() {
    let cluster = Cluster::start().await;
    let cases = cases();
    assert!(cases.len() >= 15, "the cases file holds the conformance cases");
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().expect("a case has a name");
        assert!(case["doc"].as_str().is_some_and(|d| d.contains("docs.aws.amazon.com")), "{name}: cites AWS's docs");
        let mut values = BTreeMap::from([("bucket".to_string(), format!("conformance-rs-{index}"))]);
        for (step_index, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
            let method = step["method"].as_str().expect("method");
            let url = format!("{}{}", cluster.endpoint, fill(step["path"].as_str().expect("path"), &values));
            let body = fill(step["body"].as_str().unwrap_or_default(), &values).into_bytes();
            let headers: Vec<(String, String)> = step["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), fill(v.as_str().unwrap_or_default(), &values)))
                .collect();
            let answer = if step["anonymous"].as_bool() == Some(true) {
                raw_request(authority_of(&url), method, path_and_query_of(&url), &headers, &body)
                    .await
                    .unwrap_or_else(|e| panic!("{method} {url}: {e:#}"))
            } else {
                let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                cluster.signed_request(method, &url, &pairs, &body).await
            };
            let wrong = mismatches(&step["expect"], &answer, &values);
            if !wrong.is_empty() {
                failures.push(format!(
                    "case {index} \"{name}\" step {step_index} ({method} {url}): {}\n  answer: {}",
                    wrong.join("; "),
                    answer.summary()
                ));
                break;
            }
            for (variable, source) in step["expect"]["capture"].as_object().into_iter().flatten() {
                let source = source.as_str().expect("capture source");
                let value = match source.split_once(':') {
                    Some(("header", header)) => answer.header(header).map(str::to_string),
                    Some(("xml", tag)) => xml_value(&answer.body_text(), tag),
                    _ => panic!("{name}: capture source {source:?} is header:Name or xml:Tag"),
                };
                let value = value.unwrap_or_else(|| panic!("{name}: step {step_index} has no {source}"));
                values.insert(variable.clone(), value);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from AWS:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The same cases, signed and sent by boto3 (botocore's SigV4 signer) from Python.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_cases_signed_by_boto3() {
    let cluster = Cluster::start().await;
    let scratch = tempfile::tempdir().expect("scratch dir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/conformance.py");
    let mut command = cli::aws_command(&cluster, "python3", scratch.path());
    command.arg(script).arg(cases_path()).arg(&cluster.endpoint);
    let out = cli::run_ok(&mut command, cli::CLI_TIMEOUT);
    assert!(out.contains("conformance: all"), "{out}");
}
