//! The S3 server harness end to end: a bucket, objects PUT and found, and a lifecycle rule
//! that really deletes the objects under its prefix (one day is 10 s in the `s3tests` build)
//! while the rest stay. Requests are signed by `curl --aws-sigv4`, not by the product's client.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube_ocr_test_servers::S3Server;

/// Upstream's own lifecycle tests allow this much: a shard can trail a PUT by a few passes.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(90);

/// The server, or a panic that prints why (the error says to run `make setup` when the
/// binary is missing).
fn start() -> S3Server {
    S3Server::start().unwrap_or_else(|error| panic!("{error}"))
}

/// A signed PUT of `body` to `path`; returns the HTTP status and the response body.
fn put(server: &S3Server, path: &str, body: &[u8]) -> (u16, String) {
    let mut curl = Command::new("curl");
    curl.args(["--silent", "--show-error", "--max-time", "10", "--request", "PUT", "--data-binary", "@-"])
        .args(["--write-out", "\n%{http_code}"])
        .args(["--aws-sigv4", &format!("aws:amz:{}:s3", server.region())])
        .args(["--user", &format!("{}:{}", server.access_key(), server.secret_key())])
        .args(["--header", &format!("x-amz-content-sha256: {}", sha256_hex(body))])
        // curl would send a form's Content-Type otherwise.
        .args(["--header", "Content-Type: application/octet-stream"]);
    let mut child = curl
        .arg(format!("{}{path}", server.endpoint()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl runs");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "curl PUT {path}: {output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (response, status) = stdout.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), response.to_owned())
}

/// The payload hash SigV4 signs, by `sha256sum` (coreutils), to keep this crate's
/// dependencies to what the harness itself needs.
fn sha256_hex(body: &[u8]) -> String {
    let mut child =
        Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum runs");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap().to_owned()
}

#[test]
fn a_lifecycle_rule_expires_the_objects_under_its_prefix_only() {
    let server = start();
    server.create_bucket("jobs").unwrap();

    for key in ["uploads/a.png", "results/a.json"] {
        let (status, response) = put(&server, &format!("/jobs/{key}"), b"some bytes");
        assert_eq!(status, 200, "PUT {key}: {response}");
        assert!(server.object_exists("jobs", key).unwrap(), "{key} was just uploaded");
    }
    assert!(!server.object_exists("jobs", "uploads/never.png").unwrap());
    let (status, response) = put(&server, "/no-such-bucket/k", b"x");
    assert_eq!(status, 404, "an upload does not create a missing bucket: {response}");

    let rule = "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>\
                <ID>expire-uploads</ID><Filter><Prefix>uploads/</Prefix></Filter><Status>Enabled</Status>\
                <Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>";
    let (status, response) = put(&server, "/jobs?lifecycle=", rule.as_bytes());
    assert_eq!(status, 200, "PUT lifecycle: {response}");

    let worker = server.run_lifecycle().unwrap();
    let started = Instant::now();
    while server.object_exists("jobs", "uploads/a.png").unwrap() {
        assert!(
            started.elapsed() < EXPIRY_DEADLINE,
            "uploads/a.png still exists after {:?}; the lifecycle worker's log:\n{}",
            started.elapsed(),
            std::fs::read_to_string(worker.log()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("uploads/a.png expired {:?} after the worker started", started.elapsed());
    assert!(server.object_exists("jobs", "results/a.json").unwrap(), "an object outside the rule's prefix stays");
}

#[test]
fn a_killed_server_refuses_and_leaves_nothing_in_tmp() {
    let mut server = start();
    server.create_bucket("killed").unwrap();
    let port = server.endpoint().rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let socket = format!("/tmp/seaweedfs-s3-grpc-{}.sock", u32::from(port) + 10_000);
    assert!(std::path::Path::new(&socket).exists(), "weed mini serves gRPC on {socket} too");
    server.kill();
    assert!(server.object_exists("killed", "k").is_err(), "a killed server refuses");
    assert!(!std::path::Path::new(&socket).exists(), "{socket} is removed");
}
