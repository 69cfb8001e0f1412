//! Scoring a golden set against predictions: per-item results and every breakdown.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dataset::{GoldenSet, Task};
use crate::error::GoldenError;
use crate::metrics::{Consistency, Summary, TextScore, consistency, score_text};
use crate::predictions::Predictions;

/// The score of one golden item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// Item id.
    pub id: String,
    /// LINE or DOCUMENT.
    pub task: Task,
    /// Content group.
    pub group: String,
    /// Variant within the group.
    pub variant: String,
    /// The item's tags.
    pub tags: Vec<String>,
    /// Every metric of this item (flattened into the item's JSON: `cer`, `wer`, `ned`,
    /// `exact`, edit counts ...).
    #[serde(flatten)]
    pub score: TextScore,
    /// The expected text as stored (document lines joined with `"\n"`).
    pub truth: String,
    /// The predicted text as received; empty when missing.
    pub prediction: String,
    /// No prediction was given for this item (scored as empty).
    pub missing: bool,
}

/// Everything `ocr-golden` reports; serialised as-is by `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// All items.
    pub overall: Summary,
    /// By task name ("LINE", "DOCUMENT").
    pub by_task: BTreeMap<String, Summary>,
    /// By variant ("clean", "blur", ...).
    pub by_variant: BTreeMap<String, Summary>,
    /// By tag; an item counts under each of its tags.
    pub by_tag: BTreeMap<String, Summary>,
    /// CER spread across the variants of each group.
    pub consistency: Consistency,
    /// Golden ids without a prediction (scored as empty predictions), sorted.
    pub missing: Vec<String>,
    /// Prediction ids that are not in the golden set (not scored), sorted.
    pub unknown: Vec<String>,
    /// Failed recognition requests by gRPC status code name (`eval` only; the items
    /// are scored as empty predictions).
    #[serde(default)]
    pub request_errors: BTreeMap<String, u64>,
    /// Per-item results in golden-set order.
    pub items: Vec<ItemResult>,
}

impl Report {
    /// Fails when some predictions name ids that the golden set lacks.
    ///
    /// Unknown ids are not scored, so they cannot lower accuracy; but they almost always
    /// mean the predictions belong to another set or version, whose score would then be
    /// meaningless. The CLI therefore treats them as an input error unless
    /// `--allow-unknown` is given.
    pub fn ensure_no_unknown(&self) -> Result<(), GoldenError> {
        if self.unknown.is_empty() {
            Ok(())
        } else {
            Err(GoldenError::MatchPredictions { unknown: self.unknown.clone() })
        }
    }

    /// Total failed recognition requests.
    pub fn request_error_count(&self) -> u64 {
        self.request_errors.values().sum()
    }

    /// Up to `n` items with the highest CER (ties: more edits first, then by id),
    /// leaving out items that were read exactly.
    pub fn worst_items(&self, n: usize) -> Vec<&ItemResult> {
        let mut wrong: Vec<&ItemResult> = self.items.iter().filter(|item| !item.score.exact).collect();
        wrong.sort_by(|a, b| {
            b.score
                .cer
                .total_cmp(&a.score.cer)
                .then_with(|| b.score.char_edits.total().cmp(&a.score.char_edits.total()))
                .then_with(|| a.id.cmp(&b.id))
        });
        wrong.truncate(n);
        wrong
    }
}

/// Scores every golden item against its prediction. Missing predictions count as
/// empty; unknown prediction ids are listed in the report, not scored.
pub fn evaluate(set: &GoldenSet, predictions: &Predictions) -> Report {
    let items: Vec<ItemResult> = set
        .items
        .iter()
        .map(|item| {
            let truth = item.truth.text();
            let predicted = predictions.get(&item.id);
            let prediction = predicted.unwrap_or_default().to_owned();
            ItemResult {
                id: item.id.clone(),
                task: item.task,
                group: item.group.clone(),
                variant: item.variant.clone(),
                tags: item.tags.clone(),
                score: score_text(&truth, &prediction),
                truth,
                prediction,
                missing: predicted.is_none(),
            }
        })
        .collect();

    let known: BTreeSet<&str> = set.items.iter().map(|item| item.id.as_str()).collect();
    let unknown = predictions.iter().map(|(id, _)| id).filter(|id| !known.contains(id)).map(str::to_owned).collect();
    let mut missing: Vec<String> = items.iter().filter(|item| item.missing).map(|item| item.id.clone()).collect();
    missing.sort();

    Report {
        overall: summarize(items.iter()),
        by_task: breakdown(&items, |item| vec![item.task.as_str().to_owned()]),
        by_variant: breakdown(&items, |item| vec![item.variant.clone()]),
        by_tag: breakdown(&items, |item| item.tags.clone()),
        consistency: consistency(items.iter().map(|item| (item.group.as_str(), item.variant.as_str(), item.score.cer))),
        missing,
        unknown,
        request_errors: BTreeMap::new(),
        items,
    }
}

