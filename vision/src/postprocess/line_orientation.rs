//! Whether a whole LINE image is upside down: the direction classifier on the line's tight
//! crop proposes, the recogniser's reads of both orientations decide.
//!
//! Evidence, on the 80 golden LINE images and the same images turned 180° (the exported
//! TorchScript models): the classifier on the tight crop ([`crate::image::trim_margins`])
//! gives upright lines P(180°) ≤ 0.25 and turned lines ≥ 0.72, so a proposal at
//! P(180°) > 0.5 catches every turned line. The reads are compared by the sum of the
//! emitted characters' probabilities (mean confidence × characters read): every upright
//! line beats its own half turn by at least 19 %. Mean confidence alone is not enough: a
//! turned line can read as one confident character ("s" at 0.81 against the upright read's
//! 0.73), and the margin is as thin as 8 %. A proposal the recogniser does not confirm
//! changes nothing, so upright lines pay one classifier pass and a turned line one extra
//! recogniser pass of both orientations.

use crate::postprocess::DecodedLine;

/// P(180°) on the tight crop above which the line is read both ways round.
pub const LINE_TURN_PROPOSAL: f32 = 0.5;

/// Whether the half-turned read wins: it accounts for strictly more text with confidence
/// than the read as sent (ties, and NaN confidences, keep the line as sent).
pub fn half_turn_reads_better(as_sent: &DecodedLine, half_turn: &DecodedLine) -> bool {
    read_evidence(half_turn) > read_evidence(as_sent)
}

/// The expected number of correctly read characters: the sum of the emitted characters'
/// probabilities. NaN counts as nothing.
fn read_evidence(read: &DecodedLine) -> f32 {
    let evidence = read.confidence * read.text.chars().count() as f32;
    if evidence.is_nan() { 0.0 } else { evidence }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, confidence: f32) -> DecodedLine {
        DecodedLine { text: text.into(), confidence, ..DecodedLine::default() }
    }

    #[test]
    fn more_text_read_with_confidence_wins() {
        let upright = read("Please keep this receipt", 0.73);
        assert!(half_turn_reads_better(&read("s", 0.81), &upright), "one confident character loses");
        assert!(!half_turn_reads_better(&upright, &read("s", 0.81)));
        let upside_down = read("6op <zel ay4 Jano sdwn! xoy umoq y?inb aul", 0.81);
        assert!(!half_turn_reads_better(&read("The quick brown fox jumps over the lazy dog", 0.98), &upside_down));
    }

    #[test]
    fn ties_and_nan_keep_the_line_as_sent() {
        assert!(!half_turn_reads_better(&read("ab", 0.8), &read("ab", 0.8)));
        assert!(!half_turn_reads_better(&read("", 0.0), &read("", 0.0)));
        assert!(!half_turn_reads_better(&read("ab", 0.8), &read("abc", f32::NAN)));
        assert!(half_turn_reads_better(&read("ab", f32::NAN), &read("a", 0.1)));
    }
}
