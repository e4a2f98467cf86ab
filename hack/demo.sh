#!/usr/bin/env bash
# The README's first command (`make demo`): start the local sandbox (real
# kube-apiserver + SAKURA API simulator + this controller), expose a
# Deployment as a LoadBalancer Service and show the address the controller
# assigned and the load balancer appliance it made in the simulated cloud.
#
# Env: DEMO_KEEP=0 stops the sandbox at the end (default: leave it running);
# DEMO_TIMEOUT seconds to wait for the EXTERNAL-IP (default 180);
# SANDBOX_DIR (default .sandbox/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export SANDBOX_DIR=${SANDBOX_DIR:-$root/.sandbox}
timeout=${DEMO_TIMEOUT:-180}

step() { printf '\n==> %s\n' "$*"; }

if [ -z "${SAKURA_TOOLS_BIN:-}" ]; then
  step "Locating the control-plane tools the demo needs (etcd, kube-apiserver, kube-controller-manager, kubectl)"
  SAKURA_TOOLS_BIN=$("$root/hack/build-tools.sh" etcd kube-apiserver kube-controller-manager kubectl)
  export SAKURA_TOOLS_BIN
fi

step "Starting the sandbox (kube-apiserver, etcd, kube-controller-manager, SAKURA API simulator, sakura-cloud-controller-manager)"
"$root/hack/sandbox.sh" up
# shellcheck disable=SC1091
. "$SANDBOX_DIR/env"
k() { "$KUBECTL" "$@"; }

step "Creating deployment 'web' (the sandbox emulates the kubelets: its pod is scheduled and turns ready; the image is never pulled)"
k create deployment web --image=registry.example/web:1 --dry-run=client -o yaml | k apply -f - >/dev/null
if k get service web >/dev/null 2>&1; then
  echo "service 'web' exists already"
else
  step "kubectl expose deployment web --type=LoadBalancer --port=80"
  k expose deployment web --type=LoadBalancer --port=80
fi

step "Waiting for the controller to create a SAKURA load balancer and assign an EXTERNAL-IP (up to ${timeout}s)"
start=$SECONDS
ip=""
while :; do
  ip=$(k get service web -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null || true)
  [ -n "$ip" ] && break
  if [ $((SECONDS - start)) -ge "$timeout" ]; then
    echo
    echo "No EXTERNAL-IP after ${timeout}s. What the controller said about the Service:" >&2
    k get events --field-selector involvedObject.name=web,involvedObject.kind=Service \
      -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message >&2 || true
    echo >&2
    echo "Last lines of the controller log ($CCM_LOG):" >&2
    tail -n 40 "$CCM_LOG" >&2 || true
    echo >&2
    echo "The sandbox is still running for a closer look (. $SANDBOX_DIR/env); stop it with: make sandbox-down" >&2
    exit 1
  fi
  printf '.'
  sleep 2
done
echo
echo "EXTERNAL-IP $ip after $((SECONDS - start))s"

step "kubectl get svc -o wide"
k get svc -o wide
step "The Service's condition (k8s.usacloud.jp/LoadBalancerServing), kept by the controller"
k get service web -o jsonpath='{range .status.conditions[*]}{.type}{"  "}{.status}{"  "}{.reason}{"\n  "}{.message}{"\n"}{end}'
step "kubectl describe svc web (describe prints Events, not conditions: LoadBalancerCreated, then LoadBalancerServing)"
k describe service web
step "kubectl get nodes -o wide (providerID, addresses and zone labels come from the controller)"
k get nodes -o wide
k get nodes -L topology.kubernetes.io/zone,topology.kubernetes.io/region,node.kubernetes.io/instance-type
step "The simulated SAKURA Cloud: load balancer appliances (VIP = EXTERNAL-IP, real servers = the nodes)"
"$SANDBOX_DIR/bin/sandbox" show --dir "$SANDBOX_DIR"

if [ "${DEMO_KEEP:-1}" = "0" ]; then
  step "Stopping the sandbox (DEMO_KEEP=0)"
  "$root/hack/sandbox.sh" down
else
  step "The sandbox keeps running. Try:"
  echo "  . $SANDBOX_DIR/env"
  echo "  \$KUBECTL get svc,nodes"
  echo "  \$KUBECTL expose deployment web --name web2 --type=LoadBalancer --port=8080"
  echo "  $SANDBOX_DIR/bin/sandbox show --dir $SANDBOX_DIR"
  echo "Logs: $SANDBOX_DIR/run/*.log. Stop it with: make sandbox-down"
fi
