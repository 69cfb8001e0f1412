//! KEDA (`kube_ocr_e2e::keda`) in the local control plane: a ScaledObject with a
//! `redis-streams` trigger on `lagCount` scales a Deployment from zero when a real
//! `redis-server` has a backlog, the HPA KEDA creates reads the backlog through the
//! aggregated external metrics API, and KEDA scales the Deployment back to zero once a
//! consumer group has read everything. No node runs the pods: KEDA and the HPA only change
//! the Deployment's `spec.replicas`, which is what this checks.
//!
//! Needs `make setup` (the Kubernetes binaries, KEDA, redis-server); without them it fails
//! saying so.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube_ocr_e2e::control_plane::LocalControlPlane;
use kube_ocr_e2e::keda::{EXTERNAL_METRICS_API, EXTERNAL_METRICS_API_SERVICE, Keda};
use kube_ocr_test_servers::RedisServer;
use serde_json::{Value, json};

const STREAM: &str = "ocr-jobs";
const GROUP: &str = "ocr-workers";
const NAME: &str = "worker";
/// Per step; a step normally takes a few seconds (the HPA's, up to its 15 s sync period).
const STEP_TIMEOUT: Duration = Duration::from_secs(45);

/// Polls `check` every 250 ms until it returns `Some`, or panics naming `what`, with KEDA's
/// log tails.
async fn wait_for<T, Fut>(keda: &Keda, what: &str, mut check: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            eprintln!("{what}: after {:.1?}", started.elapsed());
            return value;
        }
        if started.elapsed() > STEP_TIMEOUT {
            panic!("timed out after {STEP_TIMEOUT:?} waiting for {what}\n{}", keda.log_tails(40));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn scaled_objects(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    );
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// `spec.replicas` of the Deployment.
async fn replicas(deployments: &Api<Deployment>) -> Option<i32> {
    deployments.get(NAME).await.ok()?.spec?.replicas
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
async fn scales_a_deployment_from_and_to_zero_on_a_redis_stream_backlog() {
    let started = Instant::now();
    let cluster = LocalControlPlane::shared().unwrap_or_else(|err| panic!("{err}"));
    let redis = RedisServer::start().expect("redis-server starts (make setup installs it)");
    let keda = Keda::start(cluster).await.unwrap_or_else(|err| panic!("{err}"));
    eprintln!("control plane, Redis and KEDA ready after {:.1?}", started.elapsed());

    let namespace = cluster.create_namespace("keda-redis").await.unwrap();
    let client = cluster.client().unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": NAME },
        "spec": {
            "replicas": 0,
            "selector": { "matchLabels": { "app": NAME } },
            "template": {
                "metadata": { "labels": { "app": NAME } },
                // Never runs: no node here, and KEDA only sets the replica count.
                "spec": { "containers": [{ "name": "worker", "image": "example.com/ocr-worker:never-runs" }] },
            },
        },
    }))
    .unwrap();
    deployments.create(&PostParams::default(), &deployment).await.unwrap();

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
    let scaled_objects = scaled_objects(&client, &namespace);
    scaled_objects.create(&PostParams::default(), &scaled_object).await.unwrap();
    wait_for(&keda, "the ScaledObject to be Ready", || async {
        let object = scaled_objects.get(NAME).await.ok()?;
        let conditions = object.data.pointer("/status/conditions")?.as_array()?.clone();
        conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True").then_some(())
    })
    .await;
    // With no backlog (the stream does not exist yet) the Deployment stays at zero.
    assert_eq!(replicas(&deployments).await, Some(0));

    // A backlog of 5, with no consumer group yet: the lag is the stream's length.
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(redis.cli(&["XADD", STREAM, "*", "job", &n.to_string()]).unwrap());
    }
    let scaled_up = wait_for(&keda, "KEDA to scale the Deployment from zero", || async {
        replicas(&deployments).await.filter(|r| *r >= 1)
    })
    .await;
    assert!(scaled_up <= 3, "maxReplicaCount is 3, got {scaled_up}");

    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &namespace);
    let hpa_name = format!("keda-hpa-{NAME}");
    let metric = format!("s0-redis-streams-{STREAM}");
    let path = format!(
        "{EXTERNAL_METRICS_API}/namespaces/{namespace}/{metric}?labelSelector=scaledobject.keda.sh%2Fname%3D{NAME}"
    );
    let value = wait_for(&keda, "the backlog through the external metrics API", || async {
        let request = http::Request::get(&path).body(Vec::new()).ok()?;
        let list: Value = client.request(request).await.ok()?;
        quantity(list.pointer("/items/0/value")?.as_str()?)
    })
    .await;
    assert_eq!(value, 5.0, "the lag metric should be the 5 entries (XLEN while the group is missing)");
    // The controller manager's HPA controller reads it too: through the aggregation layer,
    // as its own ServiceAccount (the apiserver's requestheader identity).
    let hpa_reading = wait_for(&keda, "the HPA KEDA made to read the external metric", || async {
        let hpa = hpas.get(&hpa_name).await.ok()?;
        let current = hpa.status?.current_metrics?.into_iter().find_map(|m| m.external)?.current;
        current.average_value.or(current.value).map(|q| q.0)
    })
    .await;
    eprintln!("HPA {hpa_name} reads {metric} = {hpa_reading} per replica");

    // A consumer group reads and acknowledges everything: the lag drops to 0, and after the
    // cooldown KEDA scales the Deployment back to zero.
    redis.cli(&["XGROUP", "CREATE", STREAM, GROUP, "0"]).unwrap();
    redis.cli(&["XREADGROUP", "GROUP", GROUP, "worker-1", "COUNT", "100", "STREAMS", STREAM, ">"]).unwrap();
    let mut ack = vec!["XACK", STREAM, GROUP];
    ack.extend(ids.iter().map(String::as_str));
    assert_eq!(redis.cli(&ack).unwrap(), "5");
    wait_for(&keda, "KEDA to scale the Deployment back to zero", || async {
        (replicas(&deployments).await == Some(0)).then_some(())
    })
    .await;

    // Stopping KEDA unregisters the external metrics API, so that the apiserver's discovery
    // stays whole for whatever runs next on this control plane.
    keda.stop();
    let api_services = Api::<APIService>::all(client.clone());
    assert!(api_services.get_opt(EXTERNAL_METRICS_API_SERVICE).await.unwrap().is_none());
    eprintln!("done after {:.1?}", started.elapsed());
}
