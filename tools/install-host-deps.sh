#!/bin/sh
# Install the host packages nvdimm-harness needs, if missing (Debian/Ubuntu, apt).
# Idempotent and quiet when everything is there; used by `make setup` and .ci/run.
# With arguments, installs those packages instead (tools/fetch-linux-source.sh).
set -eu
# kmod (depmod), gcc and libc6-dev (a static /init), zstd (6.12 bzImages): --kernel-package's modules and initramfs.
PKGS="${*:-qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client python3-venv kmod gcc libc6-dev debian-archive-keyring zstd}"
missing=""
for p in $PKGS; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "nvdimm-harness: installing host packages:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "nvdimm-harness: need root (or sudo) to install:$missing" >&2; exit 3; }
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
