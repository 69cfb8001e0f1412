//! What can be checked of a call without reading its document: its options, its size,
//! and a PDF's task and resolution. Synchronous calls, job submits on a serving pod and
//! job submits on a job front (which loads no model) are refused on the same grounds.

use kube_ocr_vision::pdf::is_pdf;

use super::call::CallOptions;
use super::failure::{ApiError, Failure};
use crate::serve::engine::OcrTask;
use crate::serve::pdf::PdfSettings;

#[derive(Debug, Clone)]
pub(crate) struct CallChecker {
    /// Largest document accepted, in bytes (--max-image-bytes).
    pub max_image_bytes: usize,
    /// The PDF resolutions allowed, and the default.
    pub pdf_default_dpi: u32,
    pub pdf_min_dpi: u32,
    pub pdf_max_dpi: u32,
}

impl CallChecker {
    pub(crate) fn new(max_image_bytes: usize, pdf: &PdfSettings) -> Self {
        Self { max_image_bytes, pdf_default_dpi: pdf.default_dpi, pdf_min_dpi: pdf.min_dpi, pdf_max_dpi: pdf.max_dpi }
    }

    pub(crate) fn check(&self, document: &[u8], task: OcrTask, options: &CallOptions) -> Result<(), ApiError> {
        if !(0.0..=1.0).contains(&options.min_confidence) {
            return Err(ApiError::invalid_argument(format!(
                "min_confidence must be between 0 and 1, got {}",
                options.min_confidence
            )));
        }
        if document.len() > self.max_image_bytes {
            return Err(ApiError::new(
                Failure::TooLarge,
                format!(
                    "the image is {} bytes; this server accepts at most {} (--max-image-bytes)",
                    document.len(),
                    self.max_image_bytes
                ),
            ));
        }
        if is_pdf(document) {
            if task == OcrTask::Line {
                return Err(ApiError::invalid_argument("a LINE request reads one image; send a PDF as a DOCUMENT"));
            }
            self.pdf_dpi(options.pdf_dpi)?;
        }
        Ok(())
    }

    /// The resolution a PDF is rendered at: the caller's, else the server's default.
    pub(crate) fn pdf_dpi(&self, asked: u32) -> Result<u32, ApiError> {
        let dpi = if asked == 0 { self.pdf_default_dpi } else { asked };
        if !(self.pdf_min_dpi..=self.pdf_max_dpi).contains(&dpi) {
            return Err(ApiError::invalid_argument(format!(
                "pdf_dpi must be between {} and {} (--pdf-min-dpi, --pdf-max-dpi), got {dpi}",
                self.pdf_min_dpi, self.pdf_max_dpi
            )));
        }
        Ok(dpi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker() -> CallChecker {
        CallChecker { max_image_bytes: 100, pdf_default_dpi: 200, pdf_min_dpi: 50, pdf_max_dpi: 300 }
    }

    #[test]
    fn options_size_and_pdf_settings_are_refused_before_the_document_is_read() {
        let checker = checker();
        let options = CallOptions::default();
        assert!(checker.check(b"png", OcrTask::Document, &options).is_ok());
        let bad = CallOptions { min_confidence: 1.5, ..options };
        assert_eq!(checker.check(b"png", OcrTask::Document, &bad).unwrap_err().failure, Failure::InvalidArgument);
        assert_eq!(checker.check(&[0; 101], OcrTask::Document, &options).unwrap_err().failure, Failure::TooLarge);
        let pdf = b"%PDF-1.7\n";
        assert_eq!(checker.check(pdf, OcrTask::Line, &options).unwrap_err().failure, Failure::InvalidArgument);
        let too_fine = CallOptions { pdf_dpi: 600, ..options };
        assert!(checker.check(pdf, OcrTask::Document, &too_fine).unwrap_err().message.contains("pdf_dpi"));
        assert_eq!(checker.pdf_dpi(0).unwrap(), 200);
    }
}
