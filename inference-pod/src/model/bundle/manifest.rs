//! `bundle.yaml`, as written by `tools/export/export_ppocr.py`, read as two views of the
//! same file: [`BundleManifest`] (what the bundle is, which stages run, and the
//! pre/post-processing parameters the pure pipeline uses) and [`ModelFiles`] (where its
//! files are, the `file` and `charset` keys of the stage sections). Keeping file names out
//! of the parameters keeps `kube-ocr-vision` free of anything that points at a disk.

use std::path::PathBuf;

use kube_ocr_vision::params::PipelineParams;
use serde::Deserialize;

/// The manifest format this build understands.
pub(crate) const BUNDLE_API_VERSION: &str = "kube-ocr.dev/bundle/v1";
/// File name of the manifest inside a bundle folder.
pub(crate) const MANIFEST_FILE: &str = "bundle.yaml";

/// What a bundle declares about itself and its models.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BundleManifest {
    pub api_version: String,
    pub name: String,
    pub version: String,
    /// `standard`, or the name of a deliberately altered test variant.
    #[serde(default = "standard_variant")]
    pub variant: String,
    pub format: String,
    pub pipeline: Vec<Stage>,
    /// Channel order, detector, classifier and recogniser parameters, pipeline options.
    #[serde(flatten)]
    pub params: PipelineParams,
    #[serde(default)]
    pub self_test: SelfTestConfig,
}

fn standard_variant() -> String {
    "standard".to_owned()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Detect,
    Classify,
    Recognize,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SelfTestConfig {
    /// Golden accuracy (1 − CER) the start-up self-test must reach for the pod to be ready.
    #[serde(default)]
    pub min_accuracy: f32,
}

/// The bundle's files, relative to its folder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ModelFiles {
    pub detector: ModuleFile,
    pub classifier: ModuleFile,
    pub recognizer: RecognizerFiles,
}

/// One TorchScript file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ModuleFile {
    pub file: PathBuf,
}

/// The recogniser's TorchScript file and its charset (one output symbol per line).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RecognizerFiles {
    pub file: PathBuf,
    pub charset: PathBuf,
}

/// Both views of a manifest's text.
pub(crate) fn parse_manifest(text: &str) -> Result<(BundleManifest, ModelFiles), serde_norway::Error> {
    Ok((serde_norway::from_str(text)?, serde_norway::from_str(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_parses_with_defaults() {
        let yaml = r#"
apiVersion: kube-ocr.dev/bundle/v1
name: m
version: "1"
format: torchscript
pipeline: [detect, classify, recognize]
colorOrder: bgr
detector: {file: det.pt, limitSideLen: 736, limitType: min, mean: [0.5,0.5,0.5], std: [0.5,0.5,0.5],
           thresh: 0.3, boxThresh: 0.5, unclipRatio: 1.6, maxCandidates: 1000, minSize: 3}
classifier: {file: cls.pt, inputShape: [3, 48, 192], mean: [0.5,0.5,0.5], std: [0.5,0.5,0.5],
             threshold: 0.9, labels: ["0", "180"]}
recognizer: {file: rec.pt, inputHeight: 48, defaultWidth: 320, mean: [0.5,0.5,0.5], std: [0.5,0.5,0.5],
             charset: charset.txt, blankIndex: 0, spaceIndex: 4, numClasses: 5}
"#;
        let (manifest, files) = parse_manifest(yaml).unwrap();
        assert_eq!(manifest.variant, "standard");
        assert_eq!(manifest.params.detector.multiple_of, 32);
        assert_eq!(manifest.params.recognizer.charset_offset, 1);
        assert!((manifest.params.detector.normalization.scale - 1.0 / 255.0).abs() < 1e-9);
        assert_eq!(manifest.self_test.min_accuracy, 0.0);
        assert_eq!(files.detector.file, PathBuf::from("det.pt"));
        assert_eq!(files.recognizer.charset, PathBuf::from("charset.txt"));
    }
}
