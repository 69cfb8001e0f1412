//! What a reconcile tells: the status it writes and the Events it publishes.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use kube_ocr_crds::{OcrService, OcrServiceStatus};
use serde_json::json;
use tracing::{info, warn};

use super::context::Context;
use crate::error::OperatorError;
use crate::names::FIELD_MANAGER;
use crate::status::EventNote;

/// Writes the status with server-side apply under the operator's field manager.
pub async fn patch_status(
    ocr: &OcrService,
    namespace: &str,
    status: &OcrServiceStatus,
    ctx: &Context,
) -> Result<(), OperatorError> {
    let api: Api<OcrService> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": OcrService::api_version(&()),
        "kind": OcrService::kind(&()),
        "status": status,
    });
    let name = ocr.name_any();
    api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|source| OperatorError::PatchStatus { name: name.clone(), source })?;
    ctx.metrics.wrote("OcrService");
    info!(ocrservice = %name, %namespace, phase = ?status.phase, ready = status.ready_replicas, "status updated");
    Ok(())
}

/// Events are best effort: a failed publish is logged, never fails the reconcile.
pub async fn publish(ocr: &OcrService, note: EventNote, ctx: &Context) {
    let event = note.event();
    info!(ocrservice = %ocr.name_any(), reason = note.reason, warning = note.warning, note = %note.note, "event");
    if let Err(error) = ctx.recorder.publish(&event, &ocr.object_ref(&())).await {
        warn!(%error, reason = note.reason, "publishing an event failed");
    }
}
