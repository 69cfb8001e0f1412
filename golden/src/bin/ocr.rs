//! `ocr`: send an image, or every image in a folder, to a kube-ocr service and print the
//! text (or JSON), page by page for a multi-page TIFF. Exit codes: 0 all read, 1 some requests failed, 2 usage or input error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use kube_ocr_proto::contract::code_name;
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, Task, ocr_client::OcrClient};
use tonic::transport::Endpoint;

const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp", "jfif"];

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TaskArg {
    /// Find and read every line of a page.
    Document,
    /// The image is a single text line.
    Line,
}

#[derive(Debug, Parser)]
#[command(name = "ocr", version, about = "Read text from images with a kube-ocr gRPC service.")]
struct Cli {
    /// An image file, or a folder whose images (by extension) are all read.
    path: PathBuf,
    /// gRPC endpoint of the service.
    #[arg(long, env = "OCR_ENDPOINT", default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    #[arg(long, env = "OCR_TASK", value_enum, default_value = "document")]
    task: TaskArg,
    /// Leave out lines below this confidence (0..=1).
    #[arg(long, env = "OCR_MIN_CONFIDENCE", default_value_t = 0.0)]
    min_confidence: f32,
    /// Print one JSON object per image (the full response) instead of text.
    #[arg(long, env = "OCR_JSON")]
    json: bool,
    /// Deadline of each request, in milliseconds.
    #[arg(long, env = "OCR_TIMEOUT_MS", default_value_t = 30_000)]
    timeout_ms: u64,
}

fn images_in(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut images: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    images.sort();
    anyhow::ensure!(!images.is_empty(), "no images ({}) in {}", IMAGE_EXTENSIONS.join(", "), path.display());
    Ok(images)
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    anyhow::ensure!((0.0..=1.0).contains(&cli.min_confidence), "--min-confidence must be between 0 and 1");
    let images = images_in(&cli.path)?;
    let timeout = Duration::from_millis(cli.timeout_ms);
    let channel = Endpoint::from_shared(cli.endpoint.clone())
        .with_context(|| format!("invalid endpoint {:?}", cli.endpoint))?
        .connect_timeout(timeout)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", cli.endpoint))?;
    let mut client = OcrClient::new(channel).max_decoding_message_size(64 << 20);
    let progress = if images.len() > 1 && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(images.len() as u64);
        bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}").expect("static template"));
        bar
    } else {
        ProgressBar::hidden()
    };
    let task = match cli.task {
        TaskArg::Document => Task::Document,
        TaskArg::Line => Task::Line,
    };
    let mut all_ok = true;
    for path in &images {
        progress.set_message(path.display().to_string());
        let image = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut request = tonic::Request::new(RecognizeRequest {
            request_id: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            image,
            task: task as i32,
            options: Some(RecognizeOptions { min_confidence: cli.min_confidence, ..Default::default() }),
        });
        request.set_timeout(timeout);
        match client.recognize(request).await {
            Ok(response) => {
                let response = response.into_inner();
                let printed = progress.suspend(|| {
                    if cli.json {
                        emit(response_json(path, &response))
                    } else {
                        (images.len() == 1 || emit(format!("== {}", path.display()))) && emit_text(&response)
                    }
                });
                if !printed {
                    // The reader went away (e.g. `| head`): stop quietly, like other CLIs.
                    return Ok(all_ok);
                }
            }
            Err(status) => {
                all_ok = false;
                progress.suspend(|| eprintln!("{}: {} {}", path.display(), code_name(status.code()), status.message()));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(all_ok)
}

/// The text of a response: its lines, or for a document of several pages each page's
/// under a `-- page N of M --` line.
fn emit_text(response: &kube_ocr_proto::v1::RecognizeResponse) -> bool {
    if response.pages.is_empty() {
        return emit(&response.text);
    }
    let count = response.pages.len();
    response.pages.iter().all(|page| emit(format!("-- page {} of {count} --", page.page_number)) && emit(&page.text))
}

/// Writes one line to stdout; false when stdout is closed.
fn emit(line: impl std::fmt::Display) -> bool {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}").is_ok()
}

fn lines_json(lines: &[kube_ocr_proto::v1::TextLine]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|line| {
            serde_json::json!({
                "text": line.text,
                "confidence": line.confidence,
                "box": line.r#box.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>(),
                "rotated180": line.rotated_180,
            })
        })
        .collect()
}

fn response_json(path: &Path, response: &kube_ocr_proto::v1::RecognizeResponse) -> serde_json::Value {
    let lines = lines_json(&response.lines);
    let pages: Vec<serde_json::Value> = response
        .pages
        .iter()
        .map(|page| {
            serde_json::json!({
                "page": page.page_number,
                "text": page.text,
                "lines": lines_json(&page.lines),
                "width": page.image_width,
                "height": page.image_height,
                "pageRotation": page.page_rotation,
            })
        })
        .collect();
    let timings = response.timings.unwrap_or_default();
    serde_json::json!({
        "file": path.display().to_string(),
        "text": response.text,
        "lines": lines,
        "width": response.image_width,
        "height": response.image_height,
        "pageRotation": response.page_rotation,
        "pages": pages,
        "documentText": response.document_text,
        "cached": response.cached,
        "model": response.model.as_ref().map(|m| format!("{}:{}", m.name, m.version)),
        "timingsUs": {
            "queue": timings.queue_us, "preprocess": timings.preprocess_us, "inference": timings.inference_us,
            "postprocess": timings.postprocess_us, "total": timings.total_us,
        },
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("ocr: {error:#}");
            ExitCode::from(2)
        }
    }
}
