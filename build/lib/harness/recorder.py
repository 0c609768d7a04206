"""A run's records: one TestRecord per guest test, judged, and the results directory.

RunRecorder collects what each phase of each guest test reported (harness.verdict.Phase plus
the test's harness.frame.TestFrame), applies the known-failures table (known_failure, fixed,
or failed naming the known bug and the other deviation), and at the end writes the results
directory: summary.json with the run's metadata and the kernel findings outside every test,
and the reports.

With pytest-xdist (`--jobs N`, `-n N`) every worker boots its own guest and writes a
complete results directory of its own to RESULTS/workers/<worker id>/; the controller,
which runs no test, merges them into RESULTS (harness/merge.py) and removes workers/.

conftest.py subclasses it with the pytest hooks that feed it; nothing here knows pytest.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import known_failures, merge
from .console import findings_outside_tests
from .errors import BootError, HarnessError, UsageError
from .frame import TestArtifacts, TestFrame
from .kmsg import Finding
from .qemu import qemu_version
from .results import RunSummary, TestRecord, new_run_id, result_dir_name, write_reports
from .verdict import MESSAGE_MAX, Phase, classify, message

if TYPE_CHECKING:
    from .guest import Guest

# Outcomes a known-failures record can turn into known_failure / fixed / failed.
JUDGED = ("passed", "failed", "crashed", "timeout")
INTERRUPTED = "run interrupted (Ctrl-C or SIGTERM)"

# What sessionfinish does: the exit status to set (None: leave it), the lines to print.
Finish = tuple[int | None, list[str]]


class RunRecorder:
    def __init__(self, results: str | Path | None, default_parent: Path,
                 known_failures_path: Path, workerinput: Mapping[str, Any] | None = None,
                 shard: str = ""):
        """results: --results (None: DEFAULT_PARENT/<run id>); workerinput: on an xdist
        worker, what the controller passed to it (the worker's id, and the controller's run
        id and results directory: worker_input()); shard: "K/N" for --shard."""
        self.run_id = new_run_id()
        self.started_wall = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.started = time.monotonic()
        self.results_dir = Path(results) if results else default_parent / self.run_id
        workerinput = workerinput or {}
        self.worker: str | None = workerinput.get("workerid")
        if self.worker and "nvh_results" in workerinput:
            # The controller's run id and directory (a worker would make up its own).
            self.run_id = f"{workerinput['nvh_run_id']}-{self.worker}"
            self.results_dir = Path(workerinput["nvh_results"]) / "workers" / self.worker
        self.known_failures_path = known_failures_path
        self.shard = shard
        # (exit code, message) a worker stopped the run with (conftest.py's _stop_run).
        self.worker_exit: tuple[int, str] | None = None
        self.records: dict[str, TestRecord] = {}
        self.artifacts: dict[str, TestArtifacts] = {}
        self.guest: Guest | None = None  # once the session fixture made it
        self.guest_config = None
        self.infra_error = ""
        self.any_guest_tests = False
        self.known: known_failures.KnownFailures | None = None
        self.running: str | None = None  # the test in progress, named when interrupted
        self.upstream: dict[str, Any] = {}  # ndctl-test: which upstream suite ran

    def stop(self, message: str, returncode: int) -> None:
        """Stop the run (a bad known-failures table). The pytest glue overrides it; if it
        returns, the test is recorded as if no table applied."""
        raise UsageError(message)

    def stop_for(self, e: HarnessError, during: str) -> tuple[str, int]:
        """The line and exit code that stop the run when the guest cannot be had; an
        infrastructure failure (exit 3) is also recorded for summary.json, with the console's
        tail when the guest did not boot. during: "prepare" (options, profile, image,
        kernel: bad input exits 2), "boot" or "restart" (a BootError, between tests)."""
        if during == "prepare" and isinstance(e, UsageError):
            return f"nvdimm-harness: {e}", 2
        if during == "restart" and isinstance(e, BootError):
            self.infra_error = f"guest restart failed: {e}\n{e.console_tail}"
            return f"nvdimm-harness: guest restart failed: {e}", 3
        if during == "boot" and isinstance(e, BootError):
            self.infra_error = f"{e}\n--- console tail ---\n{e.console_tail}"
        else:
            self.infra_error = str(e)
        return f"nvdimm-harness: {e}", 3

    def interrupted_message(self) -> str:
        during = f" during {self.running}" if self.running else ""
        return f"{INTERRUPTED}{during}; results are partial"

    def frame_for(self, test_id: str, expected_titles: list[str], guest: Guest) -> TestFrame:
        """A new frame around the test, writing to the test's artifacts."""
        return TestFrame(test_id, expected_titles, guest, self.artifacts_for(test_id))

    def artifacts_for(self, test_id: str) -> TestArtifacts:
        if test_id not in self.artifacts:
            name = result_dir_name(test_id)
            self.artifacts[test_id] = TestArtifacts(self.results_dir / "tests" / name,
                                                    f"tests/{name}")
        return self.artifacts[test_id]

    # -- one phase of one guest test ------------------------------------------------------
    def record(self, test_id: str, phase: Phase,
               frame: TestFrame | None) -> known_failures.Verdict | None:
        """Record what `phase` says about the test. Returns the known-failures verdict when
        one applied: known_failure and fixed are for pytest's xfail/xpass (a plain
        `pytest testcases/` then exits 0 for them too); failed is already in the message."""
        self.any_guest_tests = True
        outcome = classify(phase, frame)
        if outcome is None:
            self._refresh_checks(test_id, phase)
            return None
        verdict = self.known_failure(test_id, outcome, frame) if phase.when == "call" else None
        text = message(phase, frame)
        failed = phase.failed
        if verdict is not None and verdict.outcome == "failed":
            # The known bug and something else: failed, and the message says both.
            text = f"{verdict.message}\n{text}"[:MESSAGE_MAX]
        elif verdict is not None:
            outcome = verdict.outcome
            # pytest reports a known bug as skipped (xfail): no failure.txt for it.
            failed = failed and verdict.outcome != "known_failure"
        record = self.records.get(test_id)
        if record is None or record.outcome == "passed":
            art = self.artifacts_for(test_id)
            if failed and phase.longrepr:
                art.attach("failure.txt", phase.longrepr)
            self.records[test_id] = TestRecord(
                id=test_id, outcome=outcome, duration_s=round(phase.duration_s, 3),
                message=text,
                kernel_findings=frame.findings_json() if frame else [],
                artifacts=list(art.files), expected=art.expected, observed=art.observed,
                trace_counts=dict(art.trace_counts),
                known_issue=verdict.entry.to_json() if verdict else None,
                checks=[c.to_json() for c in art.checks],
            )
        elif phase.when == "call":
            record.duration_s = round(phase.duration_s, 3)
        self._refresh_checks(test_id, phase)
        return verdict

    def _refresh_checks(self, test_id: str, phase: Phase) -> None:
        """Checks recorded in fixture teardown count too, whether it passed or not."""
        if phase.when == "teardown" and test_id in self.records:
            art = self.artifacts_for(test_id)
            self.records[test_id].checks = [c.to_json() for c in art.checks]

    def known_failure(self, test_id: str, outcome: str,
                      frame: TestFrame | None) -> known_failures.Verdict | None:
        if outcome not in JUDGED or frame is None:
            return None
        if self.known is None:
            try:
                self.known = known_failures.load(self.known_failures_path)
            except known_failures.KnownFailuresError as e:
                self.stop(f"nvdimm-harness: {e}", 2)
                return None
        release = self.guest.kernel_release if self.guest else None
        config = getattr(self.guest, "config", None)
        checkers = config.kernel.checkers if config else ()
        return self.known.judge(test_id, release, outcome == "passed",
                                [f.title for f in frame.findings], frame.artifacts.checks,
                                checkers)

    # -- pytest-xdist ---------------------------------------------------------------------
    def worker_input(self) -> dict[str, str]:
        """What the controller tells each worker (in the `workerinput` of its recorder)."""
        return {"nvh_results": str(self.results_dir.resolve()), "nvh_run_id": self.run_id}

    def worker_down(self, workeroutput: Mapping[str, Any]) -> None:
        """The controller hears of a worker's end: the first exit code a worker stopped
        the run with (conftest.py's _stop_run) becomes the run's."""
        stop = workeroutput.get("nvh_exit")
        if stop and self.worker_exit is None:
            self.worker_exit = (int(stop[0]), str(stop[1]))

    # -- the end of the run ---------------------------------------------------------------
    def finish(self, interrupted: bool, controller: bool) -> Finish:
        """The results directory: written by a test-running process, merged from the
        workers' ones by the xdist controller. Returns the exit status to set (None:
        unchanged) and the lines to tell the user."""
        return self.merge_workers(interrupted) if controller else self.write_results(interrupted)

    def write_results(self, interrupted: bool) -> Finish:
        """The results directory of this process's run (nothing when it ran no guest test)."""
        if not (self.any_guest_tests or self.infra_error or self.guest_config):
            return None, []
        if interrupted and not self.infra_error:
            self.infra_error = self.interrupted_message()
        for test_id, record in self.records.items():
            if test_id in self.artifacts:
                record.artifacts = list(self.artifacts[test_id].files)
        try:
            write_reports(self.summary(), self.results_dir)
        except OSError as e:
            # Disk full, directory gone: one clear line and exit 3, not an INTERNALERROR.
            return 3, [f"nvdimm-harness: cannot write the results to "
                       f"{self.results_dir}: {e.strerror or e}"]
        # The controller says it once for all workers.
        return None, [] if self.worker else [f"nvdimm-harness: results in {self.results_dir}"]

    def merge_workers(self, interrupted: bool) -> Finish:
        """On the xdist controller: the workers' results directories joined into one."""
        workers = self.results_dir / "workers"
        dirs = sorted(d for d in workers.iterdir() if d.is_dir()) if workers.is_dir() else []
        status, lines = None, []
        if self.worker_exit:
            status = self.worker_exit[0]
            lines.append(self.worker_exit[1])
        if not dirs:
            return status, lines  # no worker ran a guest test
        sources = []
        for d in dirs:
            if (d / "summary.json").is_file():
                sources.append(merge.load_source(d, d.name))
            else:
                # Killed or crashed before sessionfinish: keep its console and say so.
                sources.append(merge.Source(d.name, d, RunSummary(
                    run_id=f"{self.run_id}-{d.name}", started="",
                    infra_error=f"xdist worker {d.name} ended without writing its results "
                                "(crashed or killed)")))
        try:
            run, warnings = merge.merge_dirs(sources, self.results_dir, self.run_id, move=True,
                                             kind="jobs")
            # The controller's clock: worker start-up included, as a user waited for it.
            run.duration_s = round(time.monotonic() - self.started, 1)
            run.started = self.started_wall
            if interrupted and not run.infra_error and not self.worker_exit:
                run.infra_error = f"{INTERRUPTED}; results are partial"
            write_reports(run, self.results_dir)
        except (UsageError, OSError) as e:
            # The workers' directories stay for a look; one line and exit 3.
            return 3, [*lines, f"nvdimm-harness: cannot merge the workers' results in "
                               f"{workers}: {getattr(e, 'strerror', None) or e}"]
        # Everything in it was moved or copied into the run directory.
        shutil.rmtree(workers, ignore_errors=True)
        if run.infra_error and not self.worker_exit and not interrupted:
            status = 3  # as a single-guest run exits on an infrastructure error
        lines += [f"nvdimm-harness: warning: {w}" for w in warnings]
        lines.append(f"nvdimm-harness: results in {self.results_dir}")
        return status, lines

    def summary(self) -> RunSummary:
        cfg = self.guest_config
        g = self.guest
        run = RunSummary(
            run_id=self.run_id, started=self.started_wall,
            duration_s=round(time.monotonic() - self.started, 1),
            host={"hostname": socket.gethostname(), "cpus": os.cpu_count(),
                  "kernel": platform.release(), "python": platform.python_version()},
            tests=list(self.records.values()), infra_error=self.infra_error,
        )
        run.shard = self.shard
        run.upstream = dict(self.upstream)
        if cfg is not None:
            run.qemu = {"version": qemu_version(), "accel": cfg.accel.accel,
                        "accel_reason": cfg.accel.reason}
            release = g.kernel_release if g and g.kernel_release else None
            if release is None and cfg.kernel.source == "distro":
                release = cfg.image.kernel_release
            run.kernel = {"release": release, "source": cfg.kernel.source,
                          "patches": list(cfg.kernel.patches),
                          "config_hash": cfg.kernel.config_hash,
                          "description": cfg.kernel.description,
                          "boot_image": str(cfg.kernel.kernel),
                          "slowdown": cfg.kernel.slowdown}
            if cfg.kernel.package:
                run.kernel.update(package=cfg.kernel.package,
                                  package_version=cfg.kernel.package_version)
            run.profile = cfg.profile.to_json()
            run.boot = {"boots": g.boots if g else 0,
                        "first_boot_s": round(g.boot_s, 1) if g and g.boot_s else None,
                        "image": cfg.image.directory.name}
        run.run_findings = [f.to_json() for f in self.findings_outside_tests()]
        return run

    def findings_outside_tests(self) -> list[Finding]:
        """Kernel findings in the run's console.log outside every test's begin..end frame."""
        console = self.results_dir / "console.log"
        if not console.exists():
            return []
        return findings_outside_tests(console.read_text(errors="replace"))
