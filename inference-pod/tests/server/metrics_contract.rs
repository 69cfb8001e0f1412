//! The names other components read from a pod's `/metrics` (the operator's canary analysis,
//! autoscaling, dashboards) are those of `kube_ocr_proto::contract`, with the model and
//! version labels, after a single request to the real server in process. Its own test
//! binary, so that it does not add a server to `grpc_server.rs`'s concurrent ones.

use crate::common;

use std::time::Duration;

use common::{golden_image, http_get, ocr_client, test_config};
use kube_ocr_inference::serve::start;
use kube_ocr_proto::contract::{labels, metrics as series};
use kube_ocr_proto::v1::{RecognizeRequest, Task};

/// The sample lines of one exposed series (`name{labels} value`).
fn samples<'a>(metrics: &'a str, series: &str) -> Vec<&'a str> {
    metrics.lines().filter(|line| line.strip_prefix(series).is_some_and(|rest| rest.starts_with('{'))).collect()
}

/// What the operator's canary analysis and the autoscaler read from a pod, under the names
/// and labels of `kube_ocr_proto::contract`, after a single request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_request_exposes_every_series_the_operator_reads() {
    let server = start(test_config("ppocr-v4")).await.expect("server starts");
    server.wait_until_serving(Duration::from_secs(180)).await.expect("self-test passes");
    let mut client = ocr_client(server.grpc_addr).await;
    let file = "lines/line-en-001-clean.png";
    let request =
        RecognizeRequest { request_id: file.into(), image: golden_image(file), task: Task::Line as i32, options: None };
    client.recognize(request).await.unwrap();
    let (status, metrics) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    let label = |name: &str, value: &str| format!("{name}=\"{value}\"");
    let model = [label(labels::MODEL, "ppocr-v4"), label(labels::VERSION, "4.0.0")];
    for name in series::READ_BY_OPERATOR.into_iter().chain([series::QUEUE_DEPTH]) {
        let found = samples(&metrics, name);
        assert!(!found.is_empty(), "{name} is not exposed:\n{metrics}");
        for sample in found {
            assert!(model.iter().all(|l| sample.contains(l.as_str())), "{sample} lacks the model labels");
        }
    }
    let ok = label(labels::CODE, "OK");
    let line = label(labels::TASK, "line");
    assert!(
        samples(&metrics, series::REQUESTS_SERIES).iter().any(|s| s.contains(&ok) && s.contains(&line)),
        "no {} sample with {ok} and {line}:\n{metrics}",
        series::REQUESTS_SERIES
    );
    let bucket = format!("{}=\"", labels::LE);
    assert!(samples(&metrics, series::REQUEST_DURATION_BUCKET_SERIES).iter().all(|s| s.contains(&bucket)));
    assert!(samples(&metrics, series::QUEUE_DEPTH).iter().any(|s| s.contains("stage=\"recognize\"")), "{metrics}");
    server.shutdown().await.unwrap();
}
