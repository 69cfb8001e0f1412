#!/usr/bin/env bash
# Runs the workspace's tests in two lanes at once: the cluster tests (kube-ocr-e2e), which
# mostly wait on a control plane, rollout steps and analysis windows, beside everything
# else, which mostly computes. One after the other they took about 25 minutes on 2 cores;
# side by side the waits overlap the computing.
#
# Usage: tools/test-in-two-lanes.sh <cargo>
# Each lane's output goes to a log under target/test-lanes/; both are printed when they
# finish (the cluster lane's after the other), and the exit status fails if either lane did.
set -uo pipefail
cargo=${1:-cargo}
logs=${CARGO_TARGET_DIR:-target}/test-lanes
mkdir -p "$logs"

# Build every test binary once, so the two lanes do not wait on each other's build lock.
"$cargo" test --workspace --locked --no-run || exit 1

"$cargo" test --locked -p kube-ocr-e2e >"$logs/cluster.log" 2>&1 &
cluster=$!
"$cargo" test --workspace --locked --exclude kube-ocr-e2e 2>&1 | tee "$logs/rest.log"
rest=${PIPESTATUS[0]}
wait "$cluster"
cluster_status=$?
echo "---- cluster lane (kube-ocr-e2e), log $logs/cluster.log ----"
cat "$logs/cluster.log"
echo "test lanes: rest exited $rest, cluster exited $cluster_status"
[ "$rest" -eq 0 ] && [ "$cluster_status" -eq 0 ]
