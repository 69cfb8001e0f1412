//! Greedy CTC decoding of recogniser output.

/// Text read from one line, with the mean probability of the characters kept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedLine {
    pub text: String,
    /// Mean of the winning class probability over the emitted characters; 0 when none.
    pub confidence: f32,
    /// Each emitted character and the time steps it was read over (for word boxes).
    pub chars: Vec<DecodedChar>,
    /// Time steps of the recogniser's output for this line (its input width over the
    /// model's horizontal stride).
    pub steps: u32,
    /// The batch's padded input width and this line's scaled content width, in input
    /// pixels: what maps steps back onto the crop. Set by whoever ran the model (0 from
    /// [`greedy_decode`] alone).
    pub padded_width: u32,
    pub content_width: u32,
}

impl DecodedLine {
    /// How the line went through the recogniser, for [`crate::postprocess::word_boxes`].
    pub fn input(&self) -> crate::postprocess::LineInput {
        crate::postprocess::LineInput {
            steps: self.steps,
            padded_width: self.padded_width,
            content_width: self.content_width,
        }
    }
}

/// One emitted character: the class's text and the run of time steps that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedChar {
    pub text: String,
    pub confidence: f32,
    /// First and last time step of the run (inclusive).
    pub first_step: u32,
    pub last_step: u32,
}

/// Decodes `steps × classes` probabilities (row-major) by taking the best class per time
/// step, merging repeats and dropping blanks.
pub fn greedy_decode(probabilities: &[f32], classes: &[String], blank_index: usize) -> DecodedLine {
    let num_classes = classes.len();
    let mut text = String::new();
    let mut chars: Vec<DecodedChar> = Vec::new();
    let mut previous = None;
    let mut steps = 0u32;
    for (index, step) in probabilities.chunks_exact(num_classes).enumerate() {
        let index = index as u32;
        steps = index + 1;
        let (best, probability) = argmax(step);
        if best != blank_index && previous != Some(best) {
            text.push_str(&classes[best]);
            chars.push(DecodedChar {
                text: classes[best].clone(),
                confidence: probability,
                first_step: index,
                last_step: index,
            });
        } else if best != blank_index
            && let Some(last) = chars.last_mut()
        {
            // The run of a character goes on (a repeat); a blank ends it.
            last.last_step = index;
        }
        previous = Some(best);
    }
    let confidence =
        if chars.is_empty() { 0.0 } else { chars.iter().map(|c| c.confidence).sum::<f32>() / chars.len() as f32 };
    DecodedLine { text, confidence, chars, steps, padded_width: 0, content_width: 0 }
}

fn argmax(values: &[f32]) -> (usize, f32) {
    values
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        ["", "a", "b", " "].iter().map(|s| s.to_string()).collect()
    }

    fn one_hot(sequence: &[(usize, f32)]) -> Vec<f32> {
        sequence
            .iter()
            .flat_map(|&(class, p)| (0..4).map(move |c| if c == class { p } else { (1.0 - p) / 3.0 }))
            .collect()
    }

    #[test]
    fn repeats_merge_and_blanks_separate() {
        // a a _ a b b _ _ " " b  →  "aab b"
        let probs = one_hot(&[
            (1, 0.9),
            (1, 0.9),
            (0, 0.9),
            (1, 0.8),
            (2, 0.7),
            (2, 0.7),
            (0, 0.9),
            (0, 0.9),
            (3, 0.6),
            (2, 0.5),
        ]);
        let line = greedy_decode(&probs, &classes(), 0);
        assert_eq!(line.text, "aab b");
        // Emitted: a(0.9) a(0.8) b(0.7) space(0.6) b(0.5).
        assert!((line.confidence - 0.7).abs() < 1e-6, "{}", line.confidence);
        assert_eq!(line.steps, 10);
        let runs: Vec<(&str, u32, u32)> =
            line.chars.iter().map(|c| (c.text.as_str(), c.first_step, c.last_step)).collect();
        assert_eq!(runs, [("a", 0, 1), ("a", 3, 3), ("b", 4, 5), (" ", 8, 8), ("b", 9, 9)]);
    }

    #[test]
    fn all_blank_is_empty_with_zero_confidence() {
        let probs = one_hot(&[(0, 0.99), (0, 0.99)]);
        assert_eq!(greedy_decode(&probs, &classes(), 0), DecodedLine { steps: 2, ..DecodedLine::default() });
    }

    #[test]
    fn no_steps_is_empty() {
        assert_eq!(greedy_decode(&[], &classes(), 0).text, "");
    }
}
