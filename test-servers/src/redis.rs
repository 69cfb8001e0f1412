//! Debian's `redis-server`, one per test that needs it.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tempfile::TempDir;

use crate::TestServerError;
use crate::process::{find_binary, free_port, log_tail, signal};
use crate::tls::{self, TlsFiles};

const SERVER: &str = "redis-server";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `requirepass`: clients must AUTH with it.
    pub password: Option<String>,
    /// Serve TLS only (`rediss://`), with a certificate for 127.0.0.1 from a CA of its own
    /// ([`RedisServer::ca_file`]).
    pub tls: bool,
    /// The `redis-server` binary; `None` = the one on `PATH`.
    pub binary: Option<PathBuf>,
    /// The address to listen on and to name in URLs: `None` = 127.0.0.1; one of this
    /// machine's other addresses for clients in other network namespaces, such as a local
    /// cluster's pods. (Not with `tls`, whose certificate names 127.0.0.1.)
    pub listen: Option<Ipv4Addr>,
}

/// A running `redis-server` on 127.0.0.1 (or [`RedisOptions::listen`]), with no persistence, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    binary: PathBuf,
    options: RedisOptions,
    tls: Option<TlsFiles>,
}

impl RedisServer {
    /// A server without a password.
    pub fn start() -> Result<Self, TestServerError> {
        Self::start_with(RedisOptions::default())
    }

    pub fn start_with(options: RedisOptions) -> Result<Self, TestServerError> {
        let binary = find_binary(SERVER, options.binary.clone())?;
        let dir = tempfile::Builder::new()
            .prefix("kube-ocr-redis-")
            .tempdir()
            .map_err(|source| TestServerError::CreateDirectory { server: SERVER, source })?;
        let tls = if options.tls { Some(tls::generate(dir.path())?) } else { None };
        let mut server = Self { child: None, port: 0, dir, binary, options, tls };
        // A port found free may be taken before redis binds it: try a few.
        let mut last_error = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("three attempts were made"))
    }

    /// `redis[s]://[:password@]<address>:<port>`.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => format!("{}://:{password}@{}:{}", self.scheme(), self.address(), self.port),
            None => self.url_without_password(),
        }
    }

    /// The address without credentials (what a client configured with a separate password
    /// is given).
    pub fn url_without_password(&self) -> String {
        format!("{}://{}:{}", self.scheme(), self.address(), self.port)
    }

    fn address(&self) -> Ipv4Addr {
        self.options.listen.unwrap_or(Ipv4Addr::LOCALHOST)
    }

    /// The PEM CA that signed the server's certificate, with [`RedisOptions::tls`].
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().map(|files| files.ca.as_path())
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "rediss" } else { "redis" }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL, as a crashed or deleted Redis: connections reset, the port refuses.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its connections and port but answers nothing, as a Redis
    /// stalled on a fork, a full disk or a partition.
    pub fn pause(&self) -> Result<(), TestServerError> {
        self.signal(Signal::STOP)
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) -> Result<(), TestServerError> {
        self.signal(Signal::CONT)
    }

    /// Starts the server again, empty, on the same port (after [`Self::kill`]).
    pub fn restart(&mut self) -> Result<(), TestServerError> {
        self.kill();
        self.spawn_and_wait()
    }

    /// Runs `redis-cli` against the server and returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> Result<String, TestServerError> {
        let command = args.join(" ");
        let mut cli = Command::new(self.binary.with_file_name("redis-cli"));
        cli.arg("-h").arg(self.address().to_string()).args(["-p", &self.port.to_string(), "--no-auth-warning"]);
        if let Some(files) = &self.tls {
            cli.arg("--tls").arg("--cacert").arg(&files.ca);
        }
        if let Some(password) = &self.options.password {
            cli.args(["-a", password]);
        }
        let output = cli
            .args(args)
            .output()
            .map_err(|error| TestServerError::Cli { command: command.clone(), reason: error.to_string() })?;
        if !output.status.success() {
            let reason = format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr));
            return Err(TestServerError::Cli { command, reason });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn signal(&self, sig: Signal) -> Result<(), TestServerError> {
        match &self.child {
            Some(child) => signal(SERVER, child, sig),
            None => Err(TestServerError::Signal { server: SERVER, source: std::io::Error::other("it is not running") }),
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), TestServerError> {
        let mut command = Command::new(&self.binary);
        command.arg("--bind").arg(self.address().to_string());
        if self.options.listen.is_some() {
            // Without a password, protected mode refuses every client not on the loopback,
            // and those are the clients this address is for.
            command.args(["--protected-mode", "no"]);
        }
        match &self.tls {
            // TLS only: the plain port is closed, clients need no certificate of their own.
            Some(files) => {
                command.args(["--port", "0", "--tls-port", &self.port.to_string(), "--tls-auth-clients", "no"]);
                command.arg("--tls-cert-file").arg(&files.cert).arg("--tls-key-file").arg(&files.key);
                command.arg("--tls-ca-cert-file").arg(&files.ca);
            }
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
        }
        command
            // No persistence: a restarted server is empty, as a lost cache is.
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.options.password {
            command.args(["--requirepass", password]);
        }
        let child = command.spawn().map_err(|source| TestServerError::Spawn { binary: self.binary.clone(), source })?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if self.cli(&["PING"]).is_ok_and(|reply| reply == "PONG") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(TestServerError::ExitedWhileStarting {
                    server: SERVER,
                    status: status.to_string(),
                    log: self.log(),
                    log_tail: log_tail(&self.log()),
                });
            }
            if started.elapsed() > READY_TIMEOUT {
                self.kill();
                return Err(TestServerError::NotReady {
                    server: SERVER,
                    waited_ms: started.elapsed().as_millis(),
                    log: self.log(),
                    log_tail: log_tail(&self.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_pauses_and_restarts_empty() {
        let mut redis = RedisServer::start().unwrap();
        assert_eq!(redis.cli(&["SET", "k", "v"]).unwrap(), "OK");
        assert_eq!(redis.cli(&["GET", "k"]).unwrap(), "v");
        redis.restart().unwrap();
        assert_eq!(redis.cli(&["GET", "k"]).unwrap(), "", "a restarted server is empty");
        redis.kill();
        assert!(redis.cli(&["PING"]).is_err(), "a killed server refuses");
    }

    #[test]
    fn tls_serves_rediss_only() {
        let redis = RedisServer::start_with(RedisOptions { tls: true, ..Default::default() }).unwrap();
        assert!(redis.url().starts_with("rediss://127.0.0.1:"));
        assert_eq!(redis.cli(&["PING"]).unwrap(), "PONG", "redis-cli over TLS with the CA");
        let plain = Command::new("redis-cli").args(["-p", &redis.port().to_string(), "PING"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&plain.stdout).contains("PONG"), "{plain:?}");
        assert!(std::fs::read_to_string(redis.ca_file().unwrap()).unwrap().contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn a_password_is_required_when_set() {
        let redis =
            RedisServer::start_with(RedisOptions { password: Some("s3cret".into()), ..Default::default() }).unwrap();
        assert_eq!(redis.cli(&["PING"]).unwrap(), "PONG");
        let anonymous = Command::new("redis-cli").args(["-p", &redis.port().to_string(), "GET", "k"]).output().unwrap();
        assert!(String::from_utf8_lossy(&anonymous.stdout).contains("NOAUTH"), "{anonymous:?}");
    }
}
