//! The project's own images as the nodes run them: built by buildah from deploy/docker's
//! Dockerfiles through their "prebuilt" artifacts stage, from this checkout's `cargo build`
//! output and `make setup`'s artifacts, on the offline Debian base (deploy/README.md says
//! exactly how that differs from a user's build). The builder's storage lives in the cache,
//! so an unchanged layer (libtorch's 4 GB above all) is reused from build to build.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::command::run;
use super::image::BuildLock;
use super::oci_layout::sha256_digest;
use super::{DockerfileImage, ImageArchive, NodeError};
use crate::toolchain;

/// The inference pod under the name the OcrService samples and tests use. No registry is
/// reachable and nodes never pull, so what matters is that the name matches.
pub const INFERENCE_POD_IMAGE: &str = "ghcr.io/kube-ocr/inference-pod:0.1.0";
/// The operator, as the chart is told to run it (`operator.image.*`).
pub const OPERATOR_IMAGE: &str = "kube-ocr.local/operator:e2e";

/// Where the images' inputs are.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    pub workspace_root: PathBuf,
    /// `target/<profile>`, holding the workspace's binaries.
    pub bin_dir: PathBuf,
    /// `make setup`'s cache: the base image, and the builder's storage.
    pub cache_root: PathBuf,
}

impl ImageInputs {
    /// This checkout's inputs: the workspace this crate belongs to and the profile directory
    /// of the running executable.
    pub fn of_this_checkout() -> Result<ImageInputs, NodeError> {
        let bin_dir = toolchain::cargo_bin_dir()
            .ok_or_else(|| NodeError::command("find target/<profile>", "the running executable has no directory"))?;
        let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("/")).to_owned();
        Ok(ImageInputs { workspace_root, bin_dir, cache_root: toolchain::cache_root() })
    }

    /// The builder's storage and the archives: one per cache, shared by every build.
    pub fn build_dir(&self) -> PathBuf {
        self.cache_root.join("image-build")
    }

    /// `deploy/docker/operator.Dockerfile` with this checkout's `ocr-operator`.
    pub fn build_operator(&self) -> Result<ImageArchive, NodeError> {
        let operator = self.binary("ocr-operator", "cargo build -p kube-ocr-operator --bin ocr-operator")?;
        let context = self.context_dir("operator")?;
        let image = self.dockerfile_image(OPERATOR_IMAGE, "operator.Dockerfile", context.path(), &["ARTIFACTS"]);
        let inputs = describe_inputs(&image, std::slice::from_ref(&operator));
        let turn = BuildLock::take(&self.build_dir())?;
        if let Some(archive) = turn.archive_built_from(OPERATOR_IMAGE, &inputs) {
            return Ok(archive);
        }
        strip(&operator, &context.path().join("ocr-operator"))?;
        let archive = image.build_in_turn(&turn)?;
        turn.record_inputs(&archive, &inputs)?;
        Ok(archive)
    }

    /// `deploy/docker/inference-pod.Dockerfile` with this checkout's `ocr-inference-pod` and
    /// `ocr-pdf-render`, the venv's libtorch and CUDA libraries at the absolute path the
    /// binary's rpath names (as the Dockerfile's build stage lays them out), and the
    /// exported PP-OCRv4 bundle.
    pub fn build_inference_pod(&self) -> Result<ImageArchive, NodeError> {
        let cargo = "cargo build -p kube-ocr-inference -p kube-ocr-pdf-render";
        let server = self.binary("ocr-inference-pod", cargo)?;
        let renderer = self.binary("ocr-pdf-render", cargo)?;
        let dynamic = run(Command::new("readelf").arg("-d").arg(&server))?;
        let torch_lib = torch_lib_dir(&dynamic).ok_or_else(|| {
            NodeError::command(
                format!("readelf -d {}", server.display()),
                "no rpath entry ends in torch/lib (inference-pod/build.rs bakes one)",
            )
        })?;
        let bundle = self.workspace_root.join("models/ppocr-v4");
        if !bundle.join("bundle.yaml").is_file() {
            return Err(NodeError::command(
                "find the PP-OCRv4 bundle",
                format!("{} missing: run `make setup`", bundle.display()),
            ));
        }
        let context = self.context_dir("inference-pod")?;
        let mut image = self.dockerfile_image(
            INFERENCE_POD_IMAGE,
            "inference-pod.Dockerfile",
            context.path(),
            &["ARTIFACTS", "BUNDLE_ARTIFACTS"],
        );
        // The venv's directory is named after its requirements' hash; its torch/lib
        // directory's time changes when the venv is made again.
        let inputs = describe_inputs(&image, &[server.clone(), renderer.clone(), torch_lib.clone(), bundle.clone()]);
        let turn = BuildLock::take(&self.build_dir())?;
        if let Some(archive) = turn.archive_built_from(INFERENCE_POD_IMAGE, &inputs) {
            return Ok(archive);
        }
        let libs_image = self.build_inference_libs(&turn, &torch_lib)?;
        image.build_args.push(("LIBS_IMAGE".to_owned(), libs_image));

        let (bin, _, models) = prebuilt_folders(context.path())?;
        strip(&server, &bin.join("ocr-inference-pod"))?;
        strip(&renderer, &bin.join("ocr-pdf-render"))?;
        run(Command::new("cp").arg("-rL").arg(&bundle).arg(&models))?;

        let archive = image.build_in_turn(&turn)?;
        turn.record_inputs(&archive, &inputs)?;
        Ok(archive)
    }

    /// The Dockerfile's `runtime-libs` stage (the runtime base with the venv's libtorch and
    /// CUDA libraries) in the builder's storage, built when those libraries or the Dockerfile
    /// changed: a tag named after what it was built from. The inference pod's build starts
    /// from it (`LIBS_IMAGE`), so a new binary costs neither reading nor hashing 4 GB.
    fn build_inference_libs(&self, turn: &BuildLock, torch_lib: &Path) -> Result<String, NodeError> {
        let context = self.context_dir("inference-libs")?;
        let mut image = self.dockerfile_image(
            "kube-ocr.local/inference-pod-libs",
            "inference-pod.Dockerfile",
            context.path(),
            &["ARTIFACTS", "BUNDLE_ARTIFACTS"],
        );
        image.target = Some("runtime-libs".to_owned());
        let site_packages = torch_lib.parent().and_then(Path::parent).unwrap_or(Path::new("/")).to_owned();
        let sources = [torch_lib.to_owned(), site_packages.join("nvidia")];
        let inputs = describe_inputs(&image, &sources);
        let key = sha256_digest(inputs.as_bytes());
        image.reference = format!("{}:{}", image.reference, &key["sha256:".len()..][..16]);
        if turn.has_image(&image.reference) {
            return Ok(image.reference);
        }
        let (_, libs, _) = prebuilt_folders(context.path())?;
        for source in sources {
            // At the same absolute path under libs/, as the Dockerfile's `cp --parents` lays
            // them out (which, with -l, coreutils refuses here).
            let parent =
                libs.join(source.parent().unwrap_or(Path::new("/")).strip_prefix("/").unwrap_or(Path::new("")));
            std::fs::create_dir_all(&parent).map_err(|e| NodeError::dir("create", &parent, e))?;
            // Hard links: the libraries are 4 GB and the builder only reads them.
            let linked = Command::new("cp").arg("-al").arg(&source).arg(&parent).status();
            if !linked.is_ok_and(|status| status.success()) {
                let copy = parent.join(source.file_name().unwrap_or_default());
                let _ = std::fs::remove_dir_all(&copy);
                run(Command::new("cp").arg("-a").arg(&source).arg(&parent))?;
            }
        }
        // What the Dockerfile's build stage leaves out: headers and static archives.
        run(Command::new("find")
            .arg(&libs)
            .args(["-name", "include", "-type", "d", "-prune", "-exec", "rm", "-rf", "{}", "+"]))?;
        run(Command::new("find").arg(&libs).args(["-name", "*.a", "-delete"]))?;
        image.build_stored_in_turn(turn)?;
        Ok(image.reference)
    }

    fn dockerfile_image(
        &self,
        reference: &str,
        dockerfile: &str,
        context: &Path,
        prebuilt_args: &[&str],
    ) -> DockerfileImage {
        let (base_archive, base_reference) = toolchain::base_image(&self.cache_root);
        let mut build_args: Vec<(String, String)> =
            prebuilt_args.iter().map(|arg| ((*arg).to_owned(), "prebuilt".to_owned())).collect();
        build_args.push(("RUNTIME_IMAGE".to_owned(), base_reference));
        DockerfileImage {
            reference: reference.to_owned(),
            dockerfile: self.workspace_root.join("deploy/docker").join(dockerfile),
            context: context.to_owned(),
            build_args,
            base_archives: vec![base_archive],
            target: None,
        }
    }

    fn binary(&self, name: &str, cargo: &str) -> Result<PathBuf, NodeError> {
        let path = self.bin_dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(NodeError::command(
                format!("build an image with {name}"),
                format!("{} missing: `{cargo}` first", path.display()),
            ))
        }
    }

    /// A fresh build context of its own (builds may run side by side), removed on drop.
    fn context_dir(&self, image: &str) -> Result<tempfile::TempDir, NodeError> {
        let contexts = self.build_dir().join("contexts");
        std::fs::create_dir_all(&contexts).map_err(|e| NodeError::dir("create", &contexts, e))?;
        tempfile::Builder::new()
            .prefix(&format!("{image}-"))
            .tempdir_in(&contexts)
            .map_err(|e| NodeError::dir("create", &contexts, e))
    }
}

