//! OCI images for the nodes, built offline by buildah and imported into a node's containerd
//! (no registry is reachable here, and the kubelet never pulls: every pod's image is on the
//! node before the pod is created).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::NodeError;
use super::command::run;
use super::oci_layout::{ArchivedImage, sha256_digest};

/// A built image as an uncompressed docker archive, ready to import into a node's
/// containerd (as an OCI layout of the blobs that node lacks, see `oci_layout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    pub path: PathBuf,
    /// The reference the archive names the image by (what pods ask for).
    pub reference: String,
    /// The OCI manifest's digest (`sha256:...`): a node that holds `reference` at this
    /// digest already has the image.
    pub digest: String,
    pub image: ArchivedImage,
}

impl ImageArchive {
    /// The image in the docker archive at `path`, named `reference`.
    pub fn read(path: PathBuf, reference: &str) -> Result<ImageArchive, NodeError> {
        let image = ArchivedImage::read(&path)?;
        let digest = sha256_digest(&image.oci_manifest());
        Ok(ImageArchive { path, reference: reference.to_owned(), digest, image })
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

/// What the archive was last built from (see [`BuildLock::archive_built_from`]).
/// The references in `ctr images list` output that only the CRI's bookkeeping holds: the
/// `name@sha256:` and `sha256:<image id>` names it gives every image it sees, of images no
/// `name:tag` points at any more (a tag moved to a rebuilt image). Removing them lets
/// containerd's garbage collector drop the replaced image's blobs and snapshots: each
/// rebuild would otherwise leave its layers in a store that outlives clusters.
pub fn stale_references(listing: &str) -> Vec<String> {
    let rows: Vec<(&str, &str)> = listing
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            let reference = columns.next()?;
            let digest = columns.nth(1)?;
            Some((reference, digest))
        })
        .collect();
    let tagged = |reference: &str| !reference.contains('@') && !reference.starts_with("sha256:");
    let live: std::collections::HashSet<&str> =
        rows.iter().filter(|(reference, _)| tagged(reference)).map(|(_, digest)| *digest).collect();
    rows.iter()
        .filter(|(reference, digest)| !tagged(reference) && !live.contains(digest))
        .map(|(reference, _)| (*reference).to_owned())
        .collect()
}

fn inputs_file(archive: &Path) -> PathBuf {
    beside(archive, ".inputs")
}

fn beside(archive: &Path, suffix: &str) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn archive_path(work_dir: &Path, reference: &str) -> PathBuf {
    work_dir.join(format!("{}.docker.tar", reference.replace(['/', ':'], "_")))
}

/// Removes what builds before the docker archives left for `reference` (a gzipped OCI
/// archive of the same 4 GB): disk is what a machine running these tests lacks first.
fn remove_earlier_archive(work_dir: &Path, reference: &str) {
    let earlier = work_dir.join(format!("{}.oci.tar", reference.replace(['/', ':'], "_")));
    for suffix in ["", ".digest", ".iid", ".inputs"] {
        let _ = std::fs::remove_file(beside(&earlier, suffix));
    }
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
    /// mounted) and writes it as a docker archive.
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
        let _ = std::fs::remove_file(&archive);
        let destination = format!("docker-archive:{}:{}", archive.display(), self.reference);
        run(buildah().args(["push", "--quiet", &local_name, &destination]))?;
        run(buildah().args(["rmi", &local_name]))?;
        ImageArchive::read(archive, &self.reference)
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
    /// The stage to build (`--target`); the last one when `None`.
    pub target: Option<String>,
}

