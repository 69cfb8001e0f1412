//! The HTTP API: `POST {url}/v1/ocr` with the file as the raw body (its Content-Type from
//! its first bytes) and the options as query fields; the JSON answer or error read back.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::ProgressBar;
use kube_ocr_proto::v1::{RecognizeResponse, Task};

use crate::cli::RequestSettings;
use crate::http_json::{error_reason, parse_response};
use crate::input::Input;
use crate::progress::Progress;
use crate::target::{Failed, GRACE, with_causes};

/// Largest answer read (a document's JSON with word boxes can be large).
const MAX_ANSWER: usize = 256 << 20;

pub struct HttpTarget {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port[/prefix]/v1/ocr`.
    url: String,
}

impl HttpTarget {
    /// Checks the URL and that its host takes connections (so a wrong address is one
    /// clear error, as with gRPC, not one per file); requests make their own connections.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let target = Self::new(url)?;
        let uri: Uri = url.parse()?;
        let address = format!("{}:{}", uri.host().unwrap_or_default(), uri.port_u16().unwrap_or(80));
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(_)) => Ok(target),
            Ok(Err(error)) => anyhow::bail!("connecting to {address} ({url}): {error}"),
            Err(_) => anyhow::bail!("connecting to {address} ({url}): no connection within {} ms", timeout.as_millis()),
        }
    }

    fn new(url: &str) -> anyhow::Result<Self> {
        let uri = url.parse::<Uri>().map_err(|error| anyhow::anyhow!("--endpoint: {url} is not a URL: {error}"))?;
        anyhow::ensure!(uri.host().is_some_and(|host| !host.is_empty()), "--endpoint: {url} names no host");
        Ok(Self { client: Client::builder(TokioExecutor::new()).build_http(), url: url.to_owned() })
    }

    pub async fn recognize(
        &self,
        input: &Input,
        settings: &RequestSettings,
        progress: &Progress,
    ) -> Result<RecognizeResponse, Failed> {
        let url = format!("{}?{}", self.url, query(&input.request_id, settings));
        let request = Request::post(&url)
            .header(CONTENT_TYPE, input.format.media_type())
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::from(input.bytes.clone())))
            .map_err(|error| Failed::new(format!("POST {url}: {error}")))?;
        let spinner = if input.format.may_have_pages() { progress.spinner("reading") } else { ProgressBar::hidden() };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| {
                // Connected, but no HTTP/1.1 answer: most likely a gRPC (HTTP/2-only) port.
                let hint = if error.is_connect() { "" } else { " (is it the HTTP API's port? gRPC takes --api grpc)" };
                format!("POST {}: {}{hint}", self.url, with_causes(&error))
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|error| format!("POST {}: reading the answer: {}", self.url, with_causes(error.as_ref())))?;
            Ok::<_, String>((parts.status, body.to_bytes()))
        };
        let answered = tokio::time::timeout(settings.timeout + GRACE, exchange).await;
        progress.remove(&spinner);
        let (status, body) = match answered {
            Ok(Ok(answer)) => answer,
            Ok(Err(reason)) => return Err(Failed::new(reason)),
            Err(_) => {
                return Err(Failed::new(format!(
                    "DEADLINE_EXCEEDED: no answer from {} within {} ms (--timeout-ms) and {} s more",
                    self.url,
                    settings.timeout.as_millis(),
                    GRACE.as_secs()
                )));
            }
        };
        if !status.is_success() {
            return Err(Failed::new(error_reason(status.as_u16(), status.canonical_reason().unwrap_or(""), &body)));
        }
        parse_response(&body)
            .map_err(|error| Failed::new(format!("the answer of {} is not the API's JSON: {error}", self.url)))
    }
}

/// The query string: the task and timeout always, the other options when they are not
/// their defaults (so a server that predates a field only hears of it when it is used).
fn query(request_id: &str, settings: &RequestSettings) -> String {
    let options = &settings.options;
    let task = if settings.task == Task::Line { "line" } else { "document" };
    let mut fields: Vec<(&str, String)> = vec![("task", task.to_owned())];
    if options.min_confidence > 0.0 {
        fields.push(("min_confidence", options.min_confidence.to_string()));
    }
    for (name, value) in
        [("first_page", options.first_page), ("last_page", options.last_page), ("pdf_dpi", options.pdf_dpi)]
    {
        if value > 0 {
            fields.push((name, value.to_string()));
        }
    }
    if options.pdf_text_layer {
        fields.push(("pdf_text_layer", "true".to_owned()));
    }
    if !request_id.is_empty() {
        fields.push(("request_id", request_id.to_owned()));
    }
    fields.push(("timeout_ms", settings.timeout.as_millis().to_string()));
    // Plain strings always encode.
    serde_urlencoded::to_string(&fields).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use kube_ocr_proto::v1::RecognizeOptions;

    use super::*;

    #[test]
    fn options_go_in_the_query_under_the_apis_names() {
        let mut settings = RequestSettings {
            task: Task::Document,
            options: RecognizeOptions::default(),
            timeout: Duration::from_millis(1500),
        };
        assert_eq!(query("", &settings), "task=document&timeout_ms=1500");
        settings.task = Task::Line;
        settings.options = RecognizeOptions {
            min_confidence: 0.5,
            first_page: 2,
            last_page: 4,
            pdf_dpi: 150,
            pdf_text_layer: true,
            ..Default::default()
        };
        assert_eq!(
            query("scan 1&2.pdf", &settings),
            "task=line&min_confidence=0.5&first_page=2&last_page=4&pdf_dpi=150&pdf_text_layer=true\
             &request_id=scan+1%262.pdf&timeout_ms=1500"
        );
    }

    #[test]
    fn a_bad_url_is_refused_up_front() {
        assert!(HttpTarget::new("http://bad host/v1/ocr").is_err());
        assert!(HttpTarget::new("http://127.0.0.1:8000/v1/ocr").is_ok());
    }

    #[tokio::test]
    async fn an_address_that_takes_no_connections_is_one_error() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let url = format!("http://{free}/v1/ocr");
        let error = HttpTarget::connect(&url, Duration::from_secs(5)).await.err().unwrap().to_string();
        assert!(error.starts_with(&format!("connecting to {free} ({url}): ")), "{error}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = format!("http://{}/v1/ocr", listener.local_addr().unwrap());
        assert!(HttpTarget::connect(&open, Duration::from_secs(5)).await.is_ok());
    }
}
