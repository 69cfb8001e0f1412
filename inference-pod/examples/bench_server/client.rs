//! The server under test and the closed-loop client: an in-process pod on 127.0.0.1 with
//! the pod's default flags (result cache off), one gRPC channel to it, and `concurrency`
//! callers that each send the next golden image as soon as their previous answer came.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kube_ocr_golden::Predictions;
use kube_ocr_inference::model::{DeviceRequest, ModelOptions};
use kube_ocr_inference::serve::{BatcherConfig, RunningServer, ServerConfig, start};
use kube_ocr_proto::contract::code_name;
use kube_ocr_proto::v1::ocr_client::OcrClient;
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, RecognizeResponse, Task as ProtoTask, Timings};
use kube_ocr_vision::image::DecodeLimits;
use tonic::transport::Channel;

use crate::golden::Sample;
use crate::window::Window;

/// The pod's flag defaults (`ocr-inference-pod --help`) but for the ports, the cache (off:
/// every request runs the pipeline), `--max-batch-size`, the libtorch threads and the
/// request timeout: 16 pages in flight on 2 loaded cores can take longer than the default
/// 25 s, and the closed loops measure throughput, not deadlines (figure 4 sets its own).
pub fn server_config(bundle: &std::path::Path, threads: i32, max_batch_size: usize) -> ServerConfig {
    ServerConfig {
        bundle_dir: bundle.to_path_buf(),
        device: DeviceRequest::Cpu,
        listen_host: std::net::Ipv4Addr::LOCALHOST.into(),
        grpc_port: 0,
        http_api_port: 0,
        http_port: 0,
        cors: kube_ocr_inference::serve::CorsPolicy::Off,
        batching: BatcherConfig { max_batch_size, max_queue_delay: Duration::from_millis(5), max_queue: 256 },
        decode_limits: DecodeLimits::default(),
        max_image_bytes: 20 << 20,
        max_pages: 50,
        // target/<profile>/examples/bench_server → target/<profile>/ocr-pdf-render (`make bench` builds it).
        pdf: kube_ocr_inference::serve::PdfSettings::with_program(
            std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.parent()?.join("ocr-pdf-render")))
                .unwrap_or_else(|| "ocr-pdf-render".into()),
        ),
        request_timeout: Duration::from_secs(120),
        cache_bytes: 0,
        shared_cache: None,
        jobs: None,
        self_test_dir: None,
        self_test_min_accuracy: None,
        max_precision_accuracy_drop: kube_ocr_inference::serve::DEFAULT_MAX_PRECISION_ACCURACY_DROP,
        torch_threads: Some(threads),
        deadline_admission: true,
        model_options: ModelOptions::default(),
        drain_delay: Duration::ZERO,
        shutdown_grace: Duration::from_secs(30),
    }
}

/// Passes over the images before anything is measured, on every path: first calls of a
/// shape allocate, and with TorchScript's profiling executor on (the model layer's default
/// is off) a module profiles its first call and optimises on the second.
pub const WARM_UP_PASSES: usize = 2;

/// A started, self-tested server and a client connected to it.
pub struct Serving {
    server: RunningServer,
    pub client: OcrClient<Channel>,
    /// The same server's HTTP API.
    pub http_api_addr: std::net::SocketAddr,
}

impl Serving {
    /// Starts the server and warms it up with [`WARM_UP_PASSES`] over `warm_up`.
    pub async fn start(config: ServerConfig, warm_up: &[(&[Sample], ProtoTask)]) -> anyhow::Result<Self> {
        let server = start(config).await?;
        server.wait_until_serving(Duration::from_secs(300)).await.map_err(anyhow::Error::msg)?;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))?.connect().await?;
        let mut client = OcrClient::new(channel).max_decoding_message_size(64 << 20);
        for _ in 0..WARM_UP_PASSES {
            for (samples, task) in warm_up {
                for sample in *samples {
                    client.recognize(request(sample, *task)).await?;
                }
            }
        }
        Ok(Self { http_api_addr: server.http_api_addr, server, client })
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.server.shutdown().await?;
        Ok(())
    }
}

/// The request for one golden image; the cache is bypassed so every call does the work.
pub fn request(sample: &Sample, task: ProtoTask) -> RecognizeRequest {
    RecognizeRequest {
        request_id: sample.id.clone(),
        image: sample.bytes.clone(),
        task: task as i32,
        options: Some(RecognizeOptions { bypass_cache: true, ..Default::default() }),
    }
}

/// One call; its round-trip time and the answer.
pub async fn call(
    client: &mut OcrClient<Channel>,
    sample: &Sample,
    task: ProtoTask,
) -> Result<(Duration, RecognizeResponse), tonic::Status> {
    let sent = Instant::now();
    let response = client.recognize(request(sample, task)).await?.into_inner();
    Ok((sent.elapsed(), response))
}

