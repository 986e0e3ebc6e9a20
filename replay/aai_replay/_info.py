"""What a session holds, for people: ``aai-replay info`` and ``aai-replay check``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, final
from urllib.parse import urlencode

import attrs

from aai_proto import (
    Begin,
    InvalidParameter,
    RemoteProtocolError,
    ServerError,
    ServerEvent,
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
    _escape_lone_surrogates,
    _read_file,
)

__all__ = ["Finding", "SessionSummary", "check_session", "format_summary", "summarize"]

# A lone surrogate (from a JSON escape) can't be printed: shown as its escape instead.
_printable = _escape_lone_surrogates


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
    """A human summary of ``session``: what it is, its audio, turns, finals and close.

    Printable as UTF-8 whatever the session holds: a lone surrogate is shown as its
    JSON escape (``\\ud800``).
    """
    s = summarize(session)
    header = session.header
    lines = [f"session:     {session.path if session.path is not None else '<session>'}"]
    if header.description:
        lines.append(f"description: {header.description}")
    if header.source:
        lines.append(f"source:      {header.source}")
    # surrogatepass: a lone surrogate (a JSON escape in the file) is shown
    # percent-escaped, as the bytes it would be, rather than raise.
    query = urlencode(list(header.request.query.items()), errors="surrogatepass")
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
    return _printable("\n".join(lines))


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


class _ServerOrder:
    """Checks, entry by entry, the order of a session's server messages.

    Only entries that parse as server messages take part: a ``server`` entry
    that does not is reported as invalid already, and a ``server_raw`` frame
    that does not is a recording of bad JSON, not a message out of order.
    """

    def __init__(self, close_line: int | None, close_by_server: bool) -> None:
        self.close_by_server = close_by_server
        self.close_line = close_line
        self.begin_line: int | None = None
        self.begins = 0
        self.turn_reported = False
        self.terminate_sent = False
        self.termination_line: int | None = None

    def client(self, entry: ClientMessage) -> None:
        if entry.type == "Terminate":
            self.terminate_sent = True

    def server(self, event: ServerEvent, line: int) -> list[str]:
        """What is wrong with ``event`` on ``line`` coming where it does."""
        problems = []
        if self.termination_line is not None:
            problems.append(f"server message after Termination (line {self.termination_line})")
        if isinstance(event, Begin):
            self.begins += 1
            if self.begin_line is None:
                self.begin_line = line
            else:
                which = "a second" if self.begins == 2 else "another"
                problems.append(f"{which} Begin (the first is on line {self.begin_line})")
        elif isinstance(event, Turn):
            if self.begin_line is None and not self.turn_reported:
                self.turn_reported = True
                problems.append("Turn before Begin")
        elif isinstance(event, Termination) and self.termination_line is None:
            self.termination_line = line
            # The service ends a session itself (an inactivity timeout, the session's
            # time limit) with a Termination or an Error, then closes: a Termination
            # nobody asked for is valid when the close is the server's. Followed by the
            # client's close, or by no close, it is a recording that makes no sense.
            if not self.terminate_sent and not self.close_by_server:
                if self.close_line is None:
                    why = "no close recorded"
                else:
                    why = f"the client closed on line {self.close_line}"
                problems.append(
                    "Termination without a Terminate from the client, "
                    f"and the close is not the server's ({why})"
                )
        return problems


def _finding(
    level: Literal["error", "warning"], path: str, line: int | None, problem: str
) -> Finding:
    return Finding(level=level, path=path, line=line, problem=_printable(problem))


def _order_findings(session: RecordedSession, lines: Sequence[int], name: str) -> list[Finding]:
    """The errors of the server messages of ``session``, whose entries are on ``lines``."""
    close = session.close
    order = _ServerOrder(
        lines[-1] if close is not None else None, close is not None and close.by == "server"
    )
    findings = []
    for line, entry in zip(lines, session.entries, strict=True):
        if isinstance(entry, ClientMessage):
            order.client(entry)
            continue
        if not isinstance(entry, ServerMessage | ServerRaw):
            continue
        text = entry.text if isinstance(entry, ServerRaw) else json.dumps(dict(entry.message))
        try:
            event = parse_server_message(text)
        except RemoteProtocolError as exc:
            if isinstance(entry, ServerMessage):
                findings.append(_finding("error", name, line, str(exc)))
            continue
        findings.extend(
            _finding("error", name, line, problem) for problem in order.server(event, line)
        )
    return findings


def _audio_findings(session: RecordedSession, name: str) -> list[Finding]:
    """What is wrong with the audio sidecar of ``session``, if it names one."""
    if session.header.audio is None:
        return []
    try:
        audio = session.audio_bytes()
    except SessionFormatError as exc:
        return [_finding("error", name, exc.line, exc.problem)]
    sent = sum(e.nbytes for e in session.entries if isinstance(e, ClientAudio))
    if len(audio) == sent:
        return []
    return [
        _finding(
            "warning",
            name,
            1,
            f"the audio file holds {len(audio)} bytes of audio; "
            f"the client_audio entries add up to {sent}",
        )
    ]


def check_session(path: str | os.PathLike[str]) -> list[Finding]:
    """Check the session file at ``path``; return what is wrong with it (nothing if valid).

    Every problem is reported, each with its line, not only the first. Errors: the
    format's rules (a line that breaks one is left out of the checks that follow), a
    file that is plainly no session (a WAV file, say: one error, in words), an
    unreadable file or audio sidecar, a ``server`` entry that is not a valid server
    message, and server messages out of order:

    - a ``Turn`` with no ``Begin`` before it (reported at the first such ``Turn``);
    - a second ``Begin`` (reported at each ``Begin`` after the first);
    - a server message after ``Termination`` (reported at each);
    - a ``Termination`` the client did not ask for (no ``Terminate`` before it)
      when the close is not the server's (the client's, or none). The service
      may end a session itself (an inactivity timeout sends ``Error`` or
      ``Termination`` unasked) and then closes: that stays valid.

    A ``server_raw`` entry takes part in the order rules when its text parses as
    a server message; one that does not parse is no order error.

    Warning: an audio sidecar whose length differs from the audio the
    ``client_audio`` entries add up to. Findings are in line order (one of the whole
    file first), the sidecar's last; the sidecar is checked only when the header
    loaded.
    """
    name = str(path)
    try:
        reading = _read_file(Path(path))
    except OSError as exc:
        return [_finding("error", name, None, f"can't read: {exc}")]
    findings = [_finding("error", e.path, e.line, e.problem) for e in reading.errors]
    session = reading.session
    if session is None:
        return findings
    findings.extend(_order_findings(session, reading.entry_lines, name))
    # Stable: on one line, the format's error before the order's.
    findings.sort(key=lambda f: -1 if f.line is None else f.line)
    return findings + _audio_findings(session, name)
