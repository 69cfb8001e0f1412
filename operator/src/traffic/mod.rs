//! The `gatewayAPI` traffic provider, as pure code: from a GRPCRoute or HTTPRoute (as
//! JSON) and the canary weight, the JSON patch that puts the weights on the route's
//! backendRefs, or nothing to do, or what is wrong with the route. Both kinds share the
//! shape the weights live in (`spec.rules[].backendRefs[].weight`), so the plan does not
//! depend on the kind; only the messages do ([`RouteKind`]). It uses no other module of
//! the operator but the leaf `names`; the controller does the IO (`controller/route.rs`).
//!
//! Why a JSON patch of single weights, guarded by a `test` of `metadata.resourceVersion`:
//! the route belongs to the user. `rules` and `backendRefs` are atomic lists in the Gateway
//! API schema, so a server-side apply of a weight would claim (and could reset) the whole
//! list, and a merge patch replaces lists whole. A JSON patch names each weight by its
//! position; the `test` makes the write fail, instead of landing on the wrong backendRef,
//! when the route changed between our read and our write (the controller then reads again).

#[cfg(test)]
mod tests;

use kube_ocr_crds::conditions::reasons::{
    GATEWAY_API_NOT_INSTALLED, GRPC_ROUTE_INVALID, GRPC_ROUTE_NOT_FOUND, HTTP_ROUTE_INVALID, HTTP_ROUTE_NOT_FOUND,
};
use kube_ocr_crds::{TrafficProvider, TrafficSpec};
use serde_json::{Value, json};

use crate::names::{GRPC_PORT, HTTP_API_PORT};

/// The kinds of Gateway API route the weights can be put on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `GRPCRoute`, named by `spec.rollout.traffic.grpcRoute`; backendRefs on the gRPC port.
    Grpc,
    /// `HTTPRoute`, named by `spec.rollout.traffic.httpRoute`; backendRefs on the HTTP/JSON
    /// API port.
    Http,
}

impl RouteKind {
    /// The Gateway API kind.
    pub const fn kind(self) -> &'static str {
        match self {
            Self::Grpc => "GRPCRoute",
            Self::Http => "HTTPRoute",
        }
    }

    /// The resource's plural, as the API server serves it.
    pub const fn plural(self) -> &'static str {
        match self {
            Self::Grpc => "grpcroutes",
            Self::Http => "httproutes",
        }
    }

    /// The field of `spec.rollout.traffic` that names a route of this kind.
    pub const fn field(self) -> &'static str {
        match self {
            Self::Grpc => "grpcRoute",
            Self::Http => "httpRoute",
        }
    }

    /// The port of the Services a route of this kind sends to.
    pub const fn service_port(self) -> i32 {
        match self {
            Self::Grpc => GRPC_PORT,
            Self::Http => HTTP_API_PORT,
        }
    }

    const fn not_found_reason(self) -> &'static str {
        match self {
            Self::Grpc => GRPC_ROUTE_NOT_FOUND,
            Self::Http => HTTP_ROUTE_NOT_FOUND,
        }
    }

    const fn invalid_reason(self) -> &'static str {
        match self {
            Self::Grpc => GRPC_ROUTE_INVALID,
            Self::Http => HTTP_ROUTE_INVALID,
        }
    }
}

/// The routes the weights go on: none with the `replicas` provider; with `gatewayAPI`
/// each one the spec names, the GRPCRoute first.
pub fn configured_routes(traffic: &TrafficSpec) -> Vec<(RouteKind, &str)> {
    match traffic.provider {
        TrafficProvider::Replicas => Vec::new(),
        TrafficProvider::GatewayApi => [(RouteKind::Grpc, &traffic.grpc_route), (RouteKind::Http, &traffic.http_route)]
            .into_iter()
            .filter_map(|(kind, name)| name.as_deref().map(|name| (kind, name)))
            .collect(),
    }
}