/// pull (each base archive), bud, push, in one private mount namespace: buildah's overlay
/// mounts can never outlive it. `$1` storage root, `$2` run root, `$3` Dockerfile, `$4`
/// context, `$5` image reference, `$6` archive to write (empty: the image stays in the
/// builder's storage only, as a base of later builds), `$7` the number of base archives,
/// then the base archives, then `bud`'s own arguments (`--build-arg` pairs, `--target`).
/// The archive is written beside its final name and renamed, so a node importing the
/// previous one never reads half a file, and not written again when the build produced the
/// image it already holds (the image ID beside it says which). A docker archive, because
/// its layers are uncompressed: buildah gzips an `oci-archive:`'s whatever it is told, and
/// gzip of the 4 GB libtorch layer costs half a minute and saves nothing on a local disk.
/// The storage is kept to what later builds use (disk is what this machine lacks first):
/// a failed build leaves no working container or half archive, a stored-only image replaces
/// the other tags of its repository (a new venv's libraries replace the last ones), and
/// images nothing names any more are pruned after each build.
const BUILD: &str = r#"
set -euo pipefail
storage=$1 runroot=$2 dockerfile=$3 context=$4 reference=$5 archive=$6 bases=$7
shift 7
buildah=(buildah --root "$storage" --runroot "$runroot" --storage-driver overlay)
if [[ -n $archive ]]; then
  trap 'rm -f "$archive.partial" "$archive.iid.new"' ERR
fi
for ((i = 0; i < bases; i++)); do
  "${buildah[@]}" pull --quiet "oci-archive:$1" >/dev/null
  shift
done
iid=${archive:-$runroot/stored-only}.iid.new
# docker format: the OCI format drops SHELL (and with it the Dockerfiles' pipefail).
"${buildah[@]}" bud --quiet --pull=false --layers --force-rm --format docker --isolation chroot \
  --iidfile "$iid" -f "$dockerfile" "$@" -t "$reference" "$context" >/dev/null
prune() { "${buildah[@]}" rmi --prune >/dev/null 2>&1 || true; }
if [[ -z $archive ]]; then
  rm -f "$iid"
  "${buildah[@]}" images --format '{{.Name}}:{{.Tag}}' --filter "reference=${reference%:*}" | grep -vxF "$reference" \
    | xargs -r "${buildah[@]}" rmi >/dev/null 2>&1 || true
  prune
  exit 0
fi
# The same image as the archive holds (every layer came from the cache): keep the archive.
if [[ -f $archive && -f $archive.iid ]] && cmp -s "$iid" "$archive.iid"; then
  rm -f "$iid"
  exit 0
