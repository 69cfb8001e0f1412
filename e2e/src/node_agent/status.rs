//! Pod status from what the agent knows about its containers: phase, conditions and
//! container statuses computed the way the kubelet does (`getPhase`, `GeneratePodReadyCondition`).

use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::{
    ContainerState as ApiContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::backoff::RestartPolicy;

/// A container that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

impl Termination {
    /// `Completed` for exit code 0, `Error` otherwise, as the kubelet reports them.
    pub fn reason_for(exit_code: i32) -> &'static str {
        if exit_code == 0 { "Completed" } else { "Error" }
    }
}

/// The state of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: Timestamp },
    Terminated(Termination),
}

/// What the agent knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRuntime {
    pub name: String,
    pub image: String,
    /// `file://<executable>` once the image is mapped.
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: ContainerState,
    pub last_termination: Option<Termination>,
    pub restart_count: i32,
    /// The startup probe passed (or there is none) in the current run.
    pub started: bool,
    pub ready: bool,
}

impl ContainerRuntime {
    /// A container not started yet, waiting with `reason`.
    pub fn waiting(name: &str, image: &str, reason: &str, message: Option<String>) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            image_id: String::new(),
            container_id: None,
            state: ContainerState::Waiting { reason: reason.to_owned(), message },
            last_termination: None,
            restart_count: 0,
            started: false,
            ready: false,
        }
    }

    fn succeeded(&self) -> bool {
        matches!(&self.state, ContainerState::Terminated(t) if t.exit_code == 0)
    }

    fn to_api(&self, init: bool) -> ContainerStatus {
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self.container_id.clone(),
            state: Some(state_to_api(&self.state)),
            last_state: Some(
                self.last_termination
                    .as_ref()
                    .map(|t| state_to_api(&ContainerState::Terminated(t.clone())))
                    .unwrap_or_default(),
            ),
            restart_count: self.restart_count,
            ready: if init { self.succeeded() } else { self.ready },
            started: Some(matches!(self.state, ContainerState::Running { .. }) && self.started),
            ..Default::default()
        }
    }
}

fn time(ts: Timestamp) -> Time {
    Time(ts)
}

fn state_to_api(state: &ContainerState) -> ApiContainerState {
    match state {
        ContainerState::Waiting { reason, message } => ApiContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..Default::default()
        },
        ContainerState::Running { started_at } => ApiContainerState {
            running: Some(ContainerStateRunning { started_at: Some(time(*started_at)) }),
            ..Default::default()
        },
        ContainerState::Terminated(t) => ApiContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: t.container_id.clone(),
                exit_code: t.exit_code,
                signal: t.signal,
                reason: Some(t.reason.clone()),
                message: t.message.clone(),
                started_at: t.started_at.map(time),
                finished_at: Some(time(t.finished_at)),
            }),
            ..Default::default()
        },
    }
}

/// What the agent knows about one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRuntime {
    pub restart_policy: RestartPolicy,
    pub init_containers: Vec<ContainerRuntime>,
    pub containers: Vec<ContainerRuntime>,
    /// IP allocated and pod directory prepared (the PodReadyToStartContainers condition).
    pub sandbox_ready: bool,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: IpAddr,
    pub start_time: Option<Timestamp>,
}

