//! End-to-end harness: the local control plane (real Kubernetes components), real nodes
//! (kubelet, containerd, kube-proxy) on a network of their own, the images they run, KEDA
//! against the control plane, and where their binaries live.

pub mod cluster_state;
pub mod control_plane;
pub mod harness;
pub mod keda;
pub mod node;
pub mod plain_http;
pub mod toolchain;
