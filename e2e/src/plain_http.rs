//! One HTTP/1.1 request per connection (`Connection: close`), written by hand: how the
//! scenarios call a pod's or a component's port directly (no client library, no proxy, no
//! connection pool that would hide which pod answered), with the status and the body back.

use std::fmt::Display;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A GET's whole exchange: what scenarios GET (metrics, health, job states) answers at once.
const GET_TIMEOUT: Duration = Duration::from_secs(10);
/// A POST's whole exchange: an OCR call queued behind others on a busy 2-core machine takes
/// a while, and the server's own deadline answers before this.
const POST_TIMEOUT: Duration = Duration::from_secs(120);

/// `GET path` at `host:port`: the status and the body as text.
pub async fn get(host: impl Display, port: u16, path: &str) -> Result<(u16, String), String> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    let (status, body) =
        exchange(&host, port, head.as_bytes(), &[], GET_TIMEOUT).await.map_err(|e| format!("GET {path}: {e}"))?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `POST path` of `body` at `host:port`: the status and the body.
pub async fn post(
    host: impl Display,
    port: u16,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    exchange(&host, port, head.as_bytes(), body, POST_TIMEOUT).await.map_err(|e| format!("POST {path}: {e}"))
}

async fn exchange(
    host: &impl Display,
    port: u16,
    head: &[u8],
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let address = format!("{host}:{port}");
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&address))
        .await
        .map_err(|_| format!("connect {address}: timed out"))?
        .map_err(|e| format!("connect {address}: {e}"))?;
    let response = tokio::time::timeout(timeout, async {
        stream.write_all(head).await?;
        stream.write_all(body).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    })
    .await
    .map_err(|_| format!("{address}: no complete answer within {timeout:?}"))?
    .map_err(|e| format!("{address}: {e}"))?;
    parse_response(&response)
        .ok_or_else(|| format!("{address}: not an HTTP response: {:?}", String::from_utf8_lossy(&response)))
}

/// The status code and the body of a whole response (the body as sent: these servers do
/// not chunk a `Connection: close` answer).
fn parse_response(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, response[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_splits_into_status_and_body() {
        let response =
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\r\n{\"code\":\"overloaded\"}";
        assert_eq!(parse_response(response), Some((429, b"{\"code\":\"overloaded\"}".to_vec())));
        assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\n\r\n"), Some((200, Vec::new())));
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nno end of head"), None);
        assert_eq!(parse_response(b"garbage\r\n\r\n"), None);
    }
}