/// What an image is built from, one line each: its Dockerfile's text, build args and base
/// archives, and each of `paths` (a directory: the files in it) by path, size and
/// modification time. Equal descriptions mean the same image, without reading 4 GB.
fn describe_inputs(image: &DockerfileImage, paths: &[PathBuf]) -> String {
    let mut lines = vec![
        format!("dockerfile {}", std::fs::read_to_string(&image.dockerfile).unwrap_or_default()),
        format!("args {:?}", image.build_args),
    ];
    let mut files: Vec<PathBuf> = image.base_archives.clone();
    for path in paths {
        files.push(path.clone());
        if let Ok(entries) = std::fs::read_dir(path) {
            let mut inner: Vec<PathBuf> = entries.filter_map(|entry| Some(entry.ok()?.path())).collect();
            inner.sort();
            files.extend(inner);
        }
    }
    for file in files {
        let stamp = std::fs::metadata(&file).map(|meta| {
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            format!("{} {:?}", meta.len(), modified.unwrap_or_default())
        });
        lines.push(format!("{} {}", file.display(), stamp.unwrap_or_else(|e| e.to_string())));
    }
    lines.join("\n")
}

/// The `bin/`, `libs/` and `models/` folders of a build context for the inference pod
/// Dockerfile's `prebuilt` stage, which copies all three (empty ones are fine).
fn prebuilt_folders(context: &Path) -> Result<(PathBuf, PathBuf, PathBuf), NodeError> {
    let folders = (context.join("bin"), context.join("libs"), context.join("models"));
    for dir in [&folders.0, &folders.1, &folders.2] {
        std::fs::create_dir_all(dir).map_err(|e| NodeError::dir("create", dir, e))?;
    }
    Ok(folders)
}

