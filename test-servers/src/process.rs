//! What every test server shares: finding its binary, a free port, a child process that
//! is killed on drop, and the tail of its log for error messages.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;

use rustix::process::{Pid, Signal, kill_process};

use crate::TestServerError;

/// `binary` from `override_var` when set, else from `PATH`.
pub(crate) fn find_binary(binary: &'static str, override_path: Option<PathBuf>) -> Result<PathBuf, TestServerError> {
    if let Some(path) = override_path {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(TestServerError::FindBinary { binary, reason: format!("{} does not exist", path.display()) })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| TestServerError::FindBinary { binary, reason: "not found on PATH".to_owned() })
}

/// A port free on 127.0.0.1 right now. Another process may take it before the server
/// binds it; callers retry a start that fails to bind.
pub(crate) fn free_port() -> Result<u16, TestServerError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| TestServerError::ReservePort { source })?;
    let port = listener.local_addr().map_err(|source| TestServerError::ReservePort { source })?.port();
    Ok(port)
}

pub(crate) fn signal(server: &'static str, child: &Child, signal: Signal) -> Result<(), TestServerError> {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| TestServerError::Signal { server, source: std::io::Error::other("no such pid") })?;
    kill_process(pid, signal).map_err(|errno| TestServerError::Signal { server, source: errno.into() })
}

/// The last lines of a log file, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_else(|error| format!("(unreadable: {error})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
