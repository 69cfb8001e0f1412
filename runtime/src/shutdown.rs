//! SIGTERM (the kubelet stopping a pod) and SIGINT (Ctrl-C) as one shutdown request.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Handlers for SIGTERM and SIGINT, installed before the server starts so that a signal
/// arriving during start-up (model loading takes seconds) is a shutdown request and not
/// the default action, which would kill the process without draining.
#[derive(Debug)]
pub struct ShutdownSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignals {
    /// Installs the handlers. Needs a running tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
    }

    /// Waits for the first of the two and returns its name (`SIGTERM` or `SIGINT`).
    pub async fn received(mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sigterm_is_a_shutdown_request_not_the_end_of_the_process() {
        let signals = ShutdownSignals::install().unwrap();
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM).unwrap();
        let name = tokio::time::timeout(Duration::from_secs(10), signals.received()).await.unwrap();
        assert_eq!(name, "SIGTERM");
    }
}
