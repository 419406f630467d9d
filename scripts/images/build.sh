#!/usr/bin/env bash
# Builds the project's local images with no registry, each cached by a hash of its recipe
# (label ctrl-alt-play.recipe): a re-run with nothing changed costs well under a second.
#   scripts/images/build.sh [--check] [busybox|debian|openttd|openarena|teeworlds|games|all]…
# --check builds nothing: it lists what would be built and fails if anything would.
# An image FROM ctrl-alt-play/<parent> has the parent's hash in its own, so a changed Debian
# recipe rebuilds every game image; a parent is only (re)built when a child needs building.
# See README.md next to this file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
label=ctrl-alt-play.recipe

# Several test runs may share one engine: one build at a time.
exec 9>"${TMPDIR:-/tmp}/ctrl-alt-play-images.lock"
flock 9

now() { date +%s%N; }
since() {
  local ms=$((($(now) - $1) / 1000000))
  printf '%d.%03d s' $((ms / 1000)) $((ms % 1000))
}

# The Debian mirror this machine's apt already uses (deb822 .sources or one-line lists).
apt_mirror() {
  local uri
  # deb822: one stanza per paragraph, fields in any order.
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk 'BEGIN { RS = "" } {
      n = split($0, line, "\n"); u = ""; ok = 0
      for (i = 1; i <= n; i++) {
        split(line[i], f, /[ \t]+/)
        if (f[1] == "URIs:") u = f[2]
        if (f[1] == "Suites:") for (j = 2; j in f; j++) if (f[j] == "bookworm") ok = 1
      }
      if (ok && u != "") { print u; exit }
    }')
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1 == "deb" { for (i = 2; i < NF; i++) if ($i ~ /:\/\// && $(i + 1) == "bookworm") { print $i; exit } }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

declare -A hash_of=() parent_of=() built=()
mirror=""
work="" # debootstrap's scratch dir, removed even when the build fails
trap '[ -z "$work" ] || rm -rf "$work"' EXIT

# Sets hash_of[name] (and parent_of[name]) from the recipe's files, the shared files it
# uses, and its inputs from outside: the apt mirror for debian, the parent's hash for games.
compute_hash() {
  local name=$1 dir="$here/$1" extra=""
  [ -z "${hash_of[$name]:-}" ] || return 0
  [ -d "$dir" ] || {
    echo "[images] no recipe '$name' (have: $(cd "$here" && ls -d */ | tr -d / | grep -v common | tr '\n' ' '))" >&2
    return 1
  }
  parent_of[$name]=""
  case $name in
    busybox) ;;
    debian)
      mirror=$(apt_mirror)
      extra="mirror=$mirror"
      ;;
    *)
      parent_of[$name]=$(sed -n 's|^FROM ctrl-alt-play/\([a-z0-9-]*\).*|\1|p' "$dir/Dockerfile" | head -n1)
      if [ -n "${parent_of[$name]}" ]; then
        compute_hash "${parent_of[$name]}"
        extra="parent=${hash_of[${parent_of[$name]}]}"
      fi
      ;;
  esac
  hash_of[$name]=$({
    case $name in
      busybox) (cd "$dir" && find . -type f ! -name busybox -print0 | sort -z | xargs -0 sha256sum) ;;
      debian) (cd "$here" && find debian -type f -print0 | sort -z | xargs -0 sha256sum) ;;
      *) (cd "$here" && find common "$name" -type f -print0 | sort -z | xargs -0 sha256sum) ;;
    esac
    [ -z "$extra" ] || printf '%s\n' "$extra"
  } | sha256sum | cut -c1-16)
}

# Runs a command, showing its output only if it fails (the legacy builder's deprecation
# notice would otherwise clutter every build).
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    return 1
  fi
}

image_field() { docker image inspect -f "$2" "$1" 2>/dev/null || true; }

ensure() {
  local name=$1 tag="ctrl-alt-play/$1:latest" dir="$here/$1"
  [ -z "${built[$name]:-}" ] || return 0
  compute_hash "$name"
  local hash=${hash_of[$name]}
  if [ "$(image_field "$tag" "{{index .Config.Labels \"$label\"}}")" = "$hash" ]; then
    echo "[images] $tag up to date ($hash)"
    built[$name]=1
    return 0
  fi
  [ -z "${parent_of[$name]}" ] || ensure "${parent_of[$name]}"
  if [ "$check" = 1 ]; then
    echo "[images] $tag needs building ($hash)"
    built[$name]=1
    stale=1
    return 0
  fi
  echo "[images] building $tag ($hash)"
  local t0 old
  t0=$(now)
  old=$(image_field "$tag" '{{.Id}}')
  case $name in
    busybox)
      cp /bin/busybox "$dir/busybox"
      quiet docker build -q --label "$label=$hash" -t "$tag" "$dir" || {
        rm -f "$dir/busybox"
        return 1
      }
      rm -f "$dir/busybox"
      ;;
    debian)
      command -v debootstrap >/dev/null || {
        echo "[images] debian needs debootstrap (apt-get install debootstrap)" >&2
        return 1
      }
      work=$(mktemp -d "${TMPDIR:-/var/tmp}/cap-debian.XXXXXX")
      "$dir/rootfs.sh" "$mirror" "$work/root"
      tar --numeric-owner -C "$work/root" -c . |
        docker import \
          -c "LABEL $label=$hash" \
          -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
          -c 'CMD ["/bin/bash"]' \
          - "$tag" >/dev/null
      rm -rf "$work"
      work=""
      ;;
    *)
      # Context = this recipe and the shared files, nothing else.
      tar -C "$here" -c common "$name" |
        quiet docker build -q --label "$label=$hash" -f "$name/Dockerfile" -t "$tag" -
      ;;
  esac
  built[$name]=1
  # Drop the superseded image unless a container still uses it (shared layers stay).
  if [ -n "$old" ] && [ "$old" != "$(image_field "$tag" '{{.Id}}')" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
  echo "[images] built $tag in $(since "$t0") ($(image_field "$tag" '{{.Size}}' | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

check=0 stale=0
if [ "${1:-}" = --check ]; then
  check=1
  shift
fi
names=()
for n in "${@:-busybox}"; do
  case $n in
    games) names+=(openttd openarena teeworlds) ;;
    all) names+=(busybox debian openttd openarena teeworlds) ;;
    *) names+=("$n") ;;
  esac
done
t_all=$(now)
for n in "${names[@]}"; do ensure "$n"; done
echo "[images] done in $(since "$t_all")"
[ "$stale" = 0 ]
