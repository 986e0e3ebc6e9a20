"""Events: what the server says, and what the transport reports.

Every event is a small immutable value whose field names are the wire's own. The
server adds keys to its messages over time; unknown keys are ignored when parsing,
and a message of a type this version does not know becomes an ``UnknownMessage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, final

import attrs

from ._errors import StreamingError

__all__ = [
    "Begin",
    "ConnectionClosed",
    "Event",
    "Heartbeat",
    "LLMGatewayResponse",
    "ServerError",
    "ServerEvent",
    "ServerWarning",
    "SessionConfiguration",
    "Silence",
    "SpeakerRevision",
    "SpeakerRevisionItem",
    "SpeechStarted",
    "Termination",
    "Turn",
    "UnknownMessage",
    "Word",
]


@final
@attrs.frozen(kw_only=True)
class SessionConfiguration:
    """The ``configuration`` newer servers put in ``Begin``: what the session runs with."""

    model: str | None = None
    mode: str | None = None
    api_version: str | None = None


@final
@attrs.frozen(kw_only=True)
class Begin:
    """The server's first message: the session is open."""

    type: ClassVar[str] = "Begin"
    id: str
    expires_at: int
    """When the session ends at the latest, in Unix seconds."""
    configuration: SessionConfiguration | None = None


@final
@attrs.frozen(kw_only=True)
class Word:
    """One word of a turn; times are milliseconds of session audio."""

    start: int
    end: int
    text: str
    confidence: float
    word_is_final: bool
    speaker: str | None = None


@final
@attrs.frozen(kw_only=True)
class Turn:
    """A transcript update for the turn numbered ``turn_order``.

    A turn gets several messages; ``end_of_turn`` marks the boundary, and with
    ``format_turns`` a formatted copy of the end may follow under the same
    ``turn_order``. :class:`~aai_proto.TurnTracker` reduces them to interim and final
    transcripts.
    """

    type: ClassVar[str] = "Turn"
    turn_order: int
    turn_is_formatted: bool
    end_of_turn: bool
    transcript: str
    end_of_turn_confidence: float
    words: tuple[Word, ...]
    utterance: str | None = None
    language_code: str | None = None
    language_confidence: float | None = None
    speaker_label: str | None = None
    speaker_confidence: float | None = None


@final
@attrs.frozen(kw_only=True)
class SpeechStarted:
    """Speech began at ``timestamp`` ms of session audio (U3 models)."""

    type: ClassVar[str] = "SpeechStarted"
    timestamp: int
    confidence: float | None = None


@final
@attrs.frozen(kw_only=True)
class Termination:
    """The server's last message of a session that ended normally."""

    type: ClassVar[str] = "Termination"
    audio_duration_seconds: int
    session_duration_seconds: int


@final
@attrs.frozen(kw_only=True)
class ServerError:
    """The server's ``Error`` message; a close with the same code follows.

    ``error_code`` is ``None`` for the legacy form ``{"error": "..."}``.
    """

    type: ClassVar[str] = "Error"
    error_code: int | None = None
    error: str


@final
@attrs.frozen(kw_only=True)
class ServerWarning:
    """The server's ``Warning`` message: something to know, the session goes on."""

    type: ClassVar[str] = "Warning"
    warning_code: int
    warning: str


@final
@attrs.frozen(kw_only=True)
class Heartbeat:
    """Periodic progress report (opt-in with ``session_heartbeat``)."""

    type: ClassVar[str] = "Heartbeat"
    total_audio_received_ms: int
    total_duration_ms: int
    realtime_factor: float
    max_speech_probability: float | None = None


@final
@attrs.frozen(kw_only=True)
class Silence:
    """A stretch of session audio with no speech (opt-in with ``acknowledge_silence``)."""

    type: ClassVar[str] = "Silence"
    start_ms: int
    end_ms: int


@final
@attrs.frozen(kw_only=True)
class SpeakerRevisionItem:
    """New speaker labels for the earlier turn ``turn_order``."""

    turn_order: int
    speaker_label: str | None = None
    words: tuple[Word, ...] = ()


@final
@attrs.frozen(kw_only=True)
class SpeakerRevision:
    """Corrected speaker labels of earlier turns (diarization, after ``Terminate``)."""

    type: ClassVar[str] = "SpeakerRevision"
    revisions: tuple[SpeakerRevisionItem, ...] = ()


@final
@attrs.frozen(kw_only=True)
class LLMGatewayResponse:
    """What the ``llm_gateway`` model answered for turn ``turn_order``; ``data`` is any JSON."""

    type: ClassVar[str] = "LLMGatewayResponse"
    turn_order: int
    transcript: str
    data: Any


@final
@attrs.frozen(kw_only=True)
class UnknownMessage:
    """A well-formed server message of a ``type`` this version does not know.

    ``data`` is the whole JSON object, ``type`` included.
    """

    type: str
    data: Mapping[str, Any] = attrs.field(hash=False)


@final
@attrs.frozen(kw_only=True)
class ConnectionClosed:
    """The WebSocket closed with ``code`` and ``reason``.

    ``error`` is set when this close is the session's failure: any code but 1000
    while the session was running, carrying the text of the server's ``Error``
    message when one came first. It is ``None`` for a normal close, a close after
    ``Termination`` (the session had ended well), a close this side started
    (``local``: :meth:`Client.close` or :meth:`Client.send_failed` came first),
    and a close after the server broke the protocol (that was the failure).
    """

    code: int
    reason: str = ""
    error: StreamingError | None = None
    local: bool = False


MESSAGE_TYPES: tuple[type[Any], ...] = (
    Begin,
    Turn,
    SpeechStarted,
    Termination,
    ServerError,
    ServerWarning,
    Heartbeat,
    Silence,
    SpeakerRevision,
    LLMGatewayResponse,
)
"""The event class of every server message type this version knows (each has ``type``)."""

ServerEvent = (
    Begin
    | Turn
    | SpeechStarted
    | Termination
    | ServerError
    | ServerWarning
    | Heartbeat
    | Silence
    | SpeakerRevision
    | LLMGatewayResponse
    | UnknownMessage
)
"""Any event a server text message parses to."""

Event = ServerEvent | ConnectionClosed
"""Any event a :class:`~aai_proto.Client` returns."""
