"""Why a session's connection could not be opened (both adapters raise these).

Each message names the URL as :func:`aai_proto.redact_url` shows it, never the
API key or token: those travel in a header and appear in no message.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from typing import Final, final

__all__ = [
    "HANG_UP",
    "ConnectError",
    "ConnectTimeout",
    "HandshakeRejected",
    "describe_connect_error",
]

HANG_UP: Final = "the server closed the connection during the WebSocket handshake"
"""What a ``ConnectError`` says when the server hung up before the upgrade was done."""


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


# A connection that was made, then dropped by the server: in the TLS handshake, as the
# upgrade runs over it (asyncio raises these from its TLS handshake).
_HUNG_UP = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)
_ERRNO = re.compile(r"\[Errno (\d+)\]")


def describe_connect_error(exc: OSError, host: str, port: int) -> str:
    """What ``ConnectError`` says of ``exc``, which stopped the connection to ``host:port``.

    One wording for both adapters, whichever runtime raised ``exc``:

    - DNS failure (``socket.gaierror``): as Python words it, ``[Errno -2] Name or
      service not known``;
    - the server hung up once connected (a reset, a TLS handshake cut short):
      :data:`HANG_UP`, as for a hang-up during the upgrade;
    - any other TLS failure: as ``ssl`` words it (``[SSL: CERTIFICATE_VERIFY_FAILED]
      ...``);
    - the rest, the TCP connection failed: ``all attempts to connect to HOST:PORT
      failed (REASONS)``, the distinct reasons of the addresses tried. trio raises
      that sentence with each address's error in an exception group as its cause;
      asyncio raises the one address's error, or, for several, an ``OSError`` whose
      message joins theirs (``Multiple exceptions: [Errno 111] Connect call failed
      ...``): the reasons are the ``strerror`` of their error numbers.
    """
    if isinstance(exc, socket.gaierror):
        return str(exc)
    if isinstance(exc, _HUNG_UP):
        return HANG_UP
    if isinstance(exc, ssl.SSLError):
        return str(exc)
    members = getattr(exc.__cause__, "exceptions", None)
    if members:  # trio's: an error for each address tried
        found = {reason for member in members for reason in _reasons(member) or [str(member)]}
    else:
        found = set(_reasons(exc))
    if not found:
        return str(exc) or type(exc).__name__
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"all attempts to connect to {where} failed ({'; '.join(sorted(found))})"


def _reasons(error: BaseException) -> list[str]:
    """The ``strerror`` of the error numbers ``error`` carries or quotes (asyncio's)."""
    if isinstance(error, OSError) and isinstance(error.errno, int) and error.errno > 0:
        return [os.strerror(error.errno)]
    return [os.strerror(int(number)) for number in _ERRNO.findall(str(error))]
