//! A dynamic batcher: callers on the async runtime submit single items; one dedicated
//! worker thread collects them into batches (up to `max_batch_size`, waiting at most
//! `max_queue_delay` after the first) and runs the model on each batch.
//!
//! The queue is bounded: a full queue refuses at once (`QueueFull`) instead of growing
//! latency without limit. Items whose deadline passed while queued, or whose caller went
//! away, are dropped before compute so an overloaded server spends no model time on
//! answers nobody will read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::model::BatchProcessor;

/// How one stage batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    pub max_batch_size: usize,
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

struct Job<P: BatchProcessor> {
    input: P::Input,
    submitted: Instant,
    deadline: Instant,
    reply: oneshot::Sender<BatchResult<P>>,
}

/// Handle to one stage's queue and worker thread. Dropping it lets the worker finish the
/// queued items and exit.
pub(crate) struct Batcher<P: BatchProcessor> {
    stage: &'static str,
    sender: Option<SyncSender<Job<P>>>,
    depth: Arc<AtomicUsize>,
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
        let (sender, receiver) = sync_channel(capacity);
        let depth = Arc::new(AtomicUsize::new(0));
        let worker_depth = depth.clone();
        let worker = std::thread::Builder::new()
            .name(format!("ocr-{stage}"))
            .spawn(move || run_worker(stage, config, processor, receiver, worker_depth, observer))?;
        Ok(Self { stage, sender: Some(sender), depth, capacity, worker: Some(worker) })
    }

    /// Items waiting in the queue (not yet taken into a batch).
    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Queues one item and waits for its result.
    pub(crate) async fn submit(&self, input: P::Input, deadline: Instant) -> BatchResult<P> {
        let receiver = self.enqueue(input, deadline)?;
        receiver.await.unwrap_or(Err(BatchError::Stopped { stage: self.stage }))
    }

    /// Queues one item without waiting; the receiver resolves when its batch is done.
    pub(crate) fn enqueue(&self, input: P::Input, deadline: Instant) -> Result<PendingResult<P>, BatchError<P::Error>> {
        let (reply, receiver) = oneshot::channel();
        let sender = self.sender.as_ref().ok_or(BatchError::Stopped { stage: self.stage })?;
        // Count before sending so the worker's decrement can never run first.
        self.depth.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(Job { input, submitted: Instant::now(), deadline, reply }) {
            Ok(()) => Ok(receiver),
            Err(error) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(match error {
                    TrySendError::Full(_) => BatchError::QueueFull { stage: self.stage, capacity: self.capacity },
                    TrySendError::Disconnected(_) => BatchError::Stopped { stage: self.stage },
                })
            }
        }
    }
}

impl<P: BatchProcessor> Drop for Batcher<P> {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn run_worker<P: BatchProcessor>(
    stage: &'static str,
    config: BatcherConfig,
    mut processor: P,
    receiver: Receiver<Job<P>>,
    depth: Arc<AtomicUsize>,
    observer: BatchObserver,
) {
    let max_batch = config.max_batch_size.max(1);
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        let collect_until = Instant::now() + config.max_queue_delay;
        while jobs.len() < max_batch {
            let now = Instant::now();
            let next = if now >= collect_until {
                receiver.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                receiver.recv_timeout(collect_until - now)
            };
            match next {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        depth.fetch_sub(jobs.len(), Ordering::Relaxed);

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
                Some(Ok(output)) => Ok(Batched { output, queue_wait: started.duration_since(submitted), compute }),
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
    async fn concurrent_items_share_a_batch() {
        let config = BatcherConfig { max_batch_size: 8, max_queue_delay: Duration::from_millis(200), max_queue: 64 };
        let (batcher, batches) = batcher(config, Duration::ZERO);
        let results = futures_join(&batcher, (1..=8).collect()).await;
        let outputs: Vec<u32> = results.into_iter().map(|r| r.unwrap().output).collect();
        assert_eq!(outputs, (1..=8).map(|x| x * 2).collect::<Vec<_>>());
        // All eight were queued at once and the batch closes when full, not after the delay.
        assert_eq!(*batches.lock().unwrap(), vec![8]);
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
        let receivers: Vec<_> = inputs.into_iter().map(|x| batcher.enqueue(x, far()).unwrap()).collect();
        let mut results = Vec::new();
        for receiver in receivers {
            results.push(receiver.await.unwrap());
        }
        results
    }
}
