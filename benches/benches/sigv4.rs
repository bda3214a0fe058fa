//! AWS Signature V4 per request. A gateway verifies a request by recomputing its signature: the
//! canonical request, the string to sign, the signing key (four HMAC-SHA256) and the signature
//! (one more), plus the SHA-256 of the body when the payload is signed. s3s 0.14.1 keeps its
//! verifier private, so this measures the same computation with aws-sigv4 (what the SDKs sign
//! with). Run: `cargo bench -p ignifuge-benches --bench sigv4`.

use aws_sdk_s3::config::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

fn signature(
    identity: &aws_smithy_runtime_api::client::identity::Identity,
    method: &str,
    url: &str,
    body: SignableBody<'_>,
) -> String {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region("us-east-1")
        .name("s3")
        .time(UNIX_EPOCH + Duration::from_secs(1_795_000_000))
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let headers = [("host", "127.0.0.1:9000"), ("user-agent", "aws-sdk-rust/1.0 os/linux lang/rust/1.95")];
    let request = SignableRequest::new(method, url, headers.into_iter(), body).expect("signable request");
    let (_, signature) = sign(request, &params).expect("signing").into_parts();
    signature
}

fn sigv4(c: &mut Criterion) {
    let identity =
        Credentials::new("IGNEXAMPLEKEY0000000", "a-secret-access-key-of-forty-characters", None, None, "bench").into();
    let mut group = c.benchmark_group("sigv4");
    group.bench_function("get_object_unsigned_payload", |b| {
        b.iter(|| {
            black_box(signature(
                &identity,
                "GET",
                "http://127.0.0.1:9000/photos/2026/11/29/img_0001.jpg",
                SignableBody::UnsignedPayload,
            ))
        })
    });
    group.bench_function("list_objects_v2_query", |b| {
        b.iter(|| {
            black_box(signature(
                &identity,
                "GET",
                "http://127.0.0.1:9000/photos?list-type=2&prefix=2026%2F11%2F&delimiter=%2F&max-keys=1000",
                SignableBody::UnsignedPayload,
            ))
        })
    });
    let body = vec![0x5au8; 4096];
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("put_object_4KiB_signed_payload", |b| {
        b.iter(|| {
            black_box(signature(&identity, "PUT", "http://127.0.0.1:9000/photos/small.bin", SignableBody::Bytes(&body)))
        })
    });
    group.finish();
}

criterion_group!(benches, sigv4);
criterion_main!(benches);