/// The two backends of one OcrService on its route, and the weight the canary should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTargets<'a> {
    /// The route's (and the OcrService's) namespace.
    pub namespace: &'a str,
    /// `<ocrservice>-stable`.
    pub stable_service: &'a str,
    /// `<ocrservice>-canary`.
    pub canary_service: &'a str,
    /// Canary share in percent; stable gets the rest.
    pub canary_weight: i32,
}

/// Why the weights cannot be written; each names the condition reason it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteProblem {
    NotFound,
    GatewayApiNotInstalled,
    /// No rule has a backendRef to the stable Service.
    NoStableBackend,
    /// A rule has two backendRefs to the same track's Service: the shares would not add up.
    DuplicateBackend {
        rule: usize,
        service: String,
    },
    /// The route is not shaped like a Gateway API route (a field of the wrong type).
    Malformed {
        what: &'static str,
    },
}

impl RouteProblem {
    /// The condition reason, for a route of `kind`.
    pub fn reason(&self, kind: RouteKind) -> &'static str {
        match self {
            Self::NotFound => kind.not_found_reason(),
            Self::GatewayApiNotInstalled => GATEWAY_API_NOT_INSTALLED,
            Self::NoStableBackend | Self::DuplicateBackend { .. } | Self::Malformed { .. } => kind.invalid_reason(),
        }
    }

    /// What is wrong with the route of `kind` named `route` and what the user should do,
    /// for the Degraded condition and event.
    pub fn message(&self, kind: RouteKind, route: &str, targets: &RouteTargets<'_>) -> String {
        let (namespace, stable) = (targets.namespace, targets.stable_service);
        let (name, field, port) = (kind.kind(), kind.field(), kind.service_port());
        match self {
            Self::NotFound => format!(
                "{name} {route} (spec.rollout.traffic.{field}) does not exist in namespace {namespace}; create it \
                 with a rule whose backendRefs name the Service {stable}, or set provider: replicas."
            ),
            Self::GatewayApiNotInstalled => format!(
                "The API server does not serve {name} (gateway.networking.k8s.io/v1), needed for {name} {route}: \
                 install the Gateway API CRDs (standard channel), or set provider: replicas."
            ),
            Self::NoStableBackend => format!(
                "{name} {route} has no rule with a backendRef to the Service {stable}: add one (port {port}) to the \
                 rule that should carry this OcrService's traffic."
            ),
            Self::DuplicateBackend { rule, service } => format!(
                "Rule {rule} of {name} {route} has more than one backendRef to the Service {service}: keep one, \
                 so that the stable and canary weights add up to 100."
            ),
            Self::Malformed { what } => format!("{name} {route}: {what} is not what the Gateway API schema says."),
        }
    }
}

/// Whether the route's weights need a write.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteChange {
    /// Every managed backendRef already carries its weight.
    Unchanged,
    /// A JSON patch (RFC 6902) whose first operation tests the resourceVersion that was read.
    Patch(Value),
}

