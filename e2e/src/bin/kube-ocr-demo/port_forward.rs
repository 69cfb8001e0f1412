//! `kubectl port-forward`, as a user runs it to reach a Service from their machine: local
//! ports chosen free, ready once kubectl says it forwards each, stopped on drop.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

#[derive(Debug)]
pub struct PortForward {
    child: Child,
    /// The local port for each remote port, in the order given.
    pub local_ports: Vec<u16>,
}

impl PortForward {
    /// Starts `kubectl port-forward -n <namespace> <target> <local>:<remote>...` and waits up
    /// to `timeout` until it forwards every port.
    pub fn start(
        kubectl: &Path,
        kubeconfig: &Path,
        namespace: &str,
        target: &str,
        remote_ports: &[u16],
        timeout: Duration,
    ) -> anyhow::Result<PortForward> {
        let local_ports = remote_ports.iter().map(|_| free_local_port()).collect::<anyhow::Result<Vec<u16>>>()?;
        let mappings: Vec<String> =
            local_ports.iter().zip(remote_ports).map(|(local, remote)| format!("{local}:{remote}")).collect();
        println!("  $ kubectl port-forward -n {namespace} {target} {} &", mappings.join(" "));
        let mut child = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["port-forward", "-n", namespace, target])
            .args(&mappings)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("run {}", kubectl.display()))?;
        let stdout = child.stdout.take().context("kubectl's stdout")?;
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut forward = PortForward { child, local_ports };
        let deadline = Instant::now() + timeout;
        let mut forwarding = 0;
        // kubectl prints "Forwarding from 127.0.0.1:<local> -> <remote>" (and [::1]) per port.
        while forwarding < remote_ports.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) if line.starts_with("Forwarding from 127.0.0.1:") => forwarding += 1,
                Ok(_) => {}
                Err(_) => {
                    let _ = forward.child.kill();
                    let mut stderr = String::new();
                    if let Some(mut pipe) = forward.child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                    }
                    bail!("kubectl port-forward {target} did not forward within {timeout:?}: {}", stderr.trim());
                }
            }
        }
        Ok(forward)
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
