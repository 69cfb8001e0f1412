//! The real `ocr-inference-pod` as a plain Deployment on the local cluster: the real
//! scheduler places it on the node agent's Node, its gRPC startup and readiness probes
//! gate it, the real EndpointSlice controller lists it, and a gRPC OCR call to the pod IP
//! from the slice reads a golden document. Deleting the Deployment ends the process.
//!
//! Needs the `ocr-inference-pod` binary built (`cargo test --workspace` builds it) and the
//! bundles from `make setup`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube_ocr_e2e::control_plane::{LocalControlPlane, is_alive};
use kube_ocr_e2e::node_agent::{ImageMap, NodeAgent, NodeAgentConfig, cargo_bin_dir};
use kube_ocr_proto::v1::{RecognizeRequest, Task, ocr_client::OcrClient};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out after {TIMEOUT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inference_pod_deployment_serves_ocr_through_its_endpoint_slice() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let bin_dir = cargo_bin_dir().expect("the test runs from target/<profile>");
    let server = bin_dir.join("ocr-inference-pod");
    assert!(server.is_file(), "{} is missing: run `cargo build -p kube-ocr-inference` first", server.display());
    let bundle = workspace_root().join("models/ppocr-v4").canonicalize().expect("models/ppocr-v4: run `make setup`");

    let cluster = LocalControlPlane::shared().unwrap_or_else(|err| panic!("{err}"));
    let client = cluster.client().unwrap();
    let namespace = cluster.create_namespace("inference").await.unwrap();
    let work_dir = tempfile::Builder::new().prefix("kube-ocr-agent-").tempdir().unwrap();
    let node = format!("{namespace}-node");
    let mut config = NodeAgentConfig::new(&node, work_dir.path().join("agent"), ImageMap::workspace_defaults(&bin_dir));
    config.api_server = Some(cluster.apiserver_url().to_owned());
    config.shutdown_grace = Duration::from_secs(5);
    config.deregister_on_shutdown = true;
    let agent = NodeAgent::start(client.clone(), config).await.unwrap();
    agent.wait_schedulable(TIMEOUT).await.unwrap();
    assert!(agent.pod_ips_routable(), "run tools/local-pod-network.sh once (root): EndpointSlices refuse loopback IPs");

    let labels = json!({ "app": "ocr" });
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "ocr" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "nodeSelector": { "kubernetes.io/hostname": node },
                    "terminationGracePeriodSeconds": 10,
                    "containers": [{
                        "name": "inference",
                        "image": "ghcr.io/kube-ocr/inference-pod:0.1.0",
                        "args": ["--bundle", format!("file://{}", bundle.display()), "--device", "cpu",
                                 "--torch-threads", "1", "--drain-delay-secs", "1"],
                        "ports": [{ "name": "grpc", "containerPort": 50051 }, { "name": "http", "containerPort": 8080 }],
                        "startupProbe": { "grpc": { "port": 50051, "service": "kube_ocr.v1.Ocr" },
                                          "periodSeconds": 2, "failureThreshold": 90 },
                        "readinessProbe": { "grpc": { "port": 50051, "service": "kube_ocr.v1.Ocr" }, "periodSeconds": 2 },
                        "livenessProbe": { "httpGet": { "path": "/healthz", "port": "http" }, "periodSeconds": 5 },
                        "resources": { "limits": { "nvidia.com/gpu": 1 } },
                    }],
                },
            },
        },
    }))
    .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "ocr" },
        "spec": { "selector": labels, "ports": [{ "name": "grpc", "port": 50051, "targetPort": "grpc" }] },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    deployments.create(&PostParams::default(), &deployment).await.unwrap();
    Api::<Service>::namespaced(client.clone(), &namespace).create(&PostParams::default(), &service).await.unwrap();

    wait_for("the Deployment to become Available", async || {
        let current = deployments.get("ocr").await.ok()?;
        (current.status?.available_replicas == Some(1)).then_some(())
    })
    .await;

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
    let (address, port) = wait_for("a ready endpoint", async || {
        let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=ocr")).await.ok()?;
        let slice = list.items.into_iter().next()?;
        let port = slice.ports.as_ref()?.first()?.port?;
        let endpoint =
            slice.endpoints?.into_iter().find(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))?;
        Some((endpoint.addresses.first()?.clone(), port))
    })
    .await;
    assert!(address.starts_with("10.244."), "{address}");

    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{address}:{port}")).unwrap().connect().await.unwrap();
    let image = std::fs::read(workspace_root().join("golden/data/documents/doc-invoice-01-clean.png")).unwrap();
    let request = RecognizeRequest { request_id: "e2e".into(), image, task: Task::Document as i32, options: None };
    let response = OcrClient::new(channel).recognize(request).await.unwrap().into_inner();
    assert!(response.text.contains("INV-2026-0042") && response.text.contains("ACME Trading"), "{}", response.text);

    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod = pods.list(&ListParams::default().labels("app=ocr")).await.unwrap().items.remove(0);
    let pid: i32 = pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0]
        .container_id
        .as_deref()
        .and_then(|id| id.strip_prefix("kube-ocr://"))
        .and_then(|pid| pid.parse().ok())
        .expect("the node agent records the pid as the container id");
    assert!(is_alive(pid));

    deployments.delete("ocr", &DeleteParams::foreground()).await.unwrap();
    wait_for("the inference process to exit", async || (!is_alive(pid)).then_some(())).await;
    agent.shutdown().await;
}
