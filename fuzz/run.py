"""Fuzz the parsers of aai-proto and aai-replay: h11's invariant, on every input.

Usage::

    python fuzz/run.py [--count N] [--seed S] [--only server,client,url,...]
                       [--seconds-per-target T] [--quick] [--findings-json PATH]

The invariant: every input is either accepted or refused with the documented
error, and nothing else escapes. The targets and their documented outcomes:

- ``server``: ``parse_server_message`` -> an event or ``RemoteProtocolError``; a
  ``Client`` after ``Begin``: ``receive_message`` -> events, or
  ``RemoteProtocolError`` with the client in ``ERROR``. With msgspec installed the
  pure-``json`` backend gets every input too.
- ``client``: ``parse_client_message`` -> a message or ``RemoteProtocolError``;
  ``ClientChecker.receive_text`` -> a message, ``Rejection`` or ``Violation``.
- ``url``: ``parse_url`` -> ``StreamingParams`` or ``InvalidParameter``;
  ``ClientChecker.receive_request`` (with and without ``api_key``) -> ``None`` or
  ``Rejection``.
- ``session-lines`` / ``session-files``: ``aai_replay.loads_session`` ->
  ``RecordedSession`` or ``SessionFormatError``, one line mutated or the whole
  text; whatever loads is written with ``dumps_session`` and must load back equal
  (and be UTF-8, as ``write_session`` writes it).
- ``recorder``: ``aai_replay``'s recording proxy, one frame at a time
  (``FrameRelay``, see ``fuzz/recorder.py``): every frame a peer would accept is
  forwarded unchanged and recorded as well as the format allows; a client frame the
  service refuses gets the service's answer. (A stateful target: ``--count`` only,
  no shrinking.)

Inputs are the shipped fixtures and a pool of examples drawn once from
``aai_proto.strategies`` (with Hypothesis), unchanged or mutated (``_mutate``):
values of another type, huge numbers, ``NaN``, 3000 levels of nesting, lone
surrogates, truncation, duplicate keys, flipped bits. A seed reproduces a run.

For each target it prints the inputs, inputs/s, the count of each outcome, the
slowest check of one input, and each undocumented exception (by type and where it
was raised) with the first input that raised it and that input shrunk. Warnings are
errors. The corpus (``corpus.json``: past findings, classic edge cases) goes first.

The exit status is 1 if anything undocumented happened (an exception, a broken round
trip, one check of one input slower than ``--slow-limit``), else 0. An input still
running after ``--hang-seconds`` is reported and ends the run (status 3; one stuck in
C code: a "Timeout" stack dump, status 1); a failure of the fuzzer itself exits with
4, a usage error with 2.
"""

from __future__ import annotations

import argparse
import faulthandler
import heapq
import json
import math
import os
import random
import sys
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from _mutate import shorten
from _targets import TARGETS, Broken, Check, Input, Pool, Target

DEFAULT_COUNT: Final = 100_000
QUICK_COUNT: Final = 1000
ROOT: Final = Path(__file__).resolve().parents[1]
CORPUS: Final = Path(__file__).resolve().parent / "corpus.json"


# -- what happened ---------------------------------------------------------------------


@dataclass
class Finding:
    """The inputs on which one check did one undocumented thing (same type, same place)."""

    check: str
    key: str
    detail: str
    first_index: int
    first_input: Input
    count: int = 0
    shrunk: Input | None = None


@dataclass
class Report:
    target: str
    inputs: int = 0
    seconds: float = 0.0
    check_seconds: float = 0.0
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)  # by (check, key)
    # The slowest check of one input: seconds (the least of 3 runs), check, index, input.
    slowest: tuple[float, str, int, Input] = (0.0, "", -1, "")
    prepare_seconds: float = 0.0
    corpus: int = 0


