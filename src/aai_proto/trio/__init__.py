"""Streaming sessions over a real WebSocket, with trio and trio-websocket.

The sans-IO :class:`aai_proto.Client` decides everything about the protocol; this
package only moves its messages and keeps time. Needs the ``trio`` extra::

    async with open_session(StreamingParams(sample_rate=16000), api_key=KEY) as session:
        await session.stream_file("speech.wav")
        await session.terminate()
        async for event in session:
            ...
"""

from ._audio import read_wav_format
from ._errors import ConnectError, ConnectTimeout, HandshakeRejected
from ._session import CLOSE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, Session, open_session

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "ConnectError",
    "ConnectTimeout",
    "HandshakeRejected",
    "Session",
    "open_session",
    "read_wav_format",
]
