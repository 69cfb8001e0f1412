//! OCI images for the nodes, built offline by buildah and imported into a node's containerd
//! (no registry is reachable here, and the kubelet never pulls: every pod's image is on the
//! node before the pod is created).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::NodeError;
use super::command::run;

/// A built image as an OCI archive, ready to import into a node's containerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    pub path: PathBuf,
    /// The reference the archive names the image by (what pods ask for).
    pub reference: String,
    /// The manifest's digest (`sha256:...`): a node that holds `reference` at this digest
    /// already has the image.
    pub digest: String,
}

impl ImageArchive {
    /// Reads the digest that `buildah push --digestfile` wrote beside the archive.
    fn written(path: PathBuf, reference: &str) -> Result<ImageArchive, NodeError> {
        let digest_file = digest_file(&path);
        let digest = std::fs::read_to_string(&digest_file).map_err(|e| NodeError::dir("read", &digest_file, e))?;
        let digest = digest.trim().to_owned();
        if !digest.starts_with("sha256:") {
            return Err(NodeError::command(
                format!("build {reference}"),
                format!("{} holds {digest:?}, not a sha256 digest", digest_file.display()),
            ));
        }
        Ok(ImageArchive { path, reference: reference.to_owned(), digest })
    }
}

/// The digest of `reference` in the output of `ctr images list` (columns REF, TYPE, DIGEST,
/// ...), if it is listed.
pub fn listed_image_digest(listing: &str, reference: &str) -> Option<String> {
    listing.lines().skip(1).find_map(|line| {
        let mut columns = line.split_whitespace();
        (columns.next()? == reference).then_some(())?;
        let digest = columns.nth(1)?;
        digest.starts_with("sha256:").then(|| digest.to_owned())
    })
}

fn digest_file(archive: &Path) -> PathBuf {
    beside(archive, ".digest")
}

/// What the archive was last built from (see [`BuildLock::archive_built_from`]).
fn inputs_file(archive: &Path) -> PathBuf {
    beside(archive, ".inputs")
}

fn beside(archive: &Path, suffix: &str) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn archive_path(work_dir: &Path, reference: &str) -> PathBuf {
    work_dir.join(format!("{}.oci.tar", reference.replace(['/', ':'], "_")))
}

/// An image made of files only (`FROM scratch`): a static program and what it reads.
#[derive(Debug, Clone)]
pub struct ScratchImage {
    /// The reference pods name, e.g. `registry.k8s.io/pause:3.10.1`.
    pub reference: String,
    /// Host file -> absolute path in the image.
    pub files: Vec<(PathBuf, String)>,
    pub entrypoint: Vec<String>,
}

impl ScratchImage {
    /// Builds the image with buildah (its storage under `work_dir`, vfs, so nothing is
    /// mounted) and writes it as an OCI archive.
    pub fn build(&self, work_dir: &Path) -> Result<ImageArchive, NodeError> {
        std::fs::create_dir_all(work_dir).map_err(|e| NodeError::dir("create", work_dir, e))?;
        let buildah = || {
            let mut command = Command::new("buildah");
            command
                .arg("--root")
                .arg(work_dir.join("storage"))
                .arg("--runroot")
                .arg(work_dir.join("run"))
                .args(["--storage-driver", "vfs"]);
            command
        };
        let container = run(buildah().args(["from", "scratch"]))?.trim().to_owned();
        for (source, destination) in &self.files {
            run(buildah().arg("copy").arg(&container).arg(source).arg(destination))?;
        }
        let entrypoint = serde_json::to_string(&self.entrypoint).expect("strings serialize");
        run(buildah().args(["config", "--entrypoint", &entrypoint, &container]))?;
        let local_name = format!("localhost/kube-ocr-build-{container}");
        // A fixed timestamp makes the digest depend on the files only, so a node whose image
        // store already holds the same image skips the import.
        run(buildah().args(["commit", "--quiet", "--timestamp", "0", "--rm", &container, &local_name]))?;
        let archive = archive_path(work_dir, &self.reference);
        let destination = format!("oci-archive:{}:{}", archive.display(), self.reference);
        run(buildah()
            .args(["push", "--quiet", "--digestfile"])
            .arg(digest_file(&archive))
            .args([&local_name, &destination]))?;
        run(buildah().args(["rmi", &local_name]))?;
        ImageArchive::written(archive, &self.reference)
    }
}

