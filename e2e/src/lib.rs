//! End-to-end harness: the local control plane (real Kubernetes components), the local
//! node agent (our stand-in for the kubelet), and where their binaries live.

pub mod control_plane;
pub mod node_agent;
pub mod toolchain;
