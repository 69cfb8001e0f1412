//! The runtime state of one pod, shared by its container runners (which write it) and its
//! status writer (which turns it into the API status whenever it changes).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::status::{ContainerRuntime, PodRuntime};

/// Which container of the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Init(usize),
    Main(usize),
}

#[derive(Debug)]
pub(crate) struct PodShared {
    runtime: Mutex<PodRuntime>,
    changed: Notify,
}

impl PodShared {
    pub(crate) fn new(runtime: PodRuntime) -> Arc<Self> {
        Arc::new(Self { runtime: Mutex::new(runtime), changed: Notify::new() })
    }

    /// Changes the whole pod state and wakes the status writer.
    pub(crate) fn update_pod(&self, change: impl FnOnce(&mut PodRuntime)) {
        change(&mut self.runtime.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_one();
    }

    /// Changes one container's state and wakes the status writer.
    pub(crate) fn update(&self, slot: Slot, change: impl FnOnce(&mut ContainerRuntime)) {
        self.update_pod(|pod| {
            let container = match slot {
                Slot::Init(i) => pod.init_containers.get_mut(i),
                Slot::Main(i) => pod.containers.get_mut(i),
            };
            if let Some(container) = container {
                change(container);
            }
        });
    }

    pub(crate) fn snapshot(&self) -> PodRuntime {
        self.runtime.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Resolves after the next change (or at once if one happened since the last call).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}
