//! The golden check's IO: send the golden set to one pod over gRPC and score the answers.
//! How many passes, and which failures count, is decided in
//! [`crate::analysis::golden_calls`].

use std::net::SocketAddr;
use std::time::Duration;

use kube_ocr_golden::grpc_eval::{EvalOptions, connect, recognize_set};
use kube_ocr_golden::{GoldenSet, evaluate};
use tracing::warn;

use crate::analysis::golden_calls::{server_faults, timed_passes, unreachable};
use crate::analysis::numbers::GoldenOutcome;
use crate::analysis::targets::PodEndpoint;

/// Sends every golden item to `pod` (bypassing its result cache) and scores the answers;
/// a small set is sent again for latencies ([`timed_passes`]).
pub async fn golden_check(pod: &PodEndpoint, grpc_port: u16, set: &GoldenSet, timeout: Duration) -> GoldenOutcome {
    let endpoint = format!("http://{}", SocketAddr::new(pod.ip, grpc_port));
    let options = EvalOptions { concurrency: 2, timeout, bypass_cache: true };
    let client = match connect(&endpoint, timeout).await {
        Ok(client) => client,
        Err(error) => {
            warn!(pod = %pod.name, %error, "golden check could not connect");
            return unreachable(set.items.len());
        }
    };
    let passes = timed_passes(set.items.len());
    let first = match recognize_set(client.clone(), set, &options, || {}).await {
        Ok(recognized) => recognized,
        Err(error) => {
            warn!(pod = %pod.name, %error, "golden check failed");
            return unreachable(set.items.len());
        }
    };
    let report = evaluate(set, &first.predictions);
    let mut outcome = GoldenOutcome {
        accuracy: (!first.latencies.is_empty()).then_some(report.overall.accuracy),
        latencies: if passes == 0 { first.latencies.clone() } else { Vec::new() },
        server_failures: server_faults(&first.failures),
        calls: set.items.len(),
    };
    for _ in 0..passes {
        match recognize_set(client.clone(), set, &options, || {}).await {
            Ok(again) => {
                outcome.latencies.extend(again.latencies);
                outcome.server_failures += server_faults(&again.failures);
                outcome.calls += set.items.len();
            }
            Err(error) => {
                warn!(pod = %pod.name, %error, "golden check failed");
                outcome.server_failures += set.items.len();
                outcome.calls += set.items.len();
            }
        }
    }
    outcome
}
