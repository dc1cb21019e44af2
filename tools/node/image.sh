#!/bin/sh
# The images the real-node tests run, without a registry or Docker: OCI archives that
# `ctr images import` reads, packed with umoci (Debian package).
#   pause.oci.tar   registry.local/pause:3.10   the pause binary tools/node/build.sh compiles
#   ferry.oci.tar   registry.local/ferry:<hash> what the Dockerfile makes: Debian bookworm
#                   (debootstrap minbase + python3, python3-venv), ferry[operator,postgres]
#                   installed from this checkout into /opt/ferry, user 10001, entrypoint ferry
#
#   tools/node/image.sh [OUT_DIR]           default: <repo>/.cache/node/images
#
# - Cached by content: the ferry image's tag is a hash of this script and of the source files
#   that go in (pyproject.toml, README.md, operator/, agent/); OUT_DIR/ferry.tag names it and
#   nothing is rebuilt while it matches. The debootstrap rootfs is kept in OUT_DIR/base.
# - Wheels are made on the host from a copy of the sources (its pip is set up for this
#   network); host and image are both CPython 3.11 on bookworm.
# - Needs root (debootstrap, chroot), debootstrap and umoci (make system-deps).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/.cache/node/images}
BIN=${NODE_BIN:-$ROOT/.cache/node/bin}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { echo "node image: $*" >&2; }

if [ -z "${NODE_IMAGE_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  NODE_IMAGE_LOCKED=1 exec flock "$OUT/.lock" "$0" "$OUT"
fi
for tool in umoci debootstrap chroot; do
  command -v $tool >/dev/null 2>&1 || { log "$tool is missing (make system-deps)"; exit 1; }
done
[ -x "$BIN/pause" ] || { log "no $BIN/pause: run tools/node/build.sh first"; exit 1; }

# mkimage NAME TAG ROOTFS CONFIG...: ROOTFS as one layer of a new image in OUT/NAME.oci.tar.
mkimage() {
  name=$1 tag=$2 rootfs=$3; shift 3
  layout="$OUT/.oci-$name"
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci insert --image "$layout:$tag" "$rootfs" /
  umoci config --image "$layout:$tag" "$@"
  umoci gc --layout "$layout"
  (cd "$layout" && tar -cf "$OUT/.$name.oci.tar" .)
  mv -f "$OUT/.$name.oci.tar" "$OUT/$name.oci.tar"
  rm -rf "$layout"
}

PAUSE_HASH=$(cat "$0" "$BIN/pause" | sha256sum | cut -c1-16)
if [ "$(cat "$OUT/.pause.inputs" 2>/dev/null)" != "$PAUSE_HASH" ] || [ ! -f "$OUT/pause.oci.tar" ]; then
  log "packing the pause image"
  rm -rf "$OUT/.pause-rootfs" && mkdir -p "$OUT/.pause-rootfs"
  install -m 755 "$BIN/pause" "$OUT/.pause-rootfs/pause"
  mkimage pause 3.10 "$OUT/.pause-rootfs" --config.entrypoint /pause --config.user 65535:65535
  rm -rf "$OUT/.pause-rootfs"
  echo "$PAUSE_HASH" > "$OUT/.pause.inputs"
fi

# What goes into the ferry image, as a reproducible tar: its hash is the image's tag.
SRC_TAR="$OUT/.src.tar"
(cd "$ROOT" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  --exclude='*.egg-info' --exclude='__pycache__' --exclude='*.pyc' \
  -cf "$SRC_TAR" pyproject.toml README.md operator agent)
TAG=$(cat "$0" "$SRC_TAR" | sha256sum | cut -c1-16)
if [ "$(cat "$OUT/ferry.tag" 2>/dev/null)" = "registry.local/ferry:$TAG" ] && [ -f "$OUT/ferry.oci.tar" ]; then
  rm -f "$SRC_TAR"
  log "up to date: registry.local/ferry:$TAG"
  exit 0
fi

BASE="$OUT/base"
if [ ! -x "$BASE/usr/bin/python3" ] || [ ! -f "$BASE/.complete" ]; then
  log "debootstrap bookworm into $BASE"
  rm -rf "$BASE"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$BASE" \
    http://deb.debian.org/debian >"$OUT/debootstrap.log" 2>&1 \
    || { log "debootstrap failed; see $OUT/debootstrap.log"; exit 1; }
  rm -rf "$BASE"/var/cache/apt/archives/*.deb "$BASE"/var/lib/apt/lists/*
  touch "$BASE/.complete"
fi

log "building registry.local/ferry:$TAG"
WORK="$OUT/.work"
rm -rf "$WORK" && mkdir -p "$WORK/src" "$WORK/wheels"
tar -xf "$SRC_TAR" -C "$WORK/src"
PIP_FIND_LINKS= python3 -m pip wheel -q --disable-pip-version-check --wheel-dir "$WORK/wheels" \
  "$WORK/src[operator,postgres]"
R="$WORK/rootfs"
cp -a "$BASE" "$R"
rm -f "$R/.complete"
chroot "$R" useradd --uid 10001 --create-home --shell /usr/sbin/nologin ferry
chroot "$R" python3 -m venv /opt/ferry
cp -r "$WORK/wheels" "$R/wheels"
PIP_FIND_LINKS= PIP_CERT= chroot "$R" /opt/ferry/bin/pip install -q --disable-pip-version-check \
  --no-cache-dir --no-index --find-links /wheels 'ferry[operator,postgres]'
rm -rf "$R/wheels"
mkimage ferry "$TAG" "$R" --config.user 10001 --config.entrypoint /opt/ferry/bin/ferry \
  --config.env PATH=/opt/ferry/bin:/usr/local/bin:/usr/bin:/bin --config.workingdir /home/ferry
rm -rf "$WORK" "$SRC_TAR"
echo "registry.local/ferry:$TAG" > "$OUT/ferry.tag"
log "done: registry.local/ferry:$TAG"