/// Sums of the server's own per-phase timings (`RecognizeResponse.timings`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerPhases {
    pub count: u32,
    pub queue: Duration,
    pub preprocess: Duration,
    pub inference: Duration,
    pub postprocess: Duration,
    pub total: Duration,
}

impl ServerPhases {
    pub fn add(&mut self, timings: Option<&Timings>) {
        let Some(t) = timings else { return };
        self.count += 1;
        for (sum, us) in [
            (&mut self.queue, t.queue_us),
            (&mut self.preprocess, t.preprocess_us),
            (&mut self.inference, t.inference_us),
            (&mut self.postprocess, t.postprocess_us),
            (&mut self.total, t.total_us),
        ] {
            *sum += Duration::from_micros(us);
        }
    }

    /// The mean of one phase's sum.
    pub fn mean(&self, sum: Duration) -> Duration {
        sum / self.count.max(1)
    }
}

/// When a closed loop stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// Count completions in a [`Window`] that opens once every caller has had an answer
    /// and closes once it lasted this long and counted a whole pass over the images; then
    /// stop sending and wait for the calls in flight, which are not counted.
    Window(Duration),
    /// Send this many requests; count them all.
    Requests(usize),
}

/// What one closed-loop run measured.
#[derive(Debug)]
pub struct LoadRun {
    /// Completions inside the window.
    pub completed: usize,
    pub window: Duration,
    /// Round trips of the completions inside the window.
    pub latencies: Vec<Duration>,
    /// The last answer per image, of every completion (the ramp and the tail included).
    pub predictions: Predictions,
    /// Server timings of the completions inside the window.
    pub phases: ServerPhases,
    /// Failed calls by gRPC code name, wherever they fell (none expected: a closed loop
    /// never offers more than its callers).
    pub errors: BTreeMap<&'static str, usize>,
}

impl LoadRun {
    /// "none", or the failed calls by code, e.g. "DEADLINE_EXCEEDED 3".
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "none".to_owned();
        }
        self.errors.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
    }

    pub fn rate(&self) -> f64 {
        crate::stats::per_second(self.completed, self.window)
    }
}

struct Tally {
    window: Window,
    answered: usize,
    run: LoadRun,
}

impl Tally {
    fn record(&mut self, done_at: Instant, answer: Result<(Duration, RecognizeResponse), tonic::Status>) {
        let counted = self.window.finish(done_at, answer.is_ok());
        let run = &mut self.run;
        match answer {
            Ok((latency, response)) => {
                self.answered += 1;
                if counted {
                    run.completed += 1;
                    run.latencies.push(latency);
                    run.phases.add(response.timings.as_ref());
                }
                run.predictions.insert(response.request_id, response.text);
            }
            Err(status) => *run.errors.entry(code_name(status.code())).or_default() += 1,
        }
    }
}

fn lock(tally: &Mutex<Tally>) -> MutexGuard<'_, Tally> {
    // A caller that panicked left plain counters behind; the tally is still readable.
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `concurrency` callers sending `samples` in turn (each caller's next call goes out when
/// its previous one is answered) until `stop`.
pub async fn closed_loop(
    client: &OcrClient<Channel>,
    samples: Arc<Vec<Sample>>,
    task: ProtoTask,
    concurrency: usize,
    stop: Stop,
) -> anyhow::Result<LoadRun> {
    let next = Arc::new(AtomicUsize::new(0));
    let window = match stop {
        Stop::Window(length) => Window::after_ramp(concurrency, length, samples.len()),
        Stop::Requests(_) => Window::everything(Instant::now()),
    };
    let tally = Arc::new(Mutex::new(Tally {
        window,
        answered: 0,
        run: LoadRun {
            completed: 0,
            window: Duration::ZERO,
            latencies: Vec::new(),
            predictions: Predictions::new(),
            phases: ServerPhases::default(),
            errors: BTreeMap::new(),
        },
    }));
    let callers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (mut client, samples, next, tally) = (client.clone(), samples.clone(), next.clone(), tally.clone());
            tokio::spawn(async move {
                loop {
                    // Every image goes out at least once, so every one has an answer to score.
                    if lock(&tally).window.closed() && next.load(Ordering::Relaxed) >= samples.len() {
                        break;
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if matches!(stop, Stop::Requests(limit) if n >= limit) {
                        break;
                    }
                    let answer = call(&mut client, &samples[n % samples.len()], task).await;
                    lock(&tally).record(Instant::now(), answer);
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await?;
    }
    let tally =
        Arc::into_inner(tally).expect("every caller has finished").into_inner().unwrap_or_else(PoisonError::into_inner);
    if tally.answered == 0 {
        anyhow::bail!("no call was answered: {:?}", tally.run.errors);
    }
    Ok(LoadRun { window: tally.window.length(Instant::now()), ..tally.run })
}