/// An image built by `buildah bud` from one of deploy/docker's Dockerfiles, offline: its
/// base images are OCI archives loaded into the builder's storage first (see
/// tools/build-base-image.sh), and it never pulls.
#[derive(Debug, Clone)]
pub struct DockerfileImage {
    /// The reference pods name, e.g. `kube-ocr.local/operator:e2e`.
    pub reference: String,
    pub dockerfile: PathBuf,
    /// The build context: for the "prebuilt" artifacts stage, a folder holding only the
    /// artifacts.
    pub context: PathBuf,
    pub build_args: Vec<(String, String)>,
    /// OCI archives of the base images the Dockerfile's `FROM`s name through build args.
    pub base_archives: Vec<PathBuf>,
}

/// pull (each base archive), bud, push, in one private mount namespace: buildah's overlay
/// mounts can never outlive it. `$1` storage root, `$2` run root, `$3` Dockerfile, `$4`
/// context, `$5` image reference, `$6` archive to write, `$7` the number of base archives,
/// then the base archives, then `--build-arg` pairs. The archive is written beside its
/// final name and renamed, so a node importing the previous one never reads half a file,
/// and not written again when the build produced the image it already holds (the image ID
/// beside it says which); layers are not compressed (gzip of the 4 GB libtorch layer costs minutes and saves
/// nothing on a local disk).
const BUILD: &str = r#"
set -euo pipefail
storage=$1 runroot=$2 dockerfile=$3 context=$4 reference=$5 archive=$6 bases=$7
shift 7
buildah=(buildah --root "$storage" --runroot "$runroot" --storage-driver overlay)
for ((i = 0; i < bases; i++)); do
  "${buildah[@]}" pull --quiet "oci-archive:$1" >/dev/null
  shift
done
# docker format: the OCI format drops SHELL (and with it the Dockerfiles' pipefail).
"${buildah[@]}" bud --quiet --pull=false --layers --format docker --isolation chroot \
  --iidfile "$archive.iid.new" -f "$dockerfile" "$@" -t "$reference" "$context" >/dev/null
# The same image as the archive holds (every layer came from the cache): keep the archive.
if [[ -f $archive && -f $archive.digest && -f $archive.iid ]] && cmp -s "$archive.iid.new" "$archive.iid"; then
  rm -f "$archive.iid.new"
  exit 0
fi
rm -f "$archive.partial" "$archive.digest.partial" "$archive.iid"
"${buildah[@]}" push --quiet --disable-compression --digestfile "$archive.digest.partial" \
  "$reference" "oci-archive:$archive.partial:$reference"
mv "$archive.partial" "$archive"
mv "$archive.digest.partial" "$archive.digest"
mv "$archive.iid.new" "$archive.iid"
"#;

/// The turn of one build in a builder storage (`work_dir`), also across processes (a file
/// lock, released on drop): builds, and the checks whether one is needed, take turns.
#[derive(Debug)]
pub struct BuildLock {
    work_dir: PathBuf,
    _lock: std::fs::File,
}

