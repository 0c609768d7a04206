"""A deliberately broken kernel: the smallest ELF that QEMU boots through a PVH entry note and
that triple-faults on its first instruction (ud2 with no IDT: #UD cannot be delivered, the
double fault neither). What a kernel that dies before its console is up looks like to the
harness: QEMU exits with status 0 and an empty console."""

from __future__ import annotations

import struct

ENTRY = 0x100000  # 1 MiB: where the PVH entry runs, in 32-bit protected mode, paging off
XEN_ELFNOTE_PHYS32_ENTRY = 18  # include/xen/interface/elfnote.h


def triple_fault_kernel() -> bytes:
    code = b"\x0f\x0b"  # ud2
    note = struct.pack("<III", 4, 4, XEN_ELFNOTE_PHYS32_ENTRY) + b"Xen\0" + \
        struct.pack("<I", ENTRY)
    phoff, phnum, phentsize = 64, 2, 56
    note_off = phoff + phnum * phentsize
    code_off = 0x1000
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 62, 1,
                         ENTRY, phoff, 0, 0, 64, phentsize, phnum, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, code_off, ENTRY, ENTRY, len(code), len(code), 0x1000)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
    image = header + load + pnote + note
    return image + bytes(code_off - len(image)) + code
