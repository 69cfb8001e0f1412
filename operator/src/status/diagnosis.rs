//! What is wrong with the pods, read from their status the way a human reads
//! `kubectl describe pod`: image pulls, crash loops, scheduling.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// One kind of pod trouble, with the first pod that shows it and how many do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIssue {
    pub kind: PodIssueKind,
    pub pod: String,
    pub pods: usize,
    /// What Kubernetes said; messages shortened, never the container's name and count.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodIssueKind {
    ImagePull,
    CrashLoop,
    Unschedulable,
}

const IMAGE_PULL_REASONS: [&str; 4] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];
const MAX_DETAIL: usize = 400;

/// The issues of `pods`, one per kind, in a fixed order. Terminating pods are ignored:
/// an old revision going away is not a problem.
pub fn diagnose(pods: &[Pod]) -> Vec<PodIssue> {
    let mut issues: Vec<PodIssue> = Vec::new();
    for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        for (kind, detail) in pod_issues(pod) {
            match issues.iter_mut().find(|i| i.kind == kind) {
                Some(existing) => existing.pods += 1,
                None => issues.push(PodIssue { kind, pod: name.clone(), pods: 1, detail }),
            }
        }
    }
    issues.sort_by_key(|i| i.kind);
    issues
}

fn pod_issues(pod: &Pod) -> Vec<(PodIssueKind, String)> {
    let mut found = Vec::new();
    let Some(status) = &pod.status else { return found };
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"));
    if let Some(condition) = unschedulable {
        found.push((PodIssueKind::Unschedulable, shorten(condition.message.as_deref().unwrap_or_default())));
    }
    let containers = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for container in containers {
        if let Some(issue) = container_issue(container) {
            found.push(issue);
        }
    }
    found
}

fn container_issue(container: &ContainerStatus) -> Option<(PodIssueKind, String)> {
    let waiting = container.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    if IMAGE_PULL_REASONS.contains(&reason) {
        let message = shorten(waiting.message.as_deref().unwrap_or(reason));
        return Some((PodIssueKind::ImagePull, format!("container {}: {message}", container.name)));
    }
    if reason == "CrashLoopBackOff" {
        let last = container.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let exit = last.map_or(String::new(), |t| {
            // The kubelet's message is the log's tail (FallbackToLogsOnError), up to 80 lines.
            let message = shorten(t.message.as_deref().or(t.reason.as_deref()).unwrap_or(""));
            format!("; last exit code {}: {message}", t.exit_code)
        });
        return Some((
            PodIssueKind::CrashLoop,
            format!("container {} restarted {} times{exit}", container.name, container.restart_count),
        ));
    }
    None
}

fn shorten(text: &str) -> String {
    // Keep the end of long messages: a crashed server's last log lines say why.
    let text = text.trim();
    if text.chars().count() <= MAX_DETAIL {
        return text.to_owned();
    }
    let tail: String = text.chars().rev().take(MAX_DETAIL).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({ "metadata": { "name": name }, "status": status })).unwrap()
    }

    #[test]
    fn image_pull_errors_name_the_container_and_message() {
        let pods = [
            pod(
                "a",
                json!({ "containerStatuses": [{ "name": "inference", "ready": false, "restartCount": 0, "image": "x",
                "imageID": "", "state": { "waiting": { "reason": "ErrImagePull", "message": "image \"x\" not found" } } }] }),
            ),
            pod(
                "b",
                json!({ "containerStatuses": [{ "name": "inference", "ready": false, "restartCount": 0, "image": "x",
                "imageID": "", "state": { "waiting": { "reason": "ImagePullBackOff" } } }] }),
            ),
        ];
        let issues = diagnose(&pods);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].kind, PodIssueKind::ImagePull);
        assert_eq!((issues[0].pod.as_str(), issues[0].pods), ("a", 2));
        assert!(issues[0].detail.contains("not found"));
    }

    #[test]
    fn crash_loops_carry_the_last_exit() {
        let pods = [pod(
            "a",
            json!({ "containerStatuses": [{ "name": "inference", "ready": false, "restartCount": 4, "image": "x", "imageID": "",
                "state": { "waiting": { "reason": "CrashLoopBackOff" } },
                "lastState": { "terminated": { "exitCode": 1, "message": "bundle.yaml not found" } } }] }),
        )];
        let issues = diagnose(&pods);
        assert_eq!(issues[0].kind, PodIssueKind::CrashLoop);
        assert!(issues[0].detail.contains("restarted 4 times"), "{}", issues[0].detail);
        assert!(issues[0].detail.contains("exit code 1: bundle.yaml not found"), "{}", issues[0].detail);
    }

    #[test]
    fn a_long_log_tail_is_cut_at_its_start_and_the_container_and_count_stay() {
        let log = format!("{}\nexiting: bundle.yaml not found", "starting up\n".repeat(200));
        let pods = [pod(
            "a",
            json!({ "containerStatuses": [{ "name": "inference", "ready": false, "restartCount": 3, "image": "x", "imageID": "",
                "state": { "waiting": { "reason": "CrashLoopBackOff" } },
                "lastState": { "terminated": { "exitCode": 1, "message": log } } }] }),
        )];
        let detail = &diagnose(&pods)[0].detail;
        assert!(detail.starts_with("container inference restarted 3 times; last exit code 1: …"), "{detail}");
        assert!(detail.ends_with("exiting: bundle.yaml not found"), "{detail}");
        assert!(detail.chars().count() < MAX_DETAIL + 80, "{} characters", detail.chars().count());
    }

    #[test]
    fn unschedulable_pods_say_why() {
        let pods = [pod(
            "a",
            json!({ "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu." }] }),
        )];
        let issues = diagnose(&pods);
        assert_eq!(issues[0].kind, PodIssueKind::Unschedulable);
        assert!(issues[0].detail.contains("Insufficient nvidia.com/gpu"));
    }

    #[test]
    fn healthy_and_terminating_pods_have_no_issues() {
        let mut terminating = pod(
            "old",
            json!({ "containerStatuses": [{ "name": "inference", "ready": false, "restartCount": 9, "image": "x", "imageID": "",
                "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] }),
        );
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let running = pod(
            "new",
            json!({ "containerStatuses": [{ "name": "inference", "ready": true, "restartCount": 0, "image": "x", "imageID": "",
                "state": { "running": {} } }] }),
        );
        assert!(diagnose(&[terminating, running]).is_empty());
    }

    #[test]
    fn long_messages_keep_their_end() {
        let long = format!("{}the cause", "x".repeat(1000));
        let short = shorten(&long);
        assert!(short.ends_with("the cause") && short.chars().count() <= MAX_DETAIL + 1);
    }
}
