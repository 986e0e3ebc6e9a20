"""A look at a request's head before trio-websocket takes the connection.

Both the replay server and the recorder take plain HTTP on the WebSocket port for
one request: ``GET /v3/token`` (temporary tokens). :func:`read_head` reads far
enough to tell; :class:`Prefixed` gives trio-websocket a stream that returns the
bytes read ahead first, so an upgrade request is served as if nothing had looked.
"""

from __future__ import annotations

from typing import Final, final

import h11
import trio

from aai_proto import TOKEN_PATH

__all__ = [
    "BAD_REQUEST",
    "MAX_HEAD",
    "Prefixed",
    "is_token_request",
    "parse_head",
    "read_head",
    "split_token_request",
]

MAX_HEAD: Final = 1 << 16
"""The longest request head taken, in bytes."""
_TOKEN_LINE: Final = b"GET " + TOKEN_PATH.encode() + b"?"
_READ_BYTES: Final = 1 << 16


BAD_REQUEST: Final = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
"""The answer to a request head that is no HTTP/1.1 request."""


def parse_head(head: bytes) -> tuple[h11.Connection, h11.Request] | None:
    """The request of a head read whole, with the connection that answers it; None if bad."""
    http = h11.Connection(h11.SERVER)
    try:
        http.receive_data(head)
        event = http.next_event()
    except h11.RemoteProtocolError:
        return None
    return (http, event) if isinstance(event, h11.Request) else None


def is_token_request(head: bytes) -> bool:
    """Whether the bytes a connection began with are a token request."""
    return head.startswith(_TOKEN_LINE)


async def read_head(stream: trio.abc.Stream, *, whole: bool = False) -> bytes:
    """The first bytes of ``stream``: enough to tell a token request, or (``whole``)
    the request's head up to its blank line (at most :data:`MAX_HEAD` bytes)."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
        if not whole and len(head) >= len(_TOKEN_LINE):
            break
        data = await stream.receive_some(_READ_BYTES)
        if not data:
            break
        head += data
    return head


@final
class Prefixed(trio.abc.Stream):
    """``stream``, with ``ahead`` (bytes already read from it) returned first."""

    def __init__(self, stream: trio.abc.Stream, ahead: bytes) -> None:
        self.stream = stream
        self._ahead = ahead

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._ahead:
            size = len(self._ahead) if max_bytes is None else max_bytes
            data, self._ahead = self._ahead[:size], self._ahead[size:]
            await trio.lowlevel.checkpoint()
            return data
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def split_token_request(stream: trio.abc.Stream) -> tuple[bytes | None, trio.abc.Stream]:
    """``(head, stream)`` for a token request (its whole head), else ``(None, stream to serve)``.

    The stream to serve returns the bytes read ahead first.
    """
    head = await read_head(stream)
    if is_token_request(head):
        return await read_head(Prefixed(stream, head), whole=True), stream
    return None, Prefixed(stream, head)
