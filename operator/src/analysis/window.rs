//! What a track's pods served during an analysis window, from two scrapes of their
//! `/metrics`: counter and histogram deltas, so the numbers cover exactly the window and
//! canary and stable are compared over the same minutes.

use std::collections::BTreeMap;

use kube_ocr_proto::contract::is_server_fault;
use kube_ocr_proto::contract::labels::{CODE, LE};
use kube_ocr_proto::contract::metrics::{REQUEST_DURATION_BUCKET_SERIES, REQUESTS_SERIES};

use super::exposition::Sample;

/// One pod's cumulative request counters and latency histogram at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodCounters {
    /// Requests by gRPC code, summed over model, version and task.
    pub requests_by_code: BTreeMap<String, f64>,
    /// Cumulative bucket counts by upper bound (seconds), summed over labels.
    pub duration_buckets: BTreeMap<OrderedBound, f64>,
}

/// A bucket bound that can key a map (bounds are finite or +Inf, never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderedBound(pub f64);

impl Eq for OrderedBound {}

impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedBound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl PodCounters {
    pub fn from_samples(samples: &[Sample]) -> Self {
        let mut counters = Self::default();
        for sample in samples {
            if sample.name == REQUESTS_SERIES {
                let code = sample.label(CODE).unwrap_or("UNKNOWN").to_owned();
                *counters.requests_by_code.entry(code).or_default() += sample.value;
            } else if sample.name == REQUEST_DURATION_BUCKET_SERIES {
                let Some(bound) = sample.label(LE).and_then(parse_bound) else { continue };
                *counters.duration_buckets.entry(OrderedBound(bound)).or_default() += sample.value;
            }
        }
        counters
    }

    fn total_requests(&self) -> f64 {
        self.requests_by_code.values().sum()
    }
}

fn parse_bound(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        other => other.parse().ok().filter(|b: &f64| !b.is_nan()),
    }
}

/// The window's traffic of a whole track.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowTraffic {
    pub requests: f64,
    pub server_errors: f64,
    /// Cumulative bucket counts over the window, by upper bound.
    pub duration_buckets: Vec<(f64, f64)>,
}

impl WindowTraffic {
    /// Server-side failures per request; `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.server_errors / self.requests)
    }

    /// The `q` quantile of request duration in seconds (`histogram_quantile` semantics).
    pub fn duration_quantile(&self, q: f64) -> Option<f64> {
        histogram_quantile(q, &self.duration_buckets)
    }
}

/// Deltas between two scrapes of each pod of a track, keyed by pod name. A pod whose
/// counters went down restarted: its second scrape is the whole window. A pod seen only
/// in `after` started during the window; one seen only in `before` is gone and its last
/// requests are lost to the window (they were counted nowhere else either).
pub fn window_traffic(before: &BTreeMap<String, PodCounters>, after: &BTreeMap<String, PodCounters>) -> WindowTraffic {
    let mut requests_by_code: BTreeMap<String, f64> = BTreeMap::new();
    let mut buckets: BTreeMap<OrderedBound, f64> = BTreeMap::new();
    let empty = PodCounters::default();
    for (pod, now) in after {
        let then = before.get(pod).unwrap_or(&empty);
        let reset = now.total_requests() < then.total_requests()
            || now
                .duration_buckets
                .iter()
                .any(|(bound, count)| then.duration_buckets.get(bound).is_some_and(|c| c > count));
        let base = if reset { &empty } else { then };
        for (code, count) in &now.requests_by_code {
            *requests_by_code.entry(code.clone()).or_default() +=
                (count - base.requests_by_code.get(code).copied().unwrap_or(0.0)).max(0.0);
        }
        for (bound, count) in &now.duration_buckets {
            *buckets.entry(*bound).or_default() +=
                (count - base.duration_buckets.get(bound).copied().unwrap_or(0.0)).max(0.0);
        }
    }
    WindowTraffic {
        requests: requests_by_code.values().sum(),
        server_errors: requests_by_code.iter().filter(|(code, _)| is_server_fault(code)).map(|(_, count)| count).sum(),
        duration_buckets: buckets.into_iter().map(|(bound, count)| (bound.0, count)).collect(),
    }
}

