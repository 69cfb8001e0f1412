//! `status.jobs`: the job backlog is read on a clock, not on every reconcile. A status
//! write triggers another reconcile, so numbers that change by the second (the oldest
//! job's age) refreshed every time would keep the controller busy for nothing.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_ocr_crds::JobsStatus;

/// How often the backlog is read from the pods.
pub const JOBS_STATUS_INTERVAL: Duration = Duration::from_secs(30);

/// What the pods said, or why they could not be asked.
pub type JobBacklogReading = Result<(i64, i64), String>;

/// Whether the backlog in `previous` is old enough to be read again at `now`.
pub fn jobs_status_due(previous: Option<&JobsStatus>, now: &Time) -> bool {
    let Some(observed) = previous.and_then(|jobs| jobs.observed_at.as_ref()) else {
        return true;
    };
    let age = now.0.duration_since(observed.0);
    // A reading "in the future" (clock skew between operator replicas) is read again.
    age.is_negative() || age.unsigned_abs() >= JOBS_STATUS_INTERVAL
}

/// The status after a reading at `now`: the numbers, or the last numbers with why they
/// could not be refreshed.
pub fn jobs_status(previous: Option<&JobsStatus>, reading: JobBacklogReading, now: &Time) -> JobsStatus {
    match reading {
        Ok((queued, oldest_age_seconds)) => JobsStatus {
            queued: Some(queued),
            oldest_age_seconds: Some(oldest_age_seconds),
            observed_at: Some(now.clone()),
            message: None,
        },
        Err(message) => JobsStatus {
            observed_at: Some(now.clone()),
            message: Some(message),
            ..previous.cloned().unwrap_or_default()
        },
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::{SignedDuration, Timestamp};

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
    }

    #[test]
    fn the_backlog_is_read_every_interval_and_at_first_sight() {
        assert!(jobs_status_due(None, &at(0)));
        let read = jobs_status(None, Ok((3, 42)), &at(0));
        assert!(!jobs_status_due(Some(&read), &at(29)));
        assert!(jobs_status_due(Some(&read), &at(30)));
        let skewed = JobsStatus { observed_at: Some(Time(at(0).0 + SignedDuration::from_secs(60))), ..read };
        assert!(jobs_status_due(Some(&skewed), &at(0)));
    }

    #[test]
    fn a_failed_reading_keeps_the_last_numbers_and_says_why() {
        let read = jobs_status(None, Ok((3, 42)), &at(0));
        assert_eq!((read.queued, read.oldest_age_seconds, read.message.as_deref()), (Some(3), Some(42), None));
        let failed = jobs_status(Some(&read), Err("no Ready stable pod".into()), &at(30));
        assert_eq!((failed.queued, failed.oldest_age_seconds), (Some(3), Some(42)));
        assert_eq!(failed.message.as_deref(), Some("no Ready stable pod"));
        assert_eq!(failed.observed_at, Some(at(30)));
        let recovered = jobs_status(Some(&failed), Ok((0, 0)), &at(60));
        assert_eq!((recovered.queued, recovered.message), (Some(0), None));
    }
}
