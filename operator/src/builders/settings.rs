//! Operator-wide settings the builders need besides the spec (from the operator's flags).

/// Operator-wide settings the builders need besides the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// Image of the init container that downloads `https://` bundles; it needs `sh`,
    /// `curl` or `wget`, `sha256sum` and `tar`.
    pub fetch_image: String,
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self { fetch_image: DEFAULT_FETCH_IMAGE.to_owned() }
    }
}

/// Default [`BuildSettings::fetch_image`]: small, non-root, has curl, sha256sum and tar.
pub const DEFAULT_FETCH_IMAGE: &str = "curlimages/curl:8.11.1";
