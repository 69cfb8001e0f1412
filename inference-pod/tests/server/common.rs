//! Shared by the integration tests: where `make setup` put the exported bundles.

use std::path::PathBuf;

/// `<workspace>/models/<name>`, the symlinked cache that `make setup` fills.
pub fn bundle_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(name);
    assert!(dir.join("bundle.yaml").is_file(), "{} has no bundle.yaml: run `make setup` first", dir.display());
    dir
}

/// `ocr-pdf-render` as cargo built it beside this test (`cargo test --workspace` builds
/// it: its crate has integration tests).
pub fn pdf_renderer() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let program = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps").join("ocr-pdf-render");
    assert!(
        program.is_file(),
        "{} is missing: cargo build -p kube-ocr-pdf-render (cargo test --workspace builds it)",
        program.display()
    );
    program
}

/// Server settings for in-process tests: loopback, ephemeral ports, short drain.
#[allow(dead_code)]
pub fn test_config(bundle: &str) -> kube_ocr_inference::serve::ServerConfig {
    use std::time::Duration;
    kube_ocr_inference::serve::ServerConfig {
        bundle_dir: bundle_dir(bundle),
        device: kube_ocr_inference::model::DeviceRequest::Auto,
        listen_host: std::net::Ipv4Addr::LOCALHOST.into(),
        grpc_port: 0,
        http_api_port: 0,
        http_port: 0,
        cors: kube_ocr_inference::serve::CorsPolicy::Off,
        batching: kube_ocr_inference::serve::BatcherConfig {
            max_batch_size: 8,
            max_queue_delay: Duration::from_millis(5),
            max_queue: 256,
        },
        decode_limits: kube_ocr_vision::image::DecodeLimits::default(),
        max_image_bytes: 8 << 20,
        max_pages: 50,
        pdf: kube_ocr_inference::serve::PdfSettings::with_program(pdf_renderer()),
        request_timeout: Duration::from_secs(25),
        cache_bytes: 16 << 20,
        shared_cache: None,
        jobs: None,
        self_test_dir: None,
        self_test_min_accuracy: None,
        max_precision_accuracy_drop: kube_ocr_inference::serve::DEFAULT_MAX_PRECISION_ACCURACY_DROP,
        torch_threads: Some(2),
        deadline_admission: true,
        model_options: kube_ocr_inference::model::ModelOptions::default(),
        drain_delay: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(30),
    }
}

/// GET `path` from an HTTP/1.1 server; returns (status code, body).
#[allow(dead_code)]
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let reply = http_request(addr, "GET", path, &[], &[]).await;
    (reply.status, reply.text())
}

