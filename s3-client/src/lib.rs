//! A small async client for S3-compatible buckets (AWS S3, SeaweedFS, MinIO, Ceph RGW),
//! for what the inference pod keeps there: uploaded documents and job results.
//!
//! [`S3Client`] puts, gets (within a size limit) and deletes objects, checks a bucket at
//! start ([`S3Client::head_bucket`]), and keeps an expiry rule in the bucket's lifecycle
//! configuration beside rules others own ([`S3Client::ensure_expiry_rule`]). Failures are
//! [`S3Error`]s named after the operation, with S3's own error code when the server
//! answered one ([`S3Error::code`], [`S3Error::is_not_found`]). [`S3Uri`] reads
//! `s3://bucket/key`.
//!
//! Requests are signed with AWS Signature Version 4, payload included. The pure parts
//! (signing, addressing, the XML, names) are plain functions tested on their own; the IO is
//! a thin layer over hyper's client and rustls with the ring provider. A call that meets a
//! dropped connection or a 5xx is tried again, twice at most, within its one timeout.

mod client;
mod date;
mod error;
mod lifecycle;
mod names;
mod request;
mod retry;
mod service_error;
mod settings;
mod sigv4;
mod transport;
mod xml;

pub use client::S3Client;
pub use error::{CallError, S3Error};
pub use lifecycle::ExpiryRule;
pub use names::S3Uri;
pub use service_error::ServiceError;
pub use settings::{Addressing, S3Settings};
pub use xml::XmlError;
