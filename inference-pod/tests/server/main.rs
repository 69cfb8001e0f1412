//! The inference pod's integration tests as one test binary, a module per concern (`common`
//! is what they share): one compile and link of the server and libtorch instead of one per
//! file, and the harness's two threads kept busy across modules rather than idle at the end
//! of each file. `cargo test -p kube-ocr-inference --test server jobs::` runs one module.

mod common;

mod binary;
mod bundle_loading;
mod bundle_verification;
mod clients;
mod document_set;
mod documents;
mod grpc_server;
mod http_api;
mod input_bugs;
mod jobs;
mod metrics_contract;
mod model_execution;
mod page_rotation;
mod pdf;
mod precision_gate;
mod recognize_golden_lines;
mod shared_cache;
