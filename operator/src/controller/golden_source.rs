//! The golden set an OcrService is judged against, read from ConfigMaps (the layout of
//! `kube_ocr_golden::config_map`). A name in `spec.rollout.analysis.golden.configMaps`
//! is a ConfigMap, or a set split into parts labelled `kube-ocr.dev/golden-set=<name>`.
//! With no names, the default set `ocr-golden-default` is used: from the OcrService's
//! namespace, else from the operator's (where the Helm chart installs it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube_ocr_golden::GoldenSet;
use kube_ocr_golden::config_map::{ConfigMapContents, GOLDEN_SET_LABEL, load_config_maps};

/// The set the chart ships and that OcrServices use when they name none.
pub const DEFAULT_GOLDEN_SET: &str = "ocr-golden-default";

/// A golden set unpacked into a temporary folder (removed on drop), with the
/// resourceVersions it was read from, so an unchanged set is not unpacked again.
#[derive(Debug)]
pub struct LoadedGoldenSet {
    pub set: GoldenSet,
    pub versions: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Reads the ConfigMaps behind `names` (or the default set) and unpacks them. `Err`
/// says what is missing or malformed, for the Degraded condition.
pub async fn load_golden_set(
    client: &kube::Client,
    namespace: &str,
    operator_namespace: Option<&str>,
    names: &[String],
) -> Result<LoadedGoldenSet, String> {
    let default = [DEFAULT_GOLDEN_SET.to_owned()];
    let (names, namespaces): (&[String], Vec<&str>) = if names.is_empty() {
        (&default, std::iter::once(namespace).chain(operator_namespace.filter(|ns| *ns != namespace)).collect())
    } else {
        (names, vec![namespace])
    };
    let mut maps = Vec::new();
    for name in names {
        let mut found = Vec::new();
        for ns in &namespaces {
            found = config_maps_named(client, ns, name).await?;
            if !found.is_empty() {
                break;
            }
        }
        if found.is_empty() {
            return Err(format!(
                "golden set {name:?} not found: no ConfigMap of that name and none labelled {GOLDEN_SET_LABEL}={name} in {}",
                namespaces.join(" or ")
            ));
        }
        maps.extend(found);
    }
    let versions = maps.iter().map(|m| m.metadata.resource_version.clone().unwrap_or_default()).collect();
    let contents: Vec<ConfigMapContents> = maps
        .into_iter()
        .map(|map| {
            let data: BTreeMap<String, String> = map.data.unwrap_or_default();
            let binary = map.binary_data.unwrap_or_default().into_iter().map(|(key, bytes)| (key, bytes.0)).collect();
            (data, binary)
        })
        .collect();
    let dir = tempfile::Builder::new().prefix("kube-ocr-golden-").tempdir().map_err(|e| e.to_string())?;
    let set = load_config_maps(&contents, dir.path()).map_err(|e| format!("golden set {names:?} is malformed: {e}"))?;
    Ok(LoadedGoldenSet { set, versions, _dir: dir })
}

async fn config_maps_named(client: &kube::Client, namespace: &str, name: &str) -> Result<Vec<ConfigMap>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    if let Some(map) = api.get_opt(name).await.map_err(|e| format!("reading ConfigMap {namespace}/{name}: {e}"))? {
        return Ok(vec![map]);
    }
    let mut parts = api
        .list(&ListParams::default().labels(&format!("{GOLDEN_SET_LABEL}={name}")))
        .await
        .map_err(|e| format!("listing golden-set ConfigMaps in {namespace}: {e}"))?
        .items;
    parts.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(parts)
}
