//! Starting `ocr-pdf-render` for one document and reading its pages back.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use image::RgbImage;
use kube_ocr_vision::image::PageRange;
use kube_ocr_vision::pdf::wire::{Frame, WireError, check_header_len, parse_frame};
use kube_ocr_vision::pdf::{PdfLimits, PlannedPage, TextLayerLine};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::error::RenderError;

/// Resolution of PDF pages when the caller names none (docs/inference-pod.md, "PDF
/// documents", has the measurements behind it).
pub const DEFAULT_PDF_DPI: u32 = 200;

/// How PDFs are rendered (the pod's `--pdf-*` flags).
#[derive(Debug, Clone)]
pub struct PdfSettings {
    /// The `ocr-pdf-render` binary.
    pub program: PathBuf,
    /// Resolution when the caller names none, and the range a caller may choose in.
    pub default_dpi: u32,
    pub min_dpi: u32,
    pub max_dpi: u32,
    pub limits: PdfLimits,
    /// Address-space and CPU-time limits of each renderer process.
    pub memory_limit_bytes: u64,
    pub cpu_seconds: u64,
    /// Longest wait for the next page (or the plan) from a renderer.
    pub page_timeout: Duration,
    /// Renderer processes at a time; more requests wait for a slot (within their deadline).
    pub max_renderers: usize,
}

impl PdfSettings {
    /// The defaults of the pod's flags, with `program` as the renderer.
    pub fn with_program(program: PathBuf) -> Self {
        Self {
            program,
            default_dpi: DEFAULT_PDF_DPI,
            min_dpi: 50,
            max_dpi: 600,
            limits: PdfLimits::default(),
            memory_limit_bytes: 2 << 30,
            cpu_seconds: 60,
            page_timeout: Duration::from_secs(30),
            max_renderers: 2,
        }
    }
}

/// What to render of one document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderJob {
    pub dpi: u32,
    pub range: PageRange,
    pub text_layer: bool,
}

/// Starts renderers, at most `max_renderers` at a time.
#[derive(Debug)]
pub(crate) struct PdfRenderer {
    settings: PdfSettings,
    slots: Arc<Semaphore>,
}

/// A page as the renderer sent it.
#[derive(Debug)]
pub(crate) struct RenderedPage {
    pub page: PlannedPage,
    pub content: PageContent,
}

#[derive(Debug)]
pub(crate) enum PageContent {
    Pixels(RgbImage),
    /// The page's own text (the job asked for it and the page has some).
    TextLayer(Vec<TextLayerLine>),
}

impl PdfRenderer {
    pub(crate) fn new(settings: PdfSettings) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_renderers.max(1)));
        Self { settings, slots }
    }

    pub(crate) fn settings(&self) -> &PdfSettings {
        &self.settings
    }

    /// Starts a renderer on `document` and waits for its plan: the page count and the
    /// pages it will send, or the reason it cannot.
    pub(crate) async fn start(&self, document: Arc<[u8]>, job: RenderJob) -> Result<RenderingDocument, RenderError> {
        let permit = self.slots.clone().acquire_owned().await.map_err(|_| RenderError::Unexpected)?;
        let settings = &self.settings;
        let limits = settings.limits;
        let mut command = Command::new(&settings.program);
        command
            .arg(format!("--dpi={}", job.dpi))
            .arg(format!("--first-page={}", job.range.first))
            .arg(format!("--last-page={}", job.range.last))
            .arg(format!("--max-pages={}", limits.max_pages))
            .arg(format!("--max-document-pages={}", limits.max_document_pages))
            .arg(format!("--max-page-pixels={}", limits.max_page_pixels))
            .arg(format!("--max-side={}", limits.max_side))
            .arg(format!("--memory-limit-bytes={}", settings.memory_limit_bytes))
            .arg(format!("--cpu-seconds={}", settings.cpu_seconds))
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if job.text_layer {
            command.arg("--text-layer");
        }
        let mut child = command
            .spawn()
            .map_err(|source| RenderError::Spawn { program: settings.program.display().to_string(), source })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(RenderError::Unexpected);
        };
        // The renderer may stop reading early (a limit, a refusal): a broken pipe here is
        // not the error; what it wrote, or its exit, says what happened.
        tokio::spawn(async move {
            let _ = stdin.write_all(&document).await;
        });
        let mut rendering = RenderingDocument {
            page_count: 0,
            pages: Vec::new(),
            next: 0,
            child,
            stdout: BufReader::with_capacity(1 << 16, stdout),
            stderr: Some(tokio::spawn(stderr_tail(stderr))),
            settings: settings.clone(),
            _slot: permit,
        };
        match rendering.read_frame_within(None).await? {
            (Frame::Document { page_count, pages }, _) => {
                rendering.page_count = page_count;
                rendering.pages = pages;
                Ok(rendering)
            }
            (Frame::Failed { error }, _) => Err(RenderError::Document(error)),
            (Frame::Page { .. }, _) => Err(RenderError::Unexpected),
        }
    }
}

