//! The client against a real S3-compatible server: SeaweedFS's `weed mini`, from the
//! binary `make setup` builds (kube_ocr_test_servers::S3Server).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{CountingProxy, client, curl, settings};
use kube_ocr_s3::{CallError, ExpiryRule, S3Client, S3Error, S3Settings, S3Uri};
use kube_ocr_test_servers::S3Server;

#[tokio::test]
async fn objects_round_trip_and_deleted_ones_are_not_found() {
    let server = S3Server::start().unwrap();
    server.create_bucket("documents").unwrap();
    let client = client(&server);
    client.head_bucket("documents").await.unwrap();

    let uri = S3Uri::parse("s3://documents/jobs/42/page-1.png").unwrap();
    let body = Bytes::from_static(b"\x89PNG\r\n\x1a\n not really a png");
    client.put_object(&uri.bucket, &uri.key, body.clone(), "image/png").await.unwrap();
    assert!(server.object_exists("documents", "jobs/42/page-1.png").unwrap());
    assert_eq!(client.get_object(&uri.bucket, &uri.key, 1024).await.unwrap(), body);

    // A second put replaces the object.
    client.put_object(&uri.bucket, &uri.key, Bytes::from_static(b"v2"), "image/png").await.unwrap();
    assert_eq!(client.get_object(&uri.bucket, &uri.key, 1024).await.unwrap(), Bytes::from_static(b"v2"));

    client.delete_object(&uri.bucket, &uri.key).await.unwrap();
    assert!(!server.object_exists("documents", "jobs/42/page-1.png").unwrap());
    let missing = client.get_object(&uri.bucket, &uri.key, 1024).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert_eq!(missing.service_error().map(|error| error.status.as_u16()), Some(404));
    assert!(matches!(missing, S3Error::GetObject { .. }), "{missing:?}");
    // Deleting what is gone succeeds, as in S3.
    client.delete_object(&uri.bucket, &uri.key).await.unwrap();
    // An empty object is an object.
    client.put_object("documents", "empty", Bytes::new(), "application/octet-stream").await.unwrap();
    assert_eq!(client.get_object("documents", "empty", 0).await.unwrap(), Bytes::new());
}

#[tokio::test]
async fn keys_with_spaces_unicode_slashes_and_reserved_characters() {
    let server = S3Server::start().unwrap();
    server.create_bucket("odd-keys").unwrap();
    let client = client(&server);
    let keys = [
        "with space/and  two  spaces.pdf",
        "unicode/日本語/façade-ü.png",
        "deep/a/b/c/d/e/f.txt",
        "reserved/a+b=c&d;e,f:g@h$i!j'k(l)m*n.txt",
        "percent/100%25 and %zz.txt",
        "tilde~under_score-dash.dot",
        "emoji/📄.pdf",
    ];
    for (index, key) in keys.iter().enumerate() {
        let body = Bytes::from(format!("body {index} of {key}"));
        client.put_object("odd-keys", key, body.clone(), "text/plain").await.unwrap_or_else(|error| panic!("{error}"));
        let got = client.get_object("odd-keys", key, 4096).await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(got, body, "{key}");
    }
    // Each key is its own object: no two were folded into one by encoding.
    for (index, key) in keys.iter().enumerate() {
        let got = client.get_object("odd-keys", key, 4096).await.unwrap();
        assert_eq!(got, Bytes::from(format!("body {index} of {key}")), "{key}");
        client.delete_object("odd-keys", key).await.unwrap();
        assert!(client.get_object("odd-keys", key, 4096).await.unwrap_err().is_not_found(), "{key}");
    }
}

