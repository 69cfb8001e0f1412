//! OCI images for the nodes, built offline by buildah and imported into a node's containerd
//! (no registry is reachable here, and the kubelet never pulls: every pod's image is on the
//! node before the pod is created).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::NodeError;
use super::command::run;

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
    /// mounted) and writes it as an OCI archive; returns the archive's path.
    pub fn build(&self, work_dir: &Path) -> Result<PathBuf, NodeError> {
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
        run(buildah().args(["commit", "--quiet", "--rm", &container, &local_name]))?;
        let file_name = self.reference.replace(['/', ':'], "_");
        let archive = work_dir.join(format!("{file_name}.oci.tar"));
        let destination = format!("oci-archive:{}:{}", archive.display(), self.reference);
        run(buildah().args(["push", "--quiet", &local_name, &destination]))?;
        run(buildah().args(["rmi", &local_name]))?;
        Ok(archive)
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
/// then the base archives, then `--build-arg` pairs.
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
  -f "$dockerfile" "$@" -t "$reference" "$context" >/dev/null
rm -f "$archive"
"${buildah[@]}" push --quiet "$reference" "oci-archive:$archive:$reference"
"#;

impl DockerfileImage {
    /// Builds the image (buildah's overlay storage under `work_dir`, layers reused between
    /// builds there) and writes it as an OCI archive; returns the archive's path.
    pub fn build(&self, work_dir: &Path) -> Result<PathBuf, NodeError> {
        std::fs::create_dir_all(work_dir).map_err(|e| NodeError::dir("create", work_dir, e))?;
        for base in &self.base_archives {
            if !base.is_file() {
                return Err(NodeError::command(
                    format!("build {}", self.reference),
                    format!("base image {} missing; run `make setup`", base.display()),
                ));
            }
        }
        let file_name = self.reference.replace(['/', ':'], "_");
        let archive = work_dir.join(format!("{file_name}.oci.tar"));
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
        Ok(archive)
    }
}
