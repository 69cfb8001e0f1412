//! Failures that need no S3 server: nothing listening, a server that never answers, one
//! that fails for a moment (canned answers), and settings that cannot work.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kube_ocr_s3::{Addressing, CallError, S3Client, S3Error, S3Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn settings(endpoint: &str) -> S3Settings {
    S3Settings {
        endpoint: endpoint.parse().unwrap(),
        region: "us-east-1".into(),
        access_key_id: "key".into(),
        secret_access_key: "secret".into(),
        session_token: None,
        addressing: Addressing::Path,
        ca_file: None,
        timeout: Duration::from_millis(500),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    // Accepts (the kernel does, from the backlog) and never answers.
    let client = S3Client::new(settings(&format!("http://{address}"))).unwrap();
    let started = Instant::now();
    let error = client.get_object("bucket", "key", 10).await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(error.to_string(), "GetObject s3://bucket/key failed: no complete answer within 500ms");
    drop(listener);
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error_with_its_source() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = S3Client::new(settings(&format!("http://127.0.0.1:{port}"))).unwrap();
    let error = client.put_object("bucket", "key", Bytes::from_static(b"x"), "text/plain").await.unwrap_err();
    assert!(matches!(error.call_error(), Some(CallError::Transport(_))), "{error:?}");
    let chain = std::iter::successors(Some(&error as &dyn std::error::Error), |error| error.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" <- ");
    assert!(chain.to_lowercase().contains("connect"), "{chain}");
}

#[test]
fn https_settings_load_the_ca_file() {
    let missing = S3Settings { ca_file: Some(PathBuf::from("/nonexistent/ca.pem")), ..settings("https://s3.example") };
    assert!(matches!(S3Client::new(missing), Err(S3Error::ReadCaFile { .. })));
    let dir = std::env::temp_dir().join(format!("kube-ocr-s3-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let error = S3Client::new(S3Settings { ca_file: Some(not_pem), ..settings("https://s3.example") }).unwrap_err();
    assert!(matches!(error, S3Error::CaFile { .. }), "{error:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn debug_shows_no_secret() {
    let shown = format!("{:?}", S3Settings { session_token: Some("token".into()), ..settings("http://h") });
    assert!(!shown.contains("\"secret\"") && !shown.contains("\"token\""), "{shown}");
    let client = S3Client::new(settings("http://h:1")).unwrap();
    assert!(!format!("{client:?}").contains("secret"));
}

/// An HTTP/1.1 server on 127.0.0.1 that answers each request (read up to its blank line:
/// bodiless requests only) with the next canned answer, and counts the requests.
async fn canned_server(answers: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let requests = Arc::new(Mutex::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            let answers = answers.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buffer = [0; 4096];
                while let Ok(read) = connection.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    received.extend_from_slice(&buffer[..read]);
                    while let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
                        received.drain(..end + 4);
                        *counted.lock().unwrap() += 1;
                        let (status, body) = answers.lock().unwrap().pop_front().unwrap_or((500, "no more answers"));
                        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                        if connection.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (endpoint, requests)
}

#[tokio::test]
async fn passing_server_trouble_is_tried_again_within_the_deadline() {
    let slow_down = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    let (endpoint, requests) = canned_server(vec![(503, slow_down), (500, ""), (200, "the object")]).await;
    let client = S3Client::new(S3Settings { timeout: Duration::from_secs(5), ..settings(&endpoint) }).unwrap();
    assert_eq!(client.get_object("bucket", "key", 100).await.unwrap(), Bytes::from_static(b"the object"));
    assert_eq!(*requests.lock().unwrap(), 3);

    // Three tries at most; the last answer is the error.
    let (endpoint, requests) = canned_server(vec![(503, slow_down); 4]).await;
    let client = S3Client::new(S3Settings { timeout: Duration::from_secs(5), ..settings(&endpoint) }).unwrap();
    let error = client.get_object("bucket", "key", 100).await.unwrap_err();
    assert_eq!(error.code(), Some("SlowDown"), "{error}");
    assert_eq!(*requests.lock().unwrap(), 3);
}

#[tokio::test]
async fn a_refusal_is_not_tried_again() {
    let denied = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    let (endpoint, requests) = canned_server(vec![(403, denied), (200, "never")]).await;
    let error = S3Client::new(settings(&endpoint)).unwrap().get_object("bucket", "key", 100).await.unwrap_err();
    assert_eq!(error.to_string(), "GetObject s3://bucket/key failed: HTTP 403 AccessDenied: Access Denied");
    assert_eq!(*requests.lock().unwrap(), 1);
    let (endpoint, _) = canned_server(vec![(200, "eleven byte")]).await;
    let error = S3Client::new(settings(&endpoint)).unwrap().get_object("bucket", "key", 10).await.unwrap_err();
    assert!(matches!(error.call_error(), Some(CallError::TooLarge { limit: 10, length: Some(11) })), "{error:?}");
}
