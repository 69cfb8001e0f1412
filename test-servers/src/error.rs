use std::path::PathBuf;

/// Why a test server could not be started or driven. Each names the binary or the log to
/// look at, so a failing test says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    #[error("{binary} is not installed ({reason}); `make setup` installs it")]
    FindBinary { binary: &'static str, reason: String },
    #[error("could not reserve a loopback port: {source}")]
    ReservePort { source: std::io::Error },
    #[error("could not create a directory for {server}: {source}")]
    CreateDirectory { server: &'static str, source: std::io::Error },
    #[error("could not start {}: {source}", binary.display())]
    Spawn { binary: PathBuf, source: std::io::Error },
    #[error("{server} did not answer within {waited_ms} ms; its log ({}) ends with:\n{log_tail}", log.display())]
    NotReady { server: &'static str, waited_ms: u128, log: PathBuf, log_tail: String },
    #[error("{server} exited while starting ({status}); its log ({}) ends with:\n{log_tail}", log.display())]
    ExitedWhileStarting { server: &'static str, status: String, log: PathBuf, log_tail: String },
    #[error("could not signal {server}: {source}")]
    Signal { server: &'static str, source: std::io::Error },
    #[error("could not make {what}: {source}")]
    Certificate { what: &'static str, source: rcgen::Error },
    #[error("could not write {}: {source}", path.display())]
    WriteFile { path: PathBuf, source: std::io::Error },
    #[error("`redis-cli {command}` failed: {reason}")]
    Cli { command: String, reason: String },
    #[error("S3 request `{request}` failed: {reason}; the server's log ({}) ends with:\n{log_tail}", log.display())]
    S3Request { request: String, reason: String, log: PathBuf, log_tail: String },
}
