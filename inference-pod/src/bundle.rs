//! Model bundles: a folder with `bundle.yaml`, TorchScript files and the CTC charset.
//!
//! The manifest says everything the Rust pipeline needs (which stages, their files, and the
//! pre/post-processing parameters), so another TorchScript OCR model with the same stage
//! contracts can be served without code changes.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::InferenceError;

/// The manifest format this build understands.
pub const BUNDLE_API_VERSION: &str = "kube-ocr.dev/bundle/v1";
/// File name of the manifest inside a bundle folder.
pub const MANIFEST_FILE: &str = "bundle.yaml";

/// `bundle.yaml`, as written by `tools/export/export_ppocr.py`.
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
    /// Channel order the models were trained on.
    pub color_order: ColorOrder,
    pub detector: DetectorConfig,
    pub classifier: ClassifierConfig,
    pub recognizer: RecognizerConfig,
    #[serde(default)]
    pub pipeline_options: crate::page::PipelineOptions,
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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

/// Per-channel normalisation: `(pixel * scale - mean) / std`, channels in the model's order.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
    #[serde(default = "unit_scale")]
    pub scale: f32,
}

fn unit_scale() -> f32 {
    1.0 / 255.0
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DetectorConfig {
    pub file: PathBuf,
    pub limit_side_len: u32,
    pub limit_type: LimitType,
    #[serde(flatten)]
    pub normalization: Normalization,
    #[serde(default = "multiple_of_32")]
    pub multiple_of: u32,
    pub thresh: f32,
    pub box_thresh: f32,
    pub unclip_ratio: f32,
    pub max_candidates: u32,
    pub min_size: f32,
    #[serde(default)]
    pub use_dilation: bool,
}

fn multiple_of_32() -> u32 {
    32
}

/// How `limitSideLen` bounds the detector input.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LimitType {
    /// The shorter side is scaled up to at least the limit.
    Min,
    /// The longer side is scaled down to at most the limit.
    Max,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClassifierConfig {
    pub file: PathBuf,
    /// `[channels, height, width]`.
    pub input_shape: [u32; 3],
    #[serde(flatten)]
    pub normalization: Normalization,
    pub threshold: f32,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecognizerConfig {
    pub file: PathBuf,
    pub input_height: u32,
    /// Narrowest input width; shorter lines are padded (the model was trained at this width).
    pub default_width: u32,
    #[serde(flatten)]
    pub normalization: Normalization,
    pub charset: PathBuf,
    /// Output class of the CTC blank.
    pub blank_index: usize,
    /// Output class of line 1 of the charset file (classes before it are blank etc.).
    #[serde(default = "one")]
    pub charset_offset: usize,
    /// Output class that decodes to a space (the charset's last line for PP-OCR).
    #[serde(default)]
    pub space_index: Option<usize>,
    /// Size of the model's class dimension.
    pub num_classes: usize,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SelfTestConfig {
    /// Golden accuracy (1 − CER) the start-up self-test must reach for the pod to be ready.
    #[serde(default)]
    pub min_accuracy: f32,
}

/// A loaded, validated bundle: the manifest, the folder it came from and its charset.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub root: PathBuf,
    pub manifest: BundleManifest,
    /// Output classes in order: index = model output class.
    pub classes: Vec<String>,
}

impl Bundle {
    /// Reads and validates the bundle in `root`: manifest version, files present, charset
    /// size consistent with the recogniser's class count.
    pub fn load(root: &Path) -> Result<Self, InferenceError> {
        let manifest_path = root.join(MANIFEST_FILE);
        let text = read(&manifest_path)?;
        let manifest: BundleManifest = serde_norway::from_str(&text)
            .map_err(|source| InferenceError::ParseBundleManifest { path: manifest_path.clone(), source })?;
        let invalid = |reason: String| InferenceError::ValidateBundle { path: root.to_path_buf(), reason };
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
        for file in [&manifest.detector.file, &manifest.classifier.file, &manifest.recognizer.file] {
            if !root.join(file).is_file() {
                return Err(invalid(format!("{} is listed in {MANIFEST_FILE} but missing", file.display())));
            }
        }
        let charset_text = read(&root.join(&manifest.recognizer.charset))?;
        let classes = output_classes(&manifest.recognizer, &charset_text).map_err(invalid)?;
        Ok(Self { root: root.to_path_buf(), manifest, classes })
    }

    /// Absolute path of a file named in the manifest.
    pub fn path_of(&self, file: &Path) -> PathBuf {
        self.root.join(file)
    }
}

/// The folder a `--bundle` value names: a path, or a `file://` URI. Other schemes are
/// fetched before the pod starts (the operator's init container does that).
pub fn bundle_path_from_uri(uri: &str) -> Result<PathBuf, InferenceError> {
    let invalid = |reason: String| InferenceError::ValidateBundle { path: PathBuf::from(uri), reason };
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

fn read(path: &Path) -> Result<String, InferenceError> {
    std::fs::read_to_string(path).map_err(|source| InferenceError::ReadBundleFile { path: path.to_path_buf(), source })
}

/// Builds the class-index → text table from the charset file (one symbol per line, split
/// on `\n` only: a line may be a space or U+3000) and the recogniser's declared layout; any
/// disagreement means the charset belongs to another model.
pub fn output_classes(config: &RecognizerConfig, charset_text: &str) -> Result<Vec<String>, String> {
    let symbols: Vec<&str> = charset_text.strip_suffix('\n').unwrap_or(charset_text).split('\n').collect();
    if symbols.iter().any(|s| s.is_empty()) {
        return Err("charset has an empty line; every line must hold one symbol".to_owned());
    }
    let expected = config.charset_offset + symbols.len();
    if expected != config.num_classes {
        return Err(format!(
            "charset has {} symbols, which with charsetOffset {} makes {expected} classes, \
             but the recogniser declares numClasses {}",
            symbols.len(),
            config.charset_offset,
            config.num_classes
        ));
    }
    if config.blank_index >= config.charset_offset {
        return Err(format!("blankIndex {} collides with the charset", config.blank_index));
    }
    let mut classes = vec![String::new(); config.charset_offset];
    classes.extend(symbols.iter().map(|s| (*s).to_owned()));
    if let Some(space) = config.space_index
        && classes.get(space).map(String::as_str) != Some(" ")
    {
        return Err(format!("spaceIndex {space} does not hold a space in the charset"));
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recognizer(num_classes: usize, space_index: Option<usize>) -> RecognizerConfig {
        RecognizerConfig {
            file: "rec.pt".into(),
            input_height: 48,
            default_width: 320,
            normalization: Normalization { mean: [0.5; 3], std: [0.5; 3], scale: 1.0 / 255.0 },
            charset: "charset.txt".into(),
            blank_index: 0,
            charset_offset: 1,
            space_index,
            num_classes,
        }
    }

    #[test]
    fn classes_place_blank_then_charset_lines_verbatim() {
        let classes = output_classes(&recognizer(6, Some(5)), "a\n\u{3000}\nb\n中\n \n").unwrap();
        assert_eq!(classes, ["", "a", "\u{3000}", "b", "中", " "]);
    }

    #[test]
    fn a_charset_of_the_wrong_size_is_refused() {
        let err = output_classes(&recognizer(6, Some(5)), "a\nb\n中\n").unwrap_err();
        assert!(err.contains("3 symbols") && err.contains("numClasses 6"), "{err}");
    }

    #[test]
    fn a_space_index_that_is_not_a_space_is_refused() {
        let err = output_classes(&recognizer(4, Some(3)), "a\nb\nc\n").unwrap_err();
        assert!(err.contains("spaceIndex 3"), "{err}");
    }

    #[test]
    fn an_empty_charset_line_is_refused() {
        assert!(output_classes(&recognizer(4, None), "a\n\nb\n").is_err());
    }

    #[test]
    fn bundle_uris_are_paths_or_file_uris() {
        assert_eq!(bundle_path_from_uri("/models/a").unwrap(), PathBuf::from("/models/a"));
        assert_eq!(bundle_path_from_uri("file:///models/a").unwrap(), PathBuf::from("/models/a"));
        assert!(bundle_path_from_uri("file://models/a").unwrap_err().to_string().contains("absolute"));
        assert!(bundle_path_from_uri("https://x/y.tar").unwrap_err().to_string().contains("https://"));
        assert!(bundle_path_from_uri("").is_err());
    }

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
        let manifest: BundleManifest = serde_norway::from_str(yaml).unwrap();
        assert_eq!(manifest.variant, "standard");
        assert_eq!(manifest.detector.multiple_of, 32);
        assert_eq!(manifest.recognizer.charset_offset, 1);
        assert!((manifest.detector.normalization.scale - 1.0 / 255.0).abs() < 1e-9);
        assert_eq!(manifest.self_test.min_accuracy, 0.0);
    }
}
