//! From the uncompressed docker archive `buildah push docker-archive:` writes, to what a
//! node imports: an OCI image layout holding only the blobs that node lacks.
//!
//! Why not `oci-archive:`: buildah (1.28) gzips every layer there, `--disable-compression`
//! or not, which costs about 30 s of CPU for the 3.8 GB libtorch layer on every build, and a
//! node then reads all of it again to import a rebuilt binary. A docker archive keeps each
//! layer uncompressed and names it by its digest, so the manifest is written here from the
//! archive's entry names and sizes, and a node that already holds a layer (the libraries,
//! which change only with the torch pin) is sent everything but that layer. containerd checks
//! every blob it is sent against its digest, and unpacks only the layers it has no snapshot of.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::NodeError;

const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// One blob of the image: `sha256:<hex>` and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

/// The image a docker archive holds: its config and layers (in order), found by the archive
/// entries they are stored as (`<hex>.json`, `<hex>.tar`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedImage {
    pub config: Blob,
    pub layers: Vec<Blob>,
}

#[derive(Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

impl ArchivedImage {
    /// Reads `manifest.json` and the sizes of the entries it names, seeking past the layers'
    /// data (4 GB are not read to find their size).
    pub fn read(archive: &Path) -> Result<ArchivedImage, NodeError> {
        let error = |reason: String| NodeError::ImageLayout { archive: archive.to_owned(), reason };
        let file = File::open(archive).map_err(|e| NodeError::dir("open", archive, e))?;
        let mut sizes = std::collections::HashMap::new();
        let mut manifest = None;
        let mut tar = tar::Archive::new(file);
        for entry in tar.entries_with_seek().map_err(|e| error(e.to_string()))? {
            let mut entry = entry.map_err(|e| error(e.to_string()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(|e| error(e.to_string()))?.to_string_lossy().into_owned();
            if path == "manifest.json" {
                let mut text = String::new();
                entry.read_to_string(&mut text).map_err(|e| error(e.to_string()))?;
                manifest = Some(text);
            } else {
                sizes.insert(path, entry.size());
            }
        }
        let manifest = manifest.ok_or_else(|| error("no manifest.json: not a docker archive".to_owned()))?;
        ArchivedImage::from_manifest(&manifest, |name| sizes.get(name).copied()).map_err(error)
    }

    /// The image `manifest.json` describes, with `size_of` each entry it names.
    fn from_manifest(manifest: &str, size_of: impl Fn(&str) -> Option<u64>) -> Result<ArchivedImage, String> {
        let entries: Vec<DockerManifestEntry> =
            serde_json::from_str(manifest).map_err(|e| format!("manifest.json: {e}"))?;
        let [entry] = entries.as_slice() else {
            return Err(format!("manifest.json lists {} images, not one", entries.len()));
        };
        let blob = |name: &str, suffix: &str| -> Result<Blob, String> {
            let hex = name
                .strip_suffix(suffix)
                .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| format!("entry {name:?} is not named <sha256>{suffix}"))?;
            let size =
                size_of(name).ok_or_else(|| format!("manifest.json names {name:?}, which is not in the archive"))?;
            Ok(Blob { digest: format!("sha256:{hex}"), size })
        };
        Ok(ArchivedImage {
            config: blob(&entry.config, ".json")?,
            layers: entry.layers.iter().map(|layer| blob(layer, ".tar")).collect::<Result<_, _>>()?,
        })
    }

    /// The OCI manifest of this image: its bytes are what the node stores, and their digest
    /// names the image there.
    pub fn oci_manifest(&self) -> Vec<u8> {
        let descriptor = |media_type: &str, blob: &Blob| json!({ "mediaType": media_type, "digest": blob.digest, "size": blob.size });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, &self.config),
            "layers": self.layers.iter().map(|layer| descriptor(LAYER_MEDIA_TYPE, layer)).collect::<Vec<_>>(),
        });
        serde_json::to_vec(&manifest).expect("JSON values serialize")
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// What [`write_thin_layout`] put in and left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThinLayout {
    pub layers_sent: usize,
    pub layers_left_out: usize,
    pub bytes_left_out: u64,
}

