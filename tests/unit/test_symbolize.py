"""Frames → file:line with real binutils on small objects gcc builds here (seconds).

A linked executable stands in for vmlinux (absolute symbol values) and a relocatable object
named like a module stands in for a .ko (section-relative values, addr2line -j).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.symbolize import Frame, Symbolizer, _parse_addr2line, _tidy_path, parse_frames

SOURCE = """\
static int helper(int x)
{
	return x * 3;
}

__attribute__((noinline)) int target(int x)
{
	int y = helper(x);          /* line 8 */
	return y + 1;
}

int main(int argc, char **argv)
{
	return target(argc);        /* line 14 */
}
"""

needs_toolchain = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gcc", "addr2line", "objdump")),
    reason="gcc and binutils are needed to build the test objects")


def _size(obj: Path, func: str) -> int:
    out = subprocess.run(["objdump", "-t", "-w", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(rf"^[0-9a-f]+\s+\S*\s+F\s+\S+\s+([0-9a-f]+)\s+{func}$", out, re.MULTILINE)
    assert m, out
    return int(m.group(1), 16)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sym")
    (d / "src").mkdir()
    (d / "src" / "demo.c").write_text(SOURCE)
    subprocess.run(["gcc", "-g", "-O0", "-o", str(d / "vmlinux"), "src/demo.c"], cwd=d,
                   check=True)
    (d / "modules").mkdir()
    subprocess.run(["gcc", "-g", "-O0", "-c", "-o", str(d / "modules" / "nd-demo.ko"),
                    "src/demo.c"], cwd=d, check=True)
    return d


def test_parse_frames_of_an_oops():
    text = ("RIP: 0010:dax_iomap_rw+0x2c/0x90\n"
            " ext4_file_read_iter+0x5c/0x1a0 [ext4]\n"
            " ? srso_return_thunk+0x5/0x10\n"
            " pmem_submit_bio+0x10/0x200 [nd_pmem 0123abcd]\n")
    frames = parse_frames(text)
    assert [f.key for f in frames] == [
        "dax_iomap_rw+0x2c/0x90", "ext4_file_read_iter+0x5c/0x1a0 [ext4]",
        "srso_return_thunk+0x5/0x10", "pmem_submit_bio+0x10/0x200 [nd_pmem]"]
    assert frames[0].is_rip and not frames[1].is_rip


@needs_toolchain
def test_rip_frame_resolves_to_the_line_in_vmlinux(built):
    size = _size(built / "vmlinux", "target")
    sym = Symbolizer(built / "vmlinux", source_root=str(built))
    assert Symbolizer.usable(built / "vmlinux")
    loc = sym.locate([Frame("target", 0, size, is_rip=True)])[f"target+0x0/{size:#x}"]
    assert (loc.file, loc.function) == ("src/demo.c", "target")
    assert loc.line in (6, 7)  # the function's opening


@needs_toolchain
def test_return_address_names_the_call_site(built):
    # main's call to target: find the offset just after the call instruction.
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(built / "vmlinux")],
                         capture_output=True, text=True, check=True).stdout
    main = re.search(r"^([0-9a-f]+) <main>:\n(.*?)\n\n", dis, re.MULTILINE | re.DOTALL)
    start = int(main.group(1), 16)
    lines = main.group(2).splitlines()
    call = next(i for i, ln in enumerate(lines) if "call" in ln and "<target>" in ln)
    after = int(lines[call + 1].split(":")[0], 16)
    frame = Frame("main", after - start, _size(built / "vmlinux", "main"))
    loc = Symbolizer(built / "vmlinux", source_root=str(built)).locate([frame])[frame.key]
    assert (loc.file, loc.line) == ("src/demo.c", 14)


@needs_toolchain
def test_module_frame_resolves_in_its_ko(built):
    size = _size(built / "modules" / "nd-demo.ko", "target")
    sym = Symbolizer(built / "vmlinux", modules_dir=built / "modules", source_root=str(built))
    text = f"RIP: 0010:target+0x0/{size:#x} [nd_demo]\n unknown_func+0x1/0x2 [nd_demo]\n"
    out = sym.annotate(text)
    assert re.search(rf"target\+0x0/{size:#x} \[nd_demo\] \(src/demo.c:[67]\)", out), out
    assert "unknown_func+0x1/0x2 [nd_demo]\n" in out  # unresolved frames stay as they were


def test_vmlinux_without_line_tables_is_not_usable(tmp_path):
    if not shutil.which("gcc"):
        pytest.skip("gcc missing")
    (tmp_path / "a.c").write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-O0", "-o", str(tmp_path / "vmlinux"), str(tmp_path / "a.c")],
                   check=True)
    assert not Symbolizer.usable(tmp_path / "vmlinux")
    assert not Symbolizer.usable(tmp_path / "missing")


def test_addr2line_output_with_inlines_and_unknowns():
    out = ("0x0000000000001139\nhelper\n/b/src/./fs/../fs/dax.c:3\ntarget\n/b/src/fs/dax.c:8\n"
           "0x0000000000009999\n??\n??:0\n")
    first, second = _parse_addr2line(out, 2, "/b/src/")
    assert (first.function, str(first)) == ("helper", "fs/dax.c:3")
    assert first.inlined == (("target", "fs/dax.c", 8),)
    assert second is None


def test_tidy_path():
    assert _tidy_path("/c/kernel-src/x/./fs/../mm/gup.c") == "/c/kernel-src/x/mm/gup.c"
    assert _tidy_path("./fs/dax.c") == "fs/dax.c"


def test_a_finding_is_located_at_its_own_frame_not_the_allocation_stack():
    from harness.symbolize import Location, finding_location

    report = ("BUG: KASAN: use-after-free in dax_iomap_rw.cold+0x38/0x3a\n"
              "Call Trace:\n dax_iomap_rw.cold+0x38/0x3a\n ext4_file_write_iter+0x91e/0x1530\n"
              "Allocated by task 131:\n kmalloc_trace+0x25/0x90\n dax_iomap_rw+0x1c1/0x9d0\n")

    class Fake:
        def locate(self, frames):
            where = {"dax_iomap_rw.cold": ("fs/dax.c", 1530),
                     "dax_iomap_rw": ("include/linux/slab.h", 563)}
            return {f.key: Location(f.func, *where[f.func]) for f in frames if f.func in where}

    loc = finding_location(Fake(), "KASAN: use-after-free Read in dax_iomap_rw", report)
    assert str(loc) == "fs/dax.c:1530"


def test_a_finding_in_inlined_code_is_located_in_the_function_its_title_names():
    from harness.symbolize import Location, finding_location

    class Fake:
        def locate(self, frames):
            return {f.key: Location("atomic_read", "arch/x86/include/asm/atomic.h", 29,
                                    (("dax_disassociate_entry", "fs/dax.c", 412),))
                    for f in frames}

    loc = finding_location(Fake(), "BUG: unable to handle kernel paging request in "
                           "dax_disassociate_entry", "RIP: 0010:dax_disassociate_entry+0x7f/0xb0")
    assert (loc.function, str(loc)) == ("dax_disassociate_entry", "fs/dax.c:412")
