"""Replaying a recorded session to one live client, without I/O.

Strategy: a recording is turned once into a :class:`ReplayPlan`, the list of
server-side entries (``server``, ``server_raw``, ``close``) each with its gates
computed in advance: the recorded audio before it, the number of waited-for
client messages (``Terminate``, ``ForceEndpoint``) before it, and its time. A
:class:`Replay` walks that list for one connection, holding only counters, so
many connections share one plan and each costs a few numbers. An entry goes out
when every gate is open, in file order. How a live client may depart from the
recording -- and what lenient and strict replays then do -- is the format
document's "Replay semantics"; the methods below say which rule they implement.

The replay reads no clock: every input comes with ``now``, the seconds since the
connection opened, and :meth:`Replay.next_deadline` says when to call
:meth:`Replay.advance` if nothing else happens.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from typing import Any, Final, Literal, final

import attrs

from aai_proto import (
    AudioFormat,
    ClientMessage,
    InvalidParameter,
    KeepAlive,
    StreamingParams,
    Termination,
    UpdateConfiguration,
    dump_server_message,
)

from ._actions import Abort, Action, CloseConnection, Send, close_reason
from ._journal import Departure
from ._session import (
    CREDENTIAL_QUERY_KEYS,
    ClientAudio,
    Close,
    RecordedSession,
    ServerMessage,
    ServerRaw,
    _escape_lone_surrogates,
)
from ._session import ClientMessage as RecordedClientMessage

__all__ = [
    "MISMATCH_CODE",
    "SESSION_LIFETIME",
    "Pacing",
    "Replay",
    "ReplayPlan",
    "audio_seconds",
    "request_differences",
]

MISMATCH_CODE: Final = 4900
"""The close code of a strict replay whose client departed from the recording."""

SESSION_LIFETIME: Final = 3 * 60 * 60
"""Seconds from ``Begin`` to its ``expires_at`` in a replay: the service's maximum."""

Pacing = Literal["audio", "wall"]
"""``audio``: entries wait for the client's audio only. ``wall``: also for their time."""

# Client messages the service does not answer: never waited for.
_UNANSWERED: Final = frozenset({KeepAlive.type, UpdateConfiguration.type})
_EPSILON: Final = 1e-6
# When Terminate comes, audio this close to an entry's gate counts as reaching it:
# clients pad, trim or drop the last short frame differently.
_TAIL_SLACK_MS: Final = 50.0
# Close codes no close frame may carry: the connection was lost. Replayed as a drop.
_LOST: Final = frozenset({1006, 1015})
_NOT_SENT: Final = "(not sent)"


@final
@attrs.frozen
class _Step:
    """One server-side entry and its gates."""

    entry: ServerMessage | ServerRaw | Close
    audio: float
    """Audio the recorded client sent before it: ms, or bytes for compressed audio."""
    nbytes: int
    """Bytes of audio the recorded client sent before it."""
    controls: int
    """Waited-for client messages before it."""
    text: str | None
    """The frame to send, rendered once (``None`` for a close or a ``Begin``)."""
    kind: str | None = None
    """The server message's ``type`` (of a ``server_raw`` frame too, if it is JSON)."""


@final
@attrs.frozen
class _Control:
    type: str
    step: int
    """Index of the first step after this client message."""
    t: float
    audio: float
    """Audio the recorded client sent before it, as in ``_Step``."""
    nbytes: int


def _recorded_format(session: RecordedSession) -> AudioFormat | None:
    try:
        return session.audio_format
    except (InvalidParameter, ValueError):
        return None  # an invalid recorded request: the replay's checks answer it


def _render(message: Mapping[str, Any]) -> str:
    # A lone surrogate (a recording may hold one) as its escape: a frame is UTF-8.
    return _escape_lone_surrogates(
        json.dumps(dict(message), separators=(",", ":"), ensure_ascii=False)
    )


def _is_begin(entry: object) -> bool:
    return isinstance(entry, ServerMessage) and entry.message.get("type") == "Begin"


