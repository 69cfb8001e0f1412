//! Human-readable rendering of a [`Report`]: summary tables for a terminal or a CI log.

use std::fmt::Write as _;

use comfy_table::{Cell, CellAlignment, Table, presets};

use crate::evaluate::Report;
use crate::metrics::Summary;

/// Longest truth/prediction excerpt shown in the worst-items table; whole documents
/// would drown the table.
const EXCERPT_CHARS: usize = 80;

/// Renders the summary tables (overall, per task, per variant, per tag), consistency,
/// missing/unknown/error counts and the `worst` worst items.
pub fn render_text(report: &Report, worst: usize) -> String {
    let mut out = String::new();

    let mut table = summary_table();
    add_row(&mut table, "overall", &report.overall);
    for (task, summary) in &report.by_task {
        add_row(&mut table, &format!("task {task}"), summary);
    }
    for (variant, summary) in &report.by_variant {
        add_row(&mut table, &format!("variant {variant}"), summary);
    }
    let _ = writeln!(out, "{table}");

    if !report.by_tag.is_empty() {
        let mut tags = summary_table();
        for (tag, summary) in &report.by_tag {
            add_row(&mut tags, &format!("tag {tag}"), summary);
        }
        let _ = writeln!(out, "{tags}");
    }

    let consistency = &report.consistency;
    match &consistency.worst {
        Some(worst) => {
            let _ = writeln!(
                out,
                "consistency: {} groups with several variants, mean CER spread {:.4}; worst {} ({:.4}: {} {:.4} .. {} {:.4})",
                consistency.groups,
                consistency.mean_spread,
                worst.group,
                worst.spread,
                worst.best_variant,
                worst.best_cer,
                worst.worst_variant,
                worst.worst_cer
            );
        }
        None => {
            let _ = writeln!(out, "consistency: no group has several variants");
        }
    }
    let _ = writeln!(
        out,
        "missing predictions: {}, unknown predictions: {}, failed requests: {}{}",
        report.missing.len(),
        report.unknown.len(),
        report.request_error_count(),
        request_error_detail(report)
    );
    if !report.missing.is_empty() {
        let _ = writeln!(out, "missing: {}", preview(&report.missing));
    }
    if !report.unknown.is_empty() {
        let _ = writeln!(out, "unknown: {}", preview(&report.unknown));
    }

    let worst_items = report.worst_items(worst);
    if worst > 0 && !worst_items.is_empty() {
        let mut table = Table::new();
        table.load_style(presets::UTF8_FULL_CONDENSED);
        table.set_header(["worst items", "task", "variant", "CER", "truth", "prediction"]);
        for item in worst_items {
            table.add_row([
                Cell::new(&item.id),
                Cell::new(item.task),
                Cell::new(&item.variant),
                Cell::new(format!("{:.4}", item.score.cer)).set_alignment(CellAlignment::Right),
                Cell::new(excerpt(&item.truth)),
                Cell::new(if item.missing { "(missing)".to_owned() } else { excerpt(&item.prediction) }),
            ]);
        }
        let _ = writeln!(out, "{table}");
    }
    out
}

fn summary_table() -> Table {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header(["scope", "items", "accuracy", "CER", "macro CER", "WER", "1-NED", "exact", "sub/del/ins"]);
    table
}

fn add_row(table: &mut Table, scope: &str, summary: &Summary) {
    let number = |value: f64| Cell::new(format!("{value:.4}")).set_alignment(CellAlignment::Right);
    let edits = summary.char_edits;
    table.add_row([
        Cell::new(scope),
        Cell::new(summary.items).set_alignment(CellAlignment::Right),
        number(summary.accuracy),
        number(summary.cer),
        number(summary.macro_cer),
        number(summary.wer),
        number(summary.mean_ned),
        number(summary.exact_match_rate),
        Cell::new(format!("{}/{}/{}", edits.substitutions, edits.deletions, edits.insertions))
            .set_alignment(CellAlignment::Right),
    ]);
}

fn request_error_detail(report: &Report) -> String {
    if report.request_errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = report.request_errors.iter().map(|(code, count)| format!("{code} {count}")).collect();
    format!(" ({})", parts.join(", "))
}

fn preview(ids: &[String]) -> String {
    const SHOWN: usize = 10;
    let head = ids.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if ids.len() > SHOWN { format!("{head}, ... ({} more)", ids.len() - SHOWN) } else { head }
}

/// One line, at most [`EXCERPT_CHARS`] characters; line breaks shown as `⏎`.
fn excerpt(text: &str) -> String {
    let flat = text.replace('\n', " ⏎ ");
    if flat.chars().count() <= EXCERPT_CHARS {
        return flat;
    }
    let mut cut: String = flat.chars().take(EXCERPT_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{GoldenItem, GoldenSet, Task, Truth};
    use crate::evaluate::evaluate;
    use crate::predictions::Predictions;

    fn item(id: &str, group: &str, variant: &str, text: &str) -> GoldenItem {
        GoldenItem {
            id: id.into(),
            file: format!("{id}.png").into(),
            task: Task::Line,
            truth: Truth::Text(text.into()),
            group: group.into(),
            variant: variant.into(),
            tags: vec!["lang:en".into()],
        }
    }

    #[test]
    fn renders_every_section() {
        let set = GoldenSet {
            root: ".".into(),
            items: vec![item("a-clean", "a", "clean", "hello world"), item("a-blur", "a", "blur", "hello world")],
        };
        let predictions: Predictions =
            [("a-clean".to_owned(), "hello world".to_owned()), ("zz".to_owned(), "x".to_owned())].into_iter().collect();
        let mut report = evaluate(&set, &predictions);
        report.request_errors.insert("UNAVAILABLE".into(), 2);
        let text = render_text(&report, 5);
        for expected in [
            "overall",
            "task LINE",
            "variant blur",
            "tag lang:en",
            "0.5000",
            "worst a (1.0000: clean 0.0000 .. blur 1.0000)",
            "missing predictions: 1, unknown predictions: 1, failed requests: 2 (UNAVAILABLE 2)",
            "missing: a-blur",
            "unknown: zz",
            "(missing)",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert!(!render_text(&report, 0).contains("worst items"));
    }

    #[test]
    fn excerpts_are_single_line_and_bounded() {
        assert_eq!(excerpt("a\nb"), "a ⏎ b");
        let long = "x".repeat(200);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS);
        assert!(excerpt(&long).ends_with('…'));
    }
}
