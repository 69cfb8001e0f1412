//! One pod on this node, from scheduling to deletion: sandbox (IP, directory), images,
//! volumes and env, init containers in order, then the containers; status written on every
//! change; on deletion the containers are stopped (SIGTERM, grace, SIGKILL) and the pod
//! object is deleted for good, as the kubelet does.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::agent::AgentContext;
use super::backoff::RestartPolicy;
use super::config::FIELD_MANAGER;
use super::container::{RunOutcome, RunnerContext, run_container, stop_requested};
use super::error::NodeAgentError;
use super::image_map::unknown_image_message;
use super::pod_state::{PodShared, Slot};
use super::sandbox::{pod_dir, prepare_pod};
use super::status::{ContainerRuntime, ContainerState, PodRuntime, pod_status};
use super::volumes::volumes_dir;

/// How a pod's life on this node ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// deletionTimestamp set: stop gracefully, then delete the object.
    Deleted,
    /// The object is gone from the API (force deletion): stop, nothing to delete.
    Gone,
    /// The agent stops: stop the processes, leave the API alone.
    Shutdown,
}

/// The grace period of a pod being deleted.
pub(crate) fn deletion_grace(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(seconds.max(0) as u64)
}

fn all_containers(pod: &Pod) -> Vec<(Slot, &Container)> {
    let Some(spec) = pod.spec.as_ref() else { return Vec::new() };
    let init = spec.init_containers.iter().flatten().enumerate().map(|(i, c)| (Slot::Init(i), c));
    init.chain(spec.containers.iter().enumerate().map(|(i, c)| (Slot::Main(i), c))).collect()
}

/// The reason a not-yet-started container waits with.
fn initial_reason(pod: &Pod, slot: Slot) -> &'static str {
    let has_init = pod.spec.as_ref().and_then(|s| s.init_containers.as_ref()).is_some_and(|i| !i.is_empty());
    match slot {
        Slot::Main(_) if !has_init => "ContainerCreating",
        _ => "PodInitializing",
    }
}

fn initial_runtime(pod: &Pod, pod_ip: Option<Ipv4Addr>, agent: &AgentContext, sandbox_ready: bool) -> PodRuntime {
    let spec = pod.spec.clone().unwrap_or_default();
    let waiting = |slot: Slot, c: &Container| {
        ContainerRuntime::waiting(&c.name, c.image.as_deref().unwrap_or_default(), initial_reason(pod, slot), None)
    };
    PodRuntime {
        restart_policy: RestartPolicy::of(&spec),
        init_containers: spec
            .init_containers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| waiting(Slot::Init(i), c))
            .collect(),
        containers: spec.containers.iter().enumerate().map(|(i, c)| waiting(Slot::Main(i), c)).collect(),
        sandbox_ready,
        pod_ip,
        host_ip: agent.host_ip,
        start_time: Some(Timestamp::now()),
    }
}

/// Runs one pod until it is deleted, gone, or the agent stops. `pod` carries the latest
/// version of the object (`None` once it is gone from the API).
pub(crate) async fn run_pod(agent: Arc<AgentContext>, mut pod: watch::Receiver<Option<Pod>>) {
    let Some(first) = pod.borrow_and_update().clone() else { return };
    let namespace = first.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = first.metadata.name.clone().unwrap_or_default();
    let key = format!("{namespace}/{name}");
    let dir = pod_dir(&agent.config.work_dir, &namespace, &name);

    let ports: Vec<u16> = all_containers(&first)
        .iter()
        .flat_map(|(_, c)| c.ports.iter().flatten())
        .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    let pod_ip = agent
        .ip_pool
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .allocate_where(|ip| ports.iter().all(|port| std::net::TcpListener::bind((ip, *port)).is_ok()));
    let dir_ready = match fs::create_dir_all(&dir) {
        Ok(()) => true,
        Err(error) => {
            warn!(pod = %key, dir = %dir.display(), %error, "cannot create the pod directory");
            false
        }
    };
    info!(pod = %key, ip = ?pod_ip, dir = %dir.display(), "pod assigned to this node");
    let shared = PodShared::new(initial_runtime(&first, pod_ip, &agent, pod_ip.is_some() && dir_ready));

    let (stop_tx, stop_rx) = watch::channel(None);
    let writer_stop = CancellationToken::new();
    let writer = tokio::spawn(status_writer(agent.clone(), shared.clone(), pod.clone(), writer_stop.clone()));
    let lifecycle =
        lifecycle(agent.clone(), first.clone(), shared.clone(), pod_ip.filter(|_| dir_ready), dir.clone(), stop_rx);
    tokio::pin!(lifecycle);

    let mut done = false;
    let mut ending = None;
    let mut last_grace = deletion_grace(&first);
    while !(done && ending.is_some()) {
        tokio::select! {
            () = &mut lifecycle, if !done => done = true,
            changed = pod.changed(), if ending.is_none() => {
                let latest = if changed.is_ok() { pod.borrow_and_update().clone() } else { None };
                match latest {
                    None => {
                        info!(pod = %key, "pod removed from the API; stopping its containers");
                        ending = Some(Ending::Gone);
                        stop_tx.send_replace(Some(last_grace.min(Duration::from_secs(2))));
                    }
                    Some(latest) if latest.metadata.deletion_timestamp.is_some() => {
                        let grace = deletion_grace(&latest);
                        info!(pod = %key, grace_seconds = grace.as_secs(), "pod deleted; stopping its containers");
                        ending = Some(Ending::Deleted);
                        stop_tx.send_replace(Some(grace));
                    }
                    Some(latest) => last_grace = deletion_grace(&latest),
                }
            }
            () = agent.shutdown.cancelled(), if ending.is_none() => {
                ending = Some(Ending::Shutdown);
                stop_tx.send_replace(Some(agent.config.shutdown_grace));
            }
        }
    }

    let ending = ending.unwrap_or(Ending::Shutdown);
    if ending == Ending::Deleted {
        writer_stop.cancel();
        let _ = writer.await;
        let api: Api<Pod> = Api::namespaced(agent.client.clone(), &namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: first.metadata.uid.clone(), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => info!(pod = %key, "pod stopped and deleted"),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => warn!(pod = %key, %error, "cannot delete the stopped pod"),
        }
    } else {
        writer.abort();
    }
    if let Some(ip) = pod_ip {
        agent.ip_pool.lock().unwrap_or_else(PoisonError::into_inner).release(ip);
    }
    if ending != Ending::Shutdown {
        remove_pod_files(&dir);
    }
    debug!(pod = %key, ?ending, "pod worker done");
}

