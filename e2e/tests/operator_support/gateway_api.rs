//! The Gateway API in the local control plane, for the scenarios of the `gatewayAPI`
//! traffic provider: the GRPCRoute CRD (installed only by the tests that need it, from
//! the cache `make setup` fills), and GRPCRoutes read as plain JSON. No gateway
//! controller runs: a route is an object whose backendRef weights the tests check.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube_ocr_e2e::toolchain::{GATEWAY_API_VERSION, cache_root, gateway_api_crd_dir};
use serde_json::json;

use super::{Scenario, TIMEOUT, wait_for};

/// Installs the standard-channel GRPCRoute CRD (server-side apply, idempotent) and waits
/// until it is Established.
pub async fn install_grpc_route_crd(client: &kube::Client) {
    let path =
        gateway_api_crd_dir(&cache_root(), GATEWAY_API_VERSION).join("gateway.networking.k8s.io_grpcroutes.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err}; run `make setup` (make gateway-api-crds)", path.display()));
    let crd: CustomResourceDefinition = serde_norway::from_str(&text).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(&name, &PatchParams::apply("kube-ocr-e2e").force(), &Patch::Apply(&crd))
        .await
        .unwrap_or_else(|err| panic!("the API server refused the GRPCRoute CRD: {err}"));
    wait_for("the GRPCRoute CRD to be Established", TIMEOUT, async || {
        let crd = crds.get(&name).await.ok()?;
        let established = crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;
}

fn grpc_routes(s: &Scenario) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GRPCRoute"),
        "grpcroutes",
    );
    Api::namespaced_with(s.admin.clone(), &s.namespace, &resource)
}

/// A GRPCRoute as a user writes it for OcrService `ocr_service`: attached to a Gateway that
/// need not exist, one rule for the OCR API with `backends` (Service name, weight).
pub async fn create_grpc_route(s: &Scenario, name: &str, backends: &[(&str, i64)]) {
    let refs: Vec<_> =
        backends.iter().map(|(service, weight)| json!({ "name": service, "port": 50051, "weight": weight })).collect();
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute",
        "metadata": { "name": name, "namespace": s.namespace },
        "spec": {
            "parentRefs": [{ "name": "ocr-gateway" }],
            "rules": [{ "matches": [{ "method": { "service": "kube_ocr.v1.Ocr" } }], "backendRefs": refs }],
        },
    }))
    .unwrap();
    grpc_routes(s).create(&PostParams::default(), &route).await.unwrap();
}

/// The weights of the route's backendRefs by Service name (`None` when the route is gone).
pub async fn route_weights(s: &Scenario, name: &str) -> Option<BTreeMap<String, i64>> {
    let route = grpc_routes(s).get_opt(name).await.unwrap()?;
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
pub async fn stable_and_canary(s: &Scenario, route: &str, ocr: &str) -> Option<(i64, i64)> {
    let weights = route_weights(s, route).await?;
    Some((*weights.get(&format!("{ocr}-stable"))?, *weights.get(&format!("{ocr}-canary"))?))
}
