//! One OCR request through the pipeline: decode → (detect → boxes → crops) → classify →
//! recognise. CPU-bound steps run on tokio's blocking pool, model forwards on the
//! stage batchers' worker threads; this async layer only moves data between them.

mod error;
mod request;

use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;
use kube_ocr_vision::image::{DecodeLimits, decode_image};
use kube_ocr_vision::input::classifier_input;
use kube_ocr_vision::layout::{find_lines, prepare_document, whole_image_quad};
use kube_ocr_vision::postprocess::{rotate_half_turn, should_rotate};

pub(crate) use error::OcrError;
pub(crate) use request::{OcrLine, OcrOptions, OcrOutput, OcrTask, PhaseTimings};

use crate::model::{
    Bundle, ClassifierInput, ClassifierStage, ComputeDevice, DetectorStage, ModelError, Recognizer, RecognizerStage,
    Stage, TorchScriptModule,
};
use crate::serve::batcher::{BatchError, BatchObserver, Batcher, BatcherConfig};
use crate::serve::error::ServeError;

/// Which model stages run, their batching, and how big an input may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineConfig {
    pub batching: BatcherConfig,
    pub decode_limits: DecodeLimits,
}

/// The loaded bundle and one batcher per model stage.
pub(crate) struct Engine {
    /// Requests admitted and not finished: the bound `--max-queue` sets. Admission is per
    /// request, not per line crop, so a request is refused whole or not at all.
    admission: tokio::sync::Semaphore,
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
            let module = TorchScriptModule::load("detector", &bundle.path_of(&files.detector.file), device)
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
            let module = TorchScriptModule::load("classifier", &bundle.path_of(&files.classifier.file), device)
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
        let recognizer = Recognizer::load(&bundle, device).map_err(ServeError::LoadModel)?;
        let stage = RecognizerStage { recognizer, max_batch_size: config.batching.max_batch_size };
        let recognizer =
            Batcher::start("recognize", stage_batching, stage, observer).map_err(|e| spawn_error("recognize", e))?;
        let admission = tokio::sync::Semaphore::new(config.batching.max_queue.max(1));
        Ok(Self { admission, bundle: Arc::new(bundle), device, config, detector, classifier, recognizer })
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

    /// Runs one image through the pipeline. `deadline` bounds queueing: work still
    /// queued when it passes is dropped before compute.
    pub(crate) async fn recognize(
        &self,
        image: Arc<[u8]>,
        task: OcrTask,
        options: OcrOptions,
        deadline: Instant,
    ) -> Result<OcrOutput, OcrError> {
        let _admitted = self.admission.try_acquire().map_err(|_| BatchError::<ModelError>::QueueFull {
            stage: "request",
            capacity: self.config.batching.max_queue,
        })?;
        let mut timings = PhaseTimings::default();
        let bundle = self.bundle.clone();
        let limits = self.config.decode_limits;
        let detect = task == OcrTask::Document && self.detector.is_some();

        let started = Instant::now();
        let (page, prepared) = blocking(move || -> Result<_, OcrError> {
            let page = decode_image(&image, limits)?;
            let prepared = if detect { prepare_document(&page, &bundle.manifest.params) } else { None };
            Ok((page, prepared))
        })
        .await??;
        timings.preprocess += started.elapsed();
        let (width, height) = page.dimensions();
        let page = Arc::new(page);

        let (quads, crops) = match (prepared, &self.detector) {
            (Some(prepared), Some(detector)) => {
                let input = prepared.detector_input.clone();
                let map = detector.submit(input, deadline).await?;
                timings.add_stage(std::slice::from_ref(&map));
                let started = Instant::now();
                let bundle = self.bundle.clone();
                let found = blocking(move || find_lines(&prepared, &map.output, &bundle.manifest.params)).await?;
                timings.postprocess += started.elapsed();
                found.map_err(OcrError::FindLines)?
            }
            _ => (vec![whole_image_quad(width, height)], vec![(*page).clone()]),
        };
        if crops.is_empty() {
            return Ok(OcrOutput { lines: Vec::new(), width, height, timings });
        }

        // The direction classifier runs on detected crops only. On a whole LINE image,
        // margins included, it is unreliable: it reads the golden set's clean
        // "The quick brown fox ..." as upside down with p = 0.93 (onnxruntime agrees).
        let (crops, rotated) = match task {
            OcrTask::Document => self.orient(crops, options, deadline, &mut timings).await?,
            OcrTask::Line => {
                let count = crops.len();
                (crops, vec![false; count])
            }
        };

        let pending: Vec<_> =
            crops.into_iter().map(|crop| self.recognizer.enqueue(crop, deadline)).collect::<Result<_, _>>()?;
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
        let lines = decoded
            .into_iter()
            .zip(quads)
            .zip(rotated)
            .map(|((line, quad), rotated_180)| OcrLine {
                // The charset's space class can open or close a read; it carries nothing.
                text: line.output.text.trim().to_owned(),
                confidence: line.output.confidence,
                quad,
                rotated_180,
            })
            .filter(|line| line.confidence >= floor && (task == OcrTask::Line || !line.text.is_empty()))
            .collect();
        Ok(OcrOutput { lines, width, height, timings })
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
        let pending: Vec<_> =
            inputs.into_iter().map(|input| classifier.enqueue(input, deadline)).collect::<Result<_, _>>()?;
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
