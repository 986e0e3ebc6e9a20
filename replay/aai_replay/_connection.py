"""One replay connection, whole and without I/O: the checks, the replay, the faults.

Strategy: three sans-IO pieces in a row. ``aai_proto.ClientChecker`` answers a
client that breaks the protocol as the service does, whatever the recording
says; :class:`~aai_replay._replay.Replay` plays the recording; and
:class:`~aai_replay._faults.FaultStage` breaks the result on purpose when asked
to. The I/O layer only moves frames and tells the time.
"""

from __future__ import annotations

import math
from typing import Any, Final, final
from urllib.parse import parse_qsl, urlsplit

import attrs

from aai_proto import ClientChecker, ClientMessage, Rejection, Violation
from aai_proto._params import _is_credential_name

from ._actions import Abort, Action, CloseConnection, Send, close_reason
from ._faults import Faults, FaultStage
from ._journal import ConnectionRecord, JournalWriter
from ._replay import MISMATCH_CODE, Pacing, Replay, ReplayPlan
from ._session import ServerMessage

__all__ = ["DEFAULT_PATH", "ReplayConnection", "ReplayOptions"]

DEFAULT_PATH: Final = "/v3/ws"
_REDACTED: Final = "[credential]"
"""What :meth:`ReplayConnection.redact` puts in place of a credential."""


def _check_pacing(_: Any, __: Any, value: Any) -> None:
    if value not in ("audio", "wall"):
        raise ValueError(f"pacing must be 'audio' or 'wall', got {value!r}")


def _check_speed(_: Any, __: Any, value: Any) -> None:
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"speed must be a number > 0, got {value!r}")


def _check_api_key(_: Any, __: Any, value: Any) -> None:
    if value is not None and (type(value) is not str or not value):
        raise ValueError("api_key must be a non-empty string")


@final
@attrs.frozen(kw_only=True)
class ReplayOptions:
    """How a replay server plays its session to each client.

    ``pacing``: ``"audio"`` (each entry waits for the client's audio) or ``"wall"``
    (also for its recorded time, divided by ``speed``). ``strict``: close 4900 when
    the client departs from the recording, instead of adapting. ``api_key``: when
    set, clients must present it (``Authorization`` header or ``token`` query) or
    get ``Error`` 1008. ``faults``: failures to inject (see :class:`Faults`).
    """

    pacing: Pacing = attrs.field(default="audio", validator=_check_pacing)
    speed: float = attrs.field(default=1.0, validator=_check_speed)
    strict: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    # A credential: kept out of repr() so it never reaches a log line.
    api_key: str | None = attrs.field(default=None, validator=_check_api_key, repr=False)
    faults: Faults = attrs.field(factory=Faults, validator=attrs.validators.instance_of(Faults))


def _recorded_error(plan: ReplayPlan, code: int) -> str | None:
    """The text of the recording's own ``Error`` message with ``code``, if it has one."""
    for step in plan.steps:
        entry = step.entry
        if (
            isinstance(entry, ServerMessage)
            and entry.message.get("type") == "Error"
            and entry.message.get("error_code") == code
            and step.text is not None
        ):
            return step.text
    return None


def _credentials(target: str, authorization: str | None, api_key: str | None) -> tuple[str, ...]:
    """Every credential a connection was offered or expects, longest first."""
    found = {authorization, api_key}
    try:
        query = urlsplit(target).query
    except ValueError:
        query = ""
    found.update(v for k, v in parse_qsl(query, keep_blank_values=True) if _is_credential_name(k))
    return tuple(sorted((c for c in found if c), key=len, reverse=True))


