//! The service the files are sent to, gRPC or the HTTP API, behind one call.

use kube_ocr_proto::v1::RecognizeResponse;

use crate::cli::{Api, RequestSettings, Settings};
use crate::grpc::GrpcTarget;
use crate::http::HttpTarget;
use crate::input::Input;
use crate::progress::Progress;

/// How long past a request's deadline the CLI waits for the server's own answer (a
/// deadline error) before it gives up on its own.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A request without a whole answer: why, and the pages that came before the failure.
#[derive(Debug)]
pub struct Failed {
    pub reason: String,
    pub partial: Option<RecognizeResponse>,
}

impl Failed {
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), partial: None }
    }
}

pub enum Target {
    Grpc(GrpcTarget),
    Http(HttpTarget),
}

impl Target {
    /// Connects (gRPC) or checks the URL (HTTP: connections are made per request).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Ok(match settings.api {
            Api::Grpc => Self::Grpc(GrpcTarget::connect(&settings.endpoint, settings.request.timeout).await?),
            Api::Http => Self::Http(HttpTarget::connect(&settings.endpoint, settings.request.timeout).await?),
        })
    }

    pub async fn recognize(
        &mut self,
        input: &Input,
        request: &RequestSettings,
        progress: &Progress,
    ) -> Result<RecognizeResponse, Failed> {
        match self {
            Self::Grpc(target) => target.recognize(input, request, progress).await,
            Self::Http(target) => target.recognize(input, request, progress).await,
        }
    }
}

/// An error and its causes on one line: hyper's and tonic's errors name only their kind
/// and keep the reason (e.g. "Connection refused") in their sources.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}
