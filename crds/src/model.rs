//! `spec.model`: which bundle the pods load.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the model bundle comes from and which version it is. A change here starts a new
/// revision.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Bundle location. `file:///path`: a folder in the image or on a volume the pod
    /// already has. `pvc://<claim>/<path>`: a folder on a PersistentVolumeClaim of this
    /// namespace, mounted read-only. `https://host/path.tar.gz#sha256=<hex>`: a tar.gz
    /// archive of the folder, downloaded by an init container that checks the SHA-256
    /// before the server starts (a mismatch fails the pod visibly).
    #[x_kube(
        validation = Rule::new("self.matches('^(file|pvc|https)://')").message(
            "model.uri must start with file://, pvc:// or https:// (e.g. file:///models/ppocr-v4)"
        ),
        validation = Rule::new("!self.startsWith('file://') || self.matches('^file:///[^/]')").message(
            "a file:// model.uri names an absolute path: file:///models/<bundle>"
        ),
        validation = Rule::new("!self.startsWith('pvc://') || self.matches('^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[^/].*$')").message(
            "a pvc:// model.uri is pvc://<claim name>/<path inside the claim>"
        ),
        validation = Rule::new("!self.startsWith('https://') || self.matches('^https://[^/#]+/[^#]+#sha256=[0-9a-f]{64}$')").message(
            "an https:// model.uri must end with #sha256=<64 lowercase hex digits> of the archive, so the download can be verified"
        )
    )]
    #[schemars(length(min = 8, max = 2048))]
    pub uri: String,
    /// Version label of the bundle (e.g. `4.0.0`), shown in status, printer columns and
    /// metrics. Bumping it alone is enough to roll out a new revision.
    #[schemars(length(min = 1, max = 63))]
    pub version: String,
    /// Overrides the bundle's own `selfTest.minAccuracy`: the golden accuracy a pod must
    /// reach at start-up before it takes traffic. Lower it only to let a canary be judged
    /// by the rollout's analysis (whose `minAccuracy` still applies); unset keeps the
    /// bundle's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub self_test_min_accuracy: Option<f64>,
    /// Number format the pods run the model in: `fp32` (the exported weights as they are,
    /// the default), `fp16` or `bf16` (half precision: less GPU memory and faster on GPUs
    /// with tensor cores). At start-up a pod with `fp16` or `bf16` reads the golden
    /// self-test samples at that precision and again with an fp32 load of the same bundle,
    /// and refuses to serve (stays unready, saying both accuracies) when the half-precision
    /// accuracy is more than the pod's `--max-precision-accuracy-drop` (default 0.005 = 0.5
    /// points) below fp32's. `fp16` is for GPUs (`device.kind: cuda`); libtorch runs it on
    /// CPU too, but slower than fp32. A change here starts a new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
}

// The number format of the model's weights and activations. (A `///` comment here would
// replace the field's description in the schema: kube hoists an `Option<enum>`'s own.)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float: the exported weights unchanged.
    Fp32,
    /// IEEE 16-bit float, for GPUs.
    Fp16,
    /// bfloat16: fp32's range with an 8-bit mantissa.
    Bf16,
}

impl Precision {
    /// The value of the inference pod's `--precision` flag.
    pub fn as_flag(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Bf16 => "bf16",
        }
    }
}
