//! The three Services: `<name>` (both tracks, what clients call), `<name>-stable` and
//! `<name>-canary` (one track each, for analysis and Gateway API backendRefs).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::owner::Owner;
use crate::names::{GRPC_PORT, HTTP_API_PORT, HTTP_API_PORT_NAME, HTTP_PORT, Track, shared_service_name};

/// Shared, stable and canary, in that order.
pub fn services(owner: &Owner) -> Vec<Service> {
    vec![shared_service(owner), track_service(owner, Track::Stable), track_service(owner, Track::Canary)]
}

/// `<name>`: selects the pods of both tracks.
pub fn shared_service(owner: &Owner) -> Service {
    service(owner, shared_service_name(&owner.name), owner.selector(), BTreeMap::new())
}

/// `<name>-stable` / `<name>-canary`: selects one track's pods.
pub fn track_service(owner: &Owner, track: Track) -> Service {
    let labels = BTreeMap::from([(crate::names::TRACK_LABEL.to_owned(), track.label_value().to_owned())]);
    service(owner, track.object_name(&owner.name), owner.track_selector(track), labels)
}

fn service(
    owner: &Owner,
    name: String,
    selector: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
) -> Service {
    Service {
        metadata: owner.child_meta(name, labels),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector),
            ports: Some(vec![
                ServicePort {
                    name: Some("grpc".to_owned()),
                    port: GRPC_PORT,
                    target_port: Some(IntOrString::String("grpc".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    // Plain-text HTTP/2: lets meshes and Gateways route it as gRPC.
                    app_protocol: Some("kubernetes.io/h2c".to_owned()),
                    ..ServicePort::default()
                },
                ServicePort {
                    name: Some(HTTP_API_PORT_NAME.to_owned()),
                    port: HTTP_API_PORT,
                    target_port: Some(IntOrString::String(HTTP_API_PORT_NAME.to_owned())),
                    protocol: Some("TCP".to_owned()),
                    app_protocol: Some("http".to_owned()),
                    ..ServicePort::default()
                },
                ServicePort {
                    name: Some("http".to_owned()),
                    port: HTTP_PORT,
                    target_port: Some(IntOrString::String("http".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::ocr_service;
    use super::*;
    use crate::names::{SERVICE_LABEL, TRACK_LABEL};

    #[test]
    fn shared_service_spans_both_tracks_and_track_services_one() {
        let owner = Owner::of(&ocr_service(json!({}))).unwrap();
        let all = services(&owner);
        let names: Vec<&str> = all.iter().map(|s| s.metadata.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["invoices", "invoices-stable", "invoices-canary"]);
        let selector = |s: &Service| s.spec.as_ref().unwrap().selector.clone().unwrap();
        assert_eq!(selector(&all[0]), BTreeMap::from([(SERVICE_LABEL.to_owned(), "invoices".to_owned())]));
        assert_eq!(selector(&all[1])[TRACK_LABEL], "stable");
        assert_eq!(selector(&all[2])[TRACK_LABEL], "canary");
        let ports = all[0].spec.as_ref().unwrap().ports.clone().unwrap();
        assert_eq!(ports.iter().map(|p| p.port).collect::<Vec<_>>(), [GRPC_PORT, HTTP_API_PORT, HTTP_PORT]);
    }
}
