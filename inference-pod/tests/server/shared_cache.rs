//! The shared result cache against a real `redis-server` (Debian's, started per test by
//! kube-ocr-test-servers): one replica answers from another's work, a canary (different
//! bundle) never answers from stable's, entries expire, and a Redis that is killed,
//! stalled, refusing our password or absent never fails a request.

use crate::common;

use std::time::Duration;

use common::{
    golden_document, golden_image, http_get, labelled_metric_sum, metric_value, ocr_client, serving_server, test_config,
};
use kube_ocr_inference::serve::{RunningServer, ServerConfig, SharedCacheSettings};
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, RecognizeResponse, Task};
use kube_ocr_test_servers::{RedisOptions, RedisServer};

const LINE: &str = "lines/line-en-001-clean.png";
const PAGE: &str = "documents/doc-receipt-01-clean.png";
const LOOKUPS: &str = "ocr_shared_cache_lookups_total";
const WRITES: &str = "ocr_shared_cache_writes_total";

fn settings(url: String, prefix: &str) -> SharedCacheSettings {
    SharedCacheSettings {
        url,
        username: None,
        password: None,
        ca_file: None,
        ttl: Duration::from_secs(600),
        timeout: Duration::from_millis(100),
        key_prefix: prefix.to_owned(),
        max_pending_writes: 16,
    }
}

/// A server with the shared cache and no in-process cache, so that every hit it reports
/// came through Redis.
fn config(bundle: &str, shared: SharedCacheSettings) -> ServerConfig {
    ServerConfig { cache_bytes: 0, shared_cache: Some(shared), ..test_config(bundle) }
}

/// The degraded bundle's files under the standard bundle's name, version and variant.
fn same_names_other_weights() -> tempfile::TempDir {
    let (standard, degraded) = (common::bundle_dir("ppocr-v4"), common::bundle_dir("ppocr-v4-degraded"));
    let dir = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(&degraded).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, dir.path().join(file.file_name().unwrap())).unwrap();
    }
    let names = |manifest: &str| -> Vec<String> {
        manifest
            .lines()
            .filter(|l| ["name:", "version:", "variant:"].iter().any(|k| l.starts_with(k)))
            .map(str::to_owned)
            .collect()
    };
    let standard_names = names(&std::fs::read_to_string(standard.join("bundle.yaml")).unwrap());
    let manifest = std::fs::read_to_string(degraded.join("bundle.yaml")).unwrap();
    let renamed: String = manifest
        .lines()
        .map(|line| {
            let key = line.split(':').next().unwrap_or_default();
            standard_names
                .iter()
                .find(|n| line.contains(':') && n.starts_with(&format!("{key}:")))
                .cloned()
                .unwrap_or_else(|| line.to_owned())
        })
        .map(|line| line + "\n")
        .collect();
    std::fs::write(dir.path().join("bundle.yaml"), renamed).unwrap();
    dir
}

async fn recognize(server: &RunningServer, image: Vec<u8>, task: Task, options: RecognizeOptions) -> RecognizeResponse {
    let request =
        RecognizeRequest { request_id: "shared-cache".into(), image, task: task as i32, options: Some(options) };
    ocr_client(server.grpc_addr).await.recognize(request).await.expect("the request succeeds").into_inner()
}

async fn metrics(server: &RunningServer) -> String {
    http_get(server.http_addr, "/metrics").await.1
}

fn lookups(metrics: &str, result: &str) -> f64 {
    series(metrics, LOOKUPS, result)
}

/// Lookups and writes that failed: both count towards resting the cache.
fn failures(metrics: &str) -> f64 {
    series(metrics, LOOKUPS, "error") + series(metrics, WRITES, "error")
}

/// The sum of `name`'s samples labelled `result`.
fn series(metrics: &str, name: &str, result: &str) -> f64 {
    labelled_metric_sum(metrics, name, "result", result)
}

