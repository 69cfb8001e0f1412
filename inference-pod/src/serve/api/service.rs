//! [`OcrApi`]: one call end to end, whichever API it came in on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use kube_ocr_proto::contract::code_name;
use kube_ocr_proto::v1::ModelRef;
use kube_ocr_vision::image::{DocumentPages, PagesError, document_pages, tiff_page_bytes};
use kube_ocr_vision::layout::PageRotation;
use kube_ocr_vision::pdf::{PlannedPage, TextLayerLine, is_pdf};
use kube_ocr_vision::postprocess::Word;
use tokio::sync::mpsc;
use tonic::Code;

use super::call::{Answered, CallOptions, DocumentProgress, OcrCall, Protocol, Served, ServedPage};
use super::check::CallChecker;
use super::failure::{ApiError, Failure};
use crate::serve::cache::{CacheKey, ResultCaches, image_sha256};
use crate::serve::engine::{Engine, OcrLine, OcrOptions, OcrOutput, OcrTask, PageImage, PhaseTimings, TextSource};
use crate::serve::pdf::{PageContent, PdfRenderer, RenderError, RenderJob};
use crate::serve::serving_state::{Phase, ServingState};
use crate::serve::telemetry::access_log::{AccessRecord, log_access};
use crate::serve::telemetry::metrics::OcrMetrics;

/// Pages of one synchronous multi-page document that go through the engine at a time:
/// enough to fill the detector's batches, few enough that one long document does not
/// hold every queue slot.
pub(crate) const PAGES_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiLimits {
    /// Longest a request may take in total, whatever the client's deadline.
    pub request_timeout: Duration,
    /// Largest document accepted, in bytes.
    pub max_image_bytes: usize,
    /// Most pages of a multi-page document.
    pub max_pages: usize,
}

fn pages_error(error: PagesError) -> ApiError {
    let failure = match error {
        PagesError::TooManyPages { .. } => Failure::TooLarge,
        PagesError::BrokenChain { .. } => Failure::InvalidArgument,
    };
    ApiError::new(failure, error.to_string())
}

/// Where a streaming call's progress goes; a caller that went away stops hearing it.
#[derive(Debug)]
pub(crate) struct Progress(mpsc::Sender<DocumentProgress>);

impl Progress {
    pub(crate) fn new(sender: mpsc::Sender<DocumentProgress>) -> Self {
        Self(sender)
    }

    async fn planned(&self, document_page_count: u32, pages_to_read: u32) {
        let _ = self.0.send(DocumentProgress::Planned { document_page_count, pages_to_read }).await;
    }

    async fn page(&self, page: &ServedPage) {
        let _ = self.0.send(DocumentProgress::Page(page.clone())).await;
    }

    /// Resolves once nobody listens any more (the caller dropped its stream).
    async fn caller_gone(&self) {
        self.0.closed().await;
    }
}

/// The engine with everything a served call needs around it. Shared by the gRPC and HTTP
/// APIs (not to be confused with the `OcrService` custom resource).
#[derive(Debug)]
pub(crate) struct OcrApi {
    engine: Arc<Engine>,
    caches: Arc<ResultCaches>,
    metrics: Arc<OcrMetrics>,
    serving: ServingState,
    limits: ApiLimits,
    pdf: Arc<PdfRenderer>,
    model: ModelRef,
    checker: CallChecker,
}

