//! The autoscaler the operator relies on for `autoscaling.provider: keda`, alone: KEDA
//! (`kube_ocr_e2e::keda`) on the shared cluster, with no operator involved. A ScaledObject
//! with a `redis-streams` trigger on `lagCount` (the trigger the operator writes for
//! `spec.jobs`) scales a Deployment of plain busybox pods from zero when a real
//! `redis-server` has a backlog, and the nodes run them; the HPA KEDA creates reads the
//! backlog through the aggregated external metrics API; once a consumer group has read
//! everything KEDA scales back to zero and the pods go; and stopping KEDA unregisters the
//! external metrics API, so that the apiserver's discovery stays whole for what runs next.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube_ocr_e2e::keda::{EXTERNAL_METRICS_API, EXTERNAL_METRICS_API_SERVICE};
use kube_ocr_e2e::node::ScratchImage;
use kube_ocr_test_servers::RedisServer;
use serde_json::{Value, json};

use crate::support::{Load, Scenario, TIMEOUT, wait_for};

const STREAM: &str = "ocr-jobs";
const GROUP: &str = "ocr-workers";
const NAME: &str = "worker";
const BUSYBOX_IMAGE: &str = "kube-ocr.test/busybox:1";

/// `spec.replicas` of the Deployment.
async fn replicas(deployments: &Api<Deployment>) -> Option<i32> {
    deployments.get(NAME).await.ok()?.spec?.replicas
}

/// The worker pods that are Running, and how many worker pods exist at all.
async fn worker_pods(s: &Scenario) -> Option<(usize, usize)> {
    let pods = s.api::<Pod>().list(&ListParams::default().labels(&format!("app={NAME}"))).await.ok()?;
    let running = pods.items.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
    Some((running.count(), pods.items.len()))
}

