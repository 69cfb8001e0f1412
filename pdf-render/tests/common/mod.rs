//! The harness of the renderer's tests: PDFs written object by object (hostile ones
//! included), the renderer run on them, and its frames read back.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress};
use kube_ocr_vision::pdf::wire::{Frame, check_header_len, parse_frame};

/// A PDF assembled from numbered objects, with a correct cross-reference table.
#[derive(Debug, Default)]
pub struct PdfWriter {
    objects: Vec<Vec<u8>>,
}

impl PdfWriter {
    /// Adds an object; returns its number.
    pub fn add(&mut self, body: impl Into<Vec<u8>>) -> usize {
        self.objects.push(body.into());
        self.objects.len()
    }

    /// Adds a stream object with `dictionary` entries (without `/Length`).
    pub fn add_stream(&mut self, dictionary: &str, data: &[u8]) -> usize {
        let mut body = format!("<< {dictionary} /Length {} >>\nstream\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        self.add(body)
    }

    /// Replaces object `number` (to fill in forward references).
    pub fn set(&mut self, number: usize, body: impl Into<Vec<u8>>) {
        self.objects[number - 1] = body.into();
    }

    pub fn finish(&self, root: usize, trailer_extra: &str) -> Vec<u8> {
        let mut pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
        let mut offsets = Vec::new();
        for (index, body) in self.objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend_from_slice(format!("{} 0 obj\n", index + 1).as_bytes());
            pdf.extend_from_slice(body);
            pdf.extend_from_slice(b"\nendobj\n");
        }
        let xref = pdf.len();
        pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", self.objects.len() + 1).as_bytes());
        for offset in offsets {
            pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        pdf.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root {root} 0 R {trailer_extra} >>\nstartxref\n{xref}\n%%EOF\n",
                self.objects.len() + 1
            )
            .as_bytes(),
        );
        pdf
    }
}

/// A document of pages of the given sizes (points), each drawing `content`, with
/// Helvetica as `/F1`.
pub fn pages_pdf(sizes: &[(f32, f32)], content: &str) -> Vec<u8> {
    let mut pdf = PdfWriter::default();
    let catalog = pdf.add("");
    let pages = pdf.add("");
    let font = pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
    let stream = pdf.add_stream("", content.as_bytes());
    let kids: Vec<usize> = sizes
        .iter()
        .map(|(width, height)| {
            pdf.add(format!(
                "<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 {width} {height}] \
                 /Resources << /Font << /F1 {font} 0 R >> >> /Contents {stream} 0 R >>"
            ))
        })
        .collect();
    pdf.set(catalog, format!("<< /Type /Catalog /Pages {pages} 0 R >>"));
    let kids_list: String = kids.iter().map(|kid| format!("{kid} 0 R ")).collect();
    pdf.set(pages, format!("<< /Type /Pages /Kids [{kids_list}] /Count {} >>", kids.len()));
    pdf.finish(catalog, "")
}

/// One Letter page drawing an image XObject of `side` × `side` RGB pixels whose Flate
/// stream is a few hundred kilobytes and inflates to `side² × 3` bytes of zeros: a
/// decompression bomb (`side²·3` must be a whole number of MiB).
pub fn image_bomb_pdf(side: u32) -> Vec<u8> {
    let total = u64::from(side) * u64::from(side) * 3;
    assert_eq!(total % (1 << 20), 0, "the bomb is built from whole MiB blocks");
    let mut pdf = PdfWriter::default();
    let catalog = pdf.add("");
    let pages = pdf.add("");
    let image = pdf.add_stream(
        &format!("/Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode"),
        &zlib_zeros(total),
    );
    let content = pdf.add_stream("", b"q 500 0 0 500 50 50 cm /Im1 Do Q");
    let page = pdf.add(format!(
        "<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im1 {image} 0 R >> >> /Contents {content} 0 R >>"
    ));
    pdf.set(catalog, format!("<< /Type /Catalog /Pages {pages} 0 R >>"));
    pdf.set(pages, format!("<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>"));
    pdf.finish(catalog, "")
}

