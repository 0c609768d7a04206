#!/bin/sh
# Unpack Debian's linux-source-6.1 (a real kernel tree) for the kernel-build end-to-end tests.
# Prints the tree's path. Installs the package (and the kernel build dependencies) if missing.
# `fetch-linux-source.sh 6.12`: trixie's linux-source-6.12, through the harness's private apt.
set -eu
CACHE="${NVH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nvdimm-harness}"
if [ "${1:-6.1}" != 6.1 ]; then
	"$(dirname "$0")/install-host-deps.sh" bc bison flex libelf-dev libssl-dev cpio kmod \
		xz-utils gcc make patch git >&2
	cd "$(dirname "$0")/.."
	PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
	exec "$PY" -c 'import sys
from harness.errors import HarnessError
from harness.kernel_package import fetch_linux_source
try:
    print(fetch_linux_source(sys.argv[1]))
except HarnessError as e:
    sys.exit(f"fetch-linux-source.sh: {e}")' "$1"
fi
TREE="$CACHE/linux-source-6.1"
if [ ! -f "$TREE/Makefile" ]; then
	# stdout carries only the tree's path: the installer's chatter goes to stderr.
	"$(dirname "$0")/install-host-deps.sh" linux-source-6.1 bc bison flex libelf-dev \
		libssl-dev cpio kmod xz-utils gcc make patch git >&2
	mkdir -p "$CACHE"
	rm -rf "$TREE.tmp" && mkdir "$TREE.tmp"
	tar -C "$TREE.tmp" -xf /usr/src/linux-source-6.1.tar.xz
	mv "$TREE.tmp/linux-source-6.1" "$TREE" && rmdir "$TREE.tmp"
fi
echo "$TREE"