def _where(exc: BaseException) -> str:
    """Where ``exc`` was raised: the innermost frame, as ``file:line in function``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    frame = frames[-1]
    path = Path(frame.filename)
    try:
        name = str(path.resolve().relative_to(ROOT))
    except ValueError:
        parts = path.parts
        # A library's file: from its package folder on (json/decoder.py, urllib/parse.py).
        name = "/".join(parts[-2:])
    return f"{name}:{frame.lineno} in {frame.name}"


def classify(check: Check, x: Input) -> tuple[str, str | None, str]:
    """Run ``check`` on ``x``: its outcome, and for a finding its key and detail.

    The key of an undocumented exception is its type and where it was raised, so
    that two bugs that raise the same type are told apart.
    """
    try:
        return check(x), None, ""
    except Broken as exc:
        label = f"FAILED {exc.kind}"
        return label, label, exc.detail
    except Exception as exc:
        label = f"UNDOCUMENTED {type(exc).__name__}"
        where = _where(exc)
        detail = f"{type(exc).__name__}: {shorten(str(exc), 200)} (raised at {where})"
        return label, f"{label} at {where}", detail


# -- the watchdog -----------------------------------------------------------------------


class Watchdog:
    """Ends the run when one input takes longer than ``limit`` seconds.

    Strategy: there is no per-input time limit in one process, so a thread looks at
    the input being checked once a second. If it has run for ``limit`` seconds, the
    thread prints it and exits the process (status 3). An input stuck in C code
    holds the GIL and stops that thread too: for that case ``faulthandler`` -- armed
    by the first input, pushed back by the thread while inputs make progress,
    cancelled between targets -- dumps the stacks ("Timeout") and exits (status 1)
    ``limit + 5`` seconds after the last sign of progress. Arming costs about 0.2 ms,
    too much to do for every input.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._current: tuple[str, int, Input, float] | None = None
        self._progress = 0
        self._armed = False
        thread = threading.Thread(target=self._watch, name="fuzz-watchdog", daemon=True)
        thread.start()

    def _arm(self) -> None:
        faulthandler.dump_traceback_later(self.limit + 5, exit=True)
        self._armed = True

    def begin(self, target: str, index: int, x: Input) -> None:
        self._current = (target, index, x, time.monotonic())
        self._progress += 1
        if not self._armed:
            self._arm()

    def end(self) -> None:
        self._current = None

    def _watch(self) -> None:
        seen = -1
        idle = 0
        while True:
            time.sleep(1.0)
            current = self._current
            if current is None:
                # Between inputs for two ticks in a row: between targets (a pool being
                # drawn, a report printed), where nothing is timed.
                idle += 1
                if idle >= 2 and self._armed:
                    faulthandler.cancel_dump_traceback_later()
                    self._armed = False
                continue
            idle = 0
            if self._progress != seen:
                seen = self._progress
                self._arm()
            target, index, x, since = current
            if time.monotonic() - since > self.limit:
                print(
                    f"\nHANG: {target} input #{index} has run for over {self.limit:g} s: "
                    f"{shorten(x, 400)}",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(3)


# -- shrinking --------------------------------------------------------------------------

_T = TypeVar("_T")
_S = TypeVar("_S", str, bytes)


def _ddmin(
    units: list[_T], join: Callable[[list[_T]], Input], fails: Callable[[Input], bool], until: float
) -> list[_T]:
    """Delete chunks of ``units`` (halving their size) while the input still fails."""
    chunk = max(1, len(units) // 2)
    while time.monotonic() < until:
        i = 0
        removed = False
        while i < len(units) and time.monotonic() < until:
            candidate = units[:i] + units[i + chunk :]
            if candidate and fails(join(candidate)):
                units = candidate
                removed = True
            else:
                i += chunk
        if chunk == 1 and not removed:
            break
        if not removed:
            chunk = max(1, chunk // 2)
    return units


def _spans(x: _S, fails: Callable[[Input], bool], until: float) -> _S:
    """Delete any span of 8 down to 2 units, at any offset (ddmin's chunks are aligned)."""
    for size in range(8, 1, -1):
        i = 0
        while i + size <= len(x) and time.monotonic() < until:
            candidate = x[:i] + x[i + size :]
            if candidate and fails(candidate):
                x = candidate
            else:
                i += 1
    return x


def shrink(x: Input, fails: Callable[[Input], bool], seconds: float) -> Input:
    """A smaller input that still fails the same way (lines first, then characters)."""
    until = time.monotonic() + seconds
    if isinstance(x, bytes):
        x = b"".join(_ddmin([x[i : i + 1] for i in range(len(x))], b"".join, fails, until))
        return _spans(x, fails, until) if len(x) < 5000 else x
    if "\n" in x:
        x = "".join(_ddmin(x.splitlines(keepends=True), "".join, fails, until))
    x = "".join(_ddmin(list(x), "".join, fails, until))
    return _spans(x, fails, until) if len(x) < 5000 else x


def load_corpus(target: str) -> list[Input]:
    """The inputs of ``corpus.json`` for ``target``: checked first, on every run."""
    if not CORPUS.exists():
        return []
    entries = json.loads(CORPUS.read_text("utf-8")).get(target, [])
    return [bytes.fromhex(e["hex"]) if "hex" in e else str(e["text"]) for e in entries]


# -- running a target -------------------------------------------------------------------


def run_target(
    target: Target,
    *,
    seed: int,
    count: int | None,
    seconds: float | None,
    watchdog: Watchdog,
    shrink_seconds: float,
    slow_limit: float,
) -> Report:
    report = Report(target.name)
    started = time.perf_counter()
    target.prepare()
    report.prepare_seconds = time.perf_counter() - started
    checks = list(target.checks)
    corpus = load_corpus(target.name)
    report.corpus = len(corpus)
    report.outcomes = {name: Counter() for name, _ in checks}
    rng = random.Random(f"{seed}/{target.name}")
    start = time.perf_counter()
    next_progress = start + 15.0
    index = 0
    slowest: list[tuple[float, int, Input]] = []  # a heap of the 5 slowest (by slowest check)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        while (count is None or index < count) and (
            seconds is None or time.perf_counter() - start < seconds
        ):
            if index < len(corpus):
                x = corpus[index]
            else:
                x = target.generate(rng)
                while len(x) > target.max_input:  # mutations in a row can blow a text up
                    x = target.generate(rng)
            watchdog.begin(target.name, index, x)
            t0 = time.perf_counter()
            worst = 0.0
            for name, check in checks:
                t1 = time.perf_counter()
                outcome, key, detail = classify(check, x)
                worst = max(worst, time.perf_counter() - t1)
                report.outcomes[name][outcome] += 1
                if key is not None:
                    finding = report.findings.get((name, key))
                    if finding is None:
                        finding = report.findings[name, key] = Finding(name, key, detail, index, x)
                    finding.count += 1
            elapsed = time.perf_counter() - t0
            watchdog.end()
            report.check_seconds += elapsed
            if len(slowest) < 5 or worst > slowest[0][0]:
                heapq.heappush(slowest, (worst, index, x))
                if len(slowest) > 5:
                    heapq.heappop(slowest)
            index += 1
            if t0 > next_progress:
                next_progress = t0 + 15.0
                print(f"  ... {target.name}: {index} inputs", file=sys.stderr, flush=True)
        report.inputs = index
        report.seconds = time.perf_counter() - start
        report.slowest = _retime(slowest, checks, watchdog, target.name)
        took, name, index, x = report.slowest
        if took > slow_limit:
            key = f"SLOW input: {took:.2f} s (over {slow_limit:g} s)"
            detail = "the least of 3 runs"
            report.findings[name, key] = Finding(name, key, detail, index, x, 1, x)
        for finding in report.findings.values():
            if finding.shrunk is not None:
                continue
            check = dict(checks)[finding.check]

            def fails(candidate: Input, check: Check = check, key: str = finding.key) -> bool:
                watchdog.begin(target.name, -1, candidate)
                try:
                    return classify(check, candidate)[1] == key
                finally:
                    watchdog.end()

            finding.shrunk = shrink(finding.first_input, fails, shrink_seconds)
    return report


def _retime(
    slowest: list[tuple[float, int, Input]],
    checks: Sequence[tuple[str, Check]],
    watchdog: Watchdog,
    target: str,
) -> tuple[float, str, int, Input]:
    """The slowest check of the 5 slowest inputs, each check timed 3 more times (the least counts).

    A garbage collection, or another process, can stall any one input for a while:
    only an input that is slow every time is a slow input.
    """
    best: tuple[float, str, int, Input] = (0.0, "", -1, "")
    for _, index, x in slowest:
        for name, check in checks:
            took = math.inf
            for _ in range(3):
                watchdog.begin(target, index, x)
                t0 = time.perf_counter()
                classify(check, x)
                took = min(took, time.perf_counter() - t0)
                watchdog.end()
            if took > best[0]:
                best = (took, name, index, x)
    return best


# -- reporting --------------------------------------------------------------------------


def _outcomes(counter: Counter[str]) -> str:
    return ", ".join(f"{outcome} {n}" for outcome, n in counter.most_common())


def print_report(report: Report) -> list[str]:
    """Print one target's block; return its findings, one line each."""
    rate = report.inputs / report.seconds if report.seconds else 0.0
    print(
        f"== {report.target}: {report.inputs} inputs in {report.seconds:.1f} s "
        f"({rate:.0f} inputs/s; checks {report.check_seconds:.1f} s; "
        f"{report.corpus} from the corpus; seeds ready in {report.prepare_seconds:.1f} s)"
    )
    for name, counter in report.outcomes.items():
        print(f"   {name}: {_outcomes(counter)}")
    took, name, index, x = report.slowest
    print(
        f"   slowest: {took * 1000:.1f} ms in {name} (#{index}, length {len(x)}): {shorten(x, 90)}"
    )
    found = []
    for finding in report.findings.values():
        print(f"   {finding.key} in {finding.check}: {finding.count} input(s)")
        print(f"      {finding.detail}")
        print(f"      first (#{finding.first_index}): {shorten(finding.first_input, 300)}")
        print(f"      shrunk: {shorten(finding.shrunk, 600)}")
        found.append(f"{report.target}: {finding.key} in {finding.check}")
    sys.stdout.flush()
    return found


def _jsonable(x: Input | None) -> str | None:
    # repr() keeps bytes and lone surrogates readable, and eval() gives them back.
    return None if x is None else repr(x)


def write_findings(path: Path, reports: Sequence[Report], seed: int) -> None:
    data = {
        "seed": seed,
        "findings": [
            {
                "target": r.target,
                "check": f.check,
                "key": f.key,
                "detail": f.detail,
                "count": f.count,
                "first_index": f.first_index,
                "first_input_repr": _jsonable(f.first_input),
                "shrunk_repr": _jsonable(f.shrunk),
            }
            for r in reports
            for f in r.findings.values()
        ],
        "slowest": [
            {
                "target": r.target,
                "seconds": r.slowest[0],
                "check": r.slowest[1],
                "input_repr": _jsonable(r.slowest[3]),
            }
            for r in reports
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")


# -- the command line -------------------------------------------------------------------


RECORDER: Final = "recorder"
"""The recorder's frame decisions (``fuzz/recorder.py``): a stateful target of its own."""


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [*(t.name for t in TARGETS), RECORDER]
    parser = argparse.ArgumentParser(
        prog="python fuzz/run.py",
        description="Fuzz aai-proto's parsers: every input accepted or refused as documented.",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help=f"inputs per target (default {DEFAULT_COUNT}; {QUICK_COUNT} with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0, help="reproduces a run (default 0)")
    parser.add_argument(
        "--only",
        default=",".join(names),
        help=f"comma-separated targets (default all: {','.join(names)})",
    )
    parser.add_argument(
        "--seconds-per-target",
        type=float,
        default=None,
        help="stop each target after this long (alone: run each this long, any count)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_COUNT} inputs per target, a small pool"
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="Hypothesis examples per text strategy (more of the cheap ones; default 100, "
        "10 with --quick)",
    )
    parser.add_argument(
        "--slow-limit",
        type=float,
        default=1.0,
        help="an input that takes longer (seconds) is a finding (default 1)",
    )
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=60.0,
        help="an input still running after this long ends the run (default 60)",
    )
    parser.add_argument(
        "--shrink-seconds",
        type=float,
        default=None,
        help="time to shrink each finding's input (default 20, 3 with --quick)",
    )
    parser.add_argument("--findings-json", type=Path, default=None, help="also write them here")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only.split(",")) - set(names))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(names)}")
    if args.count is None and args.seconds_per_target is None:
        args.count = QUICK_COUNT if args.quick else DEFAULT_COUNT
    return args


def _backend() -> str:
    try:
        import msgspec
    except ImportError:
        return "pure json (msgspec not installed)"
    return f"msgspec {msgspec.__version__} first, then pure json"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    only = args.only.split(",")
    pool_size = args.pool_size if args.pool_size is not None else (10 if args.quick else 100)
    shrink_seconds = (
        args.shrink_seconds if args.shrink_seconds is not None else (3.0 if args.quick else 20.0)
    )
    limit = f"{args.count} inputs" if args.count is not None else "no count limit"
    if args.seconds_per_target is not None:
        limit += f", at most {args.seconds_per_target:g} s"
    print(
        f"aai-proto fuzz: seed {args.seed}, {limit} per target, pool {pool_size}; "
        f"Python {sys.version.split()[0]}; server messages: {_backend()}"
    )
    sys.stdout.flush()
    pool = Pool(pool_size, args.seed)
    watchdog = Watchdog(args.hang_seconds)
    reports: list[Report] = []
    findings: list[str] = []
    for target_class in TARGETS:
        if target_class.name not in only:
            continue
        report = run_target(
            target_class(pool),
            seed=args.seed,
            count=args.count,
            seconds=args.seconds_per_target,
            watchdog=watchdog,
            shrink_seconds=shrink_seconds,
            slow_limit=args.slow_limit,
        )
        reports.append(report)
        findings.extend(print_report(report))
    if RECORDER in only:
        findings.extend(_run_recorder(args.count or QUICK_COUNT, args.seed))
    if args.findings_json is not None:
        write_findings(args.findings_json, reports, args.seed)
    if findings:
        print(f"FINDINGS: {len(findings)}")
        for line in findings:
            print(f"  {line}")
        return 1
    print("no findings: every input was accepted or refused as documented")
    return 0


def _run_recorder(count: int, seed: int) -> list[str]:
    """Run ``fuzz/recorder.py``'s target; print its block; return its findings."""
    from recorder import run as run_recorder

    started = time.perf_counter()
    found: dict[str, str] = {}
    counts = run_recorder(count, seed, found=found)
    elapsed = time.perf_counter() - started
    print(f"== {RECORDER}: {count} inputs in {elapsed:.1f} s ({count / elapsed:.0f} inputs/s)")
    print(f"   FrameRelay: {_outcomes(Counter(counts))}")
    lines = []
    for name, example in found.items():
        print(f"   {name}: {counts[name]} input(s)\n      first: {shorten(example, 600)}")
        lines.append(f"{RECORDER}: {name}")
    sys.stdout.flush()
    return lines


def _main() -> int:
    try:
        return main()
    except Exception:
        # The fuzzer's own failure (a generator bug, say), not a finding.
        traceback.print_exc()
        print("the fuzzer itself failed (exit status 4)", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(_main())
