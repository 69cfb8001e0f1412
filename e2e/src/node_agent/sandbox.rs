//! Preparing a pod to run: its directory, its volumes written out, and every container's
//! program, environment and working directory resolved (the "sandbox" of a real runtime).

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use super::agent::AgentContext;
use super::command::container_program;
use super::container::PreparedContainer;
use super::env::{ApiObjects, Env, PodFacts, container_env, referenced_objects};
use super::error::NodeAgentError;
use super::probe_exec::ProbeTarget;
use super::volumes::{
    VolumeContent, container_mounts, rewrite_paths, service_account_kubeconfig, service_account_mount, token_audiences,
    volume_content, volume_dir,
};

/// `<work-dir>/<namespace>_<name>`: a pod's directory (logs, volumes, `root/`).
pub fn pod_dir(work_dir: &Path, namespace: &str, name: &str) -> PathBuf {
    work_dir.join(format!("{namespace}_{name}"))
}

/// `<pod-dir>/<container>.log`.
pub fn log_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join(format!("{container}.log"))
}

/// Host and port of the API server URL (`https://127.0.0.1:6443` → `127.0.0.1`, 6443).
pub(crate) fn api_server_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let default_port = if url.starts_with("http://") { 80 } else { 443 };
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
        }
        _ => Some((authority.trim_matches(['[', ']']).to_owned(), default_port)),
    }
}

/// What every container of a pod gets before its own env: the variables the agent passes
/// through from its own environment, HOME (the pod's `root/`), HOSTNAME, POD_IP and
/// OCR_LISTEN_HOST (the pod IP; the inference pod's listen-host override) and, when the API
/// server is known, KUBERNETES_SERVICE_HOST/PORT.
pub(crate) fn base_env(
    inherit: &[String],
    lookup: impl Fn(&str) -> Option<String>,
    pod_name: &str,
    pod_ip: Ipv4Addr,
    pod_dir: &Path,
    api_server: Option<&str>,
) -> Env {
    let mut env: Env = inherit.iter().filter_map(|name| lookup(name).map(|value| (name.clone(), value))).collect();
    env.push(("HOME".into(), pod_dir.join("root").display().to_string()));
    env.push(("HOSTNAME".into(), pod_name.to_owned()));
    env.push(("POD_IP".into(), pod_ip.to_string()));
    env.push(("OCR_LISTEN_HOST".into(), pod_ip.to_string()));
    if let Some((host, port)) = api_server.and_then(api_server_host_port) {
        env.push(("KUBERNETES_SERVICE_HOST".into(), host));
        env.push(("KUBERNETES_SERVICE_PORT".into(), port.to_string()));
    }
    env
}

/// Fetches the ConfigMaps and Secrets the pod refers to (missing ones are left out).
async fn fetch_objects(client: &kube::Client, namespace: &str, pod: &Pod) -> Result<ApiObjects, NodeAgentError> {
    let (config_map_names, secret_names) = referenced_objects(pod);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut objects = ApiObjects::default();
    for name in config_map_names {
        let found =
            config_maps.get_opt(&name).await.map_err(|e| NodeAgentError::kube(format!("get configmap {name}"), e))?;
        objects.config_maps.extend(found.map(|map| (name, map)));
    }
    for name in secret_names {
        let found = secrets.get_opt(&name).await.map_err(|e| NodeAgentError::kube(format!("get secret {name}"), e))?;
        objects.secrets.extend(found.map(|secret| (name, secret)));
    }
    Ok(objects)
}

