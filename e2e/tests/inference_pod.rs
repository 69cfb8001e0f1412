//! The inference pod's image, as `deploy/docker/inference-pod.Dockerfile` builds it (from
//! this checkout's binaries, libtorch and the exported bundle, through its "prebuilt"
//! stage), as a plain Deployment on a real node: the kubelet runs it with containerd and
//! runc, its gRPC startup and readiness probes gate it, the EndpointSlice controller lists
//! it, and a gRPC OCR call through the Service's cluster IP (kube-proxy) reads a golden
//! document. `kubectl logs` shows the server's log. Deleting the Deployment ends the
//! container. A second cluster starts without importing the image again.
//!
//! Needs `make setup` (the node binaries, the base image, the bundle) and the workspace's
//! binaries built (`cargo test --workspace` builds them).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube_ocr_e2e::control_plane::ControlPlaneOptions;
use kube_ocr_e2e::harness::{Kubectl, on_a_cluster, wait_for, workspace_root};
use kube_ocr_e2e::node::workspace_images::{INFERENCE_POD_IMAGE, ImageInputs};
use kube_ocr_e2e::node::{LocalCluster, NodeOptions};
use kube_ocr_proto::v1::{RecognizeRequest, Task, ocr_client::OcrClient};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);

fn inference_deployment() -> Deployment {
    let labels = json!({ "app": "ocr" });
    serde_json::from_value(json!({
        "metadata": { "name": "ocr" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": { "runAsNonRoot": true },
                    "containers": [{
                        "name": "inference",
                        "image": INFERENCE_POD_IMAGE,
                        "imagePullPolicy": "Never",
                        // The bundle the image carries (its OCR_BUNDLE default).
                        "args": ["--device", "cpu", "--torch-threads", "1", "--drain-delay-secs", "1"],
                        "ports": [{ "name": "grpc", "containerPort": 50051 }, { "name": "side", "containerPort": 8080 }],
                        "startupProbe": { "grpc": { "port": 50051, "service": "kube_ocr.v1.Ocr" },
                                          "periodSeconds": 2, "failureThreshold": 90 },
                        "readinessProbe": { "grpc": { "port": 50051, "service": "kube_ocr.v1.Ocr" }, "periodSeconds": 2 },
                        "livenessProbe": { "httpGet": { "path": "/healthz", "port": "side" }, "periodSeconds": 5 },
                        "resources": { "limits": { "nvidia.com/gpu": 1 } },
                        "securityContext": { "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false },
                        "volumeMounts": [{ "name": "tmp", "mountPath": "/tmp" }],
                    }],
                    "volumes": [{ "name": "tmp", "emptyDir": {} }],
                },
            },
        },
    }))
    .unwrap()
}

