//! Listing end to end: ListObjectsV2 and ListObjects (v1) with prefix, delimiter,
//! CommonPrefixes, max-keys, continuation-token, start-after, marker/NextMarker, encoding-type=url.

mod common;

use std::collections::BTreeSet;

use aws_sdk_s3::types::EncodingType;
use common::*;

const TREE: [&str; 12] = [
    "a.txt",
    "b/1.txt",
    "b/2.txt",
    "b/c/3.txt",
    "b/c/d/4.txt",
    "d/5.txt",
    "e",
    "photos/2024/feb/y.jpg",
    "photos/2024/jan/x.jpg",
    "photos/2025/z.jpg",
    "photos/index.html",
    "z-last",
];

async fn put_tree(s3: &aws_sdk_s3::Client, bucket: &str) {
    create_bucket(s3, bucket).await;
    for key in TREE {
        put_object(s3, bucket, key, key.as_bytes()).await;
    }
}

struct Listing {
    keys: Vec<String>,
    prefixes: Vec<String>,
}

async fn list_v2(s3: &aws_sdk_s3::Client, bucket: &str, prefix: Option<&str>, delimiter: Option<&str>) -> Listing {
    let output = ok(
        s3.list_objects_v2()
            .bucket(bucket)
            .set_prefix(prefix.map(str::to_owned))
            .set_delimiter(delimiter.map(str::to_owned))
            .send()
            .await,
        &format!("ListObjectsV2 prefix={prefix:?} delimiter={delimiter:?}"),
    );
    assert_eq!(output.is_truncated(), Some(false), "small listing is not truncated");
    let keys: Vec<String> = output.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
    let prefixes: Vec<String> = output.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)).collect();
    assert_eq!(
        output.key_count(),
        Some((keys.len() + prefixes.len()) as i32),
        "KeyCount counts keys and common prefixes (prefix={prefix:?} delimiter={delimiter:?})"
    );
    Listing { keys, prefixes }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_v2_prefix_and_delimiter() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    put_tree(&s3, "tree").await;

    // Everything, in byte order, with sizes and ETags.
    let output = ok(s3.list_objects_v2().bucket("tree").send().await, "ListObjectsV2");
    let keys: Vec<&str> = output.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, TREE.to_vec(), "all keys, sorted");
    assert_eq!(output.name(), Some("tree"));
    for object in output.contents() {
        let key = object.key().expect("key");
        assert_eq!(object.size(), Some(key.len() as i64), "Size of {key}");
        assert_eq!(object.e_tag(), Some(etag_of(key.as_bytes()).as_str()), "ETag of {key}");
        assert!(object.last_modified().is_some(), "LastModified of {key}");
    }

    let listing = list_v2(&s3, "tree", None, Some("/")).await;
    assert_eq!(listing.keys, vec!["a.txt", "e", "z-last"]);
    assert_eq!(listing.prefixes, vec!["b/", "d/", "photos/"]);

    let listing = list_v2(&s3, "tree", Some("b/"), Some("/")).await;
    assert_eq!(listing.keys, vec!["b/1.txt", "b/2.txt"]);
    assert_eq!(listing.prefixes, vec!["b/c/"]);

    let listing = list_v2(&s3, "tree", Some("b/"), None).await;
    assert_eq!(listing.keys, vec!["b/1.txt", "b/2.txt", "b/c/3.txt", "b/c/d/4.txt"]);
    assert!(listing.prefixes.is_empty());

    let listing = list_v2(&s3, "tree", Some("photos/2024/"), Some("/")).await;
    assert!(listing.keys.is_empty());
    assert_eq!(listing.prefixes, vec!["photos/2024/feb/", "photos/2024/jan/"]);

    // A prefix that is not on a delimiter boundary.
    let listing = list_v2(&s3, "tree", Some("photos/20"), Some("/")).await;
    assert!(listing.keys.is_empty());
    assert_eq!(listing.prefixes, vec!["photos/2024/", "photos/2025/"]);

    let listing = list_v2(&s3, "tree", Some("photos/"), Some("/")).await;
    assert_eq!(listing.keys, vec!["photos/index.html"]);
    assert_eq!(listing.prefixes, vec!["photos/2024/", "photos/2025/"]);

    // A delimiter other than '/'.
    let listing = list_v2(&s3, "tree", None, Some(".")).await;
    assert_eq!(listing.keys, vec!["e", "z-last"]);
    assert_eq!(
        listing.prefixes,
        vec![
            "a.",
            "b/1.",
            "b/2.",
            "b/c/3.",
            "b/c/d/4.",
            "d/5.",
            "photos/2024/feb/y.",
            "photos/2024/jan/x.",
            "photos/2025/z.",
            "photos/index."
        ]
    );

    let listing = list_v2(&s3, "tree", Some("nothing-here"), None).await;
    assert!(listing.keys.is_empty() && listing.prefixes.is_empty());

    // Deleted and overwritten objects show up as such, from every gateway.
    ok(s3.delete_object().bucket("tree").key("e").send().await, "DeleteObject");
    put_object(&s3, "tree", "a.txt", b"a longer body than before").await;
    for index in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(index);
        let output = ok(client.list_objects_v2().bucket("tree").delimiter("/").send().await, "ListObjectsV2");
        let keys: Vec<&str> = output.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, vec!["a.txt", "z-last"], "via gateway {index}");
        let a = &output.contents()[0];
        assert_eq!(a.size(), Some(25), "Size after overwrite via gateway {index}");
        assert_eq!(a.e_tag(), Some(etag_of(b"a longer body than before").as_str()));
    }

    assert_s3_error(
        s3.list_objects_v2().bucket("no-such-bucket").send().await,
        404,
        &["NoSuchBucket"],
        "ListObjectsV2 of a missing bucket",
    );
    assert_s3_error(
        s3.list_objects().bucket("no-such-bucket").send().await,
        404,
        &["NoSuchBucket"],
        "ListObjects of a missing bucket",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_v2_pagination() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "pages").await;
    let all: Vec<String> = (0..25).map(|i| format!("key-{i:03}")).collect();
    for key in &all {
        put_object(&s3, "pages", key, b"x").await;
    }

    // max-keys 7: pages of 7, 7, 7, 4 linked by continuation tokens.
    let mut collected = Vec::new();
    let mut sizes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ok(
            s3.list_objects_v2().bucket("pages").max_keys(7).set_continuation_token(token.clone()).send().await,
            "ListObjectsV2 page",
        );
        assert_eq!(page.max_keys(), Some(7));
        assert_eq!(page.key_count(), Some(page.contents().len() as i32));
        assert_eq!(page.continuation_token(), token.as_deref(), "ContinuationToken is echoed");
        sizes.push(page.contents().len());
        collected.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        if page.is_truncated() == Some(true) {
            token = Some(page.next_continuation_token().expect("NextContinuationToken").to_owned());
        } else {
            assert_eq!(page.is_truncated(), Some(false));
            assert!(page.next_continuation_token().is_none(), "last page has no NextContinuationToken");
            break;
        }
        assert!(sizes.len() < 20, "pagination does not end");
    }
    assert_eq!(sizes, vec![7, 7, 7, 4]);
    assert_eq!(collected, all);

    // A page that ends exactly at the last key.
    let page = ok(s3.list_objects_v2().bucket("pages").max_keys(25).send().await, "max-keys 25");
    assert_eq!(page.contents().len(), 25);
    assert_ne!(page.is_truncated(), Some(true), "25 of 25 keys is not truncated");

    // start-after
    let page = ok(s3.list_objects_v2().bucket("pages").start_after("key-019").send().await, "start-after");
    let keys: Vec<&str> = page.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["key-020", "key-021", "key-022", "key-023", "key-024"]);
    assert_eq!(page.start_after(), Some("key-019"));
    // start-after a key that does not exist.
    let page = ok(
        s3.list_objects_v2().bucket("pages").start_after("key-0195").max_keys(2).send().await,
        "start-after a missing key",
    );
    let keys: Vec<&str> = page.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["key-020", "key-021"]);
    assert_eq!(page.is_truncated(), Some(true));

    // Common prefixes count toward max-keys and are never repeated across pages.
    create_bucket(&s3, "prefix-pages").await;
    let mut expected_keys = BTreeSet::new();
    let mut expected_prefixes = BTreeSet::new();
    for p in 0..5 {
        for k in 0..3 {
            put_object(&s3, "prefix-pages", &format!("dir-{p}/file-{k}"), b"x").await;
        }
        expected_prefixes.insert(format!("dir-{p}/"));
    }
    for top in ["dir-0-file", "dir-2.5", "zzz"] {
        put_object(&s3, "prefix-pages", top, b"x").await;
        expected_keys.insert(top.to_owned());
    }
    let mut seen_keys = Vec::new();
    let mut seen_prefixes = Vec::new();
    let mut token: Option<String> = None;
    for round in 0.. {
        assert!(round < 30, "delimiter pagination does not end");
        let page = ok(
            s3.list_objects_v2()
                .bucket("prefix-pages")
                .delimiter("/")
                .max_keys(2)
                .set_continuation_token(token.clone())
                .send()
                .await,
            "ListObjectsV2 delimiter page",
        );
        let entries = page.contents().len() + page.common_prefixes().len();
        assert!(entries <= 2, "a page of max-keys 2 has {entries} entries");
        seen_keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        seen_prefixes.extend(page.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
        if page.is_truncated() == Some(true) {
            assert!(entries > 0, "a truncated page is not empty");
            token = Some(page.next_continuation_token().expect("token").to_owned());
        } else {
            break;
        }
    }
    assert_eq!(seen_keys.iter().cloned().collect::<BTreeSet<_>>(), expected_keys);
    assert_eq!(seen_keys.len(), expected_keys.len(), "no key twice: {seen_keys:?}");
    assert_eq!(seen_prefixes.iter().cloned().collect::<BTreeSet<_>>(), expected_prefixes);
    assert_eq!(seen_prefixes.len(), expected_prefixes.len(), "no prefix twice: {seen_prefixes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_v1_marker_and_next_marker() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    put_tree(&s3, "list-v1").await;

    // Without a delimiter AWS sends no NextMarker: the next marker is the last key.
    let mut collected = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 20, "v1 pagination does not end");
        let page = ok(
            s3.list_objects().bucket("list-v1").max_keys(5).set_marker(marker.clone()).send().await,
            "ListObjects page",
        );
        assert_eq!(page.marker().unwrap_or(""), marker.as_deref().unwrap_or(""), "Marker is echoed");
        let keys: Vec<String> = page.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        assert!(keys.len() <= 5);
        collected.extend(keys.iter().cloned());
        if page.is_truncated() == Some(true) {
            let next = page.next_marker().map(str::to_owned).unwrap_or_else(|| keys.last().expect("keys").clone());
            assert_eq!(&next, keys.last().expect("keys"), "NextMarker, if sent, is the last key");
            marker = Some(next);
        } else {
            break;
        }
    }
    assert_eq!(collected, TREE.to_vec());
    assert_eq!(pages, 3, "12 keys in pages of 5");

    // With a delimiter, a truncated page carries NextMarker (possibly a common prefix).
    let mut seen_keys = Vec::new();
    let mut seen_prefixes = Vec::new();
    let mut marker: Option<String> = None;
    for round in 0.. {
        assert!(round < 20, "v1 delimiter pagination does not end");
        let page = ok(
            s3.list_objects().bucket("list-v1").delimiter("/").max_keys(2).set_marker(marker.clone()).send().await,
            "ListObjects delimiter page",
        );
        assert_eq!(page.delimiter(), Some("/"));
        seen_keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        seen_prefixes.extend(page.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
        if page.is_truncated() == Some(true) {
            marker = Some(page.next_marker().expect("a truncated v1 page with a delimiter has NextMarker").to_owned());
        } else {
            break;
        }
    }
    assert_eq!(seen_keys, vec!["a.txt", "e", "z-last"]);
    assert_eq!(seen_prefixes, vec!["b/", "d/", "photos/"]);

    // Prefix + marker.
    let page = ok(
        s3.list_objects().bucket("list-v1").prefix("b/").marker("b/2.txt").send().await,
        "ListObjects prefix+marker",
    );
    let keys: Vec<&str> = page.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["b/c/3.txt", "b/c/d/4.txt"]);
    assert_eq!(page.prefix(), Some("b/"));
    for object in page.contents() {
        let key = object.key().expect("key");
        assert_eq!(object.size(), Some(key.len() as i64));
        assert_eq!(object.e_tag(), Some(etag_of(key.as_bytes()).as_str()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_with_encoding_type_url() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "encoded").await;
    let keys = [
        "dir one/file two.txt",
        "dir one/sub dir/x",
        "plus+sign",
        "percent%20literal",
        "ünï/cödé",
        "ctrl\u{1}char",
        "amp&lt",
    ];
    for key in keys {
        put_object(&s3, "encoded", key, b"x").await;
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort();

    // V2: keys come back URL-encoded (boto3 decodes them with unquote_plus).
    let output = ok(
        s3.list_objects_v2().bucket("encoded").encoding_type(EncodingType::Url).send().await,
        "ListObjectsV2 encoding-type=url",
    );
    assert_eq!(output.encoding_type(), Some(&EncodingType::Url));
    let raw: Vec<&str> = output.contents().iter().filter_map(|o| o.key()).collect();
    let decoded: Vec<String> = raw.iter().map(|k| url_decode_plus(k)).collect();
    assert_eq!(decoded, sorted, "decoded keys (raw: {raw:?})");
    for key in &raw {
        assert!(
            !key.contains(' ') && !key.contains('\u{1}') && key.is_ascii(),
            "encoded key {key:?} still has a space, a control or a non-ASCII character"
        );
    }

    // Prefix, delimiter and common prefixes are encoded too.
    let output = ok(
        s3.list_objects_v2()
            .bucket("encoded")
            .prefix("dir one/")
            .delimiter("/")
            .encoding_type(EncodingType::Url)
            .send()
            .await,
        "ListObjectsV2 encoded prefix",
    );
    let keys_v2: Vec<String> = output.contents().iter().filter_map(|o| o.key().map(url_decode_plus)).collect();
    assert_eq!(keys_v2, vec!["dir one/file two.txt"]);
    let prefixes: Vec<&str> = output.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes.len(), 1, "{prefixes:?}");
    assert_eq!(url_decode_plus(prefixes[0]), "dir one/sub dir/");
    assert!(!prefixes[0].contains(' '), "encoded CommonPrefix {:?}", prefixes[0]);

    // V1 as well.
    let output = ok(
        s3.list_objects().bucket("encoded").encoding_type(EncodingType::Url).send().await,
        "ListObjects encoding-type=url",
    );
    let decoded: Vec<String> = output.contents().iter().filter_map(|o| o.key().map(url_decode_plus)).collect();
    assert_eq!(decoded, sorted, "v1 decoded keys");

    // Without encoding-type the keys come back as they are (XML-escaped on the wire). A control
    // character cannot travel in XML 1.0, so that key goes first.
    ok(
        s3.delete_object().bucket("encoded").key("ctrl\u{1}char").send().await,
        "DeleteObject of the key with a control character",
    );
    let output = ok(s3.list_objects_v2().bucket("encoded").send().await, "ListObjectsV2 plain");
    let plain: Vec<&str> = output.contents().iter().filter_map(|o| o.key()).collect();
    let without_control: Vec<&str> = sorted.iter().copied().filter(|k| !k.contains('\u{1}')).collect();
    assert_eq!(plain, without_control, "plain keys");
}
