"""The fuzzer in ``fuzz/`` still runs, and finds nothing it does not know of.

One quick run (``python -bb fuzz/run.py --quick --seed 1``: 1000 inputs per target,
the corpus of past findings first) in a subprocess, shared by the tests below: every
target reports, and none has a finding. The targets with known findings are marked
``xfail(strict=True)`` with what was found, so that a fix shows up as an XPASS that
fails the run until its mark is removed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "fuzz" / "run.py"
TARGETS = ("server", "client", "url", "session-lines", "session-files")

# What the fuzzer finds in the current code, by target (the shrunk inputs are in
# fuzz/corpus.json, so that every run checks them first). Nothing, now: the loader's
# OverflowError for a huge 't' and its lone surrogates that dumps_session could not
# write as UTF-8 are fixed.
KNOWN: dict[str, str] = {}


@dataclass(frozen=True)
class QuickRun:
    returncode: int
    stdout: str
    stderr: str
    findings: list[dict[str, Any]]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    out = tmp_path_factory.mktemp("fuzz") / "findings.json"
    argv = [sys.executable, "-bb", str(RUN), "--quick", "--seed", "1"]
    proc = subprocess.run(
        [*argv, "--findings-json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    findings = json.loads(out.read_text("utf-8"))["findings"] if out.exists() else []
    return QuickRun(proc.returncode, proc.stdout, proc.stderr, findings)


def test_every_target_reports(quick_run: QuickRun) -> None:
    # 0: no findings, 1: findings; anything else (a traceback, a hang) is the fuzzer's failure.
    assert quick_run.returncode in (0, 1), quick_run.stderr
    for name in TARGETS:
        line = re.search(rf"^== {re.escape(name)}: (\d+) inputs in ", quick_run.stdout, re.M)
        assert line is not None, f"no line for {name}:\n{quick_run.stdout}"
        assert int(line[1]) == 1000


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(t, marks=pytest.mark.xfail(reason=KNOWN[t], strict=True)) if t in KNOWN else t
        for t in TARGETS
    ],
)
def test_no_findings(quick_run: QuickRun, target: str) -> None:
    found = [f for f in quick_run.findings if f["target"] == target]
    assert not found, "\n".join(
        f"{f['key']} in {f['check']}: {f['detail']}; shrunk: {f['shrunk_repr']}" for f in found
    )


@pytest.mark.xfail(bool(KNOWN), reason="known findings: " + ", ".join(sorted(KNOWN)), strict=True)
def test_exit_status_is_0(quick_run: QuickRun) -> None:
    assert quick_run.returncode == 0, quick_run.stdout
