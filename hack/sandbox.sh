#!/usr/bin/env bash
# Local sandbox: a real kube-apiserver + etcd + kube-controller-manager, the
# SAKURA API simulator, Nodes for its servers and one controller replica, all
# on 127.0.0.1 and in the background. See docs/development.md.
#
#   hack/sandbox.sh up      start (no-op if already running)
#   hack/sandbox.sh down    stop every process and remove $SANDBOX_DIR
#   hack/sandbox.sh status  say whether it runs, and where
#
# SANDBOX_TOPOLOGY names another simulator topology; SANDBOX_SERVICE_CONTROLLER=own
# has the controller's own Service loop serve Services without a class.
# State lives in $SANDBOX_DIR (default .sandbox/): kubeconfig, env (source it),
# pid, sandbox.log and run/*.log (one log per process).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SANDBOX_DIR=${SANDBOX_DIR:-$root/.sandbox}
mkdir -p "$(dirname "$SANDBOX_DIR")"
SANDBOX_DIR=$(cd "$(dirname "$SANDBOX_DIR")" && pwd)/$(basename "$SANDBOX_DIR")
pidfile=$SANDBOX_DIR/pid

say() { echo "sandbox: $*" >&2; }

running_pid() { # prints the pid if the sandbox process is alive
  [ -f "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: it must be our sandbox binary.
  grep -q sandbox "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

up() {
  if pid=$(running_pid); then
    if [ -f "$SANDBOX_DIR/ready" ]; then
      say "already running (pid $pid); use: . $SANDBOX_DIR/env"
      return 0
    fi
    say "starting already (pid $pid); waiting"
  else
    rm -rf "$SANDBOX_DIR"
    mkdir -p "$SANDBOX_DIR/bin"
    chmod 700 "$SANDBOX_DIR"
    say "building the sandbox runner and the simulator"
    (cd "$root/e2e" && go build -o "$SANDBOX_DIR/bin/sandbox" ./cmd/sandbox && go build -o "$SANDBOX_DIR/bin/sakurasim" ./cmd/sakurasim)
    if [ -z "${SAKURA_TOOLS_BIN:-}" ]; then
      say "locating control-plane tools (the first run on a machine builds them: several minutes)"
      SAKURA_TOOLS_BIN=$("$root/hack/build-tools.sh")
    fi
    if [ -z "${CCM_BINARY:-}" ]; then
      CCM_BINARY=$root/bin/sakura-cloud-controller-manager
      if [ ! -x "$CCM_BINARY" ]; then
        say "building the controller (make build)"
        (cd "$root" && make -s build)
      fi
    fi
    say "starting etcd, kube-apiserver, kube-controller-manager, the simulator and the controller"
    # exec all the way down (subshell -> setsid -> runner) and redirect every
    # descriptor, so no shell lingers holding our caller's stdout open.
    (cd "$root" && SAKURA_TOOLS_BIN=$SAKURA_TOOLS_BIN CCM_BINARY=$CCM_BINARY SAKURASIM_BINARY=$SANDBOX_DIR/bin/sakurasim \
      exec setsid "$SANDBOX_DIR/bin/sandbox" up --dir "$SANDBOX_DIR" ${SANDBOX_TOPOLOGY:+--topology "$SANDBOX_TOPOLOGY"} \
      ${SANDBOX_SERVICE_CONTROLLER:+--service-controller "$SANDBOX_SERVICE_CONTROLLER"}) \
      >"$SANDBOX_DIR/sandbox.log" 2>&1 </dev/null &
  fi
  local deadline=$((SECONDS + ${SANDBOX_START_TIMEOUT:-300}))
  while [ ! -f "$SANDBOX_DIR/ready" ]; do
    if [ -f "$pidfile" ] && ! running_pid >/dev/null; then
      say "failed to start; last lines of $SANDBOX_DIR/sandbox.log:"
      tail -n 30 "$SANDBOX_DIR/sandbox.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "not ready after ${SANDBOX_START_TIMEOUT:-300}s; see $SANDBOX_DIR/sandbox.log and $SANDBOX_DIR/run/*.log"
      return 1
    fi
    sleep 0.5
  done
  say "running (pid $(cat "$pidfile")). Use it with:"
  say "  . $SANDBOX_DIR/env && \$KUBECTL get nodes"
  say "logs: $SANDBOX_DIR/run/*.log; stop with: make sandbox-down"
}

down() {
  if pid=$(running_pid); then
    say "stopping (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "still running after 30s; killing its process group"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  else
    say "not running"
  fi
  if [ -d "$SANDBOX_DIR" ]; then
    rm -rf "$SANDBOX_DIR"
    say "removed $SANDBOX_DIR"
  fi
}

status() {
  if pid=$(running_pid) && [ -f "$SANDBOX_DIR/ready" ]; then
    say "running (pid $pid); . $SANDBOX_DIR/env"
  elif pid=$(running_pid); then
    say "starting (pid $pid)"
  else
    say "not running"; return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
