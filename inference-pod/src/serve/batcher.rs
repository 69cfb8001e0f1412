//! A continuous batcher: callers on the async runtime submit items; one dedicated worker
//! thread per stage runs the model on batches of them.
//!
//! The worker never waits while it has work: when it is free it takes everything queued,
//! up to `max_batch_size`, at once. Batches form from what accumulates while it is busy
//! (as text-embeddings-inference's queue does), so a lone request pays no batching delay.
//! `max_queue_delay` is only an upper bound on holding a partial batch open, and only
//! under load (see [`hold_open`]).
//!
//! A request's items (a page's line crops) enter the queue together under one lock, so
//! the worker never starts a batch with the first crop of a page while the rest are still
//! being pushed.
//!
//! The queue is bounded: a full queue refuses at once (`QueueFull`) instead of growing
//! latency without limit. Items whose deadline passed while queued, or whose caller went
//! away, are dropped before compute so an overloaded server spends no model time on
//! answers nobody will read.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::model::BatchProcessor;

/// How one stage batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    pub max_batch_size: usize,
    /// Longest a free worker holds a partial batch open for company, under load only.
    pub max_queue_delay: Duration,
    /// Items that may wait in the queue; more are refused.
    pub max_queue: usize,
}

/// What a caller gets back: the output plus where its time went.
#[derive(Debug)]
pub(crate) struct Batched<O> {
    pub output: O,
    /// Time between submission and the start of the batch's compute.
    pub queue_wait: Duration,
    /// Wall time of the batch this item was computed in.
    pub compute: Duration,
    /// Items in that batch (the item's share of the compute is `compute / batch_size`).
    pub batch_size: usize,
}

impl<O> Batched<O> {
    /// This item's share of its batch's compute time.
    pub(crate) fn compute_share(&self) -> Duration {
        self.compute / self.batch_size.max(1) as u32
    }
}

