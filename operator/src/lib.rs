//! The kube-ocr operator. Reconciliation arrives with the operator issue; what is here is
//! the naming scheme every other part (Services, clients, the e2e harness) relies on.

pub mod names;
