"""Opening the WebSocket: the TCP (and TLS) connection, then the upgrade.

Strategy: trio-websocket runs the connection's reader task in a nursery the caller
gives it, and lets that task's exceptions escape into it (a rejected upgrade is
raised there, not by the call that waits for the handshake). We give it a
``_ReaderGuard`` instead of a nursery: it runs the task in the session's nursery,
keeps what the task raised, and cancels the handshake the moment the task ends, so
a server that hangs up mid-handshake fails the connect at once, not at the timeout.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable
from typing import cast, final
from urllib.parse import urlsplit

import attrs
import trio
import trio_websocket

from ._errors import ConnectError, HandshakeRejected

__all__ = ["Target", "handshake", "open_stream"]


@final
@attrs.frozen(kw_only=True)
class Target:
    """Where a session connects: taken apart from its full URL."""

    shown: str
    """The URL the caller gave, credentials masked: for messages."""
    host: str
    port: int
    secure: bool
    host_header: str
    resource: str

    @classmethod
    def from_url(cls, url: str, *, shown: str) -> Target:
        """Take apart a ``ws://`` or ``wss://`` URL; raise ``ValueError`` for anything else."""
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"expected a ws:// or wss:// URL, got {shown!r}")
        if "@" in parts.netloc:
            raise ValueError("the URL must not hold a user name or password; give api_key or token")
        if not parts.hostname:
            raise ValueError(f"the URL has no host: {shown!r}")
        secure = parts.scheme == "wss"
        try:
            port = parts.port or (443 if secure else 80)
        except ValueError:
            raise ValueError(f"the URL has an invalid port: {shown!r}") from None
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(
            shown=shown,
            host=parts.hostname,
            port=port,
            secure=secure,
            host_header=parts.netloc,
            resource=resource,
        )


async def open_stream(target: Target) -> trio.abc.Stream:
    """Open the TCP connection, with TLS for ``wss://``; raise ``ConnectError`` if it fails."""
    try:
        if target.secure:
            return await trio.open_ssl_over_tcp_stream(
                target.host,
                target.port,
                ssl_context=ssl.create_default_context(),
                https_compatible=True,
            )
        return await trio.open_tcp_stream(target.host, target.port)
    except OSError as exc:
        raise ConnectError(target.shown, _describe(exc)) from exc


def _describe(exc: OSError) -> str:
    # trio reports "all attempts to connect to HOST:PORT failed" and puts the
    # reasons (one per address tried) in an exception group as the cause.
    causes = getattr(exc.__cause__, "exceptions", ())
    reasons = sorted(
        {os.strerror(c.errno) if isinstance(c, OSError) and c.errno else str(c) for c in causes}
    )
    return f"{exc} ({'; '.join(reasons)})" if reasons else str(exc)


@final
class _ReaderGuard:
    """What trio-websocket takes for its nursery; see the module's strategy note."""

    def __init__(self, nursery: trio.Nursery, handshake_scope: trio.CancelScope) -> None:
        self._nursery = nursery
        self._handshake_scope = handshake_scope
        self.error: Exception | None = None

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        self._nursery.start_soon(self._run, fn, *args)

    async def _run(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        try:
            await fn(*args)
        except Exception as exc:  # kept for the handshake's error; the close reports the rest
            self.error = exc
        finally:
            # After the handshake the scope has exited and this does nothing.
            self._handshake_scope.cancel()


async def handshake(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    target: Target,
    headers: list[tuple[str, str]],
) -> trio_websocket.WebSocketConnection:
    """Run the WebSocket upgrade over ``stream``; return the open connection.

    Raises ``HandshakeRejected`` for an HTTP status, ``ConnectError`` if the server
    hangs up or breaks HTTP first.
    """
    extra = [(name.encode(), value.encode()) for name, value in headers]
    with trio.CancelScope() as scope:
        guard = _ReaderGuard(nursery, scope)
        # Any trio stream will do, though the hints name only socket streams.
        return await trio_websocket.wrap_client_stream(
            cast(trio.Nursery, guard),
            cast(trio.SocketStream, stream),
            target.host_header,
            target.resource,
            extra_headers=extra,
        )
    error = guard.error
    if isinstance(error, trio_websocket.ConnectionRejected):
        raise HandshakeRejected(target.shown, error.status_code, error.body or b"")
    raise ConnectError(
        target.shown, "the server closed the connection during the WebSocket handshake"
    ) from error
