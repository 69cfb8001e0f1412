//! What the integration tests share: a client for a test server, requests signed by curl
//! (so that a bucket is set up and checked without the client under test), and a proxy
//! that counts the requests going through it.

#![allow(dead_code)] // Each test binary uses a part.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube_ocr_s3::{Addressing, S3Client, S3Settings};
use kube_ocr_test_servers::S3Server;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn settings(server: &S3Server) -> S3Settings {
    S3Settings {
        endpoint: server.endpoint().parse().unwrap(),
        region: server.region().to_owned(),
        access_key_id: server.access_key().to_owned(),
        secret_access_key: server.secret_key().to_owned(),
        session_token: None,
        addressing: Addressing::Path,
        ca_file: None,
        timeout: Duration::from_secs(20),
    }
}

pub fn client(server: &S3Server) -> S3Client {
    S3Client::new(settings(server)).unwrap()
}

/// A request signed by `curl --aws-sigv4` to `endpoint` + `path_and_query`: the HTTP status
/// and the body.
pub fn curl(server: &S3Server, method: &str, path_and_query: &str, body: Option<&[u8]>) -> (u16, String) {
    let body = body.unwrap_or_default();
    let mut curl = Command::new("curl");
    curl.args(["--silent", "--show-error", "--max-time", "20", "--write-out", "\n%{http_code}"])
        .args(["--aws-sigv4", &format!("aws:amz:{}:s3", server.region())])
        .args(["--user", &format!("{}:{}", server.access_key(), server.secret_key())])
        .args(["--request", method])
        .args(["--header", &format!("x-amz-content-sha256: {}", hex(&Sha256::digest(body)))]);
    if !body.is_empty() {
        let md5 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, md5::Md5::digest(body));
        curl.args(["--header", &format!("content-md5: {md5}"), "--header", "content-type: application/xml"])
            .args(["--data-binary", "@-"]);
    }
    let mut child = curl
        .arg(format!("{}{path_and_query}", server.endpoint()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (answer, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status.trim().parse().unwrap_or_else(|_| panic!("curl: {}", String::from_utf8_lossy(&output.stderr)));
    (status, answer.to_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A TCP proxy on 127.0.0.1 to `upstream` (`host:port`) that counts the occurrences of
/// `needle` in what clients send (e.g. a request line). The `Host` header passes through
/// unchanged, so signatures made for the proxy's address stay valid.
pub struct CountingProxy {
    pub address: String,
    count: Arc<AtomicUsize>,
}

impl CountingProxy {
    pub async fn start(upstream: String, needle: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                tokio::spawn(relay(client, server, needle, counted.clone()));
            }
        });
        Self { address, count }
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, server: TcpStream, needle: &'static str, count: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut seen = Vec::new();
        let mut found = 0;
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read) = client_read.read(&mut buffer).await {
            if read == 0 || server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
            // Searched in everything sent so far on this connection, so that a needle
            // split across two reads is still found, once.
            seen.extend_from_slice(&buffer[..read]);
            let total = seen.windows(needle.len()).filter(|window| *window == needle.as_bytes()).count();
            count.fetch_add(total - found, Ordering::SeqCst);
            found = total;
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