#[tokio::test]
async fn max_bytes_refuses_a_larger_object_and_errors_name_the_problem() {
    let server = S3Server::start().unwrap();
    server.create_bucket("limits").unwrap();
    let client = client(&server);
    let body = Bytes::from(vec![7u8; 3 * 1024 * 1024]); // hashed off the async threads
    client.put_object("limits", "big.bin", body.clone(), "application/octet-stream").await.unwrap();
    assert_eq!(client.get_object("limits", "big.bin", body.len()).await.unwrap().len(), body.len());
    let error = client.get_object("limits", "big.bin", body.len() - 1).await.unwrap_err();
    assert!(
        matches!(error.call_error(), Some(CallError::TooLarge { limit, length: Some(length) })
            if *limit == body.len() - 1 && *length == body.len() as u64),
        "{error:?}"
    );
    assert!(!error.is_not_found());

    // A missing bucket is a setup problem, not a missing object.
    let no_bucket = client.get_object("no-such-bucket", "k", 10).await.unwrap_err();
    assert_eq!(no_bucket.code(), Some("NoSuchBucket"), "{no_bucket}");
    assert!(!no_bucket.is_not_found());
    let head = client.head_bucket("no-such-bucket").await.unwrap_err();
    assert_eq!(head.service_error().map(|error| error.status.as_u16()), Some(404), "{head}");
    assert!(head.to_string().starts_with("HeadBucket no-such-bucket failed: HTTP 404"), "{head}");

    // Names S3 would refuse are refused before anything is sent.
    let bad = client.put_object("Bad_Bucket", "k", Bytes::new(), "text/plain").await.unwrap_err();
    assert!(matches!(bad.call_error(), Some(CallError::BucketName { .. })), "{bad:?}");
}

#[tokio::test]
async fn a_wrong_secret_is_a_signature_error() {
    let server = S3Server::start().unwrap();
    server.create_bucket("secured").unwrap();
    let wrong = S3Settings { secret_access_key: "not-the-secret".into(), ..settings(&server) };
    let client = S3Client::new(wrong).unwrap();
    let error = client.put_object("secured", "k", Bytes::from_static(b"x"), "text/plain").await.unwrap_err();
    assert_eq!(error.code(), Some("SignatureDoesNotMatch"), "{error}");
    assert_eq!(error.service_error().map(|error| error.status.as_u16()), Some(403), "{error}");
    assert!(error.to_string().contains("PutObject s3://secured/k failed: HTTP 403 SignatureDoesNotMatch"), "{error}");
    // A HEAD answer has no body; the status still tells.
    let head = client.head_bucket("secured").await.unwrap_err();
    assert_eq!(head.service_error().map(|error| error.status.as_u16()), Some(403), "{head}");
    let unknown = S3Settings { access_key_id: "nobody".into(), ..settings(&server) };
    let error = S3Client::new(unknown).unwrap().get_object("secured", "k", 10).await.unwrap_err();
    assert_eq!(error.service_error().map(|error| error.status.as_u16()), Some(403), "{error}");
    assert!(!server.object_exists("secured", "k").unwrap());
}

/// A rule someone else owns, with fields this client does not model (an `And` filter with
/// a tag, another action).
const FOREIGN_RULE: &str = "<Rule><ID>foreign-logs</ID><Filter><And><Prefix>logs/</Prefix><Tag><Key>team</Key>\
    <Value>ops</Value></Tag></And></Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration>\
    <AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload>\
    </Rule>";

