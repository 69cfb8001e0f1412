//! The fuzz binary links libtorch through kube-ocr-inference (tch) although no fuzzed
//! function calls it. inference-pod/build.rs sets the libtorch rpath for that crate's own
//! binaries only, so this repeats it here: the binary then runs without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib_dir) => println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}"),
        Err(_) => {
            println!("cargo:warning=torch-sys reported no libtorch directory; the fuzzer will need LD_LIBRARY_PATH")
        }
    }
}
