"""The journal: what each connection to a replay server carried, for tests to read.

Strategy: a connection writes its journal as it goes (:class:`JournalWriter`,
owned by one :class:`~aai_replay.ReplayConnection`, fed from the server's loop,
one thread) and anyone may take a :class:`ConnectionRecord` of it at any time,
from any thread. No lock is needed, and none is paid for on every audio frame:
the writer only appends to lists and replaces whole values (the audio counts are
one tuple), and a reader copies each list with ``tuple()`` -- operations that
are atomic in CPython. Credentials never enter it: the request's query is
stripped of them, and the parameters lose the webhook secret before they are
stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal, final
from urllib.parse import parse_qsl, urlsplit

import attrs

from aai_proto import ClientMessage, StreamingParams, dump_client_message

from ._session import Request, strip_credentials

__all__ = [
    "AudioReceived",
    "ClientMessageRecord",
    "CloseRecord",
    "ConnectionRecord",
    "Departure",
    "JournalWriter",
    "ServerMessageRecord",
    "ViolationRecord",
    "verdict",
]


@final
@attrs.frozen(kw_only=True)
class AudioReceived:
    """The binary frames a connection received: how many, their bytes, and their audio in ms.

    ``ms`` counts PCM audio in the live request's format (0 for compressed audio).
    """

    frames: int = 0
    bytes: int = 0
    ms: float = 0.0


@final
@attrs.frozen(kw_only=True)
class ClientMessageRecord:
    """A text message the client sent, parsed, at ``t`` seconds after the opening."""

    t: float
    message: ClientMessage


@final
@attrs.frozen(kw_only=True)
class ServerMessageRecord:
    """A frame the server sent at ``t``: ``str`` for a text frame, ``bytes`` for a binary one."""

    t: float
    data: str | bytes


@final
@attrs.frozen(kw_only=True)
class CloseRecord:
    """How the connection closed: ``by`` the side that closed first (1006: dropped)."""

    code: int
    reason: str
    by: Literal["server", "client"]


@final
@attrs.frozen(kw_only=True)
class ViolationRecord:
    """The client broke a protocol rule at ``t``.

    ``code`` is the close code it caused: 1008, 3006 or 3007 for the service's own
    rejections, 4900 for a lifecycle violation in a strict replay, 1002 or 1007 for a
    frame that breaks the WebSocket protocol (RFC 6455), 1006 for a client dropped
    because it read nothing for the server's ``send_timeout``; ``None`` when the
    connection went on (a lifecycle violation in a lenient replay). ``rule`` says
    what was broken.
    """

    t: float
    code: int | None
    rule: str


@final
@attrs.frozen(kw_only=True)
class Departure:
    """The client departed from the recording at ``t``: what the recording expected, what came.

    A strict replay closes the connection with 4900 at its first departure; a
    lenient one adapts and goes on.
    """

    t: float
    expected: str
    got: str


@final
@attrs.frozen(kw_only=True)
class ConnectionRecord:
    """What one connection to a replay server carried: an immutable snapshot of its journal.

    ``connection`` numbers the connections from 1 in the order they were opened;
    ``request`` is the upgrade request's path and query, credentials removed;
    ``params`` the parameters parsed from it (``None`` when the request was
    refused), without the webhook secret; ``close`` is ``None`` while the
    connection is open. ``strict`` says whether the replay was strict, which
    makes every departure close the connection.
    """

    connection: int
    request: Request
    params: StreamingParams | None
    strict: bool = False
    audio: AudioReceived = AudioReceived()
    client_messages: tuple[ClientMessageRecord, ...] = ()
    server_messages: tuple[ServerMessageRecord, ...] = ()
    close: CloseRecord | None = None
    violations: tuple[ViolationRecord, ...] = ()
    departures: tuple[Departure, ...] = ()

    def problems(self) -> list[str]:
        """What fails a test: every violation, and every departure of a strict replay.

        Each as one line that names the connection, the time and the rule.
        """
        lines = [
            f"connection {self.connection}, t={v.t:.3f} s: {v.rule}"
            + (f" (closed {v.code})" if v.code is not None else "")
            for v in self.violations
        ]
        if self.strict:
            lines.extend(
                f"connection {self.connection}, t={d.t:.3f} s: departed from the recording: "
                f"expected {d.expected}, got {d.got}" + ("" if i else " (closed 4900)")
                for i, d in enumerate(self.departures)
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object ``aai-replay serve --journal`` writes for it.

        Keys: ``connection``, ``request`` (``path``, ``query``), ``params`` (known
        parameters as typed JSON values), ``audio`` (``frames``, ``bytes``, ``ms``),
        ``client_messages`` (each message's JSON object with ``t``),
        ``server_messages`` (each ``{"t", "message"}`` for a JSON object, ``{"t",
        "text"}`` for other text, ``{"t", "binary"}`` with the size of a binary
        frame), ``close`` (``code``, ``reason``, ``by``, or ``null``),
        ``violations`` (``t``, ``code``, ``rule``) and ``departures`` (``t``,
        ``expected``, ``got``).
        """
        close = self.close
        return {
            "connection": self.connection,
            "request": {"path": self.request.path, "query": dict(self.request.query)},
            "params": _params_json(self.params),
            "audio": {"frames": self.audio.frames, "bytes": self.audio.bytes, "ms": self.audio.ms},
            "client_messages": [
                {"t": m.t, **json.loads(dump_client_message(m.message))}
                for m in self.client_messages
            ],
            "server_messages": [_server_json(m) for m in self.server_messages],
            "close": None
            if close is None
            else {"code": close.code, "reason": close.reason, "by": close.by},
            "violations": [{"t": v.t, "code": v.code, "rule": v.rule} for v in self.violations],
            "departures": [
                {"t": d.t, "expected": d.expected, "got": d.got} for d in self.departures
            ],
        }


