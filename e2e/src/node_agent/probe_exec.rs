//! Running one probe: httpGet (plain HTTP/1.1 GET, 200–399 is success), tcpSocket
//! (connect), grpc (`grpc.health.v1.Health/Check`, SERVING is success) and exec (exit 0),
//! each against the pod's own IP unless the probe names a host.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::env::Env;
use super::expand::expand_with;
use super::volumes::{Mount, rewrite_paths};

/// What probes of one container run against.
#[derive(Debug, Clone)]
pub(crate) struct ProbeTarget {
    pub pod_ip: Ipv4Addr,
    pub ports: Vec<ContainerPort>,
    /// For exec probes.
    pub env: Env,
    pub cwd: PathBuf,
    pub mounts: Vec<Mount>,
}

/// A probe's port: a number, or the name of one of the container's ports.
pub(crate) fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(number) => number,
            Err(_) => ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("the container has no port named {name:?}"))?,
        },
    };
    u16::try_from(number).ok().filter(|n| *n > 0).ok_or_else(|| format!("invalid port {number}"))
}

/// The request line and headers of an HTTP probe.
pub(crate) fn http_request(path: &str, authority: &str, headers: &[(String, String)]) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("host") {
        request.push_str(&format!("Host: {authority}\r\n"));
    }
    if !has("user-agent") {
        request.push_str(&format!("User-Agent: kube-probe/{}\r\n", super::node::agent_version()));
    }
    if !has("accept") {
        request.push_str("Accept: */*\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    request
}

/// The status code of an HTTP response's status line (`HTTP/1.x NNN ...`).
pub(crate) fn parse_status_code(response: &[u8]) -> Option<u16> {
    let line_end =
        response.windows(2).position(|w| w == b"\r\n").or_else(|| response.iter().position(|b| *b == b'\n'))?;
    let line = std::str::from_utf8(&response[..line_end]).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|version| version.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// Runs `probe` once with its timeout; `Err` carries why it failed.
pub(crate) async fn run_probe(probe: &Probe, target: &ProbeTarget, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, run_probe_inner(probe, target, timeout)).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {}s", timeout.as_secs_f64())),
    }
}

