//! A real node: the kubelet, containerd (runc, CNI bridge) and kube-proxy that `make setup`
//! builds, in namespaces of their own, joined to the control plane over the cluster network.
//! A pod from an image built offline (buildah) runs, passes its readiness probe, and answers
//! through everything users rely on: its pod IP from the host, `kubectl logs` and `exec`
//! (the apiserver calls the kubelet), and a ClusterIP Service through kube-proxy. The node
//! advertises its zone and GPUs. After the cluster stops, the host is as it was.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, Node, Pod, PodSpec, Probe, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube_ocr_e2e::control_plane::ControlPlaneOptions;
use kube_ocr_e2e::harness::{Kubectl, free_local_port, on_a_cluster, wait_for, workspace_root};
use kube_ocr_e2e::node::workspace_images::{ImageInputs, OPERATOR_IMAGE};
use kube_ocr_e2e::node::{GPU_RESOURCE, LocalCluster, NodeOptions, ScratchImage, ZONE_LABEL};
use kube_ocr_e2e::plain_http;
use serde_json::json;

const BUSYBOX_IMAGE: &str = "kube-ocr.test/busybox:1";

/// An HTTP server whose page names its pod, so a reply says who answered.
fn web_pod(name: &str) -> Pod {
    let script = "/bin/busybox mkdir -p /www && echo \"hello from $(/bin/busybox hostname)\" >/www/index.html \
                  && echo serving && exec /bin/busybox httpd -f -p 8080 -h /www";
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".to_owned(),
                image: Some(BUSYBOX_IMAGE.to_owned()),
                image_pull_policy: Some("Never".to_owned()),
                command: Some(vec!["/bin/busybox".into(), "sh".into(), "-c".into(), script.into()]),
                ports: Some(vec![ContainerPort { container_port: 8080, ..ContainerPort::default() }]),
                readiness_probe: Some(Probe {
                    http_get: Some(HTTPGetAction {
                        path: Some("/".to_owned()),
                        port: IntOrString::Int(8080),
                        ..HTTPGetAction::default()
                    }),
                    period_seconds: Some(1),
                    ..Probe::default()
                }),
                ..Container::default()
            }],
            termination_grace_period_seconds: Some(1),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// `GET /` at `ip:port`: the body of a 200, or what went wrong.
async fn http_get(ip: Ipv4Addr, port: u16) -> Result<String, String> {
    match plain_http::get(ip, port, "/").await? {
        (200, body) => Ok(body),
        (status, body) => Err(format!("HTTP {status}: {body}")),
    }
}

