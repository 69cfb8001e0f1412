//! The operator's configuration: every flag has an environment variable, so the Helm chart
//! can set either.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
pub use kube_ocr_runtime::LogFormat;
use kube_ocr_runtime::Logging;

use crate::builders::{BuildSettings, DEFAULT_FETCH_IMAGE};

/// Configuration of [`crate::run`].
#[derive(Debug, Clone, Parser)]
#[command(name = "ocr-operator", version, about = "kube-ocr operator: reconciles OcrService resources")]
pub struct OperatorConfig {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "OCR_OPERATOR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Watch OcrServices in this namespace only (default: all namespaces).
    #[arg(long, env = "OCR_OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Take a Lease before reconciling, so several replicas can run and only one acts.
    #[arg(long, env = "OCR_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (the chart sets the operator's own namespace).
    #[arg(long, env = "OCR_OPERATOR_LEASE_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, env = "OCR_OPERATOR_LEASE_NAME", default_value = "kube-ocr-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: the host name).
    #[arg(long, env = "OCR_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
    /// How long a Lease holds without renewal, in seconds.
    #[arg(long, env = "OCR_OPERATOR_LEASE_DURATION_SECS", default_value_t = 15)]
    pub lease_duration_secs: u64,
    /// How often the leader renews and standbys retry, in seconds.
    #[arg(long, env = "OCR_OPERATOR_LEASE_RETRY_SECS", default_value_t = 2)]
    pub lease_retry_secs: u64,
    /// Reconciles running at once.
    #[arg(long, env = "OCR_OPERATOR_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// Re-check a healthy OcrService this often even without changes, in seconds.
    #[arg(long, env = "OCR_OPERATOR_RESYNC_SECS", default_value_t = 300)]
    pub resync_secs: u64,
    /// First re-check of an OcrService whose golden-set ConfigMap or model claim is missing,
    /// in seconds (no watch reports their creation); later re-checks slow down to the resync period.
    #[arg(long, env = "OCR_OPERATOR_SETTLING_RECHECK_SECS", default_value_t = 15)]
    pub settling_recheck_secs: u64,
    /// First retry delay after a failed reconcile, in seconds; doubles per failure.
    #[arg(long, env = "OCR_OPERATOR_ERROR_BACKOFF_SECS", default_value_t = 2)]
    pub error_backoff_secs: u64,
    /// Longest retry delay after failed reconciles, in seconds.
    #[arg(long, env = "OCR_OPERATOR_ERROR_BACKOFF_MAX_SECS", default_value_t = 300)]
    pub error_backoff_max_secs: u64,
    /// Image of the init container that downloads https:// model bundles (needs sh, curl
    /// or wget, sha256sum and tar).
    #[arg(long, env = "OCR_OPERATOR_FETCH_IMAGE", default_value = DEFAULT_FETCH_IMAGE)]
    pub fetch_image: String,
    /// Log line format.
    #[arg(long, env = "OCR_OPERATOR_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "OCR_OPERATOR_LOG", default_value = "info")]
    pub log_filter: String,
}

