//! Which local binary stands in for which container image.
//!
//! There is no container runtime: an image name (without tag or digest) maps to an
//! executable on this machine, e.g. `ghcr.io/kube-ocr/inference-pod` to the workspace's
//! `ocr-inference-pod`. An image that is not in the table cannot be "pulled".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::NodeAgentError;

/// The image registry path of the inference pod.
pub const INFERENCE_POD_IMAGE: &str = "ghcr.io/kube-ocr/inference-pod";
/// The image registry path of the operator.
pub const OPERATOR_IMAGE: &str = "ghcr.io/kube-ocr/operator";

/// Image name (no tag, no digest) → executable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMap {
    entries: BTreeMap<String, PathBuf>,
}

impl ImageMap {
    /// A table from `(image, executable)` pairs. Tags and digests on the image are dropped.
    pub fn new<I, S, P>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (S, P)>,
        S: AsRef<str>,
        P: Into<PathBuf>,
    {
        Self {
            entries: pairs
                .into_iter()
                .map(|(image, path)| (image_name(image.as_ref()).to_owned(), path.into()))
                .collect(),
        }
    }

    /// The workspace images mapped to the binaries in `bin_dir` (a cargo target profile dir):
    /// the inference pod and the operator.
    pub fn workspace_defaults(bin_dir: &Path) -> Self {
        Self::new([
            (INFERENCE_POD_IMAGE, bin_dir.join("ocr-inference-pod")),
            (OPERATOR_IMAGE, bin_dir.join("ocr-operator")),
        ])
    }

    /// Parses `image=path` entries (the `--image-map` flag).
    pub fn parse_entries<I, S>(entries: I) -> Result<Self, NodeAgentError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut pairs = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            match entry.split_once('=') {
                Some((image, path)) if !image.trim().is_empty() && !path.trim().is_empty() => {
                    pairs.push((image.trim().to_owned(), PathBuf::from(path.trim())));
                }
                _ => return Err(NodeAgentError::ImageMapEntry { entry: entry.to_owned() }),
            }
        }
        Ok(Self::new(pairs))
    }

    /// Adds or replaces one entry.
    pub fn insert(&mut self, image: &str, path: impl Into<PathBuf>) {
        self.entries.insert(image_name(image).to_owned(), path.into());
    }

    /// Entries of `other` win over ours.
    pub fn extend(&mut self, other: ImageMap) {
        self.entries.extend(other.entries);
    }

    /// The executable for a container image reference, if mapped.
    pub fn resolve(&self, image: &str) -> Option<&Path> {
        self.entries.get(image_name(image)).map(PathBuf::as_path)
    }

    /// The mapped images, for messages.
    pub fn images(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// An image reference without its `@digest` and `:tag`. A `:` before the last `/` is a
/// registry port and stays (`localhost:5000/app:1` → `localhost:5000/app`).
pub fn image_name(reference: &str) -> &str {
    let reference = reference.trim();
    let without_digest = reference.split_once('@').map_or(reference, |(name, _)| name);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    }
}

/// The message of an ErrImagePull status for an image that is not in the table.
pub fn unknown_image_message(image: &str, map: &ImageMap) -> String {
    let known: Vec<&str> = map.images().collect();
    format!(
        "image {image:?} is not in the node agent's image map (known: {}); add `--image-map {}=<path>`",
        if known.is_empty() { "none".to_owned() } else { known.join(", ") },
        image_name(image)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_digests_are_dropped() {
        assert_eq!(image_name("ghcr.io/kube-ocr/inference-pod:0.1.0"), "ghcr.io/kube-ocr/inference-pod");
        assert_eq!(image_name("ghcr.io/kube-ocr/inference-pod@sha256:abc"), "ghcr.io/kube-ocr/inference-pod");
        assert_eq!(image_name("ghcr.io/kube-ocr/inference-pod:1@sha256:abc"), "ghcr.io/kube-ocr/inference-pod");
        assert_eq!(image_name("localhost:5000/app:1"), "localhost:5000/app");
        assert_eq!(image_name("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(image_name("busybox"), "busybox");
    }

    #[test]
    fn resolves_any_tag_of_a_mapped_image() {
        let map = ImageMap::new([("ghcr.io/kube-ocr/inference-pod:latest", "/bin/ocr-inference-pod")]);
        assert_eq!(map.resolve("ghcr.io/kube-ocr/inference-pod:0.2"), Some(Path::new("/bin/ocr-inference-pod")));
        assert_eq!(map.resolve("ghcr.io/kube-ocr/inference-pod"), Some(Path::new("/bin/ocr-inference-pod")));
        assert_eq!(map.resolve("ghcr.io/kube-ocr/operator:0.2"), None);
    }

    #[test]
    fn parses_flag_entries() {
        let map = ImageMap::parse_entries(["example.com/sleep=/bin/sleep", " a:1 = /x "]).unwrap();
        assert_eq!(map.resolve("example.com/sleep:9"), Some(Path::new("/bin/sleep")));
        assert_eq!(map.resolve("a"), Some(Path::new("/x")));
        assert!(matches!(ImageMap::parse_entries(["nope"]), Err(NodeAgentError::ImageMapEntry { .. })));
        assert!(ImageMap::parse_entries(["=/bin/x"]).is_err());
    }

    #[test]
    fn workspace_defaults_point_into_the_bin_dir() {
        let map = ImageMap::workspace_defaults(Path::new("/t/debug"));
        assert_eq!(map.resolve(INFERENCE_POD_IMAGE), Some(Path::new("/t/debug/ocr-inference-pod")));
        assert_eq!(map.resolve("ghcr.io/kube-ocr/operator:1"), Some(Path::new("/t/debug/ocr-operator")));
    }

    #[test]
    fn unknown_image_message_names_the_fix() {
        let map = ImageMap::new([("a", "/a")]);
        let message = unknown_image_message("b:1", &map);
        assert!(
            message.contains("\"b:1\"") && message.contains("known: a") && message.contains("--image-map b=<path>")
        );
    }
}
