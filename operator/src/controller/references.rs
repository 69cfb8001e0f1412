//! Objects the spec names that the operator does not create (golden-set ConfigMaps, the
//! claim of a `pvc://` model): they must exist, and status says which do not.

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::api::Api;
use kube_ocr_crds::OcrService;

use super::context::Context;
use crate::builders::DesiredState;
use crate::error::OperatorError;
use crate::model_source::ModelSource;
use crate::status::Observation;

/// Objects the spec names that the operator does not create: they must exist.
pub async fn check_references(
    ocr: &OcrService,
    namespace: &str,
    desired: &DesiredState,
    ctx: &Context,
    observation: &mut Observation,
) -> Result<(), OperatorError> {
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    for name in &ocr.spec.rollout.analysis.golden.config_maps {
        let found = config_maps.get_metadata_opt(name).await.map_err(|source| OperatorError::Get {
            kind: "ConfigMap",
            name: name.clone(),
            source,
        })?;
        if found.is_none() {
            observation.missing_config_maps.push(name.clone());
        }
    }
    if let ModelSource::Pvc { claim, .. } = &desired.model {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
        let found = claims.get_metadata_opt(claim).await.map_err(|source| OperatorError::Get {
            kind: "PersistentVolumeClaim",
            name: claim.clone(),
            source,
        })?;
        if found.is_none() {
            observation.missing_claim = Some(claim.clone());
        }
    }
    Ok(())
}
