"""Streaming sessions over a real WebSocket, with trio and trio-websocket.

The sans-IO :class:`aai_proto.Client` decides everything about the protocol; this
package only moves its messages and keeps time. Needs the ``trio`` extra::

    async with open_session(StreamingParams(sample_rate=16000), api_key=KEY) as session:
        await session.stream_file("speech.wav")
        await session.terminate()
        async for event in session:
            ...
"""

from typing import TYPE_CHECKING, NoReturn

from ._errors import ConnectError, ConnectTimeout, HandshakeRejected

try:
    from ._audio import read_wav_format
    from ._session import CLOSE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, Session, open_session
except ModuleNotFoundError as _exc:
    # Without the extra the package still imports, so that the ``aai-proto`` command
    # (``aai_proto.trio._cli``, installed with the core) can say what to install.
    if _exc.name not in ("trio", "trio_websocket"):
        raise
    _MISSING_EXTRA = 'aai_proto.trio needs trio and trio-websocket: pip install "aai-proto[trio]"'

    if not TYPE_CHECKING:

        def __getattr__(name: str) -> NoReturn:
            if name in __all__:
                raise ModuleNotFoundError(_MISSING_EXTRA, name="trio")
            raise AttributeError(f"module 'aai_proto.trio' has no attribute {name!r}")


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
