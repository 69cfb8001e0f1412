//! Accuracy metrics: edit distances, CER, WER, exact match, 1-NED, their aggregation
//! and the per-group consistency spread. Pure functions over strings; everything is
//! normalised first (see [`crate::normalize`]).

use std::collections::BTreeMap;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::normalize::{graphemes, normalize, words};

/// How a prediction differs from the truth, as the operations of one minimal
/// Levenshtein alignment. A deletion is a truth unit the prediction lacks, an insertion
/// a unit the prediction adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditCounts {
    /// Units read as something else.
    pub substitutions: u64,
    /// Truth units missing from the prediction.
    pub deletions: u64,
    /// Extra units in the prediction.
    pub insertions: u64,
}

impl EditCounts {
    /// The Levenshtein distance: all operations, each costing one.
    pub fn total(&self) -> u64 {
        self.substitutions + self.deletions + self.insertions
    }
}

impl Add for EditCounts {
    type Output = EditCounts;
    fn add(self, other: EditCounts) -> EditCounts {
        EditCounts {
            substitutions: self.substitutions + other.substitutions,
            deletions: self.deletions + other.deletions,
            insertions: self.insertions + other.insertions,
        }
    }
}

impl AddAssign for EditCounts {
    fn add_assign(&mut self, other: EditCounts) {
        *self = *self + other;
    }
}

/// Levenshtein distance between two token sequences, broken down into operations.
///
/// Two rows of cells that each carry the operation counts of their best path keep
/// memory linear while still giving the breakdown. On ties a match/substitution is
/// preferred, then a deletion, then an insertion, so the breakdown is deterministic.
pub fn edit_counts<T: PartialEq>(truth: &[T], prediction: &[T]) -> EditCounts {
    #[derive(Clone, Copy)]
    struct Cell {
        distance: u64,
        edits: EditCounts,
    }
    let step = |cell: Cell, edit: EditCounts| Cell { distance: cell.distance + edit.total(), edits: cell.edits + edit };
    const SUB: EditCounts = EditCounts { substitutions: 1, deletions: 0, insertions: 0 };
    const DEL: EditCounts = EditCounts { substitutions: 0, deletions: 1, insertions: 0 };
    const INS: EditCounts = EditCounts { substitutions: 0, deletions: 0, insertions: 1 };
    const NONE: EditCounts = EditCounts { substitutions: 0, deletions: 0, insertions: 0 };

    let start = Cell { distance: 0, edits: NONE };
    // Row 0: the empty truth prefix becomes each prediction prefix by insertions.
    let mut previous: Vec<Cell> = Vec::with_capacity(prediction.len() + 1);
    previous.push(start);
    for j in 0..prediction.len() {
        previous.push(step(previous[j], INS));
    }
    let mut current = previous.clone();
    for truth_unit in truth {
        current[0] = step(previous[0], DEL);
        for (j, predicted_unit) in prediction.iter().enumerate() {
            let diagonal = step(previous[j], if truth_unit == predicted_unit { NONE } else { SUB });
            let deletion = step(previous[j + 1], DEL);
            let insertion = step(current[j], INS);
            let mut best = diagonal;
            if deletion.distance < best.distance {
                best = deletion;
            }
            if insertion.distance < best.distance {
                best = insertion;
            }
            current[j + 1] = best;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[prediction.len()].edits
}

/// Edits per truth unit. When the truth is empty there is nothing to divide by: the
/// rate is 0 for an empty prediction and 1.0 for anything else (an engine that
/// hallucinates text on a blank is fully wrong, however much it adds). Not clipped:
/// insertions can push a rate above 1.
pub fn error_rate(edits: u64, truth_units: u64) -> f64 {
    match (truth_units, edits) {
        (0, 0) => 0.0,
        (0, _) => 1.0,
        (n, e) => e as f64 / n as f64,
    }
}

/// Every metric for one (truth, prediction) pair, after normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextScore {
    /// Graphemes in the normalised truth.
    pub truth_chars: u64,
    /// Graphemes in the normalised prediction.
    pub predicted_chars: u64,
    /// Grapheme-level edit operations.
    pub char_edits: EditCounts,
    /// Word tokens in the normalised truth (see [`crate::normalize::words`]).
    pub truth_words: u64,
    /// Word-level edit operations.
    pub word_edits: EditCounts,
    /// Character error rate (see [`error_rate`]).
    pub cer: f64,
    /// Word error rate (see [`error_rate`]).
    pub wer: f64,
    /// 1 − normalised edit distance: 1 − distance / max(len_pred, len_truth) in
    /// graphemes; 1 when both are empty. Always within 0..=1, unlike CER.
    pub ned: f64,
    /// The normalised strings are identical.
    pub exact: bool,
}

/// Scores one prediction against its truth.
pub fn score_text(truth: &str, prediction: &str) -> TextScore {
    let truth = normalize(truth);
    let prediction = normalize(prediction);
    let (truth_graphemes, predicted_graphemes) = (graphemes(&truth), graphemes(&prediction));
    let (truth_words, predicted_words) = (words(&truth), words(&prediction));

    let char_edits = edit_counts(&truth_graphemes, &predicted_graphemes);
    let word_edits = edit_counts(&truth_words, &predicted_words);
    let truth_chars = truth_graphemes.len() as u64;
    let predicted_chars = predicted_graphemes.len() as u64;
    let longest = truth_chars.max(predicted_chars);
    let ned = if longest == 0 { 1.0 } else { 1.0 - char_edits.total() as f64 / longest as f64 };

    TextScore {
        truth_chars,
        predicted_chars,
        char_edits,
        truth_words: truth_words.len() as u64,
        word_edits,
        cer: error_rate(char_edits.total(), truth_chars),
        wer: error_rate(word_edits.total(), truth_words.len() as u64),
        ned,
        exact: truth == prediction,
    }
}

/// Aggregate metrics over a set of scored items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Items aggregated.
    pub items: usize,
    /// Total truth graphemes.
    pub truth_chars: u64,
    /// Total grapheme edits.
    pub char_edits: EditCounts,
    /// Total truth word tokens.
    pub truth_words: u64,
    /// Total word edits.
    pub word_edits: EditCounts,
    /// Micro CER: total grapheme edits / total truth graphemes, so long documents
    /// weigh by their length (empty-truth rule of [`error_rate`] applied to the totals).
    pub cer: f64,
    /// 1 − micro CER, clipped at 0. This is the number rollouts gate on.
    pub accuracy: f64,
    /// Macro CER: mean of the per-item CERs, every item weighing the same.
    pub macro_cer: f64,
    /// Micro WER: total word edits / total truth words.
    pub wer: f64,
    /// Mean per-item 1-NED.
    pub mean_ned: f64,
    /// Items whose normalised prediction equals the truth.
    pub exact_matches: usize,
    /// `exact_matches / items`.
    pub exact_match_rate: f64,
}

