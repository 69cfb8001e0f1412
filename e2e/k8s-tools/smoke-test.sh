#!/usr/bin/env bash
# Smoke check of the binaries built by tools/build-k8s-binaries.sh: starts etcd,
# kube-apiserver (RBAC on), kube-controller-manager and kube-scheduler on free
# loopback ports with throwaway certificates in a temp dir, checks /readyz, the
# versions, that the controller manager and scheduler take their leases and that
# the controller manager creates a namespace's default ServiceAccount, then stops
# everything it started and removes the temp dir.
#
# Usage: e2e/k8s-tools/smoke-test.sh <bin-dir>
set -euo pipefail

bin=$(cd "${1:?usage: $0 <bin-dir>}" && pwd)
work=$(mktemp -d /tmp/k8s-smoke.XXXXXX)
pids=()
# Stops in reverse start order (the apiserver before etcd: an apiserver whose etcd
# is gone can hang in graceful shutdown), SIGKILL after 15s.
cleanup() {
  local i pid n
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill "$pid" 2>/dev/null || continue
    for ((n = 0; n < 150; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
etcd_client_port=$(free_port)
etcd_peer_port=$(free_port)
apiserver_port=$(free_port)
kcm_port=$(free_port)
scheduler_port=$(free_port)

# --- certificates: a CA, the apiserver's serving cert, an admin client cert, the SA key
pki=$work/pki
mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 \
    -subj "/CN=kube-ocr-e2e-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
    -subj "/CN=kube-apiserver" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' >apiserver.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile apiserver.ext -out apiserver.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
    -subj "/O=system:masters/CN=kube-ocr-e2e-admin" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >admin.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile admin.ext -out admin.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)

kubeconfig=$work/admin.kubeconfig
cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
EOF
kubectl=("$bin/kubectl" --kubeconfig "$kubeconfig")

# --- etcd
"$bin/etcd" \
  --name e2e \
  --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_client_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_client_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "e2e=http://127.0.0.1:$etcd_peer_port" \
  --log-level warn \
  >"$work/etcd.log" 2>&1 &
pids+=($!)

# --- kube-apiserver
apiserver_flags=(
  --etcd-servers "http://127.0.0.1:$etcd_client_port"
  --bind-address 127.0.0.1
  --advertise-address 127.0.0.1
  --secure-port "$apiserver_port"
  --tls-cert-file "$pki/apiserver.crt"
  --tls-private-key-file "$pki/apiserver.key"
  --client-ca-file "$pki/ca.crt"
  --service-account-issuer https://kubernetes.default.svc.cluster.local
  --service-account-key-file "$pki/sa.pub"
  --service-account-signing-key-file "$pki/sa.key"
  --service-cluster-ip-range 10.0.0.0/24
  --authorization-mode Node,RBAC
  --cert-dir "$work/apiserver-certs"
)
echo "smoke: kube-apiserver ${apiserver_flags[*]}"
"$bin/kube-apiserver" "${apiserver_flags[@]}" >"$work/apiserver.log" 2>&1 &
pids+=($!)

start=$(date +%s)
until [ "$("${kubectl[@]}" get --raw /readyz 2>/dev/null)" = ok ]; do
  if [ $(($(date +%s) - start)) -gt 120 ]; then
    echo "smoke: apiserver not ready after 120s; last log lines:" >&2
    tail -30 "$work/apiserver.log" >&2
    exit 1
  fi
  sleep 1
done
echo "smoke: /readyz = $("${kubectl[@]}" get --raw /readyz) after $(($(date +%s) - start))s"
"${kubectl[@]}" version

# --- kube-controller-manager and kube-scheduler
"$bin/kube-controller-manager" \
  --kubeconfig "$kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$kcm_port" \
  --service-account-private-key-file "$pki/sa.key" \
  --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials \
  --leader-elect=true \
  >"$work/kcm.log" 2>&1 &
pids+=($!)
"$bin/kube-scheduler" \
  --kubeconfig "$kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$scheduler_port" \
  --leader-elect=true \
  >"$work/scheduler.log" 2>&1 &
pids+=($!)

"${kubectl[@]}" create namespace smoke >/dev/null
start=$(date +%s)
until "${kubectl[@]}" -n kube-system get lease kube-controller-manager >/dev/null 2>&1 &&
      "${kubectl[@]}" -n kube-system get lease kube-scheduler >/dev/null 2>&1 &&
      "${kubectl[@]}" -n smoke get serviceaccount default >/dev/null 2>&1; do
  if [ $(($(date +%s) - start)) -gt 120 ]; then
    echo "smoke: controller-manager/scheduler not up after 120s" >&2
    tail -20 "$work/kcm.log" "$work/scheduler.log" >&2
    exit 1
  fi
  sleep 1
done
echo "smoke: controller-manager and scheduler hold their leases; default ServiceAccount created after $(($(date +%s) - start))s"
"${kubectl[@]}" -n kube-system get lease
echo "smoke: helm $("$bin/helm" version --short)"
echo "smoke: OK"
