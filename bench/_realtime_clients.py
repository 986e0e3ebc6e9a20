"""A client process for B4: N clients streaming in real time, 50 ms frames, to one server.

``python bench/_realtime_clients.py URL N SECONDS`` opens N sessions (started over
the first second, as users arrive), each streaming SECONDS of tone through
``aai_proto.trio`` paced in real time and consuming every event, then terminating.
Prints one JSON line: sessions that ended with ``Termination``, and this process's
own worst pacing slip (how late a frame left, at most), so a starved client side
can be told from a late server.
"""

from __future__ import annotations

import json
import sys

import trio
from _common import BYTES_PER_SECOND, FRAME_BYTES, SAMPLE_RATE, tone

from aai_proto import StreamingParams, Termination
from aai_proto.trio import open_session


async def client(url: str, seconds: float, delay: float, results: list[tuple[bool, float]]) -> None:
    await trio.sleep(delay)
    params = StreamingParams(sample_rate=SAMPLE_RATE, format_turns=True)
    frame = tone(FRAME_BYTES)
    frames = int(seconds * BYTES_PER_SECOND) // FRAME_BYTES
    ended = False
    slip = 0.0
    async with open_session(params, url=url) as session, trio.open_nursery() as nursery:

        async def send() -> None:
            nonlocal slip
            start = trio.current_time()
            for k in range(frames):
                due = start + k * 0.05
                await trio.sleep_until(due)
                slip = max(slip, trio.current_time() - due)
                await session.send_audio(frame)
            await session.terminate()

        nursery.start_soon(send)
        async for event in session:
            ended = isinstance(event, Termination)
    results.append((ended, slip))


async def main(url: str, n: int, seconds: float) -> None:
    results: list[tuple[bool, float]] = []
    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(client, url, seconds, i / n, results)
    print(
        json.dumps(
            {
                "ended": sum(ended for ended, _ in results),
                "client_slip_max": max((slip for _, slip in results), default=0.0),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
