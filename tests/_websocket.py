"""WebSocket peers for tests: a trio-websocket client, and a raw one built by hand.

The raw peer writes and reads frames byte by byte (RFC 6455, section 5), with no
WebSocket library under it, so a test can send what no library would (a frame with
reserved bits, a Ping after a close) and see exactly what the other side wrote.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final, final
from urllib.parse import urlsplit

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream


@asynccontextmanager
async def connect(
    url: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> AsyncIterator[WebSocketConnection]:
    """A client connection whose socket is closed at the end, whoever closed first.

    (trio-websocket leaves a client's socket open when the server closes first.)
    A refused upgrade leaves as an exception group holding ``ConnectionRejected``.
    """
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    tcp = await trio.open_tcp_stream(parts.hostname, parts.port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, tcp, parts.netloc, target, extra_headers=list(headers)
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(5):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(tcp)


# -- the raw peer ---------------------------------------------------------------------

TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA

KEY: Final = "dGhlIHNhbXBsZSBub25jZQ=="
"""The ``Sec-WebSocket-Key`` of RFC 6455's own example."""
_GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` that answers ``key``."""
    return base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()


def upgrade_request(target: str, host: str = "127.0.0.1") -> bytes:
    """A client's upgrade request for ``target`` (path and query)."""
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def frame(
    opcode: int, payload: bytes = b"", *, mask: bool, fin: bool = True, rsv: int = 0
) -> bytes:
    """One frame: a client's frames are masked (``mask=True``), a server's are not.

    ``rsv`` is the three reserved bits (0 to 7), which no extension here allows.
    """
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0xF
    length = len(payload)
    flag = 0x80 if mask else 0
    if length < 126:
        head = bytes([first, flag | length])
    elif length < 1 << 16:
        head = bytes([first, flag | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, flag | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a close frame: the code, then the reason in UTF-8."""
    return struct.pack("!H", code) + reason.encode()


def parse_close(payload: bytes) -> tuple[int, str]:
    """A close frame's code and reason (1005 for an empty payload)."""
    if not payload:
        return 1005, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


@final
class FrameReader:
    """Reads whole frames from a stream; unmasks the masked ones."""

    def __init__(self, stream: trio.abc.ReceiveStream, buffered: bytes = b"") -> None:
        self.stream = stream
        self._buffer = bytearray(buffered)

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            data = await self.stream.receive_some()
            if not data:
                return False
            self._buffer += data
        return True

    async def head(self) -> bytes | None:
        """An HTTP head, up to and with its blank line (``None`` at the end of the stream)."""
        while b"\r\n\r\n" not in self._buffer:
            data = await self.stream.receive_some()
            if not data:
                return None
            self._buffer += data
        end = self._buffer.index(b"\r\n\r\n") + 4
        head = bytes(self._buffer[:end])
        del self._buffer[:end]
        return head

    async def frame(self) -> tuple[int, bytes] | None:
        """The next frame's opcode and payload (``None`` at the end of the stream)."""
        if not await self._fill(2):
            return None
        opcode, second = self._buffer[0] & 0xF, self._buffer[1]
        length, offset = second & 0x7F, 2
        if length == 126:
            if not await self._fill(4):
                return None
            length, offset = struct.unpack("!H", self._buffer[2:4])[0], 4
        elif length == 127:
            if not await self._fill(10):
                return None
            length, offset = struct.unpack("!Q", self._buffer[2:10])[0], 10
        key = b""
        if second & 0x80:
            if not await self._fill(offset + 4):
                return None
            key = bytes(self._buffer[offset : offset + 4])
            offset += 4
        if not await self._fill(offset + length):
            return None
        payload = bytes(self._buffer[offset : offset + length])
        del self._buffer[: offset + length]
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return opcode, payload

    async def until(self, opcode: int) -> tuple[list[tuple[int, bytes]], bytes | None]:
        """Every frame up to the first with ``opcode``: (those before it, its payload or None)."""
        before: list[tuple[int, bytes]] = []
        while (got := await self.frame()) is not None:
            if got[0] == opcode:
                return before, got[1]
            before.append(got)
        return before, None


@asynccontextmanager
async def raw_client(
    port: int, target: str, *, receive_buffer: int | None = None
) -> AsyncIterator[tuple[trio.SocketStream, FrameReader]]:
    """A raw client, upgraded to ``target`` on 127.0.0.1:``port``; closes its socket at the end.

    ``receive_buffer`` sets the socket's ``SO_RCVBUF`` before it connects (which
    also turns off the kernel's growing of it): a client that stops reading then
    stops the server's writes sooner.
    """
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    try:
        await sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    stream = trio.SocketStream(sock)
    try:
        await stream.send_all(upgrade_request(target))
        reader = FrameReader(stream)
        head = await reader.head()
        assert head is not None, "the server hung up during the upgrade"
        assert head.startswith(b"HTTP/1.1 101 "), head
        yield stream, reader
    finally:
        await trio.aclose_forcefully(stream)


async def accept_upgrade(stream: trio.abc.Stream) -> FrameReader:
    """Answer a client's upgrade request on ``stream`` (the server side of a raw peer)."""
    reader = FrameReader(stream)
    head = await reader.head()
    assert head is not None, "the client hung up before its request"
    key = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    await stream.send_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )
    return reader
