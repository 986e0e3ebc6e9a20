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
from ._session import ClientAudio, Close, RecordedSession, ServerMessage, ServerRaw
from ._session import ClientMessage as RecordedClientMessage

__all__ = ["MISMATCH_CODE", "SESSION_LIFETIME", "Pacing", "Replay", "ReplayPlan"]

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


@final
@attrs.frozen
class _Step:
    """One server-side entry and its gates."""

    entry: ServerMessage | ServerRaw | Close
    audio: float
    """Audio the recorded client sent before it: ms, or bytes for compressed audio."""
    controls: int
    """Waited-for client messages before it."""
    text: str | None
    """The frame to send, rendered once (``None`` for a close or a ``Begin``)."""


@final
@attrs.frozen
class _Control:
    type: str
    step: int
    """Index of the first step after this client message."""
    t: float
    audio: float
    """Audio the recorded client sent before it, as in ``_Step``."""


def _recorded_format(session: RecordedSession) -> AudioFormat | None:
    try:
        return session.audio_format
    except (InvalidParameter, ValueError):
        return None  # an invalid recorded request: the replay's checks answer it


def _render(message: Mapping[str, Any]) -> str:
    return json.dumps(dict(message), separators=(",", ":"), ensure_ascii=False)


def _is_begin(entry: object) -> bool:
    return isinstance(entry, ServerMessage) and entry.message.get("type") == "Begin"


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
        for entry in session.entries:
            if isinstance(entry, ClientAudio):
                nbytes += entry.nbytes
                continue
            audio = self.format.duration_ms(nbytes) if self.format else float(nbytes)
            if isinstance(entry, RecordedClientMessage):
                if entry.type not in _UNANSWERED:
                    controls.append(_Control(entry.type, len(steps), entry.t, audio))
                continue
            text = None
            if isinstance(entry, ServerRaw):
                text = entry.text
            elif isinstance(entry, ServerMessage) and not _is_begin(entry):
                text = _render(entry.message)
            steps.append(_Step(entry, audio, len(controls), text))
        self.steps: tuple[_Step, ...] = tuple(steps)
        self.controls: tuple[_Control, ...] = tuple(controls)
        self.has_terminate = any(c.type == "Terminate" for c in controls)


def _describe_format(fmt: AudioFormat) -> str:
    if fmt.is_pcm:
        return f"{fmt.encoding} at {fmt.sample_rate} Hz"
    return fmt.encoding


@final
class Replay:
    """The server side of one live connection, played from a :class:`ReplayPlan`.

    Feed it the client's accepted audio (:meth:`receive_audio`) and messages
    (:meth:`receive_message`), and the passing of time (:meth:`advance`); send
    what :meth:`data_to_send` returns. ``session_id`` and ``now_unix`` (the wall
    clock at the opening) make ``Begin`` unique and unexpired: its ``id`` becomes
    ``session_id`` and its ``expires_at`` ``now_unix`` plus three hours.
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
        self._by_bytes = plan.format is None or not self.format.is_pcm
        self._bytes = 0
        self._pos = 0  # the next step to send
        self._matched = 0  # recorded controls matched (or skipped) so far
        # Steps below this index go out without waiting for audio or time (ForceEndpoint).
        self._release_until = 0
        # After Terminate: steps from this index wait for no audio (none will come) ...
        self._audio_free_from: int | None = None
        # ... and those from this one are timed from the live Terminate (``_shift``).
        self._shift_from: int | None = None
        self._shift: tuple[float, float] = (0.0, 0.0)
        # After an early Terminate: the steps in [from, to) are dropped.
        self._skip: tuple[int, int] = (0, 0)
        self._now = 0.0
        self._out: list[Action] = []
        self._finished = False
        self._waiting_for_client = False
        if strict:
            recorded = plan.recorded_format
            if recorded is not None and (
                recorded.encoding,
                recorded.sample_rate,
            ) != (self.format.encoding, self.format.sample_rate):
                self._mismatch(
                    f"expected {_describe_format(recorded)}, got {_describe_format(self.format)}"
                )
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
        if self.strict:
            self._strict_control(message.type, expected)
        elif message.type == "Terminate":
            self._lenient_terminate()
        elif expected is not None and expected.type == message.type:
            self._matched += 1
        else:
            self._release_next_end_of_turn()
        self._pump()

    def client_closed(self) -> None:
        """The client closed the connection: the replay is over."""
        self._finished = True

    # -- departures -------------------------------------------------------------------

    def _mismatch(self, problem: str) -> None:
        self._out.append(
            CloseConnection(MISMATCH_CODE, close_reason(f"replay mismatch: {problem}"))
        )
        self._finished = True

    def _strict_control(self, kind: str, expected: _Control | None) -> None:
        """Strict: the live control messages must be the recorded ones, in order."""
        if expected is None:
            self._mismatch(f"expected no more control messages, got {kind}")
            return
        if expected.type != kind:
            self._mismatch(f"expected {expected.type}, got {kind}")
            return
        # Entries before the recorded Terminate that the live audio never reached
        # would wait for ever: the client sent less audio than recorded.
        if kind == "Terminate" and any(
            not self._audio_open(i, self._slack) for i in range(self._pos, expected.step)
        ):
            unit = "bytes" if self._by_bytes else "ms"
            self._mismatch(
                f"expected {expected.audio:.0f} {unit} of audio before Terminate, "
                f"got {self.live_audio:.0f} {unit}"
            )
            return
        if kind == "Terminate":
            self._audio_free_from = self._pos  # no audio comes after Terminate
        self._matched += 1

    def _lenient_terminate(self) -> None:
        """Lenient ``Terminate``: see the format document's rules for an early one."""
        controls = self.plan.controls
        target = next(
            (i for i in range(self._matched, len(controls)) if controls[i].type == "Terminate"),
            None,
        )
        if target is None:
            if not self.plan.has_terminate:
                self._synthesize_termination()
            return  # a second Terminate: the service does not answer it
        recorded = controls[target]
        boundary = recorded.step
        # Keep the entries before the recorded Terminate that the live audio reached
        # (with wall pacing some may still wait for their time); drop the rest.
        reached = self._pos
        while reached < boundary and self._audio_open(reached, self._slack):
            reached += 1
        self._skip = (reached, boundary)
        self._matched = target + 1
        self._audio_free_from = self._pos
        self._shift_from = boundary
        self._shift = (recorded.t, self._now)

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
            audio_duration_seconds=round(ms / 1000),
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

    def _audio_open(self, index: int, slack: float = 0.0) -> bool:
        if index < self._release_until:
            return True
        if self._audio_free_from is not None and index >= self._audio_free_from:
            return True
        return self.live_audio + _EPSILON + slack >= self.plan.steps[index].audio

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
            skip_from, skip_to = self._skip
            if skip_from <= self._pos < skip_to:
                self._pos = skip_to
                continue
            index = self._pos
            if not (
                self._audio_open(index)
                and self._controls_open(index)
                and self._clock_gate(index) <= self._now
            ):
                return
            if self._send_step(index):
                return

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
        self._out.append(Send(text))
        if self._pos >= len(self.plan.steps):
            self._waiting_for_client = True
        return False
