#!/bin/sh
# Re-record the .config files in this directory from a real kernel tree:
#   tests/data/kconfig/regenerate.sh /var/tmp/ksrc/linux-source-6.1 [BUILD_DIR]
# Each case is `make tinyconfig`, merge_config.sh -m with guest-images/kernel/nvdimm.config
# (and the case's fragment), `make olddefconfig`: the same steps the harness takes.
# nvdimm*.final.config and the thp-off/rxe-no-ib results are trimmed to the symbols the test
# needs (the fragments' options; the symbols named in tree/), gup_test-no-debugfs.final.config
# is kept whole. Only config targets run; the tree itself is never written (O=).
set -eu
src=$1
build=${2:-/var/tmp/kcfg-regenerate}
here=$(cd "$(dirname "$0")" && pwd)
frags=$here/../../../guest-images/kernel

configure() {  # configure OUT FRAGMENT...
	out=$1; shift
	make -s -C "$src" O="$build" tinyconfig >/dev/null
	sh "$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$@" >/dev/null
	make -s -C "$src" O="$build" olddefconfig
	cp "$build/.config" "$out"
}

trim() {  # trim FILE SYMBOL-SOURCE...: keep the header and the lines of these symbols
	file=$1; shift
	syms=$(cat "$@" | grep -o '\bCONFIG_[A-Z0-9_]*\|\b[A-Z][A-Z0-9_]\{2,\}\b' | sed 's/^CONFIG_//' | sort -u)
	pattern=$(printf '%s\n' $syms | sed 's/.*/^CONFIG_&=|^# CONFIG_& is not set$/' | paste -sd'|')
	{ head -4 "$file.full"; echo "# (trimmed to the symbols the unit tests look at)"
	  grep -E "$pattern" "$file.full" || true; } > "$file"
	rm "$file.full"
}

configure "$here/nvdimm.final.config.full" "$frags/nvdimm.config"
trim "$here/nvdimm.final.config" "$frags/nvdimm.config"
configure "$here/nvdimm+debug.final.config.full" "$frags/nvdimm.config" "$frags/debug.config"
trim "$here/nvdimm+debug.final.config" "$frags/nvdimm.config" "$frags/debug.config"
configure "$here/gup_test-no-debugfs.final.config" "$frags/nvdimm.config" "$here/gup_test-no-debugfs.config"
for case in thp-off rxe-no-ib; do
	configure "$here/$case.final.config.full" "$frags/nvdimm.config" "$here/$case.config"
	trim "$here/$case.final.config" "$frags/nvdimm.config" $(find "$here/tree" -type f)
done
