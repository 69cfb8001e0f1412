use serde_json::{Value, json};

use super::*;

const TARGETS: RouteTargets<'static> =
    RouteTargets { namespace: "team-a", stable_service: "ocr-stable", canary_service: "ocr-canary", canary_weight: 0 };

fn at(weight: i32) -> RouteTargets<'static> {
    RouteTargets { canary_weight: weight, ..TARGETS }
}

fn route(rules: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute",
        "metadata": { "name": "ocr", "namespace": "team-a", "resourceVersion": "42" },
        "spec": { "parentRefs": [{ "name": "gw" }], "rules": rules },
    })
}

fn backend(name: &str, weight: i32) -> Value {
    json!({ "group": "", "kind": "Service", "name": name, "port": 50051, "weight": weight })
}

fn patch_of(change: RouteChange) -> Vec<Value> {
    match change {
        RouteChange::Patch(Value::Array(operations)) => operations,
        other => panic!("expected a patch, got {other:?}"),
    }
}

#[test]
fn weights_already_in_place_need_no_write() {
    let at_rest = route(json!([{ "backendRefs": [backend("ocr-stable", 100), backend("ocr-canary", 0)] }]));
    assert_eq!(plan_route_weights(&at_rest, &at(0)), Ok(RouteChange::Unchanged));
    let mid = route(json!([{ "backendRefs": [backend("ocr-canary", 25), backend("ocr-stable", 75)] }]));
    assert_eq!(plan_route_weights(&mid, &at(25)), Ok(RouteChange::Unchanged));
}