impl BuildLock {
    pub fn take(work_dir: &Path) -> Result<BuildLock, NodeError> {
        std::fs::create_dir_all(work_dir).map_err(|e| NodeError::dir("create", work_dir, e))?;
        let lock_path = work_dir.join("build.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| NodeError::dir("open", &lock_path, e))?;
        lock.lock().map_err(|e| NodeError::dir("lock", &lock_path, e))?;
        Ok(BuildLock { work_dir: work_dir.to_owned(), _lock: lock })
    }

    /// The archive of `reference` if its last build was from exactly `inputs` (a
    /// description of every input: paths, sizes, times, contents). Nothing to build then:
    /// not even the build context, which for the inference pod means linking 4 GB of
    /// libraries and buildah hashing them.
    pub fn archive_built_from(&self, reference: &str, inputs: &str) -> Option<ImageArchive> {
        let archive = archive_path(&self.work_dir, reference);
        let recorded = std::fs::read_to_string(inputs_file(&archive)).ok()?;
        (recorded == inputs && archive.is_file()).then_some(())?;
        ImageArchive::written(archive, reference).ok()
    }

    /// Records what `archive` was built from, for [`Self::archive_built_from`].
    pub fn record_inputs(&self, archive: &ImageArchive, inputs: &str) -> Result<(), NodeError> {
        let path = inputs_file(&archive.path);
        let partial = beside(&path, ".partial");
        std::fs::write(&partial, inputs).map_err(|e| NodeError::dir("write", &partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| NodeError::dir("rename", &partial, e))
    }
}

impl DockerfileImage {
    /// Builds the image (buildah's overlay storage under `work_dir`, layers reused between
    /// builds there) and writes it as an OCI archive. Builds in one `work_dir` take turns,
    /// also across processes (a file lock).
    pub fn build(&self, work_dir: &Path) -> Result<ImageArchive, NodeError> {
        self.build_in_turn(&BuildLock::take(work_dir)?)
    }

    /// [`Self::build`] with the builder storage's turn already taken.
    pub fn build_in_turn(&self, turn: &BuildLock) -> Result<ImageArchive, NodeError> {
        let work_dir = turn.work_dir.as_path();
        // Any earlier record no longer describes what the archive will hold.
        let archive = archive_path(work_dir, &self.reference);
        let _ = std::fs::remove_file(inputs_file(&archive));
        for base in &self.base_archives {
            if !base.is_file() {
                return Err(NodeError::command(
                    format!("build {}", self.reference),
                    format!("base image {} missing; run `make setup`", base.display()),
                ));
            }
        }
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "bash", "-c", BUILD, "build"])
            .arg(work_dir.join("storage"))
            .arg(work_dir.join("run"))
            .arg(&self.dockerfile)
            .arg(&self.context)
            .arg(&self.reference)
            .arg(&archive)
            .arg(self.base_archives.len().to_string())
            .args(&self.base_archives);
        for (name, value) in &self.build_args {
            command.arg("--build-arg").arg(format!("{name}={value}"));
        }
        run(&mut command)?;
        ImageArchive::written(archive, &self.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_of_a_listed_image_is_read_from_its_row_only() {
        let listing = "REF                          TYPE                                                 DIGEST          SIZE    PLATFORMS   LABELS\n\
                       kube-ocr.local/operator:e2e  application/vnd.docker.distribution.manifest.v2+json sha256:aaa 12.0 MiB linux/amd64 -\n\
                       kube-ocr.local/operator:old  application/vnd.docker.distribution.manifest.v2+json sha256:bbb 12.0 MiB linux/amd64 -\n";
        assert_eq!(listed_image_digest(listing, "kube-ocr.local/operator:old").as_deref(), Some("sha256:bbb"));
        assert_eq!(listed_image_digest(listing, "kube-ocr.local/operator:e2e").as_deref(), Some("sha256:aaa"));
        assert_eq!(listed_image_digest(listing, "kube-ocr.local/operator"), None);
        assert_eq!(listed_image_digest("REF TYPE DIGEST SIZE PLATFORMS LABELS\n", "x"), None);
    }

    #[test]
    fn an_archive_is_reused_only_for_exactly_the_inputs_it_was_built_from() {
        let dir = tempfile::tempdir().unwrap();
        let turn = BuildLock::take(dir.path()).unwrap();
        let reference = "kube-ocr.local/x:1";
        let archive_file = archive_path(dir.path(), reference);
        std::fs::write(&archive_file, b"archive").unwrap();
        std::fs::write(digest_file(&archive_file), "sha256:abc\n").unwrap();
        let archive = ImageArchive::written(archive_file.clone(), reference).unwrap();
        assert_eq!(turn.archive_built_from(reference, "bin 10 1"), None, "nothing recorded yet");
        turn.record_inputs(&archive, "bin 10 1").unwrap();
        assert_eq!(turn.archive_built_from(reference, "bin 10 1"), Some(archive));
        assert_eq!(turn.archive_built_from(reference, "bin 10 2"), None, "a changed input");
        std::fs::remove_file(&archive_file).unwrap();
        assert_eq!(turn.archive_built_from(reference, "bin 10 1"), None, "the archive is gone");
    }

    #[test]
    fn an_archive_is_named_after_its_reference_and_its_digest_sits_beside_it() {
        let archive = archive_path(Path::new("/w"), "ghcr.io/kube-ocr/inference-pod:0.1.0");
        assert_eq!(archive, Path::new("/w/ghcr.io_kube-ocr_inference-pod_0.1.0.oci.tar"));
        assert_eq!(digest_file(&archive), Path::new("/w/ghcr.io_kube-ocr_inference-pod_0.1.0.oci.tar.digest"));
    }
}
