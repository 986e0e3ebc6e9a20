"""aai-replay: replay recorded AssemblyAI streaming sessions to any client, offline.

Everything public is importable from here; the ``_``-modules are private.

- Session files (format version 1): :func:`load_session`, :func:`write_session`,
  :class:`SessionWriter` and the entry classes.
- The replay without I/O: :class:`ReplayPlan`, :class:`Replay` (the recording's
  gates), :class:`ReplayConnection` (protocol checks, replay and faults for one
  connection) and the :data:`Action` values it asks its I/O layer to perform.
- The server: :class:`ReplayServer` and :func:`open_replay_server` (trio), and
  :class:`BackgroundReplayServer` (a thread, for code that is not trio). They need
  trio and trio-websocket, and are imported on first use.
- :class:`Faults`: failures to inject, to test a client's error paths.
- The journal: a :class:`ConnectionRecord` of what each connection carried
  (``ReplayServer.journal``), with its :class:`ViolationRecord` and
  :class:`Departure` findings.
- :func:`synthesize`: a plausible session made from audio and its transcript;
  :func:`record`: a proxy to the real service that writes the sessions it carries
  (trio, imported on first use; :class:`OutputPathError` when it cannot write).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._actions import MAX_REASON_BYTES, Abort, Action, CloseConnection, Send, close_reason
from ._connection import ReplayConnection, ReplayOptions
from ._faults import Faults, FaultStage
from ._info import Finding, SessionSummary, check_session, format_summary, summarize
from ._journal import (
    AudioReceived,
    ClientMessageRecord,
    CloseRecord,
    ConnectionRecord,
    Departure,
    ServerMessageRecord,
    ViolationRecord,
)
from ._replay import MISMATCH_CODE, SESSION_LIFETIME, Pacing, Replay, ReplayPlan
from ._scenario import Scenario, ScenarioEntry, ScenarioFormatError, load_scenario
from ._scrub import EntryHook, mask_text, scrub_session
from ._session import (
    CREDENTIAL_QUERY_KEYS,
    FORMAT_VERSION,
    ClientAudio,
    ClientMessage,
    Close,
    Entry,
    Header,
    RecordedSession,
    Request,
    ServerMessage,
    ServerRaw,
    SessionFormatError,
    SessionWriter,
    Source,
    dumps_session,
    load_session,
    loads_session,
    strip_credentials,
    write_session,
)
from ._shipped import ShippedSession, resolve_session, shipped_sessions
from ._synth import SpeechRegion, SynthesisError, audio_ref_for, detect_speech, synthesize

if TYPE_CHECKING:
    from ._record import OutputPathError, record, session_path
    from ._server import ReplayServer, open_replay_server
    from ._thread import BackgroundRecorder, BackgroundReplayServer

__all__ = [
    "CREDENTIAL_QUERY_KEYS",
    "FORMAT_VERSION",
    "MAX_REASON_BYTES",
    "MISMATCH_CODE",
    "SESSION_LIFETIME",
    "Abort",
    "Action",
    "AudioReceived",
    "BackgroundRecorder",
    "BackgroundReplayServer",
    "ClientAudio",
    "ClientMessage",
    "ClientMessageRecord",
    "Close",
    "CloseConnection",
    "CloseRecord",
    "ConnectionRecord",
    "Departure",
    "Entry",
    "EntryHook",
    "FaultStage",
    "Faults",
    "Finding",
    "Header",
    "OutputPathError",
    "Pacing",
    "RecordedSession",
    "Replay",
    "ReplayConnection",
    "ReplayOptions",
    "ReplayPlan",
    "ReplayServer",
    "Request",
    "Scenario",
    "ScenarioEntry",
    "ScenarioFormatError",
    "Send",
    "ServerMessage",
    "ServerMessageRecord",
    "ServerRaw",
    "SessionFormatError",
    "SessionSummary",
    "SessionWriter",
    "ShippedSession",
    "Source",
    "SpeechRegion",
    "SynthesisError",
    "ViolationRecord",
    "audio_ref_for",
    "check_session",
    "close_reason",
    "detect_speech",
    "dumps_session",
    "format_summary",
    "load_scenario",
    "load_session",
    "loads_session",
    "mask_text",
    "open_replay_server",
    "record",
    "resolve_session",
    "scrub_session",
    "session_path",
    "shipped_sessions",
    "strip_credentials",
    "summarize",
    "synthesize",
    "write_session",
]

# The names that need trio, imported when first used.
_LAZY = {
    "ReplayServer": "._server",
    "open_replay_server": "._server",
    "BackgroundReplayServer": "._thread",
    "BackgroundRecorder": "._thread",
    "record": "._record",
    "OutputPathError": "._record",
    "session_path": "._record",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aai_replay' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
