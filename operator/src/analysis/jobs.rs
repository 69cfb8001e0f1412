//! The job backlog in a pod's metrics: the service-wide gauges every pod with jobs exports.

use kube_ocr_proto::contract::metrics::{JOBS_OLDEST_AGE_SERIES, JOBS_QUEUED};

use super::exposition::Sample;

/// (queued, oldest age in whole seconds), or `None` when the pod exports no backlog.
pub(crate) fn job_backlog(samples: &[Sample]) -> Option<(i64, i64)> {
    let largest = |name: &str| {
        samples
            .iter()
            .filter(|sample| sample.name == name && sample.value.is_finite())
            .map(|sample| sample.value)
            .reduce(f64::max)
    };
    let queued = largest(JOBS_QUEUED)?;
    let oldest = largest(JOBS_OLDEST_AGE_SERIES).unwrap_or(0.0);
    // Whole jobs and whole seconds; gauges are never negative but a bad value must not
    // become one.
    Some((queued.max(0.0).round() as i64, oldest.max(0.0).floor() as i64))
}

#[cfg(test)]
mod tests {
    use super::super::exposition::parse_exposition;
    use super::*;

    #[test]
    fn the_backlog_is_read_from_the_gauges_the_pod_exports() {
        let text =
            "# TYPE ocr_jobs_queued gauge\nocr_jobs_queued 7\nocr_jobs_oldest_age_seconds 93.6\nocr_jobs_running 1\n";
        assert_eq!(job_backlog(&parse_exposition(text)), Some((7, 93)));
        assert_eq!(job_backlog(&parse_exposition("ocr_requests_total{code=\"OK\"} 3\n")), None);
        assert_eq!(job_backlog(&parse_exposition("ocr_jobs_queued 0\n")), Some((0, 0)));
    }
}
