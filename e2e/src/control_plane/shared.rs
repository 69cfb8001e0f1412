//! One control plane per test binary, started by the first test that asks for it.
//!
//! Caveat: it lives in a `static`, and statics are never dropped, so `Drop` never runs for
//! it. The components still stop when the test binary exits, because each one's watchdog
//! stops it when our end of its stdin pipe closes, which the kernel does at exit
//! (see `process`), and etcd's watchdog then removes the temp dir (see `dir`).

use std::sync::OnceLock;

use super::{ControlPlaneError, ControlPlaneOptions, LocalControlPlane};

static SHARED: OnceLock<Result<LocalControlPlane, String>> = OnceLock::new();

impl LocalControlPlane {
    /// The control plane of this process, started with [`ControlPlaneOptions::default`] on
    /// first use. Blocks while it starts (from any thread, in or out of a runtime: the
    /// start runs on a thread of its own); every caller then gets the same one, or the same
    /// start error. Isolate tests with [`LocalControlPlane::create_namespace`].
    pub fn shared() -> Result<&'static LocalControlPlane, ControlPlaneError> {
        SHARED
            .get_or_init(|| {
                // A thread of its own: the caller may be inside a runtime, where blocking on
                // another runtime panics. Nothing the control plane holds is bound to this
                // runtime, so it can end with the thread.
                std::thread::spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("start a tokio runtime: {e}"))?;
                    runtime
                        .block_on(LocalControlPlane::start(ControlPlaneOptions::default()))
                        .map_err(|e| e.to_string())
                })
                .join()
                .unwrap_or_else(|_| Err("the start-up thread panicked".to_owned()))
            })
            .as_ref()
            .map_err(|err| ControlPlaneError::StartShared(err.clone()))
    }
}
