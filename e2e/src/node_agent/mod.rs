//! The local node agent: our stand-in for the kubelet, nothing more.
//!
//! It registers a Node (with `nvidia.com/gpu` capacity) and keeps its Ready condition and
//! Lease fresh; for every pod the real scheduler binds to that node it runs each container
//! as a local process (the image maps to an executable, see [`ImageMap`]) with its own
//! local IP ([`IpPool`]; loopback, or a range made local), runs its probes, restarts it per restartPolicy and writes the
//! pod status; on deletion it stops the processes (SIGTERM, grace, SIGKILL) and deletes the
//! pod object. `e2e/README.md` says what it emulates and what not.
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> Result<(), kube_ocr_e2e::node_agent::NodeAgentError> {
//! use kube_ocr_e2e::node_agent::{ImageMap, NodeAgent, NodeAgentConfig};
//! let images = ImageMap::new([("example.com/sleep", "/bin/sleep")]);
//! let agent = NodeAgent::start(client, NodeAgentConfig::new("node-a", "/tmp/agent", images)).await?;
//! agent.wait_schedulable(std::time::Duration::from_secs(60)).await?;
//! // ... create pods ...
//! agent.shutdown().await;
//! # Ok(()) }
//! ```

mod agent;
mod backoff;
mod command;
mod config;
mod container;
mod env;
mod error;
mod expand;
mod heartbeat;
mod image_map;
mod ip_pool;
mod node;
mod pod_state;
mod pod_worker;
mod probe;
mod probe_exec;
mod process;
mod sandbox;
mod status;
mod volumes;

pub use crate::toolchain::cargo_bin_dir;
pub use agent::{NodeAgent, NodeAgentHandle};
pub use backoff::{Backoff, RestartPolicy};
pub use config::{FIELD_MANAGER, GPU_RESOURCE, NodeAgentConfig, NodeCapacity};
pub use error::NodeAgentError;
pub use expand::expand;
pub use image_map::{INFERENCE_POD_IMAGE, ImageMap, OPERATOR_IMAGE, image_name};
pub use ip_pool::{IpPool, LOOPBACK_POD_IP_RANGE, ROUTABLE_POD_IP_RANGE, choose_pod_ip_range, range_is_local};
pub use node::NODE_LEASE_NAMESPACE;
pub use probe::{ProbeEffect, ProbeKind, ProbeSettings, ProbeTracker};
pub use sandbox::{log_path, pod_dir};
pub use status::{ContainerRuntime, ContainerState, PodRuntime, Termination, pod_phase, pod_status};
pub use volumes::SERVICE_ACCOUNT_MOUNT_PATH;
