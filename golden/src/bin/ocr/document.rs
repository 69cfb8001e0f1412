//! A `RecognizeDocument` stream put back together into the `RecognizeResponse` the unary
//! call answers, so both print the same. Pure: no IO.

use kube_ocr_proto::v1::{ModelRef, PageResult, RecognizeDocumentResponse, RecognizeResponse, Timings};

/// The messages of one stream so far.
#[derive(Debug, Clone, Default)]
pub struct StreamedDocument {
    request_id: String,
    model: Option<ModelRef>,
    document_page_count: u32,
    pages_to_read: u32,
    pages: Vec<PageResult>,
    timings: Timings,
}

impl StreamedDocument {
    /// From the stream's first message (which says how many pages follow).
    pub fn start(first: RecognizeDocumentResponse) -> Self {
        let mut document = Self {
            request_id: first.request_id.clone(),
            model: first.model.clone(),
            document_page_count: first.document_page_count,
            pages_to_read: first.pages_to_read,
            ..Self::default()
        };
        // A server that puts the first page in the first message loses nothing.
        document.add(first);
        document
    }

    /// Adds a message's page (a message without one adds nothing).
    pub fn add(&mut self, message: RecognizeDocumentResponse) {
        if self.model.is_none() {
            self.model = message.model;
        }
        let Some(page) = message.page else { return };
        let timings = message.timings.unwrap_or_default();
        self.timings.queue_us += timings.queue_us;
        self.timings.preprocess_us += timings.preprocess_us;
        self.timings.inference_us += timings.inference_us;
        self.timings.postprocess_us += timings.postprocess_us;
        self.timings.total_us += timings.total_us;
        self.pages.push(page);
    }

    pub fn pages_to_read(&self) -> u32 {
        self.pages_to_read
    }

    /// How many pages arrived.
    pub fn received(&self) -> usize {
        self.pages.len()
    }

    /// Whether every page announced arrived.
    pub fn is_complete(&self) -> bool {
        self.pages.len() >= self.pages_to_read as usize
    }

    /// The pages as `Recognize` answers them: the top-level fields are the first page's,
    /// `pages` and `document_text` carry every page. Unless `paged` (a PDF, whose answer
    /// always has pages), a document of one page reads like a single image (no `pages`),
    /// as `Recognize` answers a TIFF of one page.
    pub fn into_response(self, paged: bool) -> RecognizeResponse {
        let first = self.pages.first().cloned().unwrap_or_default();
        let single = !paged && self.document_page_count <= 1 && self.pages.len() == 1;
        let document_text = self.pages.iter().map(|page| page.text.as_str()).collect::<Vec<_>>().join("\n\u{c}\n");
        RecognizeResponse {
            request_id: self.request_id,
            lines: first.lines,
            text: first.text,
            model: self.model,
            image_width: first.image_width,
            image_height: first.image_height,
            cached: !self.pages.is_empty() && self.pages.iter().all(|page| page.cached),
            timings: Some(self.timings),
            page_rotation: first.page_rotation,
            document_text: if single { String::new() } else { document_text },
            document_page_count: self.document_page_count,
            pages: if single { Vec::new() } else { self.pages },
        }
    }
}

#[cfg(test)]
mod tests {
    use kube_ocr_proto::v1::{TextLine, TextSource};

    use super::*;

    fn page(number: u32, text: &str) -> RecognizeDocumentResponse {
        RecognizeDocumentResponse {
            request_id: "r".into(),
            page: Some(PageResult {
                page_number: number,
                image_width: 100 * number,
                image_height: 50,
                page_rotation: 90,
                lines: vec![TextLine { text: text.into(), confidence: 0.9, ..Default::default() }],
                text: text.into(),
                text_source: TextSource::Ocr as i32,
                cached: number == 2,
            }),
            timings: Some(Timings { inference_us: 10, total_us: 20, ..Default::default() }),
            ..Default::default()
        }
    }

    fn head(count: u32, to_read: u32) -> RecognizeDocumentResponse {
        RecognizeDocumentResponse {
            request_id: "r".into(),
            model: Some(ModelRef { name: "m".into(), version: "1".into(), variant: String::new() }),
            document_page_count: count,
            pages_to_read: to_read,
            ..Default::default()
        }
    }

    #[test]
    fn pages_become_the_unary_answer() {
        let mut document = StreamedDocument::start(head(5, 2));
        assert_eq!((document.pages_to_read(), document.received(), document.is_complete()), (2, 0, false));
        document.add(page(2, "two"));
        document.add(page(3, "three"));
        assert!(document.is_complete());
        let response = document.into_response(false);
        assert_eq!(response.text, "two");
        assert_eq!((response.image_width, response.page_rotation, response.document_page_count), (200, 90, 5));
        assert_eq!(response.pages.iter().map(|p| p.page_number).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(response.document_text, "two\n\u{c}\nthree");
        assert!(!response.cached, "page 3 was computed");
        assert_eq!(response.timings.unwrap().total_us, 40);
        assert_eq!(response.model.unwrap().name, "m");
    }

    #[test]
    fn a_one_page_tiff_reads_like_an_image_and_a_pdf_keeps_its_page() {
        let mut document = StreamedDocument::start(head(1, 1));
        document.add(page(1, "only"));
        let pdf = document.clone().into_response(true);
        assert_eq!((pdf.pages.len(), pdf.document_text.as_str(), pdf.document_page_count), (1, "only", 1));
        let response = document.into_response(false);
        assert!(response.pages.is_empty() && response.document_text.is_empty());
        assert_eq!((response.text.as_str(), response.lines.len()), ("only", 1));
    }

    #[test]
    fn a_first_message_with_a_page_keeps_it() {
        let mut first = page(1, "one");
        first.document_page_count = 2;
        first.pages_to_read = 2;
        let mut document = StreamedDocument::start(first);
        assert_eq!(document.received(), 1);
        document.add(page(2, "two"));
        assert_eq!(document.into_response(false).pages.len(), 2);
    }
}
