"""The client side of a session, as a state machine that does no I/O.

Strategy: h2's shape. Action methods (``send_audio``, ``terminate``, ...) queue
frames; ``data_to_send()`` drains them; ``receive_message()`` and
``connection_closed()`` return events. Which input is legal in which state is one
table, ``TRANSITIONS``; an input the table does not list is a protocol error --
``LocalProtocolError`` (state unchanged) for the caller's actions,
``RemoteProtocolError`` (state ``ERROR`` until the close) for what the server sent.

The table is the whole truth: what the transport reports (the close), and what
the runtime did to the connection (closed it, or failed a send), are inputs too,
so an adapter never decides a protocol question itself. It asks :meth:`Client.allows`
whether an action is legal, and reads what happened from the client: ``begin``,
``termination``, ``failure`` (the one error that ended the session, if any) and
``closed``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, final

from ._audio import AudioChunker, AudioFormat, TailPolicy
from ._errors import LocalProtocolError, RemoteProtocolError, StreamingError
from ._events import (
    Begin,
    ConnectionClosed,
    Event,
    Heartbeat,
    LLMGatewayResponse,
    ServerError,
    ServerEvent,
    ServerWarning,
    Silence,
    SpeakerRevision,
    SpeechStarted,
    Termination,
    Turn,
    UnknownMessage,
)
from ._messages import (
    UPDATABLE_FIELDS,
    ClientMessage,
    ForceEndpoint,
    KeepAlive,
    Terminate,
    UpdateConfiguration,
)
from ._params import StreamingParams
from ._wire import (
    MAX_MESSAGE_BYTES,
    MAX_NESTING_DEPTH,
    _limit,
    dump_client_message,
    parse_server_message,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["TRANSITIONS", "Client", "Input", "State"]


class State(enum.Enum):
    """Where a :class:`Client` is in its session."""

    CONNECTING = "CONNECTING"
    """Connected (or connecting); no ``Begin`` yet. Audio may already be sent."""
    STREAMING = "STREAMING"
    """``Begin`` received: audio and control messages flow."""
    TERMINATING_EARLY = "TERMINATING_EARLY"
    """``Terminate`` queued before ``Begin``; waiting for ``Begin``, then the rest."""
    TERMINATING = "TERMINATING"
    """``Terminate`` queued after ``Begin``; waiting for the last turns and ``Termination``."""
    TERMINATED = "TERMINATED"
    """``Termination`` received: the session ended well. Waiting for the close."""
    CLOSING = "CLOSING"
    """This side started closing the connection (:meth:`Client.close`); waiting for the close.

    Nothing more can be sent. The server's messages still arrive, as events, in
    any order: the session is being abandoned, so only malformed data is an error.
    """
    BROKEN = "BROKEN"
    """A send failed or was cut mid-frame (:meth:`Client.send_failed`): the connection
    is unusable for good. The server's messages still arrive, as in ``CLOSING``; the
    close changes nothing."""
    CLOSED = "CLOSED"
    """The connection closed. Nothing more can happen."""
    ERROR = "ERROR"
    """The server broke the protocol. Nothing more can happen but the close."""


class Input(enum.Enum):
    """The caller's actions and the transport's report, as inputs of the table.

    Server messages are the other inputs; they appear in the table as their
    event classes.
    """

    SEND_AUDIO = "send_audio"
    FORCE_ENDPOINT = "force_endpoint"
    UPDATE_CONFIGURATION = "update_configuration"
    KEEP_ALIVE = "keep_alive"
    TERMINATE = "terminate"
    CLOSE = "close"
    SEND_FAILED = "send_failed"
    CONNECTION_CLOSED = "connection_closed"


_CONTROL = (Input.SEND_AUDIO, Input.FORCE_ENDPOINT, Input.UPDATE_CONFIGURATION, Input.KEEP_ALIVE)
# Messages that may come in any state before Termination, even before Begin.
_ANYTIME: tuple[type[ServerEvent], ...] = (ServerError, ServerWarning, UnknownMessage)
# Messages that belong to a running session.
_SESSION: tuple[type[ServerEvent], ...] = (
    Turn,
    SpeechStarted,
    Heartbeat,
    Silence,
    SpeakerRevision,
    LLMGatewayResponse,
)


# Every server message, for the states in which the session is being abandoned.
_EVERY_MESSAGE: tuple[type[ServerEvent], ...] = (Begin, Termination, *_ANYTIME, *_SESSION)


def _same(state: State, inputs: tuple[Any, ...]) -> dict[Any, State]:
    return dict.fromkeys(inputs, state)


def _ends() -> dict[Any, State]:
    """How a connection that is still open ends: this side's close, a failed send, the close."""
    return {
        Input.CLOSE: State.CLOSING,
        Input.SEND_FAILED: State.BROKEN,
        Input.CONNECTION_CLOSED: State.CLOSED,
    }


