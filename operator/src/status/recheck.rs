//! When to look at an OcrService again when no watch event comes.
//!
//! Pods, Deployments and the OcrService itself are watched, so their changes trigger a
//! reconcile on their own. What no watch reports is a golden-set ConfigMap or a model's
//! claim being created later: those are checked again on a clock that slows down the
//! longer they stay missing, so a thousand OcrServices waiting for a ConfigMap do not
//! keep the API server busy while one created a minute ago is picked up quickly.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_ocr_crds::OcrServiceStatus;
use kube_ocr_crds::conditions::DEGRADED;

use super::conditions::find;

/// The delay before the next reconcile that no event asked for.
///
/// `references_missing`: this reconcile found a ConfigMap or claim of the spec missing.
/// How long it has been missing is read from the Degraded condition's transition time.
/// `settling` is the first recheck, `resync` the longest delay (and the delay for
/// everything else).
pub fn recheck_after(
    references_missing: bool,
    status: &OcrServiceStatus,
    now: &Time,
    settling: Duration,
    resync: Duration,
) -> Duration {
    if !references_missing {
        return resync;
    }
    let missing_for = find(&status.conditions, DEGRADED)
        .filter(|c| c.status == "True")
        .map(|c| now.0.duration_since(c.last_transition_time.0))
        // A transition "in the future" (clock skew between replicas) counts as just now.
        .map_or(Duration::ZERO, |elapsed| if elapsed.is_negative() { Duration::ZERO } else { elapsed.unsigned_abs() });
    // A quarter of the time it has been missing: 15 s at first, a minute after four
    // minutes, then the resync period.
    (missing_for / 4).clamp(settling, resync.max(settling))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};

    use kube_ocr_crds::conditions::reasons;

    use super::*;

    const SETTLING: Duration = Duration::from_secs(15);
    const RESYNC: Duration = Duration::from_secs(300);

    fn degraded(reason: &str, status: &str, since: Timestamp) -> OcrServiceStatus {
        OcrServiceStatus {
            conditions: vec![Condition {
                type_: DEGRADED.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: String::new(),
                last_transition_time: Time(since),
                observed_generation: Some(1),
            }],
            ..OcrServiceStatus::default()
        }
    }

    fn at(seconds_after: i64, start: Timestamp) -> Time {
        Time(start + SignedDuration::from_secs(seconds_after))
    }

    #[test]
    fn nothing_missing_waits_for_events_and_the_resync() {
        let start = Timestamp::now();
        let now = at(10, start);
        assert_eq!(recheck_after(false, &OcrServiceStatus::default(), &now, SETTLING, RESYNC), RESYNC);
        let crash_looping = degraded(reasons::IMAGE_PULL_FAILED, "True", start);
        assert_eq!(recheck_after(false, &crash_looping, &now, SETTLING, RESYNC), RESYNC);
    }

    #[test]
    fn a_missing_reference_is_rechecked_slower_the_longer_it_is_missing() {
        let start = Timestamp::now();
        // Whatever the condition's reason: another cause may be the one it names.
        for reason in [reasons::GOLDEN_SET_MISSING, reasons::MODEL_CLAIM_MISSING, reasons::IMAGE_PULL_FAILED] {
            let status = degraded(reason, "True", start);
            let delays: Vec<u64> = [0, 30, 120, 240, 600, 3600]
                .into_iter()
                .map(|s| recheck_after(true, &status, &at(s, start), SETTLING, RESYNC).as_secs())
                .collect();
            assert_eq!(delays, [15, 15, 30, 60, 150, 300], "{reason}");
        }
    }

    #[test]
    fn just_found_missing_or_a_clock_behind_is_the_first_recheck() {
        let start = Timestamp::now();
        let not_yet_degraded = degraded(reasons::GOLDEN_SET_MISSING, "False", start);
        assert_eq!(recheck_after(true, &not_yet_degraded, &at(600, start), SETTLING, RESYNC), SETTLING);
        let status = degraded(reasons::GOLDEN_SET_MISSING, "True", start);
        assert_eq!(recheck_after(true, &status, &at(-600, start), SETTLING, RESYNC), SETTLING);
    }
}
