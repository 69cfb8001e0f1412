//! Generates the tonic client and server for `kube_ocr/v1/ocr.proto`, plus the encoded
//! file descriptor set that gRPC server reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=kube_ocr/v1/ocr.proto");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("kube_ocr_v1_descriptor.bin"))
        .compile_protos(&["kube_ocr/v1/ocr.proto"], &["."])?;
    Ok(())
}