TRANSITIONS: Final[Mapping[State, Mapping[Input | type[ServerEvent], State]]] = MappingProxyType(
    {
        State.CONNECTING: {
            **_same(State.CONNECTING, _CONTROL + _ANYTIME),
            Input.TERMINATE: State.TERMINATING_EARLY,
            Begin: State.STREAMING,
            **_ends(),
        },
        State.STREAMING: {
            **_same(State.STREAMING, _CONTROL + _ANYTIME + _SESSION),
            Input.TERMINATE: State.TERMINATING,
            Termination: State.TERMINATED,
            **_ends(),
        },
        State.TERMINATING_EARLY: {
            **_same(State.TERMINATING_EARLY, _ANYTIME),
            Begin: State.TERMINATING,
            **_ends(),
        },
        State.TERMINATING: {
            **_same(State.TERMINATING, _ANYTIME + _SESSION),
            Termination: State.TERMINATED,
            **_ends(),
        },
        State.TERMINATED: _ends(),
        State.CLOSING: {
            **_same(State.CLOSING, _EVERY_MESSAGE),
            Input.SEND_FAILED: State.BROKEN,
            Input.CONNECTION_CLOSED: State.CLOSED,
        },
        State.BROKEN: _same(State.BROKEN, (*_EVERY_MESSAGE, Input.CONNECTION_CLOSED)),
        State.CLOSED: {},
        State.ERROR: {
            Input.CLOSE: State.ERROR,
            Input.SEND_FAILED: State.ERROR,
            Input.CONNECTION_CLOSED: State.CLOSED,
        },
    }
)
"""Every legal (state, input) pair and the state it leads to; anything else is an error."""

# The states in which the session runs: a close but 1000 in them is its failure.
_RUNNING: Final = frozenset(
    (State.CONNECTING, State.STREAMING, State.TERMINATING_EARLY, State.TERMINATING)
)
# The states this side's close or failed send leads to: the close that follows is theirs.
_LOCAL_END: Final = frozenset(
    TRANSITIONS[State.CONNECTING][action] for action in (Input.CLOSE, Input.SEND_FAILED)
)

# The states in which send_audio is legal (it leaves the state as it is).
_AUDIO_STATES: Final = frozenset(
    s for s, row in TRANSITIONS.items() if row.get(Input.SEND_AUDIO) is s
)


def _named(value: object) -> str:
    return "None" if value is None else type(value).__name__