/// ServiceAccount tokens bound to the pod, one per projected audience.
async fn fetch_tokens(
    client: &kube::Client,
    namespace: &str,
    pod: &Pod,
) -> Result<BTreeMap<String, String>, NodeAgentError> {
    let audiences = token_audiences(pod);
    let mut tokens = BTreeMap::new();
    if audiences.is_empty() {
        return Ok(tokens);
    }
    let account = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    for audience in audiences {
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: (!audience.is_empty()).then(|| vec![audience.clone()]),
                expiration_seconds: Some(3600),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            }),
            ..Default::default()
        };
        let response =
            accounts.create_token_request(&account, &PostParams::default(), &request).await.map_err(|e| {
                NodeAgentError::kube(format!("request a token for serviceaccount {namespace}/{account}"), e)
            })?;
        let token = response.status.and_then(|s| s.token).unwrap_or_default();
        tokens.insert(audience, token);
    }
    Ok(tokens)
}

fn write_volume(dir: &Path, content: &VolumeContent) -> Result<(), NodeAgentError> {
    match content {
        VolumeContent::Directory => fs::create_dir_all(dir).map_err(|e| NodeAgentError::io("create", dir, e)),
        VolumeContent::Files(files) => {
            if dir.exists() {
                fs::remove_dir_all(dir).map_err(|e| NodeAgentError::io("clear", dir, e))?;
            }
            fs::create_dir_all(dir).map_err(|e| NodeAgentError::io("create", dir, e))?;
            for file in files {
                let path = dir.join(&file.path);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| NodeAgentError::io("create", parent, e))?;
                }
                fs::write(&path, &file.contents).map_err(|e| NodeAgentError::io("write", &path, e))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(file.mode & 0o777))
                    .map_err(|e| NodeAgentError::io("chmod", &path, e))?;
            }
            Ok(())
        }
    }
}

/// The prepared init containers and containers of a pod.
#[derive(Debug)]
pub(crate) struct PreparedPod {
    pub init_containers: Vec<Arc<PreparedContainer>>,
    pub containers: Vec<Arc<PreparedContainer>>,
}

