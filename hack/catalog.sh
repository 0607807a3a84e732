#!/usr/bin/env bash
# Fills a local catalog (default .catalog/) from the Go module cache, for offline renders:
# the vcluster chart, the KubeRay kustomize tree at each pinned version, and the Volcano
# CRDs generated from volcano.sh/apis. Nothing here is committed; it is all fetched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.catalog}
mkdir -p "$out" && out=$(cd "$out" && pwd)
VCLUSTER_VERSIONS=${VCLUSTER_VERSIONS:-0.25.0}
KUBERAY_VERSIONS=${KUBERAY_VERSIONS:-1.5.0 1.4.0}
VOLCANO_VERSION=${VOLCANO_VERSION:-1.12.1}

moddir() { (cd "$root/hack/tools/controller-gen" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'); }

copy() { # copy SRC DST: replace DST with a writable copy of SRC
  rm -rf "$2" && mkdir -p "$(dirname "$2")" && cp -R "$1" "$2" && chmod -R u+w "$2"
}

for v in $VCLUSTER_VERSIONS; do
  copy "$(moddir github.com/loft-sh/vcluster@v$v)/chart" "$out/vcluster/$v"
done
for v in $KUBERAY_VERSIONS; do
  copy "$(moddir github.com/ray-project/kuberay/ray-operator@v$v)/config" "$out/kuberay/$v/config"
done
crds="$out/volcano/$VOLCANO_VERSION/crds"
rm -rf "$crds" && mkdir -p "$crds"
(cd "$root/hack/tools/controller-gen" &&
  go tool controller-gen crd paths=volcano.sh/apis/pkg/apis/scheduling/v1beta1 output:crd:dir="$crds")
test -s "$crds/scheduling.volcano.sh_podgroups.yaml"
echo "catalog ready in $out:"
(cd "$out" && find . -mindepth 2 -maxdepth 2 -type d | sort | sed 's|^\./|  |')
