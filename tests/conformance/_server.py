"""A scripted WebSocket server that runs under trio and asyncio alike.

The conformance suite drives both adapters against the same servers, so the
server cannot be written with either adapter's library. It is anyio (the same
code on both event loops) over a real 127.0.0.1 socket, with wsproto -- sans-IO,
like the core -- doing the WebSocket framing. Each test scripts what the server
does with a handler that takes a :class:`Peer`.
"""

from __future__ import annotations

import contextlib
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import anyio.abc
import attrs
from anyio.abc import SocketAttribute
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

import aai_proto as aai

__all__ = ["BEGIN", "TERMINATE", "ClientClosed", "Handler", "Peer", "Server", "dump", "serve"]

BEGIN = aai.Begin(id="session-1", expires_at=1759796682)
TERMINATE = '{"type":"Terminate"}'


def dump(event: aai.ServerEvent) -> str:
    """The server message that carries ``event``."""
    return aai.dump_server_message(event)


class ClientClosed(Exception):
    """The client's close frame came (``code``, ``reason``), or its TCP connection ended."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


@attrs.define(eq=False)
class Peer:
    """The server's end of one connection, and what it saw of the client."""

    stream: anyio.abc.SocketStream
    ws: WSConnection = attrs.Factory(lambda: WSConnection(ConnectionType.SERVER))
    request: Request | None = None
    received: list[str | bytes] = attrs.Factory(list)
    """Every whole message the client sent, in order."""
    close: ClientClosed | None = None
    """How the client closed, once it did."""
    closed: anyio.Event = attrs.Factory(anyio.Event)
    _events: deque[Event] = attrs.Factory(deque)
    _parts: list[str | bytes] = attrs.Factory(list)

    # -- the upgrade --------------------------------------------------------------

    async def accept(self, *, begin: bool = True) -> None:
        """Read the upgrade request and accept it; send ``Begin`` unless told not to."""
        await self.read_request()
        await self._send(AcceptConnection())
        if begin:
            await self.send_message(dump(BEGIN))

    async def read_request(self) -> Request:
        """Read the upgrade request and keep it."""
        event = await self._next_event()
        assert isinstance(event, Request), event
        self.request = event
        return event

    async def reject(self, status: int, body: bytes = b"") -> None:
        """Refuse the upgrade with an HTTP ``status`` and ``body``, then hang up."""
        await self.read_request()
        headers = [(b"content-length", str(len(body)).encode())]
        await self._send(RejectConnection(status_code=status, headers=headers, has_body=True))
        await self._send(RejectData(data=body, body_finished=True))
        await self.stream.aclose()

    def header(self, name: str) -> str:
        """The value of the request's header ``name`` (lower case)."""
        assert self.request is not None
        return dict(self.request.extra_headers)[name.encode()].decode()

    # -- messages -----------------------------------------------------------------

    async def send_message(self, message: str | bytes) -> None:
        """Send one text or binary message."""
        if isinstance(message, str):
            await self._send(TextMessage(data=message))
        else:
            await self._send(BytesMessage(data=message))

    async def send_raw(self, data: bytes) -> None:
        """Write ``data`` to the socket as it is, framed or not."""
        await self.stream.send(data)

    async def get_message(self) -> str | bytes:
        """The client's next whole message; ``ClientClosed`` when it closes instead.

        A Ping is answered; the client's close is answered and recorded.
        """
        while True:
            event = await self._next_event()
            if isinstance(event, TextMessage | BytesMessage):
                data = event.data
                self._parts.append(data if isinstance(data, str) else bytes(data))
                if event.message_finished:
                    message: str | bytes = (
                        "".join(p for p in self._parts if isinstance(p, str))
                        if isinstance(event, TextMessage)
                        else b"".join(p for p in self._parts if isinstance(p, bytes))
                    )
                    self._parts.clear()
                    self.received.append(message)
                    return message
            elif isinstance(event, Ping):
                await self._send(event.response())
            elif isinstance(event, CloseConnection):
                self.close = ClientClosed(event.code, event.reason or "")
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    await self._send(event.response())
                self.closed.set()
                raise self.close

    async def receive_until_terminate(self) -> None:
        """Read until the client's ``Terminate``."""
        while True:
            message = await self.get_message()
            if isinstance(message, str) and message == TERMINATE:
                return

    async def wait_close(self) -> None:
        """Read (and record) until the client closes; answer its close; hang up."""
        try:
            while True:
                await self.get_message()
        except ClientClosed:
            pass
        finally:
            await self.stream.aclose()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``, wait for the client's answer, hang up."""
        await self._send(CloseConnection(code=code, reason=reason))
        await self.wait_close()

    async def abort(self) -> None:
        """Hang up with no close frame."""
        await self.stream.aclose()

    async def answer_close(self, *, ping: bytes | None = None, hang_up: bool = True) -> None:
        """Wait for the client's close frame and answer it: a Ping first, if ``ping``.

        A Ping after the client's close is legal, if rude (the client is closing).
        Messages before the close are skipped, unrecorded. Without ``hang_up`` the
        server keeps the TCP connection open after its close, until the test ends.
        """
        event = await self._next_event()
        while not isinstance(event, CloseConnection):
            event = await self._next_event()
        self.close = ClientClosed(event.code, event.reason or "")
        if ping is not None:
            assert len(ping) < 126
            await self.send_raw(bytes([0x89, len(ping)]) + ping)  # wsproto won't: we are closing
        await self._send(event.response())
        self.closed.set()
        if hang_up:
            await self.stream.aclose()
        else:
            await anyio.sleep_forever()

    # -- the socket ---------------------------------------------------------------

    async def _send(self, event: Event) -> None:
        await self.stream.send(self.ws.send(event))

    async def _next_event(self) -> Event:
        while not self._events:
            try:
                data: bytes | None = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                data = None
            self.ws.receive_data(data)
            self._events.extend(self.ws.events())
            if data is None and not self._events:
                self.close = ClientClosed(None, "the TCP connection ended")
                self.closed.set()
                raise self.close
        return self._events.popleft()


