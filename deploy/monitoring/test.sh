#!/usr/bin/env bash
# `make monitoring-test`: everything that proves the monitoring pack.
#   1. promtool check rules   rules.yaml and prometheus-rule.yaml's source lint clean
#   2. promtool test rules    tests/*.yaml: each alert fires when it should, stays quiet
#                             below its threshold and before its `for`
#   3. generate.sh --check    prometheus-rule.yaml is rules.yaml wrapped, nothing else
#   4. check_monitoring.py    runbook links, a firing and a quiet test per alert, metric
#                             names against the docs, the dashboard
# Usage: deploy/monitoring/test.sh <promtool> <python-with-pyyaml>
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 <promtool> <python>" >&2
  exit 2
fi
promtool=$1 python=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

"$promtool" check rules rules.yaml
"$promtool" test rules tests/*.yaml
bash generate.sh --check
"$python" tests/check_monitoring.py --promtool "$promtool"
