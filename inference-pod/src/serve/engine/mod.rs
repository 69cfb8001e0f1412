//! One OCR request through the pipeline: decode → (detect → boxes → crops, turning the
//! page upright when it came turned) → classify → recognise. CPU-bound steps run on tokio's blocking pool, model forwards on the
//! stage batchers' worker threads; this async layer only moves data between them.

mod error;
mod line_orientation;
mod page;
mod request;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use image::RgbImage;
use kube_ocr_vision::image::{DecodeLimits, Quad, crop_is_quarter_turned, decode_image};
use kube_ocr_vision::input::classifier_input;
use kube_ocr_vision::layout::{PageRotation, whole_image_quad};
use kube_ocr_vision::postprocess::{LinePlacement, rotate_half_turn, should_rotate, word_boxes};

pub(crate) use error::OcrError;
use page::UprightLines;
pub(crate) use request::{OcrLine, OcrOptions, OcrOutput, OcrTask, PageImage, PhaseTimings, TextSource};

use crate::model::{
    Bundle, ClassifierInput, ClassifierStage, ComputeDevice, DetectorStage, ModelError, ModelOptions, Recognizer,
    RecognizerStage, Stage, TorchScriptModule,
};
use crate::serve::admission::{Admission, CostClass, Ticket};
use crate::serve::batcher::{BatchError, BatchObserver, Batcher, BatcherConfig};
use crate::serve::error::ServeError;

/// Which model stages run, their batching, and how big an input may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineConfig {
    pub batching: BatcherConfig,
    pub decode_limits: DecodeLimits,
    pub model_options: ModelOptions,
    /// Consult the admission estimate (see [`crate::serve::admission`]).
    pub deadline_admission: bool,
}

/// The loaded bundle and one batcher per model stage.
pub(crate) struct Engine {
    /// Requests admitted and not finished: the bound `--max-queue` sets. Admission is per
    /// request, not per line crop, so a request is refused whole or not at all.
    queue_slots: tokio::sync::Semaphore,
    /// The deadline-aware estimate consulted after the bound.
    admission: Mutex<Admission>,
    bundle: Arc<Bundle>,
    device: ComputeDevice,
    config: EngineConfig,
    detector: Option<Batcher<DetectorStage>>,
    classifier: Option<Batcher<ClassifierStage>>,
    recognizer: Batcher<RecognizerStage>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("model", &self.bundle.manifest.name).field("device", &self.device).finish()
    }
}

impl Engine {
    /// Loads every module of the bundle onto `device` and starts the stage workers.
    pub(crate) fn load(
        bundle: Bundle,
        device: ComputeDevice,
        config: EngineConfig,
        observer: BatchObserver,
    ) -> Result<Self, ServeError> {
        let manifest = &bundle.manifest;
        let files = &bundle.files;
        // Stage queues hold line crops of admitted requests; admission bounds those, so
        // the stage bound is only a backstop against pages with thousands of lines.
        let stage_batching =
            BatcherConfig { max_queue: config.batching.max_queue.saturating_mul(64).max(4096), ..config.batching };
        let spawn_error = |stage: &'static str, source: std::io::Error| ServeError::StartWorker { stage, source };
        let detector = if manifest.pipeline.contains(&Stage::Detect) {
            let module = TorchScriptModule::load(
                "detector",
                &bundle.path_of(&files.detector.file),
                device,
                config.model_options,
            )
            .map_err(ServeError::LoadModel)?;
            let stage = DetectorStage { module };
            Some(
                Batcher::start("detect", stage_batching, stage, observer.clone())
                    .map_err(|e| spawn_error("detect", e))?,
            )
        } else {
            None
        };
        let classifier = if manifest.pipeline.contains(&Stage::Classify) {
            let module = TorchScriptModule::load(
                "classifier",
                &bundle.path_of(&files.classifier.file),
                device,
                config.model_options,
            )
            .map_err(ServeError::LoadModel)?;
            let stage = ClassifierStage {
                module,
                input_shape: manifest.params.classifier.input_shape,
                labels: manifest.params.classifier.labels.len(),
            };
            Some(
                Batcher::start("classify", stage_batching, stage, observer.clone())
                    .map_err(|e| spawn_error("classify", e))?,
            )
        } else {
            None
        };
        let recognizer = Recognizer::load(&bundle, device, config.model_options).map_err(ServeError::LoadModel)?;
        let max_batch_size = fastest_recognizer_batch(&recognizer, config.batching.max_batch_size)?;
        let stage = RecognizerStage { recognizer, max_batch_size };
        let recognizer =
            Batcher::start("recognize", stage_batching, stage, observer).map_err(|e| spawn_error("recognize", e))?;
        let queue_slots = tokio::sync::Semaphore::new(config.batching.max_queue.max(1));
        let admission = Mutex::new(Admission::default());
        Ok(Self { queue_slots, admission, bundle: Arc::new(bundle), device, config, detector, classifier, recognizer })
    }

