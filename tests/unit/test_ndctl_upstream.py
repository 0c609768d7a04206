"""ndctl's suites as harness tests: the test list from meson.build, the source's identity,
meson's JSON log, and what each meson result becomes (harness/ndctl_upstream.py)."""

import io
import json
import tarfile

import pytest

from harness.errors import InfraError, UsageError
from harness.ndctl_upstream import (
    MesonResult,
    NdctlSource,
    UpstreamTest,
    failure_location,
    judge,
    parse_meson_run,
    parse_meson_tests,
    resolve_source,
    select,
    skip_reason,
)

MESON_BUILD = """
tests = [
  [ 'libndctl',               libndctl,		  'ndctl' ],
  [ 'daxdev-errors.sh',       daxdev_errors_sh,	  'dax'	  ],
  [ 'cxl-topology.sh',	      cxl_topo,		  'cxl'   ],
]
if get_option('destructive').enabled()
  tests += [
    [ 'dax-ext4.sh',       dax_ext4,	   'dax'   ],
  ]
endif
"""


def test_every_registered_test_in_order():
    tests = parse_meson_tests(MESON_BUILD)
    assert [(t.name, t.suite) for t in tests] == [
        ("libndctl", "ndctl"), ("daxdev-errors.sh", "dax"), ("cxl-topology.sh", "cxl"),
        ("dax-ext4.sh", "dax")]
    assert tests[3].test_id == "ndctl/dax/dax-ext4.sh"


def test_select_by_suite():
    tests = parse_meson_tests(MESON_BUILD)
    assert [t.name for t in select(tests, "dax")] == ["daxdev-errors.sh", "dax-ext4.sh"]
    assert len(select(tests, "all")) == 4
    with pytest.raises(UsageError, match="unknown suite 'nvme'"):
        select(tests, "nvme")


def _tarball(path, files, top="ndctl-81"):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"{top}/test/dax-ext4.sh")
        link.type, link.linkname = tarfile.SYMTYPE, "dax.sh"
        tar.addfile(link)


FILES = {"meson.build": b"project('ndctl', 'c', version : '81')\n",
         "test/meson.build": MESON_BUILD.encode(), "test/dax.sh": b"#!/bin/bash\n"}


def test_a_tarball_and_a_checkout_of_the_same_files_are_one_build(tmp_path):
    _tarball(tmp_path / "ndctl.tar.gz", FILES)
    tree = tmp_path / "ndctl"
    for name, data in FILES.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    (tree / "test" / "dax-ext4.sh").symlink_to("dax.sh")
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tree / "build" / "meson-private").mkdir(parents=True)
    (tree / "build" / "build.ninja").write_text("rules\n")
    tar_src, dir_src = NdctlSource(tmp_path / "ndctl.tar.gz"), NdctlSource(tree)
    assert set(dir_src.files()) == {*FILES, "test/dax-ext4.sh"}
    assert tar_src.content_key() == dir_src.content_key()
    assert tar_src.version() == "81" and len(tar_src.tests()) == 4
    (tree / "test" / "dax.sh").write_text("#!/bin/bash\nexit 1\n")
    assert NdctlSource(tree).content_key() != tar_src.content_key()


def test_bad_sources_are_one_line_naming_the_problem(tmp_path):
    with pytest.raises(UsageError, match="no such file or directory; get v81"):
        resolve_source(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no test/meson\.build"):
        resolve_source(str(tmp_path / "empty"))
    (tmp_path / "x.tar.gz").write_text("not a tarball")
    with pytest.raises(UsageError, match="not a readable tarball") as e:
        resolve_source(str(tmp_path / "x.tar.gz"))
    assert "\n" not in str(e.value)


DAX = UpstreamTest("dax-ext4.sh", "dax")


def _run_output(result, rc, stdout, duration=3.5):
    entry = {"name": "dax-ext4.sh", "result": result, "returncode": rc,
             "duration": duration, "stdout": stdout}
    return ("meson-exit=1\n1/1 ndctl:dax / dax-ext4.sh  " + result + "\n--- json\n"
            + json.dumps(entry) + "\n")


def test_meson_json_log_is_read():
    r = parse_meson_run(DAX, _run_output("OK", 0, "+ mkfs.ext4\nok\n"))
    assert (r.result, r.returncode, r.duration_s) == ("OK", 0, 3.5)
    assert "mkfs.ext4" in r.output and "ndctl:dax / dax-ext4.sh" in r.meson_output
    assert judge(r).outcome == "passed"


def test_no_json_entry_is_an_infrastructure_error_with_meson_output():
    with pytest.raises(InfraError, match="No tests defined"):
        parse_meson_run(DAX, "meson-exit=1\nNo tests defined.\n--- json\n")


def result(kind, rc, output):
    return MesonResult(DAX, kind, rc, 12.0, output, "")


def test_a_skip_keeps_the_tests_own_reason():
    out = "+ check_prereq jq\nmissing jq, skipping...\n"
    assert skip_reason(out) == "missing jq, skipping..."
    j = judge(result("SKIP", 77, out))
    assert j.outcome == "skipped" and j.message == "ndctl dax-ext4.sh: missing jq, skipping..."
    assert skip_reason("+ ndctl list\nsomething else\n") == "something else"


def test_a_skip_reason_is_the_tests_words_not_its_trace():
    # multi-dax.sh on a kernel without nfit_test, as meson logged it (set -x, libndctl debug)
    out = ("+ rc=77\n++ echo test/multi-dax.sh: failed at line 19\n"
           "libndctl: __sysfs_device_parse: ndctl0: processed\n"
           "test/multi-dax.sh: failed at line 19\n--- stderr ---\n"
           "modprobe: FATAL: Module nfit_test not found in directory /lib/modules/6.1.0-57\n")
    assert skip_reason(out) == ("test/multi-dax.sh: failed at line 19: modprobe: FATAL: "
                                "Module nfit_test not found in directory /lib/modules/6.1.0-57")


def test_a_failure_names_where_with_a_stable_finding():
    out = "+ mount -o dax\nmount: bad option\ntest/dax.sh: failed at line 45\n"
    assert failure_location(result("FAIL", 1, out)) == "dax.sh line 45"
    j = judge(result("FAIL", 1, out))
    assert j.outcome == "failed"
    assert j.finding.title == "ndctl test dax-ext4.sh failed: dax.sh line 45"
    assert "meson: FAIL (exit 1)" in j.message and "mount: bad option" in j.message
    c_test = judge(result("FAIL", 6, "__ndctl_test_attempt: kernel 6.1 ...\nfail\n"))
    assert c_test.finding.title == "ndctl test dax-ext4.sh failed: exit 6"


@pytest.mark.parametrize("kind, outcome", [
    ("OK", "passed"), ("EXPECTEDFAIL", "passed"), ("SKIP", "skipped"),
    ("TIMEOUT", "timeout"), ("FAIL", "failed"), ("ERROR", "failed"),
    ("UNEXPECTEDPASS", "failed")])
def test_every_meson_result_has_an_outcome(kind, outcome):
    assert judge(result(kind, 0, "x\n")).outcome == outcome
