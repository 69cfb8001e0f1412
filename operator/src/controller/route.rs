//! The `gatewayAPI` traffic provider's IO: read a GRPCRoute or HTTPRoute, write its
//! weights. What to write (and why as a JSON patch) is decided by
//! [`crate::traffic::plan_route_weights`], the same for both kinds.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::json;
use tracing::info;

use super::context::Context;
use crate::error::OperatorError;
use crate::names::FIELD_MANAGER;
use crate::traffic::{RouteChange, RouteKind, RouteProblem, RouteTargets, plan_route_weights};

/// The Gateway API group and the version the operator reads and writes routes in (GA,
/// standard channel, for GRPCRoute and HTTPRoute alike).
const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";
/// Reads and writes per round: each failed `test` of the resourceVersion means the route
/// changed (a gateway controller writing its status, a user editing it) and is read again.
const ATTEMPTS: u32 = 3;

fn route_resource(kind: RouteKind) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GATEWAY_API_GROUP, "v1", kind.kind()), kind.plural())
}

fn routes(ctx: &Context, kind: RouteKind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), namespace, &route_resource(kind))
}

/// Reads the route of `kind` named `route_name` as the JSON [`plan_route_weights`] takes
/// (its `spec` and `metadata.resourceVersion`), and checks that the weights can be put on it.
pub async fn read_route(
    ctx: &Context,
    kind: RouteKind,
    route_name: &str,
    targets: &RouteTargets<'_>,
) -> Result<serde_json::Value, OperatorError> {
    let route = routes(ctx, kind, targets.namespace)
        .get_opt(route_name)
        .await
        .map_err(|source| OperatorError::Get { kind: kind.kind(), name: route_name.to_owned(), source })?;
    let Some(route) = route else {
        // A 404 says the same for a missing route and a missing CRD; discovery tells them apart.
        let problem =
            if routes_served(ctx, kind).await? { RouteProblem::NotFound } else { RouteProblem::GatewayApiNotInstalled };
        return Err(refused(kind, route_name, targets, &problem));
    };
    let mut document = route.data;
    document["metadata"] = json!({ "resourceVersion": route.metadata.resource_version });
    plan_route_weights(&document, targets).map_err(|problem| refused(kind, route_name, targets, &problem))?;
    Ok(document)
}

/// Puts `targets`' weights on the route of `kind` read as `document`; `Ok(true)` when it
/// wrote, `Ok(false)` when the route already had them (the steady state makes no write).
pub async fn write_route_weights(
    ctx: &Context,
    kind: RouteKind,
    route_name: &str,
    mut document: serde_json::Value,
    targets: &RouteTargets<'_>,
) -> Result<bool, OperatorError> {
    let api = routes(ctx, kind, targets.namespace);
    let mut attempt = 1;
    loop {
        let operations = match plan_route_weights(&document, targets) {
            Ok(RouteChange::Unchanged) => return Ok(false),
            Ok(RouteChange::Patch(operations)) => operations,
            Err(problem) => return Err(refused(kind, route_name, targets, &problem)),
        };
        let patch_error = |source| OperatorError::PatchRoute { kind: kind.kind(), name: route_name.to_owned(), source };
        let operations = serde_json::from_value(operations).map_err(|e| patch_error(kube::Error::SerdeError(e)))?;
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
        match api.patch(route_name, &params, &Patch::Json::<()>(operations)).await {
            Ok(_) => {
                ctx.metrics.wrote(kind.kind());
                info!(
                    route = route_name,
                    kind = kind.kind(),
                    namespace = targets.namespace,
                    canary_weight = targets.canary_weight,
                    "route weights set"
                );
                return Ok(true);
            }
            // A failed `test` (the route changed since the read) or a conflict: read again.
            Err(kube::Error::Api(status)) if matches!(status.code, 409 | 422) && attempt < ATTEMPTS => {
                info!(
                    route = route_name,
                    kind = kind.kind(),
                    namespace = targets.namespace,
                    attempt,
                    message = %status.message,
                    "the route changed while its weights were written; reading it again"
                );
                attempt += 1;
                document = read_route(ctx, kind, route_name, targets).await?;
            }
            Err(source) => return Err(patch_error(source)),
        }
    }
}

/// Whether the API server serves routes of `kind` in the version the operator uses.
async fn routes_served(ctx: &Context, kind: RouteKind) -> Result<bool, OperatorError> {
    match ctx.client.list_api_group_resources(GATEWAY_API_VERSION).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == kind.plural())),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(OperatorError::DiscoverApi { group_version: GATEWAY_API_VERSION, source }),
    }
}

fn refused(kind: RouteKind, route_name: &str, targets: &RouteTargets<'_>, problem: &RouteProblem) -> OperatorError {
    OperatorError::SetRouteWeights {
        kind: kind.kind(),
        name: route_name.to_owned(),
        reason: problem.reason(kind),
        message: problem.message(kind, route_name, targets),
    }
}
