#!/bin/sh
# Build promtool from the Go module pinned in this folder's go.mod (Prometheus v0.316.0) for
# the tests: `promtool check metrics` on the operator's and gateway's scrapes, `check rules`
# and `test rules` on the chart's PrometheusRule.
#
#   tools/promtool/build.sh [OUT_DIR]        default: <repo>/.cache/tools/bin
#
# - -tags remove_all_sd leaves out service discovery (cloud SDKs, client-go), which promtool's
#   checks never use and which is most of a full build: cold, about 7 minutes on two loaded
#   cores instead of 10.
# - Idempotent: OUT_DIR/.promtool.inputs records a hash of go.mod, go.sum and this script;
#   when it matches and the binary is there, nothing is done. One build at a time (flock on
#   OUT_DIR/.promtool.lock): make and a pytest fixture may both ask.
# - Go's caches default to .cache/go-mod and .cache/go-build, shared with the other tools.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/.cache/tools/bin}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { echo "promtool: $*" >&2; }

if [ -z "${PROMTOOL_BUILD_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  PROMTOOL_BUILD_LOCKED=1 exec flock "$OUT/.promtool.lock" "$0" "$OUT"
fi

INPUTS=$(cat "$0" "$HERE/go.mod" "$HERE/go.sum" | sha256sum | cut -d' ' -f1)
if [ -x "$OUT/promtool" ] && [ "$(cat "$OUT/.promtool.inputs" 2>/dev/null)" = "$INPUTS" ]; then
  log "up to date in $OUT"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed: install Go >= 1.24 (go.mod asks 1.26.7: Go fetches that toolchain)"
  exit 1
fi
export GOMODCACHE="${GOMODCACHE:-$ROOT/.cache/go-mod}"
export GOCACHE="${GOCACHE:-$ROOT/.cache/go-build}"

log "building into $OUT"
cd "$HERE"
CGO_ENABLED=0 go build -mod=readonly -tags remove_all_sd -trimpath -ldflags "-s -w" \
  -o "$OUT/.promtool.new" github.com/prometheus/prometheus/cmd/promtool
mv -f "$OUT/.promtool.new" "$OUT/promtool"
echo "$INPUTS" > "$OUT/.promtool.inputs"
log "done"
