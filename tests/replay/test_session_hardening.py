"""The session loader and writer on hostile input: one error type out, one set of sessions.

``loads_session``/``load_session`` refuse bad input with ``SessionFormatError`` and
nothing else; what they accept, ``dumps_session``/``write_session`` write as UTF-8
text that loads back equal, and what the writer takes, the loader gives back
(lone surrogates included: written as JSON escapes).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aai_proto import InvalidParameter
from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    Header,
    RecordedSession,
    Request,
    ServerMessage,
    SessionFormatError,
    SessionWriter,
    dumps_session,
    load_session,
    loads_session,
    strip_credentials,
    write_session,
)

HEADER = '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"sample_rate": "16000"}}}'
HUGE = "1" * 400  # an integer JSON reads, too large for a float


def text_of(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


def load_error(*lines: str) -> tuple[int | None, str]:
    with pytest.raises(SessionFormatError) as info:
        loads_session(text_of(*lines), name="s.jsonl")
    assert str(info.value) == f"s.jsonl:{info.value.line}: {info.value.problem}"
    return info.value.line, info.value.problem


# -- every conversion refuses with SessionFormatError -----------------------------------


@pytest.mark.parametrize("t", [HUGE, "-" + HUGE])
def test_a_t_too_large_for_a_float_is_refused_on_its_line(t: str) -> None:
    line, problem = load_error(
        HEADER, '{"t": 0, "client_audio": 1}', f'{{"t": {t}, "client_audio": 1}}'
    )
    assert line == 3
    assert problem == f"'t' must be a finite number of seconds >= 0, got {t[:57]}..."


@pytest.mark.parametrize("kind", ["server", "server_raw", "client_audio", "client"])
def test_a_t_too_large_for_a_float_is_refused_in_every_kind_of_entry(kind: str) -> None:
    value = {"server": "{}", "server_raw": '""', "client_audio": "1", "client": '{"type": "X"}'}
    line, problem = load_error(HEADER, f'{{"t": {HUGE}, "{kind}": {value[kind]}}}')
    assert (line, problem.startswith("'t' must be a finite number of seconds >= 0")) == (2, True)


def test_a_t_too_large_for_a_float_is_refused_in_a_close() -> None:
    close = '{"code": 1000, "reason": "", "by": "server"}'
    line, problem = load_error(HEADER, f'{{"t": {HUGE}, "close": {close}}}')
    assert (line, problem.startswith("'t' must be a finite number of seconds >= 0")) == (2, True)


def test_a_t_too_large_for_a_float_is_a_value_error_in_code() -> None:
    with pytest.raises(
        ValueError, match=r"^'t' must be a finite number of seconds >= 0, got 1{57}\.\.\.$"
    ):
        ClientAudio(int(HUGE), 1)


def test_a_byte_count_beyond_a_websocket_frame_is_refused() -> None:
    assert loads_session(text_of(HEADER, f'{{"t": 0, "client_audio": {2**63 - 1}}}')).entries == (
        ClientAudio(0, 2**63 - 1),
    )
    for count in (str(2**63), HUGE):
        line, problem = load_error(HEADER, f'{{"t": 0, "client_audio": {count}}}')
        assert line == 2
        assert problem.startswith("'client_audio' must be a byte count below 2**63 (")


def test_a_value_too_deep_to_show_is_described_not_a_recursion_error() -> None:
    # A validator shows the value it refuses; one nested deeper than repr() can go is
    # described instead.
    deep: list[Any] = []
    for _ in range(sys.getrecursionlimit() * 3):
        deep = [deep]
    with pytest.raises(
        ValueError, match=r"^'server' must be a JSON object, got a deeply nested list$"
    ):
        ServerMessage(0, deep)


def test_an_integer_too_long_to_show_is_described() -> None:
    with pytest.raises(
        ValueError,
        match=r"^'code' must be a close code from 1000 to 4999, got an integer of 16610 bits$",
    ):
        Close(0, 10**5000, "", "server")


@pytest.mark.parametrize("audio", ["a\u0000b.wav", "\ud800.wav"])
def test_an_audio_path_no_file_can_have_is_a_session_format_error(
    tmp_path: Path, audio: str
) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        text_of(
            '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {}}, "audio": '
            + json.dumps(audio)
            + "}"
        )
    )
    session = load_session(path)
    with pytest.raises(SessionFormatError) as info:
        session.audio_bytes()
    assert (info.value.line, info.value.problem.startswith("can't read the audio file ")) == (
        1,
        True,
    )


def _write_wav_header(path: Path, fmt: bytes) -> None:
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"data\x00\x00\x00\x00"
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)


@pytest.mark.parametrize(
    "fmt",
    [
        b"\x01\x00",  # a fmt chunk too short to hold the format
        b"\x01\x00\x00\x00\x80>\x00\x00\x00}\x00\x00\x02\x00\x10\x00",  # no channels
        b"\x01\x00\x01\x00\x80>\x00\x00\x00}\x00\x00\x02\x00\x00\x00",  # 0-bit samples
        b"\x03\x00\x01\x00\x80>\x00\x00\x00}\x00\x00\x04\x00\x20\x00",  # float samples
    ],
)
def test_a_malformed_wav_sidecar_is_a_session_format_error(tmp_path: Path, fmt: bytes) -> None:
    _write_wav_header(tmp_path / "a.wav", fmt)
    session = RecordedSession(
        Header(Request(query={"sample_rate": "16000"}), audio="a.wav"), [], tmp_path / "s.jsonl"
    )
    with pytest.raises(SessionFormatError) as info:
        session.audio_bytes()
    assert info.value.line == 1
    assert info.value.problem.startswith(
        f"the audio file {str(tmp_path / 'a.wav')!r} is not a PCM WAV file: "
    )


def test_a_wav_sidecar_the_wave_module_trips_on_is_a_session_format_error(tmp_path: Path) -> None:
    # Found by fuzzing the wave module: a chunk it can't skip raises a bare RuntimeError.
    (tmp_path / "a.wav").write_bytes(
        b"RIFF\xec\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x000\xf9\x80\xc7"
        b"\x00\x00\x00}\x00\x00\x02\x00\x10\x00data\xc8\x00\x00\x00" + b"\x01\x02" * 100
    )
    session = RecordedSession(
        Header(Request(query={"sample_rate": "16000"}), audio="a.wav"), [], tmp_path / "s.jsonl"
    )
    with pytest.raises(SessionFormatError) as info:
        session.audio_bytes()
    assert info.value.problem == (
        f"the audio file {str(tmp_path / 'a.wav')!r} is not a PCM WAV file: malformed"
    )


# -- what the writer takes, the loader gives back -----------------------------------------


def test_a_lone_surrogate_escape_loads_and_is_written_escaped(tmp_path: Path) -> None:
    text = text_of(
        '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"x": "\\ud800"}}, '
        '"description": "\\udfff", "k\\udc80": ["\\ud83d"]}',
        '{"t": 0.0, "server": {"type": "Turn", "transcript": "\\ud800 \\uDBFF\\ud800x"}}',
        '{"t": 0.0, "client": {"type": "X", "\\ud800": 1}}',
    )
    session = loads_session(text)
    entry = session.entries[0]
    assert isinstance(entry, ServerMessage)
    assert entry.message["transcript"] == "\ud800 \udbff\ud800x"
    written = dumps_session(session)
    assert written == text.replace("\\uDBFF", "\\udbff")
    assert written.isascii()
    assert loads_session(written) == session
    path = tmp_path / "s.jsonl"
    write_session(session, path)
    assert load_session(path) == session


def test_the_recorder_writes_a_server_message_holding_a_lone_surrogate(tmp_path: Path) -> None:
    # A server may send the escape "\ud800": json.loads makes a lone surrogate of it.
    message = json.loads('{"type": "Turn", "transcript": "a\\ud800é"}')
    path = tmp_path / "live.jsonl"
    with SessionWriter(path, Header(Request(query={}))) as writer:
        writer.write(ServerMessage(0, message))
    assert path.read_bytes().splitlines()[1] == (
        b'{"t": 0.0, "server": {"type": "Turn", "transcript": "a\\ud800\xc3\xa9"}}'
    )
    assert load_session(path).entries == (ServerMessage(0, message),)


def test_an_escaped_surrogate_pair_is_one_character() -> None:
    session = loads_session(text_of(HEADER, '{"t": 0, "server": {"x": "\\ud83d\\ude00"}}'))
    assert session.entries == (ServerMessage(0, {"x": "\U0001f600"}),)
    assert dumps_session(session).splitlines()[1] == '{"t": 0.0, "server": {"x": "\U0001f600"}}'


SPLIT = "\ud83d\ude00"  # the two halves of U+1F600 as two code points: JSON can't write them so


@pytest.mark.parametrize(
    "line",
    [
        f'{{"t": 0, "server": {{"x": "{SPLIT}"}}}}',
        '{"t": 0, "server": {"x": "\ud83d\\ude00"}}',
        '{"t": 0, "server": {"x": "\\ud83d\ude00"}}',
        f'{{"t": 0, "client": {{"type": "X", "{SPLIT}": 1}}}}',
    ],
)
def test_a_surrogate_pair_split_in_two_code_points_is_refused_on_load(line: str) -> None:
    assert load_error(HEADER, line) == (
        2,
        "'server' holds a surrogate pair split in two code points (U+D83D U+DE00): "
        "JSON writes them as one character"
        if '"server"' in line
        else "'client' holds a surrogate pair split in two code points (U+D83D U+DE00): "
        "JSON writes them as one character",
    )


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: ServerMessage(0, {"x": ["a" + SPLIT]}), "server"),
        (lambda: ClientMessage(0, {"type": SPLIT}), "client"),
        (lambda: Request(path=SPLIT), "path"),
        (lambda: Request(query={"a": SPLIT}), "query"),
        (lambda: Request(query={SPLIT: "a"}), "query"),
        (lambda: Header(Request(), audio=SPLIT), "audio"),
        (lambda: Header(Request(), description=SPLIT), "description"),
        (lambda: Header(Request(), extra={"x": SPLIT}), "extra"),
    ],
)
def test_a_surrogate_pair_split_in_two_code_points_is_refused_in_code(
    build: Any, name: str
) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^'{name}' holds a surrogate pair split in two code points \(U\+D83D U\+DE00\)",
    ):
        build()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            '{"t": 0, "server_raw": "a\\ud800"}',
            "'text' holds a lone surrogate (U+D800): a text frame is UTF-8 and can't carry it",
        ),
        (
            '{"t": 0, "close": {"code": 1000, "reason": "\\udc00", "by": "server"}}',
            "'reason' holds a lone surrogate (U+DC00): a close frame's reason is UTF-8 "
            "and can't carry it",
        ),
    ],
)
def test_what_a_frame_carries_verbatim_holds_no_lone_surrogate(line: str, problem: str) -> None:
    assert load_error(HEADER, line) == (2, problem)


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (
            lambda: ServerMessage(0, {"x": (1, 2)}),
            "'server' holds values JSON reads back as others",
        ),
        (lambda: ServerMessage(0, {1: "x"}), "'server' holds values JSON reads back as others"),
        (lambda: ClientMessage(0, {"type": "X", "y": [(1,)]}), "'client' holds values JSON"),
        (lambda: Header(Request(), extra={"x": (1,)}), "'extra' holds values JSON reads back"),
    ],
)
def test_values_json_would_read_back_as_others_are_refused(build: Any, problem: str) -> None:
    # A tuple is written as a list, a key 1 as "1": the file would load as another session.
    with pytest.raises(ValueError, match="^" + problem.replace("(", r"\(")):
        build()


def test_the_request_of_a_query_with_a_lone_surrogate_is_an_invalid_parameter() -> None:
    session = loads_session(
        text_of('{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"x": "\\ud800"}}}')
    )
    with pytest.raises(InvalidParameter, match=r"^Invalid 'query': is not valid UTF-8"):
        session.params  # noqa: B018


# -- the property: load, write, load ------------------------------------------------------

_SURROGATE_BITS = [
    "\\ud800",
    "\\udfff",
    "\\ud83d",
    "\\ude00",
    "\\ud83d\\ude00",
    "\\ude00\\ud83d",
    "\ud800",
    "\udfff",
    SPLIT,
    "\ud83d\\ude00",
    "\\ud83d\ude00",
    "\\\\ud800",
]

_BASE_FILES = [
    text_of(
        HEADER,
        '{"t": 0.5, "server": {"type": "Turn", "transcript": "hi", "words": [{"text": "hi"}]}}',
        '{"t": 0.5, "server_raw": "not json"}',
        '{"t": 0.75, "client": {"type": "Terminate"}}',
        '{"t": 1, "close": {"code": 1000, "reason": "ok", "by": "server"}}',
    ),
    text_of(
        '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"a": "b"}}, '
        '"description": "d", "audio": "a.wav", "x": {"y": ["z"]}}',
        '{"t": 0, "client_audio": 3200}',
    ),
]


@st.composite
def surrogate_mutations(draw: st.DrawFn) -> str:
    """A session file with lone surrogates (escaped or not) put at random places."""
    text = draw(st.sampled_from(_BASE_FILES))
    for _ in range(draw(st.integers(1, 4))):
        quotes = [i for i, c in enumerate(text) if c == '"']
        # Mostly just inside a string (after an opening quote), sometimes anywhere.
        where = draw(st.sampled_from(quotes)) + 1 if draw(st.booleans()) else None
        if where is None:
            where = draw(st.integers(0, len(text)))
        text = text[:where] + draw(st.sampled_from(_SURROGATE_BITS)) + text[where:]
    return text


def _assert_written_loads_back(text: str) -> None:
    try:
        session = loads_session(text)
    except SessionFormatError:
        return
    written = dumps_session(session)
    written.encode("utf-8")  # what write_session writes: no UnicodeEncodeError
    assert loads_session(written) == session


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(surrogate_mutations())
def test_any_text_with_surrogates_that_loads_is_written_and_loads_back_equal(text: str) -> None:
    _assert_written_loads_back(text)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec=None), max_size=40))
def test_any_string_value_is_refused_or_written_and_loaded_back_equal(value: str) -> None:
    # Every code point, surrogates included, in every kind of string of a session.
    quoted = json.dumps(value)
    raw = json.dumps(value, ensure_ascii=False)
    for text in (quoted, raw):
        _assert_written_loads_back(
            text_of(
                '{"aai_session": 1, "request": {"path": '
                + text
                + ', "query": {'
                + text
                + ": "
                + text
                + '}}, "description": '
                + text
                + "}",
                '{"t": 0, "server": {' + text + ": [" + text + "]}}",
                '{"t": 0, "server_raw": ' + text + "}",
                '{"t": 0, "close": {"code": 1000, "reason": ' + text + ', "by": "server"}}',
            )
        )


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_any_text_loads_as_a_session_or_is_refused_with_the_one_error(text: str) -> None:
    # Anything else escaping loads_session fails this test.
    with contextlib.suppress(SessionFormatError):
        loads_session(HEADER + "\n" + text)


def test_a_summary_of_a_session_with_lone_surrogates_is_printable() -> None:
    from aai_replay._info import format_summary

    session = loads_session(
        text_of(
            '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {"x": "\\ud800"}}, '
            '"description": "a\\udc00b"}',
            '{"t": 0, "server": {"type": "Begin", "id": "x", "expires_at": 1}}',
            '{"t": 1, "server": {"turn_order": 0, "turn_is_formatted": false, '
            '"end_of_turn": true, "transcript": "hi \\ud800", "end_of_turn_confidence": 1, '
            '"words": [], "type": "Turn"}}',
        )
    )
    summary = format_summary(session)
    summary.encode("utf-8")
    assert "description: a\\udc00b" in summary.splitlines()
    assert "request:     /v3/ws?x=%ED%A0%80" in summary.splitlines()
    assert "  1. hi \\ud800" in summary.splitlines()


@pytest.mark.parametrize(
    "key", ["TOKEN", "Token", "Webhook_Auth_Header_Value", " token", "API_KEY"]
)
def test_a_credential_in_any_case_is_refused_in_the_query_and_stripped(key: str) -> None:
    with pytest.raises(ValueError, match=rf"^credentials present: {key!r} in the query"):
        Request(query={key: "s3cr3t"})
    line = '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {' + json.dumps(key)
    assert load_error(line + ': "s3cr3t"}}}') == (
        1,
        f"credentials present: {key!r} in the query; a session file never holds credentials",
    )
    assert strip_credentials({key: "s3cr3t", "sample_rate": "16000"}) == {"sample_rate": "16000"}
