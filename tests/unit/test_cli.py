"""Bad input gets one clear line and exit 2, before anything is built or booted."""

from pathlib import Path

import pytest

from harness.cli import main

DATA = Path(__file__).resolve().parent.parent / "data"


def run_cli(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("profile, field", [
    ("broken.yaml", "nvdimms[0].size: must be positive"),
    ("unknown-key.yaml", "colour: unknown key"),
    ("no-nvdimms.yaml", "nvdimms: is required"),
])
def test_broken_profiles_exit_2_with_one_line(capsys, profile, field):
    path = DATA / "profiles" / profile
    status, _out, err = run_cli(capsys, "run", "--profile", str(path))
    assert status == 2
    assert err.count("\n") == 1, err
    assert str(path) in err and field in err


@pytest.mark.parametrize("argv, text", [
    (["run", "--accel", "hvf"], "--accel: unknown accelerator 'hvf'"),
    (["run", "--kernel", "/nonexistent/bzImage"], "--kernel: /nonexistent/bzImage: no such file"),
    (["run", "--profile", "no-such-profile"], "no profile named 'no-such-profile'"),
    (["scan", "/nonexistent.log"], "/nonexistent.log"),
    (["report", "/"], "no summary.json"),
])
def test_bad_options_exit_2(capsys, argv, text):
    status, _out, err = run_cli(capsys, *argv)
    assert status == 2
    assert text in err and err.count("\n") == 1, err


def test_not_a_kernel_is_rejected(capsys, tmp_path):
    fake = tmp_path / "bzImage"
    fake.write_bytes(b"\0" * 4096)
    status, _, err = run_cli(capsys, "run", "--kernel", str(fake))
    assert status == 2 and "not an x86 kernel image" in err


def test_unknown_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--frobnicate"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_qemu_cmd_prints_nvdimm_devices_and_computed_sizes(capsys):
    status, out, _ = run_cli(capsys, "qemu-cmd", "--accel", "tcg")
    assert status == 0
    assert "nvdimm,id=nvdimm0,memdev=nvmem0,label-size=131072" in out
    assert "size=1075838976" in out  # 1 GiB usable + 128 KiB label, rounded up to 2 MiB
    assert "# nvdimm0: region 1073741824 bytes" in out


def test_guest_options_come_from_one_table_and_round_trip():
    from harness.cli import build_parser
    from harness.guest_options import GUEST_FLAGS, GuestOptions

    argv = ["--profile", "small", "--kernel", "bzImage", "--accel", "tcg", "--modules", "m",
            "--patches", "a.patch", "--patches", "b.patch", "--config", "debug"]
    for command in ("run", "boot", "shell", "qemu-cmd"):
        options = GuestOptions.from_args(build_parser().parse_args([command, *argv]))
        assert options == GuestOptions(profile="small", kernel="bzImage", accel="tcg",
                                       modules="m", patches=("a.patch", "b.patch"),
                                       configs=("debug",))
        assert options.to_flags() == argv
        assert "--accel" not in options.to_flags(exclude=("--accel",))
    assert [f.field for f in GUEST_FLAGS] == list(GuestOptions.__dataclass_fields__)


def test_scan_json_gives_kind_title_frame_and_the_log_line(capsys):
    import json

    log = DATA / "kmsg" / "real-6.1-panic-bio_check_pages_dirty-irq.log"
    status, out, _err = run_cli(capsys, "scan", str(log), "--json")
    assert status == 1  # findings
    oops, panic = json.loads(out)["findings"]
    assert oops == {
        "kind": "oops",
        "title": "BUG: unable to handle kernel paging request in bio_check_pages_dirty",
        "frame": "bio_check_pages_dirty", "line": oops["line"],
        "log_line": "BUG: unable to handle page fault for address: ffffea0004008008"}
    assert log.read_text().split("\n")[oops["line"] - 1].endswith(oops["log_line"])
    assert (panic["kind"], panic["title"]) == (
        "panic", "kernel panic: Fatal exception")


def test_scan_does_not_import_the_ssh_stack():
    import subprocess
    import sys

    code = ("import sys; from harness.cli import main; "
            "main(['scan', sys.argv[1]]); print('paramiko' in sys.modules)")
    log = DATA / "kmsg" / "panic-vfs-no-root.log"
    out = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True,
                         cwd=DATA.parents[1]).stdout
    assert out.strip().endswith("False"), out
