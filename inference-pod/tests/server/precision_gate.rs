//! The start-up precision gate with the real bundle on CPU: at half precision the pod reads
//! its self-test samples again with an fp32 load of the same bundle, reports both
//! accuracies, and refuses to serve when half precision loses more than allowed.

use crate::common;

use std::time::Duration;

use common::{golden_image, http_get, metric_value, ocr_client, test_config};
use kube_ocr_inference::model::{DeviceRequest, ModelOptions, Precision};
use kube_ocr_inference::serve::{ServerConfig, start};
use kube_ocr_proto::v1::{RecognizeRequest, Task};
use tonic::Code;

fn config_at(precision: Precision) -> ServerConfig {
    ServerConfig {
        device: DeviceRequest::Cpu,
        model_options: ModelOptions { precision, ..ModelOptions::default() },
        ..test_config("ppocr-v4")
    }
}

fn line_request(file: &str) -> RecognizeRequest {
    RecognizeRequest { image: golden_image(file), task: Task::Line as i32, ..Default::default() }
}

fn self_test_accuracy(metrics: &str, precision: &str) -> f64 {
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("ocr_selftest_accuracy{") && l.contains(&format!("precision=\"{precision}\"")))
        .collect();
    assert_eq!(series.len(), 1, "one {precision} self-test series expected:\n{metrics}");
    metric_value(series[0], "ocr_selftest_accuracy{")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bf16_on_cpu_passes_the_gate_and_serves_with_both_accuracies_reported() {
    let server = start(config_at(Precision::Bf16)).await.unwrap();
    server.wait_until_serving(Duration::from_secs(300)).await.expect("bf16 keeps the self-test accuracy");

    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    let bf16 = self_test_accuracy(&metrics, "bf16");
    let fp32 = self_test_accuracy(&metrics, "fp32");
    assert!(fp32 > 0.9 && bf16 > 0.9, "bf16 {bf16}, fp32 {fp32}");
    assert!(fp32 - bf16 <= 0.005 + 1e-9, "the gate let a drop of {} through", fp32 - bf16);
    let (_, health) = http_get(server.http_addr, "/healthz").await;
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["precision"], "bf16", "{health}");

    let mut client = ocr_client(server.grpc_addr).await;
    let response = client.recognize(line_request("lines/line-en-001-clean.png")).await.unwrap().into_inner();
    assert_eq!(response.text, "The quick brown fox jumps over the lazy dog");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_half_precision_cannot_pass_refuses_to_serve_and_names_both_accuracies() {
    // A negative allowance asks bf16 to beat fp32 by a point: the real comparison runs
    // (both loads, both self-tests) and must refuse.
    let config = ServerConfig { max_precision_accuracy_drop: -0.01, ..config_at(Precision::Bf16) };
    let server = start(config).await.unwrap();
    let reason = server.wait_until_serving(Duration::from_secs(300)).await.unwrap_err();

    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    let bf16 = self_test_accuracy(&metrics, "bf16");
    let fp32 = self_test_accuracy(&metrics, "fp32");
    for expected in [
        "self-test accuracy at bf16".to_owned(),
        format!("{bf16:.4}"),
        format!("fp32's {fp32:.4}"),
        "--max-precision-accuracy-drop -0.01".to_owned(),
    ] {
        assert!(reason.contains(&expected), "{expected:?} missing from {reason}");
    }
    let (code, body) = http_get(server.http_addr, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains(&format!("fp32's {fp32:.4}")), "{body}");
    assert_eq!(metric_value(&metrics, "ocr_ready{"), 0.0);
    let mut client = ocr_client(server.grpc_addr).await;
    let status = client.recognize(line_request("lines/line-en-001-clean.png")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    server.shutdown().await.unwrap();
}

/// libtorch 2.11 runs fp16 on this CPU (Xeon with AVX512-FP16/AMX), but there the document
/// sample comes back empty (accuracy 0.35 against fp32's 0.996), so the gate refuses it and
/// says why. Whether fp16 reads well depends on the CPU's kernels, so either outcome is
/// accepted, each with what it must report.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fp16_on_cpu_serves_within_the_allowed_drop_or_is_refused_naming_both_accuracies() {
    let server = start(config_at(Precision::Fp16)).await.expect("fp16 loads on CPU");
    let outcome = server.wait_until_serving(Duration::from_secs(300)).await;
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    let fp16 = self_test_accuracy(&metrics, "fp16");
    let fp32 = self_test_accuracy(&metrics, "fp32");
    match outcome {
        Ok(()) => assert!(fp32 - fp16 <= 0.005 + 1e-9, "served fp16 at {fp16} against fp32's {fp32}"),
        Err(reason) => {
            assert!(fp32 - fp16 > 0.005, "refused within the allowed drop: {reason}");
            for expected in [format!("self-test accuracy at fp16 is {fp16:.4}"), format!("below fp32's {fp32:.4}")] {
                assert!(reason.contains(&expected), "{expected:?} missing from {reason}");
            }
        }
    }
    server.shutdown().await.unwrap();
}
