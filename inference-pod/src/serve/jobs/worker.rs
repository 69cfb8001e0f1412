//! The worker: takes jobs from the queue while the pod serves and has a free slot, works
//! each as a document call with its progress and a heartbeat beside it, and finishes,
//! fails or puts it back. On shutdown it puts its running jobs back for other pods.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kube_ocr_http_request::OutputFormat;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::queue::{Beat, Delivery, Started};
use super::record::{JobRecord, fields};
use super::store::ResultFormat;
use super::{Jobs, now_ms};
use crate::serve::api::{ApiError, DocumentProgress, Failure, OcrApi, OcrCall, Progress, Protocol, Served};
use crate::serve::http_api::render::render_answer;
use crate::serve::telemetry::job_metrics::ReleaseReason;

/// How often a failed expiry rule is tried again.
const EXPIRY_RETRY: Duration = Duration::from_secs(60);
/// How often the backlog is read for the metrics.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);
/// Wait after the queue failed before asking again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// A job put back after a transient failure waits this long first, so that a bucket
/// that is down is not hammered by every pod.
const TRANSIENT_BACKOFF: Duration = Duration::from_secs(2);

/// The running worker; [`WorkerHandle::stop`] puts its jobs back and leaves the group.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    pub(crate) async fn stop(self, grace: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!("the job worker did not stop within the grace period");
        }
    }
}

pub(crate) fn start_worker(jobs: Arc<Jobs>, api: Arc<OcrApi>) -> WorkerHandle {
    let stop = CancellationToken::new();
    let task = tokio::spawn(work(jobs, api, stop.clone()));
    WorkerHandle { stop, task }
}

async fn work(jobs: Arc<Jobs>, api: Arc<OcrApi>, stop: CancellationToken) {
    let expiry = tokio::spawn(keep_trying_expiry(jobs.clone(), stop.clone()));
    let backlog = tokio::spawn(report_backlog(jobs.clone(), stop.clone()));
    let slots = Arc::new(Semaphore::new(jobs.settings.max_concurrent.max(1)));
    let mut running = JoinSet::new();
    let mut last_claim = Instant::now() - jobs.settings.claim_after;
    let mut group_ready = false;
    loop {
        while running.try_join_next().is_some() {}
        if stop.is_cancelled() {
            break;
        }
        if !api.is_serving() {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(Duration::from_millis(200)) => continue,
            }
        }
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        if !group_ready {
            match jobs.queue.ensure_group().await {
                Ok(()) => group_ready = true,
                Err(error) => {
                    tracing::warn!(%error, "job queue unavailable");
                    pause(&stop, RETRY_AFTER_FAILURE).await;
                    continue;
                }
            }
        }
        // Jobs of pods that stopped come first: they have waited longest.
        let claim_due = last_claim.elapsed() >= jobs.settings.claim_after / 2;
        let next = if claim_due {
            last_claim = Instant::now();
            match jobs.queue.claim_abandoned(jobs.settings.claim_after).await {
                Ok(Some(delivery)) => {
                    jobs.metrics.record_claimed();
                    tracing::info!(job = %delivery.job_id, "took over a job whose pod stopped working it");
                    Ok(Some(delivery))
                }
                Ok(None) => read_new(&jobs).await,
                Err(error) => Err(error),
            }
        } else {
            read_new(&jobs).await
        };
        match next {
            Ok(Some(delivery)) => {
                let jobs = jobs.clone();
                let api = api.clone();
                let stop = stop.clone();
                running.spawn(async move {
                    let _permit = permit;
                    run_job(&jobs, &api, delivery, &stop).await;
                });
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "reading the job queue failed");
                group_ready = false;
                pause(&stop, RETRY_AFTER_FAILURE).await;
            }
        }
    }
    // Running jobs see the same token, put their jobs back and return.
    while running.join_next().await.is_some() {}
    backlog.abort();
    expiry.abort();
    if let Err(error) = jobs.queue.leave().await {
        tracing::debug!(%error, "could not leave the job queue's group");
    }
}

/// A new entry, or none after a short blocking wait (a new entry ends the wait at once).
/// Never abandoned half-way: Redis hands out the entry as it answers, so a read dropped
/// after sending would leave the entry with this pod until another claims it.
async fn read_new(jobs: &Jobs) -> Result<Option<Delivery>, super::JobError> {
    jobs.queue.read_new().await
}

async fn pause(stop: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}

/// Why a job's work stopped before its call returned.
enum Interrupted {
    Cancelled,
    Lost,
    Draining,
}