fi
rm -f "$archive.partial" "$archive.iid"
"${buildah[@]}" push --quiet "$reference" "docker-archive:$archive.partial:$reference"
mv "$archive.partial" "$archive"
mv "$iid" "$archive.iid"
prune
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
        ImageArchive::read(archive, reference).ok()
    }

    /// Whether the builder's storage holds an image named `reference`.
    pub fn has_image(&self, reference: &str) -> bool {
        Command::new("buildah")
            .arg("--root")
            .arg(self.work_dir.join("storage"))
            .arg("--runroot")
            .arg(self.work_dir.join("run"))
            .args(["--storage-driver", "overlay", "inspect", "--type", "image", reference])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
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
    /// builds there) and writes it as a docker archive. Builds in one `work_dir` take turns,
    /// also across processes (a file lock).
    pub fn build(&self, work_dir: &Path) -> Result<ImageArchive, NodeError> {
        self.build_in_turn(&BuildLock::take(work_dir)?)
    }

    /// [`Self::build`] with the builder storage's turn already taken.
    pub fn build_in_turn(&self, turn: &BuildLock) -> Result<ImageArchive, NodeError> {
        let work_dir = turn.work_dir.as_path();
        remove_earlier_archive(work_dir, &self.reference);
        // Any earlier record no longer describes what the archive will hold.
        let archive = archive_path(work_dir, &self.reference);
        let _ = std::fs::remove_file(inputs_file(&archive));
        self.run_build(turn, Some(&archive))?;
        ImageArchive::read(archive, &self.reference)
    }

    /// Builds the image into the builder's storage only, as the base of later builds there.
    pub fn build_stored_in_turn(&self, turn: &BuildLock) -> Result<(), NodeError> {
        self.run_build(turn, None)
    }

    fn run_build(&self, turn: &BuildLock, archive: Option<&Path>) -> Result<(), NodeError> {
        let work_dir = turn.work_dir.as_path();
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
            .arg(archive.unwrap_or(Path::new("")))
            .arg(self.base_archives.len().to_string())
            .args(&self.base_archives);
        for (name, value) in &self.build_args {
            command.arg("--build-arg").arg(format!("{name}={value}"));
        }
        if let Some(target) = &self.target {
            command.args(["--target", target]);
        }
        run(&mut command).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::super::oci_layout::tests::docker_archive;
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
    fn only_the_names_of_images_no_tag_points_at_are_stale() {
        let listing = "REF TYPE DIGEST SIZE PLATFORMS LABELS\n\
                       ghcr.io/x/pod:1 application/vnd.oci.image.manifest.v1+json sha256:new 4.0 GiB linux/amd64 io.cri-containerd.image=managed\n\
                       ghcr.io/x/pod@sha256:new application/vnd.oci.image.manifest.v1+json sha256:new 4.0 GiB linux/amd64 io.cri-containerd.image=managed\n\
                       sha256:idnew application/vnd.oci.image.manifest.v1+json sha256:new 4.0 GiB linux/amd64 io.cri-containerd.image=managed\n\
                       ghcr.io/x/pod@sha256:old application/vnd.oci.image.manifest.v1+json sha256:old 4.0 GiB linux/amd64 io.cri-containerd.image=managed\n\
                       sha256:idold application/vnd.oci.image.manifest.v1+json sha256:old 4.0 GiB linux/amd64 io.cri-containerd.image=managed\n\
                       registry.k8s.io/pause:3.10.1 application/vnd.oci.image.manifest.v1+json sha256:pause 300 KiB linux/amd64 io.cri-containerd.pinned=pinned\n";
        assert_eq!(stale_references(listing), vec!["ghcr.io/x/pod@sha256:old", "sha256:idold"]);
        assert!(stale_references("REF TYPE DIGEST SIZE PLATFORMS LABELS\n").is_empty());
    }

    #[test]
    fn an_archive_is_reused_only_for_exactly_the_inputs_it_was_built_from() {
        let dir = tempfile::tempdir().unwrap();
        let turn = BuildLock::take(dir.path()).unwrap();
        let reference = "kube-ocr.local/x:1";
        let archive_file = archive_path(dir.path(), reference);
        let (written, _) = docker_archive(dir.path(), b"{}", &[b"layer"]);
        std::fs::rename(written, &archive_file).unwrap();
        let archive = ImageArchive::read(archive_file.clone(), reference).unwrap();
        assert_eq!(turn.archive_built_from(reference, "bin 10 1"), None, "nothing recorded yet");
        turn.record_inputs(&archive, "bin 10 1").unwrap();
        assert_eq!(turn.archive_built_from(reference, "bin 10 1"), Some(archive));
        assert_eq!(turn.archive_built_from(reference, "bin 10 2"), None, "a changed input");
        std::fs::remove_file(&archive_file).unwrap();
        assert_eq!(turn.archive_built_from(reference, "bin 10 1"), None, "the archive is gone");
    }

    #[test]
    fn an_archive_is_named_after_its_reference_and_its_digest_is_its_oci_manifests() {
        let archive = archive_path(Path::new("/w"), "ghcr.io/kube-ocr/inference-pod:0.1.0");
        assert_eq!(archive, Path::new("/w/ghcr.io_kube-ocr_inference-pod_0.1.0.docker.tar"));
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = docker_archive(dir.path(), b"{}", &[b"layer"]);
        let archive = ImageArchive::read(path, "x:1").unwrap();
        assert_eq!(archive.digest, sha256_digest(&archive.image.oci_manifest()));
    }
}
