"""What a session holds, for people: ``aai-replay info`` and ``aai-replay check``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, final
from urllib.parse import urlencode

import attrs

from aai_proto import (
    InvalidParameter,
    RemoteProtocolError,
    ServerError,
    Termination,
    Turn,
    TurnTracker,
    parse_server_message,
)

from ._session import (
    ClientAudio,
    ClientMessage,
    Close,
    RecordedSession,
    ServerMessage,
    ServerRaw,
    SessionFormatError,
    load_session,
)

__all__ = ["Finding", "SessionSummary", "check_session", "format_summary", "summarize"]


@final
@attrs.frozen(kw_only=True)
class SessionSummary:
    """The facts ``aai-replay info`` shows about a session."""

    duration: float
    """Seconds from the opening to the last entry."""
    audio_frames: int
    audio_bytes: int
    audio_ms: float | None
    """Milliseconds of audio the client sent (``None`` if the format has no fixed rate)."""
    server_messages: int
    client_messages: tuple[str, ...]
    """The ``type`` of each client text message, in order."""
    turns: int
    """Distinct ``turn_order`` values."""
    finals: tuple[str, ...]
    """The final transcript of each turn, as a client that follows the rules reads it."""
    errors: tuple[ServerError, ...]
    termination: Termination | None
    close: Close | None


def summarize(session: RecordedSession) -> SessionSummary:
    """Count what ``session`` holds and read its final transcripts."""
    try:
        params = session.params
        format_turns = bool(params.format_turns)
        fmt = session.audio_format
    except (InvalidParameter, ValueError):
        format_turns, fmt = False, None
    tracker = TurnTracker(format_turns=format_turns)
    frames = nbytes = server = 0
    controls: list[str] = []
    orders: set[int] = set()
    finals: list[str] = []
    errors: list[ServerError] = []
    termination = None
    for entry in session.entries:
        if isinstance(entry, ClientAudio):
            frames += 1
            nbytes += entry.nbytes
        elif isinstance(entry, ClientMessage):
            controls.append(entry.type)
        elif isinstance(entry, ServerMessage | ServerRaw):
            server += 1
            text = entry.text if isinstance(entry, ServerRaw) else json.dumps(dict(entry.message))
            try:
                event = parse_server_message(text)
            except RemoteProtocolError:
                continue
            if isinstance(event, Turn):
                orders.add(event.turn_order)
                update = tracker.update(event)
                if update is not None and update.is_final:
                    finals.append(update.transcript)
            elif isinstance(event, ServerError):
                errors.append(event)
            elif isinstance(event, Termination):
                termination = event
    return SessionSummary(
        duration=session.duration,
        audio_frames=frames,
        audio_bytes=nbytes,
        audio_ms=fmt.duration_ms(nbytes) if fmt is not None and fmt.is_pcm else None,
        server_messages=server,
        client_messages=tuple(controls),
        turns=len(orders),
        finals=tuple(finals),
        errors=tuple(errors),
        termination=termination,
        close=session.close,
    )


def format_summary(session: RecordedSession) -> str:
    """A human summary of ``session``: what it is, its audio, turns, finals and close."""
    s = summarize(session)
    header = session.header
    lines = [f"session:     {session.path if session.path is not None else '<session>'}"]
    if header.description:
        lines.append(f"description: {header.description}")
    if header.source:
        lines.append(f"source:      {header.source}")
    query = urlencode(list(header.request.query.items()))
    lines.append(f"request:     {header.request.path}{'?' + query if query else ''}")
    lines.append(f"duration:    {s.duration:.2f} s")
    audio = f"{s.audio_frames} frames, {s.audio_bytes} bytes"
    if s.audio_ms is not None:
        audio += f" ({s.audio_ms / 1000:.2f} s)"
    if header.audio:
        audio += f"; file {header.audio}"
    lines.append(f"audio:       {audio}")
    controls = ", ".join(s.client_messages) if s.client_messages else "none"
    lines.append(f"client:      {controls}")
    lines.append(f"server:      {s.server_messages} messages")
    lines.append(f"turns:       {s.turns}")
    lines.append(f"finals:      {len(s.finals)}")
    lines.extend(f"  {i}. {text}" for i, text in enumerate(s.finals, start=1))
    for error in s.errors:
        lines.append(f"error:       {error.error_code} {error.error}")
    if s.termination is not None:
        t = s.termination
        lines.append(
            f"termination: audio {t.audio_duration_seconds} s, "
            f"session {t.session_duration_seconds} s"
        )
    if s.close is None:
        lines.append("close:       none recorded")
    else:
        c = s.close
        lines.append(f"close:       {c.code} {c.reason!r} by {c.by} at {c.t:.2f} s")
    return "\n".join(lines)


@final
@attrs.frozen(kw_only=True)
class Finding:
    """One thing ``check`` found in a session file: an ``error`` makes the file unusable."""

    level: Literal["error", "warning"]
    path: str
    line: int | None
    problem: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.level}: {self.problem}"


def check_session(path: str | os.PathLike[str]) -> list[Finding]:
    """Check the session file at ``path``; return what is wrong with it (nothing if valid).

    Errors: the format's rules, an unreadable file or audio sidecar, a ``server``
    entry that is not a valid server message. Warning: an audio sidecar whose
    length differs from the audio the ``client_audio`` entries add up to.
    """
    name = str(path)
    try:
        session = load_session(Path(path))
    except SessionFormatError as exc:
        return [Finding(level="error", path=exc.path, line=exc.line, problem=exc.problem)]
    except OSError as exc:
        return [Finding(level="error", path=name, line=None, problem=f"can't read: {exc}")]
    findings = []
    for line, entry in enumerate(session.entries, start=2):
        if isinstance(entry, ServerMessage):
            try:
                parse_server_message(json.dumps(dict(entry.message)))
            except RemoteProtocolError as exc:
                findings.append(Finding(level="error", path=name, line=line, problem=str(exc)))
    if session.header.audio is not None:
        try:
            audio = session.audio_bytes()
        except SessionFormatError as exc:
            findings.append(Finding(level="error", path=name, line=exc.line, problem=exc.problem))
        else:
            sent = sum(e.nbytes for e in session.entries if isinstance(e, ClientAudio))
            if len(audio) != sent:
                findings.append(
                    Finding(
                        level="warning",
                        path=name,
                        line=1,
                        problem=f"the audio file holds {len(audio)} bytes of audio; "
                        f"the client_audio entries add up to {sent}",
                    )
                )
    return findings