/// An HTTP response as the tests read it.
#[allow(dead_code)]
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[allow(dead_code)]
impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`, so the reply ends
/// where the connection does).
#[allow(dead_code)]
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the HTTP port");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // The server may answer (413) before reading all of a large body and close.
    let _ = stream.write_all(body).await;
    // A server that refused the body early may reset the connection after its answer.
    let mut response = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
        response.extend_from_slice(&buffer[..n]);
    }
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    HttpReply { status, headers, body: response[split + 4..].to_vec() }
}

/// The value of one sample line of an OpenMetrics text, e.g. `ocr_requests_total{...}`.
#[allow(dead_code)]
pub fn metric_value(metrics: &str, series_prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(series_prefix))
        .filter_map(|line| line.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// The sum of the samples of `series` (e.g. `ocr_requests_total`) carrying `label="value"`.
#[allow(dead_code)]
pub fn labelled_metric_sum(metrics: &str, series: &str, label: &str, value: &str) -> f64 {
    let wanted = format!("{label}=\"{value}\"");
    metrics
        .lines()
        .filter(|line| line.starts_with(series) && line.contains(&wanted))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Scrapes `/metrics` until `series_prefix` sums to at least `at_least`, or `patience`
/// passes; returns the last scrape. For counters a worker thread moves just after the
/// reply the test waited for (an item dropped from a queue once the worker reaches it).
#[allow(dead_code)]
pub async fn metrics_once_at_least(
    addr: std::net::SocketAddr,
    series_prefix: &str,
    at_least: f64,
    patience: std::time::Duration,
) -> String {
    let give_up = std::time::Instant::now() + patience;
    loop {
        let (_, metrics) = http_get(addr, "/metrics").await;
        if metric_value(&metrics, series_prefix) >= at_least || std::time::Instant::now() >= give_up {
            return metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A connected OCR client.
#[allow(dead_code)]
pub async fn ocr_client(
    addr: std::net::SocketAddr,
) -> kube_ocr_proto::v1::ocr_client::OcrClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    kube_ocr_proto::v1::ocr_client::OcrClient::new(channel).max_decoding_message_size(64 << 20)
}

/// The bytes of a golden-set image.
#[allow(dead_code)]
pub fn golden_image(file: &str) -> Vec<u8> {
    std::fs::read(kube_ocr_golden::default_set_dir().join(file)).unwrap()
}

/// The bytes of a file of the golden document set (golden/documents).
#[allow(dead_code)]
pub fn golden_document(file: &str) -> Vec<u8> {
    std::fs::read(kube_ocr_golden::document_set_dir().join(file)).unwrap()
}

/// The per-page truth of a multi-page item of the golden document set.
#[allow(dead_code)]
pub fn golden_document_pages(id: &str) -> Vec<Vec<String>> {
    let truth = std::fs::read_to_string(kube_ocr_golden::document_set_dir().join(kube_ocr_golden::TRUTH_FILE)).unwrap();
    let item = truth
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|item| item["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in the golden document set"));
    serde_json::from_value(item["pages"].clone()).unwrap()
}

/// Starts the server and waits until its self-test has passed.
#[allow(dead_code)]
pub async fn serving_server(
    config: kube_ocr_inference::serve::ServerConfig,
) -> kube_ocr_inference::serve::RunningServer {
    let server = kube_ocr_inference::serve::start(config).await.expect("server starts");
    server.wait_until_serving(std::time::Duration::from_secs(180)).await.expect("self-test passes");
    server
}

/// The golden set's LINE items whose id matches `keep`, with their decoded pixels.
#[allow(dead_code)]
pub fn golden_lines(keep: impl Fn(&str) -> bool) -> Vec<(kube_ocr_golden::GoldenItem, image::RgbImage)> {
    let set = kube_ocr_golden::GoldenSet::load(kube_ocr_golden::default_set_dir()).unwrap();
    set.items
        .iter()
        .filter(|item| item.task == kube_ocr_golden::Task::Line && keep(&item.id))
        .map(|item| (item.clone(), image::load_from_memory(&set.image_bytes(item).unwrap()).unwrap().to_rgb8()))
        .collect()
}

/// `image` encoded as PNG.
#[allow(dead_code)]
pub fn png_bytes<P: image::PixelWithColorType>(image: &image::ImageBuffer<P, Vec<P::Subpixel>>) -> Vec<u8>
where
    [P::Subpixel]: image::EncodableLayout,
{
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A 1 x 1 grey PNG whose header is rewritten to declare `width x height`: all a decoder
/// reads of a huge image before its pixel data, at a few dozen bytes.
#[allow(dead_code)]
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = png_bytes(&image::GrayImage::new(1, 1));
    // Signature (8), IHDR length (4), "IHDR" (4), width, height; the CRC after 13 bytes.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// CRC-32 (ISO-HDLC), as PNG chunks carry it.
#[allow(dead_code)]
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// `<workspace>/.api-tools/bin/<name>`: the venv `make setup` installs schemathesis and
/// hocr-spec in.
#[allow(dead_code)]
pub fn api_tool(name: &str) -> PathBuf {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.api-tools/bin").join(name);
    assert!(tool.is_file(), "{} is missing: run `make setup` first", tool.display());
    tool
}

/// Fails the test unless hocr-spec (a real hOCR 1.2 validator, strict parsing, standard
/// profile) accepts `hocr`.
#[allow(dead_code)]
pub fn assert_valid_hocr(hocr: &[u8]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), hocr).unwrap();
    let check = std::process::Command::new(api_tool("hocr-spec"))
        .args(["--profile", "standard", "--parse-strict"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "hocr-spec refused the hOCR:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// A CORS preflight of `POST /v1/ocr` from `origin`; the allowed origin it answers, if any.
#[allow(dead_code)]
pub async fn preflight_allowed_origin(addr: std::net::SocketAddr, origin: &str) -> Option<String> {
    let reply =
        http_request(addr, "OPTIONS", "/v1/ocr", &[("Origin", origin), ("Access-Control-Request-Method", "POST")], &[])
            .await;
    reply.header("access-control-allow-origin").map(str::to_owned)
}

/// The word page N of [`numbered_pages_pdf`] carries: `NUMBERED_PAGE_WORDS[N % 5]`.
#[allow(dead_code)]
pub const NUMBERED_PAGE_WORDS: [&str; 5] = ["invoice", "receipt", "letter", "notice", "form"];

/// A PDF of `count` small pages, page N drawing the line `Page N <word>` in Helvetica, so
/// that every page reads differently and a test can tell which page an answer is.
#[allow(dead_code)]
pub fn numbered_pages_pdf(count: usize) -> Vec<u8> {
    const WORDS: [&str; 5] = NUMBERED_PAGE_WORDS;
    // Objects: 1 catalog, 2 pages, 3 font, then per page its page and its content.
    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        String::new(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut kids = Vec::new();
    for page in 1..=count {
        let content = format!("BT /F1 30 Tf 20 30 Td (Page {page} {}) Tj ET", WORDS[page % WORDS.len()]);
        let page_object = objects.len() + 1;
        kids.push(format!("{page_object} 0 R"));
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 90] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            page_object + 1
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()));
    }
    objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {count} >>", kids.join(" "));
    let mut pdf = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", index + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    pdf
}

/// The `ocr-inference-pod` binary running as a pod would, on free loopback ports; killed
/// (SIGKILL) on drop.
#[allow(dead_code)]
pub struct PodProcess {
    pub child: tokio::process::Child,
    pub grpc: std::net::SocketAddr,
    pub http_api: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    pub log: std::path::PathBuf,
}

#[allow(dead_code)]
impl PodProcess {
    /// Starts the binary with the standard bundle and `args`, and waits until it serves.
    pub async fn start(args: &[String], log_dir: &std::path::Path, name: &str) -> Self {
        let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (grpc, http_api, http) = (free_port(), free_port(), free_port());
        let log = log_dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ocr-inference-pod"))
            .arg("--bundle")
            .arg(bundle_dir("ppocr-v4").canonicalize().unwrap())
            .args([
                "--device",
                "cpu",
                "--listen-host",
                "127.0.0.1",
                "--drain-delay-secs",
                "0.2",
                "--torch-threads",
                "1",
            ])
            .args(["--grpc-port", &grpc.to_string(), "--http-api-port", &http_api.to_string()])
            .args(["--http-port", &http.to_string(), "--pod-name", name])
            .arg("--pdf-renderer")
            .arg(pdf_renderer())
            .args(args)
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let address = |port: u16| -> std::net::SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
        let pod = Self { child, grpc: address(grpc), http_api: address(http_api), http: address(http), log };
        let started = std::time::Instant::now();
        loop {
            // The port opens before the model is loaded: probe the connection first.
            if tokio::net::TcpStream::connect(pod.http).await.is_ok() && http_get(pod.http, "/readyz").await.0 == 200 {
                return pod;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(180), "{name} did not become ready");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL: the pod dies mid-work, as on an OOM kill or a lost node.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}