async fn run_probe_inner(probe: &Probe, target: &ProbeTarget, timeout: Duration) -> Result<(), String> {
    if let Some(http) = &probe.http_get {
        if http.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS")) {
            return Err("HTTPS probes are not supported by the local node agent".into());
        }
        let host = http.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.to_string());
        let port = resolve_port(&http.port, &target.ports)?;
        let headers: Vec<(String, String)> =
            http.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
        let mut stream =
            TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let request = http_request(http.path.as_deref().unwrap_or("/"), &format!("{host}:{port}"), &headers);
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("send request: {e}"))?;
        let mut response = Vec::with_capacity(1024);
        let mut buffer = [0u8; 1024];
        let code = loop {
            if let Some(code) = parse_status_code(&response) {
                break code;
            }
            let read = stream.read(&mut buffer).await.map_err(|e| format!("read response: {e}"))?;
            if read == 0 || response.len() > 10 * 1024 {
                return Err("no HTTP status line in the response".into());
            }
            response.extend_from_slice(&buffer[..read]);
        };
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.to_string());
        let port = resolve_port(&tcp.port, &target.ports)?;
        TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
        return Ok(());
    }
    if let Some(grpc) = &probe.grpc {
        let port = u16::try_from(grpc.port).map_err(|_| format!("invalid port {}", grpc.port))?;
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}:{port}", target.pod_ip))
            .map_err(|e| e.to_string())?
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = endpoint.connect().await.map_err(|e| format!("connect {}:{port}: {e}", target.pod_ip))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest { service: grpc.service.clone().unwrap_or_default() })
            .await
            .map_err(|status| format!("health check: {}: {}", status.code(), status.message()))?;
        let status = response.into_inner().status;
        return if status == ServingStatus::Serving as i32 {
            Ok(())
        } else {
            Err(format!(
                "service unhealthy ({})",
                ServingStatus::try_from(status).map_or("unknown", |s| s.as_str_name())
            ))
        };
    }
    if let Some(exec) = &probe.exec {
        let command: Vec<String> = exec
            .command
            .iter()
            .flatten()
            .map(|c| rewrite_paths(&expand_with(c, &target.env), &target.mounts))
            .collect();
        let Some((program, args)) = command.split_first() else { return Err("exec probe without a command".into()) };
        let output = tokio::process::Command::new(program)
            .args(args)
            .env_clear()
            .envs(target.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&target.cwd)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("run {program}: {e}"))?;
        return if output.status.success() {
            Ok(())
        } else {
            let stdout = String::from_utf8_lossy(&output.stdout);
            Err(format!("command failed ({}): {}", output.status, stdout.trim()))
        };
    }
    Err("the probe has no httpGet, tcpSocket, grpc or exec handler".into())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, TCPSocketAction};
    use tokio::net::TcpListener;

    use super::*;

    fn target() -> ProbeTarget {
        ProbeTarget {
            pod_ip: Ipv4Addr::LOCALHOST,
            ports: vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }],
            env: vec![("CODE".into(), "0".into())],
            cwd: std::env::temp_dir(),
            mounts: vec![],
        }
    }

    #[test]
    fn ports_by_number_or_name() {
        let ports = target().ports;
        assert_eq!(resolve_port(&IntOrString::Int(9000), &ports), Ok(9000));
        assert_eq!(resolve_port(&IntOrString::String("http".into()), &ports), Ok(8080));
        assert_eq!(resolve_port(&IntOrString::String("8081".into()), &ports), Ok(8081));
        assert!(resolve_port(&IntOrString::String("grpc".into()), &ports).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &ports).is_err());
    }

    #[test]
    fn request_and_status_line() {
        let request = http_request("healthz", "127.0.1.1:8080", &[("X-Probe".into(), "1".into())]);
        assert!(request.starts_with("GET /healthz HTTP/1.1\r\nHost: 127.0.1.1:8080\r\n"), "{request}");
        assert!(request.contains("X-Probe: 1\r\n") && request.ends_with("Connection: close\r\n\r\n"));
        let custom_host = http_request("/", "a:1", &[("host".into(), "b".into())]);
        assert!(!custom_host.contains("Host: a:1") && custom_host.contains("host: b"));
        assert_eq!(parse_status_code(b"HTTP/1.0 200 OK\r\nServer: x\r\n"), Some(200));
        assert_eq!(parse_status_code(b"HTTP/1.1 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(parse_status_code(b"HTTP/1.1 404\n"), Some(404));
        assert_eq!(parse_status_code(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status_code(b"SSH-2.0\r\n"), None);
    }

    async fn serve_once(listener: TcpListener, response: &'static str) {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 1024];
        let _ = socket.read(&mut buffer).await.unwrap();
        socket.write_all(response.as_bytes()).await.unwrap();
    }

    fn http_probe(port: u16) -> Probe {
        Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(port.into()),
                path: Some("/ready".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn http_probes_succeed_below_400() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve_once(listener, "HTTP/1.1 204 No Content\r\n\r\n"));
        assert_eq!(run_probe(&http_probe(port), &target(), Duration::from_secs(5)).await, Ok(()));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve_once(listener, "HTTP/1.1 500 Oops\r\n\r\n"));
        let error = run_probe(&http_probe(port), &target(), Duration::from_secs(5)).await.unwrap_err();
        assert!(error.contains("500"), "{error}");
    }

    #[tokio::test]
    async fn tcp_and_timeouts() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(port.into()), host: None }),
            ..Default::default()
        };
        assert_eq!(run_probe(&tcp, &target(), Duration::from_secs(5)).await, Ok(()));
        // Accepts but never answers: the HTTP probe times out.
        let error = run_probe(&http_probe(port), &target(), Duration::from_millis(200)).await.unwrap_err();
        assert!(error.contains("timed out"), "{error}");
        // A bound socket that does not listen: connections are refused.
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        let refused = Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(closed_port.into()), host: None }),
            ..Default::default()
        };
        assert!(run_probe(&refused, &target(), Duration::from_secs(5)).await.is_err());
        drop(listener);
    }

    #[tokio::test]
    async fn exec_probes_use_the_container_env() {
        let exec = |script: &str| Probe {
            exec: Some(ExecAction { command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]) }),
            ..Default::default()
        };
        assert_eq!(run_probe(&exec("exit $CODE"), &target(), Duration::from_secs(5)).await, Ok(()));
        assert!(run_probe(&exec("exit 1"), &target(), Duration::from_secs(5)).await.is_err());
        assert!(
            run_probe(&exec("sleep 5"), &target(), Duration::from_millis(200)).await.unwrap_err().contains("timed out")
        );
    }

    #[tokio::test]
    async fn grpc_probes_ask_the_health_service() {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("ocr", tonic_health::ServingStatus::NotServing).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let incoming = tokio_stream_from(listener);
        tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming));
        let probe = |service: Option<&str>| Probe {
            grpc: Some(k8s_openapi::api::core::v1::GRPCAction { port: port.into(), service: service.map(Into::into) }),
            ..Default::default()
        };
        assert_eq!(run_probe(&probe(None), &target(), Duration::from_secs(5)).await, Ok(()));
        let error = run_probe(&probe(Some("ocr")), &target(), Duration::from_secs(5)).await.unwrap_err();
        assert!(error.contains("NOT_SERVING"), "{error}");
        reporter.set_service_status("ocr", tonic_health::ServingStatus::Serving).await;
        assert_eq!(run_probe(&probe(Some("ocr")), &target(), Duration::from_secs(5)).await, Ok(()));
    }

    fn tokio_stream_from(
        listener: TcpListener,
    ) -> impl futures::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
        futures::stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await.map(|(socket, _)| socket);
            Some((accepted, listener))
        })
    }
}
