//! Container processes: spawned in their own process group (so a wrapper script's children
//! go with it), stdout and stderr appended to the container's log file, stopped with
//! SIGTERM to the group and SIGKILL after the grace period.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::{Child, Command};
use tracing::{debug, warn};

use super::command::Program;
use super::env::Env;
use super::error::NodeAgentError;

/// Every live container process group, so that dropping the agent handle can SIGKILL them
/// all synchronously (a `Drop` cannot await a graceful stop). With a file, the list is also
/// kept there for the [`OrphanGuard`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcessRegistry {
    groups: Arc<Mutex<HashMap<u64, i32>>>,
    next: Arc<AtomicU64>,
    file: Option<Arc<PathBuf>>,
}

impl ProcessRegistry {
    /// A registry that mirrors its process groups into `file`, one per line.
    pub(crate) fn with_file(file: PathBuf) -> Self {
        let registry = Self { file: Some(Arc::new(file)), ..Self::default() };
        registry.write_file(&HashMap::new());
        registry
    }

    fn write_file(&self, groups: &HashMap<u64, i32>) {
        let Some(file) = &self.file else { return };
        let text: String = groups.values().map(|pgid| format!("{pgid}\n")).collect();
        let tmp = file.with_extension("tmp");
        if let Err(error) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, file.as_path())) {
            warn!(file = %file.display(), %error, "cannot write the process group list");
        }
    }

    fn register(&self, pgid: i32) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.insert(id, pgid);
        self.write_file(&groups);
        Registration { registry: self.clone(), id }
    }

    /// SIGKILLs every registered process group.
    pub(crate) fn kill_all(&self) {
        let groups: Vec<i32> = self.groups.lock().unwrap_or_else(PoisonError::into_inner).values().copied().collect();
        for pgid in groups {
            signal_group(pgid, Signal::KILL);
        }
    }

    /// How many process groups are live.
    pub(crate) fn len(&self) -> usize {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[derive(Debug)]
struct Registration {
    registry: ProcessRegistry,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut groups = self.registry.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.remove(&self.id);
        self.registry.write_file(&groups);
    }
}

/// `$1` is the process group file. Waits for EOF on stdin (the agent closed it, or died
/// however it died: the kernel closes a dead process's pipes), then SIGTERMs every listed
/// group, and SIGKILLs those still there 2 s later.
const ORPHAN_GUARD: &str = r#"
trap '' INT HUP TERM
while read -r _; do :; done
[ -s "$1" ] || exit 0
while read -r pg; do kill -TERM -- "-$pg" 2>/dev/null; done <"$1"
for _ in $(seq 20); do
  alive=0
  while read -r pg; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done <"$1"
  [ "$alive" = 0 ] && exit 0
  sleep 0.1
done
while read -r pg; do kill -KILL -- "-$pg" 2>/dev/null; done <"$1"
exit 0
"#;

/// A small bash process that kills the agent's containers if the agent dies without
/// stopping them (SIGKILL, a test binary exiting without dropping its handle): container
/// processes have their own process groups, so nothing else would reach them. No `unsafe`
/// needed (no `prctl(PR_SET_PDEATHSIG)` in a `pre_exec`).
#[derive(Debug)]
pub(crate) struct OrphanGuard {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

impl OrphanGuard {
    pub(crate) fn spawn(groups_file: &Path) -> Result<Self, NodeAgentError> {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("bash")
            .arg("-c")
            .arg(ORPHAN_GUARD)
            .arg("kube-ocr-node-agent-guard")
            .arg(groups_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| NodeAgentError::io("start the orphan guard", "bash", e))?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin })
    }

    /// Ends the guard after an orderly stop (the group file is empty by then).
    pub(crate) fn stop(&mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
}

impl Drop for OrphanGuard {
    fn drop(&mut self) {
        // Closing stdin lets it run over the (by now normally empty) list and exit.
        self.stdin = None;
    }
}

fn signal_group(pgid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pgid)
        && let Err(error) = kill_process_group(pid, signal)
        && error != rustix::io::Errno::SRCH
    {
        warn!(pgid, ?signal, %error, "cannot signal process group");
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The exit code, or 128 + signal number when killed by a signal (as a shell reports it).
    pub code: i32,
    pub signal: Option<i32>,
}

impl Exit {
    pub(crate) fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Self { code, signal: None },
            (None, Some(signal)) => Self { code: 128 + signal, signal: Some(signal) },
            (None, None) => Self { code: 255, signal: None },
        }
    }
}

/// A running container process (the leader of its own process group).
#[derive(Debug)]
pub(crate) struct ContainerProcess {
    child: Child,
    pid: i32,
    exit: Option<Exit>,
    _registration: Registration,
}