def _kind(entry: ServerMessage | ServerRaw | Close) -> str | None:
    if isinstance(entry, ServerMessage):
        message: Any = entry.message
    elif isinstance(entry, ServerRaw):
        try:
            message = json.loads(entry.text)
        except (ValueError, RecursionError):
            return None
    else:
        return None
    kind = message.get("type") if isinstance(message, dict | Mapping) else None
    return kind if isinstance(kind, str) else None


def audio_seconds(ms: float) -> int:
    """Whole seconds of ``ms`` milliseconds of audio, as ``Termination`` reports them.

    Rounded to the nearest second, halves up: the shipped recordings'
    ``audio_duration_seconds`` all agree with it.
    """
    return math.floor(ms / 1000 + 0.5)


def _is_end_of_turn(step: _Step) -> bool:
    message = step.entry.message if isinstance(step.entry, ServerMessage) else {}
    return message.get("type") == "Turn" and message.get("end_of_turn") is True


def _formatted_copy(first: _Step, second: _Step) -> bool:
    if not (isinstance(first.entry, ServerMessage) and isinstance(second.entry, ServerMessage)):
        return False
    a, b = first.entry.message, second.entry.message
    return (
        _is_end_of_turn(second)
        and b.get("turn_is_formatted") is True
        and a.get("turn_is_formatted") is not True
        and b.get("turn_order") == a.get("turn_order")
    )


@final
class ReplayPlan:
    """A recording prepared for replay: computed once, shared by every connection."""

    def __init__(self, session: RecordedSession) -> None:
        if not isinstance(session, RecordedSession):
            raise TypeError(f"expected a RecordedSession, not {type(session).__name__}")
        self.session = session
        self.recorded_format = _recorded_format(session)
        """The recorded request's audio format (``None`` if the request was invalid)."""
        pcm = self.recorded_format
        self.format = pcm if pcm is not None and pcm.is_pcm else None
        """The recorded PCM format that gives audio durations; ``None``: count bytes."""
        steps: list[_Step] = []
        controls: list[_Control] = []
        nbytes = 0
        # The first Begin goes first, ungated: the service sends it on connect, and
        # audio recorded before it (a client that streams at once) is a race.
        begin = next(
            (
                e
                for e in session.entries
                if isinstance(e, ServerMessage | ServerRaw) and _kind(e) == "Begin"
            ),
            None,
        )
        if isinstance(begin, ServerMessage | ServerRaw):
            text = begin.text if isinstance(begin, ServerRaw) else None
            steps.append(_Step(begin, 0.0, 0, 0, text, "Begin"))
        self.ungated = len(steps)
        """Steps before this index (the first ``Begin``) go out at once, whatever the pacing."""
        for entry in session.entries:
            if entry is begin:
                continue
            if isinstance(entry, ClientAudio):
                nbytes += entry.nbytes
                continue
            audio = self.format.duration_ms(nbytes) if self.format else float(nbytes)
            if isinstance(entry, RecordedClientMessage):
                if entry.type not in _UNANSWERED:
                    controls.append(_Control(entry.type, len(steps), entry.t, audio, nbytes))
                continue
            text = None
            if isinstance(entry, ServerRaw):
                text = entry.text
            elif isinstance(entry, ServerMessage) and not _is_begin(entry):
                text = _render(entry.message)
            steps.append(_Step(entry, audio, nbytes, len(controls), text, _kind(entry)))
        self.steps: tuple[_Step, ...] = tuple(steps)
        # Each step's audio gate in ms (bytes when the recording is not PCM), and in bytes:
        # a live client whose audio is compressed is gated by bytes.
        self.gates = tuple(step.audio for step in steps)
        self.byte_gates = tuple(float(step.nbytes) for step in steps)
        self.controls: tuple[_Control, ...] = tuple(controls)
        self.has_terminate = any(c.type == "Terminate" for c in controls)


def request_differences(
    recorded: StreamingParams, live: StreamingParams
) -> list[tuple[str, str, str]]:
    """``(name, recorded, live)`` for each known parameter whose values differ, by name.

    Unknown parameters (``extra``) and credentials are not compared. Values are
    shown as the URL carries them, ``(not sent)`` when a side left one out.
    """
    a = recorded.wire_values()
    b = live.wire_values()
    return [
        (name, a.get(name, _NOT_SENT), b.get(name, _NOT_SENT))
        for name in sorted(a.keys() | b.keys())
        if name not in CREDENTIAL_QUERY_KEYS and a.get(name) != b.get(name)
    ]