/// PromQL's `histogram_quantile`: find the bucket holding the rank and interpolate
/// linearly inside it (from 0 for the first bucket). A rank in the +Inf bucket answers
/// the highest finite bound. `None` without observations.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last().map(|(_, count)| *count).filter(|count| *count > 0.0)?;
    let rank = q.clamp(0.0, 1.0) * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower_bound);
            }
            let in_bucket = count - lower_count;
            let fraction = if in_bucket > 0.0 { (rank - lower_count) / in_bucket } else { 1.0 };
            return Some(lower_bound + (bound - lower_bound) * fraction);
        }
        lower_bound = bound;
        lower_count = count;
    }
    Some(lower_bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::exposition::parse_exposition;

    fn counters(ok: f64, unavailable: f64, invalid: f64, buckets: [f64; 4]) -> PodCounters {
        let text = format!(
            "ocr_requests_total{{task=\"line\",code=\"OK\"}} {ok}\n\
             ocr_requests_total{{task=\"line\",code=\"UNAVAILABLE\"}} {unavailable}\n\
             ocr_requests_total{{task=\"document\",code=\"INVALID_ARGUMENT\"}} {invalid}\n\
             ocr_request_duration_seconds_bucket{{le=\"0.1\",task=\"line\"}} {}\n\
             ocr_request_duration_seconds_bucket{{le=\"0.2\",task=\"line\"}} {}\n\
             ocr_request_duration_seconds_bucket{{le=\"0.4\",task=\"line\"}} {}\n\
             ocr_request_duration_seconds_bucket{{le=\"+Inf\",task=\"line\"}} {}\n",
            buckets[0], buckets[1], buckets[2], buckets[3]
        );
        PodCounters::from_samples(&parse_exposition(&text))
    }

    fn pods(entries: Vec<(&str, PodCounters)>) -> BTreeMap<String, PodCounters> {
        entries.into_iter().map(|(name, c)| (name.to_owned(), c)).collect()
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let buckets = [(0.1, 50.0), (0.2, 90.0), (0.4, 100.0), (f64::INFINITY, 100.0)];
        assert!((histogram_quantile(0.5, &buckets).unwrap() - 0.1).abs() < 1e-12);
        // Rank 95 lies halfway through (0.2, 0.4].
        assert!((histogram_quantile(0.95, &buckets).unwrap() - 0.3).abs() < 1e-12);
        assert!((histogram_quantile(0.25, &buckets).unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(histogram_quantile(0.95, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        // Everything beyond the last finite bound: the bound is the best answer.
        assert_eq!(histogram_quantile(0.95, &[(0.1, 0.0), (f64::INFINITY, 10.0)]), Some(0.1));
    }

    #[test]
    fn the_window_is_the_delta_summed_over_pods() {
        let before = pods(vec![("a", counters(10.0, 0.0, 1.0, [5.0, 8.0, 10.0, 11.0]))]);
        let after = pods(vec![
            ("a", counters(30.0, 2.0, 3.0, [20.0, 28.0, 33.0, 35.0])),
            ("b", counters(5.0, 0.0, 0.0, [5.0, 5.0, 5.0, 5.0])), // started in the window
        ]);
        let window = window_traffic(&before, &after);
        assert_eq!(window.requests, 20.0 + 2.0 + 2.0 + 5.0);
        assert_eq!(window.server_errors, 2.0, "INVALID_ARGUMENT is the caller's fault");
        assert!((window.error_rate().unwrap() - 2.0 / 29.0).abs() < 1e-12);
        assert_eq!(window.duration_buckets, vec![(0.1, 20.0), (0.2, 25.0), (0.4, 28.0), (f64::INFINITY, 29.0)]);
    }

    /// The pod counts HTTP API requests under the gRPC code their status mirrors, with a
    /// `protocol` label: both protocols add up, and an HTTP 5xx is a server fault.
    #[test]
    fn requests_of_both_protocols_add_up_by_code() {
        let scrape = "ocr_requests_total{model=\"m\",version=\"1\",task=\"document\",protocol=\"grpc\",code=\"OK\"} 7\n\
            ocr_requests_total{model=\"m\",version=\"1\",task=\"document\",protocol=\"http\",code=\"OK\"} 3\n\
            ocr_requests_total{model=\"m\",version=\"1\",task=\"document\",protocol=\"http\",code=\"UNAVAILABLE\"} 2\n";
        let counters = PodCounters::from_samples(&crate::analysis::exposition::parse_exposition(scrape));
        assert_eq!(counters.requests_by_code["OK"], 10.0);
        let window = window_traffic(&pods(vec![]), &pods(vec![("a", counters)]));
        assert_eq!(window.requests, 12.0);
        assert_eq!(window.server_errors, 2.0);
    }

    #[test]
    fn a_restarted_pod_counts_from_zero() {
        let before = pods(vec![("a", counters(100.0, 0.0, 0.0, [90.0, 95.0, 100.0, 100.0]))]);
        let after = pods(vec![("a", counters(7.0, 1.0, 0.0, [2.0, 6.0, 8.0, 8.0]))]);
        let window = window_traffic(&before, &after);
        assert_eq!(window.requests, 8.0);
        assert_eq!(window.server_errors, 1.0);
    }

    #[test]
    fn no_traffic_means_no_numbers_rather_than_zeros() {
        let same = pods(vec![("a", counters(10.0, 0.0, 0.0, [10.0, 10.0, 10.0, 10.0]))]);
        let window = window_traffic(&same, &same);
        assert_eq!(window.requests, 0.0);
        assert_eq!(window.error_rate(), None);
        assert_eq!(window.duration_quantile(0.95), None);
    }
}
