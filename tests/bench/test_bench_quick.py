"""The benchmarks in ``bench/`` still run: each one's quick mode, and the shape of its result.

These are smoke tests, not timed tests: no speed or memory target is asserted here
(``nox -s bench`` measures them). Quick modes use tiny sizes, start and stop their
own server and client processes on 127.0.0.1, and take a few seconds in all.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(path: Path) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"aai_bench_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BENCHES = sorted(p for p in BENCH.glob("b*_*.py") if p.stem.split("_")[0][1:].isdigit())

ROW_KEYS = {"name", "value", "unit", "baseline", "baseline_name", "ratio", "target", "met"}


def _check_result(result: dict[str, Any], bench_id: str) -> None:
    assert set(result) >= {"id", "title", "rows", "notes"}
    assert result["id"] == bench_id
    assert isinstance(result["title"], str)
    assert result["title"]
    assert isinstance(result["notes"], str)
    assert result["rows"]
    for row in result["rows"]:
        assert set(row) == ROW_KEYS, row
        assert isinstance(row["name"], str)
        assert isinstance(row["unit"], str)
        assert isinstance(row["target"], str)
        assert isinstance(row["value"], (int, float))
        assert math.isfinite(row["value"])
        assert row["met"] is None or isinstance(row["met"], bool)
        if row["baseline"] is None:
            assert row["ratio"] is None
        else:
            assert isinstance(row["baseline_name"], str)
            assert isinstance(row["ratio"], (int, float))
            assert math.isfinite(row["ratio"])
    json.dumps(result)  # it must go into results.json as it is


def test_there_are_benchmarks() -> None:
    assert BENCHES


@pytest.mark.parametrize("path", BENCHES, ids=[p.stem for p in BENCHES])
def test_quick_run(path: Path) -> None:
    result = _load(path).run(quick=True)
    _check_result(result, path.stem.split("_")[0].upper())


def test_runner_writes_one_table_and_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = _load(BENCH / "run.py")
    out = tmp_path / "results.json"
    first = BENCHES[0].stem.split("_")[0].upper()
    assert runner.main(["--quick", "--only", first, "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert first in table
    assert "baseline" in table
    data = json.loads(out.read_text())
    assert data["quick"] is True
    assert set(data["machine"]) >= {"platform", "python", "cpu_count", "cpu_model", "date"}
    assert [r["id"] for r in data["results"]] == [first]
