//! Figure 2b: PDF pages per second at concurrency 4 at several resolutions, against the
//! peer path (PDFium through pypdfium2 renders each page at the same resolution, then
//! rapidocr reads it, one page at a time), with CER side by side. The server renders in
//! its `ocr-pdf-render` child processes; both sides read every page by OCR (the golden
//! PDFs are one scanned document and one born-digital one; the text layer is not used).
//! It is also the evidence behind the server's default `--pdf-dpi`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use kube_ocr_golden::score_text;
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, Task as ProtoTask};
use serde::Deserialize;

use crate::client::Serving;
use crate::report::Report;
use crate::stats::{ms, percentile};

/// Callers keeping one PDF call open each.
pub const CONCURRENCY: usize = 4;

/// A golden PDF and the truth of each of its pages.
#[derive(Debug)]
pub struct GoldenPdf {
    pub id: String,
    pub bytes: Vec<u8>,
    pub pages: Vec<Vec<String>>,
}

/// The PDFs of the golden document set (`golden/documents/truth.jsonl`).
pub fn golden_pdfs(documents: &Path) -> anyhow::Result<Vec<GoldenPdf>> {
    #[derive(Deserialize)]
    struct Item {
        id: String,
        file: String,
        pages: Option<Vec<Vec<String>>>,
    }
    let truth = std::fs::read_to_string(documents.join("truth.jsonl"))
        .with_context(|| format!("{}/truth.jsonl", documents.display()))?;
    let mut pdfs = Vec::new();
    for line in truth.lines().filter(|line| !line.trim().is_empty()) {
        let item: Item = serde_json::from_str(line)?;
        if item.file.ends_with(".pdf") {
            let bytes = std::fs::read(documents.join(&item.file))?;
            let pages = item.pages.with_context(|| format!("{} has no per-page truth", item.id))?;
            pdfs.push(GoldenPdf { id: item.id, bytes, pages });
        }
    }
    anyhow::ensure!(!pdfs.is_empty(), "no PDF in {}", documents.display());
    Ok(pdfs)
}

/// The server at one resolution.
#[derive(Debug)]
pub struct PdfRun {
    pub dpi: u32,
    pub pages: usize,
    pub elapsed: Duration,
    /// Round trip of each whole-PDF call.
    pub latencies: Vec<Duration>,
    pub cer: f64,
    pub failed: usize,
}

impl PdfRun {
    pub fn rate(&self) -> f64 {
        crate::stats::per_second(self.pages, self.elapsed)
    }
}

/// `peer-pdf.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerPdf {
    pub engine: String,
    pub command: String,
    pub dpis: std::collections::BTreeMap<String, PeerPdfRun>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerPdfRun {
    pub pages: usize,
    pub round_seconds: Vec<f64>,
    pub render_seconds: Vec<f64>,
    pub reads: std::collections::BTreeMap<String, Vec<String>>,
}

