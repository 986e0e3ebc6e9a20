"""Streaming sessions over a real WebSocket, with asyncio and ``websockets``.

The same API and behaviour as :mod:`aai_proto.trio` (see the README); the
sans-IO :class:`aai_proto.Client` decides everything about the protocol. Needs
the ``asyncio`` extra::

    async with open_session(StreamingParams(sample_rate=16000), api_key=KEY) as session:
        await session.stream_file("speech.wav")
        await session.terminate()
        async for event in session:
            ...
"""

from aai_proto._adapter.errors import ConnectError, ConnectTimeout, HandshakeRejected
from aai_proto._adapter.sources import read_wav_format

from ._session import (
    CLOSE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    BrokenSessionError,
    ClosedSessionError,
    Session,
    open_session,
)

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "BrokenSessionError",
    "ClosedSessionError",
    "ConnectError",
    "ConnectTimeout",
    "HandshakeRejected",
    "Session",
    "open_session",
    "read_wav_format",
]
