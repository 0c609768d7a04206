"""report.html in a real browser: headless Chromium renders it, screenshots it, dumps its DOM.

No guest is booted: the results directory is written by write_reports() from a RunSummary
made here. Chromium comes from tools/install-host-deps.sh (Debian's `chromium`); a missing
browser fails the test instead of skipping it, so a machine that lost it is noticed.
"""

import re
import struct
import zlib
from pathlib import Path

import pytest
from browser import chromium, render

from harness.results import RunSummary, TestRecord, write_reports

pytestmark = pytest.mark.timeout(120)

FAILING_ID = "testcases/test_odirect.py::test_odirect[fsdax-xfs-dev-read-untouched-64M]"
FAILING_MESSAGE = ("O_DIRECT transfer: expected ret 67108864 (all bytes), observed ret -1 "
                   "errno EFAULT")
KNOWN_ID = "testcases/test_remove.py::test_remove_pinned_devdax[rdma]"
KNOWN_TITLE = "BUG: unable to handle kernel paging request in unpin_user_page_range_dirty_lock"
BANNER_RED = (0xB3, 0x26, 0x1E)  # .v-failed in harness/results.py


def sample_results(directory: Path) -> Path:
    oops = "\n".join([
        "[   41.100000] nvh-mark: begin " + FAILING_ID,
        "[   41.200000] \x1b[1mdax_pmem dax0.0: memmap in pmem\x1b[0m",
        "[   41.300000] WARNING: CPU: 1 PID: 812 at fs/dax.c:1467 dax_iomap_rw+0x2f1/0x360",
        "[   41.300010] Modules linked in: dax_pmem nd_pmem nd_btt",
        "[   41.300020] CPU: 1 PID: 812 Comm: odirect Not tainted 6.1.0-56-amd64 #1",
        "[   41.300030] RIP: 0010:dax_iomap_rw+0x2f1/0x360",
        "[   41.300040] Call Trace:",
        "[   41.300050]  <TASK>",
        "[   41.300060]  xfs_file_dax_read+0x8e/0x120 [xfs]",
        "[   41.300070]  vfs_read+0x1f3/0x2e0",
        "[   41.300080]  </TASK>",
        "[   41.300090] ---[ end trace 0000000000000000 ]---",
        *(f"[   42.{i:06d}] odirect: chunk {i} \x00\x07done" for i in range(60)),
        "[   43.000000] nvh-mark: end " + FAILING_ID,
    ]).encode() + b"\n[   43.1] stray \xff\xfe bytes\n"
    tests = [
        TestRecord(f"testcases/test_pin.py::test_pin[{mode}-vmsplice]", "passed", 3.2,
                   artifacts=[f"tests/test_pin_{mode}-vmsplice/dmesg.txt"])
        for mode in ("fsdax-ext4-mem", "fsdax-xfs-dev", "devdax-2M-mem", "anon")
    ]
    tests.insert(2, TestRecord(
        FAILING_ID, "failed", 7.4,
        message=FAILING_MESSAGE + "\nworkload: tests/.../workload.json",
        expected="ret 67108864 (all bytes): get_user_pages() on fsdax pages succeeds since "
                 "v4.15 (mm/gup.c)",
        observed="ret -1 errno EFAULT after 0 bytes",
        kernel_findings=[{"kind": "warning", "title": "WARNING in dax_iomap_rw", "line": 3,
                          "location": "fs/dax.c:1467"}],
        artifacts=["tests/test_odirect_fsdax-xfs-dev-read-untouched-64M/dmesg.txt",
                   "tests/test_odirect_fsdax-xfs-dev-read-untouched-64M/workload.json"],
        trace_counts={"fs_dax:dax_pmd_fault_done": 32, "fs_dax:dax_pmd_load_hole": 0}))
    tests.append(TestRecord(
        KNOWN_ID, "known_failure", 12.9,
        message="kernel findings: oops: " + KNOWN_TITLE,
        kernel_findings=[{"kind": "oops", "title": KNOWN_TITLE, "line": 1}],
        artifacts=["tests/test_remove_pinned_devdax_rdma/dmesg.txt"],
        known_issue={"title": KNOWN_TITLE, "kernel": ">=6.1,<6.2",
                     "reference": "found by this suite on Debian 6.1.0-56: device-dax disable "
                                  "completes while an rxe MR holds a FOLL_LONGTERM pin"}))
    tests.append(TestRecord("testcases/test_pin.py::test_pin[devdax-2M-mem-gup_test_long]",
                            "skipped", 0.0, message="kernel without CONFIG_GUP_TEST"))
    run = RunSummary(
        run_id="20261129-101500-beef", started="2026-11-29T10:15:00+0000", duration_s=61.5,
        host={"hostname": "ci-runner-3", "cpus": 2, "kernel": "6.1.0-41-amd64"},
        qemu={"version": "7.2.22", "accel": "tcg",
              "accel_reason": "KVM probe: guest hung after 'Probing EDD'"},
        kernel={"release": "6.1.192-nvh", "source": "tree", "config_hash": "9f2c41d07a3e",
                "patches": ["mm/gup: let FOLL_LONGTERM pins of device-dax wait for removal",
                            "dax: revoke pinned ZONE_DEVICE pages on unbind"]},
        profile={"name": "default", "machine": "q35", "cpus": 2, "memory": "2G",
                 "nvdimms": [{"size": "1G", "label_size": "128K", "align": "2M"}] * 2},
        boot={"boots": 2, "first_boot_s": 12.1, "image": "bookworm-3f9a"},
        tests=tests,
    )
    for t in run.tests:
        for a in t.artifacts:
            (directory / a).parent.mkdir(parents=True, exist_ok=True)
            (directory / a).write_bytes(b"[    1.0] clean\n")
    failing_dir = directory / "tests/test_odirect_fsdax-xfs-dev-read-untouched-64M"
    (failing_dir / "dmesg.txt").write_bytes(oops)
    (failing_dir / "workload.json").write_text('{"ret": -1, "errno": "EFAULT"}\n')
    (directory / "console.log").write_text("[    0.000000] Linux version 6.1.192-nvh\n")
    write_reports(run, directory)
    return directory / "report.html"