/// Removes a stopped pod's volumes and `root/`; the logs stay for post-mortems.
fn remove_pod_files(dir: &Path) {
    for sub in [volumes_dir(dir), dir.join("root")] {
        if sub.exists()
            && let Err(error) = fs::remove_dir_all(&sub)
        {
            warn!(dir = %sub.display(), %error, "cannot remove pod files");
        }
    }
}

/// Everything from images to the containers' end. Returns when every container is finished
/// for good, or the pod is being stopped and everything it started is stopped.
async fn lifecycle(
    agent: Arc<AgentContext>,
    pod: Pod,
    shared: Arc<PodShared>,
    pod_ip: Option<Ipv4Addr>,
    dir: PathBuf,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let containers = all_containers(&pod);
    let Some(pod_ip) = pod_ip else {
        let range = agent.config.pod_ip_range.as_deref().unwrap_or_default();
        warn!(pod = %key, %range, "no pod IP or pod directory; the pod cannot start");
        let message = format!("no free pod IP in {range} (or the pod directory cannot be created)");
        for (slot, _) in &containers {
            shared.update(*slot, |c| {
                c.state = ContainerState::Waiting { reason: "ContainerCreating".into(), message: Some(message.clone()) }
            });
        }
        stop_requested(&mut stop).await;
        return;
    };

    let mut executables = Vec::with_capacity(containers.len());
    let mut unknown = false;
    for (slot, container) in &containers {
        let image = container.image.clone().unwrap_or_default();
        match agent.config.image_map.resolve(&image) {
            Some(path) => {
                let image_id = format!("file://{}", path.display());
                shared.update(*slot, |c| c.image_id = image_id);
                executables.push(path.to_owned());
            }
            None => {
                unknown = true;
                let message = unknown_image_message(&image, &agent.config.image_map);
                warn!(pod = %key, container = %container.name, %image, "image not in the image map");
                shared.update(*slot, |c| {
                    c.state = ContainerState::Waiting { reason: "ErrImagePull".into(), message: Some(message) }
                });
                executables.push(PathBuf::new());
            }
        }
    }
    if unknown {
        stop_requested(&mut stop).await;
        return;
    }

    let prepared = loop {
        match prepare_pod(&agent, &pod, &dir, pod_ip, &executables).await {
            Ok(prepared) => break prepared,
            Err(error) => {
                let reason = match error {
                    NodeAgentError::ContainerConfig(_) | NodeAgentError::Volume { .. } => "CreateContainerConfigError",
                    _ => "CreateContainerError",
                };
                warn!(pod = %key, %error, "cannot prepare the pod; retrying in 5s");
                let message = error.to_string();
                for (slot, _) in &containers {
                    shared.update(*slot, |c| {
                        c.state = ContainerState::Waiting { reason: reason.into(), message: Some(message.clone()) }
                    });
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop_requested(&mut stop) => return,
                }
            }
        }
    };
    for (slot, _) in &containers {
        let reason = initial_reason(&pod, *slot);
        shared.update(*slot, |c| c.state = ContainerState::Waiting { reason: reason.into(), message: None });
    }

    let runner = RunnerContext {
        shared: shared.clone(),
        registry: agent.registry.clone(),
        backoff: agent.config.restart_backoff,
        policy: RestartPolicy::of(pod.spec.as_ref().unwrap_or(&Default::default())),
        pod: key.clone(),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        stop: stop.clone(),
    };
    for (i, container) in prepared.init_containers.iter().enumerate() {
        match run_container(runner.clone(), Slot::Init(i), container.clone()).await {
            RunOutcome::Exited(0) => {}
            RunOutcome::Exited(code) => {
                warn!(pod = %key, container = %container.name, exit_code = code, "init container failed; the pod failed");
                return;
            }
            RunOutcome::Stopped => return,
        }
    }
    let has_init = !prepared.init_containers.is_empty();
    if has_init {
        shared.update_pod(|p| {
            for c in &mut p.containers {
                c.state = ContainerState::Waiting { reason: "ContainerCreating".into(), message: None };
            }
        });
    }
    let mut runners = JoinSet::new();
    for (i, container) in prepared.containers.iter().enumerate() {
        runners.spawn(run_container(runner.clone(), Slot::Main(i), container.clone()));
    }
    while runners.join_next().await.is_some() {}
}

