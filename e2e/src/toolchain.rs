//! Where the pinned Kubernetes binaries are cached, outside the work tree, keyed by version
//! so that a warm run skips the build and two versions never mix.

use std::path::{Path, PathBuf};

/// The Kubernetes release the local control plane is built from (`make setup` builds it
/// from `e2e/k8s-tools/kubernetes/go.mod`). k8s-openapi's feature in the workspace manifest
/// names the same minor; tests below keep the three in step.
pub const KUBERNETES_VERSION: &str = "v1.36.3";

/// `<cache>/k8s-<version>/bin`, where `make setup` puts etcd, kube-apiserver and friends.
pub fn kubernetes_bin_dir(cache_root: &Path, version: &str) -> PathBuf {
    cache_root.join(format!("k8s-{version}")).join("bin")
}

/// The Gateway API release whose CRDs the e2e tests install (`make setup` caches them from
/// the module `tools/gateway-api/go.mod` pins; a test below keeps the two in step).
pub const GATEWAY_API_VERSION: &str = "v1.6.3";

/// `<cache>/gateway-api-<version>/standard`, where `make setup`
/// (`tools/fetch-gateway-api-crds.sh`) puts the standard-channel CRDs.
pub fn gateway_api_crd_dir(cache_root: &Path, version: &str) -> PathBuf {
    cache_root.join(format!("gateway-api-{version}")).join("standard")
}

/// The KEDA release the e2e tests of autoscaling run (`make setup` builds it from the module
/// `tools/keda/go.mod` pins; a test below keeps the two in step). Not v2.21.1: it needs a newer
/// Go than the toolchain used here.
pub const KEDA_VERSION: &str = "v2.21.0";

/// `<cache>/keda-<version>/bin`, where `make setup` (`tools/build-keda.sh`) puts `keda` (the
/// operator) and `keda-adapter` (the external metrics API server).
pub fn keda_bin_dir(cache_root: &Path, version: &str) -> PathBuf {
    cache_root.join(format!("keda-{version}")).join("bin")
}

/// `<cache>/keda-<version>/crds`, where `tools/build-keda.sh` copies KEDA's CRDs
/// (`keda.sh_scaledobjects.yaml`, ...) out of the module.
pub fn keda_crd_dir(cache_root: &Path, version: &str) -> PathBuf {
    cache_root.join(format!("keda-{version}")).join("crds")
}

/// The Debian suite of the images' offline base (tools/build-base-image.sh `SUITE`).
pub const BASE_IMAGE_SUITE: &str = "bookworm";

/// The base image's OCI archive, and the reference it carries, as `make setup` writes them
/// (`BASE_IMAGE` in the Makefile).
pub fn base_image(cache_root: &Path) -> (PathBuf, String) {
    let archive =
        cache_root.join(format!("base-image-{BASE_IMAGE_SUITE}")).join(format!("debian-{BASE_IMAGE_SUITE}.oci.tar"));
    (archive, format!("localhost/kube-ocr-base:{BASE_IMAGE_SUITE}"))
}

/// `${KUBE_OCR_CACHE:-~/.cache/kube-ocr}`, the cache `make setup` fills (`CACHE` in the Makefile).
pub fn cache_root() -> PathBuf {
    std::env::var_os("KUBE_OCR_CACHE")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kube-ocr"))
}

/// The cargo profile directory the running executable belongs to, where the workspace's
/// binaries are: `target/debug` for a binary there and for a test binary in
/// `target/debug/deps`.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    profile_dir_of(&exe)
}

