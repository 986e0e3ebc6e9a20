"""A client process for B6: stream a WAV file as fast as the server takes it, measure CPU time.

``python bench/_b6_client.py KIND URL WAV`` with KIND ``trio``, ``asyncio`` or ``sdk``
(the official SDK's sync client). Imports come first; the figure is this
process's CPU time (every thread) from the connect to the end of the session,
every event consumed. Prints one JSON line: ``{"cpu_s", "wall_s", "events"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import warnings
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio
from assemblyai.streaming.v3 import (
    StreamingClient,
    StreamingClientOptions,
    StreamingEvents,
    StreamingParameters,
)
from b3_replay import stream_once

from aai_proto import StreamingParams, Termination
from aai_proto.asyncio import open_session as open_asyncio_session

PARAMS = StreamingParams(sample_rate=16000, format_turns=True)
# The SDK uses websockets APIs that websockets 17 deprecates.
warnings.simplefilter("ignore", DeprecationWarning)


async def with_trio(url: str, wav: Path) -> int:
    _, events, _ = await stream_once(url, wav)  # B3's client, as it is
    return events


async def with_asyncio(url: str, wav: Path) -> int:
    events = 0
    ended = False
    async with open_asyncio_session(PARAMS, url=url) as session:

        async def send() -> None:
            await session.stream_file(wav, realtime=False)
            await session.terminate()

        sender = asyncio.ensure_future(send())
        async for event in session:
            events += 1
            ended = isinstance(event, Termination)
        await sender
    if not ended:
        raise SystemExit("the session did not end with Termination")
    return events


def frames(wav: Path) -> Iterator[bytes]:
    with wave.open(str(wav), "rb") as file:
        while data := file.readframes(800):  # 50 ms, as the SDK's examples send
            yield data


def with_sdk(url: str, wav: Path) -> int:
    api_host = url.removesuffix("/v3/ws")
    client = StreamingClient(StreamingClientOptions(api_key="bench-key", api_host=api_host))
    counted: list[Any] = []
    for event in (StreamingEvents.Begin, StreamingEvents.Turn, StreamingEvents.Termination):
        client.on(event, lambda _client, message: counted.append(message))
    fields: dict[str, Any] = {"sample_rate": 16000, "format_turns": True}
    client.connect(StreamingParameters(**fields))  # (its optional fields look required to mypy)
    client.stream(frames(wav))
    client.disconnect(terminate=True)
    if not counted or type(counted[-1]).__name__ != "TerminationEvent":
        raise SystemExit("the SDK's session did not end with Termination")
    return len(counted)


def main(kind: str, url: str, wav: Path) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    if kind == "trio":
        events = trio.run(with_trio, url, wav)
    elif kind == "asyncio":
        events = asyncio.run(with_asyncio(url, wav))
    elif kind == "sdk":
        events = with_sdk(url, wav)
    else:
        raise SystemExit(f"unknown client {kind!r}")
    print(
        json.dumps(
            {
                "cpu_s": time.process_time() - cpu,
                "wall_s": time.perf_counter() - wall,
                "events": events,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
