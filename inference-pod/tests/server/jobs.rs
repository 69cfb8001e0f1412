//! Document jobs against a real Redis (the queue) and a real S3 server (SeaweedFS, the
//! bucket), both started per test by kube-ocr-test-servers: a PDF submitted on either API
//! is worked in the background and its results fetched in every format; submits are
//! idempotent; bad input is refused or recorded in the job; a cancel stops the work; a
//! job whose pod is killed mid-document is finished once, by another pod, with every page
//! exactly once; and a job, its upload and its result are gone after their TTL.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    PodProcess, golden_image, http_get, http_request, labelled_metric_sum, metric_value, numbered_pages_pdf,
    ocr_client, serving_server, test_config,
};
use kube_ocr_inference::serve::{
    CorsPolicy, JobSettings, JobsFrontConfig, PdfSettings, ServerConfig, SharedCacheSettings, start_jobs_front,
};
use kube_ocr_proto::v1::ocr_client::OcrClient;
use kube_ocr_proto::v1::{
    CancelJobRequest, GetJobRequest, GetJobResultRequest, Job, JobState, RecognizeOptions, RecognizeRequest,
    ResultFormat, SubmitJobRequest, Task, submit_job_request,
};
use kube_ocr_s3::{Addressing, S3Client, S3Settings};
use kube_ocr_test_servers::{RedisServer, S3Server};
use tonic::transport::Channel;

const BUCKET: &str = "ocr-jobs";
/// Numbers the in-process pods' consumer names, so two pods of a test are told apart.
static CONSUMERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Redis and S3 for one test.
struct Backends {
    redis: RedisServer,
    s3: S3Server,
}

impl Backends {
    fn start() -> Self {
        let backends = Self { redis: RedisServer::start().unwrap(), s3: S3Server::start().unwrap() };
        backends.s3.create_bucket(BUCKET).unwrap();
        backends
    }

