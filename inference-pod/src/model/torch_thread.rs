//! Where the process's libtorch calls run: on the calling threads (each stage's worker,
//! the default), or all on one thread (`--torch-thread-mode shared`).
//!
//! libtorch's CPU kernels parallelise with OpenMP (GNU libgomp in the PyTorch wheel), and
//! libgomp gives every thread that starts a parallel region a team of its own. Between
//! regions a team's threads spin for a while and then sleep; once the process has more
//! OpenMP threads than cores, libgomp cuts that spinning to almost nothing, and each of the
//! many small parallel regions in a forward pass then waits for threads to wake. Measured
//! on 2 cores, 2 intra-op threads: the recogniser at 48×320–691 took 25 ms per line from
//! the thread that had made the first libtorch call and 62–68 ms from a second thread; the
//! detector at 736×960, 126 against 193 ms. With a worker thread per stage, each stage has
//! a team, and every forward runs at the slow speed.
//!
//! In shared mode every module load, forward pass and thread setting goes through [`run`],
//! which executes it on one thread with one team, in the order submitted: in one process
//! alone on its cores, forwards run 1.5–3× faster. It is not the default because the same
//! spinning hurts when several processes share the cores (pods without dedicated CPUs, the
//! local cluster's nodes): two such processes on 2 cores took 184–206 ms per recogniser
//! forward against 67–70 ms with teams that do not spin.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::{fmt, str::FromStr};

use crate::model::error::ModelError;

type Job = Box<dyn FnOnce() + Send>;

/// Which threads make the process's libtorch calls (`--torch-thread-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TorchThreadMode {
    /// Each caller (a stage's worker thread) calls libtorch itself.
    #[default]
    PerStage,
    /// One thread makes every call, for a process with its cores to itself.
    Shared,
}

impl FromStr for TorchThreadMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "per-stage" => Ok(Self::PerStage),
            "shared" => Ok(Self::Shared),
            _ => Err(format!("unknown torch thread mode {s:?}: expected per-stage or shared")),
        }
    }
}

impl fmt::Display for TorchThreadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PerStage => "per-stage",
            Self::Shared => "shared",
        })
    }
}

/// Whether [`run`] hands work to the shared thread.
static SHARED: AtomicBool = AtomicBool::new(false);

/// Chooses the mode for the rest of the process. Call it before the first libtorch call:
/// a team made by an earlier caller stays.
pub fn set_torch_thread_mode(mode: TorchThreadMode) {
    SHARED.store(mode == TorchThreadMode::Shared, Ordering::Relaxed);
}

/// The job queue of the thread, started by the first [`run`]; the reason when it could not
/// be started.
static QUEUE: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();

thread_local! {
    static ON_TORCH_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `job` where the mode says: at once on the caller's thread (per-stage), or on the
/// shared libtorch thread, blocking the caller until it returns. A panic in `job` resumes
/// in the caller (the thread carries on). Called from the libtorch thread itself, `job`
/// runs at once.
pub(crate) fn run<R: Send + 'static>(job: impl FnOnce() -> R + Send + 'static) -> Result<R, ModelError> {
    if !SHARED.load(Ordering::Relaxed) || ON_TORCH_THREAD.with(Cell::get) {
        return Ok(job());
    }
    let queue = QUEUE.get_or_init(start).as_ref().map_err(|reason| ModelError::RunOnTorchThread {
        reason: format!("the libtorch thread could not be started: {reason}"),
    })?;
    let (reply, answer) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        // The caller may have gone (its thread panicked); nothing is waiting then.
        let _ = reply.send(catch_unwind(AssertUnwindSafe(job)));
    });
    let gone = || ModelError::RunOnTorchThread { reason: "the libtorch thread has stopped".to_owned() };
    queue.send(job).map_err(|_| gone())?;
    match answer.recv().map_err(|_| gone())? {
        Ok(value) => Ok(value),
        Err(panic) => resume_unwind(panic),
    }
}

fn start() -> Result<mpsc::Sender<Job>, String> {
    let (queue, jobs) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("libtorch".to_owned())
        .spawn(move || {
            ON_TORCH_THREAD.with(|on| on.set(true));
            for job in jobs {
                job();
            }
        })
        .map_err(|error| error.to_string())?;
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_as_the_flag_spells_them() {
        for mode in [TorchThreadMode::PerStage, TorchThreadMode::Shared] {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
        assert!("one".parse::<TorchThreadMode>().unwrap_err().contains("per-stage or shared"));
    }

    #[test]
    fn jobs_from_many_threads_all_run_on_one_thread() {
        // Shared for the rest of this test process: the other tests' calls then also run
        // there, which changes where they run, not what they compute.
        set_torch_thread_mode(TorchThreadMode::Shared);
        let names: Vec<String> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| run(|| std::thread::current().name().map(str::to_owned)).unwrap()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap().unwrap_or_default()).collect()
        });
        assert_eq!(names, vec!["libtorch"; 4]);
        let here = std::thread::current().id();
        assert_ne!(run(move || std::thread::current().id()).unwrap(), here);
    }

    #[test]
    fn a_job_that_runs_jobs_does_not_wait_for_itself() {
        set_torch_thread_mode(TorchThreadMode::Shared);
        assert_eq!(run(|| run(|| 7).unwrap() * 6).unwrap(), 42);
    }

    #[test]
    fn a_panic_reaches_the_caller_and_the_thread_carries_on() {
        set_torch_thread_mode(TorchThreadMode::Shared);
        let caught = std::panic::catch_unwind(|| run(|| -> u8 { panic!("boom") }));
        let payload = caught.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        assert_eq!(run(|| 1 + 1).unwrap(), 2);
    }
}