impl OcrApi {
    pub(crate) fn new(
        engine: Arc<Engine>,
        caches: Arc<ResultCaches>,
        metrics: Arc<OcrMetrics>,
        serving: ServingState,
        limits: ApiLimits,
        pdf: Arc<PdfRenderer>,
    ) -> Self {
        let manifest = &engine.bundle().manifest;
        let model = ModelRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            variant: manifest.variant.clone(),
        };
        let checker = CallChecker::new(limits.max_image_bytes, pdf.settings());
        Self { engine, caches, metrics, serving, limits, pdf, model, checker }
    }

    pub(crate) fn model(&self) -> &ModelRef {
        &self.model
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn limits(&self) -> ApiLimits {
        self.limits
    }

    /// Whether the pod serves now (not starting, failed or draining).
    pub(crate) fn is_serving(&self) -> bool {
        self.serving.phase().is_serving()
    }

    /// Runs `call`, counts it and logs it.
    pub(crate) async fn call(&self, call: &OcrCall, received: Instant) -> Answered {
        self.call_with_progress(call, received, None).await
    }

    /// Runs `call` as [`Self::call`] does, telling `progress` of the plan and of each
    /// page as it is read.
    pub(crate) async fn call_with_progress(
        &self,
        call: &OcrCall,
        received: Instant,
        progress: Option<&Progress>,
    ) -> Answered {
        self.metrics.request_started();
        let sha256 = image_sha256(&call.document);
        let result = match progress {
            // A document stream's caller that goes away stops the work: its renderer is
            // killed and its pages leave the queues, rather than finishing for nobody.
            Some(progress) => tokio::select! {
                result = self.serve(call, &sha256, Some(progress)) => result,
                () = progress.caller_gone() => Err(ApiError::new(Failure::Cancelled, "the caller went away")),
            },
            None => self.serve(call, &sha256, None).await,
        };
        let total = received.elapsed();
        let code = result.as_ref().map_or_else(|error| error.failure.code(), |_| Code::Ok);
        self.metrics.request_finished(call.protocol, call.task, code, total);
        if let Ok(served) = &result {
            for page in served.every_page() {
                self.metrics.record_output(call.task, page.lines.len());
                if !served.cached && page.source == TextSource::Ocr {
                    self.metrics.observe_phases(call.task, &page.timings);
                }
            }
        }
        let output = result.as_ref().ok();
        log_access(&AccessRecord {
            protocol: call.protocol.as_str(),
            request_id: &call.request_id,
            image_sha256: &hex(&sha256),
            task: call.task.as_str(),
            image_bytes: call.document.len(),
            width: output.map_or(0, |served| served.output.width),
            height: output.map_or(0, |served| served.output.height),
            pages: output.map_or(0, |served| served.every_page().len()),
            lines: output.map_or(0, |served| served.every_page().iter().map(|page| page.lines.len()).sum()),
            cached: output.is_some_and(|served| served.cached),
            code: code_name(code),
            timings: output.filter(|served| !served.cached).map(|served| served.output.timings).unwrap_or_default(),
            total,
            error: result.as_ref().err().map(|error| error.message.as_str()),
        });
        Answered { result, total }
    }

    /// Counts and logs a request refused before it became a call (no task, a body that
    /// does not parse). It is counted as a document request.
    pub(crate) fn refused(
        &self,
        protocol: Protocol,
        request_id: &str,
        bytes: usize,
        error: &ApiError,
        total: Duration,
    ) {
        self.metrics.request_started();
        self.metrics.request_finished(protocol, OcrTask::Document, error.failure.code(), total);
        log_access(&AccessRecord {
            protocol: protocol.as_str(),
            request_id,
            task: "unspecified",
            image_bytes: bytes,
            code: code_name(error.failure.code()),
            timings: PhaseTimings::default(),
            total,
            error: Some(&error.message),
            ..AccessRecord::default()
        });
    }

    async fn serve(&self, call: &OcrCall, sha256: &[u8; 32], progress: Option<&Progress>) -> Result<Served, ApiError> {
        let options = call.options;
        self.check_call(&call.document, call.task, &options)?;
        if let Phase::Starting { .. } | Phase::Failed { .. } = self.serving.phase() {
            return Err(ApiError::new(
                Failure::Unavailable,
                format!("the model is not ready ({})", self.serving.phase().describe()),
            ));
        }
        if is_pdf(&call.document) {
            let deadline = call.deadline.into();
            return tokio::time::timeout_at(deadline, self.serve_pdf(call, sha256, progress))
                .await
                .unwrap_or_else(|_| Err(deadline_passed()));
        }
        let max_document_pages = self.pdf.settings().limits.max_document_pages;
        match document_pages(&call.document, max_document_pages).map_err(pages_error)? {
            DocumentPages::Single => {
                options.range.select(1, self.limits.max_pages).map_err(|error| ApiError::from(&error))?;
                if let Some(progress) = progress {
                    progress.planned(1, 1).await;
                }
                let image = PageImage::Encoded(call.document.clone());
                let (output, cached) = self.serve_image(call, image, sha256).await?;
                if let Some(progress) = progress {
                    progress.page(&ServedPage { number: 1, output: output.clone(), cached }).await;
                }
                Ok(Served::image(output, cached))
            }
            DocumentPages::Tiff(offsets) if call.task == OcrTask::Document => {
                self.serve_tiff(call, &offsets, progress).await
            }
            DocumentPages::Tiff(offsets) => Err(ApiError::invalid_argument(format!(
                "a LINE request reads one image; this TIFF has {} pages: send it as a DOCUMENT, or one page",
                offsets.len()
            ))),
        }
    }

    /// What can be checked of a call without reading the document (see [`CallChecker`]).
    pub(crate) fn check_call(&self, document: &[u8], task: OcrTask, options: &CallOptions) -> Result<(), ApiError> {
        self.checker.check(document, task, options)
    }

    pub(crate) fn checker(&self) -> &CallChecker {
        &self.checker
    }

    /// The selected pages of a multi-page TIFF, each as an image of its own.
    async fn serve_tiff(
        &self,
        call: &OcrCall,
        offsets: &[u32],
        progress: Option<&Progress>,
    ) -> Result<Served, ApiError> {
        let selected =
            call.options.range.select(offsets.len(), self.limits.max_pages).map_err(|error| ApiError::from(&error))?;
        let pages_to_read = selected.clone().count();
        let document = call.document.clone();
        // Lazily: each page is a copy of the file, made only when its turn comes.
        let work = futures::stream::iter(selected).map(move |index| {
            let page: Arc<[u8]> = Arc::from(tiff_page_bytes(&document, offsets[index]));
            let sha256 = image_sha256(&page);
            Ok(PageWork::Image { number: index + 1, image: PageImage::Encoded(page), sha256 })
        });
        self.serve_document(call, (offsets.len(), pages_to_read), work.boxed(), progress).await
    }

    /// The selected pages of a PDF as its renderer sends them: pixels through the
    /// engine, or a page's own text when asked for and present.
    async fn serve_pdf(
        &self,
        call: &OcrCall,
        sha256: &[u8; 32],
        progress: Option<&Progress>,
    ) -> Result<Served, ApiError> {
        let options = call.options;
        let dpi = self.checker.pdf_dpi(options.pdf_dpi)?;
        let job = RenderJob { dpi, range: options.range, text_layer: options.pdf_text_layer };
        let metrics = self.metrics.clone();
        let render_failed = move |error: RenderError| {
            metrics.record_render_failure(&error);
            ApiError::from(&error)
        };
        let rendering = self.pdf.start(call.document.clone(), job).await.map_err(&render_failed)?;
        let counts = (rendering.page_count, rendering.pages.len());
        let document_sha = *sha256;
        // The pages until the first failure: a renderer that died says so once, and is not
        // asked again.
        let pages = futures::stream::unfold(Some(rendering), |rendering| async move {
            let mut rendering = rendering?;
            let page = rendering.next_page().await?;
            let next = page.is_ok().then_some(rendering);
            Some((page, next))
        })
        .map(move |rendered| {
            let rendered = rendered.map_err(&render_failed)?;
            let number = rendered.page.number();
            Ok(match rendered.content {
                PageContent::Pixels(pixels) => PageWork::Image {
                    number,
                    image: PageImage::Pixels(Arc::new(pixels)),
                    sha256: pdf_page_key(&document_sha, number, dpi),
                },
                PageContent::TextLayer(lines) => {
                    PageWork::Answered { number, output: text_layer_output(&lines, rendered.page) }
                }
            })
        })
        .boxed();
        self.serve_document(call, counts, pages, progress).await
    }

    /// Pages through the engine (`page_count` in the document, `pages_to_read` of them
    /// coming), at most `call.pages_in_flight` at a time, answered in page order; the first page that fails fails the call (a streaming caller keeps the
    /// pages it was sent before).
    async fn serve_document(
        &self,
        call: &OcrCall,
        (page_count, pages_to_read): (usize, usize),
        work: BoxStream<'_, Result<PageWork, ApiError>>,
        progress: Option<&Progress>,
    ) -> Result<Served, ApiError> {
        if let Some(progress) = progress {
            progress.planned(page_number(page_count), page_number(pages_to_read)).await;
        }
        let mut pages = Vec::new();
        let mut served = work.map(|work| self.serve_work(call, work, page_count)).buffered(call.pages_in_flight.max(1));
        while let Some(page) = served.next().await {
            let page = page?;
            if let Some(progress) = progress {
                progress.page(&page).await;
            }
            pages.push(page);
        }
        let Some(first) = pages.first() else {
            return Err(ApiError::new(Failure::Internal, "the document yielded no page".to_owned()));
        };
        Ok(Served {
            output: first.output.clone(),
            cached: pages.iter().all(|page| page.cached),
            document_page_count: u32::try_from(page_count).unwrap_or(u32::MAX),
            pages,
        })
    }

    /// One page of a document, its errors prefixed with the page.
    fn serve_work<'a>(
        &'a self,
        call: &'a OcrCall,
        work: Result<PageWork, ApiError>,
        page_count: usize,
    ) -> BoxFuture<'a, Result<ServedPage, ApiError>> {
        async move {
            match work? {
                PageWork::Answered { number, output } => {
                    Ok(ServedPage { number: page_number(number), output, cached: false })
                }
                PageWork::Image { number, image, sha256 } => {
                    let (output, cached) = self.serve_image(call, image, &sha256).await.map_err(|error| ApiError {
                        message: format!("page {number} of {page_count}: {}", error.message),
                        ..error
                    })?;
                    Ok(ServedPage { number: page_number(number), output, cached })
                }
            }
        }
        .boxed()
    }

    /// One image through the cache and the engine; `true` when it came from the cache.
    async fn serve_image(
        &self,
        call: &OcrCall,
        image: PageImage,
        sha256: &[u8; 32],
    ) -> Result<(OcrOutput, bool), ApiError> {
        let options = call.options;
        let key = self.cache_key(call, sha256);
        if !options.bypass_cache
            && let Some(output) = self.caches.lookup(&key).await
        {
            return Ok((output, true));
        }
        let ocr_options =
            OcrOptions { min_confidence: options.min_confidence, skip_orientation: options.skip_orientation };
        let work = self.engine.recognize(image, call.task, ocr_options, call.deadline);
        match tokio::time::timeout_at(call.deadline.into(), work).await {
            Ok(Ok(output)) => {
                self.caches.store(key, &output);
                Ok((output, false))
            }
            Ok(Err(error)) => Err(ApiError::from(&error)),
            Err(_) => Err(deadline_passed()),
        }
    }

    /// Binds the bytes, every option that changes the output, and what computes it.
    fn cache_key(&self, call: &OcrCall, sha256: &[u8; 32]) -> CacheKey {
        let options = call.options;
        let shape = format!("{}|{}|{}", call.task.as_str(), options.min_confidence, options.skip_orientation);
        self.caches.key(sha256, &shape)
    }
}

