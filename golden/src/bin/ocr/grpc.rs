//! The gRPC API: `Recognize` for images, the `RecognizeDocument` stream for PDFs and
//! TIFFs (a page bar as pages arrive), and `Recognize` again for servers that do not
//! have the stream yet (UNIMPLEMENTED).

use std::time::Duration;

use anyhow::Context;
use indicatif::ProgressBar;
use kube_ocr_proto::contract::code_name;
use kube_ocr_proto::v1::ocr_client::OcrClient;
use kube_ocr_proto::v1::{RecognizeRequest, RecognizeResponse, Task};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::cli::RequestSettings;
use crate::document::StreamedDocument;
use crate::input::{Format, Input};
use crate::progress::Progress;
use crate::target::{Failed, GRACE, with_causes};

/// Largest message either way: scans and PDFs can be large.
const MAX_MESSAGE: usize = 64 << 20;

pub struct GrpcTarget {
    client: OcrClient<Channel>,
    /// Cleared when the server answered RecognizeDocument with UNIMPLEMENTED.
    streams: bool,
}

impl GrpcTarget {
    pub async fn connect(endpoint: &str, timeout: Duration) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .with_context(|| format!("invalid endpoint {endpoint:?}"))?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|error| anyhow::anyhow!("connecting to {endpoint}: {}", with_causes(&error)))?;
        let client =
            OcrClient::new(channel).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
        Ok(Self { client, streams: true })
    }

    pub async fn recognize(
        &mut self,
        input: &Input,
        settings: &RequestSettings,
        progress: &Progress,
    ) -> Result<RecognizeResponse, Failed> {
        if self.streams && settings.task == Task::Document && input.format.may_have_pages() {
            let paged = input.format == Format::Pdf;
            match self.stream(request(input, settings), paged, settings.timeout, progress).await {
                Some(answer) => return answer,
                None => self.streams = false,
            }
        }
        self.unary(request(input, settings), settings.timeout).await
    }

    async fn unary(&mut self, message: RecognizeRequest, timeout: Duration) -> Result<RecognizeResponse, Failed> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        match tokio::time::timeout(timeout + GRACE, self.client.recognize(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Failed::new(status_reason(&status))),
            Err(_) => Err(Failed::new(no_answer(timeout))),
        }
    }

    /// The document's pages as they arrive; `None` when the server has no such call.
    /// `paged`: the answer has `pages` even for one page (a PDF, as `Recognize` answers it).
    async fn stream(
        &mut self,
        message: RecognizeRequest,
        paged: bool,
        timeout: Duration,
        progress: &Progress,
    ) -> Option<Result<RecognizeResponse, Failed>> {
        let give_up = Instant::now() + timeout + GRACE;
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        let mut stream = match tokio::time::timeout_at(give_up, self.client.recognize_document(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) if status.code() == Code::Unimplemented => return None,
            Ok(Err(status)) => return Some(Err(Failed::new(status_reason(&status)))),
            Err(_) => return Some(Err(Failed::new(no_answer(timeout)))),
        };
        let mut document: Option<StreamedDocument> = None;
        let mut bar = ProgressBar::hidden();
        let failure = loop {
            match tokio::time::timeout_at(give_up, stream.message()).await {
                Ok(Ok(Some(message))) => match document.as_mut() {
                    Some(document) => {
                        document.add(message);
                        bar.set_position(document.received() as u64);
                    }
                    None => {
                        let started = StreamedDocument::start(message);
                        bar = progress.page_bar(started.pages_to_read());
                        bar.set_position(started.received() as u64);
                        document = Some(started);
                    }
                },
                Ok(Ok(None)) => break None,
                Ok(Err(status)) if status.code() == Code::Unimplemented && document.is_none() => return None,
                Ok(Err(status)) => break Some(status_reason(&status)),
                Err(_) => break Some(no_answer(timeout)),
            }
        };
        progress.remove(&bar);
        let Some(document) = document else {
            return Some(Err(Failed::new(
                failure.unwrap_or_else(|| "the server ended the stream without an answer".into()),
            )));
        };
        let failure = failure.or_else(|| {
            (!document.is_complete()).then(|| {
                format!("the stream ended after {} of {} pages", document.received(), document.pages_to_read())
            })
        });
        Some(match failure {
            None => Ok(document.into_response(paged)),
            Some(reason) => {
                let partial = (document.received() > 0).then(|| document.into_response(paged));
                Err(Failed { reason, partial })
            }
        })
    }
}

fn request(input: &Input, settings: &RequestSettings) -> RecognizeRequest {
    RecognizeRequest {
        request_id: input.request_id.clone(),
        image: input.bytes.clone(),
        task: settings.task as i32,
        options: Some(settings.options),
    }
}

/// `CODE: message`, as the server's status says.
fn status_reason(status: &Status) -> String {
    let code = code_name(status.code());
    // What tonic says when an HTTP server that does not speak gRPC answered.
    let hint = if status.message().contains("grpc-status header missing") {
        " (is it the gRPC port? the HTTP API takes --api http)"
    } else {
        ""
    };
    if status.message().is_empty() { code.to_owned() } else { format!("{code}: {}{hint}", status.message()) }
}

fn no_answer(timeout: Duration) -> String {
    format!(
        "DEADLINE_EXCEEDED: no answer within {} ms (--timeout-ms) and {} s more",
        timeout.as_millis(),
        GRACE.as_secs()
    )
}