/// A metric value as the external metrics API writes it (`5`, `1500m`, `2k`).
fn quantity(value: &str) -> Option<f64> {
    match value.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok().map(|v| v / 1000.0),
        None => match value.strip_suffix('k') {
            Some(kilo) => kilo.parse::<f64>().ok().map(|v| v * 1000.0),
            None => value.parse().ok(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_scales_pods_from_and_to_zero_on_a_redis_stream_backlog() {
    // Busybox pods that sleep: nothing on the cores, so beside anything.
    let s = Scenario::new("keda-alone", Load::NoPods).await;
    let busybox = std::path::Path::new("/bin/busybox");
    assert!(busybox.is_file(), "/bin/busybox missing: `make setup` installs busybox-static");
    let image = ScratchImage {
        reference: BUSYBOX_IMAGE.to_owned(),
        files: vec![(busybox.to_owned(), "/bin/busybox".to_owned())],
        entrypoint: vec!["/bin/busybox".to_owned()],
    };
    for node in s.cluster.nodes() {
        node.import_image(&image).unwrap_or_else(|err| panic!("{err}"));
    }
    let redis = RedisServer::start().expect("redis-server starts (make setup installs it)");
    let mut keda = s.start_keda().await;

    let deployments = s.api::<Deployment>();
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": NAME },
        "spec": {
            "replicas": 0,
            "selector": { "matchLabels": { "app": NAME } },
            "template": {
                "metadata": { "labels": { "app": NAME } },
                "spec": {
                    // `sleep` as PID 1 ignores SIGTERM: without this, each scale-in waits 30 s.
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "worker", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                        "command": ["/bin/busybox", "sleep", "3600"],
                    }],
                },
            },
        },
    }))
    .unwrap();
    deployments.create(&PostParams::default(), &deployment).await.unwrap();

    let scaled_objects: Api<DynamicObject> = Api::namespaced_with(
        s.admin.clone(),
        &s.namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject")),
    );
    let scaled_object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": { "name": NAME },
        "spec": {
            "scaleTargetRef": { "name": NAME },
            "minReplicaCount": 0,
            "maxReplicaCount": 3,
            "pollingInterval": 1,
            "cooldownPeriod": 5,
            "triggers": [{
                "type": "redis-streams",
                "metadata": {
                    "address": format!("127.0.0.1:{}", redis.port()),
                    "stream": STREAM,
                    "consumerGroup": GROUP,
                    "lagCount": "1",
                    "activationLagCount": "0",
                },
            }],
        },
    }))
    .unwrap();
    scaled_objects.create(&PostParams::default(), &scaled_object).await.unwrap();
    wait_for("the ScaledObject to be Ready", TIMEOUT, async || {
        let object = scaled_objects.get(NAME).await.ok()?;
        let conditions = object.data.pointer("/status/conditions")?.as_array()?.clone();
        conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True").then_some(())
    })
    .await;
    // With no backlog (the stream does not exist yet) the Deployment stays at zero.
    assert_eq!(replicas(&deployments).await, Some(0));
    assert_eq!(worker_pods(&s).await, Some((0, 0)));

    // A backlog of 5, with no consumer group yet: the lag is the stream's length.
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(redis.cli(&["XADD", STREAM, "*", "job", &n.to_string()]).unwrap());
    }
    let scaled_up = wait_for("KEDA to scale the Deployment from zero", TIMEOUT, async || {
        replicas(&deployments).await.filter(|r| *r >= 1)
    })
    .await;
    assert!(scaled_up <= 3, "maxReplicaCount is 3, got {scaled_up}");
    wait_for("a worker pod running on a node", TIMEOUT, async || {
        worker_pods(&s).await.filter(|(running, _)| *running >= 1)
    })
    .await;

    let metric = format!("s0-redis-streams-{STREAM}");
    let path = format!(
        "{EXTERNAL_METRICS_API}/namespaces/{}/{metric}?labelSelector=scaledobject.keda.sh%2Fname%3D{NAME}",
        s.namespace
    );
    let value = wait_for("the backlog through the external metrics API", TIMEOUT, async || {
        let request = http::Request::get(&path).body(Vec::new()).ok()?;
        let list: Value = s.admin.request(request).await.ok()?;
        quantity(list.pointer("/items/0/value")?.as_str()?)
    })
    .await;
    assert_eq!(value, 5.0, "the lag metric should be the 5 entries (XLEN while the group is missing)");
    // The controller manager's HPA controller reads it too: through the aggregation layer,
    // as its own ServiceAccount (the apiserver's requestheader identity).
    let hpa_name = format!("keda-hpa-{NAME}");
    let hpa_reading = wait_for("the HPA KEDA made to read the external metric", TIMEOUT, async || {
        let hpa = s.api::<HorizontalPodAutoscaler>().get(&hpa_name).await.ok()?;
        let current = hpa.status?.current_metrics?.into_iter().find_map(|m| m.external)?.current;
        current.average_value.or(current.value).map(|q| q.0)
    })
    .await;
    tracing::info!(hpa = %hpa_name, %metric, reading = %hpa_reading, "the HPA reads KEDA's metric");

    // A consumer group reads and acknowledges everything: the lag drops to 0, and after the
    // cooldown KEDA scales the Deployment back to zero and the pods go.
    redis.cli(&["XGROUP", "CREATE", STREAM, GROUP, "0"]).unwrap();
    redis.cli(&["XREADGROUP", "GROUP", GROUP, "worker-1", "COUNT", "100", "STREAMS", STREAM, ">"]).unwrap();
    let mut ack = vec!["XACK", STREAM, GROUP];
    ack.extend(ids.iter().map(String::as_str));
    assert_eq!(redis.cli(&ack).unwrap(), "5");
    wait_for("KEDA to scale the Deployment back to zero", TIMEOUT, async || {
        (replicas(&deployments).await == Some(0)).then_some(())
    })
    .await;
    wait_for("the worker pods to be gone", TIMEOUT, async || worker_pods(&s).await.filter(|(_, all)| *all == 0)).await;

    keda.stop();
    let api_services = Api::<APIService>::all(s.admin.clone());
    assert!(api_services.get_opt(EXTERNAL_METRICS_API_SERVICE).await.unwrap().is_none());
    drop(keda);
    s.finish().await;
}
