//! Takes a human's rollout request (the `kube-ocr.dev/rollout-action` annotation) off the
//! OcrService before the rollout acts on it: at most once, even across a restart.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use kube_ocr_crds::OcrService;
use tracing::info;

use super::context::Context;
use crate::error::OperatorError;
use crate::names::FIELD_MANAGER;
use crate::rollout::{ManualAction, removal_patch, requested_action};

/// What the annotation asked, once it is removed.
#[derive(Debug, Default)]
pub struct TakenRequest {
    pub action: Option<ManualAction>,
    /// Why the value was not understood, for a Warning event.
    pub invalid: Option<String>,
}

/// Removes the annotation ([`removal_patch`]: only if it still holds the value read) and
/// returns what it asked.
pub async fn take_request(ocr: &OcrService, namespace: &str, ctx: &Context) -> Result<TakenRequest, OperatorError> {
    let Some(request) = requested_action(ocr.meta().annotations.as_ref()) else { return Ok(TakenRequest::default()) };
    let name = ocr.name_any();
    let failed = |source| OperatorError::TakeRolloutAction { name: name.clone(), source };
    let operations =
        serde_json::from_value(removal_patch(&request.value)).map_err(|e| failed(kube::Error::SerdeError(e)))?;
    let api: Api<OcrService> = Api::namespaced(ctx.client.clone(), namespace);
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
    match api.patch(&name, &params, &Patch::Json::<()>(operations)).await {
        Ok(_) => {}
        // The test failed: someone changed or removed the value since this copy was read.
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 409 => {
            return Ok(TakenRequest::default());
        }
        Err(source) => return Err(failed(source)),
    }
    ctx.metrics.wrote("OcrService");
    info!(ocrservice = %name, %namespace, value = %request.value, "took the rollout-action request");
    Ok(match request.action {
        Ok(action) => TakenRequest { action: Some(action), invalid: None },
        Err(why) => TakenRequest { action: None, invalid: Some(why) },
    })
}
