#!/usr/bin/env bash
# `make release`: everything an operator needs for the version in VERSION,
# written to dist/<version>/ (RELEASE_DIR overrides):
#   sakura-cloud-controller-manager-<version>.oci.tar  the image (OCI layout tarball)
#   sakura-cloud-controller-manager-<chart version>.tgz the packaged helm chart
#   sakura-cloud-controller-manager-<version>.yaml     the chart rendered with defaults, for kubectl apply
#   SHA256SUMS                                          sha256sum -c checks them
# It refuses to run when Chart.yaml or CHANGELOG.md do not match VERSION.
# CCM_BINARY is the controller to pack (default bin/, built by `make release`),
# HELM the helm binary (default: the pinned one, built once if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(tr -d '[:space:]' < "$root/VERSION")
chart="$root/charts/sakura-cloud-controller-manager"
out=${RELEASE_DIR:-$root/dist/$version}
binary=${CCM_BINARY:-$root/bin/sakura-cloud-controller-manager}
helm=${HELM:-$("$root/hack/build-tools.sh" helm)/helm}
name=sakura-cloud-controller-manager
fail() { echo "release: $*" >&2; exit 1; }

[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || fail "VERSION ($version) is not vX.Y.Z"
app=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$chart/Chart.yaml")
[ "$app" = "$version" ] || fail "Chart.yaml appVersion is $app, VERSION is $version"
chart_version=$(sed -n 's/^version: *\(.*\) *$/\1/p' "$chart/Chart.yaml")
[ "v$chart_version" = "$version" ] || fail "Chart.yaml version is $chart_version, VERSION is $version"
grep -q "^## \[$version\]" "$root/CHANGELOG.md" || fail "CHANGELOG.md has no '## [$version]' entry"
[ -x "$binary" ] || fail "no controller binary at $binary (make build)"

rm -rf "$out"
mkdir -p "$out"
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
export HELM_CACHE_HOME=$home HELM_CONFIG_HOME=$home HELM_DATA_HOME=$home

(cd "$root/e2e/tools/ocibuild" && go run . --binary "$binary" --version "$version" --output "$out/$name-$version.oci.tar")
"$helm" lint --strict "$chart" --set existingSecret=sakura-cloud-api >/dev/null
"$helm" package "$chart" --destination "$out" >/dev/null
{
  cat <<HEADER
# sakura-cloud-controller-manager $version for kube-system, rendered from its
# helm chart with the default values (docs/install.md, "Without helm").
# Before applying: create the Secret with the API key,
#   kubectl -n kube-system create secret generic sakura-cloud-api \\
#     --from-literal=access-token=... --from-literal=access-token-secret=...
# and edit the ConfigMap below (zone, clusterID, loadBalancer.routerID) and
# the image if you pushed it elsewhere.
HEADER
  "$helm" template sakura-ccm "$chart" --namespace kube-system --set existingSecret=sakura-cloud-api
} > "$out/$name-$version.yaml"
(cd "$out" && sha256sum -- "$name-$version.oci.tar" "$name-$chart_version.tgz" "$name-$version.yaml" > SHA256SUMS)
echo "release $version in $out:"
(cd "$out" && ls -l)
