//! The files to read: one file, or a folder's documents by extension; each read whole,
//! with its format told by its first bytes (not its name).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The extensions a folder is searched for (any case).
pub const EXTENSIONS: [&str; 9] = ["png", "jpg", "jpeg", "jfif", "webp", "bmp", "tif", "tiff", "pdf"];

/// The file itself, or the folder's documents (not its subfolders), sorted by name.
pub fn documents_in(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut documents: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && has_document_extension(p))
        .collect();
    documents.sort();
    anyhow::ensure!(!documents.is_empty(), "no documents (.{}) in {}", EXTENSIONS.join(", ."), path.display());
    Ok(documents)
}

fn has_document_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A file's format, from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Tiff,
    Png,
    Jpeg,
    Webp,
    Bmp,
    /// Not one the CLI knows; the server decides.
    Unknown,
}

impl Format {
    pub fn sniff(bytes: &[u8]) -> Self {
        if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"].iter().any(|magic| bytes.starts_with(*magic)) {
            Self::Tiff
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Self::Png
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Self::Jpeg
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Self::Webp
        } else if bytes.starts_with(b"BM") {
            Self::Bmp
        } else if bytes[..bytes.len().min(1024)].windows(5).any(|w| w == b"%PDF-") {
            // PDF readers accept the header anywhere in the first KiB.
            Self::Pdf
        } else {
            Self::Unknown
        }
    }

    /// The Content-Type the HTTP API is sent this format with.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Tiff => "image/tiff",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Bmp => "image/bmp",
            Self::Unknown => "application/octet-stream",
        }
    }

    /// Whether a file of this format can hold several pages.
    pub fn may_have_pages(self) -> bool {
        matches!(self, Self::Pdf | Self::Tiff)
    }
}

/// One file, read.
#[derive(Debug, Clone)]
pub struct Input {
    pub bytes: Vec<u8>,
    pub format: Format,
    /// The file's name when the server can echo it (printable ASCII, 1 to 128 characters,
    /// as the HTTP API requires), else empty (the server makes one up).
    pub request_id: String,
}

impl Input {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let usable = (1..=128).contains(&name.len()) && name.bytes().all(|b| (0x20..=0x7e).contains(&b));
        Ok(Self { format: Format::sniff(&bytes), bytes, request_id: if usable { name } else { String::new() } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_their_first_bytes() {
        let webp = b"RIFF\x10\0\0\0WEBPVP8 ";
        let cases: [(&[u8], Format, &str); 9] = [
            (b"%PDF-1.7\n", Format::Pdf, "application/pdf"),
            (b"\xEF\xBB\xBF%PDF-1.4", Format::Pdf, "application/pdf"),
            (b"II*\0\x08\0\0\0", Format::Tiff, "image/tiff"),
            (b"MM\0*\0\0\0\x08", Format::Tiff, "image/tiff"),
            (b"\x89PNG\r\n\x1a\n\0", Format::Png, "image/png"),
            (b"\xFF\xD8\xFF\xE0", Format::Jpeg, "image/jpeg"),
            (webp, Format::Webp, "image/webp"),
            (b"BM\x36\0", Format::Bmp, "image/bmp"),
            (b"\x89PNG but then nothing", Format::Unknown, "application/octet-stream"),
        ];
        for (bytes, format, media_type) in cases {
            assert_eq!(Format::sniff(bytes), format, "{bytes:?}");
            assert_eq!(format.media_type(), media_type);
        }
        assert_eq!(Format::sniff(b""), Format::Unknown);
        assert!(Format::Pdf.may_have_pages() && Format::Tiff.may_have_pages() && !Format::Png.may_have_pages());
    }

    #[test]
    fn a_folder_yields_its_documents_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.PDF", "a.png", "c.tiff", "notes.txt", "d.tif"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();
        let names: Vec<String> = documents_in(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.png", "b.PDF", "c.tiff", "d.tif"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(documents_in(empty.path()).unwrap_err().to_string().contains("no documents (.png, .jpg"));
        assert!(documents_in(&empty.path().join("missing")).unwrap_err().to_string().contains("does not exist"));
    }

    #[test]
    fn only_printable_ascii_names_become_request_ids() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("scan 01.pdf");
        let accented = dir.path().join("reçu.png");
        std::fs::write(&plain, b"%PDF-1.7").unwrap();
        std::fs::write(&accented, b"").unwrap();
        let input = Input::read(&plain).unwrap();
        assert_eq!((input.request_id.as_str(), input.format), ("scan 01.pdf", Format::Pdf));
        assert_eq!(Input::read(&accented).unwrap().request_id, "");
    }
}