async fn run_job(jobs: &Jobs, api: &OcrApi, delivery: Delivery, stop: &CancellationToken) {
    let job = delivery.job_id.clone();
    match jobs.queue.start(&delivery, now_ms(), jobs.settings.max_attempts).await {
        Ok(Started::Running) => {}
        Ok(Started::Skip) => return,
        Err(error) => {
            tracing::warn!(%job, %error, "could not start a job; it stays in the queue");
            return;
        }
    }
    let record = match jobs.queue.get(&job).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%job, %error, "could not read a started job");
            release(jobs, &delivery, ReleaseReason::Transient).await;
            return;
        }
    };
    jobs.metrics.job_started();
    tracing::info!(%job, attempt = record.attempts + 1, consumer = jobs.queue.consumer(), "job started");
    work_job(jobs, api, &delivery, &record, stop).await;
    jobs.metrics.job_ended();
}

async fn work_job(jobs: &Jobs, api: &OcrApi, delivery: &Delivery, record: &JobRecord, stop: &CancellationToken) {
    let job = &delivery.job_id;
    let max_bytes = api.limits().max_image_bytes;
    let document = match jobs.store.get_upload(job, max_bytes).await {
        Ok(document) => document,
        Err(error) => {
            let api_error = error.api_error();
            if api_error.failure == Failure::Unavailable {
                tracing::warn!(%job, %error, "could not read the job's document; putting it back");
                release(jobs, delivery, ReleaseReason::Transient).await;
            } else {
                fail(jobs, delivery, &api_error).await;
            }
            return;
        }
    };
    let call = OcrCall {
        protocol: Protocol::Job,
        request_id: job.clone(),
        document: Arc::from(document.as_ref()),
        task: record.request.task.into(),
        options: record.request.options,
        deadline: Instant::now() + jobs.settings.job_timeout,
        pages_in_flight: jobs.settings.pages_in_flight.max(1),
    };
    let (sender, receiver) = mpsc::channel(16);
    let progress = Progress::new(sender);
    let outcome = tokio::select! {
        answered = api.call_with_progress(&call, Instant::now(), Some(&progress)) => Ok(answered),
        interrupted = watch(jobs, delivery, receiver, stop) => Err(interrupted),
    };
    match outcome {
        Ok(answered) => match answered.result {
            Ok(served) => succeed(jobs, api, delivery, served, answered.total, call.options.word_boxes).await,
            Err(error) if matches!(error.failure, Failure::Busy { .. } | Failure::Unavailable) => {
                tracing::info!(%job, error = %error.message, "the pod cannot work the job now; putting it back");
                release(jobs, delivery, ReleaseReason::Transient).await;
            }
            Err(error) => fail(jobs, delivery, &error).await,
        },
        Err(Interrupted::Cancelled) => {
            tracing::info!(%job, "job cancelled; its work stopped");
            jobs.metrics.record_finished(super::JobState::Cancelled.as_str());
            if let Err(error) = jobs.queue.acknowledge(delivery).await {
                tracing::debug!(%job, %error, "could not acknowledge a cancelled job");
            }
        }
        Err(Interrupted::Lost) => tracing::warn!(%job, "another pod took the job over; this pod's work stopped"),
        Err(Interrupted::Draining) => release(jobs, delivery, ReleaseReason::Draining).await,
    }
}

/// Records progress and heartbeats until the job is cancelled, taken over, or the pod
/// drains; never returns while the job runs normally.
async fn watch(
    jobs: &Jobs,
    delivery: &Delivery,
    mut progress: mpsc::Receiver<DocumentProgress>,
    stop: &CancellationToken,
) -> Interrupted {
    let job = &delivery.job_id;
    let mut heartbeat = tokio::time::interval(heartbeat_interval(jobs.settings.claim_after));
    let (mut done, mut total) = (0u32, 0u32);
    let mut progress_open = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Interrupted::Draining,
            _ = heartbeat.tick() => match jobs.queue.heartbeat(delivery).await {
                Ok(Beat::Running) => {}
                Ok(Beat::Cancelled) => return Interrupted::Cancelled,
                Ok(Beat::Lost) => return Interrupted::Lost,
                // Redis unreachable: keep working; if it stays away longer than the claim
                // time another pod may take the job, and finishing checks ownership.
                Err(error) => tracing::warn!(%job, %error, "job heartbeat failed"),
            },
            update = progress.recv(), if progress_open => match update {
                Some(DocumentProgress::Planned { pages_to_read, .. }) => total = pages_to_read,
                Some(DocumentProgress::Page(_)) => {
                    done += 1;
                    if let Err(error) = jobs.queue.progress(job, (done, total)).await {
                        tracing::debug!(%job, %error, "could not record job progress");
                    }
                }
                None => progress_open = false,
            },
        }
    }
}

