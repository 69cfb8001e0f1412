//! The checked request fields ([`kube_ocr_http_request`] reads and checks them) as this
//! server's call: its task and [`CallOptions`].

use std::time::Duration;

use kube_ocr_http_request::{CheckedFields, OutputFormat, RequestOptions, Task};
use kube_ocr_vision::image::PageRange;

use crate::serve::api::CallOptions;
use crate::serve::engine::OcrTask;

/// The fields of one request, in the server's types.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct OcrFields {
    pub task: Option<OcrTask>,
    pub options: CallOptions,
    pub request_id: Option<String>,
    pub format: OutputFormat,
    pub timeout: Option<Duration>,
}

impl From<CheckedFields> for OcrFields {
    fn from(fields: CheckedFields) -> Self {
        let CheckedFields { task, options, request_id, format, timeout } = fields;
        Self { task: task.map(ocr_task), options: call_options(options), request_id, format, timeout }
    }
}

fn ocr_task(task: Task) -> OcrTask {
    match task {
        Task::Document => OcrTask::Document,
        Task::Line => OcrTask::Line,
    }
}

fn call_options(options: RequestOptions) -> CallOptions {
    let RequestOptions {
        min_confidence,
        skip_orientation,
        bypass_cache,
        word_boxes,
        first_page,
        last_page,
        pdf_dpi,
        pdf_text_layer,
    } = options;
    CallOptions {
        min_confidence,
        skip_orientation,
        bypass_cache,
        word_boxes,
        range: PageRange { first: first_page, last: last_page },
        pdf_dpi,
        pdf_text_layer,
    }
}

#[cfg(test)]
mod tests {
    use kube_ocr_http_request::RawFields;

    use super::*;

    #[test]
    fn query_fields_become_a_call() {
        let fields: OcrFields = RawFields::from_query(Some(
            "task=TASK_DOCUMENT&min_confidence=0.5&skip_orientation=true&bypass_cache=1&word_boxes=true&request_id=r-1\
             &format=text&timeout_ms=1500&first_page=2&last_page=5&pdf_dpi=300&pdf_text_layer=true",
        ))
        .unwrap()
        .parse()
        .unwrap()
        .into();
        assert_eq!(
            fields,
            OcrFields {
                task: Some(OcrTask::Document),
                options: CallOptions {
                    min_confidence: 0.5,
                    skip_orientation: true,
                    bypass_cache: true,
                    word_boxes: true,
                    range: PageRange { first: 2, last: 5 },
                    pdf_dpi: 300,
                    pdf_text_layer: true,
                },
                request_id: Some("r-1".into()),
                format: OutputFormat::Text,
                timeout: Some(Duration::from_millis(1500)),
            }
        );
        assert_eq!(ocr_task(Task::Line), OcrTask::Line);
        let defaults: OcrFields = CheckedFields::default().into();
        assert_eq!(defaults, OcrFields::default());
    }
}
