"""What the synthesizer's and the recorder's tests share: the shipped sessions, one check."""

from __future__ import annotations

from pathlib import Path

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
