//! Prints the `OcrService` CRD as YAML; `make generate` writes it to the checked-in copies.

fn main() {
    print!("{}", kube_ocr_crds::crd_yaml());
}
