//! One container's life: start the process, run its probes, report its state, restart it
//! per restartPolicy with the crash-loop back-off, stop it when the pod goes away.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::backoff::{Backoff, RestartPolicy};
use super::command::Program;
use super::env::Env;
use super::pod_state::{PodShared, Slot};
use super::probe::{ProbeEffect, ProbeKind, ProbeSettings, ProbeTracker};
use super::probe_exec::{ProbeTarget, run_probe};
use super::process::{ContainerProcess, Exit, ProcessRegistry};
use super::status::{ContainerState, Termination};

/// Everything needed to start a container, resolved once per pod.
#[derive(Debug, Clone)]
pub(crate) struct PreparedContainer {
    pub name: String,
    pub program: Program,
    pub env: Env,
    pub cwd: PathBuf,
    pub log_path: PathBuf,
    pub startup: Option<Probe>,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    pub probe_target: Arc<ProbeTarget>,
    /// Grace period of a kill after a failed liveness/startup probe.
    pub probe_kill_grace: Duration,
}

/// What a container runner shares with its pod.
#[derive(Debug, Clone)]
pub(crate) struct RunnerContext {
    pub shared: Arc<PodShared>,
    pub registry: ProcessRegistry,
    pub backoff: Backoff,
    pub policy: RestartPolicy,
    /// `namespace/name`, for logs and messages.
    pub pod: String,
    pub pod_name: String,
    /// `Some(grace)` once the pod is being stopped.
    pub stop: watch::Receiver<Option<Duration>>,
}

/// How a runner ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunOutcome {
    /// The container exited and is not restarted.
    Exited(i32),
    /// The pod is being stopped.
    Stopped,
}

/// Resolves when a stop is requested (or the pod worker is gone); yields the grace period.
pub(crate) async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match stop.wait_for(Option::is_some).await {
        Ok(grace) => grace.unwrap_or_default(),
        Err(_) => Duration::ZERO,
    }
}

fn requested(stop: &watch::Receiver<Option<Duration>>) -> bool {
    stop.borrow().is_some()
}

