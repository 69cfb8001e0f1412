//! How the models run: numeric precision and memory format, as the pod's flags spell them.
//! Plain types with no libtorch in their interface; the TorchScript layer maps them.

use std::{fmt, str::FromStr};

/// The floating-point type the modules' weights and inputs are converted to at load.
/// Callers always see f32 outputs, whatever runs inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// The exported weights as they are.
    #[default]
    Fp32,
    /// IEEE half: for GPUs (libtorch's CPU kernels may lack it).
    Fp16,
    /// bfloat16: f32's range with 8 bits of mantissa; runs on CPU and recent GPUs.
    Bf16,
}

impl Precision {
    pub(crate) fn to_kind(self) -> tch::Kind {
        match self {
            Self::Fp32 => tch::Kind::Float,
            Self::Fp16 => tch::Kind::Half,
            Self::Bf16 => tch::Kind::BFloat16,
        }
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fp32" => Ok(Self::Fp32),
            "fp16" => Ok(Self::Fp16),
            "bf16" => Ok(Self::Bf16),
            _ => Err(format!("unknown precision {s:?}: expected fp32, fp16 or bf16")),
        }
    }
}

/// `fp32`, `fp16` or `bf16`, as the `--precision` flag spells them.
impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Bf16 => "bf16",
        })
    }
}

/// How every TorchScript module of a bundle is loaded and fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOptions {
    pub precision: Precision,
    /// 4-D weights and inputs in channels-last (NHWC) strides: libtorch's CPU convolutions
    /// run faster on them (see docs/benchmarks.md, "Model execution settings").
    pub channels_last: bool,
}

impl Default for ModelOptions {
    /// What measured fastest on CPU with unchanged accuracy (docs/benchmarks.md).
    fn default() -> Self {
        Self { precision: Precision::Fp32, channels_last: DEFAULT_CHANNELS_LAST }
    }
}

/// The `--channels-last` default, chosen by measurement (docs/benchmarks.md).
const DEFAULT_CHANNELS_LAST: bool = true;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_parse_and_print_as_the_flag_spells_them() {
        for (text, precision) in [("fp32", Precision::Fp32), ("fp16", Precision::Fp16), ("bf16", Precision::Bf16)] {
            assert_eq!(text.parse(), Ok(precision));
            assert_eq!(precision.to_string(), text);
        }
        let err = "half".parse::<Precision>().unwrap_err();
        assert!(err.contains("\"half\"") && err.contains("fp32, fp16 or bf16"), "{err}");
        assert!("FP32".parse::<Precision>().is_err());
    }

    #[test]
    fn the_default_is_full_precision() {
        assert_eq!(ModelOptions::default().precision, Precision::Fp32);
    }
}
