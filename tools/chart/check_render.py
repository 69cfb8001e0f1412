#!/usr/bin/env python3
"""Checks what `helm template` rendered, beyond schema validity (run by tools/chart/test.sh):

    check_render.py DIR

DIR holds default.yaml (default values), monitoring.yaml (monitoring on, with
monitoring.coreos.com/v1 served), monitoring-absent.yaml (monitoring on, API not served),
watch-namespace.yaml (operator.watchNamespace=team-a) and kustomize.yaml (`kubectl
kustomize deploy/kustomize/base`). Fails, naming the object, when:
- an object the chart promises is missing, or a monitoring object appears without the API;
- the ClusterRole's rules differ from operator/generated/clusterrole.yaml;
- the PrometheusRule's or PodMonitor's spec differs from deploy/monitoring/;
- the operator Deployment is not hardened (non-root, read-only root fs, no privilege
  escalation, probes on /healthz and /readyz) or leader election is off with 2 replicas;
- the golden ConfigMap is missing or its release-size budget is exceeded;
- the kustomize base is not the default render (same objects, same specs).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# The golden ConfigMap lands twice in Helm's release Secret (template and manifest), which
# may hold 1 MiB base64 of gzip; this budget leaves room for everything else.
GOLDEN_BUDGET_BYTES = 300_000

failures: list[str] = []


def expect(condition: bool, message: str) -> None:
    if not condition:
        failures.append(message)


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def index(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def kinds(docs: list[dict]) -> set[str]:
    return {d["kind"] for d in docs}


def env_of(container: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def check_default(docs: list[dict]) -> None:
    objects = index(docs)
    for key in [
        ("CustomResourceDefinition", "ocrservices.kube-ocr.dev"),
        ("ServiceAccount", "kube-ocr-operator"),
        ("ClusterRole", "kube-ocr-operator"),
        ("ClusterRoleBinding", "kube-ocr-operator"),
        ("Deployment", "kube-ocr-operator"),
        ("PodDisruptionBudget", "kube-ocr-operator"),
        ("Service", "kube-ocr-operator-metrics"),
        ("ConfigMap", "ocr-golden-default"),
    ]:
        expect(key in objects, f"default render: {key[0]} {key[1]} is missing")
    expect(not kinds(docs) & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}, "default render has monitoring objects")

    generated = yaml.safe_load((REPO / "operator/generated/clusterrole.yaml").read_text())
    role = objects.get(("ClusterRole", "kube-ocr-operator"), {})
    expect(role.get("rules") == generated["rules"], "ClusterRole rules differ from operator/generated/clusterrole.yaml")

    crd = yaml.safe_load((REPO / "crds/generated/ocrservices.kube-ocr.dev.yaml").read_text())
    expect(objects.get(("CustomResourceDefinition", "ocrservices.kube-ocr.dev")) == crd, "the chart's CRD differs from crds/generated/")

    deployment = objects.get(("Deployment", "kube-ocr-operator"))
    if deployment:
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        security = container.get("securityContext", {})
        expect(pod.get("securityContext", {}).get("runAsNonRoot") is True, "operator pod: runAsNonRoot")
        expect(security.get("readOnlyRootFilesystem") is True, "operator: readOnlyRootFilesystem")
        expect(security.get("allowPrivilegeEscalation") is False, "operator: allowPrivilegeEscalation")
        expect(security.get("capabilities", {}).get("drop") == ["ALL"], "operator: capabilities drop ALL")
        expect(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "operator: liveness on /healthz")
        expect(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "operator: readiness on /readyz")
        expect(container["image"] == "ghcr.io/kube-ocr/operator:0.1.0", f"operator image {container['image']}")
        expect("requests" in container.get("resources", {}), "operator: resource requests")
        env = env_of(container)
        expect(spec["replicas"] == 2 and env.get("OCR_OPERATOR_LEADER_ELECT") == "true", "2 replicas with leader election")
        expect(
            env.get("OCR_OPERATOR_LEASE_NAMESPACE") == {"fieldRef": {"fieldPath": "metadata.namespace"}},
            "the Lease must be in the operator's own namespace",
        )
        expect("OCR_OPERATOR_WATCH_NAMESPACE" not in env, "default watches all namespaces")
        for name in env:
            expect(name in ("TMPDIR", "POD_IP") or name.startswith("OCR_OPERATOR_"), f"operator env {name} is no operator flag")
        expect(env.get("OCR_OPERATOR_HTTP_ADDR") == "0.0.0.0:8080", "operator listens on 0.0.0.0:8080 by default")

    golden = objects.get(("ConfigMap", "ocr-golden-default"))
    if golden:
        payload = sum(len(v) for v in golden.get("binaryData", {}).values()) + sum(len(v) for v in golden.get("data", {}).values())
        expect(payload <= GOLDEN_BUDGET_BYTES, f"golden ConfigMap payload {payload} B exceeds the {GOLDEN_BUDGET_BYTES} B budget")
        expect(golden["metadata"]["labels"].get("kube-ocr.dev/golden-set") == "ocr-golden-default", "golden-set label")
        expect("truth.jsonl" in golden.get("data", {}), "golden ConfigMap has no truth.jsonl")


def check_monitoring(docs: list[dict]) -> None:
    by_kind = {d["kind"]: d for d in docs}
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        expect(kind in by_kind, f"monitoring render: no {kind}")
    for kind, source in (("PrometheusRule", "prometheus-rule.yaml"), ("PodMonitor", "pod-monitor.yaml")):
        want = yaml.safe_load((REPO / "deploy/monitoring" / source).read_text())["spec"]
        expect(by_kind.get(kind, {}).get("spec") == want, f"{kind} spec differs from deploy/monitoring/{source}")


def check_watch_namespace(docs: list[dict]) -> None:
    bindings = sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding")
    expect(bindings == ["kube-ocr", "team-a"], f"watchNamespace: RoleBindings in {bindings}, want kube-ocr and team-a")
    expect("ClusterRoleBinding" not in kinds(docs), "watchNamespace: no ClusterRoleBinding")
    deployment = index(docs)[("Deployment", "kube-ocr-operator")]
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    expect(env.get("OCR_OPERATOR_WATCH_NAMESPACE") == "team-a", "watchNamespace: OCR_OPERATOR_WATCH_NAMESPACE")


def strip(doc: dict) -> dict:
    """A rendered object without the labels that differ between Helm and kustomize."""
    def clean(meta: dict) -> None:
        labels = meta.get("labels", {})
        labels.pop("helm.sh/chart", None)
        labels.pop("app.kubernetes.io/managed-by", None)
    clean(doc.get("metadata", {}))
    clean(doc.get("spec", {}).get("template", {}).get("metadata", {}))
    return doc


def check_kustomize(default: list[dict], kustomize: list[dict]) -> None:
    helm = {k: strip(v) for k, v in index(default).items()}
    kust = {k: strip(v) for k, v in index(kustomize).items() if k[0] != "Namespace"}
    expect(set(helm) == set(kust), f"kustomize base objects {sorted(set(kust) ^ set(helm))} differ from the chart's")
    for key in set(helm) & set(kust):
        expect(helm[key] == kust[key], f"kustomize base: {key[0]} {key[1]} differs from the chart's default render")


def main() -> int:
    out = Path(sys.argv[1])
    default = load(out / "default.yaml")
    check_default(default)
    check_monitoring(load(out / "monitoring.yaml"))
    absent = load(out / "monitoring-absent.yaml")
    expect(not kinds(absent) & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}, "monitoring objects without the API")
    check_watch_namespace(load(out / "watch-namespace.yaml"))
    check_kustomize(default, load(out / "kustomize.yaml"))
    for failure in failures:
        print(f"check_render: FAIL: {failure}", file=sys.stderr)
    if failures:
        return 1
    print("check_render: default, monitoring, watch-namespace and kustomize renders are as promised")
    return 0


if __name__ == "__main__":
    sys.exit(main())
