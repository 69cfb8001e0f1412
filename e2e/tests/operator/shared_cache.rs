//! `spec.cache.redis` on the local cluster, against a real `redis-server` that requires a
//! password kept in a Secret: the operator wires the pods to it (credentials as
//! environment from the Secret, never in the arguments), one replica answers from the
//! other's work, and when Redis is killed mid-test every request still succeeds.

use std::time::Duration;

use crate::support::{Load, Scenario, TIMEOUT, http_get, wait_for, workspace_root};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, PostParams};
use kube_ocr_crds::Phase;
use kube_ocr_operator::names::SERVICE_LABEL;
use kube_ocr_proto::v1::{RecognizeRequest, RecognizeResponse, Task, ocr_client::OcrClient};
use kube_ocr_test_servers::{RedisOptions, RedisServer};
use serde_json::json;

const PASSWORD: &str = "e2e-redis-password";

async fn recognize(address: &str, image: &[u8]) -> anyhow::Result<RecognizeResponse> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}:50051"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?;
    let request = RecognizeRequest {
        request_id: "e2e-cache".into(),
        image: image.to_vec(),
        task: Task::Document as i32,
        options: None,
    };
    Ok(OcrClient::new(channel).recognize(request).await?.into_inner())
}

/// The sum of a pod's `ocr_shared_cache_lookups_total` samples labelled `result`.
async fn shared_lookups(address: &str, result: &str) -> f64 {
    let (status, metrics) = http_get(address, 8080, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("ocr_shared_cache_lookups_total") && line.contains(&format!("result=\"{result}\""))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_results_through_redis_and_survive_losing_it() {
    let s = Scenario::new("ocrs-cache", Load::Pods).await;
    // On the cluster network, where the pods reach it.
    let options = RedisOptions { password: Some(PASSWORD.into()), listen: Some(s.host_ip()), ..Default::default() };
    let mut redis = RedisServer::start_with(options).expect("redis-server starts (make setup installs it)");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "redis-auth" },
        "stringData": { "password": PASSWORD },
    }))
    .unwrap();
    s.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
    let operator = s.start_operator().await;
    let spec = json!({
        "replicas": { "min": 2, "max": 2 },
        "autoscaling": { "enabled": false },
        "cache": { "redis": { "url": redis.url_without_password(), "secretRef": { "name": "redis-auth" }, "timeoutMs": 100 } },
    });
    s.create(&s.ocr_service("cached", spec)).await;
    s.wait_status("cached", "Healthy with two ready pods", TIMEOUT, |o| {
        let status = o.status.as_ref()?;
        (status.phase == Some(Phase::Healthy) && status.ready_replicas == Some(2)).then_some(())
    })
    .await;

    // The password reaches the pods from the Secret, not through their arguments.
    let deployment = s.api::<Deployment>().get("cached-stable").await.unwrap();
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert!(args.contains(&format!("--redis-url={}", redis.url_without_password())), "{args:?}");
    assert!(!args.iter().any(|a| a.contains(PASSWORD)), "{args:?}");
    let env = serde_json::to_value(container.env.clone().unwrap_or_default()).unwrap();
    assert!(env.to_string().contains("redis-auth"), "{env}");

    let pods = s.api::<Pod>().list(&ListParams::default().labels(&format!("{SERVICE_LABEL}=cached"))).await.unwrap();
    let mut addresses: Vec<String> = pods.items.iter().filter_map(|p| p.status.as_ref()?.pod_ip.clone()).collect();
    addresses.sort();
    assert_eq!(addresses.len(), 2, "{addresses:?}");
    let page = std::fs::read(workspace_root().join("golden/data/documents/doc-invoice-01-clean.png")).unwrap();

    let computed = recognize(&addresses[0], &page).await.unwrap();
    assert!(!computed.cached && computed.text.contains("ACME"), "{}", computed.text);
    let prefix = format!("kube-ocr:{}:cached:result:*", s.namespace);
    wait_for("the first pod's result stored in Redis", TIMEOUT, async || {
        (!redis.cli(&["--scan", "--pattern", &prefix]).ok()?.is_empty()).then_some(())
    })
    .await;
    let shared = recognize(&addresses[1], &page).await.unwrap();
    assert!(shared.cached, "the second pod must answer from the first one's work");
    assert_eq!(shared.text, computed.text);
    assert_eq!(shared_lookups(&addresses[1], "hit").await, 1.0);

    // Redis gone mid-traffic: every request, to either pod, still succeeds.
    redis.kill();
    let other = std::fs::read(workspace_root().join("golden/data/documents/doc-letter-01-clean.png")).unwrap();
    for turn in 0..8 {
        let address = &addresses[turn % 2];
        let image = if turn % 3 == 0 { &page } else { &other };
        let reply = recognize(address, image).await.unwrap_or_else(|error| panic!("{address}: {error:#}"));
        assert!(!reply.text.is_empty());
    }
    for address in &addresses {
        let failed = shared_lookups(address, "error").await + shared_lookups(address, "skipped").await;
        assert!(failed >= 1.0, "{address} must count the lost Redis");
    }
    operator.shutdown().await;
    s.finish().await;
}