/// Why an item got no output; `E` is the stage's compute error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BatchError<E: std::error::Error + 'static> {
    #[error("the {stage} queue is full (capacity {capacity}); retry with backoff or add replicas")]
    QueueFull { stage: &'static str, capacity: usize },
    #[error("the deadline passed after {waited_ms} ms in the {stage} queue, before compute")]
    DeadlineExceeded { stage: &'static str, waited_ms: u128 },
    /// The model failed on the forward pass this item was in (shared by its batch-mates).
    #[error("{stage} failed: {source}")]
    Compute { stage: &'static str, source: Arc<E> },
    #[error("{stage} failed: the model returned fewer results than inputs")]
    MissingOutput { stage: &'static str },
    #[error("the {stage} worker has stopped")]
    Stopped { stage: &'static str },
}

/// One item's outcome: its output, or why there is none.
pub(crate) type BatchResult<P> =
    Result<Batched<<P as BatchProcessor>::Output>, BatchError<<P as BatchProcessor>::Error>>;

/// Resolves to one item's result once its batch has run.
pub(crate) type PendingResult<P> = oneshot::Receiver<BatchResult<P>>;

/// Called by the worker after each batch: (stage, batch size, items dropped as expired).
pub(crate) type BatchObserver = Arc<dyn Fn(&'static str, usize, usize) + Send + Sync>;

/// How long a free worker that found `queued` items holds the batch open for more.
///
/// Only when the previous batch was full: that means items arrive at least as fast as the
/// model takes them at this batch size, so a short wait fills the next batch too. After a
/// partial batch the queue drains faster than it fills, and waiting would only add latency
/// (at concurrency 1 it would add the whole delay to every request).
pub(crate) fn hold_open(
    queued: usize,
    max_batch_size: usize,
    previous_batch_full: bool,
    max_queue_delay: Duration,
) -> Option<Duration> {
    (queued < max_batch_size && previous_batch_full && !max_queue_delay.is_zero()).then_some(max_queue_delay)
}

struct Job<P: BatchProcessor> {
    input: P::Input,
    submitted: Instant,
    deadline: Instant,
    reply: oneshot::Sender<BatchResult<P>>,
}

struct Queue<P: BatchProcessor> {
    jobs: VecDeque<Job<P>>,
    /// Set when the handle is dropped: the worker finishes what is queued, then exits.
    closed: bool,
}

struct Shared<P: BatchProcessor> {
    queue: Mutex<Queue<P>>,
    arrived: Condvar,
}

impl<P: BatchProcessor> Shared<P> {
    /// The queue, even if a thread panicked while holding it: the queue itself is never left
    /// half-updated (every change is one push or one drain).
    fn lock(&self) -> MutexGuard<'_, Queue<P>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle to one stage's queue and worker thread. Dropping it lets the worker finish the
/// queued items and exit.
pub(crate) struct Batcher<P: BatchProcessor> {
    stage: &'static str,
    shared: Arc<Shared<P>>,
    capacity: usize,
    worker: Option<JoinHandle<()>>,
}

impl<P: BatchProcessor> std::fmt::Debug for Batcher<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("stage", &self.stage).field("depth", &self.depth()).finish()
    }
}

impl<P: BatchProcessor> Batcher<P> {
    /// Starts the worker thread.
    pub(crate) fn start(
        stage: &'static str,
        config: BatcherConfig,
        processor: P,
        observer: BatchObserver,
    ) -> std::io::Result<Self> {
        let capacity = config.max_queue.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { jobs: VecDeque::with_capacity(capacity.min(1024)), closed: false }),
            arrived: Condvar::new(),
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name(format!("ocr-{stage}"))
            .spawn(move || run_worker(stage, config, processor, &worker_shared, observer))?;
        Ok(Self { stage, shared, capacity, worker: Some(worker) })
    }

    /// Items waiting in the queue (not yet taken into a batch).
    pub(crate) fn depth(&self) -> usize {
        self.shared.lock().jobs.len()
    }

    /// Queues one item and waits for its result.
    pub(crate) async fn submit(&self, input: P::Input, deadline: Instant) -> BatchResult<P> {
        let mut receivers = self.enqueue_all(vec![input], deadline)?;
        let receiver = receivers.pop().ok_or(BatchError::Stopped { stage: self.stage })?;
        receiver.await.unwrap_or(Err(BatchError::Stopped { stage: self.stage }))
    }

    /// Queues one item without waiting; the receiver resolves when its batch is done.
    #[cfg(test)]
    pub(crate) fn enqueue(&self, input: P::Input, deadline: Instant) -> Result<PendingResult<P>, BatchError<P::Error>> {
        let mut receivers = self.enqueue_all(vec![input], deadline)?;
        receivers.pop().ok_or(BatchError::Stopped { stage: self.stage })
    }

    /// Queues all of one request's items at once, or none of them when they do not fit; the
    /// receivers resolve, in input order, as their batches finish.
    pub(crate) fn enqueue_all(
        &self,
        inputs: Vec<P::Input>,
        deadline: Instant,
    ) -> Result<Vec<PendingResult<P>>, BatchError<P::Error>> {
        let submitted = Instant::now();
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(BatchError::Stopped { stage: self.stage });
        }
        if queue.jobs.len() + inputs.len() > self.capacity {
            return Err(BatchError::QueueFull { stage: self.stage, capacity: self.capacity });
        }
        let receivers = inputs
            .into_iter()
            .map(|input| {
                let (reply, receiver) = oneshot::channel();
                queue.jobs.push_back(Job { input, submitted, deadline, reply });
                receiver
            })
            .collect();
        drop(queue);
        self.shared.arrived.notify_one();
        Ok(receivers)
    }
}

impl<P: BatchProcessor> Drop for Batcher<P> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.arrived.notify_one();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Waits for work and takes the next batch; `None` once the handle is gone and the queue
/// is drained.
fn next_batch<P: BatchProcessor>(
    shared: &Shared<P>,
    max_batch: usize,
    previous_batch_full: bool,
    max_queue_delay: Duration,
) -> Option<Vec<Job<P>>> {
    let mut queue = shared.lock();
    while queue.jobs.is_empty() && !queue.closed {
        queue = shared.arrived.wait(queue).unwrap_or_else(PoisonError::into_inner);
    }
    if queue.jobs.is_empty() {
        return None;
    }
    if let Some(limit) = hold_open(queue.jobs.len(), max_batch, previous_batch_full, max_queue_delay) {
        queue = shared
            .arrived
            .wait_timeout_while(queue, limit, |queue| queue.jobs.len() < max_batch && !queue.closed)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    let take = queue.jobs.len().min(max_batch);
    Some(queue.jobs.drain(..take).collect())
}

fn run_worker<P: BatchProcessor>(
    stage: &'static str,
    config: BatcherConfig,
    mut processor: P,
    shared: &Shared<P>,
    observer: BatchObserver,
) {
    let max_batch = config.max_batch_size.max(1);
    let mut previous_batch_full = false;
    while let Some(jobs) = next_batch(shared, max_batch, previous_batch_full, config.max_queue_delay) {
        previous_batch_full = jobs.len() == max_batch;
        let started = Instant::now();
        let (live, expired): (Vec<_>, Vec<_>) =
            jobs.into_iter().partition(|job| job.deadline > started && !job.reply.is_closed());
        let dropped = expired.len();
        for job in expired {
            let waited_ms = started.duration_since(job.submitted).as_millis();
            let _ = job.reply.send(Err(BatchError::DeadlineExceeded { stage, waited_ms }));
        }
        if live.is_empty() {
            observer(stage, 0, dropped);
            continue;
        }
        let batch_size = live.len();
        let (inputs, waiting): (Vec<_>, Vec<_>) =
            live.into_iter().map(|job| (job.input, (job.submitted, job.reply))).unzip();
        let outputs = processor.process(inputs);
        let compute = started.elapsed();
        observer(stage, batch_size, dropped);
        let mut outputs = outputs.into_iter();
        for (submitted, reply) in waiting {
            let result = match outputs.next() {
                Some(Ok(output)) => {
                    Ok(Batched { output, queue_wait: started.duration_since(submitted), compute, batch_size })
                }
                Some(Err(source)) => Err(BatchError::Compute { stage, source }),
                None => Err(BatchError::MissingOutput { stage }),
            };
            let _ = reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("unlucky")]
    struct Unlucky;

    /// Doubles its inputs and records the batch sizes it saw; optionally sleeps per batch.
    struct Doubler {
        batches: Arc<Mutex<Vec<usize>>>,
        delay: Duration,
    }

    impl BatchProcessor for Doubler {
        type Input = u32;
        type Output = u32;
        type Error = Unlucky;

        fn process(&mut self, inputs: Vec<u32>) -> Vec<Result<u32, Arc<Unlucky>>> {
            self.batches.lock().unwrap().push(inputs.len());
            std::thread::sleep(self.delay);
            inputs.into_iter().map(|x| if x == 13 { Err(Arc::new(Unlucky)) } else { Ok(x * 2) }).collect()
        }
    }

    fn batcher(config: BatcherConfig, delay: Duration) -> (Batcher<Doubler>, Arc<Mutex<Vec<usize>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let processor = Doubler { batches: batches.clone(), delay };
        (Batcher::start("test", config, processor, Arc::new(|_, _, _| {})).unwrap(), batches)
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn one_requests_items_share_a_batch() {
        let config = BatcherConfig { max_batch_size: 8, max_queue_delay: Duration::from_millis(200), max_queue: 64 };
        let (batcher, batches) = batcher(config, Duration::ZERO);
        let results = futures_join(&batcher, (1..=8).collect()).await;
        let outputs: Vec<u32> = results.into_iter().map(|r| r.unwrap().output).collect();
        assert_eq!(outputs, (1..=8).map(|x| x * 2).collect::<Vec<_>>());
        // All eight entered the queue together, so the worker never saw a part of them.
        assert_eq!(*batches.lock().unwrap(), vec![8]);
    }

    #[tokio::test]
    async fn a_lone_item_does_not_wait_for_company() {
        // A fixed wait for company would hold this item for a minute.
        let config = BatcherConfig { max_batch_size: 8, max_queue_delay: Duration::from_secs(60), max_queue: 64 };
        let (batcher, batches) = batcher(config, Duration::ZERO);
        let result = tokio::time::timeout(Duration::from_secs(10), batcher.submit(7, far())).await;
        assert_eq!(result.expect("answered without waiting for company").unwrap().output, 14);
        assert_eq!(*batches.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn items_that_arrive_while_the_model_is_busy_form_the_next_batch() {
        let config = BatcherConfig { max_batch_size: 8, max_queue_delay: Duration::from_secs(60), max_queue: 64 };
        let (batcher, batches) = batcher(config, Duration::from_millis(300));
        let first = batcher.enqueue(1, far()).unwrap();
        std::thread::sleep(Duration::from_millis(100)); // the worker is busy with the first
        let rest: Vec<_> = (2..=6).map(|i| batcher.enqueue(i, far()).unwrap()).collect();
        let first = tokio::time::timeout(Duration::from_secs(10), first).await.unwrap().unwrap().unwrap();
        assert_eq!((first.output, first.batch_size), (2, 1));
        for receiver in rest {
            let item = tokio::time::timeout(Duration::from_secs(10), receiver).await.unwrap().unwrap().unwrap();
            assert_eq!(item.batch_size, 5);
        }
        assert_eq!(*batches.lock().unwrap(), vec![1, 5]);
    }

    #[tokio::test]
    async fn under_load_a_partial_batch_is_held_open_up_to_the_delay() {
        // The first batch is full, so the worker holds the next one open for company.
        let config = BatcherConfig { max_batch_size: 2, max_queue_delay: Duration::from_secs(3), max_queue: 64 };
        let (batcher, batches) = batcher(config, Duration::from_millis(100));
        let full = batcher.enqueue_all(vec![1, 2], far()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let third = batcher.enqueue(3, far()).unwrap();
        std::thread::sleep(Duration::from_millis(400)); // the worker is free and holding
        let fourth = batcher.enqueue(4, far()).unwrap();
        for receiver in full.into_iter().chain([third, fourth]) {
            receiver.await.unwrap().unwrap();
        }
        assert_eq!(*batches.lock().unwrap(), vec![2, 2]);
    }

    #[test]
    fn only_a_full_previous_batch_holds_the_next_open() {
        let delay = Duration::from_millis(5);
        assert_eq!(hold_open(3, 8, true, delay), Some(delay));
        assert_eq!(hold_open(3, 8, false, delay), None, "after a partial batch the queue drains faster than it fills");
        assert_eq!(hold_open(8, 8, true, delay), None, "a full batch starts at once");
        assert_eq!(hold_open(3, 8, true, Duration::ZERO), None);
    }

    #[tokio::test]
    async fn a_request_that_does_not_fit_is_refused_whole() {
        let config = BatcherConfig { max_batch_size: 1, max_queue_delay: Duration::ZERO, max_queue: 3 };
        let (batcher, batches) = batcher(config, Duration::from_millis(200));
        let busy = batcher.enqueue(1, far()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let refused = batcher.enqueue_all(vec![2, 3, 4, 5], far()).unwrap_err();
        assert_eq!(refused, BatchError::QueueFull { stage: "test", capacity: 3 });
        assert_eq!(batcher.depth(), 0, "no part of the refused request stays queued");
        busy.await.unwrap().unwrap();
        assert_eq!(*batches.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn batch_size_one_never_batches() {
        let config = BatcherConfig { max_batch_size: 1, max_queue_delay: Duration::from_millis(50), max_queue: 64 };
        let (batcher, batches) = batcher(config, Duration::ZERO);
        futures_join(&batcher, (1..=4).collect()).await;
        assert_eq!(*batches.lock().unwrap(), vec![1, 1, 1, 1]);
    }

    #[tokio::test]
    async fn per_item_errors_stay_with_their_item() {
        let config = BatcherConfig { max_batch_size: 4, max_queue_delay: Duration::from_millis(50), max_queue: 8 };
        let (batcher, _) = batcher(config, Duration::ZERO);
        let results = futures_join(&batcher, vec![1, 13, 3]).await;
        assert_eq!(results[0].as_ref().unwrap().output, 2);
        let error = results[1].as_ref().unwrap_err();
        assert_eq!(error, &BatchError::Compute { stage: "test", source: Arc::new(Unlucky) });
        assert_eq!(error.to_string(), "test failed: unlucky");
        assert_eq!(results[2].as_ref().unwrap().output, 6);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        // The worker is busy for 300 ms with the first item; the queue holds 2 more.
        let config = BatcherConfig { max_batch_size: 1, max_queue_delay: Duration::ZERO, max_queue: 2 };
        let (batcher, _) = batcher(config, Duration::from_millis(300));
        let first = batcher.enqueue(1, far()).unwrap();
        std::thread::sleep(Duration::from_millis(50)); // let the worker take it
        let queued: Vec<_> = (0..2).map(|i| batcher.enqueue(i, far()).unwrap()).collect();
        assert_eq!(batcher.depth(), 2);
        assert_eq!(batcher.enqueue(9, far()).unwrap_err(), BatchError::QueueFull { stage: "test", capacity: 2 });
        assert!(first.await.unwrap().is_ok());
        for receiver in queued {
            assert!(receiver.await.unwrap().is_ok());
        }
        assert_eq!(batcher.depth(), 0);
    }

    #[tokio::test]
    async fn items_that_expire_in_the_queue_are_not_computed() {
        let config = BatcherConfig { max_batch_size: 1, max_queue_delay: Duration::ZERO, max_queue: 4 };
        let (batcher, batches) = batcher(config, Duration::from_millis(200));
        let busy = batcher.enqueue(1, far()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let doomed = batcher.enqueue(2, Instant::now() + Duration::from_millis(50)).unwrap();
        assert!(busy.await.unwrap().is_ok());
        match doomed.await.unwrap() {
            Err(BatchError::DeadlineExceeded { waited_ms, .. }) => assert!(waited_ms >= 50, "{waited_ms}"),
            other => panic!("expected DeadlineExceeded, got {other:?}"),
        }
        assert_eq!(*batches.lock().unwrap(), vec![1], "the expired item never reached the model");
    }

    #[tokio::test]
    async fn cancelled_callers_cost_no_compute() {
        let config = BatcherConfig { max_batch_size: 1, max_queue_delay: Duration::ZERO, max_queue: 4 };
        let (batcher, batches) = batcher(config, Duration::from_millis(100));
        let busy = batcher.enqueue(1, far()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(batcher.enqueue(2, far()).unwrap()); // the caller gave up
        assert!(busy.await.unwrap().is_ok());
        drop(batcher); // joins the worker after it drained the queue
        assert_eq!(*batches.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn dropping_the_batcher_finishes_queued_work() {
        let config = BatcherConfig { max_batch_size: 2, max_queue_delay: Duration::ZERO, max_queue: 8 };
        let (batcher, _) = batcher(config, Duration::from_millis(30));
        let receivers: Vec<_> = (1..=5).map(|i| batcher.enqueue(i, far()).unwrap()).collect();
        drop(batcher);
        for (i, receiver) in receivers.into_iter().enumerate() {
            assert_eq!(receiver.await.unwrap().unwrap().output, (i as u32 + 1) * 2);
        }
    }

    async fn futures_join(batcher: &Batcher<Doubler>, inputs: Vec<u32>) -> Vec<BatchResult<Doubler>> {
        let receivers = batcher.enqueue_all(inputs, far()).unwrap();
        let mut results = Vec::new();
        for receiver in receivers {
            results.push(receiver.await.unwrap());
        }
        results
    }
}