impl PeerPdf {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("peer-pdf.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} (run tools/bench/peer_pdf.py first; `make bench` does)", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// Micro CER over every page: edits summed over pages, over truth characters summed.
fn micro_cer(pages: impl Iterator<Item = (String, String)>) -> f64 {
    let (mut edits, mut chars) = (0u64, 0u64);
    for (truth, read) in pages {
        let score = score_text(&truth, &read);
        edits += score.char_edits.total();
        chars += score.truth_chars;
    }
    if chars == 0 { 0.0 } else { edits as f64 / chars as f64 }
}

/// [`CONCURRENCY`] callers sending the PDFs in turn at `dpi` for at least `window`, and
/// until every PDF has an answer.
pub async fn measure(
    serving: &Serving,
    pdfs: &Arc<Vec<GoldenPdf>>,
    dpi: u32,
    window: Duration,
) -> anyhow::Result<PdfRun> {
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new((0usize, Vec::new(), vec![None; pdfs.len()], 0usize)));
    let started = Instant::now();
    let callers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (mut client, pdfs, next, tally) = (serving.client.clone(), pdfs.clone(), next.clone(), tally.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if started.elapsed() >= window && n >= pdfs.len() {
                        break;
                    }
                    let pdf = &pdfs[n % pdfs.len()];
                    let request = RecognizeRequest {
                        request_id: pdf.id.clone(),
                        image: pdf.bytes.clone(),
                        task: ProtoTask::Document as i32,
                        options: Some(RecognizeOptions { bypass_cache: true, pdf_dpi: dpi, ..Default::default() }),
                    };
                    let sent = Instant::now();
                    let answer = client.recognize(request).await;
                    let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
                    match answer {
                        Ok(response) => {
                            let response = response.into_inner();
                            tally.0 += response.pages.len();
                            tally.1.push(sent.elapsed());
                            tally.2[n % pdfs.len()] = Some(response.pages.into_iter().map(|page| page.text).collect());
                        }
                        Err(_) => tally.3 += 1,
                    }
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await?;
    }
    let elapsed = started.elapsed();
    let (pages, latencies, reads, failed) =
        Arc::into_inner(tally).expect("callers done").into_inner().unwrap_or_else(PoisonError::into_inner);
    let scored = pdfs.iter().zip(&reads).flat_map(|(pdf, read)| {
        let read: Vec<String> = read.clone().unwrap_or_default();
        pdf.pages
            .iter()
            .enumerate()
            .map(move |(index, truth)| (truth.join("\n"), read.get(index).cloned().unwrap_or_default()))
    });
    Ok(PdfRun { dpi, pages, elapsed, latencies, cer: micro_cer(scored), failed })
}

pub fn write(report: &mut Report, runs: &[PdfRun], peer: &PeerPdf, pdfs: &[GoldenPdf]) -> anyhow::Result<()> {
    let out = &mut report.body;
    let pages: usize = pdfs.iter().map(|pdf| pdf.pages.len()).sum();
    writeln!(out, "## 2b. PDF pages/s at concurrency {CONCURRENCY} against the peer, by resolution\n")?;
    writeln!(
        out,
        "Meaning: the golden document set's {} PDFs ({pages} pages: a scanned one and a born-digital one, both read \
         by OCR) sent whole, {CONCURRENCY} callers each keeping one call open, at each `pdf_dpi`; pages/s counts \
         every page answered from the first call to the last answer. The server renders in `ocr-pdf-render` child \
         processes (hayro) and reads the pages of each document 4 at a time. The peer is {}, one page at a time, \
         fastest of its passes (`{}`); its render share is PDFium's time alone. CER is micro CER over every page \
         against its truth, scored by kube-ocr-golden for both.\n",
        pdfs.len(),
        peer.engine,
        peer.command
    )?;
    writeln!(
        out,
        "| dpi | server pages/s | peer pages/s | vs peer | server p50 ms per PDF | server CER | peer CER | peer render share | failed calls |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for run in runs {
        let peer_run = peer.dpis.get(&run.dpi.to_string());
        let (peer_rate, peer_cer, render_share) = match peer_run {
            Some(peer_run) => {
                let best = peer_run.round_seconds.iter().copied().fold(f64::INFINITY, f64::min);
                let render = peer_run.render_seconds.iter().sum::<f64>() / peer_run.round_seconds.iter().sum::<f64>();
                let scored = pdfs.iter().flat_map(|pdf| {
                    pdf.pages.iter().enumerate().map(|(index, truth)| {
                        let read =
                            peer_run.reads.get(&format!("{}#{}", pdf.id, index + 1)).cloned().unwrap_or_default();
                        (truth.join("\n"), read.join("\n"))
                    })
                });
                (peer_run.pages as f64 / best, Some(micro_cer(scored)), Some(render))
            }
            None => (f64::NAN, None, None),
        };
        writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.4} | {} | {} | {} |",
            run.dpi,
            run.rate(),
            peer_rate,
            run.rate() / peer_rate,
            ms(percentile(&run.latencies, 0.5)),
            run.cer,
            peer_cer.map_or("not run".to_owned(), |cer| format!("{cer:.4}")),
            render_share.map_or(String::new(), |share| format!("{:.0} %", share * 100.0)),
            run.failed
        )?;
    }
    writeln!(out)?;
    Ok(())
}
