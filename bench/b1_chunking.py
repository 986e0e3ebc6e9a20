"""B1: chunking throughput of ``Client.send_audio`` + ``data_to_send``.

What users pay for: every write of audio goes through the client, which cuts it into
50 ms frames (1600 bytes of 16 kHz pcm_s16le) and queues them; the caller drains the
queue with ``data_to_send()`` after each write. The baseline is the seed integration's
algorithm, the one a user would write by hand: append each write to a ``bytearray``,
then per chunk ``chunk = bytes(buf[:n]); buf = buf[n:]``.

Both run in the same process, interleaved (ours, baseline, ours, ...), on the same
writes; each figure is the median of the repetitions. At 320-byte writes the
figure is reported, not a target: there the cost is CPython's call overhead (see
the README), and even at ~0.8x the inline loop a client cuts a session's audio
some 40,000 times faster than real time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from aai_proto import Client, StreamingParams

CHUNK = 1600  # 50 ms of 16 kHz pcm_s16le
BEGIN = '{"type":"Begin","id":"bench","expires_at":1764000000}'
SIZES = [("320 B", 320), ("1.6 KB", 1600), ("32 KB", 32_000), ("3.2 MB", 3_200_000)]
REPORTED = {"320 B"}  # sizes whose figure is reported, not held to the target


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
    """One row per write size, then the linear-cost and absolute rows."""
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
        reported = name in REPORTED
        rows.append(
            {
                "name": f"chunking, {name} writes",
                "value": ours_rate,
                "unit": "MB/s",
                "baseline": base_rate,
                "baseline_name": "bytearray slicing",
                "ratio": ratio,
                "target": "reported" if reported else ">= 1.0x baseline",
                "met": None if reported else ratio >= 1.0,
            }
        )
    big, mid = rates["3.2 MB"], rates["32 KB"]
    rows.append(
        {
            "name": "linear cost: 3.2 MB rate vs 32 KB rate",
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
            "name": "3.2 MB writes, absolute",
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


def run(*, quick: bool = False) -> dict[str, Any]:
    repeats, total = _plan(quick)
    return {
        "id": "B1",
        "title": "chunking throughput",
        "rows": measure(quick=quick),
        "notes": (
            f"16 kHz pcm_s16le, 1600-byte frames; {total / 1e6:g} MB per repetition "
            f"(3.2 MB writes: {1 if quick else 5}), median of {repeats}, "
            "data_to_send() after every write, client in STREAMING state"
        ),
    }
