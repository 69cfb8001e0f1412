//! Shared by the integration tests: where `make setup` put the exported bundles.

use std::path::PathBuf;

/// `<workspace>/models/<name>`, the symlinked cache that `make setup` fills.
pub fn bundle_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(name);
    assert!(dir.join("bundle.yaml").is_file(), "{} has no bundle.yaml: run `make setup` first", dir.display());
    dir
}
