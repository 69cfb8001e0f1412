//! Where a model bundle comes from (`spec.model.uri`) and what that means for the pod:
//! nothing (`file://`), a read-only claim mount (`pvc://`), or an emptyDir filled by a
//! download-and-verify init container (`https://…#sha256=…`).

use crate::error::OperatorError;

/// Where the inference pod finds its bundle, once the pod is set up.
pub const MODEL_MOUNT_PATH: &str = "/var/lib/kube-ocr/model";

/// A parsed `spec.model.uri`. Admission (CEL) already refused other shapes; parsing again
/// keeps the builders total for objects admitted before a rule existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// An absolute path in the image or on a volume the pod already has.
    File { path: String },
    /// A folder inside a PersistentVolumeClaim of the namespace.
    Pvc { claim: String, path: String },
    /// A tar.gz of the bundle folder, verified against its SHA-256.
    Https { url: String, sha256: String },
}

impl ModelSource {
    pub fn parse(uri: &str) -> Result<Self, OperatorError> {
        let fail = |reason: &str| OperatorError::ParseModelUri { uri: uri.to_owned(), reason: reason.to_owned() };
        if let Some(path) = uri.strip_prefix("file://") {
            if !path.starts_with('/') || path.len() < 2 {
                return Err(fail("file:// needs an absolute path, e.g. file:///models/ppocr-v4"));
            }
            return Ok(Self::File { path: path.to_owned() });
        }
        if let Some(rest) = uri.strip_prefix("pvc://") {
            let (claim, path) = rest.split_once('/').ok_or_else(|| fail("pvc:// needs <claim>/<path>"))?;
            if claim.is_empty() || path.trim_matches('/').is_empty() {
                return Err(fail("pvc:// needs <claim>/<path>"));
            }
            return Ok(Self::Pvc { claim: claim.to_owned(), path: path.trim_matches('/').to_owned() });
        }
        if uri.starts_with("https://") {
            let (url, fragment) = uri.split_once('#').ok_or_else(|| fail("https:// needs #sha256=<hex>"))?;
            let sha256 = fragment.strip_prefix("sha256=").ok_or_else(|| fail("https:// needs #sha256=<hex>"))?;
            if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
                return Err(fail("the sha256 fragment must be 64 lowercase hex digits"));
            }
            return Ok(Self::Https { url: url.to_owned(), sha256: sha256.to_owned() });
        }
        Err(fail("unknown scheme; use file://, pvc:// or https://"))
    }

    /// The `--bundle` argument of the inference pod.
    pub fn bundle_path(&self) -> String {
        match self {
            Self::File { path } => path.clone(),
            Self::Pvc { path, .. } => format!("{MODEL_MOUNT_PATH}/{path}"),
            Self::Https { .. } => MODEL_MOUNT_PATH.to_owned(),
        }
    }
}

/// The init container's script: download, verify, unpack. A mismatch exits non-zero with
/// the expected and actual sums, which the pod status shows (FallbackToLogsOnError).
pub const FETCH_SCRIPT: &str = r#"set -eu
archive="$MODEL_DIR/.download.tar.gz"
echo "downloading $MODEL_URL"
if command -v curl >/dev/null 2>&1; then
  curl -fsSL --retry 3 -o "$archive" "$MODEL_URL"
else
  wget -q -O "$archive" "$MODEL_URL"
fi
actual=$(sha256sum "$archive" | cut -d' ' -f1)
if [ "$actual" != "$MODEL_SHA256" ]; then
  echo "model archive checksum mismatch: expected sha256 $MODEL_SHA256, got $actual for $MODEL_URL" >&2
  rm -f "$archive"
  exit 1
fi
tar -xzf "$archive" -C "$MODEL_DIR"
rm -f "$archive"
test -f "$MODEL_DIR/bundle.yaml" || { echo "the archive has no bundle.yaml at its root" >&2; exit 1; }
echo "model bundle verified and unpacked"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_three_schemes() {
        assert_eq!(
            ModelSource::parse("file:///models/ppocr-v4").unwrap(),
            ModelSource::File { path: "/models/ppocr-v4".into() }
        );
        let pvc = ModelSource::parse("pvc://models/ppocr/v4/").unwrap();
        assert_eq!(pvc, ModelSource::Pvc { claim: "models".into(), path: "ppocr/v4".into() });
        assert_eq!(pvc.bundle_path(), "/var/lib/kube-ocr/model/ppocr/v4");
        let https = ModelSource::parse(&format!("https://example.com/b.tar.gz#sha256={SUM}")).unwrap();
        assert_eq!(https, ModelSource::Https { url: "https://example.com/b.tar.gz".into(), sha256: SUM.into() });
        assert_eq!(https.bundle_path(), MODEL_MOUNT_PATH);
    }

    #[test]
    fn refuses_what_admission_refuses() {
        for bad in [
            "s3://bucket/model",
            "file://relative",
            "pvc://claim-only",
            "pvc:///path",
            "https://example.com/b.tar.gz",
            "https://example.com/b.tar.gz#sha256=abc",
            &format!("https://example.com/b.tar.gz#sha256={}", SUM.to_uppercase()),
        ] {
            assert!(ModelSource::parse(bad).is_err(), "{bad}");
        }
    }
}
