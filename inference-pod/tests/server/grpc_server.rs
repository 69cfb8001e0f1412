//! The real server in process on 127.0.0.1:0 with the real exported bundle, called by a
//! real tonic client: accuracy, bad input, shedding, deadlines, health, drain, metrics.

use crate::common;

use std::time::Duration;

use common::{golden_image, http_get, metric_value, metrics_once_at_least, ocr_client, test_config};
use kube_ocr_golden::grpc_eval::{EvalOptions, connect, recognize_set};
use kube_ocr_golden::{GoldenSet, evaluate};
use kube_ocr_inference::serve::{RunningServer, start};
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, Task};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Accuracy of the onnxruntime reference (rapidocr) on the golden set, from
/// models/ppocr-v4/verification.json; the server must be within one point of it.
fn reference_accuracy() -> f64 {
    let path = common::bundle_dir("ppocr-v4").join("verification.json");
    let verification: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    verification["referenceAccuracy"]["accuracy"].as_f64().expect("referenceAccuracy.accuracy")
}

async fn serving(config: kube_ocr_inference::serve::ServerConfig) -> RunningServer {
    let server = start(config).await.expect("server starts");
    server.wait_until_serving(Duration::from_secs(180)).await.expect("self-test passes");
    server
}

fn line_request(file: &str) -> RecognizeRequest {
    RecognizeRequest { request_id: file.into(), image: golden_image(file), task: Task::Line as i32, options: None }
}

