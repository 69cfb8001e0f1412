//! An engine result as the `kube_ocr.v1` response message.

use std::time::Duration;

use kube_ocr_proto::v1::{ModelRef, Point, RecognizeResponse, TextLine, Timings};

use crate::serve::engine::OcrOutput;

pub(super) fn recognize_response(
    request_id: String,
    model: ModelRef,
    output: OcrOutput,
    cached: bool,
    total: Duration,
) -> RecognizeResponse {
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let text = output.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
    RecognizeResponse {
        request_id,
        lines: output
            .lines
            .into_iter()
            .map(|line| TextLine {
                text: line.text,
                confidence: line.confidence,
                r#box: line.quad.iter().map(|&(x, y)| Point { x, y }).collect(),
                rotated_180: line.rotated_180,
            })
            .collect(),
        text,
        model: Some(model),
        image_width: output.width,
        image_height: output.height,
        cached,
        timings: Some(Timings {
            queue_us: micros(output.timings.queue),
            preprocess_us: micros(output.timings.preprocess),
            inference_us: micros(output.timings.inference),
            postprocess_us: micros(output.timings.postprocess),
            total_us: micros(total),
        }),
    }
}
