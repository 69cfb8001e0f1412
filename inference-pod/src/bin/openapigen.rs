//! Prints the HTTP API's OpenAPI 3.1 document (`make generate` writes it to
//! docs/openapi.json; a test fails when that copy drifts from the code).

fn main() {
    print!("{}", kube_ocr_inference::serve::openapi_json());
}
