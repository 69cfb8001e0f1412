//! When stable's own golden check runs: outside rollouts, every `stableInterval` since the
//! last analysis, so accuracy drift in production shows up even when no canary is judged.
//! (During a rollout the canary analysis measures stable too.)

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_ocr_crds::OcrServiceStatus;

use super::machine::{RolloutPlan, elapsed};

/// This round's part of the stable check's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StableCheck {
    /// The last analysis is at least one interval old (or there was none).
    pub due: bool,
    /// When the next check is due, from now (at least a second).
    pub wait: Duration,
}

/// `None` while a rollout runs, rolled back, or analysed this round.
pub fn stable_check_schedule(
    plan: &RolloutPlan,
    analysed: bool,
    interval: Duration,
    status: &OcrServiceStatus,
    now: &Time,
) -> Option<StableCheck> {
    if analysed || plan.canary_revision.is_some() || plan.rolled_back {
        return None;
    }
    let last = status.last_analysis.as_ref().and_then(|a| a.at.as_ref());
    let due = last.is_none_or(|at| elapsed(now, at) >= interval);
    let wait = last.map_or(interval, |at| interval.saturating_sub(elapsed(now, at))).max(Duration::from_secs(1));
    Some(StableCheck { due, wait })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use kube_ocr_crds::AnalysisStatus;

    use super::*;

    const EVERY: Duration = Duration::from_secs(300);

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + seconds).unwrap())
    }

    fn analysed_at(seconds: i64) -> OcrServiceStatus {
        OcrServiceStatus {
            last_analysis: Some(AnalysisStatus { at: Some(at(seconds)), ..AnalysisStatus::default() }),
            ..OcrServiceStatus::default()
        }
    }

    #[test]
    fn the_first_check_is_due_at_once() {
        let check =
            stable_check_schedule(&RolloutPlan::steady("abc"), false, EVERY, &OcrServiceStatus::default(), &at(0));
        assert_eq!(check, Some(StableCheck { due: true, wait: EVERY }));
    }

    #[test]
    fn a_recent_analysis_waits_for_the_rest_of_the_interval() {
        let check = stable_check_schedule(&RolloutPlan::steady("abc"), false, EVERY, &analysed_at(0), &at(100));
        assert_eq!(check, Some(StableCheck { due: false, wait: Duration::from_secs(200) }));
        let late = stable_check_schedule(&RolloutPlan::steady("abc"), false, EVERY, &analysed_at(0), &at(300));
        assert_eq!(late, Some(StableCheck { due: true, wait: Duration::from_secs(1) }), "never a zero requeue");
    }

    #[test]
    fn no_stable_check_during_or_right_after_a_rollout() {
        let status = OcrServiceStatus::default();
        let canary = RolloutPlan { canary_revision: Some("def".into()), ..RolloutPlan::steady("abc") };
        assert_eq!(stable_check_schedule(&canary, false, EVERY, &status, &at(0)), None);
        let rolled_back = RolloutPlan { rolled_back: true, ..RolloutPlan::steady("abc") };
        assert_eq!(stable_check_schedule(&rolled_back, false, EVERY, &status, &at(0)), None);
        assert_eq!(
            stable_check_schedule(&RolloutPlan::steady("abc"), true, EVERY, &status, &at(0)),
            None,
            "analysed this round"
        );
    }
}
