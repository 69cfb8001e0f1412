//! Progress on stderr, drawn only when stderr is a terminal (pipes and tests see clean
//! output): a bar over the files of a folder, and under it a bar over the pages of the
//! document being streamed (or a spinner while one is read over HTTP).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: MultiProgress,
    visible: bool,
    files: ProgressBar,
    /// The name of the file being read, for the page bar.
    current: Mutex<String>,
}

impl Progress {
    /// For `file_count` files; the files bar shows for more than one.
    pub fn new(file_count: usize) -> Self {
        let visible = std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let files = if visible && file_count > 1 {
            let bar = multi.add(ProgressBar::new(file_count as u64));
            bar.set_style(style("{bar:40} {pos}/{len} files {wide_msg}"));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { multi, visible, files, current: Mutex::new(String::new()) }
    }

    pub fn start_file(&self, path: &Path) {
        let name = path.display().to_string();
        self.files.set_message(name.clone());
        *self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = name;
    }

    pub fn file_done(&self) {
        self.files.inc(1);
    }

    /// A bar over `pages` pages of the current file (hidden for one page).
    pub fn page_bar(&self, pages: u32) -> ProgressBar {
        if !self.visible || pages <= 1 {
            return ProgressBar::hidden();
        }
        let bar = self.multi.add(ProgressBar::new(u64::from(pages)));
        bar.set_style(style("{bar:40} page {pos}/{len} {wide_msg}"));
        bar.set_message(self.current_name());
        bar
    }

    /// A spinner while the current file is read in one request.
    pub fn spinner(&self, what: &str) -> ProgressBar {
        if !self.visible {
            return ProgressBar::hidden();
        }
        let spinner = self.multi.add(ProgressBar::new_spinner());
        spinner.set_style(style("{spinner} {elapsed} {wide_msg}"));
        spinner.set_message(format!("{what} {}", self.current_name()));
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    }

    /// Takes a page bar or spinner off the screen.
    pub fn remove(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(bar);
    }

    /// Runs `print` with the bars taken off the screen, so its lines are not drawn over.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.multi.suspend(print)
    }

    pub fn finish(&self) {
        self.files.finish_and_clear();
        let _ = self.multi.clear();
    }

    fn current_name(&self) -> String {
        self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are the constants above; a bad one would show as a plain bar.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}
