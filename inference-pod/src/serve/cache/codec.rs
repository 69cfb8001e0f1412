//! The shared cache's stored form of a result. It outlives any one pod version (a
//! rolling update reads what the old pods wrote), so it is a format of its own, versioned,
//! not the engine's types serialised: a change here bumps [`FORMAT_VERSION`], which is part
//! of every key, so old and new entries never meet.

use std::time::Duration;

use kube_ocr_vision::layout::PageRotation;
use kube_ocr_vision::postprocess::Word;
use serde::{Deserialize, Serialize};

use crate::serve::engine::{OcrLine, OcrOutput, PhaseTimings, TextSource};

/// Part of every shared cache key.
pub(crate) const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("the stored result does not decode as format {FORMAT_VERSION}: {0}")]
pub(crate) struct DecodeError(#[from] serde_json::Error);

#[derive(Serialize, Deserialize)]
struct StoredPage {
    width: u32,
    height: u32,
    /// Quarter turns clockwise of the page as sent (0 to 3).
    rotation: u8,
    text_layer: bool,
    /// The original computation's phases, in microseconds: queue, preprocess, inference,
    /// postprocess, model cost.
    timings_us: [u64; 5],
    lines: Vec<StoredLine>,
}

#[derive(Serialize, Deserialize)]
struct StoredLine {
    text: String,
    confidence: f32,
    quad: [(f32, f32); 4],
    rotated_180: bool,
    words: Vec<StoredWord>,
}

#[derive(Serialize, Deserialize)]
struct StoredWord {
    text: String,
    confidence: f32,
    quad: [(f32, f32); 4],
}

pub(crate) fn encode(output: &OcrOutput) -> Vec<u8> {
    let timings = output.timings;
    let micros = |duration: Duration| u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    let stored = StoredPage {
        width: output.width,
        height: output.height,
        rotation: match output.rotation {
            PageRotation::Upright => 0,
            PageRotation::Quarter => 1,
            PageRotation::Half => 2,
            PageRotation::ThreeQuarters => 3,
        },
        text_layer: output.source == TextSource::PdfTextLayer,
        timings_us: [
            micros(timings.queue),
            micros(timings.preprocess),
            micros(timings.inference),
            micros(timings.postprocess),
            micros(timings.model_cost),
        ],
        lines: output
            .lines
            .iter()
            .map(|line| StoredLine {
                text: line.text.clone(),
                confidence: line.confidence,
                quad: line.quad,
                rotated_180: line.rotated_180,
                words: line
                    .words
                    .iter()
                    .map(|word| StoredWord { text: word.text.clone(), confidence: word.confidence, quad: word.quad })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_vec(&stored).expect("a stored page has only strings, numbers and sequences")
}

pub(crate) fn decode(bytes: &[u8]) -> Result<OcrOutput, DecodeError> {
    let stored: StoredPage = serde_json::from_slice(bytes)?;
    let rotation = match stored.rotation {
        0 => PageRotation::Upright,
        1 => PageRotation::Quarter,
        2 => PageRotation::Half,
        3 => PageRotation::ThreeQuarters,
        other => {
            return Err(DecodeError(serde::de::Error::custom(format!("rotation {other} is not 0 to 3 quarter turns"))));
        }
    };
    let [queue, preprocess, inference, postprocess, model_cost] = stored.timings_us.map(Duration::from_micros);
    Ok(OcrOutput {
        lines: stored
            .lines
            .into_iter()
            .map(|line| OcrLine {
                text: line.text,
                confidence: line.confidence,
                quad: line.quad,
                rotated_180: line.rotated_180,
                words: line
                    .words
                    .into_iter()
                    .map(|word| Word { text: word.text, confidence: word.confidence, quad: word.quad })
                    .collect(),
            })
            .collect(),
        width: stored.width,
        height: stored.height,
        rotation,
        timings: PhaseTimings { queue, preprocess, inference, postprocess, model_cost },
        source: if stored.text_layer { TextSource::PdfTextLayer } else { TextSource::Ocr },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(rotation: PageRotation, source: TextSource) -> OcrOutput {
        let quad = [(1.5, 2.0), (40.0, 2.0), (40.0, 12.25), (1.5, 12.25)];
        OcrOutput {
            lines: vec![OcrLine {
                text: "Grüße 数字 42".into(),
                confidence: 0.987_654_3,
                quad,
                rotated_180: true,
                words: vec![
                    Word { text: "Grüße".into(), confidence: 0.99, quad },
                    Word { text: "数字".into(), confidence: 0.5, quad },
                ],
            }],
            width: 640,
            height: 480,
            rotation,
            timings: PhaseTimings {
                queue: Duration::from_micros(1),
                preprocess: Duration::from_millis(2),
                inference: Duration::from_millis(30),
                postprocess: Duration::from_micros(4_500),
                model_cost: Duration::from_millis(7),
            },
            source,
        }
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        for rotation in [PageRotation::Upright, PageRotation::Quarter, PageRotation::Half, PageRotation::ThreeQuarters]
        {
            for source in [TextSource::Ocr, TextSource::PdfTextLayer] {
                let original = page(rotation, source);
                assert_eq!(decode(&encode(&original)).unwrap(), original);
            }
        }
        let empty = OcrOutput { lines: Vec::new(), ..page(PageRotation::Upright, TextSource::Ocr) };
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn foreign_or_damaged_values_are_errors_not_results() {
        let encoded = encode(&page(PageRotation::Half, TextSource::Ocr));
        for bad in [&b""[..], b"not json", &encoded[..encoded.len() / 2], br#"{"width":1}"#] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut turned: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
        turned["rotation"] = 7.into();
        let error = decode(&serde_json::to_vec(&turned).unwrap()).unwrap_err();
        assert!(error.to_string().contains("rotation 7"), "{error}");
    }
}
