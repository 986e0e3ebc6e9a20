"""``check_session``: the order of a session's server messages."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    SessionFormatError,
    check_session,
    load_session,
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


# -- every problem of a file, not only the first --------------------------------------

HEADER_LINE = '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"sample_rate": "16000"}}}'


def check_bytes(tmp_path: Path, data: bytes, name: str = "s.jsonl") -> list[str]:
    path = tmp_path / name
    path.write_bytes(data)
    findings = check_session(path)
    prefix = f"{path}:"
    assert all(str(f).startswith(prefix) for f in findings)
    return [str(f)[len(prefix) :] for f in findings]


def test_every_format_error_is_reported_with_its_line(tmp_path: Path) -> None:
    lines = [
        HEADER_LINE,
        '{"t": 0, "server": {"type": "Begin", "id": "x", "expires_at": 1}}',
        '{"t": 0.1, "client_audio": 1',
        '{"t": 0.2, "client_audio": 1600, "note": "x"}',
        '{"t": 0.3, "client_audio": 1600}',
        '{"t": 0.25, "client_audio": 1600}',
        '{"t": 0.4, "server": {"type": "Begin", "id": "y", "expires_at": 1}}',
        '{"t": 0.5, "server_raw": "caf\xe9"}',
        "",
        '{"t": 0.6, "close": {"code": 1000, "reason": "", "by": "server"}}',
        '{"t": 0.7, "client_audio": 1600}',
    ]
    data = "\n".join(lines).encode("utf-8").replace("\xe9".encode(), b"\xe9") + b"\n"
    assert check_bytes(tmp_path, data) == [
        "3: error: bad JSON: Expecting ',' delimiter (column 29)",
        "4: error: unknown entry key 'note'",
        "6: error: 't' goes backwards: 0.25 after 0.3",
        "7: error: a second Begin (the first is on line 2)",
        "8: error: not UTF-8: invalid continuation byte",
        "9: error: blank line (a session file has none)",
        "11: error: entry after 'close' (line 10); 'close' must be last",
    ]


def test_a_bad_header_is_reported_and_the_entries_are_still_checked(tmp_path: Path) -> None:
    lines = [
        '{"aai_session": 2, "request": {"path": "/v3/ws", "query": {}}}',
        '{"t": 0, "client_audio": -1}',
        '{"t": 1, "client_audio": 1}',
        '{"t": 0.5, "client_audio": 1}',
    ]
    assert check_bytes(tmp_path, ("\n".join(lines) + "\n").encode()) == [
        "1: error: unsupported format version 2; this reader knows version 1",
        "2: error: 'client_audio' must be a byte count >= 0, got -1",
        "4: error: 't' goes backwards: 0.5 after 1.0",
    ]


def test_credentials_in_the_header_and_later_errors_are_all_reported(tmp_path: Path) -> None:
    lines = [
        '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"token": "t"}}}',
        '{"t": 0, "server": {"type": "Begin", "id": "x", "expires_at": 1, "Authorization": 1}}',
        '{"t": 0, "client_audio": 1, "x": 1}',
    ]
    assert check_bytes(tmp_path, ("\n".join(lines) + "\n").encode()) == [
        "1: error: credentials present: 'token' in the query; a session file never holds "
        "credentials",
        "2: error: credentials present: 'Authorization'; a session file never holds credentials",
        "3: error: unknown entry key 'x'",
    ]


def test_a_wav_file_is_named_as_one_not_as_bad_json(tmp_path: Path) -> None:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x01\x02" * 1600 + b"\n" * 100)
    assert check_bytes(tmp_path, buffer.getvalue(), "hello.wav") == [
        " error: this is a WAV audio file, not a recorded session (.jsonl)"
    ]


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"RIFF\x10\x00\x00\x00AVI LIST", "a RIFF file"),
        (b"OggS\x00\x02" + bytes(40), "an Ogg file (Ogg Opus audio?)"),
        (b"fLaC\x00\x00\x00\x22", "a FLAC audio file"),
        (b"ID3\x04\x00\x00", "an MP3 audio file"),
        (b"\xff\xfb\x90\x64\x00", "an MP3 or AAC audio file"),
        (b"\x00\x00\x00\x20ftypM4A ", "an MP4 (M4A) file"),
        (b"\x1f\x8b\x08\x00", "a gzip-compressed file"),
        (b"PK\x03\x04\x14\x00", "a zip file"),
        ('{"aai_session": 1}\n'.encode("utf-16"), "UTF-16 text"),
        (b"\x00" * 64, "a binary file"),
        (b'{"aai_session": 1, "request": \x00}\n', "a binary file"),
    ],
)
def test_a_file_that_is_plainly_no_session_is_one_error(
    tmp_path: Path, data: bytes, what: str
) -> None:
    assert check_bytes(tmp_path, data) == [
        f" error: this is {what}, not a recorded session (.jsonl)"
    ]


def test_an_empty_file_is_one_error(tmp_path: Path) -> None:
    assert check_bytes(tmp_path, b"") == [" error: empty file: no header line"]


def test_a_session_with_a_nul_escape_is_no_binary_file(tmp_path: Path) -> None:
    data = (HEADER_LINE + "\n" + '{"t": 0, "server_raw": "\\u0000"}\n').encode()
    assert check_bytes(tmp_path, data) == []


def test_an_unreadable_audio_name_is_an_error_not_a_crash(tmp_path: Path) -> None:
    data = b'{"aai_session": 1, "request": {"path": "/v3/ws", "query": {}}, "audio": "a\\u0000"}\n'
    assert check_bytes(tmp_path, data) == [
        f"1: error: can't read the audio file {str(tmp_path / 'a')!r}"[:-1]
        + "\\x00': no file can have that name"
    ]


_LINES = st.sampled_from(
    [
        HEADER_LINE,
        '{"t": 0, "server": {"type": "Begin", "id": "x", "expires_at": 1}}',
        '{"t": 1, "client_audio": 1600}',
        '{"t": 0.5, "client": {"type": "Terminate"}}',
        '{"t": 2, "close": {"code": 1000, "reason": "", "by": "server"}}',
        '{"t": 1, "server": {"type": "Termination", "audio_duration_seconds": 0, '
        '"session_duration_seconds": 0}}',
        '{"t": 1, "server_raw": "\\ud800"}',
        '{"t": 1e999, "client_audio": 1}',
        '{"t": ' + "9" * 400 + ', "client_audio": 1}',
        '{"t": 1, "x": 1}',
        "{",
        "",
        "\x00",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(_LINES | st.text(max_size=12), max_size=8),
    tail=st.sampled_from([b"", b"\n", b"\xe9\n", b"RIFF"]),
)
def test_check_lists_the_error_load_raises_and_never_raises(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], tail: bytes
) -> None:
    path = tmp_path_factory.mktemp("check") / "s.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + tail)
    findings = check_session(path)  # never raises, whatever the bytes
    assert all(isinstance(f, Finding) for f in findings)
    for finding in findings:
        str(finding).encode("utf-8")  # printable
    try:
        load_session(path)
    except SessionFormatError as exc:
        error = exc
    else:
        return
    assert (
        Finding(level="error", path=error.path, line=error.line, problem=error.problem) in findings
    )
