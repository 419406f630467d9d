#!/usr/bin/env bash
# Builds a trimmed Debian bookworm rootfs with debootstrap, no registry involved.
#   rootfs.sh <mirror-url> <target-dir>
# The mirror is the one this machine's apt already uses (build.sh reads it), so it works
# wherever `apt-get` works. The result is imported by build.sh with `docker import`.
set -euo pipefail
mirror=$1 root=$2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -n 30 "$root.log" >&2
  exit 1
}
rm -f "$root.log"

# Keep docs, man pages and translations out of every later `apt-get install` too (as the
# official -slim images do), so game images built FROM this one stay small.
cat >"$root/etc/dpkg/dpkg.cfg.d/ctrl-alt-play-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
cat >"$root/etc/apt/apt.conf.d/90ctrl-alt-play" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
CFG
printf 'deb %s bookworm main\n' "$mirror" >"$root/etc/apt/sources.list"

rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
# Containers get their own; keep the image reproducible-ish.
: >"$root/etc/machine-id"
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
