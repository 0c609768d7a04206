"""Extracting the ELF kernel from a bzImage and recognising its PVH entry note."""

import gzip
import lzma
import struct

from harness.vmlinux import extract_vmlinux, has_pvh_entry


def elf_with_note(name: bytes, ntype: int) -> bytes:
    desc = b"\0" * 4
    note = struct.pack("<III", len(name) + 1, len(desc), ntype) + name + b"\0" * (
        (len(name) + 1 + 3) // 4 * 4 - len(name)) + desc
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    phoff = 64
    struct.pack_into("<Q", ehdr, 0x20, phoff)
    struct.pack_into("<HH", ehdr, 0x36, 56, 1)
    note_off = 64 + 56
    phdr = struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 4)
    return bytes(ehdr) + phdr + note


def fake_bzimage(payload: bytes) -> bytes:
    return b"\x90" * 0x202 + b"HdrS" + b"\0" * 1000 + payload + b"\0" * 64


def test_xz_payload_with_pvh_note():
    elf = elf_with_note(b"Xen", 18)
    assert extract_vmlinux(fake_bzimage(lzma.compress(elf, format=lzma.FORMAT_XZ))) == elf
    assert has_pvh_entry(elf)


def test_gzip_payload_without_pvh_note():
    elf = elf_with_note(b"Xen", 5)
    assert extract_vmlinux(fake_bzimage(gzip.compress(elf))) == elf
    assert not has_pvh_entry(elf)


def test_not_a_kernel():
    assert extract_vmlinux(b"\0" * 4096) is None
    assert not has_pvh_entry(b"not an elf")
