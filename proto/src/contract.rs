//! Names that cross crate boundaries: the metric series the inference pod exposes and the
//! operator reads, their label names and values, and the canonical spelling of gRPC codes.
//! Defined once here, in the leaf crate both sides depend on; the pod's tests check that
//! it exposes every series in [`metrics::READ_BY_OPERATOR`].

/// The pod's Prometheus metrics that other components read.
pub mod metrics {
    /// Counter of finished OCR requests, labelled by [`super::labels::CODE`] and
    /// [`super::labels::PROTOCOL`] (registered
    /// under this name; prometheus-client exposes it as [`REQUESTS_SERIES`]).
    pub const REQUESTS: &str = "ocr_requests";
    /// The exposed series of [`REQUESTS`].
    pub const REQUESTS_SERIES: &str = "ocr_requests_total";
    /// Histogram of request latency in seconds (registered under this name with the unit
    /// seconds; its buckets are exposed as [`REQUEST_DURATION_BUCKET_SERIES`]).
    pub const REQUEST_DURATION: &str = "ocr_request_duration";
    /// The exposed bucket series of [`REQUEST_DURATION`].
    pub const REQUEST_DURATION_BUCKET_SERIES: &str = "ocr_request_duration_seconds_bucket";
    /// Gauge of items waiting for a batch, per model stage: the per-pod autoscaling metric.
    pub const QUEUE_DEPTH: &str = "ocr_queue_depth";

    /// Gauge of the service's jobs waiting for a pod (the queue's lag): the job backlog
    /// the operator's status and the autoscaler read.
    pub const JOBS_QUEUED: &str = "ocr_jobs_queued";
    /// Gauge of the age of the service's oldest unfinished job, in seconds (registered
    /// under this name with the unit seconds; exposed as [`JOBS_OLDEST_AGE_SERIES`]).
    pub const JOBS_OLDEST_AGE: &str = "ocr_jobs_oldest_age";
    /// The exposed series of [`JOBS_OLDEST_AGE`].
    pub const JOBS_OLDEST_AGE_SERIES: &str = "ocr_jobs_oldest_age_seconds";

    /// Every series the operator's canary analysis reads from a pod's `/metrics`.
    pub const READ_BY_OPERATOR: [&str; 2] = [REQUESTS_SERIES, REQUEST_DURATION_BUCKET_SERIES];
}

/// Label names on the pod's OCR series.
pub mod labels {
    /// The gRPC status code name of a finished request (see [`super::code_name`]).
    pub const CODE: &str = "code";
    /// A histogram bucket's upper bound (Prometheus' own label).
    pub const LE: &str = "le";
    /// `document` or `line`.
    pub const TASK: &str = "task";
    /// The bundle's model name.
    pub const MODEL: &str = "model";
    /// The bundle's model version.
    pub const VERSION: &str = "version";
    /// The API a request came in on: one of [`super::protocols`].
    pub const PROTOCOL: &str = "protocol";
}

/// Values of [`labels::PROTOCOL`].
pub mod protocols {
    /// `kube_ocr.v1.Ocr` over gRPC.
    pub const GRPC: &str = "grpc";
    /// The HTTP/JSON API (`POST /v1/ocr`).
    pub const HTTP: &str = "http";
    /// An asynchronous document job, worked by a pod from the queue.
    pub const JOB: &str = "job";
}

/// gRPC codes that mean the server failed, as opposed to the caller sending something
/// wrong (INVALID_ARGUMENT, NOT_FOUND, ...). CANCELLED is the caller giving up.
pub const SERVER_FAULT_CODES: [tonic::Code; 7] = [
    tonic::Code::Internal,
    tonic::Code::Unavailable,
    tonic::Code::DeadlineExceeded,
    tonic::Code::ResourceExhausted,
    tonic::Code::Unknown,
    tonic::Code::DataLoss,
    // A pod asked for what it was not set up to serve (jobs without a bucket): the
    // service's configuration, not the caller's request.
    tonic::Code::Unimplemented,
];

/// Whether a code name (as [`code_name`] spells it) is one of [`SERVER_FAULT_CODES`].
pub fn is_server_fault(code_name_text: &str) -> bool {
    SERVER_FAULT_CODES.iter().any(|code| code_name(*code) == code_name_text)
}

/// The canonical gRPC name of a status code, as metrics labels, logs and dashboards spell it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_series_names_follow_prometheus_client_suffixes() {
        assert_eq!(metrics::REQUESTS_SERIES, format!("{}_total", metrics::REQUESTS));
        assert_eq!(metrics::REQUEST_DURATION_BUCKET_SERIES, format!("{}_seconds_bucket", metrics::REQUEST_DURATION));
    }

    #[test]
    fn code_names_are_the_grpc_spelling_and_distinct() {
        assert_eq!(code_name(tonic::Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
        assert_eq!(code_name(tonic::Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        let names: std::collections::BTreeSet<_> = (0..=16).map(|n| code_name(tonic::Code::from_i32(n))).collect();
        assert_eq!(names.len(), 17, "every code has its own name");
    }

    #[test]
    fn server_faults_exclude_the_callers_mistakes() {
        assert!(is_server_fault("UNAVAILABLE"));
        assert!(is_server_fault("DEADLINE_EXCEEDED"));
        assert!(!is_server_fault("INVALID_ARGUMENT"));
        assert!(!is_server_fault("CANCELLED"));
        assert!(!is_server_fault("OK"));
        assert!(!is_server_fault("unavailable"), "names are case-sensitive, as the pod writes them");
    }
}
