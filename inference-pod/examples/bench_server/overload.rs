//! Figure 4: overload. DOCUMENT calls arrive open-loop (a Poisson process, whatever the
//! server answers) at a multiple of the unloaded capacity, each with a gRPC deadline of
//! twice the unloaded p99; every call is classified by what came back and how fast.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_ocr_inference::serve::ServerConfig;
use kube_ocr_proto::contract::code_name;
use kube_ocr_proto::v1::Task as ProtoTask;
use tonic::Code;

use crate::arrivals::poisson_arrivals;
use crate::client::{Serving, call, request};
use crate::golden::Sample;
use crate::report::{Goal, Report};
use crate::stats::{ms, per_second, percentile};

/// An error this fast is a refusal at admission, not a failure after queueing.
pub const AT_ONCE: Duration = Duration::from_millis(50);
/// Admitted p99 over unloaded p99.
const P99_GOAL: f64 = 2.0;
/// Goodput over the unloaded throughput, percent.
const GOODPUT_GOAL_PERCENT: f64 = 90.0;
/// The arrivals are the same in every run.
const SEED: u64 = 0x6b75_6265_2d6f_6372;
/// Longer than any deadline the server honours, so a server that ignores the deadline
/// still ends the run.
const CLIENT_GRACE: Duration = Duration::from_secs(2);

/// What came back for one call, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Failed { code: Code, message: String },
}

/// How a call ended, as figure 4 counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    CompletedInTime,
    /// Answered, but after its deadline (the server ignored the deadline).
    CompletedLate,
    /// RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED in under [`AT_ONCE`]: refused at admission.
    RefusedAtOnce,
    /// Another error in under [`AT_ONCE`].
    FailedAtOnce,
    /// Any error after [`AT_ONCE`] or more: the server took the call and then failed it.
    FailedAfterWaiting,
}

pub fn classify(outcome: &Outcome, latency: Duration, deadline: Duration) -> Class {
    match outcome {
        Outcome::Answered if latency <= deadline => Class::CompletedInTime,
        Outcome::Answered => Class::CompletedLate,
        Outcome::Failed { .. } if latency >= AT_ONCE => Class::FailedAfterWaiting,
        Outcome::Failed { code: Code::ResourceExhausted | Code::DeadlineExceeded, .. } => Class::RefusedAtOnce,
        Outcome::Failed { .. } => Class::FailedAtOnce,
    }
}

/// One offered call.
#[derive(Debug)]
struct CallRecord {
    outcome: Outcome,
    /// From the call going out to its answer.
    latency: Duration,
    /// When the answer came, from the start of the arrivals.
    done: Duration,
}

/// What figure 4 measured.
#[derive(Debug)]
pub struct OverloadRun {
    pub capacity: f64,
    pub factor: f64,
    pub duration: Duration,
    pub unloaded: Vec<Duration>,
    pub deadline: Duration,
    /// Latest an arrival went out after its scheduled time.
    pub max_send_lag: Duration,
    records: Vec<CallRecord>,
}

impl OverloadRun {
    fn unloaded_p99(&self) -> Duration {
        percentile(&self.unloaded, 0.99)
    }

    fn count(&self, class: Class) -> usize {
        self.records.iter().filter(|r| classify(&r.outcome, r.latency, self.deadline) == class).count()
    }

    /// Calls of `class` by gRPC code name.
    fn codes(&self, class: Class) -> BTreeMap<&'static str, usize> {
        let mut codes = BTreeMap::new();
        for record in self.records.iter().filter(|r| classify(&r.outcome, r.latency, self.deadline) == class) {
            if let Outcome::Failed { code, .. } = &record.outcome {
                *codes.entry(code_name(*code)).or_default() += 1;
            }
        }
        codes
    }

    /// Distinct server messages of `class`, most frequent first.
    fn messages(&self, class: Class) -> Vec<(String, usize)> {
        let mut messages: BTreeMap<String, usize> = BTreeMap::new();
        for record in self.records.iter().filter(|r| classify(&r.outcome, r.latency, self.deadline) == class) {
            if let Outcome::Failed { code, message } = &record.outcome {
                *messages.entry(format!("{}: {message}", code_name(*code))).or_default() += 1;
            }
        }
        let mut messages: Vec<_> = messages.into_iter().collect();
        messages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        messages
    }

    /// Round trips of the calls the server took (not refused or failed at once).
    fn admitted_latencies(&self) -> Vec<Duration> {
        self.records
            .iter()
            .filter(|r| {
                !matches!(classify(&r.outcome, r.latency, self.deadline), Class::RefusedAtOnce | Class::FailedAtOnce)
            })
            .map(|r| r.latency)
            .collect()
    }

    /// The arrival window shifted by the unloaded p50: the first page cannot be answered
    /// before that, and the pages answered that long after the last arrival were read
    /// while the window's load was on.
    fn goodput_window(&self) -> (Duration, Duration) {
        let shift = percentile(&self.unloaded, 0.5);
        (shift, self.duration + shift)
    }

    /// Pages answered in time per second of the goodput window.
    fn goodput(&self) -> f64 {
        let (from, to) = self.goodput_window();
        let in_window = self
            .records
            .iter()
            .filter(|r| {
                classify(&r.outcome, r.latency, self.deadline) == Class::CompletedInTime
                    && (from..=to).contains(&r.done)
            })
            .count();
        per_second(in_window, self.duration)
    }
}

