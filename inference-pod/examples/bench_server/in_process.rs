//! The server's work without the server: the same bytes through decode, the vision
//! pipeline functions and the model stages, called one after another on this thread. No
//! gRPC, no queue, no batcher, no thread hand-offs: what figure 1 subtracts from the
//! server's round trip.
//!
//! It mirrors the engine step for step (`serve/engine`): the stages get batches of at
//! most `max_batch_size` items in submission order, which is what the batcher gives them
//! at concurrency 1; the recogniser stage splits those into width buckets of at most the
//! batch size that reads fastest, measured at load as the engine measures it.
//!
//! [`Worker`] runs it on one thread of its own, as each stage has one in the server:
//! libtorch's OpenMP team belongs to the thread that calls it, and calls from whichever
//! runtime thread happens to run the benchmark would start and leave spinning a team per
//! thread.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use image::RgbImage;
use kube_ocr_golden::Task;
use kube_ocr_inference::model::{
    BatchProcessor, Bundle, ClassifierInput, ClassifierStage, ComputeDevice, DetectorStage, ModelOptions, Recognizer,
    RecognizerStage, Stage, TorchScriptModule,
};
use kube_ocr_vision::image::{DecodeLimits, decode_image, trim_margins};
use kube_ocr_vision::input::classifier_input;
use kube_ocr_vision::layout::{find_lines, prepare_document};
use kube_ocr_vision::params::PipelineParams;
use kube_ocr_vision::postprocess::{LINE_TURN_PROPOSAL, half_turn_reads_better, rotate_half_turn, should_rotate};

/// Where one in-process read spent its time, split as the server's `Timings` split it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Decode, page preparation, classifier inputs, half turns.
    pub preprocess: Duration,
    /// Model stages (their own input tensors and output decoding included, as in the server).
    pub inference: Duration,
    /// Box finding and crops, half turns of page crops.
    pub postprocess: Duration,
}

impl Phases {
    pub fn total(&self) -> Duration {
        self.preprocess + self.inference + self.postprocess
    }
}

/// One image read in process: the text as the server would answer it, and the split.
#[derive(Debug)]
pub struct Read {
    pub text: String,
    pub phases: Phases,
}

/// The bundle's stages on the CPU, driven directly.
#[derive(Debug)]
pub struct InProcess {
    /// Lines per recogniser forward pass, chosen by measurement as the engine chooses.
    pub recognizer_batch: usize,
    params: PipelineParams,
    limits: DecodeLimits,
    max_batch_size: usize,
    detector: Option<DetectorStage>,
    classifier: Option<ClassifierStage>,
    recognizer: RecognizerStage,
}

impl InProcess {
    pub fn load(bundle_dir: &Path, max_batch_size: usize, limits: DecodeLimits) -> anyhow::Result<Self> {
        let bundle = Bundle::load(bundle_dir)?;
        let options = ModelOptions::default();
        let module = |name: &str, file: &Path| {
            TorchScriptModule::load(name, &bundle.path_of(file), ComputeDevice::Cpu, options)
                .with_context(|| format!("loading the {name}"))
        };
        let pipeline = &bundle.manifest.pipeline;
        let detector = if pipeline.contains(&Stage::Detect) {
            Some(DetectorStage { module: module("detector", &bundle.files.detector.file)? })
        } else {
            None
        };
        let classifier = if pipeline.contains(&Stage::Classify) {
            Some(ClassifierStage {
                module: module("classifier", &bundle.files.classifier.file)?,
                input_shape: bundle.manifest.params.classifier.input_shape,
                labels: bundle.manifest.params.classifier.labels.len(),
            })
        } else {
            None
        };
        let recognizer = Recognizer::load(&bundle, ComputeDevice::Cpu, options)?;
        let recognizer_batch = fastest_recognizer_batch(&recognizer, max_batch_size)?;
        Ok(Self {
            recognizer_batch,
            params: bundle.manifest.params.clone(),
            limits,
            max_batch_size: max_batch_size.max(1),
            detector,
            classifier,
            recognizer: RecognizerStage { recognizer, max_batch_size: recognizer_batch },
        })
    }

    /// Reads `bytes` as the server reads a request of `task` with default options.
    pub fn read(&mut self, bytes: &[u8], task: Task) -> anyhow::Result<Read> {
        let mut phases = Phases::default();
        let started = Instant::now();
        let page = decode_image(bytes, self.limits)?;
        let prepared = match (task, &self.detector) {
            (Task::Document, Some(_)) => prepare_document(&page, &self.params),
            _ => None,
        };
        phases.preprocess += started.elapsed();

        let crops = match (prepared, &mut self.detector) {
            (Some(prepared), Some(detector)) => {
                let started = Instant::now();
                let map =
                    detector.process(vec![prepared.detector_input.clone()]).pop().context("no detector output")?;
                let map = map.map_err(|e| anyhow::anyhow!("detector: {e}"))?;
                phases.inference += started.elapsed();
                let started = Instant::now();
                let (_quads, crops) = find_lines(&prepared, &map, &self.params)?;
                phases.postprocess += started.elapsed();
                crops
            }
            _ => vec![page],
        };
        if crops.is_empty() {
            return Ok(Read { text: String::new(), phases });
        }
        let crops = match task {
            Task::Document => self.orient(crops, &mut phases)?,
            Task::Line => {
                crops.into_iter().map(|line| self.orient_line(line, &mut phases)).collect::<Result<_, _>>()?
            }
        };

        let started = Instant::now();
        let mut decoded = Vec::with_capacity(crops.len());
        let mut crops = crops.into_iter().peekable();
        while crops.peek().is_some() {
            let batch: Vec<RgbImage> = crops.by_ref().take(self.max_batch_size).collect();
            for line in self.recognizer.process(batch) {
                decoded.push(line.map_err(|e| anyhow::anyhow!("recogniser: {e}"))?);
            }
        }
        phases.inference += started.elapsed();

        let floor = match task {
            Task::Document => self.params.pipeline_options.text_score,
            Task::Line => 0.0,
        };
        let text = decoded
            .iter()
            .map(|line| (line.text.trim(), line.confidence))
            .filter(|&(text, confidence)| confidence >= floor && (task == Task::Line || !text.is_empty()))
            .map(|(text, _)| text)
            .collect::<Vec<_>>()
            .join("\n");
        Ok(Read { text, phases })
    }

