//! `kubectl port-forward`, as a user runs it to reach a Service from their machine: a local
//! port chosen free, ready once kubectl says it forwards, stopped on drop.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

#[derive(Debug)]
pub struct PortForward {
    child: Child,
    pub local_port: u16,
    /// kubectl's stderr.
    log: PathBuf,
}

impl PortForward {
    /// Starts `kubectl port-forward -n <namespace> <target> <local>:<remote>` and waits up to
    /// `timeout` until it forwards.
    pub fn start(
        kubectl: &Path,
        kubeconfig: &Path,
        log: &Path,
        namespace: &str,
        target: &str,
        remote_port: u16,
        timeout: Duration,
    ) -> anyhow::Result<PortForward> {
        let local_port = free_local_port()?;
        let mapping = format!("{local_port}:{remote_port}");
        println!("  $ kubectl port-forward -n {namespace} {target} {mapping} &");
        let mut child = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["port-forward", "-n", namespace, target])
            .arg(&mapping)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(log).with_context(|| format!("create {}", log.display()))?)
            .spawn()
            .with_context(|| format!("run {}", kubectl.display()))?;
        let stdout = child.stdout.take().context("kubectl's stdout")?;
        let (lines, received) = mpsc::channel();
        // Drain stdout for kubectl's whole life: it prints "Handling connection for <port>"
        // per connection, and a closed pipe would kill it (SIGPIPE) on the first one.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut forward = PortForward { child, local_port, log: log.to_owned() };
        let deadline = Instant::now() + timeout;
        // kubectl prints "Forwarding from 127.0.0.1:<local> -> <remote>" (and one for [::1]).
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) if line.starts_with("Forwarding from 127.0.0.1:") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = forward.child.kill();
                    bail!("kubectl port-forward {target} did not forward within {timeout:?}: {}", forward.errors());
                }
            }
        }
        Ok(forward)
    }
}

impl PortForward {
    /// What kubectl reported on stderr so far (errors of forwarded connections).
    pub fn errors(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default().trim().to_owned()
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_local_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free local port")?;
    Ok(listener.local_addr()?.port())
}