/// The weights `targets` asks for on `route`. In every rule that has a backendRef to the
/// stable Service: stable gets `100 − w`, the canary `w`. A rule without a backendRef to
/// the canary Service gets one (port and namespace copied from the stable one), so a route
/// written before its first canary works as it is. Other backendRefs and rules without the
/// stable Service are left alone.
pub fn plan_route_weights(route: &Value, targets: &RouteTargets<'_>) -> Result<RouteChange, RouteProblem> {
    let canary_weight = targets.canary_weight.clamp(0, 100);
    let stable_weight = 100 - canary_weight;
    let rules = match route.pointer("/spec/rules") {
        None | Some(Value::Null) => return Err(RouteProblem::NoStableBackend),
        Some(Value::Array(rules)) => rules,
        Some(_) => return Err(RouteProblem::Malformed { what: "spec.rules" }),
    };
    let mut operations = Vec::new();
    let mut managed_rules = 0;
    for (rule_index, rule) in rules.iter().enumerate() {
        let refs = match rule.get("backendRefs") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(refs)) => refs,
            Some(_) => return Err(RouteProblem::Malformed { what: "spec.rules[].backendRefs" }),
        };
        let positions = |service: &str| -> Vec<usize> {
            refs.iter()
                .enumerate()
                .filter(|(_, r)| names_service(r, service, targets.namespace))
                .map(|(i, _)| i)
                .collect()
        };
        let stable = positions(targets.stable_service);
        let canary = positions(targets.canary_service);
        let Some(&stable_index) = stable.first() else { continue };
        for (found, service) in [(&stable, targets.stable_service), (&canary, targets.canary_service)] {
            if found.len() > 1 {
                return Err(RouteProblem::DuplicateBackend { rule: rule_index, service: service.to_owned() });
            }
        }
        managed_rules += 1;
        let path = |index: usize| format!("/spec/rules/{rule_index}/backendRefs/{index}/weight");
        if let Some(operation) = set_weight(&refs[stable_index], path(stable_index), stable_weight) {
            operations.push(operation);
        }
        match canary.first() {
            Some(&canary_index) => {
                if let Some(operation) = set_weight(&refs[canary_index], path(canary_index), canary_weight) {
                    operations.push(operation);
                }
            }
            None => operations.push(json!({
                "op": "add",
                "path": format!("/spec/rules/{rule_index}/backendRefs/-"),
                "value": canary_backend_ref(&refs[stable_index], targets.canary_service, canary_weight),
            })),
        }
    }
    if managed_rules == 0 {
        return Err(RouteProblem::NoStableBackend);
    }
    if operations.is_empty() {
        return Ok(RouteChange::Unchanged);
    }
    let Some(resource_version) = route.pointer("/metadata/resourceVersion").and_then(Value::as_str) else {
        return Err(RouteProblem::Malformed { what: "metadata.resourceVersion" });
    };
    operations.insert(0, json!({ "op": "test", "path": "/metadata/resourceVersion", "value": resource_version }));
    Ok(RouteChange::Patch(Value::Array(operations)))
}

/// The canary weight to put on the route: the plan's, once a canary pod is Ready to take
/// it. Until then (a canary that is still starting, or one that lost every Ready pod)
/// requests sent to its Service would fail, so it gets none.
pub fn route_canary_weight(plan_weight: i32, ready_canary_pods: i32) -> i32 {
    if ready_canary_pods > 0 { plan_weight.clamp(0, 100) } else { 0 }
}

/// A backendRef names a Service: core group, kind Service (both the schema's defaults),
/// the route's own namespace.
fn names_service(backend_ref: &Value, service: &str, namespace: &str) -> bool {
    let field = |name: &str| backend_ref.get(name).and_then(Value::as_str);
    field("group").is_none_or(str::is_empty)
        && field("kind").is_none_or(|kind| kind == "Service")
        && field("name") == Some(service)
        && field("namespace").is_none_or(|ns| ns == namespace)
}

/// A `replace` (or `add`, when the weight is absent and so defaults to 1) of one weight,
/// or `None` when it already has the value.
fn set_weight(backend_ref: &Value, path: String, weight: i32) -> Option<Value> {
    match backend_ref.get("weight") {
        Some(current) if current.as_i64() == Some(i64::from(weight)) => None,
        Some(_) => Some(json!({ "op": "replace", "path": path, "value": weight })),
        None => Some(json!({ "op": "add", "path": path, "value": weight })),
    }
}

fn canary_backend_ref(stable_ref: &Value, canary_service: &str, weight: i32) -> Value {
    let mut canary = json!({ "name": canary_service, "weight": weight });
    for field in ["port", "namespace"] {
        if let Some(value) = stable_ref.get(field) {
            canary[field] = value.clone();
        }
    }
    canary
}