/// Runs the container in `slot` until it is finished for good or the pod is stopped.
pub(crate) async fn run_container(mut ctx: RunnerContext, slot: Slot, spec: Arc<PreparedContainer>) -> RunOutcome {
    let init = matches!(slot, Slot::Init(_));
    let mut crashes = 0u32;
    let mut run = 0u32;
    loop {
        if requested(&ctx.stop) {
            return RunOutcome::Stopped;
        }
        run += 1;
        let started_at = Timestamp::now();
        let started = Instant::now();
        let header = format!(
            "==> kube-ocr-node-agent: {started_at} container {} of pod {}, run {run}: {} {}",
            spec.name,
            ctx.pod,
            spec.program.executable.display(),
            spec.program.args.join(" ")
        );
        let termination = match ContainerProcess::spawn(
            &spec.program,
            &spec.env,
            &spec.cwd,
            &spec.log_path,
            &header,
            &ctx.registry,
        ) {
            Err(error) => {
                warn!(pod = %ctx.pod, container = %spec.name, %error, "container failed to start");
                Termination {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(error.to_string()),
                    started_at: None,
                    finished_at: Timestamp::now(),
                    container_id: None,
                }
            }
            Ok(mut process) => {
                let container_id = format!("kube-ocr://{}", process.pid());
                info!(
                    pod = %ctx.pod, container = %spec.name, pid = process.pid(), run,
                    log = %spec.log_path.display(), "container started"
                );
                let no_startup = spec.startup.is_none();
                let no_readiness = spec.readiness.is_none();
                ctx.shared.update(slot, |c| {
                    c.state = ContainerState::Running { started_at };
                    c.container_id = Some(container_id.clone());
                    c.started = no_startup;
                    c.ready = no_startup && no_readiness && !init;
                });
                let (exit, message) = supervise(&mut ctx, slot, &spec, &mut process, started).await;
                info!(pod = %ctx.pod, container = %spec.name, pid = process.pid(), exit_code = exit.code, "container exited");
                Termination {
                    exit_code: exit.code,
                    signal: exit.signal,
                    reason: Termination::reason_for(exit.code).into(),
                    message,
                    started_at: Some(started_at),
                    finished_at: Timestamp::now(),
                    container_id: Some(container_id),
                }
            }
        };
        let exit_code = termination.exit_code;
        let stopping = requested(&ctx.stop);
        let restart =
            !stopping && if init { ctx.policy.restarts_init(exit_code) } else { ctx.policy.restarts(exit_code) };
        if !restart {
            ctx.shared.update(slot, |c| {
                c.state = ContainerState::Terminated(termination);
                c.started = false;
                c.ready = false;
            });
            return if stopping { RunOutcome::Stopped } else { RunOutcome::Exited(exit_code) };
        }
        crashes = ctx.backoff.next_crash_count(crashes, started.elapsed());
        let delay = ctx.backoff.delay(crashes);
        let message =
            format!("back-off {}s restarting failed container={} pod={}", delay.as_secs_f64(), spec.name, ctx.pod_name);
        info!(pod = %ctx.pod, container = %spec.name, exit_code, delay_seconds = delay.as_secs_f64(), "container will restart");
        ctx.shared.update(slot, |c| {
            c.state = ContainerState::Waiting { reason: "CrashLoopBackOff".into(), message: Some(message) };
            c.last_termination = Some(termination);
            c.restart_count += 1;
            c.started = false;
            c.ready = false;
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop_requested(&mut ctx.stop) => return RunOutcome::Stopped,
        }
    }
}

type ProbeResult = (ProbeKind, Result<(), String>);

/// Watches a running process: its exit, its probes, a stop request. Returns how it ended
/// and, when the agent killed it for a probe, why.
async fn supervise(
    ctx: &mut RunnerContext,
    slot: Slot,
    spec: &PreparedContainer,
    process: &mut ContainerProcess,
    started: Instant,
) -> (Exit, Option<String>) {
    let (results_tx, mut results) = mpsc::channel::<ProbeResult>(16);
    let mut probes = JoinSet::new();
    let mut trackers: Vec<ProbeTracker> = Vec::new();
    let start_probe =
        |kind: ProbeKind, probe: &Option<Probe>, probes: &mut JoinSet<()>, trackers: &mut Vec<ProbeTracker>| {
            if let Some(probe) = probe {
                let settings = ProbeSettings::of(kind, probe);
                trackers.push(ProbeTracker::new(kind, settings));
                probes.spawn(probe_loop(
                    kind,
                    probe.clone(),
                    settings,
                    spec.probe_target.clone(),
                    started,
                    results_tx.clone(),
                ));
            }
        };
    if spec.startup.is_some() {
        start_probe(ProbeKind::Startup, &spec.startup, &mut probes, &mut trackers);
    } else {
        start_probe(ProbeKind::Readiness, &spec.readiness, &mut probes, &mut trackers);
        start_probe(ProbeKind::Liveness, &spec.liveness, &mut probes, &mut trackers);
    }
    loop {
        tokio::select! {
            exit = process.wait() => return (exit, None),
            grace = stop_requested(&mut ctx.stop) => return (process.stop(grace).await, None),
            Some((kind, result)) = results.recv() => {
                if let Err(reason) = &result {
                    debug!(pod = %ctx.pod, container = %spec.name, probe = kind.as_str(), %reason, "probe failed");
                }
                let Some(tracker) = trackers.iter_mut().find(|t| t.kind() == kind) else { continue };
                match tracker.record(result.is_ok()) {
                    None => {}
                    Some(ProbeEffect::Started) => {
                        info!(pod = %ctx.pod, container = %spec.name, "startup probe succeeded");
                        let no_readiness = spec.readiness.is_none();
                        ctx.shared.update(slot, |c| {
                            c.started = true;
                            c.ready = no_readiness;
                        });
                        start_probe(ProbeKind::Readiness, &spec.readiness, &mut probes, &mut trackers);
                        start_probe(ProbeKind::Liveness, &spec.liveness, &mut probes, &mut trackers);
                    }
                    Some(ProbeEffect::Ready(ready)) => {
                        info!(pod = %ctx.pod, container = %spec.name, ready, "readiness changed");
                        ctx.shared.update(slot, |c| c.ready = ready && c.started);
                    }
                    Some(ProbeEffect::Restart) => {
                        let reason = result.err().unwrap_or_default();
                        let message = format!("Container {} failed {} probe, will be restarted: {reason}", spec.name, kind.as_str());
                        warn!(pod = %ctx.pod, container = %spec.name, probe = kind.as_str(), %reason, "probe failed; killing the container");
                        return (process.stop(spec.probe_kill_grace).await, Some(message));
                    }
                }
            }
        }
    }
}

/// Runs one probe every period from `started + initialDelay` and reports each result.
async fn probe_loop(
    kind: ProbeKind,
    probe: Probe,
    settings: ProbeSettings,
    target: Arc<ProbeTarget>,
    started: Instant,
    results: mpsc::Sender<ProbeResult>,
) {
    tokio::time::sleep_until(started + settings.initial_delay).await;
    let mut ticks = tokio::time::interval(settings.period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let result = run_probe(&probe, &target, settings.timeout).await;
        if results.send((kind, result)).await.is_err() {
            return;
        }
    }
}