impl OperatorConfig {
    /// The defaults, ignoring the environment (for tests and embedding).
    pub fn defaults() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            watch_namespace: None,
            leader_elect: true,
            lease_namespace: "default".to_owned(),
            lease_name: "kube-ocr-operator".to_owned(),
            identity: None,
            lease_duration_secs: 15,
            lease_retry_secs: 2,
            concurrency: 4,
            resync_secs: 300,
            settling_recheck_secs: 15,
            error_backoff_secs: 2,
            error_backoff_max_secs: 300,
            fetch_image: DEFAULT_FETCH_IMAGE.to_owned(),
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
        }
    }

    /// The command line (without the program name) that parses back to this configuration:
    /// how code that builds an [`OperatorConfig`] (the e2e harness) starts the binary, or its
    /// container, with it. Every flag is written, so nothing depends on the defaults of the
    /// binary that reads them.
    pub fn to_args(&self) -> Vec<String> {
        let log_format = clap::ValueEnum::to_possible_value(&self.log_format)
            .map(|value| value.get_name().to_owned())
            .unwrap_or_default();
        let mut args = vec![
            format!("--http-addr={}", self.http_addr),
            format!("--leader-elect={}", self.leader_elect),
            format!("--lease-namespace={}", self.lease_namespace),
            format!("--lease-name={}", self.lease_name),
            format!("--lease-duration-secs={}", self.lease_duration_secs),
            format!("--lease-retry-secs={}", self.lease_retry_secs),
            format!("--concurrency={}", self.concurrency),
            format!("--resync-secs={}", self.resync_secs),
            format!("--settling-recheck-secs={}", self.settling_recheck_secs),
            format!("--error-backoff-secs={}", self.error_backoff_secs),
            format!("--error-backoff-max-secs={}", self.error_backoff_max_secs),
            format!("--fetch-image={}", self.fetch_image),
            format!("--log-format={log_format}"),
            format!("--log-filter={}", self.log_filter),
        ];
        args.extend(self.watch_namespace.iter().map(|namespace| format!("--watch-namespace={namespace}")));
        args.extend(self.identity.iter().map(|identity| format!("--identity={identity}")));
        args
    }

    /// The logging settings for the shared start-up path (`kube_ocr_runtime::run_main`).
    pub fn logging(&self) -> Logging {
        Logging { format: self.log_format, filter: self.log_filter.clone() }
    }

    pub fn build_settings(&self) -> BuildSettings {
        BuildSettings { fetch_image: self.fetch_image.clone() }
    }

    /// The Lease holder identity: the flag, else the host name, else the process id.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .map_or_else(
                    || format!("ocr-operator-{}", std::process::id()),
                    |h| format!("{h}-{}", std::process::id()),
                )
        })
    }

    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_secs)
    }

    pub fn settling_recheck(&self) -> Duration {
        Duration::from_secs(self.settling_recheck_secs)
    }

    /// Delay before retry number `failures` (1-based): doubling from the base, capped.
    pub fn error_backoff(&self, failures: u32) -> Duration {
        let factor = 2u64.saturating_pow(failures.saturating_sub(1).min(20));
        Duration::from_secs(self.error_backoff_secs.saturating_mul(factor).min(self.error_backoff_max_secs))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_flag_has_an_environment_variable() {
        let command = OperatorConfig::command();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert!(env.as_deref().is_some_and(|e| e.starts_with("OCR_OPERATOR_")), "--{id} has no OCR_OPERATOR_* env");
        }
    }

    #[test]
    fn docs_list_every_flag_and_degraded_reason() {
        let docs = include_str!("../../docs/operator.md");
        for arg in OperatorConfig::command().get_arguments() {
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(docs.contains(&format!("`{env}`")), "docs/operator.md does not list {env}");
                let flag = format!("`--{}`", arg.get_long().unwrap());
                assert!(docs.contains(&flag), "docs/operator.md does not list {flag}");
            }
        }
        use kube_ocr_crds::conditions::reasons::*;
        for reason in [
            IMAGE_PULL_FAILED,
            CRASH_LOOPING,
            UNSCHEDULABLE,
            GOLDEN_SET_MISSING,
            MODEL_CLAIM_MISSING,
            PROGRESS_DEADLINE_EXCEEDED,
            APPLY_FAILED,
            INVALID_SPEC,
            REVISION_APPLIED,
            BECAME_AVAILABLE,
            BECAME_UNAVAILABLE,
            RECOVERED,
            ROLLOUT_COMPLETE,
        ] {
            assert!(docs.contains(&format!("`{reason}`")), "docs/operator.md does not explain {reason}");
        }
    }

    #[test]
    fn defaults_match_the_parsed_defaults() {
        let parsed = OperatorConfig::try_parse_from(["ocr-operator"]).unwrap();
        let defaults = OperatorConfig::defaults();
        assert_eq!(format!("{:?}", OperatorConfig { identity: None, ..parsed }), format!("{defaults:?}"));
    }

    #[test]
    fn to_args_parses_back_to_the_same_configuration() {
        let parse = |config: &OperatorConfig| {
            let args = std::iter::once("ocr-operator".to_owned()).chain(config.to_args());
            format!("{:?}", OperatorConfig::try_parse_from(args).unwrap())
        };
        let mut changed = OperatorConfig::defaults();
        changed.http_addr = "127.0.0.1:9090".parse().unwrap();
        changed.watch_namespace = Some("team-a".to_owned());
        changed.leader_elect = false;
        changed.lease_namespace = "ops".to_owned();
        changed.lease_name = "ocr-lease".to_owned();
        changed.identity = Some("replica-1".to_owned());
        changed.lease_duration_secs = 5;
        changed.lease_retry_secs = 1;
        changed.concurrency = 9;
        changed.resync_secs = 60;
        changed.settling_recheck_secs = 2;
        changed.error_backoff_secs = 3;
        changed.error_backoff_max_secs = 30;
        changed.fetch_image = "busybox:1.37".to_owned();
        changed.log_format = LogFormat::Json;
        changed.log_filter = "info,kube_ocr_operator=debug".to_owned();
        assert_eq!(parse(&changed), format!("{changed:?}"));
        let defaults = OperatorConfig { identity: Some("fixed".to_owned()), ..OperatorConfig::defaults() };
        assert_eq!(parse(&defaults), format!("{defaults:?}"));
    }

    #[test]
    fn leader_election_can_be_switched_off() {
        let parsed = OperatorConfig::try_parse_from(["ocr-operator", "--leader-elect", "false"]).unwrap();
        assert!(!parsed.leader_elect);
    }

    #[test]
    fn error_backoff_doubles_and_caps() {
        let config = OperatorConfig::defaults();
        let delays: Vec<u64> = (1..=10).map(|n| config.error_backoff(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(config.error_backoff(u32::MAX).as_secs(), 300);
    }
}
