//! The pre- and post-processing parameters a model bundle declares in `bundle.yaml`, as
//! the pure pipeline reads them. [`PipelineParams`] parses from the whole manifest and
//! ignores what is not its business (the bundle's identity, its file names), so the
//! bundle loader and the fuzzer read the same file into the same types.

use serde::Deserialize;

/// Everything the pure pipeline needs to know about a bundle's models.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PipelineParams {
    /// Channel order the models were trained on.
    pub color_order: ColorOrder,
    pub detector: DetectorConfig,
    pub classifier: ClassifierConfig,
    pub recognizer: RecognizerConfig,
    #[serde(default)]
    pub pipeline_options: PipelineOptions,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

impl ColorOrder {
    /// For each model channel, which RGB channel feeds it.
    pub(crate) fn rgb_sources(self) -> [usize; 3] {
        match self {
            Self::Rgb => [0, 1, 2],
            Self::Bgr => [2, 1, 0],
        }
    }
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

/// The text detector's input size and its DB post-processing.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DetectorConfig {
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

/// The direction classifier's input and how to read its output.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClassifierConfig {
    /// `[channels, height, width]`.
    pub input_shape: [u32; 3],
    #[serde(flatten)]
    pub normalization: Normalization,
    pub threshold: f32,
    pub labels: Vec<String>,
}

/// The recogniser's input and the layout of its CTC output classes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecognizerConfig {
    pub input_height: u32,
    /// Narrowest input width; shorter lines are padded (the model was trained at this width).
    pub default_width: u32,
    #[serde(flatten)]
    pub normalization: Normalization,
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

/// rapidocr's global settings (`pipelineOptions` in `bundle.yaml`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PipelineOptions {
    /// Results whose recognition score is below this are dropped.
    pub text_score: f32,
    pub max_side_len: u32,
    pub min_side_len: u32,
    pub min_height: u32,
    /// Zero or negative turns the width/height letterbox rule off (rapidocr uses -1).
    pub width_height_ratio: f32,
}

impl Default for PipelineOptions {
    /// rapidocr 1.4.4's `config.yaml`.
    fn default() -> Self {
        Self { text_score: 0.5, max_side_len: 2000, min_side_len: 30, min_height: 30, width_height_ratio: 8.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_from_the_manifest_field() {
        let yaml = "{textScore: 0.5, maxSideLen: 2000, minSideLen: 30, minHeight: 30, widthHeightRatio: 8}";
        let parsed: PipelineOptions = serde_norway::from_str(yaml).unwrap();
        assert_eq!(parsed, PipelineOptions::default());
    }

    #[test]
    fn params_parse_from_a_whole_manifest_ignoring_files_and_identity() {
        let yaml = "
apiVersion: kube-ocr.dev/bundle/v1
name: ppocr-v4
colorOrder: bgr
detector: {file: det.pt, limitSideLen: 736, limitType: min, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], thresh: 0.3, boxThresh: 0.5, unclipRatio: 1.6, maxCandidates: 1000, minSize: 3, useDilation: true, scoreMode: fast}
classifier: {file: cls.pt, inputShape: [3, 48, 192], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], threshold: 0.9, labels: ['0', '180']}
recognizer: {file: rec.pt, inputHeight: 48, defaultWidth: 320, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], charset: charset.txt, blankIndex: 0, numClasses: 6625}
";
        let params: PipelineParams = serde_norway::from_str(yaml).unwrap();
        assert_eq!(params.color_order, ColorOrder::Bgr);
        assert_eq!(
            (params.detector.limit_side_len, params.detector.multiple_of, params.detector.min_size),
            (736, 32, 3.0)
        );
        assert_eq!(params.detector.normalization.scale, 1.0 / 255.0);
        assert_eq!(params.classifier.labels, ["0", "180"]);
        assert_eq!((params.recognizer.charset_offset, params.recognizer.space_index), (1, None));
        assert_eq!(params.pipeline_options, PipelineOptions::default());
    }
}
