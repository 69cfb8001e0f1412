//! The local node agent against the real control plane: the real scheduler binds pods to
//! the agent's Node, the real controllers turn Deployments into pods and Ready pods into
//! EndpointSlices; the agent runs the containers as local processes.
//!
//! Every test starts its own agent (its own Node, pinned by nodeSelector) in its own
//! namespace of the shared control plane. Pod IPs come from 10.244.0.0/16, which
//! `tools/local-pod-network.sh` makes local (EndpointSlices refuse loopback addresses).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube_ocr_e2e::control_plane::{LocalControlPlane, is_alive};
use kube_ocr_e2e::node_agent::{Backoff, ImageMap, NodeAgent, NodeAgentConfig, NodeAgentHandle};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(90);

struct Fixture {
    client: kube::Client,
    namespace: String,
    agent: NodeAgentHandle,
    _work_dir: tempfile::TempDir,
}

/// A control plane namespace and a fresh agent whose images are a python HTTP server, a
/// shell and sleep.
async fn fixture(name: &str) -> Fixture {
    let _ = tracing_subscriber::fmt().with_env_filter("info,kube_ocr_e2e=debug").with_test_writer().try_init();
    let cluster = LocalControlPlane::shared().unwrap_or_else(|err| panic!("{err}"));
    let client = cluster.client().unwrap();
    let namespace = cluster.create_namespace(name).await.unwrap();
    let work_dir = tempfile::Builder::new().prefix("kube-ocr-agent-").tempdir().unwrap();
    let http_server = write_script(
        work_dir.path(),
        "http-server",
        "#!/bin/sh\nexec python3 -m http.server --bind \"$POD_IP\" \"${1:-8080}\"\n",
    );
    let images = ImageMap::new([
        ("example.com/http-server", http_server),
        ("example.com/sh", PathBuf::from("/bin/sh")),
        ("example.com/sleep", PathBuf::from("/bin/sleep")),
    ]);
    let node_name = format!("{namespace}-node");
    let mut config = NodeAgentConfig::new(&node_name, work_dir.path().join("agent"), images);
    config.api_server = Some(cluster.apiserver_url().to_owned());
    config.restart_backoff =
        Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(8), ..Backoff::default() };
    config.shutdown_grace = Duration::from_secs(2);
    config.deregister_on_shutdown = true;
    let agent = NodeAgent::start(client.clone(), config).await.unwrap();
    agent.wait_schedulable(TIMEOUT).await.unwrap();
    Fixture { client, namespace, agent, _work_dir: work_dir }
}

