"""Helpers of the replay tests, handed out by fixtures.

With ``--import-mode=importlib`` test modules can't import this file, so every
helper is a fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    Entry,
    Header,
    RecordedSession,
    Request,
    ServerMessage,
)

ROOT = Path(__file__).resolve().parents[2]
QUERY = {"sample_rate": "16000", "encoding": "pcm_s16le"}
FRAME = 1600  # 50 ms of 16 kHz pcm_s16le


@pytest.fixture
def sessions_dir() -> Path:
    """The shipped session fixtures."""
    return ROOT / "fixtures" / "sessions"


MakeSession = Callable[..., RecordedSession]


def make_session(
    entries: Sequence[Entry], query: Mapping[str, str] | None = None
) -> RecordedSession:
    return RecordedSession(Header(Request(query=QUERY if query is None else query)), entries)


@pytest.fixture(name="make_session")
def make_session_fixture() -> MakeSession:
    """``make_session(entries, query=None)``: a session with a plain header (16 kHz PCM)."""
    return make_session


def turn(order: int, text: str, *, end: bool = False, formatted: bool = False) -> dict[str, Any]:
    return {
        "turn_order": order,
        "turn_is_formatted": formatted,
        "end_of_turn": end,
        "transcript": text,
        "end_of_turn_confidence": 0.9 if end else 0.1,
        "words": [],
        "type": "Turn",
    }


@pytest.fixture(name="turn")
def turn_fixture() -> Callable[..., dict[str, Any]]:
    """``turn(order, text, end=False, formatted=False)``: a Turn message."""
    return turn


def basic_entries() -> list[Entry]:
    """Begin; 4 frames with a partial after 2 and the turn's end after 4; Terminate;
    Termination; close 1000."""
    return [
        ServerMessage(0.01, {"type": "Begin", "id": "rec-id", "expires_at": 1700000000}),
        ClientAudio(0.05, FRAME),
        ClientAudio(0.10, FRAME),
        ServerMessage(0.12, turn(0, "hello")),
        ClientAudio(0.15, FRAME),
        ClientAudio(0.20, FRAME),
        ServerMessage(0.25, turn(0, "hello world", end=True)),
        ClientMessage(0.30, {"type": "Terminate"}),
        ServerMessage(
            0.40,
            {"type": "Termination", "audio_duration_seconds": 0, "session_duration_seconds": 0},
        ),
        Close(0.41, 1000, "Session Ended", "server"),
    ]


@pytest.fixture
def basic_session() -> RecordedSession:
    """A small complete session: see ``basic_entries``."""
    return make_session(basic_entries())
