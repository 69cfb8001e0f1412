//! An engine result as the `kube_ocr.v1` response message.

use std::time::Duration;

use kube_ocr_proto::v1::{ModelRef, Point, RecognizeResponse, TextLine, Timings, Word};
use kube_ocr_vision::image::Quad;

use crate::serve::api::Served;

fn points(quad: &Quad) -> Vec<Point> {
    quad.iter().map(|&(x, y)| Point { x, y }).collect()
}

/// The response to a served call; `with_words` adds each line's words.
pub(super) fn recognize_response(
    request_id: String,
    model: ModelRef,
    served: Served,
    with_words: bool,
    total: Duration,
) -> RecognizeResponse {
    let Served { output, cached } = served;
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let text = output.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
    RecognizeResponse {
        request_id,
        lines: output
            .lines
            .into_iter()
            .map(|line| TextLine {
                r#box: points(&line.quad),
                words: if with_words {
                    line.words
                        .into_iter()
                        .map(|word| Word { r#box: points(&word.quad), text: word.text, confidence: word.confidence })
                        .collect()
                } else {
                    Vec::new()
                },
                text: line.text,
                confidence: line.confidence,
                rotated_180: line.rotated_180,
            })
            .collect(),
        text,
        model: Some(model),
        page_rotation: output.rotation.degrees(),
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
