//! Golden sets as Kubernetes ConfigMaps, so the operator can score canaries against a set
//! the user ships with `kubectl apply`.
//!
//! Layout of one ConfigMap: `data["truth.jsonl"]` holds the items, whose `file` names a
//! key of `binaryData` holding the image. Keys cannot contain `/`, so `lines/a.png`
//! becomes `lines.a.png`. A ConfigMap holds at most 1 MiB, so a larger set is split into
//! parts `<name>-1`, `<name>-2`, …, each a complete set of its own items; the operator
//! merges every ConfigMap named in `spec.rollout.analysis.golden.configMaps`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::dataset::{GoldenItem, GoldenSet, TRUTH_FILE, Task, Truth};
use crate::error::GoldenError;

/// Bytes of one ConfigMap's payload we allow: the API server's limit is 1 MiB for the
/// whole object, and base64 plus metadata need headroom.
pub const DEFAULT_MAX_BYTES: usize = 900_000;

/// Label that marks a ConfigMap as a golden set.
pub const GOLDEN_SET_LABEL: &str = "kube-ocr.dev/golden-set";

/// One ConfigMap's worth of a golden set.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigMapPart {
    pub name: String,
    pub truth: String,
    /// binaryData key → image bytes.
    pub images: BTreeMap<String, Vec<u8>>,
}

impl ConfigMapPart {
    /// Approximate size in the API server: base64 images plus the truth text.
    pub fn payload_bytes(&self) -> usize {
        self.truth.len() + self.images.values().map(|b| b.len().div_ceil(3) * 4).sum::<usize>()
    }

    /// The ConfigMap object as JSON (`kubectl apply` and Helm read it as YAML too).
    pub fn to_manifest(&self, namespace: Option<&str>, set_name: &str) -> Value {
        let binary: serde_json::Map<String, Value> =
            self.images.iter().map(|(key, bytes)| (key.clone(), Value::String(STANDARD.encode(bytes)))).collect();
        let mut metadata = json!({
            "name": self.name,
            "labels": { GOLDEN_SET_LABEL: set_name },
        });
        if let Some(namespace) = namespace {
            metadata["namespace"] = json!(namespace);
        }
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": { TRUTH_FILE: self.truth },
            "binaryData": binary,
        })
    }
}

/// The binaryData key of an image path.
pub fn image_key(file: &Path) -> String {
    file.to_string_lossy().replace(['/', '\\'], ".")
}

/// Splits `set` into ConfigMaps of at most `max_bytes` payload each, in item order. One
/// part is named `name`; several are `name-1`, `name-2`, ….
pub fn split_into_config_maps(
    set: &GoldenSet,
    name: &str,
    max_bytes: usize,
) -> Result<Vec<ConfigMapPart>, GoldenError> {
    let mut groups: Vec<(String, BTreeMap<String, Vec<u8>>)> = Vec::new();
    let mut current_bytes = 0;
    for item in &set.items {
        let image = set.image_bytes(item)?;
        let key = image_key(&item.file);
        let line = truth_line(item, &key);
        let bytes = line.len() + 1 + image.len().div_ceil(3) * 4;
        if groups.is_empty() || (current_bytes + bytes > max_bytes && !groups.last().is_some_and(|g| g.1.is_empty())) {
            groups.push((String::new(), BTreeMap::new()));
            current_bytes = 0;
        }
        let (truth, images) = groups.last_mut().expect("pushed above");
        truth.push_str(&line);
        truth.push('\n');
        images.insert(key, image);
        current_bytes += bytes;
    }
    let count = groups.len();
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(index, (truth, images))| ConfigMapPart {
            name: if count == 1 { name.to_owned() } else { format!("{name}-{}", index + 1) },
            truth,
            images,
        })
        .collect())
}

/// A ConfigMap's `data` and decoded `binaryData`.
pub type ConfigMapContents = (BTreeMap<String, String>, BTreeMap<String, Vec<u8>>);

