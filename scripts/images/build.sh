#!/usr/bin/env bash
# Builds the project's local images with no registry, each cached by a hash of its recipe
# (label ctrl-alt-play.recipe): a re-run with nothing changed costs well under a second.
#   scripts/images/build.sh busybox [more…]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build_one() {
  local name=$1 dir="$here/$1" tag="ctrl-alt-play/$1:latest"
  [ -d "$dir" ] || { echo "no recipe $name" >&2; return 1; }
  local hash; hash=$(cd "$dir" && find . -type f ! -name busybox -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  local have; have=$(docker image inspect -f '{{index .Config.Labels "ctrl-alt-play.recipe"}}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$hash" ]; then echo "[images] $tag up to date ($hash)"; return 0; fi
  echo "[images] building $tag ($hash)"
  local t0=$SECONDS
  if [ -x "$dir/prepare.sh" ]; then "$dir/prepare.sh"; fi
  case $name in
    busybox) cp /bin/busybox "$dir/busybox" ;;
  esac
  docker build -q --label "ctrl-alt-play.recipe=$hash" -t "$tag" "$dir" >/dev/null
  [ "$name" = busybox ] && rm -f "$dir/busybox"
  echo "[images] built $tag in $((SECONDS - t0)) s"
}
for n in "${@:-busybox}"; do build_one "$n"; done
