#!/usr/bin/env bash
# Writes prometheus-rule.yaml (the PrometheusRule for the Prometheus Operator) from
# rules.yaml (the plain rule file promtool checks and tests), so that both always carry
# the same rules. `generate.sh --check` fails when the committed file differs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

render() {
  cat <<'HEADER'
# GENERATED from rules.yaml by generate.sh (`make generate`): edit rules.yaml instead.
# `make monitoring-test` fails when this file and rules.yaml drift.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: kube-ocr
  labels:
    app.kubernetes.io/name: kube-ocr
    app.kubernetes.io/component: monitoring
spec:
HEADER
  # Everything from `groups:` on, indented under spec (comments above it stay behind).
  sed -n '/^groups:/,$p' "$here/rules.yaml" | sed -E 's/^(.)/  \1/'
}

case ${1:-} in
  --check)
    if ! diff -u "$here/prometheus-rule.yaml" <(render); then
      echo "deploy/monitoring/prometheus-rule.yaml is out of date: run make generate" >&2
      exit 1
    fi ;;
  "") render >"$here/prometheus-rule.yaml" ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
