#!/bin/sh
# Build one of the small Go programs under tools/ that the tests run (kstatus, argocd-health)
# from the Go modules pinned in its folder's go.mod and go.sum.
#
#   tools/build-go-tool.sh NAME [OUT_DIR]       default: <repo>/.cache/tools/bin
#
# - Idempotent: OUT_DIR/.NAME.inputs records a hash of the tool's sources, go.mod, go.sum and
#   this script; when it matches and the binary is there, nothing is done.
# - One build at a time per tool (make and a pytest fixture may both ask): flock on
#   OUT_DIR/.NAME.lock; a second caller waits and then finds it up to date.
# - Go's module and build caches default to .cache/go-mod and .cache/go-build, shared with
#   tools/envtest/build.sh. Needs Go >= 1.24 and a module proxy.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
NAME=${1:?usage: tools/build-go-tool.sh NAME [OUT_DIR]}
SRC="$HERE/$NAME"
[ -f "$SRC/go.mod" ] || { echo "$NAME: no tools/$NAME/go.mod" >&2; exit 2; }
OUT=${2:-$ROOT/.cache/tools/bin}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { echo "$NAME: $*" >&2; }

if [ -z "${GO_TOOL_BUILD_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  GO_TOOL_BUILD_LOCKED=1 exec flock "$OUT/.$NAME.lock" "$0" "$NAME" "$OUT"
fi

INPUTS=$(cat "$0" "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go | sha256sum | cut -d' ' -f1)
if [ -x "$OUT/$NAME" ] && [ "$(cat "$OUT/.$NAME.inputs" 2>/dev/null)" = "$INPUTS" ]; then
  log "up to date in $OUT"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed: install Go >= 1.24"
  exit 1
fi
export GOMODCACHE="${GOMODCACHE:-$ROOT/.cache/go-mod}"
export GOCACHE="${GOCACHE:-$ROOT/.cache/go-build}"

log "building into $OUT"
cd "$SRC"
CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$OUT/.$NAME.new" .
mv -f "$OUT/.$NAME.new" "$OUT/$NAME"
echo "$INPUTS" > "$OUT/.$NAME.inputs"
log "done"
