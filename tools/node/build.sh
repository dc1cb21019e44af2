#!/bin/sh
# Build what a real single-node cluster needs beside tools/envtest's etcd and kube-apiserver,
# from the Go modules pinned in this folder (one go.mod per upstream project):
#   k8s/         kube-controller-manager, kube-scheduler, kubelet (the envtest release)
#   containerd/  containerd, containerd-shim-runc-v2, ctr
#   runc/        runc (cgo with libseccomp: Debian's libseccomp-dev, pkg-config)
#   cni/         the bridge, host-local and loopback CNI plugins (into OUT_DIR/cni)
# and the pause binary (kubernetes' build/pause/linux/pause.c, gcc -static) for the pause image.
#
#   tools/node/build.sh [OUT_DIR]           default: <repo>/.cache/node/bin
#
# - Idempotent: OUT_DIR/.inputs records a hash of the go.mod/go.sum files and this script;
#   when it matches and the binaries are there, nothing is done.
# - One build at a time per output folder (make and the pytest fixture may both ask): flock.
# - Go's module and build caches are tools/envtest's (.cache/go-mod, .cache/go-build), so the
#   Kubernetes packages kube-apiserver shares with the node binaries compile once.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/.cache/node/bin}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { echo "node: $*" >&2; }

if [ -z "${NODE_BUILD_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  NODE_BUILD_LOCKED=1 exec flock "$OUT/.lock" "$0" "$OUT"
fi

BINS="kube-controller-manager kube-scheduler kubelet containerd containerd-shim-runc-v2 ctr runc
  cni/bridge cni/host-local cni/loopback pause"
INPUTS=$(cat "$0" "$HERE"/*/go.mod "$HERE"/*/go.sum | sha256sum | cut -d' ' -f1)
MISSING=""
for b in $BINS; do [ -x "$OUT/$b" ] || MISSING="$MISSING $b"; done
if [ -z "$MISSING" ] && [ "$(cat "$OUT/.inputs" 2>/dev/null)" = "$INPUTS" ]; then
  log "up to date in $OUT"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed: install Go >= 1.24"
  exit 1
fi
if ! pkg-config --exists libseccomp 2>/dev/null; then
  log "runc needs libseccomp-dev and pkg-config (make system-deps installs them)"
  exit 1
fi

export GOMODCACHE="${GOMODCACHE:-$ROOT/.cache/go-mod}"
export GOCACHE="${GOCACHE:-$ROOT/.cache/go-build}"
export GOFLAGS="-mod=readonly -buildvcs=false"
version() { go list -m -f '{{.Version}}' "$1"; }

TMP=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/cni"
log "building$MISSING into $OUT"

# Kubernetes: the version strings its release builds set (the kubelet reports it on the Node).
cd "$HERE/k8s"
K8S=$(version k8s.io/kubernetes)
K8S_DATE=$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
K8S_MAJOR=$(echo "$K8S" | sed 's/^v\([0-9]*\)\..*/\1/')
K8S_MINOR=$(echo "$K8S" | sed 's/^v[0-9]*\.\([0-9]*\)\..*/\1/')
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS="$LDFLAGS -X $pkg.gitVersion=$K8S -X $pkg.gitMajor=$K8S_MAJOR"
  LDFLAGS="$LDFLAGS -X $pkg.gitMinor=$K8S_MINOR -X $pkg.buildDate=$K8S_DATE"
done
CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o "$TMP/" \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubelet
PAUSE_C="$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
gcc -Os -Wall -Werror -static -DVERSION="$K8S-ferry" -o "$TMP/pause" "$PAUSE_C"

# containerd without the snapshotters this node does not use (overlayfs is the one).
cd "$HERE/containerd"
CV=$(version github.com/containerd/containerd)
CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_zfs no_devmapper no_aufs" \
  -ldflags "-s -w -X github.com/containerd/containerd/version.Version=$CV" -o "$TMP/" \
  github.com/containerd/containerd/cmd/containerd \
  github.com/containerd/containerd/cmd/containerd-shim-runc-v2 \
  github.com/containerd/containerd/cmd/ctr

# runc with seccomp: the chart's pods ask for the RuntimeDefault profile.
cd "$HERE/runc"
RV=$(version github.com/opencontainers/runc)
CGO_ENABLED=1 go build -trimpath -tags "seccomp urfave_cli_no_docs" \
  -ldflags "-s -w -X main.version=${RV#v}" -o "$TMP/runc" github.com/opencontainers/runc

cd "$HERE/cni"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$TMP/cni/" \
  github.com/containernetworking/plugins/plugins/main/bridge \
  github.com/containernetworking/plugins/plugins/main/loopback \
  github.com/containernetworking/plugins/plugins/ipam/host-local

mkdir -p "$OUT/cni"
for b in $BINS; do mv -f "$TMP/$b" "$OUT/$b"; done
echo "$INPUTS" > "$OUT/.inputs"
log "done: $BINS"