/// Starts a fresh server, measures its unloaded latency with `rounds` sequential passes
/// over `documents`, then offers `factor` × `capacity` pages/s for `duration`.
pub async fn measure(
    config: ServerConfig,
    documents: &Arc<Vec<Sample>>,
    capacity: f64,
    factor: f64,
    duration: Duration,
    rounds: usize,
) -> anyhow::Result<OverloadRun> {
    let mut serving = Serving::start(config, &[(documents, ProtoTask::Document)]).await?;
    let mut unloaded = Vec::new();
    for _ in 0..rounds.max(1) {
        for sample in documents.iter() {
            unloaded.push(call(&mut serving.client, sample, ProtoTask::Document).await?.0);
        }
    }
    let deadline = percentile(&unloaded, 0.99) * 2;
    let arrivals = poisson_arrivals(capacity * factor, duration, SEED);
    let started = Instant::now();
    let mut max_send_lag = Duration::ZERO;
    let mut calls = Vec::with_capacity(arrivals.len());
    for (n, at) in arrivals.iter().enumerate() {
        tokio::time::sleep_until((started + *at).into()).await;
        max_send_lag = max_send_lag.max(started.elapsed().saturating_sub(*at));
        let mut client = serving.client.clone();
        let mut call = tonic::Request::new(request(&documents[n % documents.len()], ProtoTask::Document));
        call.set_timeout(deadline);
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = tokio::time::timeout(deadline + CLIENT_GRACE, client.recognize(call)).await;
            let latency = sent.elapsed();
            let outcome = match answer {
                Ok(Ok(_)) => Outcome::Answered,
                Ok(Err(status)) => Outcome::Failed { code: status.code(), message: status.message().to_owned() },
                Err(_) => Outcome::Failed {
                    code: Code::DeadlineExceeded,
                    message: format!("no answer {} s after the deadline (client gave up)", CLIENT_GRACE.as_secs()),
                },
            };
            CallRecord { outcome, latency, done: started.elapsed() }
        }));
    }
    let mut records = Vec::with_capacity(calls.len());
    for call in calls {
        records.push(call.await?);
    }
    serving.shutdown().await?;
    Ok(OverloadRun { capacity, factor, duration, unloaded, deadline, max_send_lag, records })
}