impl ContainerProcess {
    /// Starts `program` with exactly `env` (nothing inherited), in `cwd`, appending stdout
    /// and stderr to `log_path` after a header line.
    pub(crate) fn spawn(
        program: &Program,
        env: &Env,
        cwd: &Path,
        log_path: &Path,
        header: &str,
        registry: &ProcessRegistry,
    ) -> Result<Self, NodeAgentError> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| NodeAgentError::io("open log file", log_path, e))?;
        writeln!(log, "{header}").map_err(|e| NodeAgentError::io("write log file", log_path, e))?;
        let stderr = log.try_clone().map_err(|e| NodeAgentError::io("open log file", log_path, e))?;
        let child = Command::new(&program.executable)
            .args(&program.args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| NodeAgentError::io("start", &program.executable, e))?;
        let pid = child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or_default();
        Ok(Self { child, pid, exit: None, _registration: registry.register(pid) })
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the process to exit (cancel-safe), then SIGKILLs what is left of its group.
    pub(crate) async fn wait(&mut self) -> Exit {
        if let Some(exit) = self.exit {
            return exit;
        }
        let exit = match self.child.wait().await {
            Ok(status) => Exit::from_status(status),
            Err(error) => {
                warn!(pid = self.pid, %error, "cannot wait for container process");
                Exit { code: 255, signal: None }
            }
        };
        signal_group(self.pid, Signal::KILL);
        self.exit = Some(exit);
        exit
    }

    /// SIGTERM to the group, SIGKILL after `grace` if the process has not exited.
    pub(crate) async fn stop(&mut self, grace: Duration) -> Exit {
        if let Some(exit) = self.exit {
            return exit;
        }
        debug!(pid = self.pid, grace_seconds = grace.as_secs_f64(), "stopping container process");
        signal_group(self.pid, Signal::TERM);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                debug!(pid = self.pid, "grace period over; SIGKILL");
                signal_group(self.pid, Signal::KILL);
                self.wait().await
            }
        }
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        if self.exit.is_none() {
            signal_group(self.pid, Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(script: &str) -> Program {
        Program { executable: "/bin/sh".into(), args: vec!["-c".into(), script.into()] }
    }

    #[tokio::test]
    async fn logs_exit_codes_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c.log");
        let registry = ProcessRegistry::default();
        let env = vec![("GREETING".to_owned(), "hello".to_owned())];
        let mut process = ContainerProcess::spawn(
            &program("echo $GREETING; pwd; exit 3"),
            &env,
            dir.path(),
            &log,
            "header",
            &registry,
        )
        .unwrap();
        assert_eq!(registry.len(), 1);
        assert_eq!(process.wait().await, Exit { code: 3, signal: None });
        drop(process);
        assert_eq!(registry.len(), 0);
        let text = std::fs::read_to_string(&log).unwrap();
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(text, format!("header\nhello\n{}\n", cwd.display()));
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_and_takes_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ProcessRegistry::default();
        let pidfile = dir.path().join("child.pid");
        // The shell ignores SIGTERM and has a child: both must be gone after stop.
        let script = format!("trap '' TERM; sleep 300 & echo $! > {}; wait", pidfile.display());
        let mut process =
            ContainerProcess::spawn(&program(&script), &vec![], dir.path(), &dir.path().join("l"), "h", &registry)
                .unwrap();
        let child_pid = loop {
            if let Ok(text) = std::fs::read_to_string(&pidfile)
                && let Ok(pid) = text.trim().parse::<i32>()
            {
                break pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let exit = process.stop(Duration::from_millis(300)).await;
        assert_eq!(exit, Exit { code: 137, signal: Some(9) });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while is_running(child_pid) {
            assert!(std::time::Instant::now() < deadline, "the group's child survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Alive and not a zombie (an orphan killed here may wait for a busy init to reap it).
    pub(crate) fn is_running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
            .is_some_and(|zombie| !zombie)
    }

    #[tokio::test]
    async fn sigterm_is_enough_for_a_cooperative_process() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ProcessRegistry::default();
        let mut process = ContainerProcess::spawn(
            &program("exec sleep 300"),
            &vec![],
            dir.path(),
            &dir.path().join("l"),
            "h",
            &registry,
        )
        .unwrap();
        let exit = process.stop(Duration::from_secs(10)).await;
        assert_eq!(exit, Exit { code: 143, signal: Some(15) });
    }

    #[tokio::test]
    async fn kill_all_reaches_every_group() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ProcessRegistry::default();
        let mut process = ContainerProcess::spawn(
            &program("exec sleep 300"),
            &vec![],
            dir.path(),
            &dir.path().join("l"),
            "h",
            &registry,
        )
        .unwrap();
        registry.kill_all();
        assert_eq!(process.wait().await.signal, Some(9));
    }

    #[tokio::test]
    async fn the_orphan_guard_kills_what_is_left_when_its_owner_goes() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ProcessRegistry::with_file(dir.path().join("groups"));
        let mut guard = OrphanGuard::spawn(&dir.path().join("groups")).unwrap();
        let mut process = ContainerProcess::spawn(
            &program("exec sleep 300"),
            &vec![],
            dir.path(),
            &dir.path().join("l"),
            "h",
            &registry,
        )
        .unwrap();
        let listed = std::fs::read_to_string(dir.path().join("groups")).unwrap();
        assert_eq!(listed.trim(), process.pid().to_string());
        // What the kernel does when the agent dies: the guard's stdin closes.
        drop(guard.stdin.take());
        let exit = tokio::time::timeout(Duration::from_secs(10), process.wait()).await.unwrap();
        assert_eq!(exit.signal, Some(15));
        guard.stop();
    }

    #[test]
    fn a_missing_executable_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ProcessRegistry::default();
        let program = Program { executable: "/nonexistent/binary".into(), args: vec![] };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _guard = runtime.enter();
        let error =
            ContainerProcess::spawn(&program, &vec![], dir.path(), &dir.path().join("l"), "h", &registry).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/binary"), "{error}");
    }
}
