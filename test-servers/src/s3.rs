//! SeaweedFS's `weed mini` as the S3-compatible server of the document jobs' tests, one per
//! test that needs it, from the `weed-s3tests` binary `make setup` builds
//! (`tools/build-seaweedfs.sh`). That build has the `s3tests` tag, which makes one
//! lifecycle day 10 s, so an `Expiration.Days = 1` rule really deletes an object within a
//! test ([`S3Server::run_lifecycle`]); docs/jobs-and-autoscaling-plan.md says why SeaweedFS.
//!
//! Requests here are signed by `curl --aws-sigv4`, so tests can set up and check a bucket
//! without the product's own S3 client, the code under test.

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::TestServerError;
use crate::process::{find_binary, log_tail};

const SERVER: &str = "weed-s3tests";

/// The SeaweedFS commit `make setup` builds: the pseudo-version `tools/seaweedfs/go.mod`
/// pins (SeaweedFS tags no module versions). A test below keeps the two in step.
const SEAWEEDFS_VERSION: &str = "v0.0.0-20261109003541-7506e5f91cd6";

/// The admin identity `weed mini` takes from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
const ACCESS_KEY: &str = "kube-ocr-test";
const SECRET_KEY: &str = "kube-ocr-test-secret";
/// SeaweedFS accepts any region in a signature; clients must still name one.
const REGION: &str = "us-east-1";

/// `weed mini` derives every gRPC port as its HTTP port + 10000 (clients such as
/// `weed shell -master=host:port` do the same), so each HTTP port is picked with that one free
/// too.
const GRPC_PORT_OFFSET: u16 = 10_000;
/// HTTP ports come from [10000, 22768), so the gRPC ports stay below Linux's ephemeral range
/// (32768 up): there an outgoing connection of the server's own could take one before it
/// binds it, which `weed mini` warns about.
const PORT_RANGE: std::ops::Range<u16> = 10_000..22_768;

/// A cold `weed mini` (master, volume server, filer, S3 gateway and admin in one process)
/// answers after a few seconds; a loaded machine running tests in parallel is slower.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const BUCKET_TIMEOUT: Duration = Duration::from_secs(30);
const WORKER_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// The SHA-256 of an empty body: the payload hash of a signed request without one.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The ports of one `weed mini`, each pinned so that it never falls back to another one (it
/// does so only for ports left at their default).
#[derive(Debug, Clone, Copy)]
struct Ports {
    master: u16,
    volume: u16,
    filer: u16,
    s3: u16,
    admin: u16,
    /// WebDAV is off, but `weed mini` still checks that its port is free.
    webdav: u16,
}

/// A running `weed mini` on 127.0.0.1 (or [`S3Server::start_on`] an address of this
/// machine's that pods of a local cluster reach) with the S3 gateway, data in a temporary directory,
/// killed on drop. Its admin identity signs every request ([`Self::access_key`]); buckets
/// are not created on upload, as on AWS.
#[derive(Debug)]
pub struct S3Server {
    child: Option<Child>,
    ip: Ipv4Addr,
    ports: Ports,
    dir: TempDir,
    binary: PathBuf,
}

impl S3Server {
    /// Starts the server and waits until its S3 port lists buckets for the admin identity.
    pub fn start() -> Result<Self, TestServerError> {
        Self::start_on(Ipv4Addr::LOCALHOST)
    }