pub fn write(report: &mut Report, run: &OverloadRun) -> anyhow::Result<()> {
    let out = &mut report.body;
    let offered = run.records.len();
    let refused = run.count(Class::RefusedAtOnce);
    let failed_at_once = run.count(Class::FailedAtOnce);
    let waited = run.count(Class::FailedAfterWaiting);
    let in_time = run.count(Class::CompletedInTime);
    let late = run.count(Class::CompletedLate);
    let admitted = run.admitted_latencies();
    let unloaded_p99 = run.unloaded_p99();
    let admitted_p99 = percentile(&admitted, 0.99);
    let goodput = run.goodput();
    let share = |n: usize| 100.0 * n as f64 / offered.max(1) as f64;
    let codes = |class: Class| {
        let codes = run.codes(class);
        if codes.is_empty() {
            String::new()
        } else {
            codes.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
        }
    };

    writeln!(out, "## 4. Overload: open-loop DOCUMENT calls at {}× the unloaded capacity\n", run.factor)?;
    writeln!(
        out,
        "Meaning: what callers get when more pages arrive than the pod can read. Calls arrive as a Poisson process \
         (fixed seed) at {:.2}/s = {}× the best pages/s of figure 2 ({:.2}), for {} s, whatever the server answers; \
         each carries a gRPC deadline (`grpc-timeout`) of 2× the unloaded p99, measured just before on a fresh \
         server ({} sequential calls over the golden pages: p99 {:.0} ms, so deadline {:.0} ms). An error in under \
         {} ms is a refusal at once; any later error means the server took the call and failed it after it \
         waited. Goodput counts pages answered in time inside the {} s window shifted by the unloaded p50 ({:.0} ms, \
         before which no page can be answered).\n",
        run.capacity * run.factor,
        run.factor,
        run.capacity,
        run.duration.as_secs(),
        run.unloaded.len(),
        ms(unloaded_p99),
        ms(run.deadline),
        AT_ONCE.as_millis(),
        run.duration.as_secs(),
        ms(run.goodput_window().0)
    )?;
    writeln!(out, "| calls | count | share | gRPC codes |")?;
    writeln!(out, "|---|---:|---:|---|")?;
    writeln!(out, "| offered | {offered} | 100 % | |")?;
    writeln!(
        out,
        "| refused at once (< {} ms) | {refused} | {:.0} % | {} |",
        AT_ONCE.as_millis(),
        share(refused),
        codes(Class::RefusedAtOnce)
    )?;
    writeln!(
        out,
        "| failed at once, other codes | {failed_at_once} | {:.0} % | {} |",
        share(failed_at_once),
        codes(Class::FailedAtOnce)
    )?;
    writeln!(out, "| admitted | {} | {:.0} % | |", admitted.len(), share(admitted.len()))?;
    writeln!(out, "| · completed in time | {in_time} | {:.0} % | |", share(in_time))?;
    writeln!(out, "| · completed after the deadline | {late} | {:.0} % | |", share(late))?;
    writeln!(
        out,
        "| · failed after waiting (≥ {} ms) | {waited} | {:.0} % | {} |",
        AT_ONCE.as_millis(),
        share(waited),
        codes(Class::FailedAfterWaiting)
    )?;
    writeln!(
        out,
        "\nAdmitted p50 {:.0} ms, p99 {:.0} ms = {:.2}× the unloaded p99. Goodput {goodput:.2} pages/s = {:.0} % of \
         the unloaded {:.2} pages/s. Latest send {:.1} ms after its scheduled arrival.\n",
        ms(percentile(&admitted, 0.5)),
        ms(admitted_p99),
        ms(admitted_p99) / ms(unloaded_p99),
        100.0 * goodput / run.capacity,
        run.capacity,
        ms(run.max_send_lag)
    )?;
    for (title, class) in [
        ("Server messages, refused at once", Class::RefusedAtOnce),
        ("Messages, failed after waiting", Class::FailedAfterWaiting),
    ] {
        let messages = run.messages(class);
        if messages.is_empty() {
            continue;
        }
        writeln!(out, "{title}:\n")?;
        for (message, n) in messages.iter().take(5) {
            writeln!(out, "- {n} × `{}`", message.replace('`', "'"))?;
        }
        if messages.len() > 5 {
            writeln!(out, "- and {} other messages", messages.len() - 5)?;
        }
        writeln!(out)?;
    }
    report.goal(Goal::count_at_most("4. overload: calls failed after waiting", waited, 0, " calls"));
    report.goal(Goal::at_most(
        "4. overload: admitted p99 / unloaded p99",
        ms(admitted_p99) / ms(unloaded_p99),
        P99_GOAL,
        "x",
    ));
    report.goal(Goal::at_least(
        "4. overload: goodput / unloaded pages/s",
        100.0 * goodput / run.capacity,
        GOODPUT_GOAL_PERCENT,
        " %",
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_classified_by_code_and_by_how_fast_they_failed() {
        let deadline = Duration::from_millis(1000);
        let failed = |code| Outcome::Failed { code, message: String::new() };
        let ms = Duration::from_millis;
        let cases = [
            (Outcome::Answered, ms(1000), Class::CompletedInTime),
            (Outcome::Answered, ms(1001), Class::CompletedLate),
            (failed(Code::ResourceExhausted), ms(3), Class::RefusedAtOnce),
            (failed(Code::DeadlineExceeded), ms(49), Class::RefusedAtOnce),
            (failed(Code::Unavailable), ms(3), Class::FailedAtOnce),
            (failed(Code::DeadlineExceeded), ms(50), Class::FailedAfterWaiting),
            (failed(Code::ResourceExhausted), ms(400), Class::FailedAfterWaiting),
            (failed(Code::Cancelled), ms(995), Class::FailedAfterWaiting),
        ];
        for (outcome, latency, class) in cases {
            assert_eq!(classify(&outcome, latency, deadline), class, "{outcome:?} after {latency:?}");
        }
    }

    #[test]
    fn goodput_counts_only_answers_in_time_inside_the_window() {
        let record = |outcome, latency_ms, done_ms| CallRecord {
            outcome,
            latency: Duration::from_millis(latency_ms),
            done: Duration::from_millis(done_ms),
        };
        let failed = Outcome::Failed { code: Code::DeadlineExceeded, message: "late".into() };
        let run = OverloadRun {
            capacity: 1.0,
            factor: 4.0,
            duration: Duration::from_secs(2),
            unloaded: vec![Duration::from_millis(500)],
            deadline: Duration::from_millis(1000),
            max_send_lag: Duration::ZERO,
            records: vec![
                record(Outcome::Answered, 400, 400), // before the shifted window
                record(Outcome::Answered, 400, 900),
                record(Outcome::Answered, 900, 1900),
                record(Outcome::Answered, 900, 2500),
                record(Outcome::Answered, 900, 2600),  // after it
                record(Outcome::Answered, 1200, 1500), // late
                record(failed.clone(), 10, 100),
                record(failed, 1000, 1600),
            ],
        };
        assert_eq!(run.goodput_window(), (Duration::from_millis(500), Duration::from_millis(2500)));
        assert_eq!(run.goodput(), 1.5);
        assert_eq!(run.count(Class::RefusedAtOnce), 1);
        assert_eq!(run.count(Class::FailedAfterWaiting), 1);
        assert_eq!(run.admitted_latencies().len(), 7);
        assert_eq!(run.codes(Class::FailedAfterWaiting).get("DEADLINE_EXCEEDED"), Some(&1));
    }
}