/// A stripped copy: the image carries no debug information (as a release build would not).
fn strip(binary: &Path, destination: &Path) -> Result<(), NodeError> {
    run(Command::new("strip").arg("-o").arg(destination).arg(binary)).map(drop)
}

/// The rpath (or runpath) entry of `readelf -d` output that ends in `torch/lib`.
fn torch_lib_dir(readelf_dynamic: &str) -> Option<PathBuf> {
    readelf_dynamic
        .lines()
        .filter(|line| line.contains("(RUNPATH)") || line.contains("(RPATH)"))
        .filter_map(|line| Some(line.split_once('[')?.1.split_once(']')?.0))
        .flat_map(|paths| paths.split(':'))
        .map(|path| Path::new(path.trim_end_matches('/')))
        .find(|path| path.ends_with("torch/lib") && path.is_absolute())
        .map(Path::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_torch_lib_dir_comes_from_the_binarys_rpath() {
        let readelf = " 0x0000000000000001 (NEEDED)             Shared library: [libtorch_cpu.so]\n \
                       0x000000000000001d (RUNPATH)            Library runpath: [$ORIGIN:/v/lib/python3.11/site-packages/torch/lib/]\n";
        assert_eq!(torch_lib_dir(readelf), Some(PathBuf::from("/v/lib/python3.11/site-packages/torch/lib")));
        let rpath = " 0x000000000000000f (RPATH)              Library rpath: [/v/site-packages/torch/lib]\n";
        assert_eq!(torch_lib_dir(rpath), Some(PathBuf::from("/v/site-packages/torch/lib")));
        assert_eq!(torch_lib_dir(" 0x1 (NEEDED) Shared library: [libc.so.6]\n"), None);
        assert_eq!(
            torch_lib_dir(" 0x1d (RUNPATH) Library runpath: [torch/lib]\n"),
            None,
            "relative entries are not ours"
        );
    }

    #[test]
    fn the_image_names_match_what_manifests_and_the_chart_are_given() {
        let sample = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/samples/ocrservice-cpu-minimal.yaml"
        ))
        .unwrap();
        assert!(
            sample.contains(&format!("image: {INFERENCE_POD_IMAGE}\n")),
            "the sample names another inference image"
        );
        assert!(OPERATOR_IMAGE.rsplit_once(':').is_some(), "the chart takes repository and tag apart");
    }
}
