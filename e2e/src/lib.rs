//! End-to-end harness: the local control plane (real Kubernetes components), the local
//! node agent (our stand-in for the kubelet), KEDA against the control plane, and where their
//! binaries live.

pub mod control_plane;
pub mod keda;
pub mod node_agent;
pub mod toolchain;