/// A document being rendered; dropping it kills the renderer.
#[derive(Debug)]
pub(crate) struct RenderingDocument {
    /// Pages in the document.
    pub page_count: usize,
    /// The pages that will come, in order.
    pub pages: Vec<PlannedPage>,
    next: usize,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
    settings: PdfSettings,
    _slot: OwnedSemaphorePermit,
}

impl RenderingDocument {
    /// The next page in order; `None` after the last.
    pub(crate) async fn next_page(&mut self) -> Option<Result<RenderedPage, RenderError>> {
        let planned = *self.pages.get(self.next)?;
        self.next += 1;
        Some(self.read_page(planned).await)
    }

    async fn read_page(&mut self, planned: PlannedPage) -> Result<RenderedPage, RenderError> {
        let (frame, payload) = self.read_frame_within(Some(planned.number())).await?;
        match frame {
            Frame::Page { page, text_layer: Some(lines) } if page.index == planned.index => {
                Ok(RenderedPage { page, content: PageContent::TextLayer(lines) })
            }
            Frame::Page { page, text_layer: None } if page.index == planned.index => {
                let image = RgbImage::from_raw(page.width, page.height, payload).ok_or(RenderError::Unexpected)?;
                Ok(RenderedPage { page, content: PageContent::Pixels(image) })
            }
            Frame::Failed { error } => Err(RenderError::Document(error)),
            Frame::Page { .. } | Frame::Document { .. } => Err(RenderError::Unexpected),
        }
    }

    /// The next frame, within the page timeout (the renderer is killed past it).
    async fn read_frame_within(&mut self, page: Option<usize>) -> Result<(Frame, Vec<u8>), RenderError> {
        let after = self.settings.page_timeout;
        let max_pixels = self.settings.limits.max_page_pixels;
        match tokio::time::timeout(after, read_frame(&mut self.stdout, max_pixels)).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(ReadError::Wire(error))) => Err(RenderError::BadFrame(error)),
            Ok(Err(ReadError::Io(error))) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(self.died(page).await)
            }
            Ok(Err(ReadError::Io(error))) => Err(RenderError::ReadFrames(error)),
            Err(_) => {
                let _ = self.child.start_kill();
                Err(RenderError::PageTimedOut { page: page.unwrap_or(1), after })
            }
        }
    }

    /// What ended a renderer whose output stopped short.
    async fn died(&mut self, page: Option<usize>) -> RenderError {
        let status = self.child.wait().await;
        let stderr = match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        let reason = match status {
            Ok(status) if stderr.contains("memory allocation") => format!("out of memory ({status})"),
            Ok(status) if status.signal() == Some(rustix::process::Signal::XCPU.as_raw()) => {
                "out of CPU time".to_owned()
            }
            Ok(status) => {
                let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("no message");
                format!("{status}: {last}")
            }
            Err(error) => format!("cannot wait for it: {error}"),
        };
        tracing::warn!(page, %reason, "PDF renderer stopped");
        RenderError::Died { page, memory_limit_bytes: self.settings.memory_limit_bytes, reason }
    }
}

enum ReadError {
    Io(std::io::Error),
    Wire(WireError),
}

/// One frame: its JSON and its payload. A page larger than the pixel limit is refused
/// before its payload is read, whatever the renderer says.
async fn read_frame(reader: &mut (impl AsyncRead + Unpin), max_pixels: u64) -> Result<(Frame, Vec<u8>), ReadError> {
    let header_len = check_header_len(reader.read_u32_le().await.map_err(ReadError::Io)?).map_err(ReadError::Wire)?;
    let mut json = vec![0; header_len];
    reader.read_exact(&mut json).await.map_err(ReadError::Io)?;
    let payload_len = reader.read_u64_le().await.map_err(ReadError::Io)?;
    let frame = parse_frame(&json, payload_len).map_err(ReadError::Wire)?;
    if payload_len > max_pixels.saturating_mul(3) {
        return Err(ReadError::Wire(WireError::PayloadSize { page: 0, expected: max_pixels * 3, actual: payload_len }));
    }
    let mut payload = vec![0; payload_len as usize];
    reader.read_exact(&mut payload).await.map_err(ReadError::Io)?;
    Ok((frame, payload))
}

/// The last few kilobytes the renderer wrote to stderr (a panic or allocation message).
async fn stderr_tail(mut stderr: impl AsyncRead + Unpin) -> String {
    const KEEP: usize = 4096;
    let mut tail = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stderr.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        tail.extend_from_slice(&buffer[..read]);
        if tail.len() > 2 * KEEP {
            tail.drain(..tail.len() - KEEP);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}
