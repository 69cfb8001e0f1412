//! What the demo prints about objects: a pod's state, a canary's progression, the Ready
//! endpoint of a Service. Pure functions of API objects, so they are unit-tested.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_ocr_crds::{AnalysisStatus, OcrServiceStatus, Phase, TrackMeasurement};

/// One line about a pod: phase, readiness, and why it is not ready yet.
pub fn describe_pod(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let Some(status) = &pod.status else { return format!("pod {name}: created") };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none() {
        return format!("pod {name}: {phase}, not scheduled yet");
    }
    let container = status.container_statuses.as_ref().and_then(|c| c.first());
    let detail = match container {
        None => "starting".to_owned(),
        Some(c) if c.ready => "Ready".to_owned(),
        Some(c) => match c.state.as_ref() {
            Some(state) if state.waiting.is_some() => {
                let waiting = state.waiting.as_ref().expect("checked");
                let reason = waiting.reason.as_deref().unwrap_or("Waiting");
                match waiting.message.as_deref() {
                    Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                    _ => reason.to_owned(),
                }
            }
            Some(state) if state.running.is_some() => match c.started {
                Some(true) => "running, readiness probe not passed yet".to_owned(),
                _ => "running, startup probe not passed yet".to_owned(),
            },
            Some(state) if state.terminated.is_some() => {
                let terminated = state.terminated.as_ref().expect("checked");
                format!("exited with code {}", terminated.exit_code)
            }
            _ => "starting".to_owned(),
        },
    };
    let restarts = container.map_or(0, |c| c.restart_count);
    let restarts = if restarts > 0 { format!(", {restarts} restart(s)") } else { String::new() };
    format!("pod {name}: {phase}, {detail}{restarts}")
}

/// `accuracy 0.967, P95 812 ms, errors 0.0%, 34 requests`, leaving out what was not measured.
pub fn describe_track(track: &TrackMeasurement) -> String {
    let mut parts = Vec::new();
    if let Some(accuracy) = track.accuracy {
        parts.push(format!("accuracy {accuracy:.3}"));
    }
    if let Some(p95) = track.p95_ms {
        parts.push(format!("P95 {p95:.0} ms"));
    }
    if let Some(rate) = track.error_rate {
        parts.push(format!("errors {:.1}%", rate * 100.0));
    }
    if let Some(samples) = track.samples {
        parts.push(format!("{samples} requests"));
    }
    if parts.is_empty() { "no numbers".to_owned() } else { parts.join(", ") }
}

/// One line per analysis: the verdict, then each track's numbers, then failed gates.
pub fn describe_analysis(analysis: &AnalysisStatus) -> String {
    let verdict = analysis.verdict.as_deref().unwrap_or("no verdict");
    let mut line = format!("analysis {verdict}:");
    if let Some(canary) = &analysis.canary {
        line.push_str(&format!(" canary {} |", describe_track(canary)));
    }
    match &analysis.stable {
        Some(stable) => line.push_str(&format!(" stable {}", describe_track(stable))),
        None => line.push_str(" stable not measured"),
    }
    if !analysis.reasons.is_empty() {
        line.push_str(&format!(" ({})", analysis.reasons.join("; ")));
    }
    line
}

fn version(version: Option<&String>, revision: Option<&String>) -> String {
    match (version, revision) {
        (Some(v), Some(r)) => format!("{v} (revision {r})"),
        (Some(v), None) => v.clone(),
        (None, Some(r)) => format!("revision {r}"),
        (None, None) => "?".to_owned(),
    }
}

