//! Greedy CTC decoding of recogniser output.

/// Text read from one line, with the mean probability of the characters kept.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedLine {
    pub text: String,
    /// Mean of the winning class probability over the emitted characters; 0 when none.
    pub confidence: f32,
}

/// Decodes `steps × classes` probabilities (row-major) by taking the best class per time
/// step, merging repeats and dropping blanks.
pub fn greedy_decode(probabilities: &[f32], classes: &[String], blank_index: usize) -> DecodedLine {
    let num_classes = classes.len();
    let mut text = String::new();
    let mut confidence_sum = 0.0f32;
    let mut emitted = 0usize;
    let mut previous = None;
    for step in probabilities.chunks_exact(num_classes) {
        let (best, probability) = argmax(step);
        if best != blank_index && previous != Some(best) {
            text.push_str(&classes[best]);
            confidence_sum += probability;
            emitted += 1;
        }
        previous = Some(best);
    }
    let confidence = if emitted == 0 { 0.0 } else { confidence_sum / emitted as f32 };
    DecodedLine { text, confidence }
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
    }

    #[test]
    fn all_blank_is_empty_with_zero_confidence() {
        let probs = one_hot(&[(0, 0.99), (0, 0.99)]);
        assert_eq!(greedy_decode(&probs, &classes(), 0), DecodedLine { text: String::new(), confidence: 0.0 });
    }

    #[test]
    fn no_steps_is_empty() {
        assert_eq!(greedy_decode(&[], &classes(), 0).text, "");
    }
}
