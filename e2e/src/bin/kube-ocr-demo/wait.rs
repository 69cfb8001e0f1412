//! Waiting on screen: every wait says what it waits for and why, shows each new state as
//! it appears (and the current one again when nothing moved for a while), and ends with
//! how long it took or, at the timeout, a failure naming the last state seen.

use std::time::{Duration, Instant};

use anyhow::bail;

/// A check's answer: done with a value, or not yet, with what it sees now.
#[derive(Debug)]
pub enum Poll<T> {
    Ready(T),
    Pending(String),
}

/// How often a check runs.
const PERIOD: Duration = Duration::from_millis(500);
/// Unchanged state is shown again after this long, so a long wait never looks stuck.
const REMIND_AFTER: Duration = Duration::from_secs(20);

/// Runs `check` until it is Ready or `timeout` passes. `what` names the wait ("the stable
/// pod"), `why` explains it ("loading the model ... (≈15 s here)").
pub async fn wait_for<T>(
    what: &str,
    why: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Poll<T>,
) -> anyhow::Result<T> {
    println!("  waiting for {what}: {why}");
    let started = Instant::now();
    let mut last = String::new();
    let mut shown_at = started;
    loop {
        match check().await {
            Poll::Ready(value) => {
                println!("  ok after {:.1} s", started.elapsed().as_secs_f64());
                return Ok(value);
            }
            Poll::Pending(state) => {
                if state != last || shown_at.elapsed() >= REMIND_AFTER {
                    println!("    [{:>3} s] {state}", started.elapsed().as_secs());
                    shown_at = Instant::now();
                    last = state;
                }
            }
        }
        if started.elapsed() >= timeout {
            bail!("timed out after {} s waiting for {what}; last seen: {last}", timeout.as_secs());
        }
        tokio::time::sleep(PERIOD).await;
    }
}