Handler = Callable[[Peer], Awaitable[None]]

"""A scripted server: what it does with one connection."""


def _read_only_when_asked(stream: anyio.abc.SocketStream) -> None:
    """Make the server read from the socket only inside ``receive()``, on both loops.

    On asyncio, anyio's stream reads into memory from the moment it is accepted
    until a ``receive()`` first has to wait (on Python 3.12 and later the client's
    request is often there before that, so it never has to): a handler that then
    reads nothing would still drain the client's sends, and no send would ever
    wait for room. trio's reads only when asked. So pause the asyncio transport's
    reading (anyio resumes it inside each ``receive()`` that waits).
    """
    transport = getattr(stream, "_transport", None)  # anyio's asyncio backend only
    if transport is not None and transport.is_reading():
        transport.pause_reading()


@attrs.define
class Server:
    """A running scripted server: its URL, and a :class:`Peer` per connection so far."""

    url: str
    peers: list[Peer] = attrs.Factory(list)

    @property
    def peer(self) -> Peer:
        """The one connection (the test expects exactly one)."""
        assert len(self.peers) == 1, self.peers
        return self.peers[0]


@contextlib.asynccontextmanager
async def serve(handler: Handler, *, receive_buffer: int | None = None) -> AsyncIterator[Server]:
    """Serve ``handler`` on 127.0.0.1 (a free port) until the block ends.

    Every connection gets its own :class:`Peer`; what the handler raises fails
    the test. ``receive_buffer`` shrinks the server's socket receive buffer (bytes),
    so that a client writing to a server that does not read soon has to wait.
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    raw = listener.extra(SocketAttribute.raw_socket)
    if receive_buffer is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    server = Server(f"ws://127.0.0.1:{listener.extra(SocketAttribute.local_port)}/v3/ws")

    async def one(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            _read_only_when_asked(stream)
            peer = Peer(stream)
            server.peers.append(peer)
            # the client went first if ClientClosed: what it did is the test's to check
            with contextlib.suppress(ClientClosed):
                await handler(peer)

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, one)
        yield server
        group.cancel_scope.cancel()