/// Writes to `out` an OCI image layout (as a tar) of the image in `archive`, named
/// `reference`, with every blob except the layers whose digests are in `present` (what the
/// node's content store holds already). The manifest and config always go: they are small,
/// and the import names the image by them.
pub fn write_thin_layout(
    archive: &Path,
    image: &ArchivedImage,
    reference: &str,
    present: &HashSet<String>,
    out: &Path,
) -> Result<ThinLayout, NodeError> {
    let error = |reason: String| NodeError::ImageLayout { archive: archive.to_owned(), reason };
    let manifest = image.oci_manifest();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": sha256_digest(&manifest),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": reference },
        }],
    });
    let mut summary = ThinLayout::default();
    let mut wanted = HashSet::new();
    wanted.insert(entry_name(&image.config.digest, ".json"));
    for layer in &image.layers {
        if present.contains(&layer.digest) {
            summary.layers_left_out += 1;
            summary.bytes_left_out += layer.size;
        } else {
            summary.layers_sent += 1;
            wanted.insert(entry_name(&layer.digest, ".tar"));
        }
    }

    let output = File::create(out).map_err(|e| NodeError::dir("create", out, e))?;
    let mut layout = tar::Builder::new(std::io::BufWriter::new(output));
    let mut add = |name: &str, data: &mut dyn Read, size: u64| -> Result<(), NodeError> {
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        layout.append_data(&mut header, name, data).map_err(|e| NodeError::dir("write", out, e))
    };
    let oci_layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    add("oci-layout", &mut &oci_layout[..], oci_layout.len() as u64)?;
    let index = serde_json::to_vec(&index).expect("JSON values serialize");
    add("index.json", &mut index.as_slice(), index.len() as u64)?;
    add(&blob_path(&sha256_digest(&manifest)), &mut manifest.as_slice(), manifest.len() as u64)?;

    let file = File::open(archive).map_err(|e| NodeError::dir("open", archive, e))?;
    let mut docker = tar::Archive::new(file);
    for entry in docker.entries_with_seek().map_err(|e| error(e.to_string()))? {
        let mut entry = entry.map_err(|e| error(e.to_string()))?;
        let name = entry.path().map_err(|e| error(e.to_string()))?.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_file() || !wanted.remove(&name) {
            continue;
        }
        let digest = format!("sha256:{}", name.trim_end_matches(".json").trim_end_matches(".tar"));
        let size = entry.size();
        add(&blob_path(&digest), &mut entry, size)?;
    }
    if let Some(missing) = wanted.into_iter().next() {
        return Err(error(format!("{missing} is not in the archive")));
    }
    let mut output = layout.into_inner().map_err(|e| NodeError::dir("write", out, e))?;
    output.flush().map_err(|e| NodeError::dir("write", out, e))?;
    Ok(summary)
}

