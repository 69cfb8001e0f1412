//! Applying an OcrService's children: the Services, the stable Deployment, the HPA (or its
//! removal) and the PodDisruptionBudget, all with server-side apply under the one field
//! manager. A state applied recently is not sent again ([`super::applied`]).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject};

use super::apply::{apply, apply_dynamic, delete_dynamic_if_present, delete_if_present};
use super::context::Context;
use crate::builders::{
    DesiredState, fingerprint, jobs_front_name, keda_object_name, scaled_object_resource,
    trigger_authentication_resource,
};
use crate::error::OperatorError;
use crate::names::autoscaler_name;
use crate::status::{Observation, StableObservation};

/// Optional children the spec stopped asking for, which the status says were applied, or
/// (the job front) the operator's cache still holds: a cluster that never had them is not
/// asked to delete them, and a delete that failed is tried again.
#[derive(Debug, Clone, Copy, Default)]
pub struct Removals {
    pub keda: bool,
    pub jobs_front: bool,
}

/// Applies the desired children (stable only when `apply_stable`) and observes the stable
/// Deployment for the status.
pub async fn apply_children(
    namespace: &str,
    name: &str,
    desired: &DesiredState,
    ctx: &Context,
    observation: &mut Observation,
    apply_stable: bool,
    removals: Removals,
) -> Result<(), OperatorError> {
    let client = &ctx.client;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    // Reconciles triggered by pod and status churn find this exact state applied already:
    // read the stable Deployment for the status and send no writes.
    let key = format!("{namespace}/{name}");
    let print = format!("{}:{apply_stable}", fingerprint(desired));
    let stable_name = desired.stable.metadata.name.clone().unwrap_or_default();
    if ctx.applied.is_fresh(&key, &print, ctx.config.resync())
        && let Some(stable) = ctx.children.deployment(namespace, &stable_name)
    {
        observation.stable = Some(StableObservation::from_deployment(&stable));
        return Ok(());
    }
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), namespace);
    // The children do not depend on each other: sent together, a reconcile costs one
    // round trip instead of six.
    let apply_services =
        futures::future::try_join_all(desired.services.iter().map(|service| apply(&services, service, &ctx.metrics)));
    let stable = async {
        // While a canary is judged, stable keeps the template it runs: it is not applied.
        if apply_stable {
            apply(&deployments, &desired.stable, &ctx.metrics).await.map(Some)
        } else {
            Ok(ctx.children.deployment(namespace, &stable_name).map(|stable| stable.as_ref().clone()))
        }
    };
    let autoscaler = async {
        match &desired.autoscaler {
            Some(hpa) => apply(&autoscalers, hpa, &ctx.metrics).await.map(drop),
            None => delete_if_present(&autoscalers, &autoscaler_name(name), &ctx.metrics).await,
        }
    };
    let budget = apply(&budgets, &desired.disruption_budget, &ctx.metrics);
    let keda = apply_keda(namespace, name, desired, ctx, removals.keda);
    let front = apply_jobs_front(namespace, name, desired, ctx, removals.jobs_front);
    let (services_applied, stable, autoscaler, budget, keda, front) =
        futures::join!(apply_services, stable, autoscaler, budget, keda, front);
    // The stable Deployment feeds the status even when another child failed.
    let stable = stable?;
    observation.stable = stable.as_ref().map(StableObservation::from_deployment);
    services_applied?;
    autoscaler?;
    budget?;
    keda?;
    front?;
    ctx.applied.record(&key, print);
    Ok(())
}

/// KEDA's objects when the spec asks for them; their removal when it stopped asking
/// (`remove`: the status says the operator applied them before, so a cluster without
/// KEDA is never asked about its types).
async fn apply_keda(
    namespace: &str,
    name: &str,
    desired: &DesiredState,
    ctx: &Context,
    remove: bool,
) -> Result<(), OperatorError> {
    let scaled_objects: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &scaled_object_resource());
    let authentications: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &trigger_authentication_resource());
    match &desired.keda {
        Some(keda) => {
            // The credentials first: KEDA reads them as soon as the ScaledObject appears.
            if let Some(authentication) = &keda.trigger_authentication {
                apply_dynamic(&authentications, authentication, "TriggerAuthentication", &ctx.metrics).await?;
            }
            apply_dynamic(&scaled_objects, &keda.scaled_object, "ScaledObject", &ctx.metrics).await
        }
        None if remove => {
            let object = keda_object_name(name);
            delete_dynamic_if_present(&scaled_objects, &object, "ScaledObject", &ctx.metrics).await?;
            delete_dynamic_if_present(&authentications, &object, "TriggerAuthentication", &ctx.metrics).await
        }
        None => Ok(()),
    }
}

/// The job front's Deployment and Service when the spec has jobs; their removal when it
/// stopped having them.
async fn apply_jobs_front(
    namespace: &str,
    name: &str,
    desired: &DesiredState,
    ctx: &Context,
    remove: bool,
) -> Result<(), OperatorError> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    match &desired.jobs_front {
        Some((deployment, service)) => {
            let (deployment, service) =
                futures::join!(apply(&deployments, deployment, &ctx.metrics), apply(&services, service, &ctx.metrics));
            deployment.and(service).map(drop)
        }
        None if remove => {
            // The Service first: the Deployment left in the operator's cache is what makes
            // the next reconcile try again after a failure (see `Removals`).
            let front = jobs_front_name(name);
            delete_if_present(&services, &front, &ctx.metrics).await?;
            delete_if_present(&deployments, &front, &ctx.metrics).await
        }
        None => Ok(()),
    }
}
