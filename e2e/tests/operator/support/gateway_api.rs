//! The Gateway API in the local control plane, for the scenarios of the `gatewayAPI`
//! traffic provider: the GRPCRoute and HTTPRoute CRDs (installed only by the tests that
//! need them, from the cache `make setup` fills), and routes read as plain JSON. No
//! gateway controller runs: a route is an object whose backendRef weights the tests check.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube_ocr_e2e::toolchain::{GATEWAY_API_VERSION, cache_root, gateway_api_crd_dir};
use serde_json::{Value, json};

use super::{Scenario, TIMEOUT, wait_for};

/// The route kinds the operator puts canary weights on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Grpc,
    Http,
}

impl RouteKind {
    pub const ALL: [Self; 2] = [Self::Grpc, Self::Http];

    pub fn kind(self) -> &'static str {
        match self {
            Self::Grpc => "GRPCRoute",
            Self::Http => "HTTPRoute",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Self::Grpc => "grpcroutes",
            Self::Http => "httproutes",
        }
    }
}

/// Installs the standard-channel GRPCRoute and HTTPRoute CRDs (server-side apply,
/// idempotent) and waits until they are Established.
pub async fn install_route_crds(client: &kube::Client) {
    for kind in RouteKind::ALL {
        install_route_crd(client, kind).await;
    }
}

async fn install_route_crd(client: &kube::Client, kind: RouteKind) {
    let file = format!("gateway.networking.k8s.io_{}.yaml", kind.plural());
    let path = gateway_api_crd_dir(&cache_root(), GATEWAY_API_VERSION).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err}; run `make setup` (make gateway-api-crds)", path.display()));
    let crd: CustomResourceDefinition = serde_norway::from_str(&text).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(&name, &PatchParams::apply("kube-ocr-e2e").force(), &Patch::Apply(&crd))
        .await
        .unwrap_or_else(|err| panic!("the API server refused the {} CRD: {err}", kind.kind()));
    wait_for(&format!("the {} CRD to be Established", kind.kind()), TIMEOUT, async || {
        let crd = crds.get(&name).await.ok()?;
        let established = crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;
}

fn routes(s: &Scenario, kind: RouteKind) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind.kind()),
        kind.plural(),
    );
    Api::namespaced_with(s.admin.clone(), &s.namespace, &resource)
}

/// Creates a route of `kind` attached to a Gateway that need not exist, with one `rule`
/// whose backendRefs are `backends` (Service name, weight) on `port`.
async fn create_route(s: &Scenario, kind: RouteKind, name: &str, mut rule: Value, port: i32, backends: &[(&str, i64)]) {
    let refs: Vec<_> =
        backends.iter().map(|(service, weight)| json!({ "name": service, "port": port, "weight": weight })).collect();
    rule["backendRefs"] = json!(refs);
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": kind.kind(),
        "metadata": { "name": name, "namespace": s.namespace },
        "spec": { "parentRefs": [{ "name": "ocr-gateway" }], "rules": [rule] },
    }))
    .unwrap();
    routes(s, kind).create(&PostParams::default(), &route).await.unwrap();
}

/// A GRPCRoute as a user writes it for an OcrService: one rule for the OCR API with
/// `backends` (Service name, weight) on the gRPC port.
pub async fn create_grpc_route(s: &Scenario, name: &str, backends: &[(&str, i64)]) {
    let rule = json!({ "matches": [{ "method": { "service": "kube_ocr.v1.Ocr" } }] });
    create_route(s, RouteKind::Grpc, name, rule, 50051, backends).await;
}

/// An HTTPRoute as a user writes it for an OcrService: one rule for the HTTP/JSON API with
/// `backends` (Service name, weight) on its port.
pub async fn create_http_route(s: &Scenario, name: &str, backends: &[(&str, i64)]) {
    let rule = json!({ "matches": [{ "path": { "type": "PathPrefix", "value": "/v1" } }] });
    create_route(s, RouteKind::Http, name, rule, 8000, backends).await;
}

/// The metadata of the route of `kind` named `name`.
pub async fn route_metadata(s: &Scenario, kind: RouteKind, name: &str) -> ObjectMeta {
    routes(s, kind).get(name).await.unwrap().metadata
}

/// The weights of the route's backendRefs by Service name (`None` when the route is gone).
pub async fn route_weights(s: &Scenario, kind: RouteKind, name: &str) -> Option<BTreeMap<String, i64>> {
    let route = routes(s, kind).get_opt(name).await.unwrap()?;
    let rules = route.data["spec"]["rules"].as_array().cloned().unwrap_or_default();
    Some(
        rules
            .iter()
            .flat_map(|rule| rule["backendRefs"].as_array().cloned().unwrap_or_default())
            .map(|backend| (backend["name"].as_str().unwrap_or("").to_owned(), backend["weight"].as_i64().unwrap_or(1)))
            .collect(),
    )
}

/// `(stable, canary)` weights of OcrService `ocr`'s route, when it has both backendRefs.
pub async fn stable_and_canary(s: &Scenario, kind: RouteKind, route: &str, ocr: &str) -> Option<(i64, i64)> {
    let weights = route_weights(s, kind, route).await?;
    Some((*weights.get(&format!("{ocr}-stable"))?, *weights.get(&format!("{ocr}-canary"))?))
}
