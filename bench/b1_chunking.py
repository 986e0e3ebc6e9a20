"""B1: chunking throughput of ``Client.send_audio`` + ``data_to_send``.

What users pay for: every write of audio goes through the client, which cuts it into
50 ms frames (1600 bytes of 16 kHz pcm_s16le) and queues them; the caller drains the
queue with ``data_to_send()`` after each write. The baseline is the seed integration's
algorithm, the one a user would write by hand: append each write to a ``bytearray``,
then per chunk ``chunk = bytes(buf[:n]); buf = buf[n:]``.

Both run in the same process, interleaved (ours, baseline, ours, ...), on the same
writes; each figure is the median of the repetitions.

Each build of the client is measured in its own process: the installed one, and,
when that is the compiled build (``AAI_PROTO_COMPILE=1``, as ``nox -s bench``
installs it), the pure-Python source in ``src/`` beside it.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aai_proto._client
from aai_proto import Client, StreamingParams

CHUNK = 1600  # 50 ms of 16 kHz pcm_s16le
BEGIN = '{"type":"Begin","id":"bench","expires_at":1764000000}'
SIZES = [("320 B", 320), ("1.6 KB", 1600), ("32 KB", 32_000), ("3.2 MB", 3_200_000)]
SRC = Path(__file__).resolve().parents[1] / "src"


def build() -> str:
    """Which build of ``aai_proto.Client`` this process imports: compiled or pure."""
    path = aai_proto._client.__file__ or ""
    return "compiled" if path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)) else "pure"


def ours(writes: list[bytes]) -> int:
    """Stream the writes through the client; return the number of frames sent."""
    client = Client(StreamingParams(sample_rate=16000))
    client.receive_message(BEGIN)  # streaming, as after the server's Begin
    send_audio = client.send_audio
    data_to_send = client.data_to_send
    frames = 0
    for data in writes:
        send_audio(data)
        frames += len(data_to_send())
    return frames


def baseline(writes: list[bytes]) -> int:
    """The seed integration's chunking, written out."""
    buf = bytearray()
    n = CHUNK
    frames = 0
    for data in writes:
        buf += data
        out = []
        while len(buf) >= n:
            chunk = bytes(buf[:n])
            buf = buf[n:]
            out.append(chunk)
        frames += len(out)
    return frames


def _seconds(fn: Callable[[list[bytes]], int], writes: list[bytes], expect: int) -> float:
    start = time.perf_counter()
    frames = fn(writes)
    elapsed = time.perf_counter() - start
    assert frames == expect, (fn.__name__, frames, expect)
    return elapsed


def _plan(quick: bool) -> tuple[int, int]:
    """Repetitions, and bytes per repetition: enough that each takes milliseconds."""
    return (3, 320_000) if quick else (15, 16_000_000)


def measure(*, quick: bool = False) -> list[dict[str, Any]]:
    """The rows of the build this process imports (see :func:`build`)."""
    label = build()
    rows: list[dict[str, Any]] = []
    rates: dict[str, float] = {}
    repeats, total = _plan(quick)
    audio = bytes(range(256)) * (3_200_000 // 256 + 1)  # not all zeros: no shortcut
    for name, size in SIZES:
        size_total = max(size, total if size < 3_200_000 else (1 if quick else 5) * size)
        count = size_total // size
        writes = [audio[:size]] * count  # the same bytes object: no cache effects from fresh ones
        nbytes = size * count
        expect = nbytes // CHUNK
        ours_s: list[float] = []
        base_s: list[float] = []
        for _ in range(repeats):
            ours_s.append(_seconds(ours, writes, expect))
            base_s.append(_seconds(baseline, writes, expect))
        ours_rate = nbytes / statistics.median(ours_s) / 1e6
        base_rate = nbytes / statistics.median(base_s) / 1e6
        rates[name] = ours_rate
        ratio = ours_rate / base_rate
        rows.append(
            {
                "name": f"chunking, {name} writes [{label}]",
                "value": ours_rate,
                "unit": "MB/s",
                "baseline": base_rate,
                "baseline_name": "bytearray slicing",
                "ratio": ratio,
                "target": ">= 1.0x baseline",
                "met": ratio >= 1.0,
            }
        )
    big, mid = rates["3.2 MB"], rates["32 KB"]
    rows.append(
        {
            "name": f"linear cost: 3.2 MB rate vs 32 KB rate [{label}]",
            "value": big / mid,
            "unit": "x",
            "baseline": None,
            "baseline_name": None,
            "ratio": None,
            "target": ">= 0.5",
            "met": big / mid >= 0.5,
        }
    )
    rows.append(
        {
            "name": f"3.2 MB writes, absolute [{label}]",
            "value": big / 1000,
            "unit": "GB/s",
            "baseline": None,
            "baseline_name": None,
            "ratio": None,
            "target": ">= 1 GB/s",
            "met": big >= 1000,
        }
    )
    return rows


def _measure_in_process(quick: bool, *, pure: bool) -> tuple[str, list[dict[str, Any]]]:
    """Run :func:`measure` in a new process: the installed build, or the source in ``src/``."""
    env = dict(os.environ)
    if pure:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    argv = [sys.executable, __file__, "--measure", *(["--quick"] if quick else [])]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    found: dict[str, Any] = json.loads(out)
    return found["build"], found["rows"]


def run(*, quick: bool = False) -> dict[str, Any]:
    installed, rows = _measure_in_process(quick, pure=False)
    builds = [installed]
    if installed == "compiled" and SRC.is_dir():
        label, pure_rows = _measure_in_process(quick, pure=True)
        assert label == "pure", label
        builds.append(label)
        rows += pure_rows
    repeats, total = _plan(quick)
    return {
        "id": "B1",
        "title": "chunking throughput",
        "rows": rows,
        "notes": (
            f"16 kHz pcm_s16le, 1600-byte frames; {total / 1e6:g} MB per repetition "
            f"(3.2 MB writes: {1 if quick else 5}), median of {repeats}, "
            "data_to_send() after every write, client in STREAMING state; builds: "
            + ", ".join(builds)
            + ("" if installed == "compiled" else " (nox -s bench installs the compiled build)")
        ),
    }


if __name__ == "__main__":
    if sys.argv[1:2] != ["--measure"]:
        raise SystemExit("usage: b1_chunking.py --measure [--quick]  (or run bench/run.py)")
    print(json.dumps({"build": build(), "rows": measure(quick="--quick" in sys.argv)}))