fn summarize<'a>(items: impl Iterator<Item = &'a ItemResult>) -> Summary {
    Summary::from_scores(items.map(|item| &item.score))
}

/// Summaries keyed by whatever labels `keys` gives each item.
fn breakdown(items: &[ItemResult], keys: impl Fn(&ItemResult) -> Vec<String>) -> BTreeMap<String, Summary> {
    let mut grouped: BTreeMap<String, Vec<&ItemResult>> = BTreeMap::new();
    for item in items {
        for key in keys(item) {
            grouped.entry(key).or_default().push(item);
        }
    }
    grouped.into_iter().map(|(key, members)| (key, summarize(members.into_iter()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::parse_truth;
    use std::path::Path;

    fn set() -> GoldenSet {
        let truth = [
            r#"{"id": "l1-clean", "file": "a.png", "task": "LINE", "text": "hello", "group": "l1", "variant": "clean", "tags": ["lang:en"]}"#,
            r#"{"id": "l1-blur", "file": "b.png", "task": "LINE", "text": "hello", "group": "l1", "variant": "blur", "tags": ["lang:en"]}"#,
            r#"{"id": "l2-clean", "file": "c.png", "task": "LINE", "text": "你好世界", "group": "l2", "variant": "clean", "tags": ["lang:zh"]}"#,
            r#"{"id": "d1-clean", "file": "d.png", "task": "DOCUMENT", "lines": ["ab", "cd"], "group": "d1", "variant": "clean"}"#,
        ]
        .join("\n");
        let items = parse_truth(&truth, Path::new("truth.jsonl")).unwrap().into_iter().map(|(_, item)| item).collect();
        GoldenSet { root: ".".into(), items }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn scores_items_and_breakdowns() {
        let predictions: Predictions = [
            ("l1-clean", "hello"),
            ("l1-blur", "hallo"),
            ("l2-clean", "你好时界"),
            ("d1-clean", "ab cd"),
            ("stray", "x"),
        ]
        .into_iter()
        .map(|(id, text)| (id.to_owned(), text.to_owned()))
        .collect();
        let report = evaluate(&set(), &predictions);

        // 5 + 5 + 4 + 5 ("ab cd") truth graphemes; 2 edits.
        assert_eq!(report.overall.items, 4);
        assert_eq!(report.overall.truth_chars, 19);
        assert!(close(report.overall.cer, 2.0 / 19.0));
        assert!(close(report.overall.accuracy, 17.0 / 19.0));
        assert!(close(report.overall.macro_cer, (0.0 + 0.2 + 0.25 + 0.0) / 4.0));
        assert_eq!(report.overall.exact_matches, 2);

        assert_eq!(report.by_task.keys().collect::<Vec<_>>(), ["DOCUMENT", "LINE"]);
        assert!(close(report.by_task["LINE"].cer, 2.0 / 14.0));
        assert!(close(report.by_task["DOCUMENT"].cer, 0.0));
        assert!(close(report.by_variant["blur"].cer, 0.2));
        assert_eq!(report.by_variant["clean"].items, 3);
        assert!(close(report.by_tag["lang:zh"].cer, 0.25));
        assert!(!report.by_tag.contains_key("lang:fr"));

        assert_eq!(report.consistency.groups, 1);
        assert!(close(report.consistency.mean_spread, 0.2));
        assert!(report.missing.is_empty());
        assert_eq!(report.unknown, ["stray"]);
        assert!(matches!(report.ensure_no_unknown(), Err(GoldenError::MatchPredictions { .. })));

        let worst: Vec<&str> = report.worst_items(5).iter().map(|item| item.id.as_str()).collect();
        assert_eq!(worst, ["l2-clean", "l1-blur"]);
        assert_eq!(report.worst_items(1).len(), 1);
        assert_eq!(report.items[3].truth, "ab\ncd");
        assert!(report.items[0].score.exact);
    }

    #[test]
    fn missing_predictions_score_as_empty() {
        let predictions: Predictions = [("l1-clean".to_owned(), "hello".to_owned())].into_iter().collect();
        let report = evaluate(&set(), &predictions);
        assert_eq!(report.missing, ["d1-clean", "l1-blur", "l2-clean"]);
        assert!(report.unknown.is_empty());
        assert!(report.ensure_no_unknown().is_ok());
        let blur = report.items.iter().find(|item| item.id == "l1-blur").unwrap();
        assert!(blur.missing && close(blur.score.cer, 1.0) && blur.prediction.is_empty());
        assert!(close(report.overall.cer, 14.0 / 19.0));
        assert_eq!(report.request_error_count(), 0);
    }

    #[test]
    fn report_round_trips_through_json() {
        let report = evaluate(&set(), &Predictions::new());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["items"][0]["task"], "LINE");
        assert_eq!(json["overall"]["accuracy"], 0.0);
        assert_eq!(json["items"][0]["cer"], 1.0);
        assert!(json["items"][0].get("score").is_none());
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