#[tokio::test]
async fn ensure_expiry_rule_keeps_foreign_rules_and_writes_only_a_change() {
    let server = S3Server::start().unwrap();
    server.create_bucket("with-rules").unwrap();
    server.create_bucket("without-rules").unwrap();
    let foreign = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LifecycleConfiguration \
         xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{FOREIGN_RULE}</LifecycleConfiguration>"
    );
    let (status, answer) = curl(&server, "PUT", "/with-rules?lifecycle=", Some(foreign.as_bytes()));
    assert_eq!(status, 200, "{answer}");

    // Through a proxy that counts the configuration's writes.
    let upstream = server.endpoint().trim_start_matches("http://").to_owned();
    let proxy = CountingProxy::start(upstream, "PUT /with-rules?lifecycle ").await;
    let through_proxy =
        S3Settings { endpoint: format!("http://{}", proxy.address).parse().unwrap(), ..settings(&server) };
    let proxied = S3Client::new(through_proxy).unwrap();
    let rule = ExpiryRule { id: "kube-ocr-jobs".into(), prefix: "jobs/".into(), days: 1 };

    proxied.ensure_expiry_rule("with-rules", &rule).await.unwrap();
    assert_eq!(proxy.count(), 1, "the rule was missing: one write");
    let configuration = lifecycle(&server, "with-rules");
    assert!(configuration.contains(FOREIGN_RULE), "the foreign rule is kept as it was: {configuration}");
    assert!(configuration.contains("kube-ocr-jobs") && configuration.contains("jobs/"), "{configuration}");

    proxied.ensure_expiry_rule("with-rules", &rule).await.unwrap();
    assert_eq!(proxy.count(), 1, "the rule was there unchanged: no write; the server holds:\n{configuration}");

    let longer = ExpiryRule { days: 3, ..rule.clone() };
    proxied.ensure_expiry_rule("with-rules", &longer).await.unwrap();
    assert_eq!(proxy.count(), 2, "a changed rule is written");
    let configuration = lifecycle(&server, "with-rules");
    assert!(configuration.contains(FOREIGN_RULE), "{configuration}");
    assert!(configuration.contains("<Days>3</Days>"), "{configuration}");
    assert_eq!(configuration.matches("kube-ocr-jobs").count(), 1, "{configuration}");
    assert!(!configuration.contains("<Days>1</Days>"), "{configuration}");

    // A bucket without a configuration (NoSuchLifecycleConfiguration) gets ours alone.
    let direct = client(&server);
    direct.ensure_expiry_rule("without-rules", &rule).await.unwrap();
    direct.ensure_expiry_rule("without-rules", &rule).await.unwrap();
    let configuration = lifecycle(&server, "without-rules");
    assert!(configuration.contains("kube-ocr-jobs") && !configuration.contains("foreign"), "{configuration}");

    let invalid = ExpiryRule { days: 0, ..rule };
    assert!(matches!(direct.ensure_expiry_rule("without-rules", &invalid).await, Err(S3Error::ExpiryRule { .. })));
}

#[tokio::test]
async fn the_expiry_rule_deletes_objects_under_its_prefix() {
    let server = S3Server::start().unwrap();
    server.create_bucket("expiring").unwrap();
    let client = client(&server);
    let rule = ExpiryRule { id: "kube-ocr-jobs".into(), prefix: "jobs/".into(), days: 1 };
    client.ensure_expiry_rule("expiring", &rule).await.unwrap();
    client.put_object("expiring", "jobs/1/result.json", Bytes::from_static(b"{}"), "application/json").await.unwrap();
    client.put_object("expiring", "kept/1.json", Bytes::from_static(b"{}"), "application/json").await.unwrap();
    // In this SeaweedFS build a lifecycle day is 10 s; the worker passes every 2 s.
    let worker = server.run_lifecycle().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match client.get_object("expiring", "jobs/1/result.json", 1024).await {
            Err(error) if error.is_not_found() => break,
            Err(error) => panic!("{error}"),
            Ok(_) if Instant::now() > deadline => {
                panic!(
                    "not expired after 90 s; worker log: {}",
                    std::fs::read_to_string(worker.log()).unwrap_or_default()
                )
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    assert_eq!(client.get_object("expiring", "kept/1.json", 1024).await.unwrap(), Bytes::from_static(b"{}"));
}

/// The bucket's lifecycle configuration, read with curl. (`lifecycle=`: curl 7.x signs a
/// parameter without `=` in a form servers do not.)
fn lifecycle(server: &S3Server, bucket: &str) -> String {
    let (status, body) = curl(server, "GET", &format!("/{bucket}?lifecycle="), None);
    assert_eq!(status, 200, "{body}");
    body
}