/// Waits until `server` has stored `count` results in Redis (writes finish after the reply).
async fn wait_for_stored(server: &RunningServer, count: f64) {
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(server).await;
        if series(&text, WRITES, "stored") >= count {
            return;
        }
        assert!(std::time::Instant::now() < give_up, "{count} writes never stored:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_replica_answers_from_anothers_work_and_a_canary_never_does() {
    let redis = RedisServer::start().expect("redis-server starts (make setup installs it)");
    let first = serving_server(config("ppocr-v4", settings(redis.url(), "svc-a"))).await;
    let second = serving_server(config("ppocr-v4", settings(redis.url(), "svc-a"))).await;

    let computed = recognize(&first, golden_image(PAGE), Task::Document, RecognizeOptions::default()).await;
    assert!(!computed.cached);
    assert!(!computed.text.is_empty());
    let pdf = golden_document("multipage/pdf-scanned.pdf");
    let pdf_computed = recognize(&first, pdf.clone(), Task::Document, RecognizeOptions::default()).await;
    assert!(pdf_computed.pages.len() > 1 && !pdf_computed.cached);
    wait_for_stored(&first, 1.0 + pdf_computed.pages.len() as f64).await;

    // The other replica has never seen either document.
    let answered = recognize(&second, golden_image(PAGE), Task::Document, RecognizeOptions::default()).await;
    assert!(answered.cached, "the second replica must answer from the first one's result");
    assert_eq!(answered.text, computed.text);
    assert_eq!(answered.lines.len(), computed.lines.len());
    let (original, reported) = (computed.timings.unwrap(), answered.timings.unwrap());
    assert_eq!(
        (reported.queue_us, reported.preprocess_us, reported.inference_us, reported.postprocess_us),
        (original.queue_us, original.preprocess_us, original.inference_us, original.postprocess_us),
        "a cached answer reports the original computation's phases"
    );
    let pdf_answered = recognize(&second, pdf, Task::Document, RecognizeOptions::default()).await;
    assert!(pdf_answered.cached, "every rendered page was in the shared cache");
    assert_eq!(pdf_answered.document_text, pdf_computed.document_text);
    let text = metrics(&second).await;
    assert_eq!(lookups(&text, "hit"), 1.0 + pdf_computed.pages.len() as f64, "{text}");
    assert_eq!(metric_value(&text, "ocr_shared_cache_available"), 1.0, "{text}");

    // An option that changes the output is another entry; bypass_cache does not read it.
    let other_options = RecognizeOptions { skip_orientation: true, ..RecognizeOptions::default() };
    assert!(!recognize(&second, golden_image(PAGE), Task::Document, other_options).await.cached);
    let bypass = RecognizeOptions { bypass_cache: true, ..RecognizeOptions::default() };
    assert!(!recognize(&second, golden_image(PAGE), Task::Document, bypass).await.cached);

    // The entries carry the prefix and the TTL.
    let keys = redis.cli(&["--scan", "--pattern", "svc-a:result:v1:*"]).unwrap();
    assert!(keys.lines().count() >= 2 + pdf_computed.pages.len(), "{keys}");
    let ttl: u64 = redis.cli(&["TTL", keys.lines().next().unwrap()]).unwrap().parse().unwrap();
    assert!((1..=600).contains(&ttl), "TTL {ttl}");
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();

    // A canary re-exported under the same name, version and variant with other weights
    // (the degraded bundle's) shares the Redis and the prefix, and still computes its own
    // answer. Its self-test floor is lowered: a canary's golden analysis, not its start-up
    // gate, is what judges it.
    let canary_bundle = same_names_other_weights();
    let canary_config = ServerConfig {
        bundle_dir: canary_bundle.path().to_owned(),
        self_test_min_accuracy: Some(0.0),
        ..config("ppocr-v4", settings(redis.url(), "svc-a"))
    };
    let canary = serving_server(canary_config).await;
    let canary_answer = recognize(&canary, golden_image(PAGE), Task::Document, RecognizeOptions::default()).await;
    assert!(!canary_answer.cached, "a canary must never answer from stable's results");
    assert_eq!(lookups(&metrics(&canary).await, "hit"), 0.0);
    canary.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_stalled_or_absent_redis_never_fails_a_request() {
    let mut redis = RedisServer::start().expect("redis-server starts (make setup installs it)");
    let server = serving_server(config("ppocr-v4", settings(redis.url(), "outage"))).await;
    let line = || golden_image(LINE);
    let options = RecognizeOptions::default;
    recognize(&server, line(), Task::Line, options()).await;
    wait_for_stored(&server, 1.0).await;
    assert!(recognize(&server, line(), Task::Line, options()).await.cached);

    // Killed: connections reset and the port refuses. Every request still succeeds; after
    // three failures in a row the cache is rested, so later lookups do not even try.
    redis.kill();
    for _ in 0..6 {
        let reply = recognize(&server, line(), Task::Line, options()).await;
        assert!(!reply.cached && !reply.text.is_empty());
    }
    let text = metrics(&server).await;
    assert!(failures(&text) >= 3.0, "{text}");
    assert!(lookups(&text, "skipped") >= 1.0, "the breaker must rest a dead cache:\n{text}");
    assert_eq!(metric_value(&text, "ocr_shared_cache_available"), 0.0, "{text}");

    // Back (empty, as a restarted cache is): after the backoff a probe finds it, and work
    // is shared again.
    redis.restart().unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        recognize(&server, line(), Task::Line, options()).await;
        if metric_value(&metrics(&server).await, "ocr_shared_cache_available") == 1.0
            && !redis.cli(&["--scan", "--pattern", "outage:*"]).unwrap().is_empty()
        {
            break;
        }
        assert!(std::time::Instant::now() < give_up, "the shared cache never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recognize(&server, line(), Task::Line, options()).await.cached);

    // Stalled: the connection stays open and nothing answers. Requests still succeed (each
    // lookup gives up at the timeout), and the cache is rested again.
    let text = metrics(&server).await;
    let (failures_before, skipped_before) = (failures(&text), lookups(&text, "skipped"));
    redis.pause().unwrap();
    let page = golden_image(PAGE);
    for _ in 0..5 {
        let reply = recognize(&server, page.clone(), Task::Document, options()).await;
        assert!(!reply.cached && !reply.text.is_empty());
    }
    let text = metrics(&server).await;
    assert!(failures(&text) >= failures_before + 3.0, "{text}");
    assert!(lookups(&text, "skipped") > skipped_before, "{text}");
    redis.resume().unwrap();
    server.shutdown().await.unwrap();

    // Absent from the start, and a Redis that refuses our password: the pod starts, serves,
    // and counts the errors.
    redis.kill();
    let absent = serving_server(config("ppocr-v4", settings(redis.url(), "absent"))).await;
    assert!(!recognize(&absent, line(), Task::Line, options()).await.text.is_empty());
    let text = metrics(&absent).await;
    assert!(lookups(&text, "error") >= 1.0, "{text}");
    absent.shutdown().await.unwrap();

    let guarded =
        RedisServer::start_with(RedisOptions { password: Some("right".into()), ..Default::default() }).unwrap();
    let wrong =
        SharedCacheSettings { password: Some("wrong".into()), ..settings(guarded.url_without_password(), "auth") };
    let refused = serving_server(config("ppocr-v4", wrong)).await;
    assert!(!recognize(&refused, line(), Task::Line, options()).await.text.is_empty());
    assert!(lookups(&metrics(&refused).await, "error") >= 1.0);
    refused.shutdown().await.unwrap();
    let right =
        SharedCacheSettings { password: Some("right".into()), ..settings(guarded.url_without_password(), "auth") };
    let allowed = serving_server(config("ppocr-v4", right)).await;
    recognize(&allowed, line(), Task::Line, options()).await;
    wait_for_stored(&allowed, 1.0).await;
    assert!(recognize(&allowed, line(), Task::Line, options()).await.cached, "AUTH with the right password works");
    allowed.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_expire_after_their_ttl() {
    let redis = RedisServer::start().expect("redis-server starts (make setup installs it)");
    let short = SharedCacheSettings { ttl: Duration::from_secs(1), ..settings(redis.url(), "ttl") };
    let server = serving_server(config("ppocr-v4", short)).await;
    recognize(&server, golden_image(LINE), Task::Line, RecognizeOptions::default()).await;
    wait_for_stored(&server, 1.0).await;
    assert!(recognize(&server, golden_image(LINE), Task::Line, RecognizeOptions::default()).await.cached);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(redis.cli(&["--scan", "--pattern", "ttl:*"]).unwrap(), "", "Redis expired the entry");
    assert!(!recognize(&server, golden_image(LINE), Task::Line, RecognizeOptions::default()).await.cached);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_is_verified_against_the_given_ca() {
    let redis = RedisServer::start_with(RedisOptions { tls: true, ..Default::default() })
        .expect("redis-server starts with TLS (Debian's is built with it)");
    let ca = redis.ca_file().unwrap().to_owned();
    let trusted = SharedCacheSettings { ca_file: Some(ca), ..settings(redis.url(), "tls") };
    let server = serving_server(config("ppocr-v4", trusted)).await;
    recognize(&server, golden_image(LINE), Task::Line, RecognizeOptions::default()).await;
    wait_for_stored(&server, 1.0).await;
    assert!(recognize(&server, golden_image(LINE), Task::Line, RecognizeOptions::default()).await.cached);
    server.shutdown().await.unwrap();

    // The system's roots do not know this CA: the handshake fails, the request does not.
    let untrusted = serving_server(config("ppocr-v4", settings(redis.url(), "tls-untrusted"))).await;
    assert!(!recognize(&untrusted, golden_image(LINE), Task::Line, RecognizeOptions::default()).await.text.is_empty());
    assert!(lookups(&metrics(&untrusted).await, "error") >= 1.0);
    untrusted.shutdown().await.unwrap();

    // A CA file that is not there is a configuration error, named at start.
    let missing = SharedCacheSettings { ca_file: Some("/nonexistent/ca.crt".into()), ..settings(redis.url(), "x") };
    let error = kube_ocr_inference::serve::start(config("ppocr-v4", missing)).await.expect_err("start fails");
    assert!(error.to_string().contains("/nonexistent/ca.crt"), "{error}");
}
