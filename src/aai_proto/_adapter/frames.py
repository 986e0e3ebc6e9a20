"""WebSocket client frames, written here so that a batch of messages leaves in one write.

Strategy: RFC 6455 section 5.2, for what a client sends and nothing more: each
message is one final frame (FIN set, no extension bits), text for ``str`` and
binary for bytes, masked with a fresh random key, its length in the shortest of
the three encodings. Masking is a byte-wise XOR with a 4-byte key: by
``websockets``' compiled ``apply_mask`` where it is installed (it is the asyncio
adapter's library; about ten times faster), else with ``bytes.translate`` on each
of the four byte positions (one 256-byte table per key byte), which keeps the
per-frame work in C too. The bytes are the same either way. An adapter uses this only
where its WebSocket library would write the same frames one call at a time; the
library still writes everything else (the handshake, pings, pongs, closes).
Not part of the sans-IO core, which never imports it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Final

__all__ = ["BATCH_BYTES", "batches", "encode_client_frames"]

BATCH_BYTES: Final = 1 << 16
"""Payload bytes per write, at most (a frame longer than that goes alone): about two
seconds of 16 kHz audio, few enough that a send stops soon after the connection closes."""

_BASE: Final = int.from_bytes(bytes(range(256)), "big")
_XOR: Final = tuple(
    (_BASE ^ int.from_bytes(bytes((key,)) * 256, "big")).to_bytes(256, "big") for key in range(256)
)
"""``_XOR[k]`` maps each byte ``b`` to ``b ^ k`` (a ``bytes.translate`` table)."""
_LEN16: Final = struct.Struct("!BBH")
_LEN64: Final = struct.Struct("!BBQ")
_TEXT: Final = 0x81  # FIN, opcode 1
_BINARY: Final = 0x82  # FIN, opcode 2
_MASKED: Final = 0x80


def _translate_mask(payload: bytes, key: bytes) -> bytes | bytearray:
    """``payload`` XOR ``key`` repeated, four ``bytes.translate`` calls (no loop per byte)."""
    table = _XOR
    masked = bytearray(payload)
    masked[0::4] = payload[0::4].translate(table[key[0]])
    masked[1::4] = payload[1::4].translate(table[key[1]])
    masked[2::4] = payload[2::4].translate(table[key[2]])
    masked[3::4] = payload[3::4].translate(table[key[3]])
    return masked


_mask: Callable[[bytes, bytes], bytes | bytearray]
try:  # websockets' C extension, if built (its pure-Python apply_mask is slower than ours)
    from websockets.speedups import apply_mask as _compiled_mask
except ImportError:
    _mask = _translate_mask
else:
    _mask = _compiled_mask


def encode_client_frames(messages: Sequence[bytes | str]) -> bytes:
    """The bytes of ``messages`` as masked client frames, one unfragmented frame each."""
    keys = os.urandom(4 * len(messages))
    parts: list[bytes | bytearray] = []
    append = parts.append
    mask = _mask
    for index, message in enumerate(messages):
        if isinstance(message, str):
            payload = message.encode()
            first = _TEXT
        else:
            payload = message
            first = _BINARY
        size = len(payload)
        if size < 126:
            append(bytes((first, _MASKED | size)))
        elif size < 1 << 16:
            append(_LEN16.pack(first, _MASKED | 126, size))
        else:
            append(_LEN64.pack(first, _MASKED | 127, size))
        key = keys[4 * index : 4 * index + 4]
        append(key)
        append(mask(payload, key))
    return b"".join(parts)


def batches(messages: list[bytes | str], limit: int = BATCH_BYTES) -> Iterator[list[bytes | str]]:
    """``messages`` in order, in runs of at most ``limit`` payload bytes (at least one each)."""
    start, count = 0, len(messages)
    while start < count:
        end = start + 1
        size = len(messages[start])
        while end < count and size + len(messages[end]) <= limit:
            size += len(messages[end])
            end += 1
        yield messages[start:end]
        start = end
