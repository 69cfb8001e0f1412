//! The one error type of the operator library; each variant names the operation that failed.

/// What went wrong, named after the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("read the OcrService's {field}: it is not set")]
    ReadMetadata { field: &'static str },
    #[error("parse model URI {uri:?}: {reason}")]
    ParseModelUri { uri: String, reason: String },
    #[error("apply {kind} {name}: {source}")]
    Apply { kind: &'static str, name: String, source: kube::Error },
    #[error("scale Deployment {name} to {replicas}: {source}")]
    ScaleDeployment { name: String, replicas: i32, source: kube::Error },
    #[error("delete {kind} {name}: {source}")]
    Delete { kind: &'static str, name: String, source: kube::Error },
    #[error("get {kind} {name}: {source}")]
    Get { kind: &'static str, name: String, source: kube::Error },
    #[error("list {kind}: {source}")]
    List { kind: &'static str, source: kube::Error },
    #[error("set the canary weight on {kind} {name}: {message}")]
    SetRouteWeights { kind: &'static str, name: String, reason: &'static str, message: String },
    #[error("patch the weights of {kind} {name}: {source}")]
    PatchRoute { kind: &'static str, name: String, source: kube::Error },
    #[error("discover the resources of {group_version}: {source}")]
    DiscoverApi { group_version: &'static str, source: kube::Error },
    #[error("remove the rollout-action annotation of OcrService {name}: {source}")]
    TakeRolloutAction { name: String, source: kube::Error },
    #[error("patch the status of OcrService {name}: {source}")]
    PatchStatus { name: String, source: kube::Error },
    #[error("find the OcrService CRD (install it first: crds/generated/ocrservices.kube-ocr.dev.yaml): {source}")]
    FindCrd { source: kube::Error },
    #[error("acquire the leader Lease {namespace}/{name}: {source}")]
    AcquireLease { namespace: String, name: String, source: kube::Error },
    #[error("renew the leader Lease {namespace}/{name}: lost it to {holder:?}")]
    RenewLease { namespace: String, name: String, holder: Option<String> },
    #[error("bind the metrics and health server to {addr}: {source}")]
    BindHttp { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("serve metrics and health: {source}")]
    ServeHttp { source: std::io::Error },
    #[error("render {what} as YAML: {source}")]
    RenderYaml { what: &'static str, source: serde_norway::Error },
}

impl OperatorError {
    /// The failed operation, as a metrics label.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::ReadMetadata { .. } => "read_metadata",
            Self::ParseModelUri { .. } => "parse_model_uri",
            Self::Apply { .. } => "apply",
            Self::Delete { .. } => "delete",
            Self::Get { .. } => "get",
            Self::List { .. } => "list",
            Self::PatchStatus { .. } => "patch_status",
            Self::TakeRolloutAction { .. } => "take_rollout_action",
            Self::SetRouteWeights { .. } => "set_route_weights",
            Self::PatchRoute { .. } => "patch_route",
            Self::DiscoverApi { .. } => "discover_api",
            _ => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reconcile_failure_names_its_operation_for_the_metrics() {
        let refused = || kube::Error::Api(kube::core::Status::failure("no", "Forbidden").with_code(403).boxed());
        let apply = OperatorError::Apply { kind: "Deployment", name: "x".into(), source: refused() };
        assert_eq!(apply.operation(), "apply");
        assert_eq!(OperatorError::PatchStatus { name: "x".into(), source: refused() }.operation(), "patch_status");
        let route = OperatorError::SetRouteWeights {
            kind: "HTTPRoute",
            name: "r".into(),
            reason: "HTTPRouteNotFound",
            message: "m".into(),
        };
        assert_eq!(route.operation(), "set_route_weights");
        assert_eq!(route.to_string(), "set the canary weight on HTTPRoute r: m");
        assert_eq!(OperatorError::ReadMetadata { field: "namespace" }.operation(), "read_metadata");
        let scale = OperatorError::ScaleDeployment { name: "x".into(), replicas: 1, source: refused() };
        assert_eq!(scale.operation(), "other", "operations without their own label");
    }
}
