"""Run the benchmarks in this folder, print one table and write it as JSON.

Usage: ``python bench/run.py [--quick] [--only B1,B3] [--out bench/results.json]``

Each benchmark is a module ``bench/bN_name.py`` with ``run(*, quick=False) -> dict``
returning ``{"id", "title", "rows": [...], "notes"}``; a row is ``{"name", "value",
"unit", "baseline", "baseline_name", "ratio", "target", "met"}``. A missed target is
reported, not a failure: the exit status is 0 unless a benchmark crashes.

Each benchmark runs in a process of its own (``run.py --one PATH``), so that what one
leaves behind (imported libraries, a heap full of objects for the garbage collector
to walk) cannot slow the next.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent

Result = dict[str, Any]


def bench_modules() -> list[tuple[str, Path]]:
    """The ``(id, path)`` of every ``bench/b*_*.py``, in id order (B1, B2, ..., B10)."""
    found = []
    for path in HERE.glob("b*_*.py"):
        head = path.stem.split("_", 1)[0]
        if head[1:].isdigit():
            found.append((int(head[1:]), head.upper(), path))
    return [(bid, path) for _, bid, path in sorted(found)]


def load(path: Path) -> ModuleType:
    """Import a bench script by path (``bench/`` is a folder of scripts, not a package)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))  # so that benches can share helpers in bench/
    spec = importlib.util.spec_from_file_location(f"aai_bench_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_isolated(path: Path, *, quick: bool) -> Result:
    """Run one benchmark in a new process; its progress goes to stderr, its result to us."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--one", str(path)]
    out = subprocess.run(
        [*argv, *(["--quick"] if quick else [])], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    result: Result = json.loads(out)
    return result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or 0.01 <= abs(value) < 1e6:
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:.3g}"


def _cells(
    result: Result, row: dict[str, Any], *, none: str, times: str, no: str
) -> tuple[str, ...]:
    """One row's cells; ``none``, ``times`` and ``no`` are how each table writes them."""
    unit = row["unit"]
    baseline = row["baseline"]
    met = row["met"]
    return (
        result["id"],
        row["name"],
        f"{fmt(row['value'])} {unit}",
        none if baseline is None else f"{fmt(baseline)} {unit} ({row['baseline_name']})",
        none if row["ratio"] is None else f"{row['ratio']:.2f}{times}",
        row["target"],
        none if met is None else ("yes" if met else no),
    )


def table(results: list[Result]) -> str:
    """One plain-text table of every row of every result."""
    head = ("id", "name", "value", "baseline", "ratio", "target", "met")
    lines: list[tuple[str, ...]] = [head]
    for result in results:
        for row in result["rows"]:
            lines.append(_cells(result, row, none="-", times="x", no="NO"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(results: list[Result]) -> str:
    """The same table in Markdown, for the README."""
    lines = [
        "| id | benchmark | value | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for row in result["rows"]:
            cells = _cells(result, row, none="\u2014", times="\u00d7", no="**no**")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", default="", help="comma-separated ids, e.g. B1,B3")
    parser.add_argument("--out", default=str(HERE / "results.json"), help="the JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--one", metavar="PATH", help=argparse.SUPPRESS)  # see run_isolated
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(load(Path(args.one)).run(quick=args.quick)))
        return 0
    only = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    results: list[Result] = []
    for bid, path in bench_modules():
        if only and bid not in only:
            continue
        print(f"running {bid} ({path.name}) ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        result = run_isolated(path, quick=args.quick)
        result["seconds"] = round(time.perf_counter() - start, 1)
        print(f"  {bid} done in {result['seconds']} s", file=sys.stderr, flush=True)
        results.append(result)
    info = machine()
    print(
        f"{info['cpu_model']}, {info['cpu_count']} CPUs, {info['platform']}, "
        f"{info['implementation']} {info['python']}, {info['date']}"
        + (" (quick)" if args.quick else "")
    )
    print(table(results))
    for result in results:
        if result.get("notes"):
            print(f"\n{result['id']} {result['title']}: {result['notes']}")
    if args.markdown:
        print()
        print(markdown_table(results))
    Path(args.out).write_text(
        json.dumps({"machine": info, "quick": args.quick, "results": results}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