/// Writes ConfigMap contents (`data` and decoded `binaryData` of each) into `dir` as one
/// golden-set folder and loads it, with the usual validation (unique ids across parts,
/// every referenced image present).
pub fn load_config_maps(parts: &[ConfigMapContents], dir: &Path) -> Result<GoldenSet, GoldenError> {
    let mut truth = String::new();
    for (data, binary) in parts {
        if let Some(text) = data.get(TRUTH_FILE) {
            truth.push_str(text.trim_end());
            truth.push('\n');
        }
        for (key, bytes) in binary {
            if key.contains(['/', '\\']) || key == TRUTH_FILE || key.starts_with('.') {
                continue; // not a key we write; never let it escape `dir`
            }
            let path = dir.join(key);
            std::fs::write(&path, bytes).map_err(|source| GoldenError::ReadImage { path, source })?;
        }
    }
    let path = dir.join(TRUTH_FILE);
    std::fs::write(&path, truth).map_err(|source| GoldenError::ReadTruth { path, source })?;
    GoldenSet::load(dir)
}

fn truth_line(item: &GoldenItem, key: &str) -> String {
    let mut value = json!({
        "id": item.id,
        "file": key,
        "task": match item.task { Task::Line => "LINE", Task::Document => "DOCUMENT" },
        "group": item.group,
        "variant": item.variant,
    });
    match &item.truth {
        Truth::Text(text) => value["text"] = json!(text),
        Truth::Lines(lines) => value["lines"] = json!(lines),
    }
    if !item.tags.is_empty() {
        value["tags"] = json!(item.tags);
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_round_trips_through_config_maps_of_bounded_size() {
        let set = GoldenSet::load(crate::default_set_dir()).unwrap();
        let parts = split_into_config_maps(&set, "ocr-golden-default", DEFAULT_MAX_BYTES).unwrap();
        assert!(parts.len() >= 2, "964 KB of images cannot fit one ConfigMap");
        for (index, part) in parts.iter().enumerate() {
            assert_eq!(part.name, format!("ocr-golden-default-{}", index + 1));
            assert!(part.payload_bytes() <= DEFAULT_MAX_BYTES, "{} is {} bytes", part.name, part.payload_bytes());
        }
        // Through the manifest (base64) and back.
        let decoded: Vec<_> = parts
            .iter()
            .map(|part| {
                let manifest = part.to_manifest(Some("ns"), "default");
                assert_eq!(manifest["metadata"]["labels"][GOLDEN_SET_LABEL], "default");
                let data: BTreeMap<String, String> = serde_json::from_value(manifest["data"].clone()).unwrap();
                let binary: BTreeMap<String, Vec<u8>> = manifest["binaryData"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), STANDARD.decode(v.as_str().unwrap()).unwrap()))
                    .collect();
                (data, binary)
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let loaded = load_config_maps(&decoded, dir.path()).unwrap();
        assert_eq!(loaded.items.len(), set.items.len());
        for (original, copy) in set.items.iter().zip(&loaded.items) {
            assert_eq!((&original.id, &original.truth, &original.tags), (&copy.id, &copy.truth, &copy.tags));
            assert_eq!(set.image_bytes(original).unwrap(), loaded.image_bytes(copy).unwrap());
        }
    }

    #[test]
    fn keys_that_could_escape_the_folder_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let truth = r#"{"id": "a", "file": "a.png", "task": "LINE", "text": "x", "group": "a", "variant": "clean"}"#;
        let data = BTreeMap::from([(TRUTH_FILE.to_owned(), truth.to_owned())]);
        let binary = BTreeMap::from([
            ("a.png".to_owned(), b"img".to_vec()),
            ("../evil".to_owned(), b"no".to_vec()),
            (".hidden".to_owned(), b"no".to_vec()),
        ]);
        let set = load_config_maps(&[(data, binary)], dir.path()).unwrap();
        assert_eq!(set.items.len(), 1);
        assert!(!dir.path().join("../evil").exists() && !dir.path().join(".hidden").exists());
    }

    #[test]
    fn duplicate_ids_across_parts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let truth = r#"{"id": "a", "file": "a.png", "task": "LINE", "text": "x", "group": "a", "variant": "clean"}"#;
        let part = (
            BTreeMap::from([(TRUTH_FILE.to_owned(), truth.to_owned())]),
            BTreeMap::from([("a.png".to_owned(), b"img".to_vec())]),
        );
        let error = load_config_maps(&[part.clone(), part], dir.path()).unwrap_err();
        assert!(error.to_string().contains("duplicate"), "{error}");
    }
}
