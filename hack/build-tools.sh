#!/usr/bin/env bash
# Builds the pinned control-plane tools (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, helm) from the Go module
# proxy into a cache outside the checkout (~/.cache/sakura-ccm/tools/<versions>/, or
# $SAKURA_TOOLS_DIR), so fresh clones on one machine share it. A binary that is
# already there is not rebuilt: only the first run pays the ~6 minute cold
# build. Prints the directory holding the binaries. With names as arguments
# (e.g. `hack/build-tools.sh helm`, as `make release` does) only those are built.
set -euo pipefail
only=" $* "
root=$(cd "$(dirname "$0")/.." && pwd)
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.22.0
# Bump when a build flag below changes, so no machine reuses a stale binary.
RECIPE=2
out="${SAKURA_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sakura-ccm/tools}/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION-r$RECIPE"
mkdir -p "$out"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"
all="etcd kube-apiserver kube-controller-manager kubectl helm kube-scheduler"
wanted() { [ "$only" = "  " ] || [[ "$only" == *" $1 "* ]]; }
# How many are left to build, so each line can say how far it is.
todo=0
for name in $all; do
  if wanted "$name" && [ ! -x "$out/$name" ]; then todo=$((todo + 1)); fi
done
n=0
build() { # name module-dir package ldflags
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  if [ -x "$out/$name" ] || ! wanted "$name"; then return 0; fi
  n=$((n + 1))
  echo ">> [$n/$todo] building $name from the Go module proxy (first time on this machine, a few minutes; cached afterwards in $out)" >&2
  # The module downloads are many and say nothing useful; errors still show.
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg") 2> >(grep -v '^go: downloading ' >&2)
  mv "$out/$name.tmp" "$out/$name"
  echo ">> [$n/$todo] $name built" >&2
}
build etcd "$root/e2e/tools/etcd" . "-s -w"
build kube-apiserver "$root/e2e/tools" k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kube-controller-manager "$root/e2e/tools" k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kubectl "$root/e2e/tools" k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
# helm renders charts for the Kubernetes version it was built against; without
# these it claims v1.20 and refuses charts that need a newer cluster.
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/chartutil pkg/lint/rules; do
  helm_ldflags="$helm_ldflags -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=37"
done
build helm "$root/e2e/tools" helm.sh/helm/v3/cmd/helm "$helm_ldflags"
# kube-scheduler: only the chart's scheduling test (e2e/chart) runs it. It is
# built last with its siblings' recipe, so a cache made before it was added
# gains it without a RECIPE bump or rebuilding the others (about 2 minutes
# once kube-controller-manager's packages are in the Go build cache).
build kube-scheduler "$root/e2e/tools" k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
echo "$out"
