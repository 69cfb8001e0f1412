//! The `ocr-inference-pod` binary as Kubernetes runs it: it refuses to start on a broken
//! bundle with a message, serves on the ports it is given, and on SIGTERM drains and
//! exits 0.

use crate::common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bundle_dir, http_get, ocr_client};
use kube_ocr_proto::v1::{RecognizeRequest, Task};

const BINARY: &str = env!("CARGO_BIN_EXE_ocr-inference-pod");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_missing_or_broken_bundle_is_refused_with_a_reason() {
    // Ephemeral ports: the bundle is checked after binding, and a default port may be taken.
    let any_ports = ["--grpc-port", "0", "--http-api-port", "0", "--http-port", "0"];
    let output = Command::new(BINARY)
        .args(["--bundle", "/nonexistent/bundle", "--device", "cpu"])
        .args(any_ports)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/bundle/bundle.yaml"), "{stderr}");

    // A bundle whose charset lost a line: the class count no longer matches the model.
    let broken = tempfile::tempdir().unwrap();
    let source = bundle_dir("ppocr-v4");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), broken.path().join(entry.file_name())).unwrap();
    }
    let charset = std::fs::read_to_string(source.join("charset.txt")).unwrap();
    let shorter = charset.split_once('\n').unwrap().1;
    std::fs::remove_file(broken.path().join("charset.txt")).unwrap();
    std::fs::write(broken.path().join("charset.txt"), shorter).unwrap();
    let output = Command::new(BINARY).arg("--bundle").arg(broken.path()).args(any_ports).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("charset"), "{stderr}");

    let output = Command::new(BINARY).args(["--bundle", "s3://bucket/model"]).args(any_ports).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("s3://"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let (grpc_port, http_api_port, http_port) = (free_port(), free_port(), free_port());
    let mut child = tokio::process::Command::new(BINARY)
        .arg("--bundle")
        .arg(format!("file://{}", bundle_dir("ppocr-v4").canonicalize().unwrap().display()))
        .args(["--device", "cpu", "--listen-host", "127.0.0.1", "--drain-delay-secs", "0.5", "--log-format", "json"])
        .args(["--grpc-port", &grpc_port.to_string(), "--http-port", &http_port.to_string()])
        .args(["--http-api-port", &http_api_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(http).await.is_ok() && http_get(http, "/readyz").await.0 == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "not ready after 180 s");
        assert!(child.try_wait().unwrap().is_none(), "exited before becoming ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut client = ocr_client(format!("127.0.0.1:{grpc_port}").parse().unwrap()).await;
    let request = RecognizeRequest {
        request_id: "doc".into(),
        image: common::golden_image("documents/doc-receipt-01-clean.png"),
        task: Task::Document as i32,
        options: None,
    };
    let in_flight = tokio::spawn(async move { client.recognize(request).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let response = in_flight.await.unwrap().expect("the admitted request completes");
    assert!(response.into_inner().text.contains("合计"));
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exits").unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).await.unwrap();
    let access = stderr.lines().find(|l| l.contains("\"target\":\"access\"")).expect("an access log line");
    let record: serde_json::Value = serde_json::from_str(access).unwrap();
    assert_eq!(record["request_id"], "doc");
    assert_eq!(record["code"], "OK");
    assert_eq!(record["image_sha256"].as_str().unwrap().len(), 64);
    assert!(!access.contains("合计"), "the access log never carries recognised text");
}
