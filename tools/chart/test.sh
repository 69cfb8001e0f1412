#!/usr/bin/env bash
# `make chart-test`: the Helm chart, the kustomize base and the samples, without a cluster.
#
#   1. drift: the chart's CRD, ClusterRole rules, monitoring copies, golden ConfigMap and
#      the kustomize base equal what `make generate` would write (tools/chart/generate.py)
#   2. helm lint --strict
#   3. helm template: default values; monitoring on with monitoring.coreos.com/v1 served;
#      monitoring on without it; watchNamespace; plus `kubectl kustomize` of the base
#   4. what those renders must contain (tools/chart/check_render.py)
#   5. wrong values fail with a message (values.schema.json and the templates' checks)
#   6. kubeconform against JSON schemas made here from pinned sources (no internet):
#      Kubernetes from the k8s.io/kubernetes module that e2e/k8s-tools pins, OcrService
#      from crds/generated/, the Prometheus Operator's and Gateway API's CRDs from their
#      Go modules (pinned by version and go.sum hash: below, and in tools/gateway-api/). kubeconform must first
#      reject two broken manifests, so a validator that accepts anything fails here.
#
# The server-side half (CEL rules, the real API server's admission) is e2e/tests/chart.rs.
#
# Environment: HELM, KUBECTL, KUBECONFORM (binaries), OCR_GOLDEN (binary), PYTHON (with
# PyYAML), GO (optional).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
: "${HELM:?HELM must name the helm binary}" "${KUBECTL:?}" "${KUBECONFORM:?}" "${OCR_GOLDEN:?}" "${PYTHON:?}"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
for bin in "$HELM" "$KUBECTL" "$KUBECONFORM" "$OCR_GOLDEN"; do
  [ -x "$bin" ] || { echo "chart-test: $bin is missing: run make setup" >&2; exit 1; }
done

# Schema sources other than Kubernetes itself: Go modules, verified against these sums.
PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.85.0
PROMETHEUS_OPERATOR_SUM=h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s=
# The Gateway API pin is tools/gateway-api/ (the e2e tests install its CRDs from there too).
GATEWAY_API=sigs.k8s.io/gateway-api@$(awk '$1 == "require" && $2 == "sigs.k8s.io/gateway-api" { print $3; exit }' tools/gateway-api/go.mod)
GATEWAY_API_SUM=$(awk -v m="${GATEWAY_API#*@}" '$1 == "sigs.k8s.io/gateway-api" && $2 == m { print $3; exit }' tools/gateway-api/go.sum)
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' e2e/k8s-tools/kubernetes/go.mod)

