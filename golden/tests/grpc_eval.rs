//! `ocr-golden eval` against an in-process fake of the `kube_ocr.v1.Ocr` service: the
//! fake "reads" each image by returning its bytes as text, and fails on images that say
//! so, which checks the request plumbing, error counting and the shared scoring.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use kube_ocr_golden::grpc_eval::{EvalOptions, connect, recognize_set};
use kube_ocr_golden::{GoldenSet, Predictions, evaluate};
use kube_ocr_proto::v1::ocr_server::{Ocr, OcrServer};
use kube_ocr_proto::v1::{
    GetModelInfoRequest, ModelInfo, RecognizeRequest, RecognizeResponse, RecognizeStreamResponse, Task, TextLine,
};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

#[derive(Debug)]
struct FakeOcr;

#[tonic::async_trait]
impl Ocr for FakeOcr {
    async fn recognize(&self, request: Request<RecognizeRequest>) -> Result<Response<RecognizeResponse>, Status> {
        let request = request.into_inner();
        let task = request.task();
        let image = String::from_utf8(request.image).map_err(|_| Status::invalid_argument("not utf-8"))?;
        if image == "FAIL" {
            return Err(Status::unavailable("draining"));
        }
        if task == Task::Line && image.contains('|') {
            return Err(Status::invalid_argument("a line image with several lines"));
        }
        // Documents: "|" separates lines; only `lines` is filled to exercise the fallback.
        let lines: Vec<TextLine> =
            image.split('|').map(|text| TextLine { text: text.to_owned(), ..Default::default() }).collect();
        let text = if task == Task::Document { String::new() } else { image };
        Ok(Response::new(RecognizeResponse { request_id: request.request_id, lines, text, ..Default::default() }))
    }

    type RecognizeStreamStream = tonic::codegen::BoxStream<RecognizeStreamResponse>;

    async fn recognize_stream(
        &self,
        _request: Request<Streaming<RecognizeRequest>>,
    ) -> Result<Response<Self::RecognizeStreamStream>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn get_model_info(&self, _request: Request<GetModelInfoRequest>) -> Result<Response<ModelInfo>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}

/// Serves the fake on an ephemeral port of a runtime of its own, so that the blocking
/// CLI test can use it too.
fn start_server() -> (SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let incoming = runtime.block_on(async { TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap() });
    let address = incoming.local_addr().unwrap();
    runtime.spawn(Server::builder().add_service(OcrServer::new(FakeOcr)).serve_with_incoming(incoming));
    (address, runtime)
}

fn golden_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let truth = [
        r#"{"id": "l1-clean", "file": "l1-clean.png", "task": "LINE", "text": "hello", "group": "l1", "variant": "clean"}"#,
        r#"{"id": "l1-blur", "file": "l1-blur.png", "task": "LINE", "text": "hello", "group": "l1", "variant": "blur"}"#,
        r#"{"id": "l2-clean", "file": "l2-clean.png", "task": "LINE", "text": "world", "group": "l2", "variant": "clean"}"#,
        r#"{"id": "d1-clean", "file": "d1-clean.png", "task": "DOCUMENT", "lines": ["ab", "cd"], "group": "d1", "variant": "clean"}"#,
    ];
    std::fs::write(dir.path().join("truth.jsonl"), truth.join("\n")).unwrap();
    // The fake returns the image bytes as the recognised text.
    for (file, content) in
        [("l1-clean.png", "hello"), ("l1-blur.png", "hallo"), ("l2-clean.png", "FAIL"), ("d1-clean.png", "ab|cd")]
    {
        std::fs::write(dir.path().join(file), content).unwrap();
    }
    dir
}

fn check_predictions(predictions: &Predictions) {
    assert_eq!(predictions.get("l1-clean"), Some("hello"));
    assert_eq!(predictions.get("l1-blur"), Some("hallo"));
    assert_eq!(predictions.get("l2-clean"), Some(""));
    assert_eq!(predictions.get("d1-clean"), Some("ab\ncd"));
}

#[test]
fn library_collects_predictions_and_counts_failures() {
    let (address, runtime) = start_server();
    let dir = golden_dir();
    let set = GoldenSet::load(dir.path()).unwrap();
    let options = EvalOptions { concurrency: 3, timeout: Duration::from_secs(10) };
    let recognized = runtime.block_on(async {
        let client = connect(&format!("http://{address}"), options.timeout).await.unwrap();
        recognize_set(client, &set, &options, || {}).await.unwrap()
    });
    check_predictions(&recognized.predictions);
    assert_eq!(recognized.failures.len(), 1);
    assert_eq!((recognized.failures[0].id.as_str(), recognized.failures[0].code.as_str()), ("l2-clean", "UNAVAILABLE"));

    let mut report = evaluate(&set, &recognized.predictions);
    report.request_errors = recognized.error_counts();
    // 5 + 5 + 5 + 5 truth graphemes, 1 + 5 edits.
    assert!((report.overall.cer - 6.0 / 20.0).abs() < 1e-12);
    assert!(report.missing.is_empty());
    assert_eq!(report.request_error_count(), 1);
}

#[test]
fn cli_eval_reports_like_score() {
    let (address, _runtime) = start_server();
    let dir = golden_dir();
    let saved = dir.path().join("saved.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_ocr-golden"))
        .args(["eval", "--endpoint", &format!("http://{address}"), "--json", "--concurrency", "2"])
        .args(["--min-accuracy", "0.8", "--set", dir.path().to_str().unwrap()])
        .arg("--save-predictions")
        .arg(&saved)
        .output()
        .unwrap();
    // Accuracy 0.7 < 0.8: the gate fails, the report is still printed.
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!((json["overall"]["accuracy"].as_f64().unwrap() - 0.7).abs() < 1e-12);
    assert_eq!(json["request_errors"], serde_json::json!({"UNAVAILABLE": 1}));
    check_predictions(&Predictions::load(&saved).unwrap());
}

#[test]
fn cli_eval_without_a_server_exits_2() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = golden_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_ocr-golden"))
        .args(["eval", "--endpoint", &format!("http://127.0.0.1:{port}"), "--timeout-ms", "2000"])
        .args(["--set", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to"), "{stderr}");
}