/// Often enough that two beats can be missed before the claim time runs out, and at
/// least once a second so that a cancel stops the work promptly.
fn heartbeat_interval(claim_after: Duration) -> Duration {
    (claim_after / 3).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

async fn succeed(jobs: &Jobs, api: &OcrApi, delivery: &Delivery, served: Served, total: Duration, with_words: bool) {
    let job = &delivery.job_id;
    let pages = u32::try_from(served.every_page().len()).unwrap_or(u32::MAX);
    for format in ResultFormat::ALL {
        let body = render(api, job, format, served.clone(), total, with_words);
        if let Err(error) = jobs.store.put_result(job, format, body).await {
            tracing::warn!(%job, %error, "could not store the job's result; putting it back");
            release(jobs, delivery, ReleaseReason::Transient).await;
            return;
        }
    }
    let outcome = [
        (fields::STATE, super::JobState::Succeeded.as_str().to_owned()),
        (fields::FINISHED_MS, now_ms().to_string()),
        (fields::PAGES_DONE, pages.to_string()),
        (fields::PAGES_TOTAL, pages.to_string()),
        (fields::EXPIRES_MS, (now_ms() + millis(jobs.settings.ttl)).to_string()),
    ];
    match jobs.queue.finish(delivery, &outcome, jobs.settings.ttl).await {
        Ok(true) => {
            jobs.metrics.record_finished(super::JobState::Succeeded.as_str());
            tracing::info!(%job, pages, elapsed_ms = total.as_millis() as u64, "job succeeded");
        }
        Ok(false) => tracing::info!(%job, "job finished here after another pod took it over; that pod records it"),
        Err(error) => {
            tracing::warn!(%job, %error, "could not record the job's success; it will be taken over and finished again")
        }
    }
}

/// JSON carries word boxes when they were asked for; hOCR always has them.
fn render(api: &OcrApi, job: &str, format: ResultFormat, served: Served, total: Duration, with_words: bool) -> Bytes {
    let output = match format {
        ResultFormat::Json => OutputFormat::Json,
        ResultFormat::Text => OutputFormat::Text,
        ResultFormat::Hocr => OutputFormat::Hocr,
    };
    render_answer(api, job.to_owned(), output, served, with_words, total).body
}

async fn fail(jobs: &Jobs, delivery: &Delivery, error: &ApiError) {
    let job = &delivery.job_id;
    let code = kube_ocr_proto::contract::code_name(error.failure.code());
    let outcome = [
        (fields::STATE, super::JobState::Failed.as_str().to_owned()),
        (fields::FINISHED_MS, now_ms().to_string()),
        (fields::ERROR_CODE, code.to_owned()),
        (fields::ERROR_MESSAGE, error.message.clone()),
        (fields::EXPIRES_MS, (now_ms() + millis(jobs.settings.ttl)).to_string()),
    ];
    match jobs.queue.finish(delivery, &outcome, jobs.settings.ttl).await {
        Ok(true) => {
            jobs.metrics.record_finished(super::JobState::Failed.as_str());
            tracing::info!(%job, code, error = %error.message, "job failed");
        }
        Ok(false) => {}
        Err(failure) => tracing::warn!(%job, error = %failure, "could not record the job's failure"),
    }
}

async fn release(jobs: &Jobs, delivery: &Delivery, reason: ReleaseReason) {
    let job = &delivery.job_id;
    if reason == ReleaseReason::Transient {
        tokio::time::sleep(TRANSIENT_BACKOFF).await;
    }
    // Attempts count the starts of pods that stopped working the job (the sign of a
    // document that kills pods); a bucket or engine that cannot take it now is not that.
    match jobs.queue.release(delivery, now_ms(), jobs.settings.ttl, false).await {
        Ok(true) => jobs.metrics.record_released(reason),
        Ok(false) => {}
        // It stays pending under this pod's name; another pod takes it after the claim time.
        Err(error) => tracing::warn!(%job, %error, "could not put the job back; another pod will take it over"),
    }
}

/// Sets the bucket's expiry rule, again every [`EXPIRY_RETRY`] until it is set: a bucket
/// unreachable at start must not leave uploads and results without expiry.
async fn keep_trying_expiry(jobs: Arc<Jobs>, stop: CancellationToken) {
    loop {
        if jobs.prepare().await {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EXPIRY_RETRY) => {}
        }
    }
}

async fn report_backlog(jobs: Arc<Jobs>, stop: CancellationToken) {
    let mut every = tokio::time::interval(BACKLOG_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => match jobs.queue.backlog(now_ms()).await {
                Ok(backlog) => jobs.metrics.set_backlog(
                    backlog.queued,
                    backlog.pending,
                    backlog.oldest_age.map_or(0.0, |age| age.as_secs_f64()),
                ),
                Err(error) => tracing::debug!(%error, "could not read the job backlog"),
            },
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_well_within_the_claim_time_and_at_least_every_second() {
        assert_eq!(heartbeat_interval(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(heartbeat_interval(Duration::from_millis(1500)), Duration::from_millis(500));
        assert_eq!(heartbeat_interval(Duration::from_millis(30)), Duration::from_millis(100));
    }
}
