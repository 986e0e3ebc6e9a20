"""Exceptions, and the meaning of the close codes the service uses.

Strategy: h11's split. ``LocalProtocolError`` means *our* caller misused the
API (the state is left unchanged, so the caller may recover). ``RemoteProtocolError``
means the peer broke the protocol (a client moves to ``State.ERROR`` until the close).
Things the protocol itself reports -- a server ``Error`` message, a close code --
are events, not exceptions; ``StreamingError`` is the value that describes such a
failed session, and an I/O layer may raise it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import final

__all__ = [
    "CLOSE_CODES",
    "NON_RETRYABLE_CLOSE_CODES",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "StreamingError",
    "close_code_meaning",
]


class ProtocolError(Exception):
    """Base class of the two protocol errors. Not raised itself."""


@final
class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol does not allow in this state.

    Nothing was changed: the object is in the same state as before the call.
    """


@final
class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow.

    A :class:`~aai_proto.Client` that raises this is in ``State.ERROR`` until the close.
    """


CLOSE_CODES: Mapping[int, str] = MappingProxyType(
    {
        1000: "normal closure",
        1001: "going away",
        1005: "closed without a status code",
        1006: "connection lost without a close frame",
        1008: "unauthorized (missing, invalid or expired key or token, or an account problem)",
        1011: "internal server error (retryable)",
        1013: "try again later",
        3005: "server error",
        3006: "invalid client message, invalid parameter value, or inactivity timeout",
        3007: "audio chunk duration violation, or audio sent too fast",
        3008: "session expired (maximum duration reached)",
        3009: "too many concurrent sessions",
        4001: "not authorized",
        4002: "insufficient funds",
        4008: "session expired",
        4029: "audio sent too fast",
        4031: "session idle for too long",
        4100: "invalid JSON",
        4101: "invalid message schema",
        4102: "too many concurrent sessions",
        4103: "session reconnected elsewhere",
        4900: "replay mismatch: the client departed from the recorded session",
        4901: "replay: a connection beyond the scenario's recorded connections",
        4902: "replay: no recorded connection matches the request",
    }
)
"""What each close code the service (or aai-proto's replay server) uses means."""

NON_RETRYABLE_CLOSE_CODES: frozenset[int] = frozenset(
    {
        # A normal close is no failure: there is nothing to retry.
        1000,
        # The Node SDK's non-retryable set (assemblyai-node-sdk, its streaming
        # transcriber): bad sample rate, not authorized, insufficient funds,
        # paid-only feature, invalid message schema.
        4000,
        4001,
        4002,
        4003,
        4101,
        # Issue 15: the v3 service's rejections of the credentials or the account
        # (1008) and of the request or a client message (3006) are never retried.
        1008,
        3006,
        # Ours, on the same ground -- the client's own request or audio is at fault,
        # so the same client gets the same answer: chunk duration or pace (3007) and
        # its legacy twins (4029 too fast, 4032-4034 too short, too long, too small
        # to transcode), and invalid JSON (4100, the twin of 4101).
        3007,
        4029,
        4032,
        4033,
        4034,
        4100,
        # The replay harness's refusals (aai_replay): a departure from the recording,
        # a connection beyond the scenario, a request no recording matches. Each is
        # decided by what the client sends; a retry would only be refused again (or
        # use up the scenario's next connection).
        4900,
        4901,
        4902,
    }
)
"""Close codes after which the same session must not be tried again.

Every other close -- 1011, 1013, 3005, 3008, 3009, 1006, an unknown code -- is
retryable (:attr:`StreamingError.retryable`), as the Node SDK retries every close
but 1000 and its non-retryable set {4000, 4001, 4002, 4003, 4101}. The Python SDK
(``assemblyai/streaming/v3/client.py``, ``StreamingClient.connect``) retries only
the WebSocket handshake and has no close-code list.
"""


def close_code_meaning(code: int, reason: str = "") -> str:
    """Return what close ``code`` means; an unknown code keeps the peer's ``reason``."""
    meaning = CLOSE_CODES.get(code)
    if meaning is not None:
        return meaning
    return reason or f"unknown close code {code}"


@final
class StreamingError(Exception):
    """A session that the service ended with an error.

    ``code`` is the close code (equal to the server ``Error`` message's ``error_code``
    when there was one), ``meaning`` what that code means, ``reason`` the close
    reason as sent, and ``message`` the text of the server's ``Error`` message, if
    one came before the close.
    """

    code: int
    meaning: str
    reason: str
    message: str | None

    def __init__(self, code: int, reason: str = "", message: str | None = None) -> None:
        self.code = code
        self.meaning = close_code_meaning(code, reason)
        self.reason = reason
        self.message = message
        super().__init__(code, reason, message)

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if made again.

        ``True`` for every code but :data:`NON_RETRYABLE_CLOSE_CODES` (1000, the
        rejections of the credentials, the account, the request or what the client
        sent, and the replay harness's refusals).
        """
        return self.code not in NON_RETRYABLE_CLOSE_CODES

    def __str__(self) -> str:
        detail = self.message or (self.reason if self.reason != self.meaning else "")
        text = f"{self.code} {self.meaning}"
        return f"{text}: {detail}" if detail else text

    def __repr__(self) -> str:
        return (
            f"StreamingError(code={self.code!r}, reason={self.reason!r}, message={self.message!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamingError):
            return NotImplemented
        return (self.code, self.reason, self.message) == (other.code, other.reason, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.reason, self.message))
