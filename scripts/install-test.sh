#!/usr/bin/env bash
# Install test of the Debian package on clean Debian 12 (bookworm, PVE 8's base) and 13 (trixie, PVE 9's base).
#
#   scripts/install-test.sh [DEB]       # default: the newest target/debian/pvetoken_*.deb (scripts/build-deb.sh)
#
# For each release: mmdebstrap builds a minimal root filesystem from Debian's packages (variant `apt`, plus
# systemd and man-db, which every PVE host and guest has), `apt-get install ./pvetoken_*.deb` inside it (apt
# resolves the dependencies, nothing else is added), then runs there: `pvetoken demo` (the lab on loopback),
# `pvetoken --version`, `man -w pvetoken` and `man -w pvetoken-rotate`, a bash completion smoke check, and
# `systemd-analyze verify` of the rotate service and timer. Then `apt-get remove` (only the conffile
# /etc/pvetoken/rotate.env may stay) and `apt-get purge` (nothing may stay). Root filesystems are cached as
# tarballs under $PVETOKEN_ROOTFS_CACHE (default ~/.cache/pvetoken-rootfs) for a day.
#
# Needs root (chroot) and mmdebstrap (apt-get install mmdebstrap). Prints the time of each release.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-$(ls -t target/debian/pvetoken_*.deb 2>/dev/null | head -1)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "install-test: no .deb; run scripts/build-deb.sh first" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "install-test: needs root (chroot)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "install-test: apt-get install mmdebstrap" >&2; exit 2; }
cache=${PVETOKEN_ROOTFS_CACHE:-$HOME/.cache/pvetoken-rootfs}
mkdir -p "$cache"
log() { printf 'install-test: %s\n' "$*" >&2; }

run_in() { # root, command...
  local root=$1; shift
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

for suite in bookworm trixie; do
  start=$(date +%s.%N)
  tarball=$cache/$suite.tar
  if [ ! -f "$tarball" ] || [ -n "$(find "$tarball" -mmin +1440)" ]; then
    log "$suite: building the root filesystem"
    mmdebstrap --quiet --variant=apt --include=systemd,man-db,ca-certificates "$suite" "$tarball" \
      http://deb.debian.org/debian
  fi
  root=$(mktemp -d /tmp/pvetoken-install-$suite.XXXXXX)
  trap 'umount -R "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
  tar -C "$root" -xf "$tarball"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  cp "$deb" "$root/tmp/"
  name=$(basename "$deb")
  log "$suite: apt-get install ./$name"
  run_in "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/$name >/dev/null"
  run_in "$root" pvetoken --version | head -1
  run_in "$root" pvetoken demo --output json | tail -1 | grep -q '"ok":true' || { log "$suite: demo failed"; exit 1; }
  log "$suite: demo ok"
  run_in "$root" man -w pvetoken >/dev/null
  run_in "$root" man -w pvetoken-rotate >/dev/null
  log "$suite: man pages found"
  grep -q -- '--if-expiring-within' "$root/usr/share/bash-completion/completions/pvetoken"
  run_in "$root" bash -c 'source /usr/share/bash-completion/completions/pvetoken && complete -p pvetoken' >/dev/null
  log "$suite: bash completion loads"
  units=(/usr/lib/systemd/system/pvetoken-rotate@.timer /usr/lib/systemd/system/pvetoken-apply.service
         /usr/lib/systemd/system/pvetoken-apply.timer
         "/usr/lib/systemd/system/pvetoken-rotate@root-.proxmox\\x2dapi\\x2dtoken.service")
  verify=$(run_in "$root" systemd-analyze verify --man=no "${units[@]}" 2>&1) \
    || { printf '%s\n' "$verify" >&2; log "$suite: systemd-analyze verify failed"; exit 1; }
  [ -z "$verify" ] || { printf '%s\n' "$verify" >&2; log "$suite: systemd-analyze verify warned"; exit 1; }
  log "$suite: systemd-analyze verify clean"
  # What the timers meet: a broken declaration fails clearly (exit 2, file named); a missing token file is
  # "nothing to rotate" (exit 0).
  printf '[clusters.x]\ncolour = "red"\n' > "$root/etc/pvetoken/pvetoken.toml"
  set +e
  broken=$(run_in "$root" pvetoken apply -f /etc/pvetoken/pvetoken.toml --auto-approve 2>&1); code=$?
  set -e
  [ "$code" = 2 ] && printf '%s' "$broken" | grep -q 'pvetoken.toml' \
    || { log "$suite: a broken pvetoken.toml gave exit $code: $broken"; exit 1; }
  rm -f "$root/etc/pvetoken/pvetoken.toml"
  run_in "$root" pvetoken rotate --token-file /root/.proxmox-api-token --if-exists --if-expiring-within 14d \
    | grep -q 'nothing to rotate'
  log "$suite: broken declaration exits 2, missing token file exits 0"
  run_in "$root" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq pvetoken >/dev/null'
  left=$(run_in "$root" sh -c 'dpkg -L pvetoken 2>/dev/null | while read -r f; do [ -f "$f" ] && echo "$f"; done' || true)
  [ "$left" = "/etc/pvetoken/rotate.env" ] || { log "$suite: after remove, expected only the conffile, found: $left"; exit 1; }
  run_in "$root" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq pvetoken >/dev/null'
  [ ! -e "$root/etc/pvetoken/rotate.env" ] && [ ! -e "$root/usr/bin/pvetoken" ] || { log "$suite: purge left files"; exit 1; }
  log "$suite: remove kept only the conffile; purge removed everything"
  umount -R "$root/proc"
  rm -rf "$root"
  trap - EXIT
  log "$suite: passed in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
done
