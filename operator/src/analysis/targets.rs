//! Which pods an analysis measures: the Ready pods of one track at one revision, with the
//! addresses the controller reaches them at (pods are reached directly, as gRPC clients do
//! in a cluster; ClusterIPs are never needed).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

use crate::names::{REVISION_LABEL, SERVICE_LABEL, TRACK_LABEL, Track};

/// A Ready pod of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEndpoint {
    pub name: String,
    pub ip: IpAddr,
}

/// The label selector of `track`'s pods of OcrService `name` at `revision`.
pub fn track_pod_selector(name: &str, track: Track, revision: &str) -> String {
    format!("{SERVICE_LABEL}={name},{TRACK_LABEL}={},{REVISION_LABEL}={revision}", track.label_value())
}

/// The pods that are Ready, not terminating and have an address.
pub fn ready_endpoints(pods: Vec<Pod>) -> Vec<PodEndpoint> {
    pods.into_iter()
        .filter(|pod| {
            pod.metadata.deletion_timestamp.is_none()
                && pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|pod| {
            let ip = pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
            Some(PodEndpoint { name: pod.metadata.name?, ip })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, ready: &str, ip: Option<&str>, terminating: bool) -> Pod {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": name },
            "status": { "conditions": [{ "type": "Ready", "status": ready }] },
        }))
        .unwrap();
        pod.status.as_mut().unwrap().pod_ip = ip.map(str::to_owned);
        if terminating {
            pod.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        pod
    }

    #[test]
    fn only_ready_running_pods_with_an_address_are_measured() {
        let pods = vec![
            pod("ready", "True", Some("10.0.0.7"), false),
            pod("not-ready", "False", Some("10.0.0.8"), false),
            pod("no-ip", "True", None, false),
            pod("bad-ip", "True", Some("nope"), false),
            pod("terminating", "True", Some("10.0.0.9"), true),
        ];
        assert_eq!(ready_endpoints(pods), vec![PodEndpoint { name: "ready".into(), ip: [10, 0, 0, 7].into() }]);
    }

    #[test]
    fn the_selector_names_service_track_and_revision() {
        assert_eq!(
            track_pod_selector("invoices", Track::Canary, "abc123"),
            "kube-ocr.dev/ocrservice=invoices,kube-ocr.dev/track=canary,kube-ocr.dev/revision=abc123"
        );
    }
}