async fn inference_pod_scenario(cluster: &mut LocalCluster) {
    let plane = cluster.plane();
    let client = plane.client().unwrap();
    let kubectl = Kubectl::new(plane);
    let node = &cluster.nodes()[0];
    let built = Instant::now();
    let archive = ImageInputs::of_this_checkout()
        .and_then(|inputs| inputs.build_inference_pod())
        .unwrap_or_else(|err| panic!("{err}"));
    let imported = Instant::now();
    node.import_archive(&archive).unwrap_or_else(|err| panic!("{err}"));
    eprintln!(
        "inference-pod image {}: built in {:?}, imported in {:?}",
        archive.digest,
        imported - built,
        imported.elapsed()
    );

    let namespace = plane.create_namespace("inference").await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    deployments.create(&PostParams::default(), &inference_deployment()).await.unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "ocr" },
        "spec": { "selector": { "app": "ocr" }, "ports": [{ "name": "grpc", "port": 50051, "targetPort": "grpc" }] },
    }))
    .unwrap();
    let service =
        Api::<Service>::namespaced(client.clone(), &namespace).create(&PostParams::default(), &service).await.unwrap();
    let cluster_ip = service.spec.unwrap().cluster_ip.unwrap();

    let started = Instant::now();
    wait_for("the Deployment to become Available", TIMEOUT, async || {
        let current = deployments.get("ocr").await.ok()?;
        (current.status?.available_replicas == Some(1)).then_some(())
    })
    .await;
    eprintln!("inference pod Available {:?} after the Deployment was created", started.elapsed());

    // The EndpointSlice lists the pod's address in the node's pod range, ready.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
    let address = wait_for("a ready endpoint", TIMEOUT, async || {
        let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=ocr")).await.ok()?;
        let endpoint = list
            .items
            .into_iter()
            .flat_map(|slice| slice.endpoints.unwrap_or_default())
            .find(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))?;
        endpoint.addresses.first()?.parse::<std::net::Ipv4Addr>().ok()
    })
    .await;
    let pod_network = cluster.network().addressing().node_pod_network(0).unwrap();
    assert!(pod_network.contains(address), "{address} outside the node's pod range {pod_network}");

    // OCR from the host to the pod's address, as in-cluster clients dial it; the Service's
    // cluster IP (kube-proxy's rules live in the node's network namespace, not the host's)
    // accepts connections from inside the node.
    let image = std::fs::read(workspace_root().join("golden/data/documents/doc-invoice-01-clean.png")).unwrap();
    let text = recognize(&format!("http://{address}:50051"), image).await;
    assert!(text.contains("INV-2026-0042") && text.contains("ACME Trading"), "{text}");
    let through_service = node_grpc_reachable(cluster, &cluster_ip);
    assert!(through_service, "the Service's cluster IP {cluster_ip}:50051 did not answer from inside the node");

    // The server's own log, through the apiserver and the kubelet.
    let logs = kubectl.run(&namespace, &["logs", "deployment/ocr"]).unwrap_or_else(|err| panic!("{err}"));
    assert!(logs.contains("listening") && logs.contains("50051"), "the server's log: {logs}");

    // Deleting the Deployment ends the container: containerd no longer runs it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod = pods.list(&ListParams::default().labels("app=ocr")).await.unwrap().items.remove(0);
    let container_id = pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0]
        .container_id
        .as_deref()
        .and_then(|id| id.strip_prefix("containerd://"))
        .expect("the kubelet reports a containerd container id")
        .to_owned();
    assert!(running_tasks(cluster).contains(&container_id), "containerd does not list the pod's task");
    deployments.delete("ocr", &DeleteParams::foreground()).await.unwrap();
    wait_for("the inference container to stop", TIMEOUT, async || {
        (!running_tasks(cluster).contains(&container_id)).then_some(())
    })
    .await;
}

async fn recognize(endpoint: &str, image: Vec<u8>) -> String {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_or_else(|err| panic!("connect {endpoint}: {err}"));
    let request = RecognizeRequest { request_id: "e2e".into(), image, task: Task::Document as i32, options: None };
    OcrClient::new(channel)
        .recognize(request)
        .await
        .unwrap_or_else(|err| panic!("Recognize at {endpoint}: {err}"))
        .into_inner()
        .text
}

/// Whether `cluster_ip:50051` accepts a TCP connection from inside node 0's network
/// namespace, where kube-proxy programs the Service (bash's /dev/tcp, no client needed).
fn node_grpc_reachable(cluster: &LocalCluster, cluster_ip: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = cluster.nodes()[0]
            .command("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/{cluster_ip}/50051")])
            .status()
            .is_ok_and(|status| status.success());
        if probe || Instant::now() > deadline {
            return probe;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The ids of the tasks (running containers) of node 0's containerd.
fn running_tasks(cluster: &LocalCluster) -> String {
    let output = cluster.nodes()[0].ctr_command().args(["tasks", "list", "--quiet"]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inference_pod_image_serves_ocr_on_a_real_node() {
    let nodes = vec![NodeOptions::new("node-a", "zone-a").with_gpus(1)];
    on_a_cluster(ControlPlaneOptions::default(), nodes, inference_pod_scenario).await;

    // A second cluster: the node claims the same image store and finds the image there.
    on_a_cluster(
        ControlPlaneOptions::default(),
        vec![NodeOptions::new("node-b", "zone-a").with_gpus(1)],
        async |cluster| {
            let node = &cluster.nodes()[0];
            let rebuilt = Instant::now();
            let archive = ImageInputs::of_this_checkout()
                .and_then(|inputs| inputs.build_inference_pod())
                .unwrap_or_else(|err| panic!("{err}"));
            eprintln!("inference-pod image rebuilt unchanged in {:?}", rebuilt.elapsed());
            assert_eq!(
                node.image_digest(INFERENCE_POD_IMAGE).unwrap().as_deref(),
                Some(archive.digest.as_str()),
                "a new cluster's node does not hold the image the last one imported"
            );
        },
    )
    .await;
}
