//! A track's numbers for the verdict: real traffic when there was enough of it in the
//! window, otherwise the operator's own golden calls, so a canary that gets no traffic
//! is still judged instead of stalling with "no values found".

use std::time::Duration;

use super::verdict::TrackNumbers;
use super::window::WindowTraffic;

/// Below this many requests in the window, real traffic says too little about P95.
pub const MIN_TRAFFIC_SAMPLES: f64 = 20.0;

/// What the golden calls to one track gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoldenOutcome {
    /// 1 − CER over the set, clipped at 0; `None` when no call succeeded.
    pub accuracy: Option<f64>,
    /// Round trips of the successful calls.
    pub latencies: Vec<Duration>,
    /// Calls that failed with a server-side code.
    pub server_failures: usize,
    pub calls: usize,
}

pub fn track_numbers(window: &WindowTraffic, golden: &GoldenOutcome) -> TrackNumbers {
    let accuracy = golden.accuracy.map(|a| a.max(0.0));
    if window.requests >= MIN_TRAFFIC_SAMPLES {
        return TrackNumbers {
            accuracy,
            p95_ms: window.duration_quantile(0.95).map(|s| s * 1000.0),
            error_rate: window.error_rate(),
            samples: window.requests as u64,
        };
    }
    let mut latencies = golden.latencies.clone();
    latencies.sort();
    let p95_ms = (!latencies.is_empty())
        .then(|| latencies[((latencies.len() as f64 - 1.0) * 0.95).round() as usize].as_secs_f64() * 1000.0);
    TrackNumbers {
        accuracy,
        p95_ms,
        error_rate: (golden.calls > 0).then(|| golden.server_failures as f64 / golden.calls as f64),
        samples: golden.calls as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(latencies_ms: &[u64], failures: usize) -> GoldenOutcome {
        GoldenOutcome {
            accuracy: Some(0.95),
            latencies: latencies_ms.iter().map(|ms| Duration::from_millis(*ms)).collect(),
            server_failures: failures,
            calls: latencies_ms.len() + failures,
        }
    }

    #[test]
    fn real_traffic_wins_when_there_is_enough() {
        let window = WindowTraffic {
            requests: 100.0,
            server_errors: 2.0,
            duration_buckets: vec![(0.1, 50.0), (0.2, 90.0), (0.4, 100.0), (f64::INFINITY, 100.0)],
        };
        let numbers = track_numbers(&window, &golden(&[5000], 0));
        assert!((numbers.p95_ms.unwrap() - 300.0).abs() < 1e-9);
        assert_eq!(numbers.error_rate, Some(0.02));
        assert_eq!(numbers.samples, 100);
        assert_eq!(numbers.accuracy, Some(0.95));
    }

    #[test]
    fn without_traffic_the_golden_calls_are_the_sample() {
        let window = WindowTraffic { requests: 3.0, ..WindowTraffic::default() };
        let latencies: Vec<u64> = (1..=20).map(|i| i * 10).collect();
        let numbers = track_numbers(&window, &golden(&latencies, 5));
        assert_eq!(numbers.p95_ms, Some(190.0));
        assert_eq!(numbers.error_rate, Some(0.2));
        assert_eq!(numbers.samples, 25);
    }

    #[test]
    fn negative_accuracy_is_clipped_and_nothing_is_nothing() {
        let outcome = GoldenOutcome { accuracy: Some(-0.4), ..GoldenOutcome::default() };
        let numbers = track_numbers(&WindowTraffic::default(), &outcome);
        assert_eq!(numbers.accuracy, Some(0.0));
        assert_eq!((numbers.p95_ms, numbers.error_rate), (None, None));
    }
}
