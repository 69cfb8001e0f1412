//! End-to-end harness. The local control plane and node agent arrive with their issue;
//! what is here is where their binaries live.

pub mod control_plane;
pub mod toolchain;
