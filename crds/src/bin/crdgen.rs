//! Prints the `OcrService` CRD as YAML, or with `--reference` the Markdown field
//! reference; `make generate` writes both to their checked-in copies.

fn main() {
    match std::env::args().nth(1).as_deref() {
        None => print!("{}", kube_ocr_crds::crd_yaml()),
        Some("--reference") => print!("{}", kube_ocr_crds::reference_markdown()),
        Some(other) => {
            eprintln!("crdgen: unknown argument {other:?}; usage: crdgen [--reference]");
            std::process::exit(2);
        }
    }
}
