//! The one thread that makes the process's libtorch calls.
//!
//! libtorch's CPU kernels parallelise with OpenMP (GNU libgomp in the PyTorch wheel), and
//! libgomp gives every thread that starts a parallel region a team of its own. Between
//! regions a team's threads spin for a while and then sleep; once the process has more
//! OpenMP threads than cores, libgomp cuts that spinning to almost nothing, and every one
//! of the thousands of small parallel regions in a forward pass then waits for threads to
//! wake. Measured on 2 cores, 2 intra-op threads: the recogniser at 48×320–691 took 25 ms
//! per line from the thread that had made the first libtorch call and 62–68 ms from a
//! second thread; the detector at 736×960, 126 against 193 ms. The pod's stages each had a
//! worker thread, so each had a team, and every forward ran at the slow speed.
//!
//! So every module load, forward pass and thread setting goes through [`run`], which
//! executes it here, on one thread with one team, in the order submitted. The stages'
//! worker threads still form their batches while this thread is busy; they wait for their
//! forward pass as they waited for libtorch before. On a GPU the kernels are queued on one
//! stream per device anyway, so one submitting thread costs no parallelism there either.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::OnceLock;
use std::sync::mpsc;

use crate::model::error::ModelError;

type Job = Box<dyn FnOnce() + Send>;

/// The job queue of the thread, started by the first [`run`]; the reason when it could not
/// be started.
static QUEUE: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();

thread_local! {
    static ON_TORCH_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `job` on the libtorch thread and returns what it returned, blocking the caller
/// until then. A panic in `job` resumes in the caller (the thread carries on). Called from
/// the libtorch thread itself, `job` runs at once.
pub(crate) fn run<R: Send + 'static>(job: impl FnOnce() -> R + Send + 'static) -> Result<R, ModelError> {
    if ON_TORCH_THREAD.with(Cell::get) {
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
    fn jobs_from_many_threads_all_run_on_one_thread() {
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
        assert_eq!(run(|| run(|| 7).unwrap() * 6).unwrap(), 42);
    }

    #[test]
    fn a_panic_reaches_the_caller_and_the_thread_carries_on() {
        let caught = std::panic::catch_unwind(|| run(|| -> u8 { panic!("boom") }));
        let payload = caught.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        assert_eq!(run(|| 1 + 1).unwrap(), 2);
    }
}