def _as_int(name: str, value: object) -> int:
    """``value`` as a plain ``int`` (an ``IntEnum`` close code as its value); else TypeError.

    A ``bool`` is not a number here: ``chunk_ms=True`` is a mistake, not 1 ms.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {_named(value)}")
    return int(value)


def _check_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {_named(value)}")


@final
class Client:
    """The client side of one streaming session, without I/O.

    Feed it what the connection receives (:meth:`receive_message`,
    :meth:`connection_closed`), call its actions, and send what
    :meth:`data_to_send` returns, in order: ``bytes`` as binary frames, ``str`` as
    text frames. Audio is cut into frames of exactly ``chunk_ms`` milliseconds
    (see :class:`AudioChunker`); ``terminate()`` sends the last, shorter frame
    first, padded to 50 ms or not as ``tail`` says. ``force_endpoint()`` does not
    flush a partial frame.

    Server messages are parsed within ``max_message_bytes`` and ``max_nesting_depth``
    (see :func:`parse_server_message`): a longer or deeper one is a
    ``RemoteProtocolError``. Arguments of the wrong type raise ``TypeError`` (a
    ``bool`` where an ``int`` is meant, too); an ``IntEnum`` is taken as its plain
    ``int`` value.
    """

    def __init__(
        self,
        params: StreamingParams,
        *,
        chunk_ms: int = 50,
        tail: TailPolicy = "pad",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_nesting_depth: int = MAX_NESTING_DEPTH,
    ) -> None:
        if not isinstance(params, StreamingParams):
            raise TypeError(f"params must be a StreamingParams, got {_named(params)}")
        chunk_ms = _as_int("chunk_ms", chunk_ms)
        _check_str("tail", tail)
        self._max_bytes = _limit("max_message_bytes", max_message_bytes)
        self._max_depth = _limit("max_nesting_depth", max_nesting_depth)
        self.params = params
        self._chunker = AudioChunker(AudioFormat.from_params(params), chunk_ms=chunk_ms, tail=tail)
        # send_audio's fast path: the partial frame as the writes that make it up, their
        # length, and ``_open``: the frame size while audio may be sent, else -1 (and
        # always -1 for compressed audio, which is never cut). The chunker holds no
        # partial frame while ``_parts`` does (see _feed_chunker).
        self._parts: list[bytes] = []
        self._held = 0
        self._frame_bytes = self._chunker.frame_bytes or -1
        self._enter(State.CONNECTING)
        self._outgoing: list[bytes | str] = []
        self._begin: Begin | None = None
        self._termination: Termination | None = None
        self._error: ServerError | None = None
        self._failure: StreamingError | RemoteProtocolError | None = None
        self._closed: ConnectionClosed | None = None
        self._audio_bytes_sent = 0

    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    @property
    def begin(self) -> Begin | None:
        """The server's ``Begin`` event, once received."""
        return self._begin

    @property
    def session_id(self) -> str | None:
        """The session's id from ``Begin``, once received."""
        return self._begin.id if self._begin is not None else None

    @property
    def termination(self) -> Termination | None:
        """The server's ``Termination`` event, once received: the session ended well."""
        return self._termination

    @property
    def failure(self) -> StreamingError | RemoteProtocolError | None:
        """What ended the session badly, if anything did; it never changes once set.

        The first of: a message that broke the protocol (the
        :class:`RemoteProtocolError` :meth:`receive_message` raised), or a close but
        1000 while the session ran (the :class:`StreamingError` of its
        :class:`ConnectionClosed`). Nothing after ``Termination`` is a failure, nor
        is a close this side started (:meth:`close`, :meth:`send_failed`).
        """
        return self._failure

    @property
    def closed(self) -> ConnectionClosed | None:
        """The :class:`ConnectionClosed` event, once the close was reported."""
        return self._closed

    def allows(self, action: Input | type[ServerEvent]) -> bool:
        """Whether the table allows ``action`` (an :class:`Input` or an event class) now."""
        return action in TRANSITIONS[self._state]

    @property
    def audio_format(self) -> AudioFormat:
        """The format of the audio this session carries."""
        return self._chunker.format

    @property
    def audio_bytes_sent(self) -> int:
        """Bytes of audio queued as frames so far (not counting a partial frame)."""
        return self._audio_bytes_sent

    # -- the caller's actions -------------------------------------------------------

    def _enter(self, state: State) -> None:
        """Move to ``state``; every change of state goes through here."""
        self._state = state
        self._open = self._frame_bytes if state in _AUDIO_STATES else -1

    def _transition(self, action: Input) -> State:
        """The state ``action`` leads to; raises LocalProtocolError if it is not legal."""
        target = TRANSITIONS[self._state].get(action)
        if target is None:
            raise LocalProtocolError(f"can't {action.value} in state {self._state.value}")
        return target

    def _queue_audio(self, frames: list[bytes]) -> None:
        self._outgoing.extend(frames)
        self._audio_bytes_sent += sum(map(len, frames))

    def _send_control(self, action: Input, message: ClientMessage) -> None:
        self._enter(self._transition(action))
        self._outgoing.append(dump_client_message(message))

    def send_audio(self, data: Buffer) -> None:
        """Queue audio. Any size is fine: it is cut into frames of ``chunk_ms``."""
        # Strategy: small writes are the common case (sound cards hand over 10-50 ms at a
        # time), and for them the calls are most of the cost. So the two cases that need
        # no cutting are done here, without calling the chunker: a write that leaves the
        # partial frame short is kept (a reference: no copy, no buffer to grow), and a
        # write that completes exactly one frame queues it (joined with the writes
        # before it, or as it is when there are none). Anything else goes through
        # AudioChunker.feed. The frames are the same either way.
        if type(data) is bytes:
            size = self._open
            total = self._held + len(data)
            if total < size:
                if data:  # an empty write must not linger in _parts
                    self._parts.append(data)
                    self._held = total
                return
            if total == size:
                if self._held:
                    parts = self._parts
                    parts.append(data)
                    data = b"".join(parts)
                    parts.clear()
                    self._held = 0
                self._outgoing.append(data)
                self._audio_bytes_sent += size
                return
        self._transition(Input.SEND_AUDIO)
        self._feed_chunker()
        self._queue_audio(self._chunker.feed(data))
        # Keep the invariant: the partial frame, if any, goes back to the fast path.
        rest = self._chunker._take_pending()
        if rest:
            self._parts.append(rest)
            self._held = len(rest)

    def _feed_chunker(self) -> None:
        """Hand the fast path's partial frame to the chunker (it completes no frame)."""
        if self._held:
            self._chunker.feed(b"".join(self._parts))
            self._parts.clear()
            self._held = 0

    def force_endpoint(self) -> None:
        """Queue ``ForceEndpoint``: end the current turn now."""
        self._send_control(Input.FORCE_ENDPOINT, ForceEndpoint())

    def keep_alive(self) -> None:
        """Queue ``KeepAlive``: reset the server's inactivity clock."""
        self._send_control(Input.KEEP_ALIVE, KeepAlive())

    def update_configuration(self, **fields: Any) -> None:
        """Queue ``UpdateConfiguration`` with the given settings.

        Raises ``ValueError`` (:class:`InvalidParameter`) for a setting that cannot be
        updated or an invalid value; nothing is queued then.
        """
        self._transition(Input.UPDATE_CONFIGURATION)
        if not fields:
            raise ValueError("update_configuration needs at least one setting")
        unknown = sorted(
            set(fields) - UPDATABLE_FIELDS - {"min_end_of_turn_silence_when_confident"}
        )
        if unknown:
            raise ValueError(
                f"can't update {', '.join(unknown)}; "
                f"updatable: {', '.join(sorted(UPDATABLE_FIELDS))}"
            )
        message = UpdateConfiguration(**fields)
        self._send_control(Input.UPDATE_CONFIGURATION, message)

    def terminate(self) -> None:
        """Queue the audio tail, then ``Terminate``. No audio can follow."""
        target = self._transition(Input.TERMINATE)
        self._feed_chunker()
        self._queue_audio(self._chunker.flush())
        self._outgoing.append(dump_client_message(Terminate()))
        self._enter(target)

    def close(self) -> None:
        """Record that this side is closing the connection (state ``CLOSING``).

        Call it when the runtime starts the WebSocket closing handshake (or drops the
        socket) of its own accord; nothing can be sent after it, queued frames not yet
        taken are dropped, and the close that follows is no failure.
        """
        self._enter(self._transition(Input.CLOSE))
        self._outgoing.clear()

    def send_failed(self) -> None:
        """Record that sending failed or was cut mid-frame (state ``BROKEN``, for good).

        Call it when a write of the frames :meth:`data_to_send` returned did not
        complete, so the peer may have half a frame: the connection is unusable, and
        the close that follows is no failure. In ``ERROR`` the state stays ``ERROR``.
        """
        self._enter(self._transition(Input.SEND_FAILED))
        self._outgoing.clear()

    def data_to_send(self) -> list[bytes | str]:
        """Return the frames queued since the last call, in order, and forget them."""
        out = self._outgoing
        if out:
            self._outgoing = []
            return out
        return []

    # -- what the connection reports -------------------------------------------------

    def receive_message(self, message: str | bytes) -> list[Event]:
        """Take one message the server sent: ``str`` for a text frame, ``bytes`` for binary.

        Returns its events. Raises :class:`RemoteProtocolError` (state ``ERROR``) if
        the server broke the protocol (it becomes the :attr:`failure` unless the
        session had ended), :class:`LocalProtocolError` once ``CLOSED``.
        """
        if not isinstance(message, (str, bytes)):
            raise TypeError(f"message must be a str or bytes, got {_named(message)}")
        if self._state is State.CLOSED:
            raise LocalProtocolError("can't receive a message after the connection closed")
        try:
            if not isinstance(message, str):
                raise RemoteProtocolError("the server sent a binary frame")
            event = parse_server_message(
                message, max_bytes=self._max_bytes, max_depth=self._max_depth
            )
            self._enter(self._accept(event))
        except RemoteProtocolError as exc:
            self._enter(State.ERROR)
            self._fail(exc)
            raise
        return [event]

    def _accept(self, event: ServerEvent) -> State:
        target = TRANSITIONS[self._state].get(type(event))
        if target is None:
            raise RemoteProtocolError(f"unexpected {event.type} in state {self._state.value}")
        # Only the first of each is the session's (CLOSING takes any message).
        if isinstance(event, Begin):
            if self._begin is None:
                self._begin = event
        elif isinstance(event, Termination):
            if self._termination is None:
                self._termination = event
        elif isinstance(event, ServerError):
            self._error = event
        return target

    def _fail(self, exc: StreamingError | RemoteProtocolError) -> None:
        if self._failure is None and self._termination is None:
            self._failure = exc

    def connection_closed(self, code: int, reason: str = "") -> list[ConnectionClosed]:
        """Report that the WebSocket closed with ``code`` and ``reason``.

        Returns a :class:`ConnectionClosed` event; its ``error`` is set (and becomes
        the :attr:`failure`) for a close but 1000 while the session ran, with the
        text of the server's ``Error`` message if one came. Queued frames that were
        not sent are dropped.
        """
        code = _as_int("code", code)
        _check_str("reason", reason)
        if self._state is State.CLOSED:
            raise LocalProtocolError("the connection is already closed")
        before = self._state
        self._enter(self._transition(Input.CONNECTION_CLOSED))
        self._outgoing.clear()
        error = None
        if code != 1000 and before in _RUNNING:
            message = self._error.error if self._error is not None else None
            error = StreamingError(code, reason, message)
            self._fail(error)
        closed = ConnectionClosed(code=code, reason=reason, error=error, local=before in _LOCAL_END)
        self._closed = closed
        return [closed]
