//! How a golden check is sent and counted: how many passes make a latency sample worth a
//! P95, and which failed calls are the server's fault. The calls themselves are the
//! controller's (`controller/golden_check.rs`).

use kube_ocr_golden::grpc_eval::RequestFailure;
use kube_ocr_proto::contract::is_server_fault;

use super::numbers::GoldenOutcome;

/// Latency samples a golden check aims for when real traffic is too thin to judge P95.
pub const MIN_GOLDEN_LATENCY_SAMPLES: usize = 20;

/// Timed passes over a set of `items` after the first one. A small set is sent again until
/// there are [`MIN_GOLDEN_LATENCY_SAMPLES`] latencies, and then its first pass only warms
/// up: a freshly started pod specialises its TorchScript graphs on the first inputs of
/// each shape, and timing those would make every new canary look slower than a stable
/// that has served for hours. A set that is large enough is timed on its first pass (0).
pub fn timed_passes(items: usize) -> usize {
    let items = items.max(1);
    if items >= MIN_GOLDEN_LATENCY_SAMPLES { 0 } else { MIN_GOLDEN_LATENCY_SAMPLES.div_ceil(items) }
}

/// Failed calls whose gRPC code says the server failed (not the caller).
pub fn server_faults(failures: &[RequestFailure]) -> usize {
    failures.iter().filter(|failure| is_server_fault(&failure.code)).count()
}

/// The outcome of a pass that never reached the pod: every call counts as a server failure.
pub fn unreachable(items: usize) -> GoldenOutcome {
    GoldenOutcome { calls: items, server_failures: items, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: &str) -> RequestFailure {
        RequestFailure { id: "a".into(), code: code.into(), message: String::new() }
    }

    #[test]
    fn small_sets_are_sent_again_until_p95_has_enough_samples() {
        assert_eq!(timed_passes(4), 5, "5 timed passes of 4 items give 20 latencies");
        assert_eq!(timed_passes(3), 7);
        assert_eq!(timed_passes(0), MIN_GOLDEN_LATENCY_SAMPLES, "an empty set still counts as one item");
        assert_eq!(timed_passes(MIN_GOLDEN_LATENCY_SAMPLES), 0, "large enough: the first pass is timed");
    }

    #[test]
    fn only_server_side_codes_count_as_failures() {
        let failures = [failure("UNAVAILABLE"), failure("INVALID_ARGUMENT"), failure("DEADLINE_EXCEEDED")];
        assert_eq!(server_faults(&failures), 2);
        assert_eq!(server_faults(&[]), 0);
    }

    #[test]
    fn an_unreachable_pod_fails_every_call() {
        let outcome = unreachable(3);
        assert_eq!((outcome.calls, outcome.server_failures, outcome.accuracy), (3, 3, None));
    }
}
