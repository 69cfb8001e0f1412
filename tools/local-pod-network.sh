#!/usr/bin/env bash
# Makes the local node agent's pod IP range (default 10.244.0.0/16) local on this machine:
# one `local` route on `lo`, after which every address in the range can be bound and
# reached like 127.0.0.0/8. Pods then get addresses the API server accepts in
# EndpointSlices (it refuses loopback ones). Idempotent; needs root (uses sudo otherwise);
# lost on reboot. Undo: `sudo ip route del local <range> dev lo table local`.
#
# Usage: tools/local-pod-network.sh [range]
set -euo pipefail

range=${1:-10.244.0.0/16}
if ip route show table local | grep -q "^local ${range} dev lo"; then
  echo "pod network: ${range} is already local"
  exit 0
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  sudo=(sudo)
fi
"${sudo[@]}" ip route replace local "${range}" dev lo table local
echo "pod network: ${range} is now local (route on lo)"
