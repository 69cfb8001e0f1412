//! containerd roots on disk that outlive clusters, so that a node starts with the images the
//! last node on the same root imported and only new or changed images are imported again
//! (the inference pod's image is about 4 GB).
//!
//! A root is claimed with an exclusive lock for as long as one node runs on it: two
//! containerd daemons must never share a root. The roots live in the cache beside the other
//! versioned tools (`$KUBE_OCR_CACHE/node-images/store-<n>`); a node takes the first free
//! one, so there are never more roots than nodes that ever ran at once.
//!
//! A root keeps more than images: the containers and sandboxes of the last cluster's pods are
//! still recorded in it. That is what a real node finds after a reboot (its containerd root
//! is on disk, /run is not), and it is handled the same way: containerd reports them as
//! exited, and the kubelet's garbage collection removes those of pods it does not know.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::NodeError;

/// How many roots may be in use at once; more nodes than this at once fail to start, with an
/// error that says so.
pub const MAX_IMAGE_STORES: usize = 16;

/// One claimed containerd root; the claim ends when this is dropped.
#[derive(Debug)]
pub struct ImageStore {
    dir: PathBuf,
    _lock: File,
}

impl ImageStore {
    /// Claims the first free root under `root` (creating it when new).
    pub fn claim(root: &Path) -> Result<ImageStore, NodeError> {
        std::fs::create_dir_all(root).map_err(|e| NodeError::dir("create", root, e))?;
        for index in 0..MAX_IMAGE_STORES {
            let lock_path = root.join(format!("store-{index}.lock"));
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| NodeError::dir("open", &lock_path, e))?;
            match lock.try_lock() {
                Ok(()) => {
                    let dir = root.join(format!("store-{index}"));
                    std::fs::create_dir_all(&dir).map_err(|e| NodeError::dir("create", &dir, e))?;
                    return Ok(ImageStore { dir, _lock: lock });
                }
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(NodeError::dir("lock", &lock_path, e)),
            }
        }
        Err(NodeError::command(
            "claim a node image store",
            format!(
                "all {MAX_IMAGE_STORES} stores under {} are held by running nodes; stop a cluster first",
                root.display()
            ),
        ))
    }

    /// The containerd root: bind-mounted at /var/lib/containerd inside the node.
    pub fn containerd_root(&self) -> &Path {
        &self.dir
    }
}

/// Where the nodes' containerd roots live in the cache.
pub fn image_store_root(cache_root: &Path) -> PathBuf {
    cache_root.join("node-images")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_store_is_not_handed_out_again_until_it_is_dropped() {
        let root = tempfile::tempdir().unwrap();
        let first = ImageStore::claim(root.path()).unwrap();
        let second = ImageStore::claim(root.path()).unwrap();
        assert_ne!(first.containerd_root(), second.containerd_root());
        let first_dir = first.containerd_root().to_owned();
        drop(first);
        let again = ImageStore::claim(root.path()).unwrap();
        assert_eq!(again.containerd_root(), first_dir, "the freed store is reused, so the roots do not multiply");
        assert!(again.containerd_root().is_dir());
    }

    #[test]
    fn claiming_past_the_limit_fails_and_says_why() {
        let root = tempfile::tempdir().unwrap();
        let held: Vec<ImageStore> = (0..MAX_IMAGE_STORES).map(|_| ImageStore::claim(root.path()).unwrap()).collect();
        let err = ImageStore::claim(root.path()).unwrap_err().to_string();
        assert!(err.contains("held by running nodes"), "{err}");
        drop(held);
    }
}
