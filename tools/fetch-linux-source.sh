#!/bin/sh
# Unpack Debian's linux-source-6.1 (a real kernel tree) for the kernel-build end-to-end tests.
# Prints the tree's path. Installs the package (and the kernel build dependencies) if missing.
set -eu
CACHE="${NVH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nvdimm-harness}"
TREE="$CACHE/linux-source-6.1"
if [ ! -f "$TREE/Makefile" ]; then
	PKGS="linux-source-6.1 bc bison flex libelf-dev libssl-dev cpio kmod xz-utils gcc make patch git"
	missing=""
	for p in $PKGS; do
		dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "nvdimm-harness: installing:$missing" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >&2
		# shellcheck disable=SC2086
		apt-get install -y -q --no-install-recommends $missing >&2
	fi
	mkdir -p "$CACHE"
	rm -rf "$TREE.tmp" && mkdir "$TREE.tmp"
	tar -C "$TREE.tmp" -xf /usr/src/linux-source-6.1.tar.xz
	mv "$TREE.tmp/linux-source-6.1" "$TREE" && rmdir "$TREE.tmp"
fi
echo "$TREE"
