"""A WebSocket client for tests that talk to a server over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
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
