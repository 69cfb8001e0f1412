//! `ocr-golden eval` when no server answers: a clean input error (exit 2), not a report of
//! empty predictions. The collection itself is tested against the real server in
//! inference-pod/tests/server/clients.rs.

use std::process::Command;

fn golden_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let truth = r#"{"id": "l1", "file": "l1.png", "task": "LINE", "text": "hello", "group": "l1", "variant": "clean"}"#;
    std::fs::write(dir.path().join("truth.jsonl"), truth).unwrap();
    std::fs::write(dir.path().join("l1.png"), b"not needed").unwrap();
    dir
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
