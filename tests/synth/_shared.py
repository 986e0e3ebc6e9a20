"""What the synthesizer's and the recorder's tests share: the shipped sessions, one check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aai_replay import ClientAudio, ClientMessage, RecordedSession, ServerMessage

SESSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "sessions"

NAMES = [
    "universal-format-turns",
    "universal-2026-formatted",
    "u3-pro",
    "language-detection",
    "diarization",
    "heartbeat",
    "server-error-3005",
    "inactivity-timeout",
    "synth-plain",
]
"""Every shipped session (a test checks that the folder holds exactly these)."""


def assert_server_follows_audio(session: RecordedSession) -> None:
    """Before ``Terminate``, no server message speaks of audio the client has not sent.

    The sessions are 16 kHz pcm_s16le: 32 bytes a millisecond.
    """
    sent_ms = 0.0
    terminated = False
    for entry in session.entries:
        if isinstance(entry, ClientAudio):
            sent_ms += entry.nbytes / 32
        elif isinstance(entry, ClientMessage):
            terminated = True
        elif isinstance(entry, ServerMessage) and not terminated:
            message = entry.message
            if message["type"] == "Turn":
                assert max(w["end"] for w in message["words"]) <= sent_ms
            elif message["type"] == "SpeechStarted":
                assert message["timestamp"] < sent_ms
            elif message["type"] == "Heartbeat":
                assert message["total_audio_received_ms"] <= sent_ms


def server_json(session: RecordedSession) -> list[dict[str, Any]]:
    """The server messages as JSON, Begin without its id and expiry (each replay makes its own)."""
    out = []
    for entry in session.entries:
        if isinstance(entry, ServerMessage):
            message = json.loads(json.dumps(dict(entry.message)))
            if message["type"] == "Begin":
                message.pop("id")
                message.pop("expires_at")
            out.append(message)
    return out