fn deadline_passed() -> ApiError {
    ApiError::new(
        Failure::DeadlineExceeded,
        "the request did not finish before its deadline (the client's timeout or --request-timeout)",
    )
}

fn page_number(number: usize) -> u32 {
    u32::try_from(number).unwrap_or(u32::MAX)
}

/// A page of a document on its way to the engine.
enum PageWork {
    /// Pixels or bytes to read; `sha256` keys its cache entry.
    Image { number: usize, image: PageImage, sha256: [u8; 32] },
    /// Already answered (a PDF page's text layer).
    Answered { number: usize, output: OcrOutput },
}

/// The cache key of a rendered PDF page: the document, the page and the resolution
/// (hashing the rendered pixels would cost more than looking them up saves).
fn pdf_page_key(document_sha256: &[u8; 32], number: usize, dpi: u32) -> [u8; 32] {
    let mut key = Vec::with_capacity(48);
    key.extend_from_slice(document_sha256);
    key.extend_from_slice(b"|pdf-page|");
    key.extend_from_slice(&(number as u64).to_le_bytes());
    key.extend_from_slice(&dpi.to_le_bytes());
    image_sha256(&key)
}

/// A page answered from its text layer, in the shape of an OCR result: each line's box
/// as a quad, confidence 1 (the text is what the page says it is).
fn text_layer_output(lines: &[TextLayerLine], page: PlannedPage) -> OcrOutput {
    let quad = |[left, top, right, bottom]: [f32; 4]| [(left, top), (right, top), (right, bottom), (left, bottom)];
    OcrOutput {
        lines: lines
            .iter()
            .map(|line| OcrLine {
                text: line.text.clone(),
                confidence: 1.0,
                quad: quad(line.bbox),
                rotated_180: false,
                words: line
                    .words
                    .iter()
                    .map(|word| Word { text: word.text.clone(), confidence: 1.0, quad: quad(word.bbox) })
                    .collect(),
            })
            .collect(),
        width: page.width,
        height: page.height,
        rotation: PageRotation::Upright,
        timings: PhaseTimings::default(),
        source: TextSource::PdfTextLayer,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