#[test]
fn a_step_replaces_both_weights_behind_a_resource_version_test() {
    let at_rest = route(json!([{ "backendRefs": [backend("ocr-stable", 100), backend("ocr-canary", 0)] }]));
    let operations = patch_of(plan_route_weights(&at_rest, &at(10)).unwrap());
    assert_eq!(
        operations,
        [
            json!({ "op": "test", "path": "/metadata/resourceVersion", "value": "42" }),
            json!({ "op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 90 }),
            json!({ "op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 10 }),
        ]
    );
}

#[test]
fn only_the_weight_that_differs_is_written() {
    let route = route(json!([{ "backendRefs": [backend("ocr-stable", 100), backend("ocr-canary", 50)] }]));
    let operations = patch_of(plan_route_weights(&route, &at(0)).unwrap());
    assert_eq!(operations.len(), 2);
    assert_eq!(operations[1], json!({ "op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 0 }));
}

#[test]
fn a_missing_canary_backend_ref_is_added_beside_the_stable_one() {
    let route = route(json!([
        { "matches": [{ "method": { "service": "other.v1.Other" } }], "backendRefs": [backend("other", 1)] },
        { "backendRefs": [{ "name": "ocr-stable", "port": 50051 }] },
    ]));
    let operations = patch_of(plan_route_weights(&route, &at(50)).unwrap());
    assert_eq!(
        operations[1..],
        [
            // No weight means the schema's default of 1: it must be set, not left.
            json!({ "op": "add", "path": "/spec/rules/1/backendRefs/0/weight", "value": 50 }),
            json!({ "op": "add", "path": "/spec/rules/1/backendRefs/-",
                    "value": { "name": "ocr-canary", "port": 50051, "weight": 50 } }),
        ]
    );
}

#[test]
fn every_rule_with_the_stable_service_is_managed_and_others_are_left_alone() {
    let route = route(json!([
        { "backendRefs": [backend("ocr-stable", 100), backend("ocr-canary", 0)] },
        // A rule that only sends to the canary (e.g. a test header) is the user's.
        { "backendRefs": [backend("ocr-canary", 1)] },
        { "backendRefs": [backend("ocr-stable", 100), backend("ocr-canary", 0), backend("shadow", 5)] },
    ]));
    let operations = patch_of(plan_route_weights(&route, &at(100)).unwrap());
    let paths: Vec<&str> = operations[1..].iter().map(|o| o["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/spec/rules/0/backendRefs/0/weight",
            "/spec/rules/0/backendRefs/1/weight",
            "/spec/rules/2/backendRefs/0/weight",
            "/spec/rules/2/backendRefs/1/weight",
        ]
    );
}

#[test]
fn backend_refs_to_other_kinds_or_namespaces_are_not_the_services() {
    let route = route(json!([{ "backendRefs": [
        { "kind": "ServiceImport", "group": "multicluster.x-k8s.io", "name": "ocr-stable", "weight": 1 },
        { "name": "ocr-stable", "namespace": "team-b", "port": 50051, "weight": 1 },
    ] }]));
    assert_eq!(plan_route_weights(&route, &at(0)), Err(RouteProblem::NoStableBackend));
    let same_namespace = route_with_namespace("team-a");
    assert!(matches!(plan_route_weights(&same_namespace, &at(0)), Ok(RouteChange::Patch(_))));
}

fn route_with_namespace(namespace: &str) -> Value {
    route(json!([{ "backendRefs": [{ "name": "ocr-stable", "namespace": namespace, "port": 50051, "weight": 1 }] }]))
}

#[test]
fn a_route_without_the_stable_service_or_with_two_refs_to_it_is_refused() {
    let no_rules = json!({ "metadata": { "resourceVersion": "1" }, "spec": { "parentRefs": [] } });
    assert_eq!(plan_route_weights(&no_rules, &at(0)), Err(RouteProblem::NoStableBackend));
    let canary_only = route(json!([{ "backendRefs": [backend("ocr-canary", 1)] }]));
    assert_eq!(plan_route_weights(&canary_only, &at(0)), Err(RouteProblem::NoStableBackend));
    let twice = route(json!([{ "backendRefs": [backend("ocr-stable", 50), backend("ocr-stable", 50)] }]));
    assert_eq!(
        plan_route_weights(&twice, &at(0)),
        Err(RouteProblem::DuplicateBackend { rule: 0, service: "ocr-stable".into() })
    );
    let malformed = route(json!({ "backendRefs": [] }));
    assert_eq!(plan_route_weights(&malformed, &at(0)), Err(RouteProblem::Malformed { what: "spec.rules" }));
}

#[test]
fn problems_name_their_reason_and_tell_the_user_what_to_do() {
    let grpc = RouteKind::Grpc;
    let message = RouteProblem::NotFound.message(grpc, "ocr", &TARGETS);
    assert_eq!(RouteProblem::NotFound.reason(grpc), "GRPCRouteNotFound");
    assert!(message.contains("GRPCRoute ocr") && message.contains("team-a") && message.contains("ocr-stable"));
    assert!(message.contains("spec.rollout.traffic.grpcRoute"), "{message}");
    assert_eq!(RouteProblem::GatewayApiNotInstalled.reason(grpc), "GatewayAPINotInstalled");
    assert!(
        RouteProblem::GatewayApiNotInstalled.message(grpc, "ocr", &TARGETS).contains("install the Gateway API CRDs")
    );
    assert_eq!(RouteProblem::NoStableBackend.reason(grpc), "GRPCRouteInvalid");
    let message = RouteProblem::NoStableBackend.message(grpc, "ocr", &TARGETS);
    assert!(message.contains("backendRef to the Service ocr-stable") && message.contains("port 50051"), "{message}");
}

#[test]
fn http_route_problems_name_the_http_route_its_field_and_port() {
    let http = RouteKind::Http;
    assert_eq!(RouteProblem::NotFound.reason(http), "HTTPRouteNotFound");
    let message = RouteProblem::NotFound.message(http, "ocr-http", &TARGETS);
    assert!(message.starts_with("HTTPRoute ocr-http (spec.rollout.traffic.httpRoute) does not exist"), "{message}");
    assert!(!message.contains("GRPCRoute") && !message.contains("grpcRoute"), "{message}");
    let not_installed = RouteProblem::GatewayApiNotInstalled.message(http, "ocr-http", &TARGETS);
    assert_eq!(RouteProblem::GatewayApiNotInstalled.reason(http), "GatewayAPINotInstalled");
    assert!(not_installed.contains("does not serve HTTPRoute") && !not_installed.contains("GRPCRoute"));
    let invalid = [
        RouteProblem::NoStableBackend,
        RouteProblem::DuplicateBackend { rule: 0, service: "ocr-canary".into() },
        RouteProblem::Malformed { what: "spec.rules" },
    ];
    for problem in invalid {
        assert_eq!(problem.reason(http), "HTTPRouteInvalid", "{problem:?}");
        assert_eq!(problem.reason(RouteKind::Grpc), "GRPCRouteInvalid", "{problem:?}");
        let message = problem.message(http, "ocr-http", &TARGETS);
        assert!(message.contains("HTTPRoute ocr-http") && !message.contains("GRPC"), "{message}");
    }
    let message = RouteProblem::NoStableBackend.message(http, "ocr-http", &TARGETS);
    assert!(message.contains("add one (port 8000)") && !message.contains("50051"), "{message}");
}

#[test]
fn route_kinds_name_their_resource_field_and_port() {
    assert_eq!(
        (RouteKind::Grpc.kind(), RouteKind::Grpc.plural(), RouteKind::Grpc.field(), RouteKind::Grpc.service_port()),
        ("GRPCRoute", "grpcroutes", "grpcRoute", 50051)
    );
    assert_eq!(
        (RouteKind::Http.kind(), RouteKind::Http.plural(), RouteKind::Http.field(), RouteKind::Http.service_port()),
        ("HTTPRoute", "httproutes", "httpRoute", 8000)
    );
}

#[test]
fn an_http_route_gets_the_same_weights_as_a_grpc_route() {
    let http_backend = |name: &str, weight: i32| json!({ "name": name, "port": 8000, "weight": weight });
    let mut http = route(json!([
        { "matches": [{ "path": { "type": "PathPrefix", "value": "/v1/ocr" } }],
          "backendRefs": [http_backend("ocr-stable", 100)] },
    ]));
    http["kind"] = json!("HTTPRoute");
    let operations = patch_of(plan_route_weights(&http, &at(25)).unwrap());
    assert_eq!(
        operations[1..],
        [
            json!({ "op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 75 }),
            // The canary's backendRef gets the stable one's port: the HTTP API's, not gRPC's.
            json!({ "op": "add", "path": "/spec/rules/0/backendRefs/-",
                    "value": { "name": "ocr-canary", "port": 8000, "weight": 25 } }),
        ]
    );
}

#[test]
fn the_routes_are_the_ones_the_spec_names_with_the_gateway_api_provider() {
    let traffic = |spec: Value| -> TrafficSpec { serde_json::from_value(spec).unwrap() };
    let both = traffic(json!({ "provider": "gatewayAPI", "httpRoute": "h", "grpcRoute": "g" }));
    assert_eq!(configured_routes(&both), [(RouteKind::Grpc, "g"), (RouteKind::Http, "h")]);
    let grpc_only = traffic(json!({ "provider": "gatewayAPI", "grpcRoute": "g" }));
    assert_eq!(configured_routes(&grpc_only), [(RouteKind::Grpc, "g")]);
    let http_only = traffic(json!({ "provider": "gatewayAPI", "httpRoute": "h" }));
    assert_eq!(configured_routes(&http_only), [(RouteKind::Http, "h")]);
    // A route named while the provider is replicas is not touched.
    let replicas = traffic(json!({ "provider": "replicas", "grpcRoute": "g", "httpRoute": "h" }));
    assert!(configured_routes(&replicas).is_empty());
}

#[test]
fn the_canary_gets_route_traffic_only_with_a_ready_pod() {
    assert_eq!(route_canary_weight(50, 0), 0, "a starting canary would fail the requests it gets");
    assert_eq!(route_canary_weight(50, 1), 50);
    assert_eq!(route_canary_weight(100, 2), 100);
    assert_eq!(route_canary_weight(0, 2), 0);
    assert_eq!(route_canary_weight(150, 1), 100);
}
