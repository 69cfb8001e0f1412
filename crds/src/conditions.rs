//! Condition types and the reasons the operator writes into them and into Events. Reasons
//! are PascalCase, as Kubernetes expects; a user can grep for them in `kubectl describe`.

/// At least one stable pod is Ready and serving.
pub const AVAILABLE: &str = "Available";
/// A revision is rolling out (stable rolling, or a canary in progress).
pub const PROGRESSING: &str = "Progressing";
/// Something needs attention; the reason names it and the message says what to do.
pub const DEGRADED: &str = "Degraded";

/// Reasons used in conditions and events.
pub mod reasons {
    /// Available: enough stable pods are Ready.
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Available false: no stable pod is Ready yet.
    pub const NO_READY_REPLICAS: &str = "NoReadyReplicas";
    /// Progressing: the stable Deployment rolls to a new revision.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// Progressing false: every stable pod is at the desired revision.
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
    /// Degraded false.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// Degraded: a pod's image cannot be pulled.
    pub const IMAGE_PULL_FAILED: &str = "ImagePullFailed";
    /// Degraded: a container keeps crashing.
    pub const CRASH_LOOPING: &str = "CrashLooping";
    /// Degraded: pods cannot be scheduled (e.g. no free GPUs).
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    /// Degraded: a golden-set ConfigMap named in the spec does not exist.
    pub const GOLDEN_SET_MISSING: &str = "GoldenSetMissing";
    /// Degraded: the PersistentVolumeClaim of a `pvc://` model URI does not exist.
    pub const MODEL_CLAIM_MISSING: &str = "ModelClaimMissing";
    /// Degraded: the stable Deployment missed its progress deadline.
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Degraded: the spec was admitted but cannot be realised as given.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Degraded / Warning event: a child object could not be applied.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// Degraded: the GRPCRoute named in `spec.rollout.traffic.grpcRoute` does not exist.
    pub const GRPC_ROUTE_NOT_FOUND: &str = "GRPCRouteNotFound";
    /// Degraded: the GRPCRoute exists but its weights cannot be set (no backendRef to the
    /// stable Service, or two to one track).
    pub const GRPC_ROUTE_INVALID: &str = "GRPCRouteInvalid";
    /// Degraded: the HTTPRoute named in `spec.rollout.traffic.httpRoute` does not exist.
    pub const HTTP_ROUTE_NOT_FOUND: &str = "HTTPRouteNotFound";
    /// Degraded: the HTTPRoute exists but its weights cannot be set (no backendRef to the
    /// stable Service, or two to one track).
    pub const HTTP_ROUTE_INVALID: &str = "HTTPRouteInvalid";
    /// Degraded: the API server does not serve the kind of a configured route (GRPCRoute or
    /// HTTPRoute: the Gateway API CRDs are missing).
    pub const GATEWAY_API_NOT_INSTALLED: &str = "GatewayAPINotInstalled";
    /// Event: a new revision was applied to the stable Deployment.
    pub const REVISION_APPLIED: &str = "RevisionApplied";
    /// Event: the service became available.
    pub const BECAME_AVAILABLE: &str = "BecameAvailable";
    /// Event: the service lost its last Ready pod.
    pub const BECAME_UNAVAILABLE: &str = "BecameUnavailable";
    /// Event: a Degraded cause went away.
    pub const RECOVERED: &str = "Recovered";
}