/// Writes the pod status whenever the runtime state (or the pod) changes; on `stop`, writes
/// a last time and returns.
async fn status_writer(
    agent: Arc<AgentContext>,
    shared: Arc<PodShared>,
    mut pod: watch::Receiver<Option<Pod>>,
    stop: CancellationToken,
) {
    let Some(first) = pod.borrow().clone() else { return };
    let namespace = first.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = first.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(agent.client.clone(), &namespace);
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let mut last: Option<PodStatus> = None;
    let mut retry = false;
    let mut pod_open = true;
    loop {
        let last_round = tokio::select! {
            () = shared.changed() => false,
            changed = pod.changed(), if pod_open => { pod_open = changed.is_ok(); false }
            () = tokio::time::sleep(Duration::from_secs(1)), if retry => false,
            () = stop.cancelled() => true,
        };
        if !last_round {
            // Coalesce bursts (a container start changes state, started and ready at once).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let Some(current) = pod.borrow().clone() else { return };
        let status = pod_status(&shared.snapshot(), &with_conditions_of(current, last.as_ref()), Timestamp::now());
        if last.as_ref() != Some(&status) {
            match api.patch_status(&name, &params, &Patch::Strategic(serde_json::json!({ "status": status }))).await {
                Ok(_) => {
                    debug!(pod = %format!("{namespace}/{name}"), phase = ?status.phase, "status written");
                    last = Some(status);
                    retry = false;
                }
                Err(kube::Error::Api(response)) if response.code == 404 => return,
                Err(error) => {
                    warn!(pod = %format!("{namespace}/{name}"), %error, "cannot write the pod status; retrying");
                    retry = true;
                }
            }
        }
        if last_round {
            return;
        }
    }
}

/// The pod with the conditions the agent wrote last laid over its status, so that transition
/// times stay put while the watch has not caught up with our own patch.
fn with_conditions_of(mut pod: Pod, last: Option<&PodStatus>) -> Pod {
    let Some(ours) = last.and_then(|s| s.conditions.as_ref()) else { return pod };
    let status = pod.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for condition in ours {
        match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
            Some(existing) => *existing = condition.clone(),
            None => conditions.push(condition.clone()),
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn deletion_grace_prefers_the_deletion_request() {
        let mut pod = Pod {
            spec: Some(PodSpec { termination_grace_period_seconds: Some(7), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(deletion_grace(&pod), Duration::from_secs(7));
        pod.metadata = ObjectMeta { deletion_grace_period_seconds: Some(2), ..Default::default() };
        assert_eq!(deletion_grace(&pod), Duration::from_secs(2));
        assert_eq!(deletion_grace(&Pod::default()), Duration::from_secs(30));
    }

    #[test]
    fn our_last_conditions_win_over_a_stale_pod() {
        let condition = |type_: &str, status: &str| PodCondition {
            type_: type_.into(),
            status: status.into(),
            ..Default::default()
        };
        let pod = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![condition("PodScheduled", "True"), condition("Ready", "False")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let last = PodStatus {
            conditions: Some(vec![condition("Ready", "True"), condition("Initialized", "True")]),
            ..Default::default()
        };
        let merged = with_conditions_of(pod, Some(&last)).status.unwrap().conditions.unwrap();
        let statuses: Vec<(&str, &str)> = merged.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(statuses, [("PodScheduled", "True"), ("Ready", "True"), ("Initialized", "True")]);
    }
}