fn profile_dir_of(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    match dir.file_name() {
        Some(name) if name == "deps" || name == "examples" => dir.parent().map(Path::to_owned),
        _ => Some(dir.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_binaries_find_the_profile_dir() {
        assert_eq!(profile_dir_of(Path::new("/t/debug/deps/node_agent-abc")), Some("/t/debug".into()));
        assert_eq!(profile_dir_of(Path::new("/t/release/ocr-node-agent")), Some("/t/release".into()));
        assert!(cargo_bin_dir().is_some_and(|dir| dir.is_dir()));
    }

    #[test]
    fn the_base_image_is_where_and_what_the_build_script_says() {
        let script =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/build-base-image.sh")).unwrap();
        assert!(script.contains(&format!("\nSUITE={BASE_IMAGE_SUITE}\n")), "SUITE differs");
        assert!(script.contains("BASE_IMAGE_REFERENCE=localhost/kube-ocr-base:$SUITE"));
        assert!(script.contains("archive=$out/debian-$SUITE.oci.tar"));
        let makefile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Makefile")).unwrap();
        assert!(makefile.contains("BASE_IMAGE := $(CACHE)/base-image-$(BASE_IMAGE_SUITE)"), "Makefile's BASE_IMAGE");
        let (archive, reference) = base_image(Path::new("/cache"));
        assert_eq!(archive, Path::new("/cache/base-image-bookworm/debian-bookworm.oci.tar"));
        assert_eq!(reference, "localhost/kube-ocr-base:bookworm");
    }

    #[test]
    fn binaries_are_cached_per_version() {
        let root = Path::new("/cache/kube-ocr");
        assert_eq!(kubernetes_bin_dir(root, "v1.36.3"), Path::new("/cache/kube-ocr/k8s-v1.36.3/bin"));
        assert_ne!(kubernetes_bin_dir(root, "v1.36.3"), kubernetes_bin_dir(root, "v1.37.0"));
    }

    #[test]
    fn the_pinned_version_is_the_one_the_go_module_builds() {
        let go_mod = include_str!("../k8s-tools/kubernetes/go.mod");
        let pinned = go_mod
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.first() == Some(&"k8s.io/kubernetes") && words.len() >= 2)
            .map(|words| words[1].to_owned());
        assert_eq!(pinned.as_deref(), Some(KUBERNETES_VERSION), "e2e/k8s-tools/kubernetes/go.mod pins another release");
    }

    #[test]
    fn gateway_api_crds_are_cached_per_version_as_the_go_module_pins() {
        let root = Path::new("/cache/kube-ocr");
        assert_eq!(gateway_api_crd_dir(root, "v1.6.3"), Path::new("/cache/kube-ocr/gateway-api-v1.6.3/standard"));
        let go_mod = include_str!("../../tools/gateway-api/go.mod");
        let pinned = go_mod
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.len() >= 3 && words[..2] == ["require", "sigs.k8s.io/gateway-api"])
            .map(|words| words[2].to_owned());
        assert_eq!(pinned.as_deref(), Some(GATEWAY_API_VERSION), "tools/gateway-api/go.mod pins another release");
    }

    #[test]
    fn keda_is_cached_per_version_as_the_go_module_pins() {
        let root = Path::new("/cache/kube-ocr");
        assert_eq!(keda_bin_dir(root, "v2.21.0"), Path::new("/cache/kube-ocr/keda-v2.21.0/bin"));
        assert_eq!(keda_crd_dir(root, "v2.21.0"), Path::new("/cache/kube-ocr/keda-v2.21.0/crds"));
        let go_mod = include_str!("../../tools/keda/go.mod");
        // In the require block (`github.com/kedacore/keda/v2 v2.21.0 // indirect`, as `go mod
        // tidy` writes a tool's module) or on a require line of its own.
        let pinned =
            go_mod.lines().map(|line| line.split_whitespace().collect::<Vec<_>>()).find_map(|words| {
                match words.as_slice() {
                    ["github.com/kedacore/keda/v2", version, ..]
                    | ["require", "github.com/kedacore/keda/v2", version, ..] => Some((*version).to_owned()),
                    _ => None,
                }
            });
        assert_eq!(pinned.as_deref(), Some(KEDA_VERSION), "tools/keda/go.mod pins another release");
    }

    #[test]
    fn the_pinned_version_matches_the_k8s_openapi_feature() {
        let manifest = include_str!("../../Cargo.toml");
        let minor = KUBERNETES_VERSION.trim_start_matches('v').split('.').nth(1).unwrap();
        assert!(
            manifest.contains(&format!("\"v1_{minor}\"")),
            "workspace k8s-openapi feature must be v1_{minor} to match {KUBERNETES_VERSION}"
        );
    }
}
