"""Audio sources for the trio adapter: the shared ones, paced by trio's clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from aai_proto import AudioFormat
from aai_proto._adapter.sources import (
    RAW_SUFFIXES,
    Chunk,
    Chunks,
    check_format,
    file_chunks,
    read_wav_format,
)
from aai_proto._adapter.sources import pace as _pace

__all__ = [
    "RAW_SUFFIXES",
    "Chunk",
    "Chunks",
    "check_format",
    "file_chunks",
    "pace",
    "read_wav_format",
]


async def pace(
    send: Callable[[Chunk], Awaitable[None]],
    source: Chunks,
    fmt: AudioFormat,
    *,
    chunk_ms: int,
    realtime: bool,
) -> None:
    """:func:`aai_proto._adapter.sources.pace` on trio's clock (virtual in tests)."""
    await _pace(
        send,
        source,
        fmt,
        chunk_ms=chunk_ms,
        realtime=realtime,
        now=trio.current_time,
        sleep_until=trio.sleep_until,
    )