work=$(mktemp -d "${TMPDIR:-/tmp}/kube-ocr-chart-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "chart-test: ok: $*"; }
die() { echo "chart-test: FAIL: $*" >&2; echo "chart-test: $passed passed, 1 failed"; exit 1; }

# 1. Drift.
"$PYTHON" tools/chart/generate.py --helm "$HELM" --ocr-golden "$OCR_GOLDEN" --check || die "generated files drifted"
ok "generated chart files and kustomize base are up to date"

# 2. Lint.
chart=charts/kube-ocr
"$HELM" lint --strict "$chart" >"$work/lint.log" 2>&1 || { cat "$work/lint.log" >&2; die "helm lint"; }
"$HELM" lint --strict "$chart" --set metrics.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true \
  --set monitoring.podMonitor.enabled=true --set operator.watchNamespace=team-a >"$work/lint.log" 2>&1 \
  || { cat "$work/lint.log" >&2; die "helm lint with monitoring and watchNamespace"; }
ok "helm lint --strict"

# 3. Renders.
template() { "$HELM" template kube-ocr "$chart" --namespace kube-ocr --include-crds --kube-version "$K8S_VERSION" "$@"; }
monitoring_on=(--set metrics.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true --set monitoring.podMonitor.enabled=true)
template >"$work/default.yaml" || die "helm template (default values)"
template "${monitoring_on[@]}" --api-versions monitoring.coreos.com/v1 >"$work/monitoring.yaml" || die "helm template (monitoring)"
template "${monitoring_on[@]}" >"$work/monitoring-absent.yaml" || die "helm template (monitoring without the API)"
template --set operator.watchNamespace=team-a >"$work/watch-namespace.yaml" || die "helm template (watchNamespace)"
"$KUBECTL" kustomize deploy/kustomize/base >"$work/kustomize.yaml" || die "kubectl kustomize deploy/kustomize/base"
ok "helm template (4 value sets) and kubectl kustomize"

# 4. Contents.
"$PYTHON" tools/chart/check_render.py "$work" || die "rendered manifests"
ok "renders contain what the chart promises"

# 5. Wrong values are refused, with a message naming the value.
refuse() { # expected-message-fragment helm-args...
  local want=$1
  shift
  if template "$@" >"$work/refused.yaml" 2>"$work/refused.log"; then
    die "helm template $* was accepted"
  fi
  grep -q -- "$want" "$work/refused.log" || { cat "$work/refused.log" >&2; die "helm template $*: no '$want' in the error"; }
}
refuse "replicas" --set operator.replicas=two
refuse "format" --set operator.log.format=yaml
refuse "replicass" --set operator.replicass=2
refuse "leaderElection.enabled" --set operator.replicas=3 --set operator.leaderElection.enabled=false
ok "wrong values fail with a message (4 cases)"

# 6. Schemas and kubeconform.
module_dir() { # module@version expected-sum
  local json dir sum
  json=$(cd "$work" && GOWORK=off GOFLAGS=-mod=mod "$GO" mod download -json "$1") || die "go mod download $1"
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
  sum=$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",$/\1/p' <<<"$json")
  [ "$sum" = "$2" ] || die "$1 has sum $sum, tools/chart/test.sh pins $2"
  echo "$dir"
}
k8s_json=$(cd e2e/k8s-tools/kubernetes && GOWORK=off GOFLAGS=-mod=readonly "$GO" mod download -json k8s.io/kubernetes) \
  || die "go mod download k8s.io/kubernetes (e2e/k8s-tools/kubernetes)"
k8s_dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$k8s_json")
swagger=$k8s_dir/api/openapi-spec/swagger.json
[ -f "$swagger" ] || die "no $swagger (the k8s.io/kubernetes $K8S_VERSION module)"
prom_dir=$(module_dir "$PROMETHEUS_OPERATOR" "$PROMETHEUS_OPERATOR_SUM")
gw_dir=$(module_dir "$GATEWAY_API" "$GATEWAY_API_SUM")
crds=(crds/generated/ocrservices.kube-ocr.dev.yaml)
for name in servicemonitors podmonitors prometheusrules; do
  crds+=("$prom_dir/example/prometheus-operator-crd/monitoring.coreos.com_$name.yaml")
done
for name in grpcroutes httproutes; do
  crds+=("$gw_dir/config/crd/standard/gateway.networking.k8s.io_$name.yaml")
done
"$PYTHON" tools/chart/openapi2jsonschema.py --swagger "$swagger" $(printf -- '--crd %s ' "${crds[@]}") --out "$work/schemas" \
  || die "making JSON schemas"
kubeconform() {
  "$KUBECONFORM" -summary -output text -kubernetes-version "${K8S_VERSION#v}" \
    -schema-location "$work/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$@"
}

cat >"$work/broken.yaml" <<'BROKEN'
apiVersion: apps/v1
kind: Deployment
metadata: { name: broken }
spec:
  selector: { matchLabels: { app: x } }
  template:
    metadata: { labels: { app: x } }
    spec:
      containers:
        - name: x
          image: x
          securityContex: { runAsNonRoot: true }
---
apiVersion: kube-ocr.dev/v1alpha1
kind: OcrService
metadata: { name: broken }
spec:
  model: { uri: file:///models/ppocr-v4, version: "1" }
  image: x
  replicas: { min: two }
BROKEN
if kubeconform "$work/broken.yaml" >"$work/broken.log" 2>&1; then
  cat "$work/broken.log" >&2
  die "kubeconform accepted broken manifests: the schemas validate nothing"
fi
grep -q "securityContex" "$work/broken.log" && grep -q "OcrService" "$work/broken.log" \
  || { cat "$work/broken.log" >&2; die "kubeconform rejected the broken manifests for other reasons"; }
ok "kubeconform rejects an unknown Deployment field and a wrong OcrService type"

for render in default monitoring watch-namespace kustomize; do
  kubeconform "$work/$render.yaml" >"$work/kubeconform.log" 2>&1 || { cat "$work/kubeconform.log" >&2; die "kubeconform: $render render"; }
  echo "chart-test:   $render: $(tail -1 "$work/kubeconform.log")"
done
kubeconform deploy/samples/*.yaml >"$work/kubeconform.log" 2>&1 || { cat "$work/kubeconform.log" >&2; die "kubeconform: deploy/samples"; }
echo "chart-test:   samples: $(tail -1 "$work/kubeconform.log")"
ok "kubeconform: chart renders, kustomize base and samples valid against Kubernetes $K8S_VERSION schemas"

echo "chart-test: $passed passed, 0 failed"