async fn run_scenario(cluster: &LocalCluster) {
    let plane = cluster.plane();
    let client = plane.client().unwrap();
    let kubectl = Kubectl::new(plane);
    let node = &cluster.nodes()[0];
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.is_file(), "/bin/busybox missing: `make setup` installs busybox-static");
    node.import_image(&ScratchImage {
        reference: BUSYBOX_IMAGE.to_owned(),
        files: vec![(busybox.to_owned(), "/bin/busybox".to_owned())],
        entrypoint: vec!["/bin/busybox".to_owned()],
    })
    .unwrap_or_else(|err| panic!("{err}"));

    // The node as the API sees it: its address, zone and (pretend) GPUs.
    let api_node = Api::<Node>::all(client.clone()).get(node.name()).await.unwrap();
    let labels = api_node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(ZONE_LABEL).map(String::as_str), Some("zone-a"));
    let status = api_node.status.clone().unwrap();
    let allocatable = status.allocatable.unwrap_or_default();
    assert_eq!(allocatable.get(GPU_RESOURCE).map(|q| q.0.as_str()), Some("1"), "{allocatable:?}");
    let addresses = status.addresses.unwrap_or_default();
    assert!(addresses.iter().any(|a| a.type_ == "InternalIP" && a.address == node.ip().to_string()), "{addresses:?}");

    // A kubelet that registers its Node anew reports no GPUs (a device plugin would add them
    // back): the node advertises them again.
    let nodes = Api::<Node>::all(client.clone());
    let reset = json!({ "status": { "capacity": { GPU_RESOURCE: null }, "allocatable": { GPU_RESOURCE: null } } });
    nodes.patch_status(node.name(), &PatchParams::default(), &Patch::Merge(&reset)).await.unwrap();
    wait_for("the GPUs advertised again", Duration::from_secs(30), async || {
        let allocatable = nodes.get(node.name()).await.ok()?.status?.allocatable?;
        (allocatable.get(GPU_RESOURCE).map(|q| q.0.as_str()) == Some("1")).then_some(())
    })
    .await;

    let namespace = plane.create_namespace("real-node").await.unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    pods.create(&PostParams::default(), &web_pod("web")).await.unwrap();
    let ready = await_condition(pods.clone(), "web", conditions::is_pod_running());
    tokio::time::timeout(Duration::from_secs(90), ready).await.expect("pod web running within 90 s").unwrap();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let pod = pods.get("web").await.unwrap();
            let conditions = pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            if conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True") {
                return pod;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the readiness probe (kubelet -> pod IP) passes within 60 s");
    let pod_ip: Ipv4Addr = ready.status.unwrap().pod_ip.unwrap().parse().unwrap();
    let pod_network = cluster.network().addressing().node_pod_network(0).unwrap();
    assert!(pod_network.contains(pod_ip), "{pod_ip} outside the node's pod range {pod_network}");

    // The host reaches the pod over the node network.
    let reply = http_get(pod_ip, 8080).await.unwrap_or_else(|e| panic!("GET http://{pod_ip}:8080/: {e}"));
    assert!(reply.contains("hello from web"), "{reply}");

    // apiserver -> kubelet: logs and exec.
    let logs = pods.logs("web", &LogParams::default()).await.unwrap();
    assert!(logs.contains("serving"), "logs: {logs:?}");
    let exec = kubectl.run(&namespace, &["exec", "web", "--", "/bin/busybox", "cat", "/www/index.html"]);
    assert_eq!(exec.as_deref().map(str::trim), Ok("hello from web"));

    // A ClusterIP Service through kube-proxy, from a second pod.
    let services = Api::<Service>::namespaced(client.clone(), &namespace);
    let service = Service {
        metadata: ObjectMeta { name: Some("web".to_owned()), ..ObjectMeta::default() },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let service = services.create(&PostParams::default(), &service).await.unwrap();
    let cluster_ip = service.spec.unwrap().cluster_ip.unwrap();
    let mut client_pod = web_pod("client");
    client_pod.metadata.labels = None;
    pods.create(&PostParams::default(), &client_pod).await.unwrap();
    let running = await_condition(pods.clone(), "client", conditions::is_pod_running());
    tokio::time::timeout(Duration::from_secs(60), running).await.expect("pod client running").unwrap();
    // busybox's wget crashes in an image without NSS files (static glibc); nc does not.
    let request = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 {cluster_ip} 80");
    let deadline = Instant::now() + Duration::from_secs(30);
    let through_service = loop {
        // kube-proxy programs the Service's rules shortly after its EndpointSlice appears.
        let reply = kubectl.run(&namespace, &["exec", "client", "--", "/bin/busybox", "sh", "-c", &request]);
        match reply {
            Ok(page) if page.contains("200 OK") => break page,
            Ok(page) if Instant::now() > deadline => panic!("{cluster_ip}:80 from pod client answered {page:?}"),
            Err(err) if Instant::now() > deadline => panic!("{cluster_ip}:80 from pod client: {err}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    assert!(through_service.contains("hello from web"), "{through_service}");

    // The cluster DNS (CoreDNS behind kube-dns, which the kubelet wrote into the pod's
    // resolv.conf) knows the Service.
    let name = format!("web.{namespace}.svc.cluster.local");
    let lookup = kubectl
        .run(&namespace, &["exec", "client", "--", "/bin/busybox", "nslookup", &name])
        .unwrap_or_else(|err| panic!("nslookup {name} in pod client: {err}"));
    assert!(lookup.contains(&format!("Address: {cluster_ip}")), "{lookup}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_node_runs_pods_that_answer_through_the_cluster_and_leaves_nothing_behind() {
    let nodes = vec![NodeOptions::new("node-a", "zone-a").with_gpus(1)];
    on_a_cluster(ControlPlaneOptions::default(), nodes, async |cluster| run_scenario(cluster).await).await;
}

/// Two replicas of the web server spread over both zones, tolerating a lost node for 5 s
/// (the default is 300 s) so the test need not wait long for their replacement.
fn web_deployment() -> Deployment {
    let pod = web_pod("unused");
    let mut spec = pod.spec.unwrap();
    let labels = json!({ "app": "web" });
    spec.topology_spread_constraints = Some(vec![
        serde_json::from_value(json!({
            "maxSkew": 1,
            "topologyKey": ZONE_LABEL,
            "whenUnsatisfiable": "DoNotSchedule",
            // A lost node's zone stops counting once the node is tainted unreachable.
            "nodeTaintsPolicy": "Honor",
            "labelSelector": { "matchLabels": labels },
        }))
        .unwrap(),
    ]);
    spec.tolerations = Some(
        ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
            .map(|key| {
                serde_json::from_value(json!({
                    "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5,
                }))
                .unwrap()
            })
            .into(),
    );
    serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": labels },
            "template": { "metadata": { "labels": labels }, "spec": spec },
        },
    }))
    .unwrap()
}

