//! [`OcrApi`]: one call end to end, whichever API it came in on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube_ocr_proto::contract::code_name;
use kube_ocr_proto::v1::ModelRef;
use kube_ocr_vision::image::{DocumentPages, PagesError, document_pages, tiff_page_bytes};
use tonic::Code;

use super::call::{Answered, OcrCall, Protocol, Served};
use super::failure::{ApiError, Failure};
use crate::serve::cache::{CacheKey, ResultCache, image_sha256};
use crate::serve::engine::{Engine, OcrOptions, OcrOutput, OcrTask, PhaseTimings};
use crate::serve::serving_state::{Phase, ServingState};
use crate::serve::telemetry::access_log::{AccessRecord, log_access};
use crate::serve::telemetry::metrics::OcrMetrics;

/// Pages of one multi-page document that go through the engine at a time: enough to
/// fill the detector's batches, few enough that one long document does not hold every
/// queue slot.
const PAGES_IN_FLIGHT: usize = 4;

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
    let message = match error {
        PagesError::TooManyPages { .. } => format!("{error} (--max-pages)"),
        PagesError::BrokenChain { .. } => error.to_string(),
    };
    ApiError::new(failure, message)
}

/// The engine with everything a served call needs around it. Shared by the gRPC and HTTP
/// APIs (not to be confused with the `OcrService` custom resource).
#[derive(Debug)]
pub(crate) struct OcrApi {
    engine: Arc<Engine>,
    cache: Arc<ResultCache<OcrOutput>>,
    metrics: Arc<OcrMetrics>,
    serving: ServingState,
    limits: ApiLimits,
    model: ModelRef,
}

impl OcrApi {
    pub(crate) fn new(
        engine: Arc<Engine>,
        cache: Arc<ResultCache<OcrOutput>>,
        metrics: Arc<OcrMetrics>,
        serving: ServingState,
        limits: ApiLimits,
    ) -> Self {
        let manifest = &engine.bundle().manifest;
        let model = ModelRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            variant: manifest.variant.clone(),
        };
        Self { engine, cache, metrics, serving, limits, model }
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

    /// Runs `call`, counts it and logs it.
    pub(crate) async fn call(&self, call: &OcrCall, received: Instant) -> Answered {
        self.metrics.request_started();
        let sha256 = image_sha256(&call.document);
        let result = self.serve(call, &sha256).await;
        let total = received.elapsed();
        let code = result.as_ref().map_or_else(|error| error.failure.code(), |_| Code::Ok);
        self.metrics.request_finished(call.protocol, call.task, code, total);
        if let Ok(served) = &result {
            for page in served.every_page() {
                self.metrics.record_output(call.task, page.lines.len());
                if !served.cached {
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

    async fn serve(&self, call: &OcrCall, sha256: &[u8; 32]) -> Result<Served, ApiError> {
        let options = call.options;
        if !(0.0..=1.0).contains(&options.min_confidence) {
            return Err(ApiError::invalid_argument(format!(
                "min_confidence must be between 0 and 1, got {}",
                options.min_confidence
            )));
        }
        if call.document.len() > self.limits.max_image_bytes {
            return Err(ApiError::new(
                Failure::TooLarge,
                format!(
                    "the image is {} bytes; this server accepts at most {} (--max-image-bytes)",
                    call.document.len(),
                    self.limits.max_image_bytes
                ),
            ));
        }
        if let Phase::Starting { .. } | Phase::Failed { .. } = self.serving.phase() {
            return Err(ApiError::new(
                Failure::Unavailable,
                format!("the model is not ready ({})", self.serving.phase().describe()),
            ));
        }
        match document_pages(&call.document, self.limits.max_pages).map_err(pages_error)? {
            DocumentPages::Single => {
                let (output, cached) = self.serve_image(call, call.document.clone(), sha256).await?;
                Ok(Served { output, cached, pages: Vec::new() })
            }
            DocumentPages::Tiff(offsets) if call.task == OcrTask::Document => self.serve_pages(call, &offsets).await,
            DocumentPages::Tiff(offsets) => Err(ApiError::invalid_argument(format!(
                "a LINE request reads one image; this TIFF has {} pages: send it as a DOCUMENT, or one page",
                offsets.len()
            ))),
        }
    }

    /// Every page of a multi-page TIFF, each as an image of its own (its own admission,
    /// cache entry and batches shared with other requests), at most
    /// [`PAGES_IN_FLIGHT`] at a time. The first page that fails fails the call.
    async fn serve_pages(&self, call: &OcrCall, offsets: &[u32]) -> Result<Served, ApiError> {
        // Named futures made up front: a closure building them trips the compiler's
        // higher-ranked lifetime inference once the stream is awaited in a handler.
        let pending: Vec<_> = (0..offsets.len()).map(|index| self.serve_page(call, offsets, index)).collect();
        let results: Vec<Result<(OcrOutput, bool), ApiError>> =
            futures::stream::iter(pending).buffered(PAGES_IN_FLIGHT).collect().await;
        let pages = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        let cached = pages.iter().all(|(_, cached)| *cached);
        let pages: Vec<OcrOutput> = pages.into_iter().map(|(output, _)| output).collect();
        Ok(Served { output: pages[0].clone(), cached, pages })
    }

    /// Page `index` of a multi-page TIFF, its errors prefixed with the page.
    async fn serve_page(&self, call: &OcrCall, offsets: &[u32], index: usize) -> Result<(OcrOutput, bool), ApiError> {
        let page: Arc<[u8]> = Arc::from(tiff_page_bytes(&call.document, offsets[index]));
        let sha256 = image_sha256(&page);
        self.serve_image(call, page, &sha256).await.map_err(|error| ApiError {
            message: format!("page {} of {}: {}", index + 1, offsets.len(), error.message),
            ..error
        })
    }

    /// One image through the cache and the engine; `true` when it came from the cache.
    async fn serve_image(
        &self,
        call: &OcrCall,
        image: Arc<[u8]>,
        sha256: &[u8; 32],
    ) -> Result<(OcrOutput, bool), ApiError> {
        let options = call.options;
        let key = self.cache_key(call, sha256);
        if self.cache.is_enabled() && !options.bypass_cache {
            let hit = self.cache.get(&key);
            self.metrics.record_cache_lookup(hit.is_some());
            if let Some(output) = hit {
                return Ok((output, true));
            }
        }
        let ocr_options =
            OcrOptions { min_confidence: options.min_confidence, skip_orientation: options.skip_orientation };
        let work = self.engine.recognize(image, call.task, ocr_options, call.deadline);
        match tokio::time::timeout_at(call.deadline.into(), work).await {
            Ok(Ok(output)) => {
                if self.cache.is_enabled() {
                    self.cache.insert(key, output.clone());
                }
                Ok((output, false))
            }
            Ok(Err(error)) => Err(ApiError::from(&error)),
            Err(_) => Err(ApiError::new(
                Failure::DeadlineExceeded,
                "the request did not finish before its deadline (the client's timeout or --request-timeout)",
            )),
        }
    }

    /// Binds the bytes, every option that changes the output, and the model.
    fn cache_key(&self, call: &OcrCall, sha256: &[u8; 32]) -> CacheKey {
        let options = call.options;
        CacheKey::new(
            sha256,
            &format!(
                "{}|{}|{}|{}|{}|{}",
                call.task.as_str(),
                options.min_confidence,
                options.skip_orientation,
                self.model.name,
                self.model.version,
                self.model.variant
            ),
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
