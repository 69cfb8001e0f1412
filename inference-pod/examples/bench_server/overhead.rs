//! Figure 1: what the server adds at concurrency 1. Each golden image goes through the
//! in-process pipeline and through the server one after the other (alternating which goes
//! first), so both see the same bytes, the same number of times, on the same machine state.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kube_ocr_golden::Task;
use kube_ocr_proto::v1::Task as ProtoTask;

use crate::client::{ServerPhases, Serving, call};
use crate::golden::Sample;
use crate::in_process::{Phases, Worker};
use crate::report::{Goal, Report};
use crate::stats::{ms, percentile};

/// The goal on server p50 − in-process p50, in milliseconds.
const ADDED_P50_GOAL_MS: f64 = 2.0;

/// Both paths over the same images.
#[derive(Debug)]
pub struct Comparison {
    pub task: Task,
    pub images: usize,
    pub passes: usize,
    pub in_process: Vec<Duration>,
    pub server: Vec<Duration>,
    pub in_process_phases: Phases,
    pub server_phases: ServerPhases,
    /// Calls whose server text equals the in-process text (a check that the work is the same).
    pub same_text: usize,
}

impl Comparison {
    pub fn added_p50(&self) -> f64 {
        ms(percentile(&self.server, 0.5)) - ms(percentile(&self.in_process, 0.5))
    }
}

/// Passes over `samples` until at least `min_passes` are done and `min_time` has passed.
pub async fn compare(
    serving: &mut Serving,
    pipeline: &Worker,
    samples: &[Sample],
    task: Task,
    min_passes: usize,
    min_time: Duration,
) -> anyhow::Result<Comparison> {
    let proto_task = match task {
        Task::Line => ProtoTask::Line,
        Task::Document => ProtoTask::Document,
    };
    let mut result = Comparison {
        task,
        images: samples.len(),
        passes: 0,
        in_process: Vec::new(),
        server: Vec::new(),
        in_process_phases: Phases::default(),
        server_phases: ServerPhases::default(),
        same_text: 0,
    };
    let started = Instant::now();
    while result.passes < min_passes.max(1) || started.elapsed() < min_time {
        for (index, sample) in samples.iter().enumerate() {
            // Whichever path goes second reruns the shape just run (warm allocator and
            // caches), so the order alternates from one image to the next and between passes.
            let in_process_first = (index + result.passes).is_multiple_of(2);
            let mut local = None;
            if in_process_first {
                local = Some(pipeline.read(&sample.bytes, task).await?);
            }
            let (latency, response) = call(&mut serving.client, sample, proto_task).await?;
            if !in_process_first {
                local = Some(pipeline.read(&sample.bytes, task).await?);
            }
            let (local_latency, read) = local.expect("read above");
            result.in_process.push(local_latency);
            add_phases(&mut result.in_process_phases, &read.phases);
            result.server.push(latency);
            result.server_phases.add(response.timings.as_ref());
            result.same_text += usize::from(read.text == response.text);
        }
        result.passes += 1;
    }
    Ok(result)
}

fn add_phases(sum: &mut Phases, phases: &Phases) {
    sum.preprocess += phases.preprocess;
    sum.inference += phases.inference;
    sum.postprocess += phases.postprocess;
}

/// Section 1 and its goals; `recognizer_batch` is the in-process path's lines per forward.
pub fn write(report: &mut Report, comparisons: &[Comparison], recognizer_batch: usize) -> anyhow::Result<()> {
    let out = &mut report.body;
    writeln!(out, "## 1. Overhead at concurrency 1: the server vs the same work in process\n")?;
    writeln!(
        out,
        "Meaning: the time the server adds to a lone request (gRPC on 127.0.0.1, request handling, queues and \
         batchers, thread hand-offs): server round-trip p50 minus the p50 of the same bytes through decode, \
         pre-processing, the model stages and post-processing called directly on one thread (recogniser batches of \
         at most {recognizer_batch} lines, chosen by the engine's start-up measurement). Every image goes through \
         both, one after the other, the same number of times.\n"
    )?;
    writeln!(
        out,
        "| task | images × passes | in-process p50 ms | server p50 ms | added p50 ms | in-process p95 ms | server \
         p95 ms | same text |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for c in comparisons {
        writeln!(
            out,
            "| {} | {} × {} | {:.1} | {:.1} | {:+.2} | {:.1} | {:.1} | {} of {} |",
            c.task.as_str(),
            c.images,
            c.passes,
            ms(percentile(&c.in_process, 0.5)),
            ms(percentile(&c.server, 0.5)),
            c.added_p50(),
            ms(percentile(&c.in_process, 0.95)),
            ms(percentile(&c.server, 0.95)),
            c.same_text,
            c.server.len()
        )?;
    }
    writeln!(out, "\nWhere the time goes (mean per request, ms; the server's split is its own `timings`):\n")?;
    writeln!(out, "| task | path | queue | preprocess | inference | postprocess | total | round trip |")?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|")?;
    for c in comparisons {
        let calls = c.in_process.len().max(1) as u32;
        let local = |d: Duration| ms(d / calls);
        let mean = |values: &[Duration]| ms(values.iter().sum::<Duration>() / values.len().max(1) as u32);
        let p = &c.in_process_phases;
        writeln!(
            out,
            "| {} | in process | – | {:.1} | {:.1} | {:.1} | {:.1} | – |",
            c.task.as_str(),
            local(p.preprocess),
            local(p.inference),
            local(p.postprocess),
            local(p.total()),
        )?;
        let s = &c.server_phases;
        writeln!(
            out,
            "| {} | server | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            c.task.as_str(),
            ms(s.mean(s.queue)),
            ms(s.mean(s.preprocess)),
            ms(s.mean(s.inference)),
            ms(s.mean(s.postprocess)),
            ms(s.mean(s.total)),
            mean(&c.server)
        )?;
    }
    writeln!(
        out,
        "\nThe server's inference is the wall time of the batches its items ran in; \"round trip\" minus \"total\" is \
         gRPC, encoding and the client.\n"
    )?;
    for c in comparisons {
        report.goal(Goal::at_most(
            format!("1. {} at concurrency 1: server p50 − in-process p50", c.task.as_str()),
            c.added_p50(),
            ADDED_P50_GOAL_MS,
            " ms",
        ));
    }
    Ok(())
}
