//! `ocr`: send an image, a PDF or a TIFF, or every one of them in a folder, to a kube-ocr
//! service over gRPC or its HTTP API and print the text (or JSON), page by page for a
//! document of several pages. Exit codes: 0 all read, 1 some requests failed, 2 usage or
//! input error.

mod cli;
mod document;
mod grpc;
mod http;
mod http_json;
mod input;
mod output;
mod progress;
mod target;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::input::Input;
use crate::progress::Progress;
use crate::target::Target;

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let settings = cli.settings()?;
    let files = input::documents_in(&settings.path)?;
    let progress = Progress::new(files.len());
    let mut target = Target::connect(&settings).await?;
    let mut all_ok = true;
    for path in &files {
        progress.start_file(path);
        let input = Input::read(path)?;
        let (response, failure) = match target.recognize(&input, &settings.request, &progress).await {
            Ok(response) => (Some(response), None),
            Err(failed) => (failed.partial, Some(failed.reason)),
        };
        if let Some(response) = response {
            if let Some(warning) = output::range_warning(&response, &settings.request.options) {
                progress.suspend(|| eprintln!("{}: warning: {warning}", path.display()));
            }
            let printed = progress.suspend(|| {
                if settings.json {
                    output::emit(output::response_json(path, &response, failure.as_deref()))
                } else {
                    (files.len() == 1 || output::emit(format!("== {}", path.display())))
                        && output::text_lines(&response).iter().all(output::emit)
                }
            });
            if !printed {
                // The reader went away (e.g. `| head`): stop quietly, like other CLIs.
                return Ok(all_ok && failure.is_none());
            }
        }
        if let Some(reason) = failure {
            all_ok = false;
            progress.suspend(|| eprintln!("{}: {reason}", path.display()));
        }
        progress.file_done();
    }
    progress.finish();
    Ok(all_ok)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("ocr: {error:#}");
            ExitCode::from(2)
        }
    }
}
