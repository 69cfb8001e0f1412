//! One control-plane component as a child process that cannot outlive us.
//!
//! Each component runs under a tiny bash watchdog whose stdin is a pipe we hold the write end
//! of. The watchdog stops the component (SIGTERM, then SIGKILL after the grace period) when
//! that pipe reaches EOF: either we closed it (an orderly stop) or we died, however we died
//! (panic, Ctrl-C, SIGKILL): the kernel closes a dead process's descriptors, and statics that
//! are never dropped do not matter. That needs no `unsafe` (no `prctl(PR_SET_PDEATHSIG)` in a
//! `pre_exec`), and works for the `make cluster` process and for test binaries alike.
//!
//! The watchdog and its component get their own process group, so a Ctrl-C in the terminal
//! reaches only us; we then stop the components in order. The group is also what we SIGKILL
//! if a watchdog itself hangs.
//!
//! When we die, every watchdog sees EOF at once; to keep the reverse start order anyway
//! (an apiserver whose etcd is gone hangs in graceful shutdown) each one first waits for the
//! components started after it, whose pids are in the run directory as `<order>-<name>.pid`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process};
use tracing::{debug, warn};

use super::ControlPlaneError;

/// `$0` is the component name; `$1` its pidfile, `$2` the grace period in seconds, `$3` the
/// run directory, `$4` its start order, `$5` a directory to remove once the component is gone
/// if we (its parent) died, or empty; the rest is the command. Exits with the component's
/// status. A SIGTERM/SIGINT/SIGHUP to the watchdog also stops the component.
const WATCHDOG: &str = r#"
set -u
pidfile=$1 grace=$2 run_dir=$3 order=$4 orphan_dir=$5
shift 5
"$@" </dev/null &
child=$!
echo "$child" >"$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile"
stop=0 orderly=0 parent_gone=0
trap 'stop=1' TERM INT HUP
wait_gone() {
  local i
  for ((i = 0; i < grace * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
}
while :; do
  read -r -t 1 line
  status=$?
  [[ $status == 0 && $line == stop ]] && orderly=1
  [[ $status == 1 ]] && parent_gone=1
  if (( status > 128 && ! stop )); then
    kill -0 "$child" 2>/dev/null && continue
    break
  fi
  for f in "$run_dir"/*.pid; do
    n=${f##*/}
    n=${n%%-*}
    [[ $n =~ ^[0-9]+$ ]] && (( 10#$n > 10#$order )) || continue
    later=$(<"$f") && wait_gone "$later"
  done
  kill -TERM "$child" 2>/dev/null
  wait_gone "$child"
  kill -KILL "$child" 2>/dev/null && echo "watchdog: $0 ignored SIGTERM for ${grace}s; sent SIGKILL" >&2
  break
done
wait "$child"
status=$?
# EOF without the word "stop" first: the parent died (it may not be a zombie yet, so its
# /proc entry is no test). An orderly stop, or a component that exited by itself, leaves
# the dir to the parent.
if [[ -n $orphan_dir ]] && (( parent_gone && ! orderly )); then
  rm -rf "$orphan_dir"
fi
exit "$status"
"#;

/// What to run and where its traces go.
#[derive(Debug)]
pub(crate) struct ComponentSpec<'a> {
    pub name: &'static str,
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub log: PathBuf,
    pub run_dir: &'a Path,
    /// Position in the start order; later components are stopped first.
    pub order: usize,
    /// How long the component may take to exit after SIGTERM before it gets SIGKILL.
    pub grace: Duration,
    /// Removed by the watchdog after the component if we died: give it to the component
    /// stopped last (the first started) to clean up after a killed test process.
    pub orphan_dir: Option<&'a Path>,
}

/// A running component under its watchdog.
#[derive(Debug)]
pub struct Component {
    name: &'static str,
    watchdog: Child,
    /// Held only to be closed: dropping it is the stop signal.
    stdin: Option<ChildStdin>,
    pid: i32,
    pidfile: PathBuf,
    log: PathBuf,
    grace: Duration,
    exit: Option<ExitStatus>,
}

/// How a component ended.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    pub component: &'static str,
    pub status: String,
    /// It did not exit within the grace period after SIGTERM and was SIGKILLed.
    pub killed: bool,
}

impl Component {
    pub(crate) fn spawn(spec: ComponentSpec<'_>) -> Result<Self, ControlPlaneError> {
        let spawn_error = |reason: String| ControlPlaneError::SpawnComponent { component: spec.name, reason };
        let pidfile = spec.run_dir.join(format!("{:02}-{}.pid", spec.order, spec.name));
        let log = File::create(&spec.log).map_err(|e| spawn_error(format!("create {}: {e}", spec.log.display())))?;
        let log_err = log.try_clone().map_err(|e| spawn_error(format!("{}: {e}", spec.log.display())))?;
        let mut watchdog = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(spec.name)
            .arg(&pidfile)
            .arg(spec.grace.as_secs().max(1).to_string())
            .arg(spec.run_dir)
            .arg(spec.order.to_string())
            .arg(spec.orphan_dir.unwrap_or(Path::new("")))
            .arg(spec.program)
            .args(&spec.args)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| spawn_error(format!("bash {}: {e}", spec.program.display())))?;
        let stdin = watchdog.stdin.take();
        let mut component = Component {
            name: spec.name,
            watchdog,
            stdin,
            pid: 0,
            pidfile,
            log: spec.log,
            grace: spec.grace,
            exit: None,
        };
        component.pid = component.read_pidfile()?;
        debug!(component = component.name, pid = component.pid, log = %component.log.display(), "started");
        Ok(component)
    }

    /// The watchdog writes the component's pid as soon as it has started it.
    fn read_pidfile(&mut self) -> Result<i32, ControlPlaneError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = fs::read_to_string(&self.pidfile).ok().and_then(|text| text.trim().parse().ok()) {
                return Ok(pid);
            }
            if let Some(status) = self.exit_status() {
                return Err(self.exited_error(status));
            }
            if Instant::now() > deadline {
                return Err(ControlPlaneError::SpawnComponent {
                    component: self.name,
                    reason: format!("its watchdog wrote no pid to {} within 10s", self.pidfile.display()),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The component's own pid (not the watchdog's).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The process group of the watchdog and the component.
    pub fn process_group(&self) -> i32 {
        self.watchdog.id() as i32
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// `Some` once the component has exited (its watchdog exits with its status).
    pub(crate) fn exit_status(&mut self) -> Option<String> {
        if self.exit.is_none() {
            self.exit = self.watchdog.try_wait().ok().flatten();
        }
        self.exit.map(describe)
    }

    pub(crate) fn exited_error(&self, status: String) -> ControlPlaneError {
        ControlPlaneError::ComponentExited {
            component: self.name,
            status,
            log: self.log.clone(),
            tail: self.log_tail(30),
        }
    }

    /// The last `lines` lines of the component's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read(&self.log).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
        let all = text.lines().collect::<Vec<_>>();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the component and reaps its watchdog; idempotent. Blocks for at most the grace
    /// period plus a few seconds.
    pub fn stop(&mut self) -> StopOutcome {
        let started = Instant::now();
        // "stop" then EOF on the watchdog's stdin: it sends SIGTERM, and SIGKILL after the
        // grace period; the word tells it we live on (EOF alone means we died).
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let deadline = started + self.grace + Duration::from_secs(5);
        let mut we_killed = false;
        while self.exit_status().is_none() {
            if Instant::now() > deadline {
                warn!(component = self.name, pgid = self.process_group(), "watchdog hangs; killing its process group");
                if let Some(group) = Pid::from_raw(self.process_group()) {
                    let _ = kill_process_group(group, Signal::KILL);
                }
                self.exit = self.watchdog.wait().ok();
                we_killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = fs::remove_file(&self.pidfile);
        let status = self.exit.map(describe).unwrap_or_else(|| "unknown".to_owned());
        let killed = we_killed || self.exit.and_then(|s| s.code()) == Some(128 + 9);
        debug!(component = self.name, %status, killed, elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
        StopOutcome { component: self.name, status, killed }
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a process with this pid exists (EPERM means it does, owned by someone else).
pub fn is_alive(pid: i32) -> bool {
    match Pid::from_raw(pid) {
        Some(pid) => !matches!(test_kill_process(pid), Err(rustix::io::Errno::SRCH)),
        None => false,
    }
}

/// The watchdog reports the component's death by a signal as bash does: 128 + signal.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) if code > 128 => format!("killed by signal {}", code - 128),
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("watchdog killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(dir: &'a Path, name: &'static str, order: usize, script: &str, grace: u64) -> ComponentSpec<'a> {
        ComponentSpec {
            name,
            program: Path::new("bash"),
            args: vec!["-c".into(), script.into()],
            log: dir.join(format!("{name}.log")),
            run_dir: dir,
            order,
            grace: Duration::from_secs(grace),
            orphan_dir: None,
        }
    }

    #[test]
    fn stop_sends_sigterm_and_reaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Component::spawn(spec(
            dir.path(),
            "sleeper",
            0,
            "trap 'echo bye; kill $!; exit 0' TERM; sleep 100 & wait",
            5,
        ))
        .unwrap();
        let pid = c.pid();
        assert!(is_alive(pid));
        let outcome = c.stop();
        assert!(!outcome.killed, "{outcome:?}");
        assert_eq!(outcome.status, "exit code 0");
        assert!(!is_alive(pid));
        assert!(c.log_tail(5).contains("bye"));
        assert!(!dir.path().join("00-sleeper.pid").exists());
    }

    #[test]
    fn a_component_ignoring_sigterm_gets_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let mut c =
            Component::spawn(spec(dir.path(), "stubborn", 0, "trap '' TERM; while :; do sleep 0.1; done", 1)).unwrap();
        let started = Instant::now();
        let outcome = c.stop();
        assert!(outcome.killed, "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(4));
        assert!(!is_alive(c.pid()));
    }

    #[test]
    fn an_early_exit_is_reported_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut c =
            Component::spawn(spec(dir.path(), "crasher", 0, "echo 'listen tcp: address already in use'; exit 3", 1))
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = c.exit_status() {
                break status;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status, "exit code 3");
        assert!(c.exited_error(status).is_port_clash());
    }
}
