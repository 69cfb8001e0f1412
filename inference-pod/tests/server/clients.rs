//! The user-facing clients against the real server: `ocr-golden eval` (and the library
//! under it) collects predictions and counts failures by status code; `ocr` reads an
//! image, a folder or a multi-page document, over gRPC and over the HTTP API. The
//! binaries belong to the golden crate; `cargo test --workspace` builds them next to this
//! test.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{golden_image, test_config};
use kube_ocr_golden::grpc_eval::{EvalOptions, connect, recognize_set};
use kube_ocr_golden::{GoldenSet, Predictions, evaluate};
use kube_ocr_inference::serve::{RunningServer, start};

const EN: &str = "The quick brown fox jumps over the lazy dog";
const ZH: &str = "本店支持微信和支付宝付款";

/// A binary of the workspace, from the directory this test executable was built into.
fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join(name);
    assert!(binary.is_file(), "{} is missing: `cargo build -p kube-ocr-golden --bins` first", binary.display());
    binary
}

/// Two clean lines, one document and one item whose "image" is not an image.
fn golden_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let truth = [
        format!(r#"{{"id": "en", "file": "en.png", "task": "LINE", "text": "{EN}", "group": "en", "variant": "clean"}}"#),
        format!(r#"{{"id": "zh", "file": "zh.png", "task": "LINE", "text": "{ZH}", "group": "zh", "variant": "clean"}}"#),
        r#"{"id": "receipt", "file": "receipt.png", "task": "DOCUMENT", "lines": ["CITY CAFE", "Order #0315-27", "2 x Latte 9.00", "1 x Bagel 3.50", "Subtotal 12.50", "Tip 1.50", "Total 14.00", "Paid by card"], "group": "receipt", "variant": "clean"}"#.to_owned(),
        r#"{"id": "broken", "file": "broken.png", "task": "LINE", "text": "lost", "group": "broken", "variant": "clean"}"#.to_owned(),
    ];
    std::fs::write(dir.path().join("truth.jsonl"), truth.join("\n")).unwrap();
    std::fs::write(dir.path().join("en.png"), golden_image("lines/line-en-001-clean.png")).unwrap();
    std::fs::write(dir.path().join("zh.png"), golden_image("lines/line-zh-003-clean.png")).unwrap();
    std::fs::write(dir.path().join("receipt.png"), golden_image("documents/doc-receipt-02-clean.png")).unwrap();
    std::fs::write(dir.path().join("broken.png"), b"\x89PNG but then nothing").unwrap();
    dir
}

fn check_predictions(predictions: &Predictions) {
    assert_eq!(predictions.get("en"), Some(EN));
    assert_eq!(predictions.get("zh"), Some(ZH));
    assert!(predictions.get("receipt").unwrap().contains("CITY CAFE"));
    assert_eq!(predictions.get("broken"), Some(""), "a failed request is an empty prediction");
}

async fn serving() -> RunningServer {
    let server = start(test_config("ppocr-v4")).await.unwrap();
    server.wait_until_serving(Duration::from_secs(180)).await.unwrap();
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_collects_predictions_and_counts_failures_by_code() {
    let server = serving().await;
    let dir = golden_dir();
    let set = GoldenSet::load(dir.path()).unwrap();
    let options = EvalOptions { concurrency: 3, timeout: Duration::from_secs(60), bypass_cache: false };
    let client = connect(&format!("http://{}", server.grpc_addr), options.timeout).await.unwrap();
    let recognized = recognize_set(client, &set, &options, || {}).await.unwrap();
    check_predictions(&recognized.predictions);
    assert_eq!(recognized.failures.len(), 1);
    assert_eq!(recognized.failures[0].id, "broken");
    assert_eq!(recognized.failures[0].code, "INVALID_ARGUMENT");
    assert_eq!(recognized.latencies.len(), 3, "one per successful call");
    let report = evaluate(&set, &recognized.predictions);
    assert!(report.overall.accuracy < 1.0 && report.by_task["LINE"].char_edits.total() >= 4);

    // The CLI reports the same, and its accuracy gate fails (exit 1) below the minimum.
    let saved = dir.path().join("saved.jsonl");
    let output = tokio::process::Command::new(workspace_binary("ocr-golden"))
        .args(["eval", "--endpoint", &format!("http://{}", server.grpc_addr), "--json"])
        .args(["--min-accuracy", "0.999", "--set", dir.path().to_str().unwrap()])
        .arg("--save-predictions")
        .arg(&saved)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["request_errors"], serde_json::json!({"INVALID_ARGUMENT": 1}));
    check_predictions(&Predictions::load(&saved).unwrap());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocr_reads_an_image_or_a_folder() {
    let server = serving().await;
    let dir = golden_dir();
    let endpoint = format!("http://{}", server.grpc_addr);
    let ocr = workspace_binary("ocr");

    let one = tokio::process::Command::new(&ocr)
        .args(["--endpoint", &endpoint, "--task", "line"])
        .arg(dir.path().join("en.png"))
        .output()
        .await
        .unwrap();
    assert_eq!(one.status.code(), Some(0), "{}", String::from_utf8_lossy(&one.stderr));
    assert_eq!(String::from_utf8_lossy(&one.stdout).trim(), EN);

    // A folder: one JSON object per image; the broken one fails (exit 1) with its reason.
    let all = tokio::process::Command::new(&ocr)
        .args(["--endpoint", &endpoint, "--task", "line", "--json"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(all.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&all.stdout);
    let objects: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 3, "{stdout}");
    assert!(objects.iter().any(|o| o["text"] == ZH && o["lines"][0]["box"].as_array().unwrap().len() == 4));
    let stderr = String::from_utf8_lossy(&all.stderr);
    assert!(stderr.contains("broken.png: INVALID_ARGUMENT"), "{stderr}");

    server.shutdown().await.unwrap();
}

/// A two-page TIFF: the receipt, then the Chinese line.
fn two_page_tiff(dir: &Path) -> PathBuf {
    let path = dir.join("two-pages.tiff");
    let mut tiff = std::io::Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut tiff).unwrap();
    for file in ["receipt.png", "zh.png"] {
        let page = image::open(dir.join(file)).unwrap().to_rgb8();
        encoder.write_image::<tiff::encoder::colortype::RGB8>(page.width(), page.height(), page.as_raw()).unwrap();
    }
    std::fs::write(&path, tiff.into_inner()).unwrap();
    path
}

/// `ocr ARGS PATH`: exit code, stdout, stderr.
async fn run_ocr(args: &[&str], path: &Path) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(workspace_binary("ocr")).args(args).arg(path).output().await.unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

fn page_headings(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("-- page")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocr_reads_a_document_over_grpc_and_the_http_api() {
    let server = serving().await;
    let dir = golden_dir();
    let tiff = two_page_tiff(dir.path());
    let grpc_endpoint = format!("http://{}", server.grpc_addr);
    let http_endpoint = format!("http://{}", server.http_api_addr);
    let grpc = ["--endpoint", grpc_endpoint.as_str()];
    let http = ["--api", "http", "--endpoint", http_endpoint.as_str()];

    // gRPC (the RecognizeDocument stream): each page's text under its own heading.
    let (code, over_grpc, stderr) = run_ocr(&grpc, &tiff).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(page_headings(&over_grpc), ["-- page 1 of 2 --", "-- page 2 of 2 --"], "{over_grpc}");
    assert!(over_grpc.contains("CITY CAFE") && over_grpc.contains(ZH), "{over_grpc}");
    assert_eq!(stderr, "", "no progress bar off a terminal");

    // The HTTP API (POST /v1/ocr, image/tiff) prints the same.
    let (code, over_http, stderr) = run_ocr(&http, &tiff).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(over_http, over_grpc);

    // A page range, on both APIs: only the second page.
    for api in [&grpc[..], &http[..]] {
        let args = [api, &["--first-page", "2", "--last-page", "2"]].concat();
        let (code, stdout, stderr) = run_ocr(&args, &tiff).await;
        assert_eq!(code, Some(0), "{api:?}: {stderr}");
        assert_eq!(page_headings(&stdout), ["-- page 2 of 2 --"], "{api:?}: {stdout}");
        assert!(stdout.contains(ZH) && !stdout.contains("CITY CAFE"), "{api:?}: {stdout}");
    }

    // JSON, on both APIs: the same pages.
    let mut documents = Vec::new();
    for api in [&grpc[..], &http[..]] {
        let (code, stdout, stderr) = run_ocr(&[api, &["--json"]].concat(), &tiff).await;
        assert_eq!(code, Some(0), "{api:?}: {stderr}");
        let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let pages = json["pages"].as_array().unwrap();
        assert_eq!(pages.iter().map(|p| p["page"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2], "{api:?}");
        assert!(pages.iter().all(|p| p["textSource"] == "ocr" && p["lines"].as_array().is_some_and(|l| !l.is_empty())));
        assert_eq!(json["documentPageCount"], 2);
        let texts: Vec<String> = pages.iter().map(|p| p["text"].as_str().unwrap().to_owned()).collect();
        assert_eq!(json["documentText"].as_str().unwrap(), texts.join("\n\u{c}\n"), "{api:?}");
        documents.push(texts);
    }
    assert_eq!(documents[0], documents[1], "both APIs read the same pages");

    // PDFs: a born-digital one from its own text, and the first page of a scanned one
    // rendered at 150 dpi; both APIs print the same.
    let documents = kube_ocr_golden::document_set_dir().join("multipage");
    let born_digital = documents.join("pdf-born-digital.pdf");
    let scanned = documents.join("pdf-scanned.pdf");
    let mut pdf_texts = Vec::new();
    for (pdf, flags) in [
        (&born_digital, &["--pdf-text-layer"][..]),
        (&scanned, &["--first-page", "1", "--last-page", "1", "--pdf-dpi", "150"]),
    ] {
        let mut printed = Vec::new();
        for api in [&grpc[..], &http[..]] {
            let (code, stdout, stderr) = run_ocr(&[api, flags].concat(), pdf).await;
            assert_eq!(code, Some(0), "{api:?} {flags:?}: {stderr}");
            // (Spaces aside: OCR of a 150 dpi page may join words.)
            assert!(stdout.replace(' ', "").contains("ACMETradingLtd."), "{api:?} {flags:?}: {stdout}");
            printed.push(stdout);
        }
        assert_eq!(printed[0], printed[1], "{flags:?}");
        pdf_texts.push(printed.swap_remove(0));
    }
    let headings = page_headings(&pdf_texts[0]);
    assert!(headings.len() >= 2 && headings.iter().all(|h| h.ends_with("(PDF text layer) --")), "{}", pdf_texts[0]);
    let headings = page_headings(&pdf_texts[1]);
    assert!(headings.len() == 1 && headings[0].starts_with("-- page 1 of "), "{}", pdf_texts[1]);

    // A file the server cannot read: its 400 and message over HTTP, the same message as
    // over gRPC; exit 1.
    let broken = dir.path().join("broken.png");
    let (code, _, grpc_error) = run_ocr(&grpc, &broken).await;
    assert_eq!(code, Some(1));
    let grpc_message = grpc_error
        .trim()
        .strip_prefix(&format!("{}: INVALID_ARGUMENT: ", broken.display()))
        .unwrap_or_else(|| panic!("{grpc_error}"));
    let (code, stdout, http_error) = run_ocr(&http, &broken).await;
    assert_eq!((code, stdout.as_str()), (Some(1), ""), "{http_error}");
    assert_eq!(http_error.trim(), format!("{}: INVALID_ARGUMENT (HTTP 400): {grpc_message}", broken.display()));
    let empty = dir.path().join("empty.pdf");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, http_error) = run_ocr(&http, &empty).await;
    assert_eq!(code, Some(1));
    assert!(http_error.starts_with(&format!("{}: INVALID_ARGUMENT (HTTP 400): ", empty.display())), "{http_error}");
    server.shutdown().await.unwrap();
}