fn document_request(file: &str) -> RecognizeRequest {
    RecognizeRequest { request_id: file.into(), image: golden_image(file), task: Task::Document as i32, options: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn golden_set_accuracy_through_grpc_matches_the_reference() {
    let server = serving(test_config("ppocr-v4")).await;
    let set = GoldenSet::load(kube_ocr_golden::default_set_dir()).unwrap();
    let options = EvalOptions { concurrency: 8, timeout: Duration::from_secs(120), bypass_cache: true };
    let client = connect(&format!("http://{}", server.grpc_addr), options.timeout).await.unwrap();
    let recognized = recognize_set(client, &set, &options, || {}).await.unwrap();
    assert!(recognized.failures.is_empty(), "{:?}", recognized.failures);
    let report = evaluate(&set, &recognized.predictions);
    let reference = reference_accuracy();
    eprintln!("{}", kube_ocr_golden::render_text(&report, 5));
    eprintln!("server accuracy {:.4}, reference {reference:.4}", report.overall.accuracy);
    assert!(
        report.overall.accuracy >= reference - 0.01,
        "server accuracy {:.4} is more than 1 point below the reference {reference:.4}",
        report.overall.accuracy
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_reason_and_the_server_keeps_serving() {
    let mut config = test_config("ppocr-v4");
    config.max_image_bytes = 2 << 20;
    let server = serving(config).await;
    let mut client = ocr_client(server.grpc_addr).await;

    let png = golden_image("lines/line-en-001-clean.png");
    let bomb = {
        // 12000 x 12000 grey pixels: a small PNG that decodes to 144 MP (limit 50 MP).
        let mut bytes = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new(&mut bytes);
        let rows = vec![255u8; 12_000 * 12_000];
        image::ImageEncoder::write_image(encoder, &rows, 12_000, 12_000, image::ExtendedColorType::L8).unwrap();
        bytes
    };
    let tall = {
        let image = image::GrayImage::from_pixel(1, 100_000, image::Luma([255]));
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    };
    let zero_by_zero = {
        // A PNG signature and an IHDR chunk declaring 0 x 0 pixels.
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 8, 2, 0, 0, 0]);
        bytes.extend_from_slice(&[0x5c, 0x6d, 0x2b, 0x5f]);
        bytes
    };
    let oversized = vec![0u8; (2 << 20) + 1];
    let cases: Vec<(&str, Vec<u8>, Task, &[Code])> = vec![
        ("empty", Vec::new(), Task::Document, &[Code::InvalidArgument]),
        ("truncated PNG", png[..png.len() / 2].to_vec(), Task::Line, &[Code::InvalidArgument]),
        ("not an image", b"%PDF-1.7 this is not an image".to_vec(), Task::Document, &[Code::InvalidArgument]),
        ("0x0", zero_by_zero, Task::Document, &[Code::InvalidArgument]),
        ("1x100000", tall, Task::Document, &[Code::ResourceExhausted]),
        ("decompression bomb", bomb, Task::Document, &[Code::ResourceExhausted]),
        ("oversized message", oversized, Task::Document, &[Code::ResourceExhausted]),
        ("no task", png.clone(), Task::Unspecified, &[Code::InvalidArgument]),
    ];
    for (name, image, task, expected) in cases {
        let request = RecognizeRequest { request_id: name.into(), image, task: task as i32, options: None };
        let status = client.recognize(request).await.expect_err(name);
        assert!(expected.contains(&status.code()), "{name}: {:?} {}", status.code(), status.message());
        assert!(!status.message().is_empty(), "{name}: the status says why");
        // Still serving after each.
        let ok = client.recognize(line_request("lines/line-en-001-clean.png")).await.unwrap().into_inner();
        assert_eq!(ok.text, "The quick brown fox jumps over the lazy dog", "after {name}");
    }
    let bad_option = RecognizeRequest {
        options: Some(RecognizeOptions { min_confidence: 1.5, ..Default::default() }),
        ..line_request("lines/line-en-001-clean.png")
    };
    assert_eq!(client.recognize(bad_option).await.unwrap_err().code(), Code::InvalidArgument);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_sheds_with_resource_exhausted() {
    let mut config = test_config("ppocr-v4");
    config.batching.max_batch_size = 1;
    config.batching.max_queue = 1;
    config.cache_bytes = 0;
    let server = serving(config).await;
    let client = ocr_client(server.grpc_addr).await;
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.recognize(document_request("documents/doc-letter-01-clean.png")).await })
        })
        .collect();
    let mut ok = 0;
    let mut shed = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(status.message().contains("queue is full"), "{}", status.message());
                shed += 1;
            }
            Err(status) => panic!("unexpected {status:?}"),
        }
    }
    assert!(ok >= 1 && shed >= 1, "ok {ok}, shed {shed}");
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert!(
        metric_value(
            &metrics,
            "ocr_requests_total{model=\"ppocr-v4\",version=\"4.0.0\",task=\"document\",protocol=\"grpc\",code=\"RESOURCE_EXHAUSTED\"}"
        ) >= 1.0
    );
    let mut client = client.clone();
    assert!(client.recognize(line_request("lines/line-zh-001-clean.png")).await.is_ok(), "still serving");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_whose_deadline_passes_in_the_queue_is_dropped_before_compute() {
    let mut config = test_config("ppocr-v4");
    config.batching.max_batch_size = 1;
    config.cache_bytes = 0;
    // Deadline-aware admission would refuse it at once (next test); without it, the
    // queue's own expiry is the last line of defence.
    config.deadline_admission = false;
    let server = serving(config).await;
    let client = ocr_client(server.grpc_addr).await;
    // Queue 40 line reads (one per forward pass), then one more with a 200 ms deadline:
    // it reaches the recogniser queue at once (decoding a line takes a millisecond) and
    // waits there behind ~40 forward passes, far longer than its deadline.
    let busy: Vec<_> = (0..40)
        .map(|i| {
            let mut client = client.clone();
            let file = format!("lines/line-zh-00{}-clean.png", i % 5 + 1);
            tokio::spawn(async move { client.recognize(line_request(&file)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut request = tonic::Request::new(line_request("lines/line-en-002-clean.png"));
    request.set_timeout(Duration::from_millis(200));
    let status = client.clone().recognize(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    for call in busy {
        call.await.unwrap().unwrap();
    }
    // The worker reaches the expired item only after the last busy reply: give it time.
    let metrics =
        metrics_once_at_least(server.http_addr, "ocr_queue_expired_total{", 1.0, Duration::from_secs(10)).await;
    assert!(
        metric_value(&metrics, "ocr_queue_expired_total{") >= 1.0,
        "the expired request was not dropped from a queue:\n{metrics}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_would_miss_its_deadline_behind_the_queue_is_refused_at_once() {
    let mut config = test_config("ppocr-v4");
    config.batching.max_batch_size = 1;
    config.cache_bytes = 0;
    // Room for the 40 queued reads however slow this machine is; only the last is tight.
    config.request_timeout = Duration::from_secs(300);
    config.deadline_admission = true;
    let server = serving(config).await;
    let client = ocr_client(server.grpc_addr).await;
    // The same 40 queued line reads as above; the self-test has measured what a line costs.
    let busy: Vec<_> = (0..40)
        .map(|i| {
            let mut client = client.clone();
            let file = format!("lines/line-zh-00{}-clean.png", i % 5 + 1);
            tokio::spawn(async move { client.recognize(line_request(&file)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut request = tonic::Request::new(line_request("lines/line-en-002-clean.png"));
    request.set_timeout(Duration::from_millis(200));
    let status = client.clone().recognize(request).await.unwrap_err();
    // Refused by admission, not by the queue: busy (with when to retry), or, when this
    // machine is so loaded that one line takes longer than 200 ms, hopeless at any load.
    match status.code() {
        Code::ResourceExhausted => {
            assert!(status.message().contains("the server is busy"), "{}", status.message());
            let retry = tonic_types::StatusExt::get_details_retry_info(&status).expect("a RetryInfo detail");
            assert!(retry.retry_delay.is_some_and(|delay| delay > Duration::ZERO), "{retry:?}");
        }
        Code::DeadlineExceeded => assert!(status.message().contains("even on an idle server"), "{status:?}"),
        _ => panic!("expected a refusal at admission, got {status:?}"),
    }
    for call in busy {
        call.await.unwrap().unwrap();
    }
    // The refused request never entered a queue, so nothing expired there.
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(metric_value(&metrics, "ocr_queue_expired_total{"), 0.0, "{metrics}");
    let expected_line = "ocr_expected_latency_seconds{model=\"ppocr-v4\",version=\"4.0.0\",task=\"line\"}";
    assert!(metric_value(&metrics, expected_line) > 0.0, "the estimate is exported:\n{metrics}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_follows_self_test_and_drain_loses_no_admitted_request() {
    let mut config = test_config("ppocr-v4");
    config.drain_delay = Duration::from_millis(500);
    config.cache_bytes = 0;
    let server = start(config).await.unwrap();
    let (status, body) = http_get(server.http_addr, "/healthz").await;
    assert_eq!(status, 200, "alive while starting: {body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["device"], "cpu");
    assert_eq!(health["nvml"]["available"], false, "{body}");
    server.wait_until_serving(Duration::from_secs(180)).await.unwrap();

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let check = |service: &str| HealthCheckRequest { service: service.into() };
    for service in ["", "kube_ocr.v1.Ocr"] {
        let status = health.check(check(service)).await.unwrap().into_inner().status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    assert_eq!(http_get(server.http_addr, "/readyz").await.0, 200);

    // Admit requests, then drain while they are in flight.
    let client = ocr_client(server.grpc_addr).await;
    let in_flight: Vec<_> =
        ["doc-invoice-01-clean", "doc-receipt-01-clean", "doc-letter-01-clean", "doc-form-01-clean"]
            .iter()
            .map(|id| {
                let mut client = client.clone();
                let request = document_request(&format!("documents/{id}.png"));
                tokio::spawn(async move { client.recognize(request).await })
            })
            .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let http_addr = server.http_addr;
    let drain = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = health.check(check("kube_ocr.v1.Ocr")).await.unwrap().into_inner().status();
    assert_eq!(status, ServingStatus::NotServing, "NOT_SERVING while draining");
    let (code, reason) = http_get(http_addr, "/readyz").await;
    assert_eq!(code, 503);
    assert!(reason.contains("draining"), "{reason}");
    for call in in_flight {
        let response = call.await.unwrap().expect("an admitted request completes during the drain");
        assert!(!response.into_inner().lines.is_empty());
    }
    drain.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bundle_below_its_self_test_minimum_never_becomes_ready() {
    let server = start(test_config("ppocr-v4-degraded")).await.unwrap();
    let reason = server.wait_until_serving(Duration::from_secs(180)).await.unwrap_err();
    assert!(reason.contains("below the bundle's minimum"), "{reason}");
    let (code, body) = http_get(server.http_addr, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("self-test accuracy"), "{body}");
    let mut client = ocr_client(server.grpc_addr).await;
    let status = client.recognize(line_request("lines/line-en-001-clean.png")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(metric_value(&metrics, "ocr_ready{"), 0.0);
    let accuracy = metric_value(&metrics, "ocr_selftest_accuracy{");
    assert!(accuracy > 0.0 && accuracy < 0.9, "{accuracy}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_move_the_cache_hits_and_reflection_lists_the_service() {
    let server = serving(test_config("ppocr-v4")).await;
    let mut client = ocr_client(server.grpc_addr).await;
    let (_, before) = http_get(server.http_addr, "/metrics").await;
    let first = client.recognize(document_request("documents/doc-receipt-02-clean.png")).await.unwrap().into_inner();
    let second = client.recognize(document_request("documents/doc-receipt-02-clean.png")).await.unwrap().into_inner();
    assert!(!first.cached && second.cached);
    assert_eq!(first.lines, second.lines);
    assert!(first.text.contains("CITY CAFE"), "{}", first.text);
    let timings = first.timings.unwrap();
    assert!(timings.inference_us > 0 && timings.total_us >= timings.inference_us, "{timings:?}");
    let bypass = RecognizeRequest {
        options: Some(RecognizeOptions { bypass_cache: true, ..Default::default() }),
        ..document_request("documents/doc-receipt-02-clean.png")
    };
    assert!(!client.recognize(bypass).await.unwrap().into_inner().cached);

    let (status, after) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    let ok = "ocr_requests_total{model=\"ppocr-v4\",version=\"4.0.0\",task=\"document\",protocol=\"grpc\",code=\"OK\"}";
    assert_eq!(metric_value(&after, ok) - metric_value(&before, ok), 3.0);
    assert_eq!(metric_value(&after, "ocr_cache_hits_total{"), 1.0);
    for series in [
        "ocr_phase_duration_seconds_count{model=\"ppocr-v4\",version=\"4.0.0\",task=\"document\",phase=\"inference\"}",
        "ocr_batch_size_count{model=\"ppocr-v4\",version=\"4.0.0\",stage=\"recognize\"}",
        "ocr_queue_depth{",
        "ocr_lines_total{",
        "ocr_selftest_accuracy{",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "ocr_gpu_nvml_available 0",
    ] {
        assert!(after.contains(series), "missing {series}");
    }

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let listed = format!("{:?}", responses.message().await.unwrap().unwrap());
    assert!(listed.contains("kube_ocr.v1.Ocr") && listed.contains("grpc.health.v1.Health"), "{listed}");
    server.shutdown().await.unwrap();
}
