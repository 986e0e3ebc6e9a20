"""Why a session's connection could not be opened (both adapters raise these).

Each message names the URL as :func:`aai_proto.redact_url` shows it, never the
API key or token: those travel in a header and appear in no message.
"""

from __future__ import annotations

from typing import final

__all__ = ["ConnectError", "ConnectTimeout", "HandshakeRejected"]


class ConnectError(Exception):
    """The connection could not be opened: DNS failure, refused, TLS failure, or a
    server that hung up during the WebSocket handshake.

    ``url`` is the URL connected to, with credentials masked.
    """

    url: str

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"can't connect to {url}: {problem}")


@final
class ConnectTimeout(ConnectError):
    """The connection, the WebSocket handshake and the server's ``Begin`` took longer
    than ``connect_timeout``."""


@final
class HandshakeRejected(ConnectError):
    """The server answered the WebSocket upgrade with an HTTP status instead of 101.

    ``status_code`` is that status. The response body is kept in ``body`` but left
    out of the message, as a server may echo the request (and its credentials).
    """

    status_code: int
    body: bytes

    def __init__(self, url: str, status_code: int, body: bytes = b"") -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(url, f"the server rejected the WebSocket upgrade with HTTP {status_code}")