/// The web pods that are Ready, as (pod name, node name, pod IP).
async fn ready_web_pods(pods: &Api<Pod>) -> Vec<(String, String, Ipv4Addr)> {
    let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    list.items
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| {
            let status = pod.status?;
            let ready = status.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
            if !ready {
                return None;
            }
            Some((pod.metadata.name?, pod.spec?.node_name?, status.pod_ip?.parse().ok()?))
        })
        .collect()
}

async fn node_loss_scenario(cluster: &mut LocalCluster) {
    let plane = cluster.plane();
    let client = plane.client().unwrap();
    let kubectl = Kubectl::new(plane);
    let archive = ScratchImage {
        reference: BUSYBOX_IMAGE.to_owned(),
        files: vec![(Path::new("/bin/busybox").to_owned(), "/bin/busybox".to_owned())],
        entrypoint: vec!["/bin/busybox".to_owned()],
    }
    .build(&plane.dir().join("images"))
    .unwrap_or_else(|err| panic!("{err}"));
    for node in cluster.nodes() {
        node.import_archive(&archive).unwrap_or_else(|err| panic!("{err}"));
    }
    let namespace = plane.create_namespace("node-loss").await.unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    Api::<Deployment>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &web_deployment())
        .await
        .unwrap();

    // One replica per zone.
    let deadline = Instant::now() + Duration::from_secs(90);
    let spread = loop {
        let ready = ready_web_pods(&pods).await;
        if ready.len() == 2 {
            break ready;
        }
        assert!(Instant::now() < deadline, "2 ready web pods within 90 s; have {ready:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let mut nodes: Vec<&str> = spread.iter().map(|(_, node, _)| node.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"], "{spread:?}");
    let (on_b, _, ip_on_b) = spread.iter().find(|(_, node, _)| node == "node-b").unwrap().clone();

    // Pods of both nodes answer the host, and a pod on node-a reaches the one on node-b.
    for (name, _, ip) in &spread {
        let reply = http_get(*ip, 8080).await.unwrap_or_else(|e| panic!("GET http://{ip}:8080/: {e}"));
        assert!(reply.contains(&format!("hello from {name}")), "{reply}");
    }
    let mut client_pod = web_pod("client");
    client_pod.metadata.labels = None;
    client_pod.spec.as_mut().unwrap().node_selector =
        Some(BTreeMap::from([("kubernetes.io/hostname".to_owned(), "node-a".to_owned())]));
    pods.create(&PostParams::default(), &client_pod).await.unwrap();
    let running = await_condition(pods.clone(), "client", conditions::is_pod_running());
    tokio::time::timeout(Duration::from_secs(60), running).await.expect("pod client running").unwrap();
    let get = |address: String| format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 {address}");
    let across = kubectl
        .run(&namespace, &["exec", "client", "--", "/bin/busybox", "sh", "-c", &get(format!("{ip_on_b} 8080"))])
        .unwrap_or_else(|err| panic!("node-a -> {ip_on_b}:8080: {err}"));
    assert!(across.contains(&format!("hello from {on_b}")), "{across}");

    let services = Api::<Service>::namespaced(client.clone(), &namespace);
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80, "targetPort": 8080 }] },
    }))
    .unwrap();
    services.create(&PostParams::default(), &service).await.unwrap();
    let by_name = get(format!("web.{namespace}.svc.cluster.local 80"));
    let ask_service = || kubectl.run(&namespace, &["exec", "client", "--", "/bin/busybox", "sh", "-c", &by_name]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ask_service().is_ok_and(|reply| reply.contains("200 OK")) {
        assert!(Instant::now() < deadline, "the web Service answers within 30 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // node-b's kubelet stops. Its containers run on, but the node turns NotReady, its pods
    // are evicted and replaced on node-a; the Service answers all along.
    cluster.nodes_mut()[1].stop_kubelet();
    let lost = Instant::now();
    let nodes_api = Api::<Node>::all(client.clone());
    let mut answered = 0;
    let mut failures = Vec::new();
    let replaced = loop {
        match ask_service() {
            Ok(reply) if reply.contains("200 OK") => answered += 1,
            other => failures.push(format!("{:?}: {other:?}", lost.elapsed())),
        }
        let ready = ready_web_pods(&pods).await;
        if ready.len() == 2 && ready.iter().all(|(_, node, _)| node == "node-a") {
            break ready;
        }
        assert!(lost.elapsed() < Duration::from_secs(150), "web not replaced on node-a within 150 s: {ready:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        failures.is_empty(),
        "the Service failed {} of {} requests: {failures:#?}",
        failures.len(),
        answered + failures.len()
    );
    let node_b = nodes_api.get("node-b").await.unwrap();
    let ready_condition = node_b.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready_condition.status, "Unknown", "node-b's Ready condition after its kubelet stopped");
    eprintln!(
        "node-b lost: web replaced on node-a after {:?} ({replaced:?}); the Service answered {answered} requests meanwhile",
        lost.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_spread_over_two_zones_and_are_replaced_when_a_node_is_lost() {
    // The node is declared lost 15 s after its last lease renewal (kubelets renew every
    // quarter of their 20 s lease), rather than Kubernetes' default 40 s.
    let control_plane = ControlPlaneOptions {
        node_monitor_grace_period: Some(Duration::from_secs(15)),
        ..ControlPlaneOptions::default()
    };
    let nodes = ["node-a", "node-b"]
        .map(|name| {
            let zone = name.replace("node", "zone");
            NodeOptions { lease_duration: Duration::from_secs(20), ..NodeOptions::new(name, zone) }
        })
        .to_vec();
    on_a_cluster(control_plane, nodes, node_loss_scenario).await;
}

async fn operator_in_cluster_scenario(cluster: &mut LocalCluster) {
    let plane = cluster.plane();
    let client = plane.client().unwrap();
    let kubectl = Kubectl::new(plane);
    // The operator image as `deploy/docker/operator.Dockerfile` builds it, from this
    // checkout's `ocr-operator` through the "prebuilt" stage, on the offline Debian base.
    let archive = ImageInputs::of_this_checkout()
        .and_then(|inputs| inputs.build_operator())
        .unwrap_or_else(|err| panic!("{err}"));
    for node in cluster.nodes() {
        node.import_archive(&archive).unwrap_or_else(|err| panic!("{err}"));
    }

    // helm install as a user would, with the image the node holds.
    let namespace = plane.create_namespace("operator").await.unwrap();
    let helm_home = tempfile::tempdir().unwrap();
    let chart = workspace_root().join("charts/kube-ocr");
    let (repository, tag) = OPERATOR_IMAGE.rsplit_once(':').unwrap();
    let installed = Command::new(&plane.binaries().helm)
        .env("HOME", helm_home.path())
        .env("XDG_CACHE_HOME", helm_home.path().join("cache"))
        .env("XDG_CONFIG_HOME", helm_home.path().join("config"))
        .env("XDG_DATA_HOME", helm_home.path().join("data"))
        .arg("--kubeconfig")
        .arg(plane.kubeconfig())
        .args(["install", "kube-ocr"])
        .arg(&chart)
        .args(["--namespace", &namespace, "--wait", "--timeout", "180s"])
        .args(["--set", &format!("operator.image.repository={repository}")])
        .args(["--set", &format!("operator.image.tag={tag}")])
        .args(["--set", "operator.image.pullPolicy=Never", "--set", "operator.replicas=1"])
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "helm install: {}\n{}\noperator pods: {:?}",
        String::from_utf8_lossy(&installed.stdout),
        String::from_utf8_lossy(&installed.stderr),
        kubectl.run(&namespace, &["describe", "pods"]),
    );

    // Ready means /readyz passed: the operator reached the apiserver in-cluster, through the
    // `kubernetes` Service and kube-proxy, as its ServiceAccount.
    let logs = kubectl.run(&namespace, &["logs", "deployment/kube-ocr-operator"]).unwrap_or_else(|err| panic!("{err}"));
    assert!(!logs.trim().is_empty(), "the operator logged nothing");

    // kubectl port-forward from the host to the operator's metrics.
    let port = free_local_port();
    let mut forward = std::process::Command::new(&plane.binaries().kubectl)
        .arg("--kubeconfig")
        .arg(plane.kubeconfig())
        .args(["--namespace", &namespace, "port-forward", "deployment/kube-ocr-operator", &format!("{port}:8080")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        match plain_http::get(Ipv4Addr::LOCALHOST, port, "/metrics").await {
            Ok((200, body)) => break body,
            other => {
                assert!(Instant::now() < deadline, "GET /metrics through port-forward: {other:?}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(metrics.contains("# TYPE"), "{metrics}");

    // The operator reconciles an OcrService from the samples into its Deployment.
    let sample = workspace_root().join("deploy/samples/ocrservice-cpu-minimal.yaml");
    kubectl.run(&namespace, &["apply", "-f", sample.to_str().unwrap()]).unwrap_or_else(|err| panic!("{err}"));
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let owned =
            deployments.list(&ListParams::default()).await.unwrap().items.into_iter().any(|d| {
                d.metadata.owner_references.unwrap_or_default().iter().any(|owner| owner.kind == "OcrService")
            });
        if owned {
            break;
        }
        assert!(Instant::now() < deadline, "no Deployment of the OcrService within 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_image_runs_in_cluster_from_the_helm_chart() {
    let nodes = vec![NodeOptions::new("node-a", "zone-a")];
    on_a_cluster(ControlPlaneOptions::default(), nodes, operator_in_cluster_scenario).await;
}
