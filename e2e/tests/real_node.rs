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

use futures::FutureExt as _;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, Node, Pod, PodSpec, Probe, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, LogParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube_ocr_e2e::control_plane::{ControlPlaneOptions, LocalControlPlane};
use kube_ocr_e2e::node::host_state::HostState;
use kube_ocr_e2e::node::{GPU_RESOURCE, LocalCluster, NodeOptions, ScratchImage, ZONE_LABEL};

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

fn http_get(ip: Ipv4Addr, port: u16) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

fn kubectl(plane: &LocalControlPlane, namespace: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(&plane.binaries().kubectl)
        .arg("--kubeconfig")
        .arg(plane.kubeconfig())
        .args(["--namespace", namespace])
        .args(args)
        .output()
        .map_err(|e| format!("kubectl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

async fn run_scenario(cluster: &LocalCluster) {
    let plane = cluster.plane();
    let client = plane.client().unwrap();
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
    let reply = http_get(pod_ip, 8080).unwrap_or_else(|e| panic!("GET http://{pod_ip}:8080/: {e}"));
    assert!(reply.contains("hello from web"), "{reply}");

    // apiserver -> kubelet: logs and exec.
    let logs = pods.logs("web", &LogParams::default()).await.unwrap();
    assert!(logs.contains("serving"), "logs: {logs:?}");
    let exec = kubectl(plane, &namespace, &["exec", "web", "--", "/bin/busybox", "cat", "/www/index.html"]);
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
        let reply = kubectl(plane, &namespace, &["exec", "client", "--", "/bin/busybox", "sh", "-c", &request]);
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
    let lookup = kubectl(plane, &namespace, &["exec", "client", "--", "/bin/busybox", "nslookup", &name])
        .unwrap_or_else(|err| panic!("nslookup {name} in pod client: {err}"));
    assert!(lookup.contains(&format!("Address: {cluster_ip}")), "{lookup}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_node_runs_pods_that_answer_through_the_cluster_and_leaves_nothing_behind() {
    let before = HostState::capture();
    let nodes = vec![NodeOptions::new("node-a", "zone-a").with_gpus(1)];
    let cluster =
        LocalCluster::start(ControlPlaneOptions::default(), nodes).await.unwrap_or_else(|err| panic!("{err}"));
    let outcome = std::panic::AssertUnwindSafe(run_scenario(&cluster)).catch_unwind().await;
    if let Err(panic) = outcome {
        // The logs go with the cluster's directory: show them before it is removed.
        let logs = cluster.nodes()[0].dir().join("logs");
        for name in ["kubelet", "containerd", "kube-proxy", "holder"] {
            let path = logs.join(format!("{name}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail = text.lines().rev().take(15).collect::<Vec<_>>();
            eprintln!("--- last lines of {}:", path.display());
            tail.iter().rev().for_each(|line| eprintln!("{line}"));
        }
        drop(cluster);
        std::panic::resume_unwind(panic);
    }
    drop(cluster);
    let leftovers = before.diff(&HostState::capture());
    assert!(leftovers.is_empty(), "the cluster left this on the host:\n{}", leftovers.join("\n"));
}