    /// A LINE image as the engine orients it (`serve/engine/line_orientation.rs`): the
    /// classifier on its tight crop proposes a half turn, kept only when the recogniser
    /// reads the turned line better than the line as sent.
    fn orient_line(&mut self, line: RgbImage, phases: &mut Phases) -> anyhow::Result<RgbImage> {
        let Some(classifier) = &mut self.classifier else {
            return Ok(line);
        };
        let config = &self.params.classifier;
        let started = Instant::now();
        let input = classifier_input(&trim_margins(&line), config, self.params.color_order);
        phases.preprocess += started.elapsed();
        let Some(data) = input else {
            return Ok(line);
        };
        let started = Instant::now();
        let verdict = classifier.process(vec![ClassifierInput { data }]).pop().context("no classifier output")?;
        let verdict = verdict.map_err(|e| anyhow::anyhow!("classifier: {e}"))?;
        phases.inference += started.elapsed();
        if !should_rotate(&verdict, &config.labels, LINE_TURN_PROPOSAL) {
            return Ok(line);
        }
        let started = Instant::now();
        let turned = rotate_half_turn(&line);
        phases.preprocess += started.elapsed();
        let started = Instant::now();
        let reads = self.recognizer.process(vec![line.clone(), turned.clone()]);
        phases.inference += started.elapsed();
        match reads.as_slice() {
            [Ok(as_sent), Ok(half_turn)] if half_turn_reads_better(as_sent, half_turn) => Ok(turned),
            _ => Ok(line),
        }
    }

    /// The direction classifier over a page's crops, half-turning the upside-down ones.
    fn orient(&mut self, crops: Vec<RgbImage>, phases: &mut Phases) -> anyhow::Result<Vec<RgbImage>> {
        let Some(classifier) = &mut self.classifier else {
            return Ok(crops);
        };
        let config = &self.params.classifier;
        let started = Instant::now();
        let inputs: Vec<ClassifierInput> = crops
            .iter()
            .map(|crop| ClassifierInput {
                data: classifier_input(crop, config, self.params.color_order).unwrap_or_default(),
            })
            .collect();
        phases.preprocess += started.elapsed();
        let started = Instant::now();
        let mut probabilities = Vec::with_capacity(inputs.len());
        let mut inputs = inputs.into_iter().peekable();
        while inputs.peek().is_some() {
            let batch: Vec<ClassifierInput> = inputs.by_ref().take(self.max_batch_size).collect();
            for output in classifier.process(batch) {
                probabilities.push(output.map_err(|e| anyhow::anyhow!("classifier: {e}"))?);
            }
        }
        phases.inference += started.elapsed();
        let started = Instant::now();
        let crops = crops
            .into_iter()
            .zip(&probabilities)
            .map(
                |(crop, p)| {
                    if should_rotate(p, &config.labels, config.threshold) { rotate_half_turn(&crop) } else { crop }
                },
            )
            .collect();
        phases.postprocess += started.elapsed();
        Ok(crops)
    }
}

/// The engine's choice of recogniser batch ([`Recognizer::fastest_batch_size`]). A
/// measurement of its own, so on a noisy machine it can choose differently from the
/// server; the report shows the choice.
fn fastest_recognizer_batch(recognizer: &Recognizer, max_batch_size: usize) -> anyhow::Result<usize> {
    Ok(recognizer.fastest_batch_size(max_batch_size)?.0)
}

/// One read for the worker: the bytes, the task, where the answer goes.
struct Job {
    bytes: Vec<u8>,
    task: Task,
    reply: tokio::sync::oneshot::Sender<anyhow::Result<(Duration, Read)>>,
}

/// [`InProcess`] on a dedicated thread.
#[derive(Debug)]
pub struct Worker {
    pub recognizer_batch: usize,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn start(mut pipeline: InProcess) -> anyhow::Result<Self> {
        let recognizer_batch = pipeline.recognizer_batch;
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new().name("in-process".into()).spawn(move || {
            for job in queue {
                let started = Instant::now();
                let read = pipeline.read(&job.bytes, job.task);
                let _ = job.reply.send(read.map(|read| (started.elapsed(), read)));
            }
        })?;
        Ok(Self { recognizer_batch, jobs: Some(jobs), thread: Some(thread) })
    }

    /// Reads `bytes`; the time is measured on the worker thread, around the read alone.
    pub async fn read(&self, bytes: &[u8], task: Task) -> anyhow::Result<(Duration, Read)> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job { bytes: bytes.to_vec(), task, reply };
        self.jobs.as_ref().context("worker stopped")?.send(job).map_err(|_| anyhow::anyhow!("worker stopped"))?;
        answer.await.context("worker stopped")?
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