    fn s3_settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.s3.endpoint().parse().unwrap(),
            region: self.s3.region().to_owned(),
            access_key_id: self.s3.access_key().to_owned(),
            secret_access_key: self.s3.secret_key().to_owned(),
            session_token: None,
            addressing: Addressing::Path,
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }

    fn jobs(&self, prefix: &str, ttl: Duration) -> JobSettings {
        JobSettings {
            s3: self.s3_settings(),
            bucket: BUCKET.to_owned(),
            prefix: prefix.to_owned(),
            ttl,
            max_concurrent: 1,
            pages_in_flight: 2,
            claim_after: Duration::from_secs(3),
            max_attempts: 3,
            job_timeout: Duration::from_secs(600),
            slo: Duration::from_secs(900),
            consumer: format!("{prefix}-{}", CONSUMERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            manage_expiry: true,
        }
    }

    fn shared_cache(&self, prefix: &str) -> SharedCacheSettings {
        SharedCacheSettings {
            url: self.redis.url(),
            username: None,
            password: None,
            ca_file: None,
            ttl: Duration::from_secs(600),
            timeout: Duration::from_millis(200),
            key_prefix: prefix.to_owned(),
            max_pending_writes: 64,
        }
    }

    fn config(&self, prefix: &str, ttl: Duration) -> ServerConfig {
        let shared = self.shared_cache(prefix);
        ServerConfig { shared_cache: Some(shared), jobs: Some(self.jobs(prefix, ttl)), ..test_config("ppocr-v4") }
    }

    /// A job front on the same queue and bucket: it takes jobs and works none.
    fn front_config(&self, prefix: &str) -> JobsFrontConfig {
        let base = test_config("ppocr-v4");
        JobsFrontConfig {
            listen_host: base.listen_host,
            grpc_port: 0,
            http_api_port: 0,
            http_port: 0,
            cors: CorsPolicy::Off,
            redis: self.shared_cache(prefix),
            jobs: self.jobs(prefix, Duration::from_secs(3600)),
            max_image_bytes: base.max_image_bytes,
            pdf: PdfSettings { ..base.pdf },
            drain_delay: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// Flags for a pod process with the same backends.
    fn pod_args(&self, prefix: &str) -> Vec<String> {
        [
            "--redis-url",
            &self.redis.url(),
            "--redis-key-prefix",
            prefix,
            "--jobs-bucket",
            BUCKET,
            "--jobs-s3-endpoint",
            &self.s3.endpoint(),
            "--jobs-s3-access-key-id",
            self.s3.access_key(),
            "--jobs-s3-secret-access-key",
            self.s3.secret_key(),
            "--jobs-prefix",
            prefix,
            "--jobs-claim-after-secs",
            "3",
            "--jobs-pages-in-flight",
            "2",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    }
}

fn submit_request(document: Vec<u8>, options: RecognizeOptions) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id: String::new(),
        source: Some(submit_job_request::Source::Document(document)),
        task: Task::Document as i32,
        options: Some(options),
    }
}

async fn get_job(client: &mut OcrClient<Channel>, id: &str) -> Job {
    client.get_job(GetJobRequest { id: id.to_owned() }).await.unwrap().into_inner()
}

/// Polls the job until `done` says so, with a deadline (never a fixed sleep).
async fn wait_for(client: &mut OcrClient<Channel>, id: &str, within: Duration, done: impl Fn(&Job) -> bool) -> Job {
    let started = Instant::now();
    loop {
        let job = get_job(client, id).await;
        if done(&job) {
            return job;
        }
        assert!(started.elapsed() < within, "job {id} did not get there in {within:?}: {job:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn finished(job: &Job) -> bool {
    [JobState::Succeeded, JobState::Failed, JobState::Cancelled].contains(&job.state())
}

async fn result_bytes(client: &mut OcrClient<Channel>, id: &str, format: ResultFormat) -> (String, Vec<u8>) {
    let mut stream = client
        .get_job_result(GetJobResultRequest { id: id.to_owned(), format: format as i32 })
        .await
        .unwrap()
        .into_inner();
    let (mut content_type, mut body) = (String::new(), Vec::new());
    while let Some(chunk) = stream.message().await.unwrap() {
        if content_type.is_empty() {
            content_type = chunk.content_type;
        }
        body.extend_from_slice(&chunk.data);
    }
    (content_type, body)
}

/// The page numbers in a JSON result, in order, with the number each page's text names.
fn result_pages(json: &[u8]) -> Vec<(u64, String)> {
    let result: serde_json::Value = serde_json::from_slice(json).unwrap();
    result["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|page| (page["pageNumber"].as_u64().unwrap(), page["text"].as_str().unwrap().to_owned()))
        .collect()
}

/// Whether a page's OCR text is page `number`'s: its number and its word, side by side
/// (whitespace and line breaks aside, which detection may place differently).
fn names_page(text: &str, number: u64) -> bool {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    text.contains(&format!(
        "{number}{}",
        common::NUMBERED_PAGE_WORDS[number as usize % common::NUMBERED_PAGE_WORDS.len()]
    ))
}

/// Small pages render and read quickly at this resolution, and their text stays legible.
const FAST_PDF_DPI: u32 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pdf_job_is_worked_in_the_background_and_read_back_in_every_format_on_both_apis() {
    let backends = Backends::start();
    let server = serving_server(backends.config("kube-ocr/both-apis", Duration::from_secs(3600))).await;
    let mut client = ocr_client(server.grpc_addr).await;
    let pdf = numbered_pages_pdf(6);

    let submitted = client.submit_job(submit_request(pdf.clone(), RecognizeOptions::default())).await.unwrap();
    let job = submitted.into_inner();
    assert!(job.created && job.id.len() == 32, "{job:?}");
    assert!(matches!(job.state(), JobState::Queued | JobState::Running), "{job:?}");
    // The same document and options is the same job, whatever it is doing.
    let again = client.submit_job(submit_request(pdf.clone(), RecognizeOptions::default())).await.unwrap().into_inner();
    assert_eq!((again.id.as_str(), again.created), (job.id.as_str(), false));
    // Other options make another job.
    let other_options = RecognizeOptions { first_page: 2, last_page: 3, ..RecognizeOptions::default() };
    let other = client.submit_job(submit_request(pdf.clone(), other_options)).await.unwrap().into_inner();
    assert!(other.created && other.id != job.id);

    let done = wait_for(&mut client, &job.id, Duration::from_secs(120), finished).await;
    assert_eq!(done.state(), JobState::Succeeded, "{done:?}");
    assert_eq!((done.pages_done, done.pages_total, done.attempts), (6, 6, 1));
    assert!(done.started_unix_ms >= done.submitted_unix_ms && done.finished_unix_ms >= done.started_unix_ms);

    let (content_type, json) = result_bytes(&mut client, &job.id, ResultFormat::Json).await;
    assert_eq!(content_type, "application/json");
    let pages = result_pages(&json);
    assert_eq!(pages.iter().map(|(number, _)| *number).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    for (number, text) in &pages {
        assert!(names_page(text, *number), "page {number} reads {text:?}");
    }
    // The job's text is what a synchronous call answers for the same document.
    let sync = client
        .recognize(RecognizeRequest {
            request_id: "sync".into(),
            image: pdf.clone(),
            task: Task::Document as i32,
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    let (_, text) = result_bytes(&mut client, &job.id, ResultFormat::Text).await;
    assert_eq!(String::from_utf8(text).unwrap().trim_end(), sync.document_text);
    let (content_type, hocr) = result_bytes(&mut client, &job.id, ResultFormat::Hocr).await;
    assert!(content_type.starts_with("text/html"));
    common::assert_valid_hocr(&hocr);

    // The HTTP API: the same job, its status and its result; a submit by s3:// reference.
    let (status, body) = http_get(server.http_api_addr, &format!("/v1/jobs/{}", job.id)).await;
    assert_eq!(status, 200, "{body}");
    let status_body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status_body["state"].as_str(), status_body["pagesDone"].as_u64()), (Some("succeeded"), Some(6)));
    let (status, text) = http_get(server.http_api_addr, &format!("/v1/jobs/{}/result?format=text", job.id)).await;
    assert_eq!((status, text.trim_end()), (200, sync.document_text.as_str()));

    let s3 = S3Client::new(backends.s3_settings()).unwrap();
    let image = golden_image("documents/doc-receipt-01-clean.png");
    backends.s3.create_bucket("incoming").unwrap();
    s3.put_object("incoming", "scans/receipt 1.png", image.clone().into(), "image/png").await.unwrap();
    let submit = http_request(
        server.http_api_addr,
        "POST",
        "/v1/jobs?task=document&s3_uri=s3%3A%2F%2Fincoming%2Fscans%2Freceipt%201.png",
        &[],
        &[],
    )
    .await;
    assert_eq!(submit.status, 202, "{}", submit.text());
    let by_reference = submit.json();
    let id = by_reference["id"].as_str().unwrap().to_owned();
    let done = wait_for(&mut client, &id, Duration::from_secs(60), finished).await;
    assert_eq!(done.state(), JobState::Succeeded, "{done:?}");
    // Idempotent by content: the same bytes uploaded directly are the same job.
    let uploaded =
        http_request(server.http_api_addr, "POST", "/v1/jobs?task=document", &[("content-type", "image/png")], &image)
            .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    assert_eq!(
        (uploaded.json()["id"].as_str(), uploaded.json()["created"].as_bool()),
        (Some(id.as_str()), Some(false))
    );
    let (status, json) = http_get(server.http_api_addr, &format!("/v1/jobs/{id}/result")).await;
    assert_eq!(status, 200);
    let result: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(result["text"].as_str().unwrap().contains("合计"), "{json}");

    // Job calls counted apart from the OCR requests of the two APIs.
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(labelled_metric_sum(&metrics, "ocr_jobs_submitted_total", "result", "created"), 3.0, "{metrics}");
    assert!(labelled_metric_sum(&metrics, "ocr_jobs_submitted_total", "result", "existing") >= 2.0);
    assert!(labelled_metric_sum(&metrics, "ocr_requests_total", "protocol", "job") >= 2.0, "{metrics}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_at_submit_or_recorded_in_the_job_as_a_synchronous_call_would_fail() {
    let backends = Backends::start();
    let server = serving_server(backends.config("kube-ocr/bad-input", Duration::from_secs(3600))).await;
    let mut client = ocr_client(server.grpc_addr).await;

    // What can be checked without reading the document is refused at once.
    let bad_confidence = RecognizeOptions { min_confidence: 2.0, ..RecognizeOptions::default() };
    let refused = client.submit_job(submit_request(numbered_pages_pdf(1), bad_confidence)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("min_confidence"), "{refused:?}");
    let mut as_line = submit_request(numbered_pages_pdf(1), RecognizeOptions::default());
    as_line.task = Task::Line as i32;
    assert_eq!(client.submit_job(as_line).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let mut no_source = submit_request(Vec::new(), RecognizeOptions::default());
    no_source.source = None;
    assert_eq!(client.submit_job(no_source).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let missing = SubmitJobRequest {
        source: Some(submit_job_request::Source::S3Uri(format!("s3://{BUCKET}/no/such/document.png"))),
        ..submit_request(Vec::new(), RecognizeOptions::default())
    };
    let refused = client.submit_job(missing).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    let not_a_uri = SubmitJobRequest {
        source: Some(submit_job_request::Source::S3Uri("https://example.com/a.png".into())),
        ..submit_request(Vec::new(), RecognizeOptions::default())
    };
    assert_eq!(client.submit_job(not_a_uri).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let bad_id = client.get_job(GetJobRequest { id: "../../etc".into() }).await.unwrap_err();
    assert_eq!(bad_id.code(), tonic::Code::InvalidArgument);
    let unknown = client.get_job(GetJobRequest { id: "0".repeat(32) }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let (status, body) = http_get(server.http_api_addr, &format!("/v1/jobs/{}", "0".repeat(32))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["code"], "NOT_FOUND");

    // A document that cannot be read fails its job with the synchronous call's code and message.
    let not_an_image = b"this is not an image".to_vec();
    let sync = client
        .recognize(RecognizeRequest {
            request_id: String::new(),
            image: not_an_image.clone(),
            task: Task::Document as i32,
            options: None,
        })
        .await
        .unwrap_err();
    let job = client.submit_job(submit_request(not_an_image, RecognizeOptions::default())).await.unwrap().into_inner();
    let failed = wait_for(&mut client, &job.id, Duration::from_secs(60), finished).await;
    assert_eq!(failed.state(), JobState::Failed);
    assert_eq!((failed.error_code.as_str(), failed.error_message.as_str()), ("INVALID_ARGUMENT", sync.message()));
    let no_result = client
        .get_job_result(GetJobResultRequest { id: job.id.clone(), format: ResultFormat::Json as i32 })
        .await
        .unwrap_err();
    assert_eq!(no_result.code(), tonic::Code::FailedPrecondition);
    assert!(no_result.message().contains("failed"), "{no_result:?}");
    let (status, _) = http_get(server.http_api_addr, &format!("/v1/jobs/{}/result?format=pdf", job.id)).await;
    assert_eq!(status, 400);
    // Submitting a failed job again retries it (and it fails again, the same way).
    let retried = client
        .submit_job(submit_request(b"this is not an image".to_vec(), RecognizeOptions::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(retried.created && retried.id == job.id);
    server.shutdown().await.unwrap();

    // A pod without jobs says so.
    let plain = serving_server(test_config("ppocr-v4")).await;
    let mut client = ocr_client(plain.grpc_addr).await;
    let refused = client.get_job(GetJobRequest { id: "0".repeat(32) }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    let (status, body) = http_get(plain.http_api_addr, &format!("/v1/jobs/{}", "0".repeat(32))).await;
    assert_eq!(status, 501, "{body}");
    plain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_job_stops_its_work_and_cannot_be_cancelled_twice() {
    let backends = Backends::start();
    let server = serving_server(backends.config("kube-ocr/cancel", Duration::from_secs(3600))).await;
    let mut client = ocr_client(server.grpc_addr).await;
    let options = RecognizeOptions { pdf_dpi: FAST_PDF_DPI, ..RecognizeOptions::default() };
    let job = client.submit_job(submit_request(numbered_pages_pdf(40), options)).await.unwrap();
    let job = job.into_inner();
    wait_for(&mut client, &job.id, Duration::from_secs(60), |job| job.pages_done >= 2).await;
    let cancelled = client.cancel_job(CancelJobRequest { id: job.id.clone() }).await.unwrap().into_inner();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    // The work stops: the pod is idle again well before 40 pages could be read.
    let started = Instant::now();
    loop {
        let (_, metrics) = http_get(server.http_addr, "/metrics").await;
        if metric_value(&metrics, "ocr_jobs_running ") == 0.0 {
            assert!(labelled_metric_sum(&metrics, "ocr_jobs_finished_total", "state", "cancelled") == 1.0);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the cancelled job kept running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = get_job(&mut client, &job.id).await;
    assert!(after.pages_done < 40, "{after:?}");
    let twice = client.cancel_job(CancelJobRequest { id: job.id.clone() }).await.unwrap_err();
    assert_eq!(twice.code(), tonic::Code::FailedPrecondition);
    let again = http_request(server.http_api_addr, "DELETE", &format!("/v1/jobs/{}", job.id), &[], &[]).await;
    assert_eq!(again.status, 409, "{}", again.text());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_pod_is_killed_mid_document_is_finished_once_by_another_pod() {
    let backends = Backends::start();
    let logs = tempfile::tempdir().unwrap();
    let args = backends.pod_args("kube-ocr/takeover");
    let (pod_a, pod_b) =
        tokio::join!(PodProcess::start(&args, logs.path(), "pod-a"), PodProcess::start(&args, logs.path(), "pod-b"),);
    let mut pods = [pod_a, pod_b];
    let mut client = ocr_client(pods[0].grpc).await;
    // Enough pages that the kill lands mid-document (it comes after the fifth).
    let pages = 20;
    let options = RecognizeOptions { pdf_dpi: FAST_PDF_DPI, ..RecognizeOptions::default() };
    let job = client.submit_job(submit_request(numbered_pages_pdf(pages), options)).await.unwrap();
    let job = job.into_inner();
    wait_for(&mut client, &job.id, Duration::from_secs(120), |job| job.pages_done >= 5).await;
    let owner = backends.redis.cli(&["HGET", &format!("kube-ocr/takeover:job:{}", job.id), "owner"]).unwrap();
    let working = if owner.starts_with("pod-a") { 0 } else { 1 };
    assert!(owner.starts_with(["pod-a", "pod-b"][working]), "owner {owner:?}");
    pods[working].kill().await;
    let survivor = &pods[1 - working];
    let mut client = ocr_client(survivor.grpc).await;
    let done = wait_for(&mut client, &job.id, Duration::from_secs(240), finished).await;
    assert_eq!(done.state(), JobState::Succeeded, "{done:?}");
    assert_eq!((done.attempts, done.pages_done, done.pages_total), (2, pages as u32, pages as u32));

    // Every page exactly once, in order, each reading as its own page.
    let (_, json) = result_bytes(&mut client, &job.id, ResultFormat::Json).await;
    let read = result_pages(&json);
    assert_eq!(read.iter().map(|(number, _)| *number).collect::<Vec<_>>(), (1..=pages as u64).collect::<Vec<_>>());
    for (number, text) in &read {
        assert!(names_page(text, *number), "page {number} reads {text:?}");
    }
    // The survivor took it over once and finished it once; the killed pod's pages were not
    // read again (they came from the shared result cache).
    let (_, metrics) = http_get(survivor.http, "/metrics").await;
    assert_eq!(metric_value(&metrics, "ocr_jobs_claimed_total"), 1.0, "{metrics}");
    assert_eq!(labelled_metric_sum(&metrics, "ocr_jobs_finished_total", "state", "succeeded"), 1.0);
    assert!(labelled_metric_sum(&metrics, "ocr_shared_cache_lookups_total", "result", "hit") >= 5.0, "{metrics}");
    // Nothing left in the queue.
    let pending = backends.redis.cli(&["XPENDING", "kube-ocr/takeover:jobs", "workers"]).unwrap();
    assert!(pending.starts_with('0'), "{pending}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_its_upload_and_its_result_are_gone_after_their_ttl() {
    let backends = Backends::start();
    let _lifecycle = backends.s3.run_lifecycle().unwrap();
    // The test build of the S3 server counts a lifecycle day as 10 s; the record's own TTL
    // in Redis is exact.
    let ttl = Duration::from_secs(8);
    let prefix = "kube-ocr/expiry";
    let server = serving_server(backends.config(prefix, ttl)).await;
    let mut client = ocr_client(server.grpc_addr).await;
    let job = client
        .submit_job(submit_request(golden_image("lines/line-en-001-clean.png"), RecognizeOptions::default()))
        .await
        .unwrap()
        .into_inner();
    let done = wait_for(&mut client, &job.id, Duration::from_secs(60), finished).await;
    assert_eq!(done.state(), JobState::Succeeded, "{done:?}");
    let keys = [
        format!("{prefix}/uploads/{}", job.id),
        format!("{prefix}/results/{}.json", job.id),
        format!("{prefix}/results/{}.txt", job.id),
        format!("{prefix}/results/{}.hocr.html", job.id),
    ];
    for key in &keys {
        assert!(backends.s3.object_exists(BUCKET, key).unwrap(), "{key} was not stored");
    }
    let started = Instant::now();
    loop {
        let record_gone = client
            .get_job(GetJobRequest { id: job.id.clone() })
            .await
            .is_err_and(|status| status.code() == tonic::Code::NotFound);
        let objects_left: Vec<&String> =
            keys.iter().filter(|key| backends.s3.object_exists(BUCKET, key).unwrap()).collect();
        if record_gone && objects_left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "after 90 s: record gone {record_gone}, objects left {objects_left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let expired = client
        .get_job_result(GetJobResultRequest { id: job.id.clone(), format: ResultFormat::Json as i32 })
        .await
        .unwrap_err();
    assert_eq!(expired.code(), tonic::Code::NotFound);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_front_takes_jobs_while_no_pod_works_them_and_the_first_pod_to_start_does() {
    let backends = Backends::start();
    let prefix = "kube-ocr/front";
    let front = start_jobs_front(backends.front_config(prefix)).await.unwrap();
    let (status, _) = http_get(front.http_addr, "/readyz").await;
    assert_eq!(status, 200, "a front is ready at once: it loads nothing");
    let mut client = ocr_client(front.grpc_addr).await;

    // Synchronous calls are refused with the reason; jobs are taken and wait.
    let sync = client
        .recognize(RecognizeRequest {
            request_id: String::new(),
            image: golden_image("lines/line-en-001-clean.png"),
            task: Task::Line as i32,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(sync.code(), tonic::Code::Unimplemented);
    assert!(sync.message().contains("job front"), "{sync:?}");
    let refused = client
        .submit_job(submit_request(numbered_pages_pdf(1), RecognizeOptions { pdf_dpi: 5000, ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "the front checks what the pods check");
    let options = RecognizeOptions { pdf_dpi: FAST_PDF_DPI, ..RecognizeOptions::default() };
    let job = client.submit_job(submit_request(numbered_pages_pdf(3), options)).await.unwrap().into_inner();
    assert!(job.created);
    let upload = http_request(
        front.http_api_addr,
        "POST",
        "/v1/jobs?task=line",
        &[("content-type", "image/png")],
        &golden_image("lines/line-en-001-clean.png"),
    )
    .await;
    assert_eq!(upload.status, 202, "{}", upload.text());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get_job(&mut client, &job.id).await.state(), JobState::Queued, "nobody works jobs on a front");

    // The first pod to start works what waited.
    let worker = serving_server(backends.config(prefix, Duration::from_secs(3600))).await;
    let done = wait_for(&mut client, &job.id, Duration::from_secs(120), finished).await;
    assert_eq!((done.state(), done.pages_done), (JobState::Succeeded, 3), "{done:?}");
    let (status, text) = http_get(front.http_api_addr, &format!("/v1/jobs/{}/result?format=text", job.id)).await;
    assert_eq!(status, 200, "{text}");
    assert!(names_page(&text, 3), "{text}");
    let (_, metrics) = http_get(front.http_addr, "/metrics").await;
    assert_eq!(labelled_metric_sum(&metrics, "ocr_jobs_submitted_total", "result", "created"), 2.0, "{metrics}");
    worker.shutdown().await.unwrap();
    front.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_draining_pod_puts_its_job_back_at_once_and_another_pod_finishes_it() {
    let backends = Backends::start();
    let prefix = "kube-ocr/drain";
    // A takeover would wait a minute: a job finished sooner was put back by the drain.
    let claim_after = Duration::from_secs(60);
    let config = |consumer: &str| {
        let mut config = backends.config(prefix, Duration::from_secs(3600));
        let jobs = config.jobs.as_mut().unwrap();
        (jobs.consumer, jobs.claim_after) = (consumer.to_owned(), claim_after);
        ServerConfig { drain_delay: Duration::from_millis(100), ..config }
    };
    let (a, b) = tokio::join!(serving_server(config("drain-a")), serving_server(config("drain-b")));
    let mut client = ocr_client(a.grpc_addr).await;
    let options = RecognizeOptions { pdf_dpi: FAST_PDF_DPI, ..RecognizeOptions::default() };
    let job = client.submit_job(submit_request(numbered_pages_pdf(12), options)).await.unwrap().into_inner();
    wait_for(&mut client, &job.id, Duration::from_secs(60), |job| job.pages_done >= 2).await;
    let owner = backends.redis.cli(&["HGET", &format!("{prefix}:job:{}", job.id), "owner"]).unwrap();
    let (draining, survivor) = if owner.trim() == "drain-a" { (a, b) } else { (b, a) };
    assert!(["drain-a", "drain-b"].contains(&owner.trim()), "owner {owner:?}");
    let survivor_name = if owner.trim() == "drain-a" { "drain-b" } else { "drain-a" };
    let drained_at = Instant::now();
    draining.shutdown().await.unwrap();
    // Put back at once and taken by the other pod, not left for a takeover a minute on.
    let record = format!("{prefix}:job:{}", job.id);
    while backends.redis.cli(&["HGET", &record, "owner"]).unwrap().trim() != survivor_name {
        assert!(drained_at.elapsed() < Duration::from_secs(15), "the drained pod's job was not put back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = ocr_client(survivor.grpc_addr).await;
    let done = wait_for(&mut client, &job.id, Duration::from_secs(180), finished).await;
    assert_eq!((done.state(), done.pages_done), (JobState::Succeeded, 12), "{done:?}");
    assert_eq!(done.attempts, 1, "a drain is not an attempt: {done:?}");
    let (_, metrics) = http_get(survivor.http_addr, "/metrics").await;
    assert_eq!(metric_value(&metrics, "ocr_jobs_claimed_total"), 0.0, "{metrics}");
    survivor.shutdown().await.unwrap();
}
