"""``check_session``: the order of a session's server messages."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    Entry,
    Finding,
    Header,
    RecordedSession,
    Request,
    ServerMessage,
    ServerRaw,
    check_session,
    write_session,
)

Turn = Callable[..., dict[str, Any]]

BEGIN = {"type": "Begin", "id": "rec-id", "expires_at": 1700000000}
TERMINATION = {"type": "Termination", "audio_duration_seconds": 0, "session_duration_seconds": 0}
TERMINATE = {"type": "Terminate"}
ENDED = Close(9.0, 1000, "Session Ended", "server")
NO_TERMINATE = "Termination without a Terminate from the client, and the close is not the server's"


def check(tmp_path: Path, entries: Sequence[Entry]) -> list[tuple[str, int | None, str]]:
    """Write a session of ``entries`` and check it: (level, line, problem) of each finding."""
    path = tmp_path / "s.jsonl"
    header = Header(Request(query={"sample_rate": "16000", "encoding": "pcm_s16le"}))
    write_session(RecordedSession(header, entries), path)
    findings = check_session(path)
    assert all(f.path == str(path) for f in findings)
    return [(f.level, f.line, f.problem) for f in findings]


# -- the shipped sessions -------------------------------------------------------------


def test_every_shipped_session_has_no_error(sessions_dir: Path) -> None:
    files = sorted(sessions_dir.glob("*.jsonl"))
    assert len(files) >= 5
    for path in files:
        errors = [f for f in check_session(path) if f.level == "error"]
        assert errors == [], path


def test_the_shipped_inactivity_timeout_is_valid(sessions_dir: Path) -> None:
    assert check_session(sessions_dir / "inactivity-timeout.jsonl") == []


def test_a_complete_session_is_valid(tmp_path: Path, basic_session: RecordedSession) -> None:
    path = tmp_path / "basic.jsonl"
    write_session(basic_session, path)
    assert check_session(path) == []


# -- rule 1: a Turn before Begin ------------------------------------------------------


def test_a_turn_before_begin_is_reported_at_the_first_such_turn(tmp_path: Path, turn: Turn) -> None:
    entries: list[Entry] = [
        ClientAudio(0.05, 1600),
        ServerMessage(0.1, turn(0, "hi")),
        ServerMessage(0.2, turn(0, "hi there")),
        ServerMessage(0.3, BEGIN),
        ServerMessage(0.4, turn(0, "hi there", end=True)),
    ]
    assert check(tmp_path, entries) == [("error", 3, "Turn before Begin")]


def test_a_turn_and_no_begin_at_all_is_a_turn_before_begin(tmp_path: Path, turn: Turn) -> None:
    assert check(tmp_path, [ServerMessage(0.1, turn(0, "hi"))]) == [
        ("error", 2, "Turn before Begin")
    ]


def test_a_raw_turn_before_begin_counts(tmp_path: Path, turn: Turn) -> None:
    entries: list[Entry] = [
        ServerRaw(0.1, json.dumps(turn(0, "hi"))),
        ServerMessage(0.2, BEGIN),
    ]
    assert check(tmp_path, entries) == [("error", 2, "Turn before Begin")]


def test_begin_may_come_after_audio(tmp_path: Path, turn: Turn) -> None:
    entries: list[Entry] = [
        ClientAudio(0.01, 1600),
        ServerMessage(0.02, BEGIN),
        ServerMessage(0.1, turn(0, "hi")),
    ]
    assert check(tmp_path, entries) == []


# -- rule 2: two Begins ---------------------------------------------------------------


def test_a_second_begin_is_reported_with_the_first_ones_line(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ClientAudio(0.05, 1600),
        ServerMessage(0.1, BEGIN),
    ]
    assert check(tmp_path, entries) == [
        ("error", 4, "a second Begin (the first is on line 2)"),
    ]


def test_each_begin_after_the_first_is_reported(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ServerRaw(0.1, json.dumps(BEGIN)),
        ServerMessage(0.2, BEGIN),
    ]
    assert check(tmp_path, entries) == [
        ("error", 3, "a second Begin (the first is on line 2)"),
        ("error", 4, "another Begin (the first is on line 2)"),
    ]


# -- rule 3: server messages after Termination ----------------------------------------


def test_each_server_message_after_termination_is_reported(tmp_path: Path, turn: Turn) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ClientMessage(0.1, TERMINATE),
        ServerMessage(0.2, TERMINATION),
        ServerMessage(0.3, turn(0, "late", end=True)),
        ServerRaw(0.4, '{"type": "Error", "error_code": 3005, "error": "Server error"}'),
        ServerMessage(0.5, {"type": "Mystery"}),
        ENDED,
    ]
    assert check(tmp_path, entries) == [
        ("error", 5, "server message after Termination (line 4)"),
        ("error", 6, "server message after Termination (line 4)"),
        ("error", 7, "server message after Termination (line 4)"),
    ]


def test_a_second_termination_is_a_message_after_termination(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ClientMessage(0.1, TERMINATE),
        ServerMessage(0.2, TERMINATION),
        ServerMessage(0.3, TERMINATION),
        ENDED,
    ]
    assert check(tmp_path, entries) == [
        ("error", 5, "server message after Termination (line 4)"),
    ]


def test_unparseable_raw_text_is_no_order_error(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ClientMessage(0.1, TERMINATE),
        ServerMessage(0.2, TERMINATION),
        ServerRaw(0.3, "not json"),
        ServerRaw(0.4, '{"type": "Turn"}'),
        ENDED,
    ]
    assert check(tmp_path, entries) == []


def test_client_entries_after_termination_are_no_order_error(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ClientMessage(0.1, TERMINATE),
        ServerMessage(0.2, TERMINATION),
        ClientAudio(0.3, 1600),
        ClientMessage(0.4, {"type": "KeepAlive"}),
        ENDED,
    ]
    assert check(tmp_path, entries) == []


# -- rule 4: a Termination nobody asked for -------------------------------------------


def test_termination_unasked_and_closed_by_the_client_is_an_error(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ClientAudio(0.05, 1600),
        ServerMessage(0.2, TERMINATION),
        Close(0.3, 1000, "bye", "client"),
    ]
    assert check(tmp_path, entries) == [
        ("error", 4, f"{NO_TERMINATE} (the client closed on line 5)"),
    ]


def test_termination_unasked_and_no_close_is_an_error(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ServerMessage(0.2, TERMINATION),
    ]
    assert check(tmp_path, entries) == [
        ("error", 3, f"{NO_TERMINATE} (no close recorded)"),
    ]


def test_a_terminate_after_the_termination_does_not_ask_for_it(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ServerMessage(0.2, TERMINATION),
        ClientMessage(0.3, TERMINATE),
        Close(0.4, 1000, "bye", "client"),
    ]
    assert check(tmp_path, entries) == [
        ("error", 3, f"{NO_TERMINATE} (the client closed on line 5)"),
    ]


@pytest.mark.parametrize("by", ["server", "client"])
def test_termination_after_terminate_is_valid_whoever_closes(tmp_path: Path, by: str) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ClientMessage(0.1, {"type": "ForceEndpoint"}),
        ClientMessage(0.2, TERMINATE),
        ServerMessage(0.3, TERMINATION),
        Close(0.4, 1000, "Session Ended", "server" if by == "server" else "client"),
    ]
    assert check(tmp_path, entries) == []


def test_termination_after_terminate_with_no_close_is_valid(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ClientMessage(0.2, TERMINATE),
        ServerMessage(0.3, TERMINATION),
    ]
    assert check(tmp_path, entries) == []


@pytest.mark.parametrize(
    "end",
    [
        TERMINATION,
        {"type": "Error", "error_code": 3006, "error": "Session idle for too long"},
    ],
    ids=["termination", "error"],
)
def test_a_session_the_server_ends_unasked_is_valid(tmp_path: Path, end: dict[str, Any]) -> None:
    # An inactivity timeout: the service sends Termination or Error unasked, then closes.
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ClientAudio(0.05, 1600),
        ServerMessage(5.05, end),
        Close(5.06, 3006, "See Error message for details", "server"),
    ]
    assert check(tmp_path, entries) == []


def test_a_raw_termination_counts(tmp_path: Path) -> None:
    entries: list[Entry] = [
        ServerMessage(0.0, BEGIN),
        ServerRaw(0.2, json.dumps(TERMINATION)),
        ServerMessage(0.3, {"type": "Mystery"}),
        Close(0.4, 1000, "bye", "client"),
    ]
    assert check(tmp_path, entries) == [
        ("error", 3, f"{NO_TERMINATE} (the client closed on line 5)"),
        ("error", 4, "server message after Termination (line 3)"),
    ]


# -- together -------------------------------------------------------------------------


def test_every_error_of_a_file_is_reported_in_line_order(tmp_path: Path, turn: Turn) -> None:
    entries: list[Entry] = [
        ServerMessage(0.1, turn(0, "early")),
        ServerMessage(0.2, turn(0, "early too")),
        ServerMessage(0.3, BEGIN),
        ServerMessage(0.4, {"type": "Turn", "turn_order": "x"}),
        ServerMessage(0.5, BEGIN),
        ServerMessage(0.6, TERMINATION),
        ServerMessage(0.7, turn(0, "late", end=True)),
        ServerMessage(0.8, BEGIN),
        Close(0.9, 1000, "bye", "client"),
    ]
    findings = check(tmp_path, entries)
    invalid = findings.pop(1)
    assert invalid[:2] == ("error", 5)
    assert invalid[2].startswith("malformed Turn message: ")
    assert findings == [
        ("error", 2, "Turn before Begin"),
        ("error", 6, "a second Begin (the first is on line 4)"),
        ("error", 7, f"{NO_TERMINATE} (the client closed on line 10)"),
        ("error", 8, "server message after Termination (line 7)"),
        ("error", 9, "server message after Termination (line 7)"),
        ("error", 9, "another Begin (the first is on line 4)"),
    ]


def test_order_errors_come_before_the_audio_warning(tmp_path: Path, turn: Turn) -> None:
    import wave

    with wave.open(str(tmp_path / "a.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\0" * 3200)
    header = Header(Request(query={"sample_rate": "16000"}), audio="a.wav")
    session = RecordedSession(header, [ServerMessage(0.1, turn(0, "hi")), ClientAudio(0.2, 1600)])
    path = tmp_path / "s.jsonl"
    write_session(session, path)
    assert check_session(path) == [
        Finding(level="error", path=str(path), line=2, problem="Turn before Begin"),
        Finding(
            level="warning",
            path=str(path),
            line=1,
            problem="the audio file holds 3200 bytes of audio; "
            "the client_audio entries add up to 1600",
        ),
    ]


def test_a_handwritten_file_is_checked_as_written(tmp_path: Path) -> None:
    path = tmp_path / "hand.jsonl"
    path.write_text(
        '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {}}}\n'
        '{"t": 0, "server": {"type": "Begin", "id": "x", "expires_at": 1}}\n'
        '{"t": 1, "server": {"type": "Begin", "id": "y", "expires_at": 1}}\n',
        encoding="utf-8",
    )
    assert check_session(path) == [
        Finding(
            level="error",
            path=str(path),
            line=3,
            problem="a second Begin (the first is on line 2)",
        )
    ]