/// Writes the pod's volumes and resolves its containers. `executables` are the mapped images
/// of the init containers, then the containers.
pub(crate) async fn prepare_pod(
    agent: &AgentContext,
    pod: &Pod,
    pod_dir: &Path,
    pod_ip: Ipv4Addr,
    executables: &[PathBuf],
) -> Result<PreparedPod, NodeAgentError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let objects = fetch_objects(&agent.client, &namespace, pod).await?;
    let tokens = fetch_tokens(&agent.client, &namespace, pod).await?;
    let facts = PodFacts { pod, pod_ip, host_ip: agent.host_ip, node_name: &agent.config.node_name };

    let root = pod_dir.join("root");
    fs::create_dir_all(&root).map_err(|e| NodeAgentError::io("create", &root, e))?;
    for volume in spec.volumes.iter().flatten() {
        let content = volume_content(volume, &facts, &objects, &tokens)?;
        write_volume(&volume_dir(volume, pod_dir, &agent.config.work_dir, &namespace), &content)?;
    }

    let base = base_env(
        &agent.config.inherit_env,
        |name| std::env::var(name).ok(),
        &name,
        pod_ip,
        pod_dir,
        agent.config.api_server.as_deref(),
    );
    let pod_grace = Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64);
    let all: Vec<&Container> = spec.init_containers.iter().flatten().chain(&spec.containers).collect();
    let mut prepared = Vec::with_capacity(all.len());
    for (container, executable) in all.into_iter().zip(executables) {
        let env = container_env(container, &base, &facts, &objects)?;
        let mounts = container_mounts(container, pod, &env, pod_dir, &agent.config.work_dir)?;
        // Only what comes from the pod spec is rewritten; the agent's own values are host paths already.
        let mut env: Env = env
            .into_iter()
            .map(|(k, v)| {
                if base.contains(&(k.clone(), v.clone())) {
                    (k, v)
                } else {
                    let v = rewrite_paths(&v, &mounts);
                    (k, v)
                }
            })
            .collect();
        if let (Some(server), Some(mount)) = (agent.config.api_server.as_deref(), service_account_mount(&mounts))
            && !env.iter().any(|(k, _)| k == "KUBECONFIG")
        {
            let path = pod_dir.join(format!("{}.kubeconfig", container.name));
            fs::write(&path, service_account_kubeconfig(server, &mount.host_path, &namespace))
                .map_err(|e| NodeAgentError::io("write", &path, e))?;
            env.push(("KUBECONFIG".into(), path.display().to_string()));
        }
        let mut program = container_program(container, executable, &env);
        program.args = program.args.iter().map(|arg| rewrite_paths(arg, &mounts)).collect();
        // The image's binary is a host path already (the agent's own value; a checkout under
        // /tmp must not be read as the pod's /tmp emptyDir): only a command from the pod spec
        // is rewritten.
        if program.executable != *executable {
            program.executable = PathBuf::from(rewrite_paths(&program.executable.to_string_lossy(), &mounts));
        }
        let cwd = match container.working_dir.as_deref().filter(|d| !d.is_empty()) {
            None => root.clone(),
            Some(dir) => {
                let rewritten = rewrite_paths(dir, &mounts);
                if rewritten == dir { root.join(dir.trim_start_matches('/')) } else { PathBuf::from(rewritten) }
            }
        };
        fs::create_dir_all(&cwd).map_err(|e| NodeAgentError::io("create", &cwd, e))?;
        let kill_grace = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
            probe
                .as_ref()
                .and_then(|p| p.termination_grace_period_seconds)
                .map(|s| Duration::from_secs(s.max(0) as u64))
        };
        prepared.push(Arc::new(PreparedContainer {
            name: container.name.clone(),
            probe_kill_grace: kill_grace(&container.liveness_probe)
                .or(kill_grace(&container.startup_probe))
                .unwrap_or(pod_grace),
            probe_target: Arc::new(ProbeTarget {
                pod_ip,
                ports: container.ports.clone().unwrap_or_default(),
                env: env.clone(),
                cwd: cwd.clone(),
                mounts,
            }),
            program,
            env,
            cwd,
            log_path: log_path(pod_dir, &container.name),
            startup: container.startup_probe.clone(),
            readiness: container.readiness_probe.clone(),
            liveness: container.liveness_probe.clone(),
        }));
    }
    let init_count = spec.init_containers.as_ref().map_or(0, Vec::len);
    let containers = prepared.split_off(init_count);
    Ok(PreparedPod { init_containers: prepared, containers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_server_urls_split_into_host_and_port() {
        assert_eq!(api_server_host_port("https://127.0.0.1:6443"), Some(("127.0.0.1".into(), 6443)));
        assert_eq!(api_server_host_port("https://localhost:8443/"), Some(("localhost".into(), 8443)));
        assert_eq!(api_server_host_port("https://kubernetes"), Some(("kubernetes".into(), 443)));
        assert_eq!(api_server_host_port("https://[::1]:6443"), Some(("::1".into(), 6443)));
    }

    #[test]
    fn base_env_carries_the_pod_ip_and_the_listen_host() {
        let env = base_env(
            &["PATH".into(), "ABSENT".into()],
            |name| (name == "PATH").then(|| "/usr/bin".to_owned()),
            "web-1",
            Ipv4Addr::new(127, 0, 1, 5),
            Path::new("/w/ns_web-1"),
            Some("https://127.0.0.1:6443"),
        );
        let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/usr/bin"));
        assert_eq!(get("ABSENT"), None);
        assert_eq!(get("POD_IP"), Some("127.0.1.5"));
        assert_eq!(get("OCR_LISTEN_HOST"), Some("127.0.1.5"));
        assert_eq!(get("HOSTNAME"), Some("web-1"));
        assert_eq!(get("HOME"), Some("/w/ns_web-1/root"));
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("127.0.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("6443"));
    }

    #[test]
    fn pod_paths() {
        let dir = pod_dir(Path::new("/w"), "ns", "p");
        assert_eq!(dir, Path::new("/w/ns_p"));
        assert_eq!(log_path(&dir, "app"), Path::new("/w/ns_p/app.log"));
    }
}
