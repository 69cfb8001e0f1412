//! One structured line per request on the `access` target: who, what size, where the
//! time went, how it ended. Never the image and never the recognised text: both can be
//! personal data, and the sha256 is enough to find a request's input again.

use std::time::Duration;

use crate::serve::engine::PhaseTimings;

#[derive(Debug, Clone, Default)]
pub(crate) struct AccessRecord<'a> {
    /// `grpc` or `http`.
    pub protocol: &'a str,
    pub request_id: &'a str,
    pub image_sha256: &'a str,
    pub task: &'a str,
    pub image_bytes: usize,
    pub width: u32,
    pub height: u32,
    /// Pages read (1 for an image; 0 when the request failed).
    pub pages: usize,
    pub lines: usize,
    pub cached: bool,
    pub code: &'a str,
    pub timings: PhaseTimings,
    pub total: Duration,
    pub error: Option<&'a str>,
}

pub(crate) fn log_access(record: &AccessRecord<'_>) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    tracing::info!(
        target: "access",
        protocol = record.protocol,
        request_id = record.request_id,
        image_sha256 = record.image_sha256,
        task = record.task,
        image_bytes = record.image_bytes,
        width = record.width,
        height = record.height,
        pages = record.pages,
        lines = record.lines,
        cached = record.cached,
        code = record.code,
        queue_ms = ms(record.timings.queue),
        preprocess_ms = ms(record.timings.preprocess),
        inference_ms = ms(record.timings.inference),
        postprocess_ms = ms(record.timings.postprocess),
        total_ms = ms(record.total),
        error = record.error,
        "request"
    );
}