/// A zlib stream of `total` zero bytes: one fully flushed deflate block of 1 MiB of
/// zeros (self-contained, byte-aligned) repeated, then an empty final block and the
/// Adler-32 of `total` zeros (a = 1, b = total mod 65521).
fn zlib_zeros(total: u64) -> Vec<u8> {
    let mut compress = Compress::new(Compression::best(), false);
    let mut block = Vec::with_capacity(1 << 16);
    compress.compress_vec(&vec![0; 1 << 20], &mut block, FlushCompress::Full).expect("deflate");
    let mut stream = vec![0x78, 0xda];
    for _ in 0..total / (1 << 20) {
        stream.extend_from_slice(&block);
    }
    stream.extend_from_slice(&[0x03, 0x00]);
    let adler = ((total % 65_521) << 16) as u32 | 1;
    stream.extend_from_slice(&adler.to_be_bytes());
    stream
}

/// A document encrypted with the standard security handler under a user password that
/// is not empty: its `/U` entry does not match the empty password.
pub fn encrypted_pdf() -> Vec<u8> {
    let mut pdf = PdfWriter::default();
    let catalog = pdf.add("");
    let pages = pdf.add("");
    let page = pdf.add(format!("<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 612 792] >>"));
    pdf.set(catalog, format!("<< /Type /Catalog /Pages {pages} 0 R >>"));
    pdf.set(pages, format!("<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>"));
    let hex32 = |byte: u8| format!("<{}>", format!("{byte:02x}").repeat(32));
    let encrypt = pdf.add(format!("<< /Filter /Standard /V 1 /R 2 /O {} /U {} /P -4 >>", hex32(0x5a), hex32(0xa5)));
    pdf.finish(catalog, &format!("/Encrypt {encrypt} 0 R /ID [{} {}]", hex32(0x11), hex32(0x11)))
}

/// A file of the golden document set (golden/documents).
pub fn golden_document(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../golden/documents").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// What one run of the renderer did.
#[derive(Debug)]
pub struct Rendered {
    pub frames: Vec<(Frame, Vec<u8>)>,
    pub success: bool,
    pub elapsed: Duration,
    pub stderr: String,
}

impl Rendered {
    pub fn pages(&self) -> Vec<&Frame> {
        self.frames.iter().map(|(frame, _)| frame).filter(|frame| matches!(frame, Frame::Page { .. })).collect()
    }

    pub fn failure(&self) -> Option<&kube_ocr_vision::pdf::PdfError> {
        self.frames.iter().find_map(|(frame, _)| match frame {
            Frame::Failed { error } => Some(error),
            _ => None,
        })
    }
}

/// Runs `ocr-pdf-render` with `args` on `document`.
pub fn render(document: &[u8], args: &[&str]) -> Rendered {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ocr-pdf-render"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ocr-pdf-render");
    let mut stdin = child.stdin.take().expect("stdin");
    let document = document.to_vec();
    let writer = std::thread::spawn(move || {
        // The renderer may die before reading it all (that is what limits are for).
        let _ = stdin.write_all(&document);
    });
    let output = child.wait_with_output().expect("wait for ocr-pdf-render");
    writer.join().expect("stdin writer");
    Rendered {
        frames: read_frames(&output.stdout),
        success: output.status.success(),
        elapsed: started.elapsed(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The whole frames in `bytes` (a cut-off last one is dropped, as the pod would see it).
fn read_frames(mut bytes: &[u8]) -> Vec<(Frame, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 4 {
        let len = check_header_len(u32::from_le_bytes(bytes[..4].try_into().unwrap())).expect("header length");
        if bytes.len() < 4 + len + 8 {
            break;
        }
        let json = &bytes[4..4 + len];
        let payload_len = u64::from_le_bytes(bytes[4 + len..12 + len].try_into().unwrap()) as usize;
        let rest = &bytes[12 + len..];
        if rest.len() < payload_len {
            break;
        }
        frames.push((parse_frame(json, payload_len as u64).expect("a valid frame"), rest[..payload_len].to_vec()));
        bytes = &rest[payload_len..];
    }
    frames
}
