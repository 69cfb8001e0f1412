//! containerd roots on disk that outlive clusters, so that a node starts with the images the
//! last node on the same root imported and only new or changed images are imported again
//! (the inference pod's image is about 4 GB).
//!
//! A root is claimed with an exclusive lock for as long as one node runs on it: two
//! containerd daemons must never share a root. The roots live in the cache beside the other
//! versioned tools (`$KUBE_OCR_CACHE/node-images/store-<n>`); a node takes the first free
//! one, so there are never more roots than nodes that ever ran at once.
//!
//! The lock is taken and held by the node's namespace holder (see [`super::namespace`]),
//! not by the test process: the holder is the last of the node's processes to exit (it
//! kills what is left in the node's cgroups first), also when the test process dies without
//! stopping the node, as a test binary with a cluster in a `static` does. So the next
//! cluster never starts a containerd on a root whose last containerd is still shutting down.
//!
//! A root keeps more than images: the containers and sandboxes of the last cluster's pods are
//! still recorded in it. That is what a real node finds after a reboot (its containerd root
//! is on disk, /run is not), and it is handled the same way: containerd reports them as
//! exited, and the kubelet's garbage collection removes those of pods it does not know.

use std::path::{Path, PathBuf};

/// How many roots may be in use at once; more nodes than this at once fail to start, with an
/// error that says so.
pub const MAX_IMAGE_STORES: usize = 16;

/// A bash function, `claim_image_store <root>`: locks the first free `store-<n>.lock` under
/// `<root>` on file descriptor 9 (for as long as the calling shell, or a process it passes
/// the descriptor to, lives), creates `store-<n>` and sets `image_store` to its path. Fails
/// with the reason when all are held. `flock(1)` and Rust's `File::lock` take the same kind
/// of lock.
pub const CLAIM_IMAGE_STORE: &str = r#"
claim_image_store() {
  local root=$1 n
  mkdir -p "$root"
  for ((n = 0; n < MAX_IMAGE_STORES; n++)); do
    exec 9>>"$root/store-$n.lock"
    if flock --nonblock 9; then
      image_store=$root/store-$n
      mkdir -p "$image_store"
      return 0
    fi
    exec 9>&-
  done
  echo "all $MAX_IMAGE_STORES stores under $root are held by running nodes; stop a cluster first" >&2
  return 1
}
"#;

/// The shell definitions [`CLAIM_IMAGE_STORE`] needs, then the function itself.
pub fn claim_function() -> String {
    format!("MAX_IMAGE_STORES={MAX_IMAGE_STORES}\n{CLAIM_IMAGE_STORE}")
}

/// Where the nodes' containerd roots live in the cache.
pub fn image_store_root(cache_root: &Path) -> PathBuf {
    cache_root.join("node-images")
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, ChildStdin, Command, Stdio};

    use super::*;

    /// A shell that claimed a store (or failed to, with the reason) and holds the claim
    /// until its stdin closes.
    struct Claimant {
        child: Child,
        stdin: ChildStdin,
        store: Result<PathBuf, String>,
    }

    fn claim(root: &Path) -> Claimant {
        let script =
            format!("{}\nclaim_image_store \"$1\" || exit 3\necho \"$image_store\"\nread -r _ || :", claim_function());
        let mut child = Command::new("bash")
            .args(["-c", &script, "claim"])
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let store = if line.trim().is_empty() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            Err(stderr)
        } else {
            Ok(PathBuf::from(line.trim()))
        };
        Claimant { child, stdin, store }
    }

    fn release(claimant: Claimant) {
        let Claimant { mut child, stdin, .. } = claimant;
        drop(stdin);
        child.wait().unwrap();
    }

    #[test]
    fn a_claimed_store_is_not_handed_out_again_until_its_holder_exits() {
        let root = tempfile::tempdir().unwrap();
        let first = claim(root.path());
        let second = claim(root.path());
        let first_dir = first.store.clone().unwrap();
        assert_ne!(first_dir, second.store.clone().unwrap());
        assert!(first_dir.is_dir());
        // Rust's lock and flock(1)'s are the same lock: a held store cannot be taken here.
        let lock = std::fs::OpenOptions::new().append(true).open(root.path().join("store-0.lock")).unwrap();
        assert!(lock.try_lock().is_err(), "store-0 is held by the first claimant");
        release(first);
        assert!(lock.try_lock().is_ok(), "the claim ends with its holder");
        drop(lock);
        let again = claim(root.path());
        assert_eq!(again.store.clone().unwrap(), first_dir, "the freed store is reused, so the roots do not multiply");
        release(again);
        release(second);
    }

    #[test]
    fn claiming_past_the_limit_fails_and_says_why() {
        let root = tempfile::tempdir().unwrap();
        let held: Vec<Claimant> = (0..MAX_IMAGE_STORES).map(|_| claim(root.path())).collect();
        assert!(held.iter().all(|c| c.store.is_ok()));
        let refused = claim(root.path());
        let err = refused.store.clone().unwrap_err();
        assert!(err.contains("held by running nodes"), "{err}");
        held.into_iter().for_each(release);
    }
}
