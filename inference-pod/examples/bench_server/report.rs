//! The markdown report: a section per figure and, above them, every goal with its mark,
//! computed from the measured numbers.

use std::fmt::Write as _;

/// One goal of issue #16 and whether this run met it.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// Which figure and what it measures, e.g. "1. LINE: server p50 − in-process p50".
    pub figure: String,
    /// The measured value as shown.
    pub measured: String,
    /// The goal as shown, e.g. "≤ 2 ms".
    pub target: String,
    pub met: bool,
}

impl Goal {
    /// Met when `value ≤ limit` (a value that is not a number misses).
    pub fn at_most(figure: impl Into<String>, value: f64, limit: f64, unit: &str) -> Self {
        Self {
            figure: figure.into(),
            measured: format!("{value:.2}{unit}"),
            target: format!("≤ {limit}{unit}"),
            met: value <= limit,
        }
    }

    /// Met when `value ≥ limit` (a value that is not a number misses).
    pub fn at_least(figure: impl Into<String>, value: f64, limit: f64, unit: &str) -> Self {
        Self {
            figure: figure.into(),
            measured: format!("{value:.2}{unit}"),
            target: format!("≥ {limit}{unit}"),
            met: value >= limit,
        }
    }

    /// Met when `count ≤ limit`.
    pub fn count_at_most(figure: impl Into<String>, count: usize, limit: usize, unit: &str) -> Self {
        Self {
            figure: figure.into(),
            measured: format!("{count}{unit}"),
            target: format!("≤ {limit}{unit}"),
            met: count <= limit,
        }
    }

    pub fn mark(&self) -> &'static str {
        if self.met { "met" } else { "**missed**" }
    }
}

/// The report's sections as they are measured, and the goals they set.
#[derive(Debug, Default)]
pub struct Report {
    pub body: String,
    pub goals: Vec<Goal>,
}

impl Report {
    pub fn goal(&mut self, goal: Goal) {
        self.goals.push(goal);
    }

    /// The whole report: `header`, the goals table, then the sections.
    pub fn render(&self, header: &str) -> String {
        let mut out = String::new();
        out.push_str(header);
        let met = self.goals.iter().filter(|g| g.met).count();
        let _ = writeln!(out, "## Goals ({met} of {} met)\n", self.goals.len());
        out.push_str("| figure | measured | goal | mark |\n|---|---:|---|---|\n");
        for goal in &self.goals {
            let _ = writeln!(out, "| {} | {} | {} | {} |", goal.figure, goal.measured, goal.target, goal.mark());
        }
        out.push('\n');
        out.push_str(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_follow_the_numbers_at_the_boundary_and_beyond() {
        assert!(Goal::at_most("a", 2.0, 2.0, " ms").met);
        assert!(!Goal::at_most("a", 2.01, 2.0, " ms").met);
        assert!(Goal::at_least("b", 1.2, 1.2, "x").met);
        assert!(!Goal::at_least("b", 1.19, 1.2, "x").met);
        assert!(Goal::count_at_most("c", 0, 0, " calls").met);
        assert!(!Goal::count_at_most("c", 1, 0, " calls").met);
    }

    #[test]
    fn a_value_that_is_not_a_number_misses() {
        assert!(!Goal::at_most("a", f64::NAN, 2.0, "").met);
        assert!(!Goal::at_least("a", f64::NAN, 2.0, "").met);
    }

    #[test]
    fn the_goals_table_counts_and_marks_each_goal() {
        let mut report = Report::default();
        report.goal(Goal::at_most("one", 1.0, 2.0, " ms"));
        report.goal(Goal::at_least("two", 1.0, 2.0, "x"));
        let text = report.render("# t\n\n");
        assert!(text.contains("## Goals (1 of 2 met)"), "{text}");
        assert!(text.contains("| one | 1.00 ms | ≤ 2 ms | met |"), "{text}");
        assert!(text.contains("| two | 1.00x | ≥ 2x | **missed** |"), "{text}");
    }
}