/// The pod phase, as the kubelet's `getPhase`.
pub fn pod_phase(runtime: &PodRuntime) -> &'static str {
    let init_failed =
        runtime.init_containers.iter().any(|c| matches!(&c.state, ContainerState::Terminated(t) if t.exit_code != 0));
    if init_failed && runtime.restart_policy == RestartPolicy::Never {
        return "Failed";
    }
    if !initialized(runtime) || runtime.containers.is_empty() {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for container in &runtime.containers {
        match &container.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Waiting { .. } if container.last_termination.is_some() => stopped += 1,
            ContainerState::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 || runtime.restart_policy == RestartPolicy::Always {
        // Running, or every container is between restarts.
        "Running"
    } else if stopped == succeeded {
        "Succeeded"
    } else if runtime.restart_policy == RestartPolicy::Never {
        "Failed"
    } else {
        "Running"
    }
}

fn initialized(runtime: &PodRuntime) -> bool {
    runtime.init_containers.iter().all(ContainerRuntime::succeeded)
}

fn names(containers: &[&ContainerRuntime]) -> String {
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    format!("[{}]", names.join(" "))
}

/// The full status the agent writes for `pod` (the pod as last seen, for readiness gates and
/// the previous conditions' transition times). Only the conditions the kubelet owns are
/// included; a strategic merge patch keeps the others (PodScheduled, readiness gates).
pub fn pod_status(runtime: &PodRuntime, pod: &Pod, now: Timestamp) -> PodStatus {
    let phase = pod_phase(runtime);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let previous = pod.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let generation = pod.metadata.generation;
    let condition = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(time(now));
        PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: if ok { None } else { reason.map(str::to_owned) },
            message: if ok { None } else { message },
            last_transition_time: Some(last_transition_time),
            observed_generation: generation,
            last_probe_time: None,
        }
    };

    let incomplete: Vec<&ContainerRuntime> = runtime.init_containers.iter().filter(|c| !c.succeeded()).collect();
    let initialized = incomplete.is_empty();
    let unready: Vec<&ContainerRuntime> = runtime.containers.iter().filter(|c| !c.ready).collect();
    let containers_ready = unready.is_empty() && !runtime.containers.is_empty() && initialized;
    let (not_ready_reason, not_ready_message) = if terminal {
        ("PodCompleted", None)
    } else if !initialized {
        ("ContainersNotInitialized", Some(format!("containers with incomplete status: {}", names(&incomplete))))
    } else {
        ("ContainersNotReady", Some(format!("containers with unready status: {}", names(&unready))))
    };
    let gates: Vec<&str> = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|g| g.condition_type.as_str())
        .collect();
    let missing_gates: Vec<&str> =
        gates.iter().copied().filter(|gate| !previous.iter().any(|c| c.type_ == *gate && c.status == "True")).collect();
    let (ready_reason, ready_message) = if containers_ready && !missing_gates.is_empty() {
        (
            "ReadinessGatesNotReady",
            Some(format!(
                "corresponding condition of pod readiness gate {missing_gates:?} does not exist or is not True"
            )),
        )
    } else {
        (not_ready_reason, not_ready_message.clone())
    };

    let conditions = vec![
        condition("PodReadyToStartContainers", runtime.sandbox_ready, None, None),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: {}", names(&incomplete))),
        ),
        condition("ContainersReady", containers_ready && !terminal, Some(not_ready_reason), not_ready_message),
        condition(
            "Ready",
            containers_ready && !terminal && missing_gates.is_empty(),
            Some(ready_reason),
            ready_message,
        ),
    ];

    let pod_ip = runtime.pod_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(runtime.host_ip.to_string()),
        host_ips: Some(vec![HostIP { ip: runtime.host_ip.to_string() }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: runtime.start_time.map(time),
        init_container_statuses: (!runtime.init_containers.is_empty())
            .then(|| runtime.init_containers.iter().map(|c| c.to_api(true)).collect()),
        container_statuses: Some(runtime.containers.iter().map(|c| c.to_api(false)).collect()),
        observed_generation: generation,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodReadinessGate, PodSpec};

    use super::*;

    fn now() -> Timestamp {
        "2026-01-02T03:04:05Z".parse().unwrap()
    }

    fn running(name: &str, ready: bool) -> ContainerRuntime {
        ContainerRuntime {
            state: ContainerState::Running { started_at: now() },
            started: true,
            ready,
            ..ContainerRuntime::waiting(name, "img", "", None)
        }
    }

    fn terminated(name: &str, exit_code: i32) -> ContainerRuntime {
        ContainerRuntime {
            state: ContainerState::Terminated(termination(exit_code)),
            ..ContainerRuntime::waiting(name, "img", "", None)
        }
    }

    fn termination(exit_code: i32) -> Termination {
        Termination {
            exit_code,
            signal: None,
            reason: Termination::reason_for(exit_code).to_owned(),
            message: None,
            started_at: Some(now()),
            finished_at: now(),
            container_id: None,
        }
    }

    fn crash_looping(name: &str) -> ContainerRuntime {
        ContainerRuntime {
            last_termination: Some(termination(1)),
            restart_count: 1,
            ..ContainerRuntime::waiting(name, "img", "CrashLoopBackOff", None)
        }
    }

    fn runtime(policy: RestartPolicy, init: Vec<ContainerRuntime>, containers: Vec<ContainerRuntime>) -> PodRuntime {
        PodRuntime {
            restart_policy: policy,
            init_containers: init,
            containers,
            sandbox_ready: true,
            pod_ip: Some(Ipv4Addr::new(127, 0, 1, 2)),
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            start_time: Some(now()),
        }
    }

    fn condition<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
        status.conditions.as_ref().unwrap().iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn phase_follows_the_kubelet() {
        use RestartPolicy::*;
        let waiting = || ContainerRuntime::waiting("a", "img", "ContainerCreating", None);
        assert_eq!(pod_phase(&runtime(Always, vec![], vec![waiting()])), "Pending");
        assert_eq!(pod_phase(&runtime(Always, vec![], vec![running("a", false), waiting()])), "Pending");
        assert_eq!(pod_phase(&runtime(Always, vec![], vec![running("a", false)])), "Running");
        assert_eq!(pod_phase(&runtime(Always, vec![], vec![crash_looping("a")])), "Running");
        assert_eq!(pod_phase(&runtime(Never, vec![], vec![terminated("a", 0), terminated("b", 0)])), "Succeeded");
        assert_eq!(pod_phase(&runtime(Never, vec![], vec![terminated("a", 0), terminated("b", 2)])), "Failed");
        assert_eq!(pod_phase(&runtime(Never, vec![], vec![terminated("a", 2), running("b", true)])), "Running");
        assert_eq!(pod_phase(&runtime(OnFailure, vec![], vec![terminated("a", 0)])), "Succeeded");
        assert_eq!(pod_phase(&runtime(OnFailure, vec![], vec![terminated("a", 0), crash_looping("b")])), "Running");
        assert_eq!(pod_phase(&runtime(Always, vec![running("init", false)], vec![waiting()])), "Pending");
        assert_eq!(pod_phase(&runtime(Always, vec![crash_looping("init")], vec![waiting()])), "Pending");
        assert_eq!(pod_phase(&runtime(Never, vec![terminated("init", 1)], vec![waiting()])), "Failed");
        assert_eq!(pod_phase(&runtime(Always, vec![terminated("init", 0)], vec![running("a", true)])), "Running");
    }

    #[test]
    fn ready_needs_every_container_ready() {
        let pod = Pod::default();
        let status = pod_status(
            &runtime(RestartPolicy::Always, vec![], vec![running("a", true), running("b", false)]),
            &pod,
            now(),
        );
        assert_eq!(status.phase.as_deref(), Some("Running"));
        let ready = condition(&status, "Ready");
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("False", Some("ContainersNotReady")));
        assert_eq!(ready.message.as_deref(), Some("containers with unready status: [b]"));
        assert_eq!(condition(&status, "Initialized").status, "True");
        assert_eq!(condition(&status, "PodReadyToStartContainers").status, "True");

        let status = pod_status(&runtime(RestartPolicy::Always, vec![], vec![running("a", true)]), &pod, now());
        assert_eq!(condition(&status, "Ready").status, "True");
        assert_eq!(condition(&status, "ContainersReady").status, "True");
        assert_eq!(status.pod_ip.as_deref(), Some("127.0.1.2"));
        assert_eq!(status.pod_ips.unwrap()[0].ip, "127.0.1.2");
        assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let earlier: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let pod = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![
                    PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(earlier)),
                        ..Default::default()
                    },
                    PodCondition {
                        type_: "Initialized".into(),
                        status: "False".into(),
                        last_transition_time: Some(Time(earlier)),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = pod_status(&runtime(RestartPolicy::Always, vec![], vec![running("a", true)]), &pod, now());
        assert_eq!(condition(&status, "Ready").last_transition_time, Some(Time(earlier)));
        assert_eq!(condition(&status, "Initialized").last_transition_time, Some(Time(now())));
    }

    #[test]
    fn readiness_gates_hold_ready_back() {
        let mut pod = Pod {
            spec: Some(PodSpec {
                readiness_gates: Some(vec![PodReadinessGate { condition_type: "example.com/gate".into() }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let rt = runtime(RestartPolicy::Always, vec![], vec![running("a", true)]);
        let status = pod_status(&rt, &pod, now());
        assert_eq!(condition(&status, "ContainersReady").status, "True");
        assert_eq!(condition(&status, "Ready").reason.as_deref(), Some("ReadinessGatesNotReady"));
        pod.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "example.com/gate".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(condition(&pod_status(&rt, &pod, now()), "Ready").status, "True");
    }

    #[test]
    fn init_containers_gate_initialized() {
        let rt = runtime(
            RestartPolicy::Always,
            vec![terminated("fetch", 0), running("warm", false)],
            vec![ContainerRuntime::waiting("a", "img", "PodInitializing", None)],
        );
        let status = pod_status(&rt, &Pod::default(), now());
        let initialized = condition(&status, "Initialized");
        assert_eq!(initialized.status, "False");
        assert_eq!(initialized.message.as_deref(), Some("containers with incomplete status: [warm]"));
        assert_eq!(condition(&status, "Ready").reason.as_deref(), Some("ContainersNotInitialized"));
        let init = status.init_container_statuses.unwrap();
        assert!(init[0].ready && !init[1].ready);
    }

    #[test]
    fn container_statuses_carry_state_and_restarts() {
        let status =
            pod_status(&runtime(RestartPolicy::Always, vec![], vec![crash_looping("a")]), &Pod::default(), now());
        let container = &status.container_statuses.unwrap()[0];
        assert_eq!(container.restart_count, 1);
        let waiting = container.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = container.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert_eq!(container.started, Some(false));
        assert!(status.init_container_statuses.is_none());
    }

    #[test]
    fn terminal_pods_are_not_ready_with_pod_completed() {
        let status =
            pod_status(&runtime(RestartPolicy::Never, vec![], vec![terminated("a", 0)]), &Pod::default(), now());
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        assert_eq!(condition(&status, "Ready").reason.as_deref(), Some("PodCompleted"));
    }
}