    /// [`Self::start`] listening on `ip` (one of this machine's addresses) instead of the
    /// loopback: for clients in other network namespaces, such as a local cluster's pods.
    pub fn start_on(ip: Ipv4Addr) -> Result<Self, TestServerError> {
        let binary = find_binary(SERVER, Some(binary_path(&cache_root(), SEAWEEDFS_VERSION)))?;
        let dir = tempfile::Builder::new()
            .prefix("kube-ocr-s3-")
            .tempdir()
            .map_err(|source| TestServerError::CreateDirectory { server: SERVER, source })?;
        let ports = pick_ports()?;
        let mut server = Self { child: None, ip, ports, dir, binary };
        // A port found free may be taken before the server binds it: try a few.
        let mut last_error = None;
        for attempt in 0..3 {
            if attempt > 0 {
                server.ports = pick_ports()?;
            }
            match server.spawn_and_wait(attempt) {
                Ok(()) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("three attempts were made"))
    }

    /// `http://<ip>:<s3 port>`: path-style addressing (`<endpoint>/<bucket>/<key>`).
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.ip, self.ports.s3)
    }

    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The region clients sign for.
    pub fn region(&self) -> &str {
        REGION
    }

    /// Creates a bucket and returns once the server serves it (a fresh bucket can trail
    /// its creation for a moment).
    pub fn create_bucket(&self, name: &str) -> Result<(), TestServerError> {
        let path = format!("/{name}");
        let status = self.request("PUT", &path)?;
        if status != 200 {
            return Err(self.request_error(format!("PUT {path}"), format!("HTTP {status}")));
        }
        let started = Instant::now();
        loop {
            let status = self.request("HEAD", &path)?;
            if status == 200 {
                return Ok(());
            }
            if started.elapsed() > BUCKET_TIMEOUT {
                return Err(self.request_error(
                    format!("HEAD {path}"),
                    format!("still HTTP {status} {} ms after the bucket was created", started.elapsed().as_millis()),
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Starts SeaweedFS's lifecycle worker, which deletes what the buckets' lifecycle rules
    /// say is due. A server runs it once a day by default; this one passes over every shard
    /// every 2 s, as upstream's s3-tests CI drives it, until the worker is dropped. Returns
    /// once the worker has connected.
    pub fn run_lifecycle(&self) -> Result<LifecycleWorker, TestServerError> {
        static WORKERS: AtomicU64 = AtomicU64::new(0);
        let log = self.dir.path().join(format!("lifecycle-{}.log", WORKERS.fetch_add(1, Ordering::Relaxed)));
        let log_file =
            std::fs::File::create(&log).map_err(|source| TestServerError::WriteFile { path: log.clone(), source })?;
        let log_err =
            log_file.try_clone().map_err(|source| TestServerError::WriteFile { path: log.clone(), source })?;
        let mut child = Command::new(&self.binary)
            // -debug sends the worker's own log (what it found due, what it deleted) to stderr.
            .args(["shell", "-debug", &format!("-master={}:{}", self.ip, self.ports.master)])
            .stdin(Stdio::piped())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|source| TestServerError::Spawn { binary: self.binary.clone(), source })?;
        // -events 0: every meta-log event up to now in each pass; -runtime: longer than any
        // test; -refresh: the pass interval (the engine reloads the rules each pass).
        let script = format!(
            "s3.lifecycle.run-shard -shards 0-15 -s3 {}:{} -events 0 -runtime 24h -refresh 2s\nexit\n",
            self.ip,
            u32::from(self.ports.s3) + u32::from(GRPC_PORT_OFFSET)
        );
        if let Some(mut stdin) = child.stdin.take() {
            // A shell that cannot take its command has exited: the loop below reports its log.
            let _ = stdin.write_all(script.as_bytes());
        }
        let mut worker = LifecycleWorker { child: Some(child), log };
        // The command prints this once it has dialled the S3 gateway and found the filer.
        let started = Instant::now();
        loop {
            if std::fs::read_to_string(&worker.log).is_ok_and(|text| text.contains("running shards")) {
                return Ok(worker);
            }
            if let Some(child) = worker.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                worker.child = None;
                return Err(TestServerError::ExitedWhileStarting {
                    server: "weed shell s3.lifecycle.run-shard",
                    status: status.to_string(),
                    log: worker.log.clone(),
                    log_tail: log_tail(&worker.log),
                });
            }
            if started.elapsed() > WORKER_TIMEOUT {
                return Err(TestServerError::NotReady {
                    server: "weed shell s3.lifecycle.run-shard",
                    waited_ms: started.elapsed().as_millis(),
                    log: worker.log.clone(),
                    log_tail: log_tail(&worker.log),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether `bucket` holds `key`, by a signed HEAD: `false` on 404, an error on any
    /// other answer but 200.
    pub fn object_exists(&self, bucket: &str, key: &str) -> Result<bool, TestServerError> {
        let path = format!("/{bucket}/{key}");
        match self.request("HEAD", &path)? {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(self.request_error(format!("HEAD {path}"), format!("HTTP {status}"))),
        }
    }

    /// SIGKILL, as a crashed server: connections reset, the port refuses.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            // `weed mini` puts a Unix socket beside each gRPC port at a fixed path in /tmp
            // and never removes it (not even on SIGTERM); these are this server's.
            let ports = self.ports;
            for (service, port) in [
                ("master", ports.master),
                ("volume", ports.volume),
                ("filer", ports.filer),
                ("s3", ports.s3),
                ("admin", ports.admin),
            ] {
                let grpc = u32::from(port) + u32::from(GRPC_PORT_OFFSET);
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{service}-grpc-{grpc}.sock"));
            }
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    /// A signed request without a body; returns the HTTP status.
    fn request(&self, method: &str, path: &str) -> Result<u16, TestServerError> {
        let mut curl = Command::new("curl");
        curl.args(["--silent", "--show-error", "--max-time", "10", "--output", "/dev/null"])
            .args(["--write-out", "%{http_code}"])
            .args(["--aws-sigv4", &format!("aws:amz:{REGION}:s3"), "--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
            // SeaweedFS, like AWS, wants the payload hash as a header; curl signs it.
            .args(["--header", &format!("x-amz-content-sha256: {EMPTY_SHA256}")]);
        if method == "HEAD" {
            curl.arg("--head");
        } else {
            curl.args(["--request", method]);
        }
        let request = format!("{method} {path}");
        let output = curl
            .arg(format!("{}{path}", self.endpoint()))
            .stdin(Stdio::null())
            .output()
            .map_err(|error| self.request_error(request.clone(), format!("could not run curl: {error}")))?;
        let code = String::from_utf8_lossy(&output.stdout);
        match code.trim().parse::<u16>() {
            Ok(status) if status != 0 => Ok(status),
            _ => Err(self.request_error(
                request,
                format!("curl {}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()),
            )),
        }
    }

    fn request_error(&self, request: String, reason: String) -> TestServerError {
        TestServerError::S3Request { request, reason, log: self.log(), log_tail: log_tail(&self.log()) }
    }

    fn spawn_and_wait(&mut self, attempt: usize) -> Result<(), TestServerError> {
        let ports = self.ports;
        // A data directory per attempt: a failed start leaves its state behind.
        let data = self.dir.path().join(format!("data-{attempt}"));
        std::fs::create_dir_all(&data).map_err(|source| TestServerError::CreateDirectory { server: SERVER, source })?;
        let log = self.log();
        let log_file =
            std::fs::File::create(&log).map_err(|source| TestServerError::WriteFile { path: log.clone(), source })?;
        let log_err =
            log_file.try_clone().map_err(|source| TestServerError::WriteFile { path: log.clone(), source })?;
        let mut command = Command::new(&self.binary);
        command
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .arg(format!("-ip={}", self.ip))
            .arg(format!("-ip.bind={}", self.ip))
            .arg(format!("-master.port={}", ports.master))
            .arg(format!("-volume.port={}", ports.volume))
            .arg(format!("-filer.port={}", ports.filer))
            .arg(format!("-s3.port={}", ports.s3))
            .arg(format!("-admin.port={}", ports.admin))
            .arg(format!("-webdav.port={}", ports.webdav))
            // Off: WebDAV, the admin UI and its old port, the Iceberg and Lance catalogs.
            .args(["-webdav=false", "-admin.ui=false", "-admin.port.legacy=0"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            // Its Unix sockets in its own directory rather than /tmp, keyed by port.
            .arg(format!("-filer.localSocket={}", self.dir.path().join(format!("filer-{attempt}.sock")).display()))
            .arg(format!("-s3.localSocket={}", self.dir.path().join(format!("s3-{attempt}.sock")).display()))
            // A missing bucket is an error, as on AWS, not created by the first upload.
            .arg("-s3.autoCreateBucket=false")
            // Tests reach nothing outside the machine.
            .arg("-master.telemetry=false")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        let child = command.spawn().map_err(|source| TestServerError::Spawn { binary: self.binary.clone(), source })?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            // ListBuckets answers once the gateway, the filer behind it and the admin
            // identity are all up.
            if self.request("GET", "/").is_ok_and(|status| status == 200) {
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
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SeaweedFS's lifecycle worker, a `weed shell` process started by
/// [`S3Server::run_lifecycle`]; killed on drop.
#[derive(Debug)]
pub struct LifecycleWorker {
    child: Option<Child>,
    log: PathBuf,
}

impl LifecycleWorker {
    /// Its output: each pass, what it found due and deleted (for a test's failure message).
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for LifecycleWorker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `<cache>/seaweedfs-<version>/bin/weed-s3tests`, where `make setup` puts it.
fn binary_path(cache_root: &Path, version: &str) -> PathBuf {
    cache_root.join(format!("seaweedfs-{version}")).join("bin").join(SERVER)
}

/// `${KUBE_OCR_CACHE:-~/.cache/kube-ocr}`, the cache `make setup` fills (`CACHE` in the
/// Makefile; e2e/src/toolchain.rs reads it the same way).
fn cache_root() -> PathBuf {
    std::env::var_os("KUBE_OCR_CACHE")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kube-ocr"))
}

/// Six HTTP ports, each free on 127.0.0.1 with its gRPC port (+10000) right now, and none
/// handed to another server of this process (whose `weed mini` may not have bound them yet).
/// Another process may still take one first; [`S3Server::start`] then tries again.
fn pick_ports() -> Result<Ports, TestServerError> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut picked = Vec::with_capacity(6);
    let span = u64::from(PORT_RANGE.end - PORT_RANGE.start);
    let mut tries = 0;
    while picked.len() < 6 {
        tries += 1;
        if tries > 10_000 {
            return Err(TestServerError::ReservePort {
                source: std::io::Error::other(format!("no free port pairs (port, port + 10000) in {PORT_RANGE:?}")),
            });
        }
        let port = PORT_RANGE.start + u16::try_from(random() % span).expect("the span fits a port");
        let grpc = port + GRPC_PORT_OFFSET;
        let taken = |candidate: u16| handed_out.contains(&candidate) || picked.contains(&candidate);
        if taken(port) || taken(grpc) || !bindable(port) || !bindable(grpc) {
            continue;
        }
        handed_out.insert(port);
        handed_out.insert(grpc);
        picked.push(port);
    }
    Ok(Ports {
        master: picked[0],
        volume: picked[1],
        filer: picked[2],
        s3: picked[3],
        admin: picked[4],
        webdav: picked[5],
    })
}

fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A random number: std's hasher keys are random per process, the counter differs per call.
fn random() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_cached_per_version() {
        let root = Path::new("/cache/kube-ocr");
        assert_eq!(
            binary_path(root, "v0.0.0-20261109003541-7506e5f91cd6"),
            Path::new("/cache/kube-ocr/seaweedfs-v0.0.0-20261109003541-7506e5f91cd6/bin/weed-s3tests")
        );
    }

    #[test]
    fn the_pinned_version_is_the_one_the_go_module_builds() {
        let go_mod = include_str!("../../tools/seaweedfs/go.mod");
        let pinned = go_mod
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.len() >= 2 && words[0] == "github.com/seaweedfs/seaweedfs")
            .map(|words| words[1].to_owned());
        assert_eq!(pinned.as_deref(), Some(SEAWEEDFS_VERSION), "tools/seaweedfs/go.mod pins another commit");
    }

    #[test]
    fn ports_leave_their_grpc_port_free_and_below_the_ephemeral_range() {
        let first = pick_ports().unwrap();
        let second = pick_ports().unwrap();
        let all: Vec<u16> = [first, second]
            .iter()
            .flat_map(|ports| [ports.master, ports.volume, ports.filer, ports.s3, ports.admin, ports.webdav])
            .collect();
        let with_grpc: BTreeSet<u16> = all.iter().flat_map(|&port| [port, port + GRPC_PORT_OFFSET]).collect();
        assert_eq!(with_grpc.len(), all.len() * 2, "no port, nor its gRPC port, is handed out twice: {all:?}");
        assert!(with_grpc.iter().all(|&port| port < 32_768), "{with_grpc:?}");
    }
}