fn write_script(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

impl Fixture {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A pod spec pinned to this fixture's node, from JSON.
    fn pod_spec(&self, spec: serde_json::Value) -> serde_json::Value {
        let mut spec = spec;
        spec["nodeSelector"] = json!({ "kubernetes.io/hostname": self.agent.node_name() });
        spec["terminationGracePeriodSeconds"] = json!(3);
        spec
    }

    async fn create_pod(&self, name: &str, spec: serde_json::Value) -> Pod {
        let pod: Pod =
            serde_json::from_value(json!({ "metadata": { "name": name }, "spec": self.pod_spec(spec) })).unwrap();
        self.pods().create(&PostParams::default(), &pod).await.unwrap()
    }

    /// Polls pod `name` until `check` returns `Some`.
    async fn wait_pod<T>(&self, name: &str, what: &str, check: impl Fn(&Pod) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let pod = self.pods().get_opt(name).await.unwrap();
            if let Some(found) = pod.as_ref().and_then(&check) {
                return found;
            }
            assert!(Instant::now() < deadline, "timed out waiting for pod {name}: {what}; last seen: {pod:#?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls until pod `name` is gone from the API.
    async fn wait_gone(&self, name: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while let Some(pod) = self.pods().get_opt(name).await.unwrap() {
            assert!(Instant::now() < deadline, "pod {name} never went away: {pod:#?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn shutdown(self) {
        self.agent.shutdown().await;
    }
}

fn container_pid(pod: &Pod) -> Option<i32> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    status.container_id.as_deref()?.strip_prefix("kube-ocr://")?.parse().ok()
}

fn pod_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn http_get(ip: &str, port: u16, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect((ip, port)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn process_running(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    is_alive(pid) && stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_becomes_available_behind_its_endpoint_slice_and_dies_with_it() {
    let f = fixture("agent-deploy").await;
    let labels = json!({ "app": "web" });
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": f.pod_spec(json!({
                    "containers": [{
                        "name": "server",
                        "image": "example.com/http-server:1.0",
                        "args": ["8080"],
                        "ports": [{ "name": "http", "containerPort": 8080 }],
                        "readinessProbe": { "httpGet": { "path": "/", "port": "http" }, "periodSeconds": 1 },
                        "livenessProbe": { "tcpSocket": { "port": 8080 }, "periodSeconds": 2, "initialDelaySeconds": 2 },
                    }],
                })),
            },
        },
    }))
    .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "selector": labels, "ports": [{ "port": 80, "targetPort": "http" }] },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.namespace);
    deployments.create(&PostParams::default(), &deployment).await.unwrap();
    Api::<Service>::namespaced(f.client.clone(), &f.namespace).create(&PostParams::default(), &service).await.unwrap();

    // Available through the real ReplicaSet and Deployment controllers.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let current = deployments.get("web").await.unwrap();
        let available = current
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Available" && c.status == "True"));
        if available && current.status.as_ref().and_then(|s| s.available_replicas) == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "deployment not available: {:#?}", current.status);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let pods = f.pods().list(&ListParams::default().labels("app=web")).await.unwrap().items;
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let pod_name = pod.metadata.name.clone().unwrap();
    let status = pod.status.as_ref().unwrap();
    let ip = status.pod_ip.clone().unwrap();
    assert!(
        f.agent.pod_ips_routable(),
        "pod IPs come from {}, which EndpointSlices refuse; run tools/local-pod-network.sh once (root)",
        f.agent.pod_ip_range()
    );
    assert!(ip.starts_with("10.244."), "pod IP {ip} outside {}", f.agent.pod_ip_range());
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(pod_ready(pod));
    let pid = container_pid(pod).expect("container id carries the pid");
    assert!(process_running(pid));

    // The real EndpointSlice controller lists the pod IP, ready.
    let slices: Api<EndpointSlice> = Api::namespaced(f.client.clone(), &f.namespace);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await.unwrap();
        let ready_addresses: Vec<String> = list
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .flat_map(|e| e.addresses.clone())
            .collect();
        if ready_addresses == [ip.clone()] {
            let port = list.items[0].ports.as_ref().and_then(|p| p.first()).and_then(|p| p.port);
            assert_eq!(port, Some(8080));
            break;
        }
        assert!(Instant::now() < deadline, "endpoint slice never listed {ip}: {:#?}", list.items);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The process really serves on its own IP, and logs where the agent said.
    assert!(http_get(&ip, 8080, "/").await.starts_with("HTTP/1.0 200"));
    let log = f.agent.log_path(&f.namespace, &pod_name, "server");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("kube-ocr-node-agent") && text.contains("GET / HTTP/1.1"), "{text}");

    // Deleting the Deployment deletes the pod (garbage collector), the agent kills the process
    // and removes the pod object.
    deployments.delete("web", &DeleteParams::foreground()).await.unwrap();
    f.wait_gone(&pod_name).await;
    assert!(!process_running(pid), "process {pid} survived its pod");
    assert_eq!(f.agent.running_processes(), 0);
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_image_is_err_image_pull() {
    let f = fixture("agent-image").await;
    f.create_pod("nowhere", json!({ "containers": [{ "name": "app", "image": "example.com/not-mapped:3" }] })).await;
    let (reason, message) = f
        .wait_pod("nowhere", "ErrImagePull", |pod| {
            let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
            let waiting = status.state.as_ref()?.waiting.as_ref()?;
            (waiting.reason.as_deref() == Some("ErrImagePull"))
                .then(|| (waiting.reason.clone(), waiting.message.clone()))
        })
        .await;
    assert_eq!(reason.as_deref(), Some("ErrImagePull"));
    let message = message.unwrap();
    assert!(message.contains("example.com/not-mapped:3") && message.contains("--image-map"), "{message}");
    let pod = f.pods().get("nowhere").await.unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(f.agent.running_processes(), 0);

    // Deletion still completes.
    f.pods().delete("nowhere", &DeleteParams::default()).await.unwrap();
    f.wait_gone("nowhere").await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_gpus_than_the_node_has_stay_pending() {
    let f = fixture("agent-gpu").await;
    let gpus = |n: u32| json!({ "limits": { "nvidia.com/gpu": n.to_string() } });
    let sleeper = |n| json!({ "containers": [{ "name": "app", "image": "example.com/sleep", "args": ["300"], "resources": gpus(n) }] });
    f.create_pod("greedy", sleeper(5)).await;
    f.create_pod("modest", sleeper(2)).await;
    let message = f
        .wait_pod("greedy", "FailedScheduling", |pod| {
            let conditions = pod.status.as_ref()?.conditions.as_ref()?;
            let scheduled = conditions.iter().find(|c| c.type_ == "PodScheduled")?;
            (scheduled.status == "False" && scheduled.reason.as_deref() == Some("Unschedulable"))
                .then(|| scheduled.message.clone().unwrap_or_default())
        })
        .await;
    assert!(message.contains("Insufficient nvidia.com/gpu"), "{message}");
    f.wait_pod("modest", "Running", |pod| (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(()))
        .await;
    let greedy = f.pods().get("greedy").await.unwrap();
    assert_eq!(greedy.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert!(greedy.spec.unwrap().node_name.is_none());
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_container_crash_loops_with_back_off() {
    let f = fixture("agent-crash").await;
    f.create_pod(
        "crasher",
        json!({
            "containers": [{ "name": "app", "image": "example.com/sh", "args": ["-c", "echo about to fail; exit 3"] }],
        }),
    )
    .await;
    let (restarts, exit_code) = f
        .wait_pod("crasher", "CrashLoopBackOff with restarts", |pod| {
            let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
            let waiting = status.state.as_ref()?.waiting.as_ref()?;
            let last = status.last_state.as_ref()?.terminated.as_ref()?;
            (waiting.reason.as_deref() == Some("CrashLoopBackOff") && status.restart_count >= 2)
                .then_some((status.restart_count, last.exit_code))
        })
        .await;
    assert!(restarts >= 2);
    assert_eq!(exit_code, 3);
    let pod = f.pods().get("crasher").await.unwrap();
    assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    assert!(!pod_ready(&pod));
    let log = std::fs::read_to_string(f.agent.log_path(&f.namespace, "crasher", "app")).unwrap();
    assert!(log.matches("about to fail").count() >= 2, "{log}");
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_volumes_and_the_downward_api() {
    let f = fixture("agent-volumes").await;
    let config_map: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "settings" },
        "data": { "greeting": "hello from a configmap", "mode": "fast" },
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(f.client.clone(), &f.namespace)
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap();
    f.create_pod("job", json!({
        "restartPolicy": "Never",
        "volumes": [
            { "name": "config", "configMap": { "name": "settings" } },
            { "name": "scratch", "emptyDir": {} },
        ],
        "initContainers": [{
            "name": "fetch",
            "image": "example.com/sh",
            "args": ["-c", "echo fetched > /work/model.txt"],
            "volumeMounts": [{ "name": "scratch", "mountPath": "/work" }],
        }],
        "containers": [{
            "name": "main",
            "image": "example.com/sh",
            "args": ["-c", "echo ip=$(MY_IP) ns=$(MY_NS) mode=$MODE; cat /etc/app/greeting; echo; cat /models/model.txt; test -n \"$KUBECONFIG\" && echo has-kubeconfig"],
            "env": [
                { "name": "MY_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
                { "name": "MY_NS", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                { "name": "MODE", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "mode" } } },
            ],
            "volumeMounts": [
                { "name": "config", "mountPath": "/etc/app" },
                { "name": "scratch", "mountPath": "/models" },
            ],
        }],
    }))
    .await;
    let pod = f
        .wait_pod("job", "Succeeded", |pod| {
            (pod.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then(|| pod.clone())
        })
        .await;
    let status = pod.status.unwrap();
    let ip = status.pod_ip.unwrap();
    let init = &status.init_container_statuses.unwrap()[0];
    assert_eq!(init.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 0);
    let log = std::fs::read_to_string(f.agent.log_path(&f.namespace, "job", "main")).unwrap();
    let output: Vec<&str> = log.lines().filter(|l| !l.starts_with("==> ")).collect();
    assert_eq!(
        output,
        [
            format!("ip={ip} ns={} mode=fast", f.namespace).as_str(),
            "hello from a configmap",
            "fetched",
            "has-kubeconfig",
        ]
    );
    f.pods().delete("job", &DeleteParams::default()).await.unwrap();
    f.wait_gone("job").await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_liveness_probe_restarts_the_container_after_startup() {
    let f = fixture("agent-liveness").await;
    f.create_pod("flaky", json!({
        "containers": [{
            "name": "server",
            "image": "example.com/http-server",
            "ports": [{ "containerPort": 8080 }],
            "startupProbe": { "httpGet": { "path": "/", "port": 8080 }, "periodSeconds": 1, "failureThreshold": 30 },
            // python's http.server answers 404 here: the container is live-failed once started.
            "livenessProbe": { "httpGet": { "path": "/missing", "port": 8080 }, "periodSeconds": 1, "failureThreshold": 2 },
        }],
    }))
    .await;
    let (restarts, message) = f
        .wait_pod("flaky", "a liveness restart", |pod| {
            let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
            let last = status.last_state.as_ref()?.terminated.as_ref()?;
            (status.restart_count >= 1).then(|| (status.restart_count, last.message.clone().unwrap_or_default()))
        })
        .await;
    assert!(restarts >= 1);
    assert!(message.contains("failed liveness probe") && message.contains("404"), "{message}");
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_pods_and_they_die_with_it_even_on_sigkill() {
    let cluster = LocalControlPlane::shared().unwrap_or_else(|err| panic!("{err}"));
    let client = cluster.client().unwrap();
    let namespace = cluster.create_namespace("agent-bin").await.unwrap();
    let work_dir = tempfile::tempdir().unwrap();
    let node_name = format!("{namespace}-node");
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_ocr-node-agent"))
        .args(["--node-name", &node_name, "--image-map", "example.com/sleep=/bin/sleep", "--capacity-gpus", "2"])
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .arg("--work-dir")
        .arg(work_dir.path())
        .stderr(std::fs::File::create(work_dir.path().join("agent.log")).unwrap())
        .spawn()
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "sleeper" },
        "spec": {
            "nodeSelector": { "kubernetes.io/hostname": node_name },
            "containers": [{ "name": "app", "image": "example.com/sleep:1", "args": ["300"] }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let pid = loop {
        let current = pods.get("sleeper").await.unwrap();
        let running = current.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if let Some(pid) = container_pid(&current).filter(|_| running) {
            break pid;
        }
        let log = std::fs::read_to_string(work_dir.path().join("agent.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "pod never ran: {:#?}\nagent log:\n{log}", current.status);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(process_running(pid));
    let node = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone()).get(&node_name).await.unwrap();
    let capacity = node.status.unwrap().capacity.unwrap();
    assert_eq!(capacity["nvidia.com/gpu"].0, "2");

    // SIGKILL: no handler runs; the orphan guard sees the agent's pipe close.
    agent.kill().unwrap();
    agent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_running(pid) {
        assert!(Instant::now() < deadline, "container {pid} outlived its SIGKILLed agent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Api::<k8s_openapi::api::core::v1::Node>::all(client).delete(&node_name, &DeleteParams::default()).await.unwrap();
}