@final
class ReplayConnection:
    """The server side of one connection: checks, replay and faults, without I/O.

    Made with the upgrade request's ``target`` (path and query) and
    ``Authorization`` header. Then feed it every frame the client sends
    (:meth:`receive_message`), the passing of time (:meth:`advance`) and the
    client's close (:meth:`client_closed`) -- or the I/O layer's own end of the
    connection, for a client that broke WebSocket framing or read nothing
    (:meth:`transport_violation`); perform what :meth:`data_to_send` returns, and
    come back at :meth:`next_deadline`. ``now`` is always seconds since the
    connection opened.

    A client that breaks the protocol gets the service's answer (``Error`` 1008,
    3006 or 3007, then the close); when the recording holds an ``Error`` with the
    same code, its text is used. A client that breaks its lifecycle (audio after
    ``Terminate``, a second ``Terminate``) is let go on by a lenient replay and
    closed with 4900 by a strict one. Either way, :meth:`record` has it all:
    ``connection`` is the number it gets there, and ``journal_messages=False``
    leaves the messages out of it (see :class:`JournalWriter`).
    """

    def __init__(
        self,
        plan: ReplayPlan,
        options: ReplayOptions | None = None,
        *,
        target: str,
        authorization: str | None = None,
        session_id: str | None = None,
        now_unix: float = 0.0,
        connection: int = 1,
        journal_messages: bool = True,
    ) -> None:
        options = options if options is not None else ReplayOptions()
        self.plan = plan
        self.options = options
        self.journal = JournalWriter(
            connection, target, strict=options.strict, keep_messages=journal_messages
        )
        """This connection's journal, as it is written."""
        self._credentials = _credentials(target, authorization, options.api_key)
        self._checker = ClientChecker(api_key=options.api_key)
        self._faults = FaultStage(options.faults)
        self._replay: Replay | None = None
        self._ended = False  # the client closed, or the I/O layer ended the connection
        self._departures = 0  # of the replay's, those journaled so far
        rejection = self._checker.receive_request(target, authorization=authorization)
        if rejection is not None:
            self._reject(rejection, 0.0)
            return
        assert self._checker.params is not None
        self.journal.params(self._checker.params)
        self._replay = Replay(
            plan,
            self._checker.params,
            pacing=options.pacing,
            speed=options.speed,
            strict=options.strict,
            session_id=session_id,
            now_unix=now_unix,
        )
        self._collect(self._replay, 0.0)

    @property
    def replay(self) -> Replay | None:
        """The replay, once the request was accepted."""
        return self._replay

    @property
    def rejection(self) -> Rejection | None:
        """How the client broke the protocol, if it did."""
        return self._checker.rejection

    @property
    def finished(self) -> bool:
        """Whether the connection is over: closed or dropped by us, or closed by the client."""
        return self._faults.finished or self._ended

    @property
    def messages_sent(self) -> int:
        """Server messages handed out by :meth:`data_to_send` so far."""
        return self._faults.messages_sent

    def _active(self) -> Replay | None:
        if self.finished or self._checker.rejection is not None:
            return None
        return self._replay

    def record(self) -> ConnectionRecord:
        """What this connection carried so far (see :class:`ConnectionRecord`)."""
        return self.journal.record()

    def _collect(self, replay: Replay, now: float) -> None:
        departures = replay.departures
        if len(departures) > self._departures:
            self.journal.departures(departures[self._departures :])
            self._departures = len(departures)
        for action in replay.data_to_send():
            self._faults.push(action, now)

    def _reject(self, rejection: Rejection, now: float) -> None:
        if self.finished:  # already closing: the rejection closes nothing
            self.journal.violation(now, None, rejection.error)
            return
        self.journal.violation(now, rejection.code, rejection.error)
        text = _recorded_error(self.plan, rejection.code) or rejection.message
        self._faults.push(Send(text), now)
        self._faults.push(CloseConnection(rejection.code, close_reason(rejection.reason)), now)

    def _violated(self, violation: Violation, now: float) -> None:
        """A lifecycle violation: journaled; a strict replay closes 4900 naming the rule."""
        if self.options.strict and not self.finished:
            self.journal.violation(now, MISMATCH_CODE, violation.rule)
            # Not "replay mismatch: ...": that is what code 4900 means (aai_proto's
            # CLOSE_CODES), which a client shows before the reason.
            reason = close_reason(f"the client sent {violation.rule}")
            self._faults.push(CloseConnection(MISMATCH_CODE, reason), now)
        else:
            self.journal.violation(now, None, violation.rule)

    def receive_message(self, data: str | bytes | bytearray | memoryview, now: float) -> None:
        """The client sent a frame: bytes-like (binary, audio) or ``str`` (text).

        Frames that come after this side decided to close are still checked and
        journaled (a client that sends audio after ``Terminate`` is caught even when
        the ``Termination`` was already on its way), but change nothing else.
        """
        if self._replay is None or self._ended or self._checker.rejection is not None:
            return
        checker = self._checker
        result: ClientMessage | Rejection | Violation | None
        if isinstance(data, str):
            result = checker.receive_text(data)
            nbytes = 0
        else:
            before = checker.audio_ms
            result = checker.receive_audio(data)
            nbytes = memoryview(data).nbytes
            self.journal.audio(nbytes, checker.audio_ms - before)
        if isinstance(result, Rejection):
            self._reject(result, now)
        elif isinstance(result, Violation):
            self._violated(result, now)
        elif result is not None:
            self.journal.client_message(now, result)
            if not self.finished:
                self._replay.receive_message(result, now)
                self._collect(self._replay, now)
        elif not self.finished:
            self._replay.receive_audio(nbytes, now)
            self._collect(self._replay, now)

    def advance(self, now: float) -> None:
        """Let time pass to ``now``."""
        replay = self._active()
        if replay is not None:
            replay.advance(now)
            self._collect(replay, now)

    def client_closed(self, code: int = 1006, reason: str = "") -> None:
        """The client closed the connection with ``code`` and ``reason`` (1006: it was lost).

        Journaled as the client's close (its reason :meth:`redacted <redact>`),
        unless this side had closed first.
        """
        self._ended = True
        self.journal.closed(code, self.redact(reason), "client")
        if self._replay is not None:
            self._replay.client_closed()

    def transport_violation(self, now: float, rule: str, code: int, reason: str) -> None:
        """The I/O layer ended the connection for a fault of the client's below the protocol.

        That is a frame that breaks RFC 6455 (``code`` 1002 or 1007, sent in a close
        frame with ``reason``), or a client that reads nothing (1006: the connection
        was dropped). Journaled as a violation of ``rule`` at ``now`` and as this
        side's close (unless a close came first); nothing more is sent.
        """
        self.journal.violation(now, code, rule)
        self.journal.closed(code, reason, "server")
        self._ended = True  # data_to_send() hands out nothing more
        if self._replay is not None:
            self._replay.client_closed()

    def redact(self, text: str) -> str:
        """``text`` with every credential of this connection replaced by ``[credential]``.

        The credentials are those the client offered (the ``Authorization`` header,
        the ``token`` and webhook secret query parameters) and the API key the
        server expects: for text the client wrote, such as its close reason.
        """
        for credential in self._credentials:
            text = text.replace(credential, _REDACTED)
        return text

    def data_to_send(self, now: float) -> list[Action]:
        """The actions due by ``now``, in order: send them, then close or drop if told."""
        return [action for _, action in self.data_to_send_timed(now)]

    def data_to_send_timed(self, now: float) -> list[tuple[float, Action]]:
        """Like :meth:`data_to_send`, each action with the time its gates opened.

        That is the time it fell due (``delay`` included), which a busy server may
        pass before it gets to send it. What comes out is journaled as sent at ``now``.
        """
        if self._ended:
            return []
        out = self._faults.pop_timed(now)
        journal = self.journal
        for _, action in out:
            if isinstance(action, Send):
                journal.server_message(now, action.data)
            elif isinstance(action, CloseConnection):
                journal.closed(action.code, action.reason, "server")
            else:
                assert isinstance(action, Abort)
                journal.closed(1006, "", "server")
        return out

    def next_deadline(self) -> float | None:
        """When to call :meth:`advance` and :meth:`data_to_send` if no frame comes first."""
        # Called for every frame the client sends (see _server._Wakeup): no lists.
        if self.finished:
            return None
        due = self._faults.next_deadline()
        replay = self._active()
        if replay is not None:
            t = replay.next_deadline()
            if t is not None and (due is None or t < due):
                due = t
        return due
