"""Opening the WebSocket: the TCP (and TLS) connection, then the upgrade.

Strategy: trio-websocket runs the connection's reader task in a nursery the caller
gives it, and lets that task's exceptions escape into it (a rejected upgrade is
raised there, not by the call that waits for the handshake). We give it a
``_ReaderGuard`` instead of a nursery: it runs the task in the session's nursery,
keeps what the task raised, and cancels the handshake the moment the task ends, so
a server that hangs up mid-handshake fails the connect at once, not at the timeout.

The guard also covers a gap of trio-websocket's (0.12.2, on wsproto 1.3): once
our close frame went out, it still answers a server's Ping with a Pong, which
wsproto refuses in state ``LOCAL_CLOSING`` (``LocalProtocolError``). That ends
the reader task, so nothing reads the server's answering close and
``WebSocketConnection.aclose()`` waits for ever. The Pong is not owed (the server
is about to read our close), and the task cannot be run again (a client's reader
starts by sending its upgrade request). So the guard reads on in its place,
discarding, until the server closes the TCP connection -- what a client waits for
at the end of a closing handshake -- and says, with ``reading_over``, that the
connection reads no more: the session then stops waiting for ``aclose()``.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import cast, final

import trio
import trio_websocket
import wsproto.utilities

from aai_proto._adapter.errors import HANG_UP, describe_connect_error
from aai_proto._adapter.target import Target

from ._errors import ConnectError, HandshakeRejected

__all__ = ["Target", "handshake", "open_stream"]

_DRAIN_BYTES = 1 << 16


async def open_stream(target: Target) -> trio.abc.Stream:
    """Open the TCP connection, with TLS for ``wss://``; raise ``ConnectError`` if it fails."""
    try:
        if not target.secure:
            return await trio.open_tcp_stream(target.host, target.port)
        stream = await trio.open_ssl_over_tcp_stream(
            target.host,
            target.port,
            ssl_context=ssl.create_default_context(),
            https_compatible=True,
        )
    except OSError as exc:
        raise ConnectError(
            target.shown, describe_connect_error(exc, target.host, target.port)
        ) from exc
    # The TLS handshake now, not with the upgrade's first write, where trio-websocket
    # would turn its failure into a dropped connection and lose why.
    try:
        await stream.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(stream)
        cause = exc.__cause__
        reason = (
            describe_connect_error(cause, target.host, target.port)
            if isinstance(cause, OSError)
            else HANG_UP
        )
        raise ConnectError(target.shown, reason) from exc
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


@final
class _ReaderGuard:
    """What trio-websocket takes for its nursery; see the module's strategy note."""

    def __init__(
        self, nursery: trio.Nursery, handshake_scope: trio.CancelScope, stream: trio.abc.Stream
    ) -> None:
        self._nursery = nursery
        self._handshake_scope = handshake_scope
        self._stream = stream
        self.error: Exception | None = None
        self.upgraded = False
        self.reading_over = trio.Event()
        """Set when nothing reads the connection any more."""

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        self._nursery.start_soon(self._run, fn, *args)

    async def _run(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        try:
            await fn(*args)
        except wsproto.utilities.LocalProtocolError as exc:
            if not self.upgraded:
                self.error = exc
                return
            # An answer wsproto refuses after our close (see the module's strategy).
            await self._drain()
        except Exception as exc:  # kept for the handshake's error; the close reports the rest
            self.error = exc
        finally:
            self.reading_over.set()
            # After the handshake the scope has exited and this does nothing.
            self._handshake_scope.cancel()

    async def _drain(self) -> None:
        """Read and drop what comes until the server closes the TCP connection."""
        try:
            while await self._stream.receive_some(_DRAIN_BYTES):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # it broke, or the session closed it: it ended either way


async def handshake(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    target: Target,
    headers: list[tuple[str, str]],
) -> tuple[trio_websocket.WebSocketConnection, trio.Event]:
    """Run the WebSocket upgrade over ``stream``; return the open connection.

    With it comes an event set when nothing reads the connection any more (the
    server closed the TCP connection, or the stream broke or was closed): no
    close frame can come after that, so nothing need wait for one.

    Raises ``HandshakeRejected`` for an HTTP status, ``ConnectError`` if the server
    hangs up or breaks HTTP first.
    """
    extra = [(name.encode(), value.encode()) for name, value in headers]
    with trio.CancelScope() as scope:
        guard = _ReaderGuard(nursery, scope, stream)
        # Any trio stream will do, though the hints name only socket streams.
        ws = await trio_websocket.wrap_client_stream(
            cast(trio.Nursery, guard),
            cast(trio.SocketStream, stream),
            target.host_header,
            target.resource,
            extra_headers=extra,
        )
        guard.upgraded = True
        return ws, guard.reading_over
    error = guard.error
    if isinstance(error, trio_websocket.ConnectionRejected):
        raise HandshakeRejected(target.shown, error.status_code, error.body or b"")
    raise ConnectError(target.shown, HANG_UP) from error
