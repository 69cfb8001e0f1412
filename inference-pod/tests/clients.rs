//! The user-facing clients against the real server: `ocr-golden eval` (and the library
//! under it) collects predictions and counts failures by status code; `ocr` reads an
//! image or a folder. The binaries belong to the golden crate; `cargo test --workspace`
//! builds them next to this test.

mod common;

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

    // A two-page TIFF: each page's text under its own heading.
    let tiff_path = dir.path().join("two-pages.tiff");
    let mut tiff = std::io::Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut tiff).unwrap();
    for file in ["receipt.png", "zh.png"] {
        let page = image::open(dir.path().join(file)).unwrap().to_rgb8();
        encoder.write_image::<tiff::encoder::colortype::RGB8>(page.width(), page.height(), page.as_raw()).unwrap();
    }
    std::fs::write(&tiff_path, tiff.into_inner()).unwrap();
    let pages =
        tokio::process::Command::new(&ocr).args(["--endpoint", &endpoint]).arg(&tiff_path).output().await.unwrap();
    assert_eq!(pages.status.code(), Some(0), "{}", String::from_utf8_lossy(&pages.stderr));
    let stdout = String::from_utf8_lossy(&pages.stdout);
    let headings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("-- page")).collect();
    assert_eq!(headings, ["-- page 1 of 2 --", "-- page 2 of 2 --"], "{stdout}");
    assert!(stdout.contains("CITY CAFE") && stdout.contains(ZH), "{stdout}");
    server.shutdown().await.unwrap();
}
