//! What the namespace holders (a node's, the bridge's) share: each writes a file once its
//! namespace is set up, and its log says why when it exits first.

use std::path::Path;
use std::time::{Duration, Instant};

use super::NodeError;
use crate::control_plane::Component;

/// Waits until `holder` has written `ready`, failing with its log tail if it exits first or
/// takes longer than `timeout`.
pub(crate) fn wait_for_ready_file(
    holder: &mut Component,
    process: &'static str,
    ready: &Path,
    timeout: Duration,
) -> Result<(), NodeError> {
    let started = Instant::now();
    while !ready.exists() {
        if let Some(status) = holder.exit_status() {
            return Err(NodeError::Exited { process, status, log: holder.log().to_owned(), tail: holder.log_tail(20) });
        }
        if started.elapsed() > timeout {
            return Err(NodeError::NotReady {
                process,
                waited: started.elapsed(),
                last_error: format!("no {}", ready.display()),
                log: holder.log().to_owned(),
                tail: holder.log_tail(20),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
