//! Model bundles: a folder with `bundle.yaml`, TorchScript files and the CTC charset.
//!
//! The manifest says everything the Rust pipeline needs (which stages, their files, and the
//! pre/post-processing parameters), so another TorchScript OCR model with the same stage
//! contracts can be served without code changes. This is the layer's file IO: reading the
//! manifest and charset, checking the listed files exist.

mod charset;
mod manifest;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::model::error::ModelError;
use charset::output_classes;
use manifest::{BUNDLE_API_VERSION, MANIFEST_FILE, parse_manifest};
pub use manifest::{BundleManifest, ModelFiles, ModuleFile, RecognizerFiles, SelfTestConfig, Stage};

/// A loaded, validated bundle: the manifest, the folder it came from, its files and charset.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub root: PathBuf,
    pub manifest: BundleManifest,
    pub files: ModelFiles,
    /// Output classes in order: index = model output class.
    pub classes: Vec<String>,
}

impl Bundle {
    /// Reads and validates the bundle in `root`: manifest version, files present, charset
    /// size consistent with the recogniser's class count.
    pub fn load(root: &Path) -> Result<Self, ModelError> {
        let manifest_path = root.join(MANIFEST_FILE);
        let text = read(&manifest_path)?;
        let (manifest, files) = parse_manifest(&text)
            .map_err(|source| ModelError::ParseBundleManifest { path: manifest_path.clone(), source })?;
        let invalid = |reason: String| ModelError::ValidateBundle { path: root.to_path_buf(), reason };
        if manifest.api_version != BUNDLE_API_VERSION {
            return Err(invalid(format!(
                "apiVersion is {:?}, this server reads {BUNDLE_API_VERSION:?}",
                manifest.api_version
            )));
        }
        if manifest.format != "torchscript" {
            return Err(invalid(format!("format is {:?}, only \"torchscript\" is served", manifest.format)));
        }
        if !manifest.pipeline.contains(&Stage::Recognize) {
            return Err(invalid("pipeline has no recognize stage".to_owned()));
        }
        for file in [&files.detector.file, &files.classifier.file, &files.recognizer.file] {
            if !root.join(file).is_file() {
                return Err(invalid(format!("{} is listed in {MANIFEST_FILE} but missing", file.display())));
            }
        }
        let charset_text = read(&root.join(&files.recognizer.charset))?;
        let classes = output_classes(&manifest.params.recognizer, &charset_text).map_err(invalid)?;
        Ok(Self { root: root.to_path_buf(), manifest, files, classes })
    }

    /// SHA-256 over the manifest and every file it names, in a fixed order: what the
    /// bundle computes with, whatever its version string says (two bundles re-exported
    /// under one version differ here). Reads the files once, at start.
    pub fn content_digest(&self) -> Result<[u8; 32], ModelError> {
        let mut hasher = Sha256::new();
        let files = [
            Path::new(MANIFEST_FILE),
            &self.files.detector.file,
            &self.files.classifier.file,
            &self.files.recognizer.file,
            &self.files.recognizer.charset,
        ];
        for file in files {
            let path = self.path_of(file);
            let bytes =
                std::fs::read(&path).map_err(|source| ModelError::ReadBundleFile { path: path.clone(), source })?;
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
        Ok(hasher.finalize().into())
    }

    /// Absolute path of a file named in the manifest.
    pub fn path_of(&self, file: &Path) -> PathBuf {
        self.root.join(file)
    }
}

/// The folder a `--bundle` value names: a path, or a `file://` URI. Other schemes are
/// fetched before the pod starts (the operator's init container does that).
pub fn bundle_path_from_uri(uri: &str) -> Result<PathBuf, ModelError> {
    let invalid = |reason: String| ModelError::ValidateBundle { path: PathBuf::from(uri), reason };
    if let Some(path) = uri.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(invalid("a file:// URI needs an absolute path, e.g. file:///models/ppocr-v4".into()));
        }
        return Ok(PathBuf::from(path));
    }
    match uri.split_once("://") {
        Some((scheme, _)) => Err(invalid(format!(
            "the pod reads bundles from a local folder or file:// URI; {scheme}:// bundles must be downloaded first"
        ))),
        None if uri.is_empty() => Err(invalid("the bundle path is empty".into())),
        None => Ok(PathBuf::from(uri)),
    }
}

fn read(path: &Path) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|source| ModelError::ReadBundleFile { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_uris_are_paths_or_file_uris() {
        assert_eq!(bundle_path_from_uri("/models/a").unwrap(), PathBuf::from("/models/a"));
        assert_eq!(bundle_path_from_uri("file:///models/a").unwrap(), PathBuf::from("/models/a"));
        assert!(bundle_path_from_uri("file://models/a").unwrap_err().to_string().contains("absolute"));
        assert!(bundle_path_from_uri("https://x/y.tar").unwrap_err().to_string().contains("https://"));
        assert!(bundle_path_from_uri("").is_err());
    }
}
