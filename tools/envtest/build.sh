#!/bin/sh
# Build the binaries the Kubernetes integration tests use (the envtest pattern: etcd and
# kube-apiserver, no kubelet) plus helm, from the Go modules pinned in this folder's go.mod.
#
#   tools/envtest/build.sh [OUT_DIR]        default: <repo>/.cache/envtest/bin
#
# - KUBEBUILDER_ASSETS, when set and holding etcd and kube-apiserver, is used as is: those two
#   are not built (helm still is; kubectl is taken from there or PATH when present).
# - kubectl is built only when there is none on PATH (or in KUBEBUILDER_ASSETS).
# - Idempotent: OUT_DIR/.inputs records a hash of go.mod, go.sum and this script; when it
#   matches and the binaries are there, nothing is done. Go's module and build caches
#   (GOMODCACHE, GOCACHE; default .cache/go-mod and .cache/go-build) make a rebuild after an
#   input change cheap.
# - Needs Go >= 1.24 and a module proxy; a cold build takes several minutes on two cores.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/.cache/envtest/bin}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { echo "envtest: $*" >&2; }

# One build at a time per output folder (make and a pytest fixture may both ask).
if [ -z "${ENVTEST_BUILD_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  ENVTEST_BUILD_LOCKED=1 exec flock "$OUT/.lock" "$0" "$OUT"
fi

has_assets() {
  [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ] \
    && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]
}

have_kubectl() {
  command -v kubectl >/dev/null 2>&1 \
    || { [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kubectl" ]; }
}

# What to build: name=package pairs.
WANT="helm=helm.sh/helm/v3/cmd/helm"
if has_assets; then
  log "using etcd and kube-apiserver from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
else
  WANT="$WANT etcd=go.etcd.io/etcd/server/v3 kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver"
fi
if ! have_kubectl || [ -x "$OUT/kubectl" ]; then
  WANT="$WANT kubectl=k8s.io/kubernetes/cmd/kubectl"
fi

INPUTS=$(cat "$HERE/go.mod" "$HERE/go.sum" "$0" | sha256sum | cut -d' ' -f1)
MISSING=""
for pair in $WANT; do
  [ -x "$OUT/${pair%%=*}" ] || MISSING="$MISSING ${pair%%=*}"
done
if [ -z "$MISSING" ] && [ "$(cat "$OUT/.inputs" 2>/dev/null)" = "$INPUTS" ]; then
  log "up to date in $OUT"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed: install Go >= 1.24, or set KUBEBUILDER_ASSETS to a folder with"
  log "etcd and kube-apiserver (for example from setup-envtest) and put helm on PATH"
  exit 1
fi

# Go's module and build caches live in the repo's git-ignored .cache unless the caller chose
# others: `make clean` removes them, and a CI cache of .cache keeps them.
export GOMODCACHE="${GOMODCACHE:-$ROOT/.cache/go-mod}"
export GOCACHE="${GOCACHE:-$ROOT/.cache/go-build}"

cd "$HERE"
version() { go list -m -f '{{.Version}}' "$1"; }
K8S=$(version k8s.io/kubernetes)
HELM=$(version helm.sh/helm/v3)
CLIENT_GO=$(version k8s.io/client-go)
K8S_DATE=$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
K8S_MAJOR=$(echo "$K8S" | sed 's/^v\([0-9]*\)\..*/\1/')
K8S_MINOR=$(echo "$K8S" | sed 's/^v[0-9]*\.\([0-9]*\)\..*/\1/')
HELM_K8S_MINOR=$(echo "$CLIENT_GO" | sed 's/^v0\.\([0-9]*\)\..*/\1/')

# Version strings as the projects' own release builds set them: the API server reports its
# release (helm's kubeVersion checks and kubectl's skew warning rely on it).
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS="$LDFLAGS -X $pkg.gitVersion=$K8S -X $pkg.gitMajor=$K8S_MAJOR"
  LDFLAGS="$LDFLAGS -X $pkg.gitMinor=$K8S_MINOR -X $pkg.buildDate=$K8S_DATE"
done
LDFLAGS="$LDFLAGS -X helm.sh/helm/v3/internal/version.version=$HELM"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  LDFLAGS="$LDFLAGS -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done

PKGS=""
for pair in $WANT; do PKGS="$PKGS ${pair#*=}"; done
log "building$MISSING (kubernetes $K8S, helm $HELM) into $OUT"
TMP=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# One go build for all: the packages they share are compiled once, in parallel.
# shellcheck disable=SC2086
CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o "$TMP/" $PKGS
for pair in $WANT; do
  name=${pair%%=*}
  pkg=${pair#*=}
  built=$(basename "$(echo "$pkg" | sed 's#/v[0-9]*$##')")  # go build drops a /vN suffix
  mv -f "$TMP/$built" "$OUT/$name"
done
echo "$INPUTS" > "$OUT/.inputs"
log "done: $(cd "$OUT" && ls | tr '\n' ' ')"
