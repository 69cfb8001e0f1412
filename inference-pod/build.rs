//! Link settings for libtorch that torch-sys leaves to us.
//!
//! - rpath to the libtorch directory (the project venv's `torch/lib`), so binaries and test
//!   executables run without anybody exporting `LD_LIBRARY_PATH`.
//! - `libtorch_cuda.so` kept as a NEEDED entry. torch-sys asks for it, but the linker's
//!   default `--as-needed` drops it because no symbol of ours references it directly; without
//!   it libtorch never registers its CUDA backend and `tch::Cuda::is_available()` is false
//!   even on a GPU node.

use std::{env, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib_dir) = env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        // torch-sys emits the directory on Linux and macOS, the only targets we build.
        println!("cargo:warning=torch-sys reported no libtorch directory; binaries will need LD_LIBRARY_PATH");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        println!("cargo:rustc-cfg=libtorch_cuda_linked");
    }
    println!("cargo:rustc-check-cfg=cfg(libtorch_cuda_linked)");
}