def _amount(value: float) -> str:
    """An amount of audio for a message: whole when it is, else to three decimals."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _recorded_params(session: RecordedSession) -> StreamingParams | None:
    try:
        return session.params
    except (InvalidParameter, ValueError):
        return None


@final
class Replay:
    """The server side of one live connection, played from a :class:`ReplayPlan`.

    Feed it the client's accepted audio (:meth:`receive_audio`) and messages
    (:meth:`receive_message`), and the passing of time (:meth:`advance`); send
    what :meth:`data_to_send` returns. ``session_id`` and ``now_unix`` (the wall
    clock at the opening) make ``Begin`` unique and unexpired: its ``id`` becomes
    ``session_id`` and its ``expires_at`` ``now_unix`` plus three hours.

    Every departure of the live client from the recording is kept in
    :attr:`departures`; a strict replay closes with 4900 at the first one.
    """

    def __init__(
        self,
        plan: ReplayPlan,
        params: StreamingParams,
        *,
        pacing: Pacing = "audio",
        speed: float = 1.0,
        strict: bool = False,
        session_id: str | None = None,
        now_unix: float = 0.0,
    ) -> None:
        if pacing not in ("audio", "wall"):
            raise ValueError(f"pacing must be 'audio' or 'wall', got {pacing!r}")
        if type(speed) not in (int, float) or not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be a number > 0, got {speed!r}")
        self.plan = plan
        self.pacing: Pacing = pacing
        self.speed = float(speed)
        self.strict = strict
        self.format = AudioFormat.from_params(params)
        self.session_id = session_id if session_id is not None else str(uuid.uuid4())
        self.expires_at = int(now_unix) + SESSION_LIFETIME
        self.departures: list[Departure] = []
        """Every departure from the recording so far, in order."""
        self._by_bytes = plan.format is None or not self.format.is_pcm
        self._gates = plan.byte_gates if self._by_bytes else plan.gates
        self._bytes = 0
        self._pos = 0  # the next step to send
        self._matched = 0  # recorded controls matched (or skipped) so far
        # Steps below this index go out without waiting for audio or time: the first
        # Begin (the plan's ungated steps), and what a ForceEndpoint released.
        self._release_until = plan.ungated
        # After Terminate: steps from this index wait for no audio (none will come) ...
        self._audio_free_from: int | None = None
        # ... and those from this one are timed from the live Terminate (``_shift``).
        self._shift_from: int | None = None
        self._shift: tuple[float, float] = (0.0, 0.0)
        # After an early Terminate: the live audio then, and the first step after the
        # recorded Terminate (see _dropped).
        self._early: tuple[float, int] | None = None
        self._now = 0.0
        self._out: list[Action] = []
        self._finished = False
        self._waiting_for_client = False
        recorded = _recorded_params(plan.session)
        differences = request_differences(recorded, params) if recorded is not None else []
        for name, was, now in differences:
            self.departures.append(Departure(t=0.0, expected=f"{name}={was}", got=f"{name}={now}"))
        if differences and strict:
            shown = "; ".join(f"{name} recorded {was}, got {now}" for name, was, now in differences)
            self._mismatch(f"request differs: {shown}")
            return
        self._pump()

    # -- state ------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Whether the replay closed the connection (nothing more will be sent)."""
        return self._finished

    @property
    def waiting_for_client(self) -> bool:
        """Whether the recording is played out and the client is to close the connection."""
        return self._waiting_for_client

    @property
    def live_audio(self) -> float:
        """The audio received so far: ms, or bytes when either side's audio is compressed."""
        if self._by_bytes:
            return float(self._bytes)
        return self.format.duration_ms(self._bytes)

    def data_to_send(self) -> list[Action]:
        """Return the actions produced since the last call, in order, and forget them."""
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        """When the next entry falls due if only time passes (wall pacing), else ``None``."""
        if self._finished or self._pos >= len(self.plan.steps):
            return None
        if not self._audio_open(self._pos) or not self._controls_open(self._pos):
            return None
        due = self._clock_gate(self._pos)
        return due if due > self._now else None

    # -- inputs -----------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Let time pass to ``now`` (seconds since the connection opened)."""
        self._tick(now)
        self._pump()

    def receive_audio(self, nbytes: int, now: float) -> None:
        """The client sent a binary frame of ``nbytes`` bytes (already checked)."""
        self._tick(now)
        if self._finished:
            return
        self._bytes += nbytes
        self._pump()

    def receive_message(self, message: ClientMessage, now: float) -> None:
        """The client sent ``message`` (already parsed and checked)."""
        self._tick(now)
        if self._finished or message.type in _UNANSWERED:
            return
        controls = self.plan.controls
        expected = controls[self._matched] if self._matched < len(controls) else None
        if expected is not None and expected.type == message.type:
            if message.type == "Terminate":
                self._terminate(self._matched)
            else:
                self._matched += 1
        elif message.type == "Terminate":
            self._unexpected_terminate()
        else:
            wanted = expected.type if expected is not None else "no more control messages"
            if self._depart(wanted, message.type):
                self._release_next_end_of_turn()
        self._pump()

    def client_closed(self) -> None:
        """The client closed the connection: the replay is over."""
        self._finished = True

    # -- departures -------------------------------------------------------------------

    def _mismatch(self, problem: str) -> None:
        # The reason is the problem alone: code 4900 itself means "replay mismatch"
        # (aai_proto's CLOSE_CODES), and a client shows that meaning before the reason.
        self._out.append(CloseConnection(MISMATCH_CODE, close_reason(problem)))
        self._finished = True

    def _depart(self, expected: str, got: str) -> bool:
        """Note a departure; a strict replay closes. Return whether the replay goes on."""
        self.departures.append(Departure(t=self._now, expected=expected, got=got))
        if self.strict:
            self._mismatch(f"expected {expected}, got {got}")
            return False
        return True

    def _unexpected_terminate(self) -> None:
        """A ``Terminate`` where the recording expects another control message, or none."""
        controls = self.plan.controls
        target = next(
            (i for i in range(self._matched, len(controls)) if controls[i].type == "Terminate"),
            None,
        )
        expected = controls[self._matched].type if self._matched < len(controls) else None
        if not self._depart(expected or "no more control messages", "Terminate"):
            return
        if target is not None:
            self._terminate(target)
        elif not self.plan.has_terminate:
            self._synthesize_termination()
        # else: a second Terminate, which the client's checker reports; not answered

    def _terminate(self, target: int) -> None:
        """The live ``Terminate``, taken as the recorded one at ``controls[target]``.

        Early (the live audio short of the recorded audio before it by more than the
        tail slack): strict closes 4900; lenient ends with what the live audio
        reached (see :meth:`_dropped`). Either way no audio will come: what is left
        waits for no audio, and with wall pacing is timed from the live Terminate.
        """
        recorded = self.plan.controls[target]
        live = self.live_audio
        before = float(recorded.nbytes) if self._by_bytes else recorded.audio
        if live + _EPSILON + self._slack < before:
            unit = "bytes" if self._by_bytes else "ms"
            if not self._depart(
                f"{_amount(before)} {unit} of audio before Terminate", f"{_amount(live)} {unit}"
            ):
                return
            self._early = (live, recorded.step)
        self._matched = target + 1
        self._audio_free_from = self._pos
        self._shift_from = recorded.step
        self._shift = (recorded.t, self._now)

    def _dropped(self, index: int) -> bool:
        """After an early ``Terminate``, whether step ``index`` is never sent.

        Dropped: an entry whose audio gate the live audio did not reach, before the
        recorded ``Terminate`` or, when it is a ``Turn``, after it (the turns that
        end a session are gated on the audio before the recorded Terminate).
        """
        if self._early is None or index < self._release_until:
            return False
        live, boundary = self._early
        if self._gates[index] <= live + _EPSILON:
            return False
        return index < boundary or self.plan.steps[index].kind == "Turn"

    def _synthesize_termination(self) -> None:
        """A recording without ``Terminate``: answer with a ``Termination`` and close 1000."""
        steps = self.plan.steps
        while self._pos < len(steps) and self._audio_open(self._pos):
            entry = steps[self._pos].entry
            if isinstance(entry, Close) and entry.by == "client":
                break
            if self._send_step(self._pos):
                return  # the recording closes the connection here
        self._pos = len(steps)
        ms = self.format.duration_ms(self._bytes) if self.format.is_pcm else 0.0
        termination = Termination(
            audio_duration_seconds=audio_seconds(ms),
            session_duration_seconds=round(self._now),
        )
        self._out.append(Send(dump_server_message(termination)))
        self._out.append(CloseConnection(1000, "Session Ended"))
        self._finished = True

    def _release_next_end_of_turn(self) -> None:
        """Lenient, unrecorded ``ForceEndpoint``: release the next end-of-turn ``Turn``."""
        steps = self.plan.steps
        for index in range(self._pos, len(steps)):
            step = steps[index]
            if step.controls > self._matched:
                return  # beyond the next recorded control message: nothing to release
            if _is_end_of_turn(step):
                last = index
                if index + 1 < len(steps) and _formatted_copy(step, steps[index + 1]):
                    last = index + 1
                self._release_until = max(self._release_until, last + 1)
                return

    # -- gates ------------------------------------------------------------------------

    def _audio_open(self, index: int) -> bool:
        if index < self._release_until:
            return True
        if self._audio_free_from is not None and index >= self._audio_free_from:
            return True
        return self.live_audio + _EPSILON >= self._gates[index]

    @property
    def _slack(self) -> float:
        return 0.0 if self._by_bytes else _TAIL_SLACK_MS

    def _controls_open(self, index: int) -> bool:
        return self.plan.steps[index].controls <= self._matched

    def _clock_gate(self, index: int) -> float:
        if self.pacing == "audio" or index < self._release_until:
            return 0.0
        t = self.plan.steps[index].entry.t
        due = t / self.speed
        if self._shift_from is not None and index >= self._shift_from:
            recorded_t, live_now = self._shift
            due = min(due, live_now + max(t - recorded_t, 0.0) / self.speed)
        return due

    def _tick(self, now: float) -> None:
        if now > self._now:
            self._now = now

    def _pump(self) -> None:
        """Send every entry whose gates are open, in order."""
        steps = self.plan.steps
        while not self._finished and self._pos < len(steps):
            index = self._pos
            if self._dropped(index):
                self._pos += 1
                continue
            if not (
                self._audio_open(index)
                and self._controls_open(index)
                and self._clock_gate(index) <= self._now
            ):
                return
            if self._send_step(index):
                return
        if self._pos >= len(steps) and not self._finished:
            self._waiting_for_client = True

    def _send_step(self, index: int) -> bool:
        """Send step ``index``; return True if it ended the replay."""
        step = self.plan.steps[index]
        self._pos = index + 1
        entry = step.entry
        if isinstance(entry, Close):
            if entry.code in _LOST:
                self._out.append(Abort())
                self._finished = True
            elif entry.by == "server":
                self._out.append(CloseConnection(entry.code, close_reason(entry.reason)))
                self._finished = True
            else:
                self._waiting_for_client = True
            return True
        text = step.text
        if text is None:
            assert isinstance(entry, ServerMessage)
            text = _render({**entry.message, "id": self.session_id, "expires_at": self.expires_at})
        elif self._early is not None and step.kind == "Termination":
            text = self._honest_termination(entry, text)
        self._out.append(Send(text))
        return False

    def _honest_termination(self, entry: ServerMessage | ServerRaw, text: str) -> str:
        """The recorded ``Termination``, reporting the live audio after an early Terminate.

        Left as recorded when the live audio is compressed (no duration to report) or
        the entry is a ``server_raw`` frame (sent byte for byte).
        """
        if not isinstance(entry, ServerMessage) or not self.format.is_pcm:
            return text
        seconds = audio_seconds(self.format.duration_ms(self._bytes))
        return _render({**entry.message, "audio_duration_seconds": seconds})
