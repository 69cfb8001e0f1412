//! Who an OcrService's children belong to: their names, labels and owner reference.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube_ocr_crds::OcrService;

use crate::error::OperatorError;
use crate::names::{FIELD_MANAGER, SERVICE_LABEL, TRACK_LABEL, Track};

/// Who the children belong to: name, namespace and the controller owner reference that
/// lets the garbage collector delete them with the `OcrService`.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub reference: OwnerReference,
}

impl Owner {
    pub fn of(ocr: &OcrService) -> Result<Self, OperatorError> {
        let name = ocr.metadata.name.clone().ok_or(OperatorError::ReadMetadata { field: "name" })?;
        let namespace = ocr.metadata.namespace.clone().ok_or(OperatorError::ReadMetadata { field: "namespace" })?;
        let mut reference = ocr.controller_owner_ref(&()).ok_or(OperatorError::ReadMetadata { field: "uid" })?;
        // Foreground deletion of the OcrService then waits for its children.
        reference.block_owner_deletion = Some(true);
        Ok(Self { name, namespace, reference })
    }

    /// Labels on every child: the app.kubernetes.io set plus the OcrService label the
    /// operator selects by.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "ocr-inference".to_owned()),
            ("app.kubernetes.io/instance".to_owned(), self.name.clone()),
            ("app.kubernetes.io/managed-by".to_owned(), FIELD_MANAGER.to_owned()),
            (SERVICE_LABEL.to_owned(), self.name.clone()),
        ])
    }

    /// Selects the pods of both tracks.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(SERVICE_LABEL.to_owned(), self.name.clone())])
    }

    /// Selects the pods of one track.
    pub fn track_selector(&self, track: Track) -> BTreeMap<String, String> {
        let mut selector = self.selector();
        selector.insert(TRACK_LABEL.to_owned(), track.label_value().to_owned());
        selector
    }

    /// Metadata of a child called `name`, owned by the OcrService.
    pub fn child_meta(&self, name: String, extra_labels: BTreeMap<String, String>) -> ObjectMeta {
        let mut labels = self.labels();
        labels.extend(extra_labels);
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }
}