impl Summary {
    /// Aggregates item scores. With no items every rate is 0 and accuracy is 1 (no
    /// errors were observed); callers never build breakdowns for empty slices.
    pub fn from_scores<'a>(scores: impl IntoIterator<Item = &'a TextScore>) -> Summary {
        let mut summary = Summary::default();
        let (mut cer_sum, mut ned_sum) = (0.0, 0.0);
        for score in scores {
            summary.items += 1;
            summary.truth_chars += score.truth_chars;
            summary.char_edits += score.char_edits;
            summary.truth_words += score.truth_words;
            summary.word_edits += score.word_edits;
            summary.exact_matches += usize::from(score.exact);
            cer_sum += score.cer;
            ned_sum += score.ned;
        }
        summary.cer = error_rate(summary.char_edits.total(), summary.truth_chars);
        summary.accuracy = (1.0 - summary.cer).max(0.0);
        summary.wer = error_rate(summary.word_edits.total(), summary.truth_words);
        if summary.items > 0 {
            let n = summary.items as f64;
            summary.macro_cer = cer_sum / n;
            summary.mean_ned = ned_sum / n;
            summary.exact_match_rate = summary.exact_matches as f64 / n;
        }
        summary
    }
}

/// How much one content group's CER varies across its variants (clean, blur, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSpread {
    /// The group (shared content).
    pub group: String,
    /// Number of variants scored.
    pub variants: usize,
    /// Variant with the lowest CER.
    pub best_variant: String,
    /// Its CER.
    pub best_cer: f64,
    /// Variant with the highest CER.
    pub worst_variant: String,
    /// Its CER.
    pub worst_cer: f64,
    /// `worst_cer − best_cer`.
    pub spread: f64,
}

/// Robustness across variants: an engine that reads the clean image perfectly but the
/// blurred one badly has a large spread even when its mean CER looks fine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    /// Groups with at least two variants (only those have a spread).
    pub groups: usize,
    /// Mean spread over those groups; 0 when there are none.
    pub mean_spread: f64,
    /// The group with the largest spread (ties: first by name).
    pub worst: Option<GroupSpread>,
    /// Every multi-variant group, largest spread first.
    pub spreads: Vec<GroupSpread>,
}