fn entry_name(digest: &str, suffix: &str) -> String {
    format!("{}{suffix}", digest.trim_start_matches("sha256:"))
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Where [`write_thin_layout`] writes for `reference` under `dir`.
pub fn thin_layout_path(dir: &Path, reference: &str) -> PathBuf {
    dir.join(format!("{}.import.tar", reference.replace(['/', ':'], "_")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A docker archive as buildah writes it: blobs named by their digests, a symlink per
    /// layer in a legacy folder, and manifest.json last.
    pub(crate) fn docker_archive(dir: &Path, config: &[u8], layers: &[&[u8]]) -> (PathBuf, Vec<String>) {
        let path = dir.join("image.docker.tar");
        let mut builder = tar::Builder::new(File::create(&path).unwrap());
        let mut append = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o444);
            builder.append_data(&mut header, name, data).unwrap();
        };
        let mut layer_names = Vec::new();
        let mut digests = Vec::new();
        for layer in layers {
            let digest = sha256_digest(layer);
            let name = entry_name(&digest, ".tar");
            append(&name, layer);
            layer_names.push(name);
            digests.push(digest);
        }
        let config_name = entry_name(&sha256_digest(config), ".json");
        append(&config_name, config);
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder.append_link(&mut link, "0123/layer.tar", format!("../{}", layer_names[0])).unwrap();
        let manifest = json!([{ "Config": config_name, "RepoTags": ["x:1"], "Layers": layer_names }]).to_string();
        let mut header = tar::Header::new_ustar();
        header.set_size(manifest.len() as u64);
        builder.append_data(&mut header, "manifest.json", manifest.as_bytes()).unwrap();
        builder.into_inner().unwrap();
        (path, digests)
    }

    fn entries(layout: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        let mut tar = tar::Archive::new(File::open(layout).unwrap());
        tar.entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn a_node_holding_a_layer_is_sent_everything_else_and_the_layout_is_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let config = br#"{"rootfs":{"type":"layers"}}"#;
        let (archive, digests) = docker_archive(dir.path(), config, &[b"libraries", b"binary"]);
        let image = ArchivedImage::read(&archive).unwrap();
        assert_eq!(image.config, Blob { digest: sha256_digest(config), size: config.len() as u64 });
        assert_eq!(image.layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(), digests);
        assert_eq!(image.layers[0].size, 9);

        let out = dir.path().join("thin.tar");
        let present = HashSet::from([digests[0].clone(), "sha256:unrelated".to_owned()]);
        let summary = write_thin_layout(&archive, &image, "ghcr.io/x/y:1", &present, &out).unwrap();
        assert_eq!(summary, ThinLayout { layers_sent: 1, layers_left_out: 1, bytes_left_out: 9 });

        let files = entries(&out);
        let manifest = image.oci_manifest();
        let manifest_digest = sha256_digest(&manifest);
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        assert_eq!(index["manifests"][0]["digest"], manifest_digest.as_str());
        assert_eq!(index["manifests"][0]["size"], manifest.len());
        assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "ghcr.io/x/y:1");
        assert_eq!(files[&blob_path(&manifest_digest)], manifest);
        assert_eq!(files[&blob_path(&digests[1])], b"binary", "the layer the node lacks");
        assert!(!files.contains_key(&blob_path(&digests[0])), "the layer the node holds is left out");
        assert_eq!(files[&blob_path(&sha256_digest(config))], config);
        for (name, data) in &files {
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                assert_eq!(sha256_digest(data), format!("sha256:{hex}"), "{name} is stored under its digest");
            }
        }

        let parsed: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(parsed["layers"][1]["digest"], digests[1].as_str());
        assert_eq!(parsed["layers"][1]["mediaType"], LAYER_MEDIA_TYPE, "uncompressed");

        let everything = dir.path().join("full.tar");
        let summary = write_thin_layout(&archive, &image, "ghcr.io/x/y:1", &HashSet::new(), &everything).unwrap();
        assert_eq!(summary.layers_sent, 2);
        assert!(entries(&everything).contains_key(&blob_path(&digests[0])));
    }

    #[test]
    fn archives_that_are_not_one_docker_image_are_refused_with_the_reason() {
        let size = |_: &str| Some(1);
        let hex = "a".repeat(64);
        let one = format!(r#"[{{"Config":"{hex}.json","Layers":["{hex}.tar"]}}]"#);
        assert!(ArchivedImage::from_manifest(&one, size).is_ok());
        let two = format!("[{0},{0}]", &one[1..one.len() - 1]);
        assert!(ArchivedImage::from_manifest(&two, size).unwrap_err().contains("lists 2 images"));
        let unnamed = r#"[{"Config":"config.json","Layers":[]}]"#;
        assert!(ArchivedImage::from_manifest(unnamed, size).unwrap_err().contains("not named <sha256>.json"));
        let absent = ArchivedImage::from_manifest(&one, |_| None).unwrap_err();
        assert!(absent.contains("not in the archive"), "{absent}");

        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.tar");
        tar::Builder::new(File::create(&empty).unwrap()).into_inner().unwrap();
        let error = ArchivedImage::read(&empty).unwrap_err().to_string();
        assert!(error.contains("no manifest.json"), "{error}");
    }
}
