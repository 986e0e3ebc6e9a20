"""B3: end-to-end replay speed.

A 10-minute session (built here, in a temporary directory) is served by
``aai-replay serve`` in its own process on 127.0.0.1; this process streams the
session's 10 minutes of audio from a WAV file as fast as it can through
``aai_proto.trio`` (``stream_file(realtime=False)``), consumes every event in another
task, and ends with ``terminate()`` and the ``Termination``. The figure is audio
seconds per wall second (x real time), the median of the repetitions, beside the
baseline of real time itself (600 s of audio take 600 s when streamed live).
"""

from __future__ import annotations

import statistics
import time
import wave
from pathlib import Path
from typing import Any

import trio
from _common import (
    BYTES_PER_SECOND,
    SAMPLE_RATE,
    replay_server,
    row,
    temp_dir,
    tone,
    write_bench_session,
)

from aai_proto import StreamingParams, Termination, Turn
from aai_proto.trio import open_session


def write_wav(path: Path, seconds: float) -> None:
    """``seconds`` of tone as a mono 16-bit WAV, written a second at a time."""
    second = tone(BYTES_PER_SECOND)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        whole = int(seconds)
        for _ in range(whole):
            wav.writeframes(second)
        wav.writeframes(second[: int((seconds - whole) * BYTES_PER_SECOND) // 2 * 2])


async def stream_once(url: str, wav: Path) -> tuple[float, int, int]:
    """Stream ``wav`` as fast as possible; return (seconds, events, final turns)."""
    params = StreamingParams(sample_rate=SAMPLE_RATE, format_turns=True)
    events = 0
    finals = 0
    ended = False
    start = time.perf_counter()
    async with open_session(params, url=url) as session, trio.open_nursery() as nursery:

        async def send() -> None:
            await session.stream_file(wav, realtime=False)
            await session.terminate()

        nursery.start_soon(send)
        async for event in session:
            events += 1
            if isinstance(event, Turn) and event.end_of_turn and event.turn_is_formatted:
                finals += 1
            ended = isinstance(event, Termination)
    elapsed = time.perf_counter() - start
    if not ended:
        raise RuntimeError("the session did not end with Termination")
    return elapsed, events, finals


def run(*, quick: bool = False) -> dict[str, Any]:
    seconds = 20.0 if quick else 600.0
    repeats = 1 if quick else 9
    with temp_dir() as directory:
        session = write_bench_session(directory, seconds)
        wav = directory / "audio.wav"
        write_wav(wav, seconds)
        with replay_server(session) as (_, url):
            runs = [trio.run(stream_once, url, wav) for _ in range(repeats)]
    elapsed = statistics.median(r[0] for r in runs)
    _, events, finals = runs[0]
    speed = seconds / elapsed
    return {
        "id": "B3",
        "title": "end-to-end replay speed",
        "rows": [
            row(
                f"replay a {seconds / 60:g}-min session, as fast as possible",
                speed,
                "x real time",
                ">= 1000x real time",
                speed >= 1000,
                baseline=1.0,
                baseline_name=f"real time, {seconds:g} s",
            ),
            row("  wall time per session", elapsed, "s", "-", None),
        ],
        "notes": (
            f"aai_proto.trio client (this process) -> aai-replay serve (another process), "
            f"127.0.0.1; {events} events per session ({finals} final turns), "
            f"median of {repeats}"
        ),
    }