/// What changed between two statuses of an OcrService during a rollout, one line each, in
/// the order a reader wants them: canary started, weight, readiness, analysis, promotion,
/// canary gone, phase. `steps` are `spec.rollout.steps`.
pub fn rollout_changes(previous: &OcrServiceStatus, current: &OcrServiceStatus, steps: &[i64]) -> Vec<String> {
    let mut lines = Vec::new();
    let canary = version(current.canary_version.as_ref(), current.canary_revision.as_ref());
    let stable = version(current.stable_version.as_ref(), current.stable_revision.as_ref());
    let new_canary = current.canary_revision.is_some() && current.canary_revision != previous.canary_revision;
    if new_canary && current.canary_revision != current.stable_revision {
        lines.push(format!("canary {canary} started beside stable {stable}"));
    }
    if let Some(progress) = &current.canary {
        let before = previous.canary.as_ref();
        if before.map(|b| (b.step, b.weight)) != Some((progress.step, progress.weight)) {
            lines.push(format!(
                "canary weight {}% (step {} of {})",
                progress.weight,
                progress.step + 1,
                steps.len().max(progress.step as usize + 1)
            ));
        }
        let ready = progress.ready_replicas.unwrap_or(0);
        if before.and_then(|b| b.ready_replicas).unwrap_or(0) != ready && current.canary_revision.is_some() {
            lines.push(format!("canary pods Ready: {ready}"));
        }
    }
    if let Some(analysis) = &current.last_analysis
        && previous.last_analysis.as_ref().map(|a| &a.at) != Some(&analysis.at)
    {
        lines.push(describe_analysis(analysis));
    }
    if let Some(progress) = &current.canary
        && previous.canary.as_ref().map_or(0, |b| b.failed_checks) < progress.failed_checks
    {
        lines.push(format!("failed checks in this rollout: {}", progress.failed_checks));
    }
    if previous.stable_revision.is_some() && current.stable_revision != previous.stable_revision {
        // The status may name the new stable revision before its version: the canary's.
        let promoted = if current.stable_revision == previous.canary_revision {
            version(previous.canary_version.as_ref(), current.stable_revision.as_ref())
        } else {
            stable.clone()
        };
        lines.push(format!("Promoted: stable now rolls to {promoted}"));
    }
    if previous.canary_revision.is_some() && current.canary_revision.is_none() {
        if current.failed_revision.is_some() && current.failed_revision == previous.canary_revision {
            lines.push(format!("canary rolled back; stable stays {stable}"));
        } else {
            lines.push(format!("canary retired: stable serves {stable} on every replica"));
        }
    }
    if let Some(now) = degraded(current)
        && degraded(previous).as_ref() != Some(&now)
    {
        lines.push(format!("Degraded {now}"));
    }
    if previous.phase != current.phase
        && let Some(phase) = current.phase
    {
        let before = previous.phase.map_or("-".to_owned(), |p| format!("{p:?}"));
        lines.push(format!("phase {before} -> {phase:?}"));
    }
    lines
}

/// The Degraded condition's `reason: message` while it is True.
pub fn degraded(status: &OcrServiceStatus) -> Option<String> {
    let condition = status.conditions.iter().find(|c| c.type_ == "Degraded" && c.status == "True")?;
    Some(format!("{}: {}", condition.reason, condition.message))
}

/// How a rollout to `version` ended, once it has: `Ok` when stable serves it with no canary
/// left and the service is Healthy; `Err` with the reasons when it was rolled back.
pub fn rollout_outcome(status: &OcrServiceStatus, version: &str) -> Option<Result<(), String>> {
    if status.phase == Some(Phase::RolledBack) {
        let reasons = status.last_analysis.as_ref().map(|a| a.reasons.join("; ")).unwrap_or_default();
        let reasons = if reasons.is_empty() { "see `kubectl describe ocrs` for the event".to_owned() } else { reasons };
        return Some(Err(format!("the canary of {version} was rolled back: {reasons}")));
    }
    let done = status.stable_version.as_deref() == Some(version)
        && status.canary_revision.is_none()
        && status.phase == Some(Phase::Healthy);
    done.then_some(Ok(()))
}