def _params_json(params: StreamingParams | None) -> dict[str, Any] | None:
    if params is None:
        return None
    out: dict[str, Any] = {}
    for name, text in params.wire_values().items():
        value = getattr(params, name)
        if isinstance(value, bool | int | float | str):
            out[name] = value
        else:  # lists and objects travel as JSON text
            out[name] = json.loads(text)
    return out


def _server_json(record: ServerMessageRecord) -> dict[str, Any]:
    data = record.data
    if isinstance(data, bytes):
        return {"t": record.t, "binary": len(data)}
    try:
        message = json.loads(data)
    except ValueError:
        message = None
    if isinstance(message, dict):
        return {"t": record.t, "message": message}
    return {"t": record.t, "text": data}


def _request(target: str) -> Request:
    try:
        parts = urlsplit(target)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        path = parts.path or "/"
    except ValueError:
        return Request(path="?", query={})
    # The last of a repeated name wins here; the checker refuses repeats anyway.
    return Request(path=path, query=strip_credentials(dict(pairs)))


@final
class JournalWriter:
    """The journal of one connection as it is being written; :meth:`record` reads it.

    Every method may be called from the server's loop while another thread calls
    :meth:`record`. With ``keep_messages=False`` the client's and the server's
    messages are not kept (all the rest is): for a server nobody reads back, whose
    memory then stays the same however long a session runs.
    """

    def __init__(
        self, connection: int, target: str, *, strict: bool = False, keep_messages: bool = True
    ) -> None:
        self._keep_messages = keep_messages
        self._connection = connection
        self._request = _request(target)
        self._strict = strict
        self._params: StreamingParams | None = None
        self._audio = (0, 0, 0.0)  # frames, bytes, ms: replaced whole
        self._client: list[ClientMessageRecord] = []
        self._server: list[ServerMessageRecord] = []
        self._violations: list[ViolationRecord] = []
        self._departures: list[Departure] = []
        self._close: CloseRecord | None = None

    def params(self, params: StreamingParams) -> None:
        """The request was accepted with ``params``; stored without the webhook secret."""
        if params.webhook_auth_header_value is not None:
            params = attrs.evolve(params, webhook_auth_header_value=None)
        self._params = params

    def audio(self, nbytes: int, ms: float) -> None:
        """One binary frame of ``nbytes`` bytes (``ms`` of audio) came."""
        frames, total, total_ms = self._audio
        self._audio = (frames + 1, total + nbytes, total_ms + ms)

    def client_message(self, t: float, message: ClientMessage) -> None:
        if self._keep_messages:
            self._client.append(ClientMessageRecord(t=t, message=message))

    def server_message(self, t: float, data: str | bytes) -> None:
        if self._keep_messages:
            self._server.append(ServerMessageRecord(t=t, data=data))

    def violation(self, t: float, code: int | None, rule: str) -> None:
        self._violations.append(ViolationRecord(t=t, code=code, rule=rule))

    def departures(self, departures: Iterable[Departure]) -> None:
        for departure in departures:
            self._departures.append(departure)

    def closed(self, code: int, reason: str, by: Literal["server", "client"]) -> None:
        """The connection closed; only the first close counts."""
        if self._close is None:
            self._close = CloseRecord(code=code, reason=reason, by=by)

    @property
    def is_closed(self) -> bool:
        return self._close is not None

    @property
    def close(self) -> CloseRecord | None:
        """The connection's close, once journaled (the first one: see :meth:`closed`)."""
        return self._close

    def record(self) -> ConnectionRecord:
        """An immutable snapshot of the journal so far."""
        frames, nbytes, ms = self._audio
        return ConnectionRecord(
            connection=self._connection,
            request=self._request,
            params=self._params,
            strict=self._strict,
            audio=AudioReceived(frames=frames, bytes=nbytes, ms=ms),
            client_messages=tuple(self._client),
            server_messages=tuple(self._server),
            close=self._close,
            violations=tuple(self._violations),
            departures=tuple(self._departures),
        )


def verdict(records: Sequence[ConnectionRecord]) -> list[str]:
    """Every problem of ``records`` that fails a test (see :meth:`ConnectionRecord.problems`)."""
    return [line for record in records for line in record.problems()]
