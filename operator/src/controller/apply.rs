//! Server-side apply with the operator's one field manager.

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::OperatorError;
use crate::names::FIELD_MANAGER;
use crate::telemetry::Metrics;

/// Applies `object` (apiVersion and kind included by k8s-openapi's serialisation) and
/// returns what the API server stored. `force`: the operator is the only rightful owner
/// of the fields it sets; anything it leaves out (e.g. `replicas` under an HPA) stays with
/// whoever owns it.
pub async fn apply<K>(api: &Api<K>, object: &K, metrics: &Metrics) -> Result<K, OperatorError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api.patch(&name, &params, &Patch::Apply(object)).await.map_err(|source| OperatorError::Apply {
        kind: kind_of::<K>(),
        name,
        source,
    })?;
    metrics.wrote(kind_of::<K>());
    Ok(applied)
}

/// Deletes `name` if it exists.
pub async fn delete_if_present<K>(api: &Api<K>, name: &str, metrics: &Metrics) -> Result<(), OperatorError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            metrics.wrote(kind_of::<K>());
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(OperatorError::Delete { kind: kind_of::<K>(), name: name.to_owned(), source }),
    }
}

/// Applies an object of a type the operator does not compile in (KEDA's), named by `kind`.
pub async fn apply_dynamic(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    kind: &'static str,
    metrics: &Metrics,
) -> Result<(), OperatorError> {
    let name = object.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(object)).await.map_err(|source| OperatorError::Apply {
        kind,
        name,
        source,
    })?;
    metrics.wrote(kind);
    Ok(())
}

/// Deletes `name` of a type the operator does not compile in, if it (and its type) exists.
pub async fn delete_dynamic_if_present(
    api: &Api<DynamicObject>,
    name: &str,
    kind: &'static str,
    metrics: &Metrics,
) -> Result<(), OperatorError> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            metrics.wrote(kind);
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(OperatorError::Delete { kind, name: name.to_owned(), source }),
    }
}

fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    // Typed resources name their kind statically; metrics labels need a 'static str.
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(kind) => kind,
        std::borrow::Cow::Owned(_) => "object",
    }
}