def png_rows(data: bytes, max_rows: int) -> tuple[int, int, list[list[tuple[int, ...]]]]:
    """(width, height, the first max_rows rows as RGB pixels) of an 8-bit RGB/RGBA PNG,
    checking every chunk's CRC: enough to know the screenshot is a real picture."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header, "no IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 4 if colour == 6 else 3
    stride = width * bpp
    raw = zlib.decompressobj().decompress(idat, max_rows * (stride + 1))
    rows, prev = [], bytearray(stride)
    for y in range(min(max_rows, height)):
        filt, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) *
                                                          (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            if filt == 1:
                line[i] = (line[i] + a) & 0xFF
            elif filt == 2:
                line[i] = (line[i] + b) & 0xFF
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif filt == 4:
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) \
                    & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [[tuple(r[i:i + 3]) for i in range(0, stride, bpp)] for r in rows]


def test_report_renders_in_headless_chromium(tmp_path):
    browser = chromium()
    page = sample_results(tmp_path / "results")
    html = page.read_text(encoding="utf-8")

    # Self-contained: nothing that makes the browser fetch anything.
    assert not re.search(r"<(script|link|iframe|img|object|embed)\b|@import|url\(", html, re.I)
    refs = re.findall(r"""\b(?:src|href|action)\s*=\s*["']?([^"'\s>]*)""", html, re.I)
    assert refs and all(not re.match(r"[a-z][a-z0-9+.-]*:|//", r, re.I) for r in refs), refs
    assert not re.search(r"https?://", html)

    shot = tmp_path / "report.png"
    render(browser, page, f"--screenshot={shot}", "--window-size=1280,2000",
           profile=tmp_path / "profile-shot")
    width, height, top = png_rows(shot.read_bytes(), max_rows=60)
    assert (width, height) == (1280, 2000)
    colours = {px for row in top for px in row}
    assert len(colours) > 20, f"a blank screenshot? {len(colours)} colours in the top rows"
    banner = [row[640] for row in top[2:30]]  # the verdict banner across the top
    assert banner.count(BANNER_RED) > 10, banner

    dom = render(browser, page, "--dump-dom", profile=tmp_path / "profile-dom").stdout
    assert re.search(r'<header class="banner v-failed"><span class="verdict">FAIL</span>', dom)
    text = re.sub(r"<[^>]+>", "", dom)
    assert FAILING_ID in text and FAILING_MESSAGE in text
    assert "WARNING: CPU: 1 PID: 812 at fs/dax.c:1467" in text  # its dmesg, inline
    assert "ret -1 errno EFAULT after 0 bytes" in text          # expected vs observed
    # Known kernel bugs come first, with their title; the failure's details are open.
    assert text.index(KNOWN_ID) < text.index(FAILING_ID) < text.index("test_pin[anon-vmsplice]")
    assert KNOWN_TITLE in text
    assert re.search(r"<details open=\"\"><summary><span class=\"mono\">O_DIRECT transfer", dom)
