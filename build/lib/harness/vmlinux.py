"""Boot the uncompressed kernel through its PVH entry instead of the bzImage.

Debian's bzImage is xz-compressed; under TCG the in-guest decompressor plus the real-mode
setup took ~4 s of every boot (6.5 s -> 2.4 s to the same point, measured). A kernel built
with CONFIG_PVH carries an XEN_ELFNOTE_PHYS32_ENTRY note and QEMU's -kernel boots such an
ELF directly. So the image build inflates the payload once on the host.
"""

from __future__ import annotations

import gzip
import lzma
import struct
import subprocess
import zlib

# include/xen/interface/elfnote.h
XEN_ELFNOTE_PHYS32_ENTRY = 18
_PAYLOADS = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),  # Debian's 6.12 (CONFIG_KERNEL_ZSTD)
)


def extract_vmlinux(bzimage: bytes) -> bytes | None:
    """The ELF vmlinux inside a bzImage (xz, gzip or zstd payload), or None if not found."""
    for magic, kind in _PAYLOADS:
        start = bzimage.find(magic)
        while start != -1:
            data = _inflate(bzimage[start:], kind)
            if data and data[:4] == b"\x7fELF":
                return data
            start = bzimage.find(magic, start + 1)
    return None


def _inflate(blob: bytes, kind: str) -> bytes | None:
    if kind == "zstd":
        # Python 3.11 has no zstd: the zstd tool. It decodes the frame, then complains about
        # the bzImage's bytes after it (exit 1): the output is what counts.
        try:
            return subprocess.run(["zstd", "-dcq"], input=blob, capture_output=True).stdout
        except OSError:
            return None
    try:
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(blob)
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)
    except (lzma.LZMAError, zlib.error, gzip.BadGzipFile, EOFError):
        return None


def has_pvh_entry(elf: bytes) -> bool:
    """True if a 64-bit little-endian ELF has the Xen PVH entry note QEMU needs."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type == 4 and _notes_have_pvh(elf[p_offset:p_offset + p_filesz]):  # PT_NOTE
            return True
    return False


def _notes_have_pvh(notes: bytes) -> bool:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, pos)
        name = notes[pos + 12:pos + 12 + namesz].rstrip(b"\0")
        if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
            return True
        pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def pvh_entry_refused(config: str, pvh_makefile: str | None) -> str:
    """Why a kernel built with `config` must boot from its bzImage, not its PVH entry ("" when
    the PVH entry is safe). `pvh_makefile`: the tree's arch/x86/platform/pvh/Makefile, if known.

    With CONFIG_KASAN, pvh_start_xen (arch/x86/platform/pvh/head.S) calls xen_prepare_pvh()
    (enlighten.c) before startup_64 has run kasan_early_init(): the C code is instrumented,
    its first shadow check reads an unmapped address, and with no IDT yet the CPU triple
    faults before the console is up (measured on Debian's 6.1 with the harness's debug
    fragment). The bzImage path maps the early shadow first. A tree whose pvh Makefile turns
    KASAN off for that code (KASAN_SANITIZE) can use the PVH entry.
    """
    if "CONFIG_KASAN=y" in config.splitlines() and "KASAN_SANITIZE" not in (pvh_makefile or ""):
        return ("CONFIG_KASAN=y: the PVH entry runs instrumented C (xen_prepare_pvh) before "
                "KASAN's early shadow is mapped and triple-faults; booting the bzImage")
    return ""