/// One line for a reminder while a rollout waits: phase, canary and its weight, stable.
pub fn short_state(status: &OcrServiceStatus) -> String {
    let phase = status.phase.map_or("-".to_owned(), |p| format!("{p:?}"));
    let stable = status.stable_version.as_deref().unwrap_or("?");
    let state = match (&status.canary_version, &status.canary) {
        (Some(canary), Some(progress)) if status.canary_revision.is_some() => format!(
            "phase {phase}, canary {canary} at {}% ({} Ready, {} failed checks), stable {stable}",
            progress.weight,
            progress.ready_replicas.unwrap_or(0),
            progress.failed_checks
        ),
        _ => format!("phase {phase}, stable {stable}, no canary"),
    };
    match degraded(status) {
        Some(why) => format!("{state}; Degraded {why}"),
        None => state,
    }
}

/// A Ready endpoint of a Service on a pod whose name starts with `pod_prefix`: (address,
/// port named `port_name`, pod name).
pub fn ready_endpoint(slices: &[EndpointSlice], port_name: &str, pod_prefix: &str) -> Option<(String, i32, String)> {
    for slice in slices {
        let port = slice.ports.iter().flatten().find(|p| p.name.as_deref() == Some(port_name)).and_then(|p| p.port);
        let Some(port) = port else { continue };
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
            let pod = endpoint.target_ref.as_ref().and_then(|r| r.name.clone()).unwrap_or_default();
            if let (true, true, Some(address)) = (ready, pod.starts_with(pod_prefix), endpoint.addresses.first()) {
                return Some((address.clone(), port, pod));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_ocr_crds::CanaryStatus;
    use serde_json::json;

    fn status(value: serde_json::Value) -> OcrServiceStatus {
        serde_json::from_value(value).unwrap()
    }

    fn stable_only() -> OcrServiceStatus {
        status(json!({ "phase": "Healthy", "stableRevision": "aaa", "stableVersion": "4.0.0" }))
    }

    fn with_canary(weight: i32, step: u32, ready: i32) -> OcrServiceStatus {
        let mut s = stable_only();
        s.phase = Some(Phase::Progressing);
        s.canary_revision = Some("bbb".into());
        s.canary_version = Some("4.0.1".into());
        s.canary = Some(CanaryStatus { step, weight, ready_replicas: Some(ready), ..CanaryStatus::default() });
        s
    }

    #[test]
    fn a_canary_progression_reads_as_a_story() {
        let steps = [10, 50, 100];
        let started = with_canary(10, 0, 0);
        assert_eq!(
            rollout_changes(&stable_only(), &started, &steps),
            [
                "canary 4.0.1 (revision bbb) started beside stable 4.0.0 (revision aaa)",
                "canary weight 10% (step 1 of 3)",
                "phase Healthy -> Progressing",
            ]
        );
        let ready = with_canary(10, 0, 1);
        assert_eq!(rollout_changes(&started, &ready, &steps), ["canary pods Ready: 1"]);

        let mut analysed = ready.clone();
        analysed.last_analysis = Some(
            serde_json::from_value(json!({
                "at": "2026-01-01T00:00:05Z", "verdict": "Pass",
                "canary": { "accuracy": 0.9673, "p95Ms": 812.4, "errorRate": 0.0, "samples": 26 },
                "stable": { "accuracy": 0.9673, "p95Ms": 790.0, "errorRate": 0.0, "samples": 30 },
            }))
            .unwrap(),
        );
        assert_eq!(
            rollout_changes(&ready, &analysed, &steps),
            [
                "analysis Pass: canary accuracy 0.967, P95 812 ms, errors 0.0%, 26 requests | stable accuracy 0.967, P95 790 ms, errors 0.0%, 30 requests"
            ]
        );
        // The same analysis again is no news.
        assert!(rollout_changes(&analysed, &analysed, &steps).is_empty());

        let mut advanced = analysed.clone();
        advanced.canary =
            Some(CanaryStatus { step: 1, weight: 50, ready_replicas: Some(1), ..CanaryStatus::default() });
        assert_eq!(rollout_changes(&analysed, &advanced, &steps), ["canary weight 50% (step 2 of 3)"]);

        let mut promoted = advanced.clone();
        promoted.stable_revision = Some("bbb".into());
        assert_eq!(
            rollout_changes(&advanced, &promoted, &steps),
            ["Promoted: stable now rolls to 4.0.1 (revision bbb)"],
            "a canary at the stable revision is the promotion, not a new canary; the version is the canary's \
             while status.stableVersion lags"
        );
        let lagging = promoted.clone();
        promoted.stable_version = Some("4.0.1".into());
        assert!(rollout_changes(&lagging, &promoted, &steps).is_empty());

        let mut retired = promoted.clone();
        retired.canary_revision = None;
        retired.canary_version = None;
        retired.canary = None;
        retired.phase = Some(Phase::Healthy);
        assert_eq!(
            rollout_changes(&promoted, &retired, &steps),
            ["canary retired: stable serves 4.0.1 (revision bbb) on every replica", "phase Progressing -> Healthy"]
        );
        assert_eq!(rollout_outcome(&retired, "4.0.1"), Some(Ok(())));
        assert_eq!(rollout_outcome(&promoted, "4.0.1"), None, "the canary still runs");
        assert_eq!(rollout_outcome(&analysed, "4.0.1"), None);
    }

    #[test]
    fn a_rollback_is_told_with_its_reasons() {
        let mut failing = with_canary(10, 0, 1);
        failing.last_analysis = Some(AnalysisStatus {
            verdict: Some("Fail".into()),
            reasons: vec!["canary P95 3200 ms is more than 50% above stable's 800 ms".into()],
            stable: Some(TrackMeasurement { p95_ms: Some(800.0), ..TrackMeasurement::default() }),
            canary: Some(TrackMeasurement { p95_ms: Some(3200.0), ..TrackMeasurement::default() }),
            ..AnalysisStatus::default()
        });
        failing.canary.as_mut().unwrap().failed_checks = 1;
        assert_eq!(
            rollout_changes(&with_canary(10, 0, 1), &failing, &[10, 50, 100]),
            [
                "analysis Fail: canary P95 3200 ms | stable P95 800 ms (canary P95 3200 ms is more than 50% above stable's 800 ms)",
                "failed checks in this rollout: 1",
            ]
        );
        let mut rolled_back = failing.clone();
        rolled_back.canary_revision = None;
        rolled_back.canary = None;
        rolled_back.failed_revision = Some("bbb".into());
        rolled_back.phase = Some(Phase::RolledBack);
        assert_eq!(
            rollout_changes(&failing, &rolled_back, &[10, 50, 100]),
            ["canary rolled back; stable stays 4.0.0 (revision aaa)", "phase Progressing -> RolledBack"]
        );
        assert_eq!(
            rollout_outcome(&rolled_back, "4.0.1"),
            Some(Err(
                "the canary of 4.0.1 was rolled back: canary P95 3200 ms is more than 50% above stable's 800 ms".into()
            ))
        );
        assert_eq!(
            describe_analysis(failing.last_analysis.as_ref().unwrap()),
            "analysis Fail: canary P95 3200 ms | stable P95 800 ms (canary P95 3200 ms is more than 50% above stable's 800 ms)"
        );
    }

    #[test]
    fn reminders_say_where_the_rollout_stands() {
        assert_eq!(short_state(&stable_only()), "phase Healthy, stable 4.0.0, no canary");
        assert_eq!(
            short_state(&with_canary(50, 1, 1)),
            "phase Progressing, canary 4.0.1 at 50% (1 Ready, 0 failed checks), stable 4.0.0"
        );
    }

    #[test]
    fn a_degraded_condition_is_told_with_its_message_once() {
        let healthy = with_canary(10, 0, 0);
        let mut crashing = healthy.clone();
        crashing.phase = Some(Phase::Degraded);
        crashing.conditions = serde_json::from_value(json!([
            { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "1 of 1", "lastTransitionTime": "2026-01-01T00:00:00Z" },
            { "type": "Degraded", "status": "True", "reason": "CrashLooping", "message": "pod p: 3 restarts", "lastTransitionTime": "2026-01-01T00:00:00Z" },
        ]))
        .unwrap();
        assert_eq!(
            rollout_changes(&healthy, &crashing, &[10, 50, 100]),
            ["Degraded CrashLooping: pod p: 3 restarts", "phase Progressing -> Degraded"]
        );
        assert!(rollout_changes(&crashing, &crashing, &[10, 50, 100]).is_empty());
        assert_eq!(
            short_state(&crashing),
            "phase Degraded, canary 4.0.1 at 10% (0 Ready, 0 failed checks), stable 4.0.0; Degraded CrashLooping: pod p: 3 restarts"
        );
        assert_eq!(degraded(&healthy), None);
    }

    #[test]
    fn a_stable_only_check_has_no_canary_part() {
        let analysis = AnalysisStatus {
            verdict: Some("Pass".into()),
            stable: Some(TrackMeasurement { accuracy: Some(1.0), ..TrackMeasurement::default() }),
            ..AnalysisStatus::default()
        };
        assert_eq!(describe_analysis(&analysis), "analysis Pass: stable accuracy 1.000");
        assert_eq!(describe_track(&TrackMeasurement::default()), "no numbers");
    }

    #[test]
    fn pods_say_what_they_wait_for() {
        let pod = |value: serde_json::Value| -> Pod { serde_json::from_value(value).unwrap() };
        assert_eq!(describe_pod(&pod(json!({ "metadata": { "name": "p" } }))), "pod p: created");
        assert_eq!(
            describe_pod(&pod(
                json!({ "metadata": { "name": "p" }, "spec": { "containers": [] }, "status": { "phase": "Pending" } })
            )),
            "pod p: Pending, not scheduled yet"
        );
        let running = |started: bool, ready: bool, restarts: i32| {
            pod(json!({
                "metadata": { "name": "p" },
                "spec": { "nodeName": "n", "containers": [] },
                "status": { "phase": "Running", "containerStatuses": [{
                    "name": "inference", "image": "i", "imageID": "", "ready": ready, "started": started,
                    "restartCount": restarts, "state": { "running": {} },
                }]},
            }))
        };
        assert_eq!(describe_pod(&running(false, false, 0)), "pod p: Running, running, startup probe not passed yet");
        assert_eq!(
            describe_pod(&running(true, false, 2)),
            "pod p: Running, running, readiness probe not passed yet, 2 restart(s)"
        );
        assert_eq!(describe_pod(&running(true, true, 0)), "pod p: Running, Ready");
        let waiting = pod(json!({
            "metadata": { "name": "p" },
            "spec": { "nodeName": "n", "containers": [] },
            "status": { "phase": "Pending", "containerStatuses": [{
                "name": "inference", "image": "i", "imageID": "", "ready": false, "restartCount": 1,
                "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 10s" } },
            }]},
        }));
        assert_eq!(describe_pod(&waiting), "pod p: Pending, CrashLoopBackOff: back-off 10s, 1 restart(s)");
    }

    #[test]
    fn the_ready_endpoint_of_the_named_port_is_picked() {
        let slices: Vec<EndpointSlice> = serde_json::from_value(json!([
            { "metadata": {}, "addressType": "IPv4", "ports": [{ "name": "grpc", "port": 50051 }], "endpoints": [
                { "addresses": ["10.244.0.5"], "conditions": { "ready": false }, "targetRef": { "name": "ocr-canary-old" } },
                { "addresses": ["10.244.0.7"], "conditions": { "ready": true }, "targetRef": { "name": "ocr-stable-new" } },
            ]},
        ]))
        .unwrap();
        assert_eq!(ready_endpoint(&slices, "grpc", ""), Some(("10.244.0.7".into(), 50051, "ocr-stable-new".into())));
        assert_eq!(
            ready_endpoint(&slices, "grpc", "ocr-stable-"),
            Some(("10.244.0.7".into(), 50051, "ocr-stable-new".into()))
        );
        assert_eq!(ready_endpoint(&slices, "grpc", "ocr-canary-"), None, "the canary pod is not Ready");
        assert_eq!(ready_endpoint(&slices, "http", ""), None);
        assert_eq!(ready_endpoint(&[], "grpc", ""), None);
    }
}