    pub(crate) fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    pub(crate) fn device(&self) -> ComputeDevice {
        self.device
    }

    pub(crate) fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Items waiting per stage, for the queue-depth gauge.
    pub(crate) fn queue_depths(&self) -> Vec<(&'static str, usize)> {
        let mut depths = Vec::new();
        if let Some(detector) = &self.detector {
            depths.push(("detect", detector.depth()));
        }
        if let Some(classifier) = &self.classifier {
            depths.push(("classify", classifier.depth()));
        }
        depths.push(("recognize", self.recognizer.depth()));
        depths
    }

    /// Runs one image through the pipeline, or refuses it at once when it cannot finish by
    /// `deadline` (the queue bound, then the admission estimate). Work still queued when
    /// the deadline passes is dropped before compute.
    pub(crate) async fn recognize(
        &self,
        image: PageImage,
        task: OcrTask,
        options: OcrOptions,
        deadline: Instant,
    ) -> Result<OcrOutput, OcrError> {
        let _admitted = self.queue_slots.try_acquire().map_err(|_| BatchError::<ModelError>::QueueFull {
            stage: "request",
            capacity: self.config.batching.max_queue,
        })?;
        let class = match task {
            OcrTask::Document if self.detector.is_some() => CostClass::Document,
            _ => CostClass::Line,
        };
        let claim = AdmissionClaim::admit(&self.admission, class, deadline, self.config.deadline_admission)?;
        let output = self.run_pipeline(image, task, options, deadline).await?;
        claim.finish(output.timings.model_cost);
        Ok(output)
    }

    /// The expected latency of a new request of `task` right now, if measured yet.
    pub(crate) fn expected_latency(&self, task: OcrTask) -> Option<std::time::Duration> {
        let class = match task {
            OcrTask::Document if self.detector.is_some() => CostClass::Document,
            _ => CostClass::Line,
        };
        lock(&self.admission).expected_latency(class)
    }

    async fn run_pipeline(
        &self,
        image: PageImage,
        task: OcrTask,
        options: OcrOptions,
        deadline: Instant,
    ) -> Result<OcrOutput, OcrError> {
        let mut timings = PhaseTimings::default();
        let limits = self.config.decode_limits;
        let started = Instant::now();
        let page = match image {
            PageImage::Encoded(bytes) => Arc::new(blocking(move || decode_image(&bytes, limits)).await??),
            PageImage::Pixels(pixels) => pixels,
        };
        timings.preprocess += started.elapsed();
        let (width, height) = page.dimensions();

        let found = match (&self.detector, task) {
            (Some(detector), OcrTask::Document) => {
                self.find_upright_lines(detector, &page, options, deadline, &mut timings).await?
            }
            // A page without a detector is one line; a whole LINE image, margins included,
            // confuses the classifier, so it has its own path (line_orientation.rs) that
            // classifies the tight crop and confirms with the recogniser.
            _ => {
                let whole = vec![(*page).clone()];
                let (crops, rotated) = match task {
                    OcrTask::Document => self.orient(whole, options, deadline, &mut timings).await?,
                    OcrTask::Line => self.orient_lines(whole, options, deadline, &mut timings).await?,
                };
                UprightLines {
                    quads: vec![whole_image_quad(width, height)],
                    crops,
                    rotated,
                    rotation: PageRotation::Upright,
                    upright_size: (width, height),
                }
            }
        };
        let UprightLines { quads, crops, rotated, rotation, upright_size: (upright_width, upright_height) } = found;
        if crops.is_empty() {
            return Ok(OcrOutput { lines: Vec::new(), width, height, rotation, timings, source: TextSource::Ocr });
        }

        let pending = self.recognizer.enqueue_all(crops, deadline)?;
        let mut decoded = Vec::with_capacity(pending.len());
        for receiver in pending {
            decoded.push(receiver.await.map_err(|source| OcrError::AwaitStage { stage: "recognizer", source })??);
        }
        timings.add_stage(&decoded);

        // Pages drop what the bundle deems noise (rapidocr's textScore) and empty reads; a
        // LINE request was told there is a line, so it gets the read whatever its
        // confidence, unless the caller set a floor.
        let floor = match task {
            OcrTask::Document => self.bundle.manifest.params.pipeline_options.text_score.max(options.min_confidence),
            OcrTask::Line => options.min_confidence,
        };
        let to_sent = |quad: &Quad| rotation.to_sent(quad, upright_width, upright_height);
        let lines = decoded
            .into_iter()
            .zip(quads)
            .zip(rotated)
            .map(|((line, quad), rotated_180)| {
                // A page's crops are warped from their quads (and tall ones turned a
                // quarter); a LINE image is read whole as it came.
                let quarter_turned = task == OcrTask::Document && crop_is_quarter_turned(&quad);
                let placement = LinePlacement { quad, quarter_turned, half_turned: rotated_180 };
                let mut words = word_boxes(&line.output.chars, line.output.input(), &placement);
                for word in &mut words {
                    word.quad = to_sent(&word.quad);
                }
                OcrLine {
                    // The charset's space class can open or close a read; it carries nothing.
                    text: line.output.text.trim().to_owned(),
                    confidence: line.output.confidence,
                    words,
                    quad: to_sent(&quad),
                    rotated_180,
                }
            })
            .filter(|line| line.confidence >= floor && (task == OcrTask::Line || !line.text.is_empty()))
            .collect();
        Ok(OcrOutput { lines, width, height, rotation, timings, source: TextSource::Ocr })
    }