/// Computes the CER spread per group from `(group, variant, cer)` triples.
pub fn consistency<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str, f64)>) -> Consistency {
    let mut by_group: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for (group, variant, cer) in entries {
        by_group.entry(group).or_default().push((variant, cer));
    }
    let mut spreads: Vec<GroupSpread> = by_group
        .into_iter()
        .filter(|(_, variants)| variants.len() >= 2)
        .map(|(group, variants)| {
            // Ties keep the first variant seen, so output is stable for a given input.
            let best = variants.iter().copied().reduce(|a, b| if b.1 < a.1 { b } else { a }).unwrap_or(("", 0.0));
            let worst = variants.iter().copied().reduce(|a, b| if b.1 > a.1 { b } else { a }).unwrap_or(("", 0.0));
            GroupSpread {
                group: group.to_owned(),
                variants: variants.len(),
                best_variant: best.0.to_owned(),
                best_cer: best.1,
                worst_variant: worst.0.to_owned(),
                worst_cer: worst.1,
                spread: worst.1 - best.1,
            }
        })
        .collect();
    // Stable sort on an already name-ordered list: ties stay alphabetical.
    spreads.sort_by(|a, b| b.spread.total_cmp(&a.spread));
    let groups = spreads.len();
    let mean_spread = if groups == 0 { 0.0 } else { spreads.iter().map(|s| s.spread).sum::<f64>() / groups as f64 };
    Consistency { groups, mean_spread, worst: spreads.first().cloned(), spreads }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn identical_sequences_have_no_edits() {
        assert_eq!(edit_counts(&chars("abc"), &chars("abc")), EditCounts::default());
    }

    #[test]
    fn counts_each_operation_kind() {
        let sub = EditCounts { substitutions: 1, ..Default::default() };
        let del = EditCounts { deletions: 1, ..Default::default() };
        let ins = EditCounts { insertions: 1, ..Default::default() };
        assert_eq!(edit_counts(&chars("cat"), &chars("cut")), sub);
        assert_eq!(edit_counts(&chars("cat"), &chars("ct")), del);
        assert_eq!(edit_counts(&chars("cat"), &chars("cart")), ins);
        // kitten -> sitting: 2 substitutions (k/s, e/i) + 1 insertion (g).
        assert_eq!(
            edit_counts(&chars("kitten"), &chars("sitting")),
            EditCounts { substitutions: 2, deletions: 0, insertions: 1 }
        );
        assert_eq!(edit_counts(&chars(""), &chars("ab")), EditCounts { insertions: 2, ..Default::default() });
        assert_eq!(edit_counts(&chars("ab"), &chars("")), EditCounts { deletions: 2, ..Default::default() });
    }

    #[test]
    fn cer_of_insertions_deletions_substitutions() {
        let s = score_text("hello", "helo");
        assert_eq!(s.char_edits.deletions, 1);
        assert!(close(s.cer, 0.2));
        assert!(close(s.ned, 1.0 - 1.0 / 5.0));
        let s = score_text("hello", "hello!!");
        assert_eq!(s.char_edits.insertions, 2);
        assert!(close(s.cer, 0.4));
        assert!(close(s.ned, 1.0 - 2.0 / 7.0));
        let s = score_text("abc", "xyz");
        assert!(close(s.cer, 1.0));
        // Insertions can take CER past 1; 1-NED stays within 0..=1.
        let s = score_text("ab", "xxxxxx");
        assert!(close(s.cer, 3.0));
        assert!(close(s.ned, 0.0));
    }

    #[test]
    fn cjk_substitution() {
        let s = score_text("你好世界", "你好时界");
        assert_eq!(s.char_edits, EditCounts { substitutions: 1, deletions: 0, insertions: 0 });
        assert!(close(s.cer, 0.25));
        assert!(close(s.wer, 0.25));
        assert!(close(s.ned, 0.75));
        assert!(!s.exact);
    }

    #[test]
    fn graphemes_not_code_points_are_the_unit() {
        // ZWJ family emoji (5 code points) misread as one person: one substitution.
        let s = score_text("hi 👨‍👩‍👧", "hi 👨");
        assert_eq!(s.truth_chars, 4);
        assert_eq!(s.char_edits.total(), 1);
        assert!(close(s.cer, 0.25));
        // A combining mark NFKC cannot precompose (x + U+0301): dropping it is one edit.
        let s = score_text("x\u{0301}yz", "xyz");
        assert_eq!(s.truth_chars, 3);
        assert!(close(s.cer, 1.0 / 3.0));
        // Decomposed and precomposed é are the same text.
        assert!(score_text("cafe\u{0301}", "café").exact);
    }

    #[test]
    fn full_width_and_half_width_compare_equal() {
        let s = score_text("Total: $1,234.50", "Ｔｏｔａｌ：　＄１，２３４．５０");
        assert!(s.exact);
        assert!(close(s.cer, 0.0));
    }

    #[test]
    fn whitespace_runs_and_line_breaks_are_not_errors() {
        let s = score_text("ACME Ltd.\nInvoice 42", "  ACME   Ltd. Invoice\t42 ");
        assert!(s.exact);
        assert_eq!(s.truth_words, 4);
        // But a missing space between words is one edit.
        let s = score_text("a b", "ab");
        assert_eq!(s.char_edits.total(), 1);
    }

    #[test]
    fn empty_truth_and_prediction() {
        let both = score_text("", "  ");
        assert!(both.exact && close(both.cer, 0.0) && close(both.wer, 0.0) && close(both.ned, 1.0));
        let hallucinated = score_text("", "abc");
        assert!(close(hallucinated.cer, 1.0));
        assert!(close(hallucinated.wer, 1.0));
        assert!(close(hallucinated.ned, 0.0));
        assert_eq!(hallucinated.char_edits.insertions, 3);
        let nothing_read = score_text("abcd", "");
        assert!(close(nothing_read.cer, 1.0));
        assert!(close(nothing_read.ned, 0.0));
        assert_eq!(nothing_read.char_edits.deletions, 4);
    }

    #[test]
    fn wer_on_mixed_cjk_and_english() {
        // Tokens: 备 注 Notes: VIP 会 员 (6). Prediction drops 会 and misreads "VIP".
        let s = score_text("备注 Notes: VIP会员", "备注 Notes: V1P员");
        assert_eq!(s.truth_words, 6);
        assert_eq!(s.word_edits, EditCounts { substitutions: 1, deletions: 1, insertions: 0 });
        assert!(close(s.wer, 2.0 / 6.0));
        let s = score_text("The quick brown fox", "The quick brown box jumps");
        assert_eq!(s.word_edits, EditCounts { substitutions: 1, deletions: 0, insertions: 1 });
        assert!(close(s.wer, 0.5));
    }

    #[test]
    fn micro_and_macro_aggregation_differ_by_weighting() {
        // A 10-char item with 1 edit and a 2-char item with 2 edits.
        let long = score_text("abcdefghij", "abcdefghiX");
        let short = score_text("ab", "");
        let summary = Summary::from_scores([&long, &short]);
        assert_eq!(summary.items, 2);
        assert_eq!(summary.truth_chars, 12);
        assert_eq!(summary.char_edits.total(), 3);
        assert!(close(summary.cer, 3.0 / 12.0));
        assert!(close(summary.accuracy, 0.75));
        assert!(close(summary.macro_cer, (0.1 + 1.0) / 2.0));
        assert!(close(summary.mean_ned, (0.9 + 0.0) / 2.0));
        assert!(close(summary.exact_match_rate, 0.0));
        assert!(close(summary.wer, 2.0 / 2.0));
    }

    #[test]
    fn accuracy_is_clipped_at_zero() {
        let summary = Summary::from_scores([&score_text("ab", "xxxxxxxx")]);
        assert!(close(summary.cer, 4.0));
        assert!(close(summary.accuracy, 0.0));
    }

    #[test]
    fn empty_summary_is_neutral() {
        let summary = Summary::from_scores([]);
        assert_eq!(summary.items, 0);
        assert!(close(summary.cer, 0.0) && close(summary.accuracy, 1.0) && close(summary.macro_cer, 0.0));
    }

    #[test]
    fn consistency_spread_per_group() {
        let c = consistency([
            ("g1", "clean", 0.0),
            ("g1", "blur", 0.3),
            ("g1", "noise", 0.1),
            ("g2", "clean", 0.1),
            ("g2", "jpeg", 0.2),
            ("solo", "clean", 0.9),
        ]);
        assert_eq!(c.groups, 2);
        assert!(close(c.mean_spread, (0.3 + 0.1) / 2.0));
        let worst = c.worst.as_ref().unwrap();
        assert_eq!((worst.group.as_str(), worst.variants), ("g1", 3));
        assert_eq!((worst.best_variant.as_str(), worst.worst_variant.as_str()), ("clean", "blur"));
        assert!(close(worst.spread, 0.3));
        assert_eq!(c.spreads[1].group, "g2");
    }

    #[test]
    fn consistency_without_multi_variant_groups() {
        let c = consistency([("a", "clean", 0.5)]);
        assert_eq!(c.groups, 0);
        assert!(c.worst.is_none());
        assert!(close(c.mean_spread, 0.0));
    }
}
