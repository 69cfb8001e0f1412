//! OCI images for the nodes, built offline by buildah and imported into a node's containerd
//! (no registry is reachable here, and the kubelet never pulls: every pod's image is on the
//! node before the pod is created).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::NodeError;
use super::network::run;

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

impl DockerfileImage {
    /// Builds the image (storage under `work_dir`, vfs, nothing mounted) and writes it as an
    /// OCI archive; returns the archive's path.
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
        for base in &self.base_archives {
            if !base.is_file() {
                return Err(NodeError::command(
                    format!("build {}", self.reference),
                    format!("base image {} missing; run `make setup`", base.display()),
                ));
            }
            run(buildah().args(["pull", "--quiet"]).arg(format!("oci-archive:{}", base.display())))?;
        }
        let mut bud = buildah();
        bud.args(["bud", "--quiet", "--pull=false", "--layers", "-f"]).arg(&self.dockerfile);
        for (name, value) in &self.build_args {
            bud.arg("--build-arg").arg(format!("{name}={value}"));
        }
        bud.args(["-t", &self.reference]).arg(&self.context);
        run(&mut bud)?;
        let file_name = self.reference.replace(['/', ':'], "_");
        let archive = work_dir.join(format!("{file_name}.oci.tar"));
        let destination = format!("oci-archive:{}:{}", archive.display(), self.reference);
        run(buildah().args(["push", "--quiet", &self.reference, &destination]))?;
        Ok(archive)
    }
}