    /// Turns crops the classifier reads as upside down; returns the crops and which turned.
    async fn orient(
        &self,
        crops: Vec<RgbImage>,
        options: OcrOptions,
        deadline: Instant,
        timings: &mut PhaseTimings,
    ) -> Result<(Vec<RgbImage>, Vec<bool>), OcrError> {
        let Some(classifier) = self.classifier.as_ref().filter(|_| !options.skip_orientation) else {
            let count = crops.len();
            return Ok((crops, vec![false; count]));
        };
        let bundle = self.bundle.clone();
        let started = Instant::now();
        let (crops, inputs) = blocking(move || {
            let params = &bundle.manifest.params;
            let inputs: Vec<ClassifierInput> = crops
                .iter()
                .map(|crop| ClassifierInput {
                    data: classifier_input(crop, &params.classifier, params.color_order).unwrap_or_default(),
                })
                .collect();
            (crops, inputs)
        })
        .await?;
        timings.preprocess += started.elapsed();
        let pending = classifier.enqueue_all(inputs, deadline)?;
        let mut results = Vec::with_capacity(pending.len());
        for receiver in pending {
            results.push(receiver.await.map_err(|source| OcrError::AwaitStage { stage: "classifier", source })??);
        }
        timings.add_stage(&results);
        let config = &self.bundle.manifest.params.classifier;
        let mut rotated = Vec::with_capacity(crops.len());
        let crops = crops
            .into_iter()
            .zip(&results)
            .map(|(crop, probabilities)| {
                let turn = should_rotate(&probabilities.output, &config.labels, config.threshold);
                rotated.push(turn);
                if turn { rotate_half_turn(&crop) } else { crop }
            })
            .collect();
        Ok((crops, rotated))
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, OcrError> {
    tokio::task::spawn_blocking(work).await.map_err(OcrError::RunBlocking)
}

fn lock(admission: &Mutex<Admission>) -> MutexGuard<'_, Admission> {
    // The estimate is plain numbers updated in one step each; a panic elsewhere cannot
    // leave it half-written.
    admission.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An admitted request's place in the estimate. Dropped without [`finish`](Self::finish)
/// (an error, or the caller went away and the future was dropped) it gives its share back.
struct AdmissionClaim<'a> {
    admission: &'a Mutex<Admission>,
    ticket: Option<Ticket>,
}

impl<'a> AdmissionClaim<'a> {
    /// Admits the request, or refuses it when `enforce` and the estimate says it would
    /// miss its deadline. Not enforcing still measures, so the estimate is ready (and the
    /// expected latency reported) either way.
    fn admit(
        admission: &'a Mutex<Admission>,
        class: CostClass,
        deadline: Instant,
        enforce: bool,
    ) -> Result<Self, OcrError> {
        let mut state = lock(admission);
        let now = Instant::now();
        let ticket = if enforce { state.admit(class, now, deadline)? } else { state.admit_unchecked(class, now) };
        Ok(Self { admission, ticket: Some(ticket) })
    }

    fn finish(mut self, model_cost: Duration) {
        if let Some(ticket) = self.ticket.take() {
            lock(self.admission).finish(ticket, model_cost, Instant::now());
        }
    }
}

impl Drop for AdmissionClaim<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            lock(self.admission).abandon(ticket, Instant::now());
        }
    }
}

/// The recogniser's batch size per forward pass, measured at start-up
/// ([`Recognizer::fastest_batch_size`]). On a 2-core CPU a batch of lines used to lose to
/// one line at a time, on a GPU the largest wins; the queue still hands the stage
/// everything waiting, so requests are batched across the stage either way.
fn fastest_recognizer_batch(recognizer: &Recognizer, max_batch_size: usize) -> Result<usize, ServeError> {
    let started = Instant::now();
    let (chosen, measured) = recognizer.fastest_batch_size(max_batch_size).map_err(ServeError::LoadModel)?;
    tracing::info!(
        chosen,
        max_batch_size,
        lines_per_second = ?measured,
        took_ms = started.elapsed().as_millis() as u64,
        "recogniser batch size chosen by measurement"
    );
    Ok(chosen)
}
