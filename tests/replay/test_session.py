"""Session files, format version 1: loading, validation with file and line, writing."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aai_proto import AudioFormat, StreamingParams
from aai_replay import (
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
    dumps_session,
    load_session,
    loads_session,
    strip_credentials,
    write_session,
)

HEADER = '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"sample_rate": "16000"}}}'


def text_of(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


# -- the shipped fixtures -------------------------------------------------------------


def test_every_shipped_fixture_loads_and_is_written_back_byte_for_byte(
    sessions_dir: Path,
) -> None:
    files = sorted(sessions_dir.glob("*.jsonl"))
    assert len(files) >= 5
    for path in files:
        session = load_session(path)
        assert session.path == path
        assert session.header.request.path == "/v3/ws"
        assert dumps_session(session) == path.read_text(encoding="utf-8")


# -- reading --------------------------------------------------------------------------


def test_a_session_loads_into_typed_entries() -> None:
    session = loads_session(
        text_of(
            '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"sample_rate": "8000", '
            '"encoding": "pcm_mulaw"}}, "audio": "a.raw", "source": "handwritten", '
            '"description": "d", "future_key": {"x": [1]}}',
            '{"t": 0, "server": {"type": "Begin", "id": "x", "expires_at": 1}}',
            '{"t": 0.5, "client_audio": 400}',
            '{"t": 0.5, "server_raw": "not json"}',
            '{"t": 1.25, "client": {"type": "Terminate"}}',
            '{"t": 2, "close": {"code": 1000, "reason": "Session Ended", "by": "server"}}',
        )
    )
    assert session.header == Header(
        Request("/v3/ws", {"sample_rate": "8000", "encoding": "pcm_mulaw"}),
        audio="a.raw",
        source="handwritten",
        description="d",
        extra={"future_key": {"x": [1]}},
    )
    assert session.entries == (
        ServerMessage(0.0, {"type": "Begin", "id": "x", "expires_at": 1}),
        ClientAudio(0.5, 400),
        ServerRaw(0.5, "not json"),
        ClientMessage(1.25, {"type": "Terminate"}),
        Close(2.0, 1000, "Session Ended", "server"),
    )
    assert type(session.entries[0].t) is float
    assert session.path is None
    assert session.duration == 2.0
    assert session.close == Close(2.0, 1000, "Session Ended", "server")
    assert session.params == StreamingParams(sample_rate=8000, encoding="pcm_mulaw")
    assert session.audio_format == AudioFormat(encoding="pcm_mulaw", sample_rate=8000)
    assert isinstance(session.entries[3], ClientMessage)
    assert session.entries[3].type == "Terminate"


def test_a_file_without_a_final_newline_loads() -> None:
    session = loads_session(HEADER + '\n{"t": 0, "client_audio": 2}')
    assert session.entries == (ClientAudio(0.0, 2),)
    assert session.duration == 0.0


def test_an_empty_session_has_no_close_and_no_duration() -> None:
    session = loads_session(HEADER + "\n")
    assert session.entries == ()
    assert session.close is None
    assert session.duration == 0.0


ENTRY_ERRORS = [
    ('{"t": 0, "client_audio": 1', "bad JSON: Expecting ',' delimiter (column 27)"),
    ('{"t": NaN, "client_audio": 1}', "bad JSON: NaN is not a JSON number"),
    ('{"t": 0, "t": 1, "client_audio": 1}', "bad JSON: duplicate key 't'"),
    ("[1, 2]", "expected a JSON object, got list"),
    ("", "blank line (a session file has none)"),
    ("   ", "blank line (a session file has none)"),
    ('{"t": 0, "client_audio": 1, "note": "x"}', "unknown entry key 'note'"),
    ('{"client_audio": 1}', "entry has no 't'"),
    (
        '{"t": 0}',
        "an entry holds exactly one of server, server_raw, client_audio, client, close; got none",
    ),
    (
        '{"t": 0, "client_audio": 1, "server_raw": "x"}',
        "an entry holds exactly one of server, server_raw, client_audio, client, close; "
        "got 'server_raw' and 'client_audio'",
    ),
    ('{"t": "0", "client_audio": 1}', "'t' must be a number, got '0'"),
    ('{"t": true, "client_audio": 1}', "'t' must be a number, got True"),
    ('{"t": -1, "client_audio": 1}', "'t' must be a finite number of seconds >= 0, got -1.0"),
    ('{"t": 1e999, "client_audio": 1}', "'t' must be a finite number of seconds >= 0, got inf"),
    ('{"t": 0, "client_audio": -1}', "'client_audio' must be a byte count >= 0, got -1"),
    ('{"t": 0, "client_audio": 1.5}', "'client_audio' must be a byte count >= 0, got 1.5"),
    ('{"t": 0, "client_audio": true}', "'client_audio' must be a byte count >= 0, got True"),
    ('{"t": 0, "server": [1]}', "'server' must be a JSON object, got [1]"),
    ('{"t": 0, "server_raw": 5}', "'text' must be str, got 5"),
    ('{"t": 0, "client": {"kind": "Terminate"}}', "'client' needs a string 'type', got None"),
    ('{"t": 0, "client": "Terminate"}', "'client' must be a JSON object, got 'Terminate'"),
    ('{"t": 0, "close": 1000}', "'close' must be a JSON object, got 1000"),
    ('{"t": 0, "close": {"code": 1000, "reason": ""}}', "'close' has no 'by'"),
    (
        '{"t": 0, "close": {"code": 1000, "reason": "", "by": "server", "at": 1}}',
        "unknown close key 'at'",
    ),
    (
        '{"t": 0, "close": {"code": 999, "reason": "", "by": "server"}}',
        "'code' must be a close code from 1000 to 4999, got 999",
    ),
    (
        '{"t": 0, "close": {"code": 1000, "reason": null, "by": "server"}}',
        "'reason' must be str, got None",
    ),
    (
        '{"t": 0, "close": {"code": 1000, "reason": "", "by": "nobody"}}',
        "'by' must be 'server' or 'client', got 'nobody'",
    ),
    (
        '{"t": 0, "server": {"type": "X", "headers": {"Authorization": "k"}}}',
        "credentials present: 'Authorization'; a session file never holds credentials",
    ),
    (
        '{"t": 0, "client": {"type": "X", "list": [{"AUTHORIZATION": "k"}]}}',
        "credentials present: 'AUTHORIZATION'; a session file never holds credentials",
    ),
    (
        '{"t": 0, "server_raw": "{\\"authorization\\": \\"k\\"}"}',
        "credentials present: 'authorization'; a session file never holds credentials",
    ),
    (
        '{"t": 0, "server_raw": "Authorization: k"}',
        "credentials present: 'Authorization'; a session file never holds credentials",
    ),
]


@pytest.mark.parametrize(("line", "problem"), ENTRY_ERRORS)
def test_a_bad_entry_is_reported_with_its_line(line: str, problem: str) -> None:
    text = text_of(HEADER, '{"t": 0, "client_audio": 1}', line)
    with pytest.raises(SessionFormatError) as info:
        loads_session(text, name="s.jsonl")
    assert (info.value.path, info.value.line, info.value.problem) == ("s.jsonl", 3, problem)
    assert str(info.value) == f"s.jsonl:3: {problem}"


HEADER_ERRORS = [
    (
        '{"request": {"path": "/v3/ws", "query": {}}}',
        "not a session header: no 'aai_session' key (the format version)",
    ),
    (
        '{"aai_session": 2, "request": {"path": "/v3/ws", "query": {}}}',
        "unsupported format version 2; this reader knows version 1",
    ),
    (
        '{"aai_session": "1", "request": {"path": "/v3/ws", "query": {}}}',
        "unsupported format version '1'; this reader knows version 1",
    ),
    ('{"aai_session": 1}', "'request' must be a JSON object, got None"),
    ('{"aai_session": 1, "request": {"query": {}}}', "'request' has no 'path'"),
    ('{"aai_session": 1, "request": {"path": "/v3/ws"}}', "'request' has no 'query'"),
    (
        '{"aai_session": 1, "request": {"path": "/", "query": {}, "headers": {}}}',
        "unknown request key 'headers'",
    ),
    (
        '{"aai_session": 1, "request": {"path": "/", "query": []}}',
        "'request.query' must be a JSON object, got []",
    ),
    (
        '{"aai_session": 1, "request": {"path": "/", "query": {"sample_rate": 16000}}}',
        "'query' must map strings to strings, got 'sample_rate': 16000",
    ),
    (
        '{"aai_session": 1, "request": {"path": 5, "query": {}}}',
        "'path' must be str, got 5",
    ),
    (
        '{"aai_session": 1, "request": {"path": "/", "query": {"token": "t"}}}',
        "credentials present: 'token' in the query; a session file never holds credentials",
    ),
    (
        '{"aai_session": 1, "request": {"path": "/", "query": {"webhook_auth_header_value": "v"}}}',
        "credentials present: 'webhook_auth_header_value' in the query; a session file never "
        "holds credentials",
    ),
    (
        '{"aai_session": 1, "request": {"path": "/", "query": {}}, "meta": {"Authorization": 1}}',
        "credentials present: 'Authorization'; a session file never holds credentials",
    ),
    (
        '{"aai_session": 1, "request": {"path": "/", "query": {}}, "audio": 5}',
        "'audio' must be a string, got 5",
    ),
    (
        '{"aai_session": 1, "request": {"path": "/", "query": {}}, "source": "guessed"}',
        "'source' must be one of recorded, synthesized, handwritten; got 'guessed'",
    ),
    ("\ufeff" + HEADER, "bad JSON: Unexpected UTF-8 BOM (decode using utf-8-sig) (column 1)"),
]


@pytest.mark.parametrize(("line", "problem"), HEADER_ERRORS)
def test_a_bad_header_is_reported_on_line_1(line: str, problem: str) -> None:
    with pytest.raises(SessionFormatError) as info:
        loads_session(text_of(line))
    assert (info.value.path, info.value.line, info.value.problem) == ("<string>", 1, problem)


def test_an_empty_text_has_no_header() -> None:
    with pytest.raises(SessionFormatError, match=r"^<string>: empty file: no header line$"):
        loads_session("")


def test_t_going_backwards_names_both_times() -> None:
    text = text_of(HEADER, '{"t": 2.5, "client_audio": 1}', '{"t": 2.25, "client_audio": 1}')
    with pytest.raises(
        SessionFormatError, match=r"^<string>:3: 't' goes backwards: 2.25 after 2.5$"
    ):
        loads_session(text)


def test_an_entry_after_close_is_refused() -> None:
    text = text_of(
        HEADER,
        '{"t": 1, "close": {"code": 1000, "reason": "", "by": "client"}}',
        '{"t": 1, "client_audio": 1}',
    )
    with pytest.raises(
        SessionFormatError,
        match=r"^<string>:3: entry after 'close' \(line 2\); 'close' must be last$",
    ):
        loads_session(text)


def test_crlf_line_endings_are_refused() -> None:
    with pytest.raises(SessionFormatError, match=r"^<string>:1: line ends with a carriage return"):
        loads_session(HEADER + "\r\n")


def test_the_first_problem_is_the_one_reported() -> None:
    text = text_of(HEADER, '{"t": 2, "client_audio": 1}', '{"t": 1, "client_audio": 1}', "{")
    with pytest.raises(SessionFormatError) as info:
        loads_session(text)
    assert info.value.line == 3


def test_load_session_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text_of(HEADER, '{"t": 0, "client_audio": 1, "x": 1}'), encoding="utf-8")
    with pytest.raises(SessionFormatError) as info:
        load_session(path)
    assert str(info.value) == f"{path}:2: unknown entry key 'x'"


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        text_of(HEADER, '{"t": 0, "client_audio": 1}').encode()
        + b'{"t": 0, "server_raw": "\xe9"}\n'
    )
    with pytest.raises(SessionFormatError) as info:
        load_session(path)
    assert (info.value.line, info.value.problem) == (3, "not UTF-8: invalid continuation byte")


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_session(tmp_path / "nope.jsonl")


def test_loads_session_wants_text() -> None:
    with pytest.raises(TypeError, match="loads_session takes str, not bytes"):
        loads_session(HEADER.encode())  # type: ignore[arg-type]


# -- building in code -----------------------------------------------------------------


def test_sessions_built_in_code_follow_the_same_rules() -> None:
    header = Header(Request(query={"sample_rate": "16000"}))
    with pytest.raises(SessionFormatError) as info:
        RecordedSession(header, [ClientAudio(2, 1), ClientAudio(1, 1)])
    assert str(info.value) == "<session>:3: 't' goes backwards: 1.0 after 2.0"
    with pytest.raises(SessionFormatError, match=r"^<session>:2: not an entry: 'oops'$"):
        RecordedSession(header, ["oops"])  # type: ignore[list-item]
    with pytest.raises(SessionFormatError, match=r"^x\.jsonl:3: entry after 'close'"):
        RecordedSession(header, [Close(1, 1000, "", "server"), ClientAudio(1, 1)], Path("x.jsonl"))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ServerMessage(0, [1]), "'server' must be a JSON object, got [1]"),
        (lambda: ServerMessage(0, {"x": object()}), "'server' is not JSON: Object of type object"),
        (lambda: ServerMessage(0, {"x": math.nan}), "'server' is not JSON: Out of range float"),
        (lambda: ServerMessage(math.inf, {}), "'t' must be a finite number of seconds >= 0"),
        (lambda: ClientAudio(True, 1), "'t' must be a finite number of seconds >= 0, got True"),
        (lambda: ClientMessage(0, {}), "'client' needs a string 'type', got None"),
        (lambda: Close(0, 5000, "", "server"), "'code' must be a close code from 1000 to 4999"),
        (lambda: Request(query=[("a", "b")]), "'query' must be a JSON object"),
        (lambda: Request(query={"token": "t"}), "credentials present: 'token' in the query"),
        (lambda: Header(Request(), extra={"audio": "x"}), "'extra' can't hold the header key"),
        (lambda: Header(Request(), extra=[1]), "'extra' must be a mapping, got [1]"),
        (
            lambda: Header(Request(), source="live"),  # type: ignore[arg-type]
            "'source' must be one of recorded",
        ),
    ],
)
def test_entries_and_headers_check_their_values(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        build()


def test_a_session_built_with_credentials_in_its_header_is_refused() -> None:
    header = Header(Request(query={}), extra={"auth": [{"authorization": "k"}]})
    with pytest.raises(
        SessionFormatError,
        match=r"^<session>:1: credentials present: 'authorization'; a session file never",
    ):
        RecordedSession(header, [])


def test_json_nested_too_deep_is_bad_json_not_a_crash() -> None:
    with pytest.raises(SessionFormatError) as info:
        loads_session(HEADER + "\n" + "[" * 100_000 + "\n")
    assert info.value.line == 2
    assert info.value.problem.startswith("bad JSON: maximum recursion depth exceeded")


def test_values_are_frozen_copies() -> None:
    message = {"type": "Begin", "id": "a", "expires_at": 1}
    entry = ServerMessage(0, message)
    message["id"] = "changed"
    assert entry.message["id"] == "a"
    with pytest.raises(TypeError):
        entry.message["id"] = "b"  # type: ignore[index]


def test_strip_credentials_removes_only_credentials() -> None:
    query = {"sample_rate": "16000", "token": "t", "webhook_auth_header_value": "v", "x": "y"}
    assert strip_credentials(query) == {"sample_rate": "16000", "x": "y"}


# -- writing --------------------------------------------------------------------------


def test_writing_follows_the_format(tmp_path: Path, basic_session: RecordedSession) -> None:
    session = RecordedSession(
        Header(
            Request(query={"sample_rate": "16000"}),
            audio="a.wav",
            source="synthesized",
            description="héllo",
            extra={"zz": 1},
        ),
        [
            ServerMessage(0.003, {"type": "Begin", "id": "é", "expires_at": 1}),
            ServerRaw(0.5, "raw\nframe"),
            ClientMessage(1, {"type": "KeepAlive"}),
            Close(2, 1000, "Session Ended", "client"),
        ],
    )
    text = dumps_session(session)
    assert text == (
        '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"sample_rate": "16000"}}, '
        '"audio": "a.wav", "source": "synthesized", "description": "héllo", "zz": 1}\n'
        '{"t": 0.003, "server": {"type": "Begin", "id": "é", "expires_at": 1}}\n'
        '{"t": 0.5, "server_raw": "raw\\nframe"}\n'
        '{"t": 1.0, "client": {"type": "KeepAlive"}}\n'
        '{"t": 2.0, "close": {"code": 1000, "reason": "Session Ended", "by": "client"}}\n'
    )
    path = tmp_path / "s.jsonl"
    write_session(session, path)
    assert path.read_bytes() == text.encode("utf-8")
    assert load_session(path) == session
    write_session(basic_session, path)
    assert load_session(path) == basic_session


def test_line_separators_inside_strings_stay_on_their_line() -> None:
    session = RecordedSession(
        Header(Request(query={})), [ServerRaw(0, "a\u2028b\u0085c"), ServerRaw(0, "d")]
    )
    assert loads_session(dumps_session(session)) == session


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_objects = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k.lower() != "authorization"), _json, max_size=4
).filter(lambda d: "authorization" not in json.dumps(d).lower())
_times = st.floats(0, 1e6, allow_nan=False)


@st.composite
def sessions(draw: st.DrawFn) -> RecordedSession:
    kinds = draw(st.lists(st.sampled_from(["server", "raw", "audio", "client"]), max_size=8))
    times = sorted(draw(st.lists(_times, min_size=len(kinds) + 1, max_size=len(kinds) + 1)))
    entries: list[Entry] = []
    for kind, t in zip(kinds, times, strict=False):
        if kind == "server":
            entries.append(ServerMessage(t, draw(_objects)))
        elif kind == "raw":
            entries.append(
                ServerRaw(t, draw(st.text().filter(lambda s: "uthoriz" not in s.lower())))
            )
        elif kind == "audio":
            entries.append(ClientAudio(t, draw(st.integers(0, 10**6))))
        else:
            entries.append(ClientMessage(t, {**draw(_objects), "type": draw(st.text(max_size=10))}))
    if draw(st.booleans()):
        entries.append(
            Close(
                times[-1],
                draw(st.integers(1000, 4999)),
                draw(st.text()),
                draw(st.sampled_from(["server", "client"])),
            )
        )
    query = draw(
        st.dictionaries(
            st.text(max_size=10).filter(lambda k: k not in ("token", "webhook_auth_header_value")),
            st.text(max_size=10),
            max_size=3,
        )
    )
    header = Header(
        Request(path=draw(st.text(max_size=10)), query=query),
        audio=draw(st.none() | st.text(max_size=10)),
        source=draw(st.sampled_from([None, "recorded", "synthesized", "handwritten"])),
        description=draw(st.none() | st.text(max_size=20)),
        extra=draw(
            st.dictionaries(
                st.text(max_size=6).filter(
                    lambda k: k not in ("aai_session", "request", "audio", "source", "description")
                ),
                _objects,
                max_size=2,
            )
        ),
    )
    return RecordedSession(header, entries)


@given(sessions())
def test_any_session_written_loads_back_equal(session: RecordedSession) -> None:
    text = dumps_session(session)
    assert "\r" not in text.replace("\\r", "")
    assert text.count("\n") == len(session.entries) + 1
    assert loads_session(text) == session


# Lone surrogates, as JSON escapes and as code points, and a surrogate pair split or
# escaped: what a server (or a hand) may put in a file.
_SURROGATES = st.sampled_from(
    [
        *("\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud83d\\ude00", "\\ude00\\ud83d"),
        *("\ud800", "\udfff", "\ud83d\ude00", "\ud83d\\ude00", "\\ud83d\ude00", "\\\\ud800"),
    ]
)


@st.composite
def session_texts_with_surrogates(draw: st.DrawFn) -> str:
    """The text of a session, with lone surrogates put in (mostly inside strings)."""
    text = dumps_session(draw(sessions()))
    for _ in range(draw(st.integers(1, 3))):
        quotes = [i + 1 for i, c in enumerate(text) if c == '"']
        where = draw(st.sampled_from(quotes) | st.integers(0, len(text)))
        text = text[:where] + draw(_SURROGATES) + text[where:]
    return text


@settings(max_examples=300)
@given(session_texts_with_surrogates())
def test_whatever_loads_is_written_as_utf8_and_loads_back_equal(text: str) -> None:
    try:
        session = loads_session(text)
    except SessionFormatError:
        return
    written = dumps_session(session)
    written.encode("utf-8")  # what write_session writes
    assert loads_session(written) == session
    assert dumps_session(loads_session(written)) == written


@settings(max_examples=300)
@given(st.text())
def test_any_text_loads_or_is_a_session_format_error(text: str) -> None:
    try:
        loads_session(text)
    except SessionFormatError as exc:
        error = exc
    else:
        return
    assert error.line is None or 1 <= error.line <= text.count("\n") + 1
    assert str(error).startswith("<string>")


@given(
    st.lists(st.sampled_from([HEADER, '{"t": 1, "client_audio": 3}', '{"t": 0, "x": 1}', "{", ""]))
)
def test_any_sequence_of_lines_loads_or_names_a_line(lines: list[str]) -> None:
    text = text_of(*lines)
    try:
        loads_session(text)
    except SessionFormatError as exc:
        error = exc
    else:
        return
    assert error.line is not None or text == ""


# -- the incremental writer -----------------------------------------------------------


def test_the_writer_writes_each_line_as_it_happens(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    header = Header(Request(query={"sample_rate": "16000"}), source="recorded")
    with SessionWriter(path, header) as writer:
        assert path.read_text() == (
            '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"sample_rate": "16000"}}, '
            '"source": "recorded"}\n'
        )
        writer.write(ServerMessage(0.1, {"type": "Begin", "id": "a", "expires_at": 1}))
        assert path.read_text().count("\n") == 2
        writer.write(ClientAudio(0.2, 3200))
        with pytest.raises(SessionFormatError) as info:
            writer.write(ClientAudio(0.1, 3200))
        assert str(info.value) == f"{path}:4: 't' goes backwards: 0.1 after 0.2"
        with pytest.raises(SessionFormatError, match=r":4: credentials present: 'Authorization'"):
            writer.write(ClientMessage(0.3, {"type": "X", "Authorization": "k"}))
        writer.write(Close(0.4, 1000, "", "client"))
        with pytest.raises(SessionFormatError, match=r":5: entry after 'close' \(line 4\)"):
            writer.write(ClientAudio(0.5, 1))
        assert [writer.closed] == [False]
    assert writer.closed
    writer.close()
    with pytest.raises(ValueError, match="the session writer is closed"):
        writer.write(ClientAudio(1, 1))
    session = load_session(path)
    assert session.entries == (
        ServerMessage(0.1, {"type": "Begin", "id": "a", "expires_at": 1}),
        ClientAudio(0.2, 3200),
        Close(0.4, 1000, "", "client"),
    )


def test_the_writer_refuses_a_header_with_credentials_before_creating_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.jsonl"
    header = Header(Request(query={}), extra={"auth": {"Authorization": "k"}})
    with pytest.raises(SessionFormatError, match=r":1: credentials present: 'Authorization'"):
        SessionWriter(path, header)
    assert not path.exists()
    with pytest.raises(TypeError, match="header must be a Header, not dict"):
        SessionWriter(path, {})  # type: ignore[arg-type]
    assert not path.exists()


# -- audio sidecars -------------------------------------------------------------------


def write_wav(
    path: Path, frames: bytes, *, rate: int = 16000, channels: int = 1, width: int = 2
) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)


def session_with_audio(
    tmp_path: Path, audio: str | None, query: dict[str, str] | None = None
) -> RecordedSession:
    header = Header(Request(query=query or {"sample_rate": "16000"}), audio=audio)
    path = tmp_path / "sessions" / "s.jsonl"
    path.parent.mkdir(exist_ok=True)
    write_session(RecordedSession(header, []), path)
    return load_session(path)


def test_a_wav_sidecar_is_read_relative_to_the_session_file(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    write_wav(tmp_path / "audio" / "a.wav", b"\x01\x02" * 800)
    session = session_with_audio(tmp_path, "../audio/a.wav")
    assert session.audio_path == tmp_path / "sessions" / "../audio/a.wav"
    assert session.audio_bytes() == b"\x01\x02" * 800


def test_a_raw_sidecar_is_read_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "a.RAW").write_bytes(b"\xff\x7f\x00")
    session = session_with_audio(
        tmp_path, "a.RAW", {"sample_rate": "8000", "encoding": "pcm_mulaw"}
    )
    assert session.audio_bytes() == b"\xff\x7f\x00"


def test_a_session_without_a_file_resolves_audio_from_the_working_directory() -> None:
    session = RecordedSession(Header(Request(query={}), audio="x.wav"), [])
    assert session.audio_path == Path("x.wav")
    assert RecordedSession(Header(Request(query={})), []).audio_path is None


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (None, "the header names no 'audio' file"),
        (
            "riff",
            "the audio file '{dir}/riff.wav' is not a PCM WAV file: "
            "file does not start with RIFF id",
        ),
        ("missing", "can't read the audio file '{dir}/missing.wav': No such file or directory"),
        (
            "notwav",
            "the audio file '{dir}/notwav.wav' is not a PCM WAV file: it ends too soon",
        ),
        (
            "stereo",
            "the audio file '{dir}/stereo.wav' holds 2 channel(s) of 16-bit audio at 16000 Hz; "
            "the request wants mono pcm_s16le at 16000 Hz",
        ),
        (
            "rate",
            "the audio file '{dir}/rate.wav' holds 1 channel(s) of 16-bit audio at 8000 Hz; "
            "the request wants mono pcm_s16le at 16000 Hz",
        ),
        (
            "bytes8",
            "the audio file '{dir}/bytes8.wav' holds 1 channel(s) of 8-bit audio at 16000 Hz; "
            "the request wants mono pcm_s16le at 16000 Hz",
        ),
    ],
)
def test_a_bad_sidecar_is_a_session_format_error(
    tmp_path: Path, setup: str | None, problem: str
) -> None:
    directory = tmp_path / "sessions"
    directory.mkdir()
    if setup == "notwav":
        (directory / "notwav.wav").write_bytes(b"hello")
    elif setup == "riff":
        (directory / "riff.wav").write_bytes(b"hello, this is not a wave file at all")
    elif setup == "stereo":
        write_wav(directory / "stereo.wav", b"\0" * 40, channels=2)
    elif setup == "rate":
        write_wav(directory / "rate.wav", b"\0" * 40, rate=8000)
    elif setup == "bytes8":
        write_wav(directory / "bytes8.wav", b"\0" * 40, width=1)
    session = session_with_audio(tmp_path, None if setup is None else f"{setup}.wav")
    with pytest.raises(SessionFormatError) as info:
        session.audio_bytes()
    assert info.value.line == 1
    assert info.value.path == str(directory / "s.jsonl")
    assert info.value.problem == problem.format(dir=directory)


def test_a_wav_sidecar_of_an_invalid_request_is_reported(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", b"\0" * 40)
    session = RecordedSession(
        Header(Request(query={"sample_rate": "5"}), audio=str(tmp_path / "a.wav")), []
    )
    with pytest.raises(
        SessionFormatError, match="the recorded request is invalid: Invalid 'sample_rate'"
    ):
        session.audio_bytes()
