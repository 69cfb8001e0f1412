//! The HorizontalPodAutoscaler (autoscaling/v2) on the stable Deployment.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube_ocr_crds::OcrServiceSpec;

use super::owner::Owner;
use crate::names::{Track, autoscaler_name};

/// Between `replicas.min` and `replicas.max` on CPU utilisation, plus the optional per-pod
/// metric. It owns the stable Deployment's `replicas`; the operator never writes them.
pub fn autoscaler(owner: &Owner, spec: &OcrServiceSpec) -> HorizontalPodAutoscaler {
    let mut metrics = vec![MetricSpec {
        type_: "Resource".to_owned(),
        resource: Some(ResourceMetricSource {
            name: "cpu".to_owned(),
            target: MetricTarget {
                type_: "Utilization".to_owned(),
                average_utilization: Some(spec.autoscaling.target_cpu_utilization),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }];
    if let Some(pods) = &spec.autoscaling.pods_metric {
        metrics.push(MetricSpec {
            type_: "Pods".to_owned(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier { name: pods.name.clone(), selector: None },
                target: MetricTarget {
                    type_: "AverageValue".to_owned(),
                    average_value: Some(Quantity(pods.target_average_value.clone())),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        });
    }
    HorizontalPodAutoscaler {
        metadata: owner.child_meta(autoscaler_name(&owner.name), Default::default()),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: Track::Stable.object_name(&owner.name),
            },
            min_replicas: Some(spec.replicas.min),
            max_replicas: spec.replicas.max,
            metrics: Some(metrics),
            behavior: None,
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use kube_ocr_proto::contract::metrics::QUEUE_DEPTH;
    use serde_json::json;

    use super::super::test_support::ocr_service;
    use super::*;

    #[test]
    fn cpu_target_and_bounds_from_the_spec() {
        let ocr =
            ocr_service(json!({ "replicas": { "min": 3, "max": 7 }, "autoscaling": { "targetCPUUtilization": 55 } }));
        let hpa = autoscaler(&Owner::of(&ocr).unwrap(), &ocr.spec);
        let spec = hpa.spec;
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(3), 7));
        let metrics = spec.metrics.unwrap();
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].resource.as_ref().unwrap().target.average_utilization, Some(55));
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
    }

    #[test]
    fn optional_pods_metric_is_added() {
        let ocr = ocr_service(json!({
            "autoscaling": { "podsMetric": { "name": QUEUE_DEPTH, "targetAverageValue": "20" } }
        }));
        let metrics = autoscaler(&Owner::of(&ocr).unwrap(), &ocr.spec).spec.metrics.unwrap();
        assert_eq!(metrics.len(), 2);
        let pods = metrics[1].pods.as_ref().unwrap();
        assert_eq!(pods.metric.name, QUEUE_DEPTH);
        assert_eq!(pods.target.average_value, Some(Quantity("20".into())));
    }
}
