"""The recorder's frame decisions without sockets: :class:`FrameRelay`.

What to forward, what to record, what to answer, for one frame at a time: the
examples of issue 13 (a lone surrogate, deep nesting, a huge number), a session
writer that fails in each way it can, and a Hypothesis property over any frames in
both directions -- nothing raises, whatever a peer would accept is forwarded as
the very object received, what the service refuses gets the service's answer, and
whatever was written loads back.
"""

from __future__ import annotations

import json
import tempfile
import wave
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aai_proto import ClientChecker, Rejection
from aai_proto import strategies as aai_st
from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    Entry,
    Header,
    Request,
    ServerMessage,
    ServerRaw,
    SessionWriter,
    load_session,
)
from aai_replay._record import FrameOutcome, FrameRelay, _AudioSink

TARGET = "/v3/ws?sample_rate=16000"
DEEP = 100_000
BEGIN = '{"type":"Begin","id":"x","expires_at":1}'


def _relay(path: Path, target: str = TARGET, **options: Any) -> tuple[FrameRelay, list[str]]:
    notes: list[str] = []
    writer = SessionWriter(path, Header(Request("/v3/ws", {})))
    return FrameRelay(writer, target=target, on_note=notes.append, **options), notes


def _entries(relay: FrameRelay, path: Path) -> list[Entry]:
    relay.finish()
    return list(load_session(path).entries)


# -- server frames: always forwarded, recorded as well as the format allows ----------------


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        (BEGIN, {"server"}),
        ("not json {", {"server_raw"}),
        ("[1, 2]", {"server_raw"}),
        ('"Begin"', {"server_raw"}),
        ('{"type":"Turn","a":1,"a":2}', {"server_raw"}),  # parsed, it would say less
        ('{"type":"Heartbeat","realtime_factor":NaN}', {"server_raw"}),
        ('{"type":"Heartbeat","realtime_factor":1e400}', {"server_raw"}),
        ('{"type":"Turn","turn_order":' + "9" * 5000 + "}", {"server_raw"}),
        ('{"type":"Turn","x":' + "[" * DEEP + "]" * DEEP + "}", {"server_raw"}),
        ('{"type":"Turn","x":' + "[" * 900 + "]" * 900 + "}", {"server", "server_raw"}),
        ('{"type":"Turn","transcript":"\\ud800"}', {"server", "server_raw"}),
        ('{"type":"Turn","transcript":"a\\udc00\\ud800b"}', {"server", "server_raw"}),
        ("\u2028{}\x00", {"server_raw"}),
    ],
    ids=lambda v: v if isinstance(v, set) else v[:30],
)
def test_a_server_text_is_forwarded_and_recorded_as_it_can_be(
    tmp_path: Path, text: str, kinds: set[str]
) -> None:
    path = tmp_path / "s.jsonl"
    relay, _ = _relay(path)
    outcome = relay.server_frame(text, 0.5)
    assert outcome.forward is text
    assert outcome.answer is None
    assert outcome.recorded in kinds
    [entry] = _entries(relay, path)
    if isinstance(entry, ServerRaw):
        assert entry == ServerRaw(0.5, text)
    else:
        assert isinstance(entry, ServerMessage)
        assert entry.message == json.loads(text)


def test_a_binary_server_frame_is_forwarded_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    relay, notes = _relay(path)
    frame = b"\x00\x01"
    outcome = relay.server_frame(frame, 0.0)
    assert (outcome.forward, outcome.recorded) == (frame, None)
    assert notes == [
        "the server sent a binary frame (2 bytes); the session format has no place for it"
    ]
    assert _entries(relay, path) == []


def _surrogate_in(value: object) -> str | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return item
        elif isinstance(item, Mapping):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple):
            stack += item
    return None


class _WriterWithoutSurrogates:
    """A session writer as it was before lone surrogates were escaped: it can't write them.

    It wrote lines with ``ensure_ascii=False`` and encoded them to UTF-8, which
    raises ``UnicodeEncodeError`` (a ``ValueError``) for a lone surrogate. The
    recorder must survive either writer.
    """

    def __init__(self, writer: SessionWriter) -> None:
        self._writer = writer

    def write(self, entry: Entry) -> None:
        found = _surrogate_in(list(attrs.astuple(entry, recurse=False)))
        if found is not None:
            found.encode("utf-8")  # raises
        self._writer.write(entry)

    def close(self) -> None:
        self._writer.close()


def _old_relay(path: Path, target: str = TARGET) -> tuple[FrameRelay, list[str]]:
    notes: list[str] = []
    writer = _WriterWithoutSurrogates(SessionWriter(path, Header(Request("/v3/ws", {}))))
    relay = FrameRelay(cast(SessionWriter, writer), target=target, on_note=notes.append)
    return relay, notes


LONE_SERVER = '{"type":"Turn","transcript":"\\ud800"}'
LONE_CLIENT = '{"type":"UpdateConfiguration","prompt":"\\udc00"}'


def test_a_writer_that_cannot_write_lone_surrogates_costs_no_frame(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    relay, notes = _old_relay(path)
    server = relay.server_frame(LONE_SERVER, 0.1)
    client = relay.client_frame(LONE_CLIENT, 0.2)
    assert (server.forward, server.recorded) == (LONE_SERVER, "server_raw")
    assert (client.forward, client.recorded) == (LONE_CLIENT, "client")
    assert relay.close(1000, "done", "client", 0.3)
    assert _entries(relay, path) == [
        ServerRaw(0.1, LONE_SERVER),
        ClientMessage(0.2, {"type": "UpdateConfiguration"}),
        Close(0.3, 1000, "done", "client"),
    ]
    assert [n.split(":")[0] for n in notes] == [
        "a server message recorded verbatim (server_raw)",
        "a client message recorded as its type only",
    ]
    assert all("surrogates not allowed" in n for n in notes)
    # A note quotes the frame, lone surrogate and all, escaped: a log is UTF-8.
    assert all(n.isascii() for n in notes)
    assert "\\ud800" in notes[0]
    assert "\\udc00" in notes[1]


def test_a_writer_that_escapes_lone_surrogates_records_them(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    relay, notes = _relay(path)
    server = relay.server_frame(LONE_SERVER, 0.1)
    client = relay.client_frame(LONE_CLIENT, 0.2)
    assert (server.forward, client.forward) == (LONE_SERVER, LONE_CLIENT)
    entries = _entries(relay, path)
    if server.recorded == "server":  # the session writer of issue 13 does this
        assert entries == [
            ServerMessage(0.1, json.loads(LONE_SERVER)),
            ClientMessage(0.2, json.loads(LONE_CLIENT)),
        ]
        assert notes == []


def test_a_disk_that_fails_stops_the_recording_not_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    relay, notes = _relay(path)
    assert relay.server_frame(BEGIN, 0.0).recorded == "server"

    class Full:
        """The session writer on a disk that just filled up."""

        def __init__(self, writer: SessionWriter) -> None:
            self.writer = writer

        def write(self, entry: Entry) -> None:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            self.writer.close()

    # The disk, failing under the relay's writer.
    assert relay._writer is not None
    relay._writer = cast(SessionWriter, Full(relay._writer))
    frames: list[str | bytes] = [BEGIN, b"\x00" * 3200, '{"type":"KeepAlive"}', "x"]
    outcomes = [relay.server_frame(frames[0], 0.1), relay.client_frame(frames[1], 0.2)]
    outcomes += [relay.client_frame(frames[2], 0.3), relay.server_frame(frames[3], 0.4)]
    assert [o.forward for o in outcomes] == frames
    assert [o.recorded for o in outcomes] == [None] * 4
    assert relay.close(1000, "", "server", 0.5)
    relay.finish()
    # Said once, and the file closed: what was written before is there.
    assert notes == [
        "the session file can't be written (No space left on device): the recording "
        "stops here, the connection goes on"
    ]
    assert [type(e) for e in load_session(path).entries] == [ServerMessage]


# -- client frames: the service's rules decide ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "hello?",
        "[]",
        '{"type": "Hello"}',
        '{"type": "KeepAlive", "x": NaN}',
        '{"type": "KeepAlive", "x": ' + "[" * DEEP + "]" * DEEP + "}",
        '{"type": "UpdateConfiguration", "vad_threshold": ' + "9" * 5000 + "}",
        "x" * (2**20 + 1),
    ],
    ids=["not-json", "array", "unknown-type", "nan", "deep", "huge-number", "too-long"],
)
def test_a_client_text_the_service_refuses_is_answered(tmp_path: Path, text: str) -> None:
    path = tmp_path / "s.jsonl"
    relay, notes = _relay(path)
    assert relay.client_frame(b"\x00" * 3200, 0.1).recorded == "client_audio"
    outcome = relay.client_frame(text, 0.2)
    assert outcome.forward is None
    assert outcome.recorded is None
    answer = outcome.answer
    assert answer is not None
    assert answer.code == 3006
    assert outcome.name == "answered 3006, not recorded"
    assert relay.closed
    # Then nothing more: the close is on its way.
    assert relay.client_frame('{"type": "Terminate"}', 0.3) == FrameOutcome()
    assert relay.server_frame(BEGIN, 0.3) == FrameOutcome()
    assert not relay.close(1000, "", "client", 0.4)
    assert _entries(relay, path) == [
        ClientAudio(0.1, 3200),
        ServerMessage(0.2, json.loads(answer.message)),
        Close(0.2, 3006, "See Error message for details", "server"),
    ]
    assert notes == [
        f"the client sent what the service refuses: answered for it with Error 3006 "
        f"({answer.error.encode('utf-8', 'backslashreplace').decode()}), not forwarded"
    ]


def test_audio_the_service_refuses_is_recorded_and_answered(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    sink = _AudioSink(path, {"sample_rate": "16000"})
    relay, _ = _relay(path, audio=sink)
    outcome = relay.client_frame(b"\x01" * 32_002, 0.1)  # 1000.0625 ms
    assert (outcome.forward, outcome.recorded) == (None, "client_audio")
    assert outcome.answer is not None
    assert outcome.answer.code == 3007
    assert outcome.answer.error == (
        "Input duration violation: 1000.06 ms. Expected between 50 and 1000 ms"
    )
    assert [type(e) for e in _entries(relay, path)] == [ClientAudio, ServerMessage, Close]
    with wave.open(str(sink.path), "rb") as wav:
        assert wav.getnframes() == 16_001


def test_a_lifecycle_violation_is_forwarded_for_the_service_to_answer(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    relay, notes = _relay(path)
    frames: list[str | bytes] = ['{"type": "Terminate"}', b"\x00" * 3200, '{"type": "Terminate"}']
    outcomes = [relay.client_frame(f, 0.1 * i) for i, f in enumerate(frames)]
    assert [(o.forward, o.recorded, o.answer) for o in outcomes] == [
        (frames[0], "client", None),
        (frames[1], "client_audio", None),
        (frames[2], "client", None),
    ]
    relay.finish()
    assert notes == [
        "the client sent audio after Terminate: forwarded, for the service to answer",
        "the client sent a second Terminate: forwarded, for the service to answer",
    ]


def test_a_request_the_service_refuses_leaves_the_frames_unchecked(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    relay, notes = _relay(path, target="/v3/ws?sample_rate=fast")
    assert notes[0].startswith("the service would refuse this request (User Input Validation")
    assert notes[0].endswith("the client's frames are forwarded unchecked")
    deep = '{"type": "KeepAlive", "x": ' + "[" * DEEP + "]" * DEEP + "}"
    frames: list[str | bytes] = ["hello?", deep, '{"type": "Hello"}', b"\x00" * 99_999]
    outcomes = [relay.client_frame(f, 0.1) for f in frames]
    assert [o.forward for o in outcomes] == frames
    assert [o.recorded for o in outcomes] == [None, None, "client", "client_audio"]
    relay.finish()
    assert (
        notes[1:]
        == [
            "the client sent a text frame that is not a JSON message with a 'type'; "
            "the session format has no place for it"
        ]
        * 2
    )


def test_t_never_goes_backwards(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    relay, _ = _relay(path)
    for t in (0.5, 0.2, float("nan"), float("inf"), -1.0, 0.70049):
        relay.server_frame(BEGIN, t)
    assert [e.t for e in _entries(relay, path)] == [0.5, 0.5, 0.5, 0.5, 0.5, 0.7]


# -- the property ----------------------------------------------------------------------------

_ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates included
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(_ANY_CHAR, max_size=8)
    | st.sampled_from(["Turn", "Begin", "Terminate", "KeepAlive", "Authorization"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["type", "x", "prompt", "authorization"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)


_TYPES = st.sampled_from(["Turn", "KeepAlive", "UpdateConfiguration"])


@st.composite
def _json_texts(draw: st.DrawFn) -> str:
    value = draw(_VALUES)
    if draw(st.booleans()):
        value = {"type": draw(_TYPES), "x": value}
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


@st.composite
def _deep(draw: st.DrawFn) -> str:
    depth = draw(st.sampled_from([63, 64, 65, 999, 1000, 3000, DEEP]))
    if draw(st.booleans()):
        nest = "[" * depth + "]" * depth
    else:
        nest = '{"a":' * depth + "0" + "}" * depth
    return draw(st.sampled_from(['{"type":"KeepAlive","x":', '{"type":"Turn","x":', ""])) + nest


def _update(key: str, value: str) -> str:
    return '{"type":"UpdateConfiguration","' + key + '":' + value + "}"


_HUGE = st.sampled_from(["9" * 5000, "1" + "0" * 400, "1e400", "-1e400", "NaN", str(2**64)]).map(
    lambda n: _update("vad_threshold", n)
)
# Lone surrogates as JSON writes them: \u escapes.
_ESCAPES = st.sampled_from(["\\ud800", "\\udc00", "\\udfff", "a\\udc00\\ud800b"]).map(
    lambda e: _update("prompt", f'"{e}"')
)
FRAMES = st.one_of(
    st.binary(max_size=40_000),
    st.text(_ANY_CHAR, max_size=40),
    _json_texts(),
    _deep(),
    _HUGE,
    _ESCAPES,
    aai_st.client_message_texts(),
    aai_st.server_message_texts(),
    aai_st.malformed_client_message_texts(),
    st.just(BEGIN),
)
QUERIES = st.sampled_from(
    ["sample_rate=16000", "sample_rate=8000&encoding=pcm_mulaw", "encoding=opus", "sample_rate=x"]
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(st.sampled_from(["server", "client"]), FRAMES), max_size=12), QUERIES)
def test_any_frames_in_any_order(steps: list[tuple[str, str | bytes]], query: str) -> None:
    target = f"/v3/ws?{query}"
    shadow = ClientChecker()  # the service, told the same frames
    checked = shadow.receive_request(target) is None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.jsonl"
        sink = _AudioSink(path, dict(parse_qsl(query)))
        relay, _ = _relay(path, target=target, audio=sink)
        recorded: Counter[str] = Counter()
        answered = 0
        audio = b""
        for i, (side, frame) in enumerate(steps):
            was_closed = relay.closed
            expected = None
            if side == "client" and checked and not was_closed:
                if isinstance(frame, str):
                    expected = shadow.receive_text(frame)
                else:
                    expected = shadow.receive_audio(frame)
            if side == "server":
                outcome = relay.server_frame(frame, i / 100)
            else:
                outcome = relay.client_frame(frame, i / 100)
            if was_closed:
                assert outcome == FrameOutcome()
            elif isinstance(expected, Rejection):
                assert outcome.forward is None
                assert outcome.answer == expected
                assert relay.closed
                answered += 1
            else:
                # What the peer would accept (any server frame: the client is its
                # judge) goes on, the very object received.
                assert outcome.forward is frame
                assert outcome.answer is None
            if outcome.recorded is not None:
                recorded[outcome.recorded] += 1
            if outcome.recorded == "client_audio":
                assert isinstance(frame, bytes)
                audio += frame
        over = relay.closed
        assert relay.close(1000, "bye", "client", 1.0) is not over
        relay.finish()
        session = load_session(path)  # whatever was written loads
        kinds = Counter(type(e).__name__ for e in session.entries)
        assert kinds["ClientAudio"] == recorded["client_audio"]
        assert kinds["ClientMessage"] == recorded["client"]
        assert kinds["ServerMessage"] + kinds["ServerRaw"] == (
            recorded["server"] + recorded["server_raw"] + answered
        )
        assert kinds["Close"] == 1
        assert sum(e.nbytes for e in session.entries if isinstance(e, ClientAudio)) == len(audio)
        if sink.path.suffix == ".wav":
            with wave.open(str(sink.path), "rb") as wav:
                assert wav.readframes(wav.getnframes()) == audio[: len(audio) // 2 * 2]
        else:
            assert sink.path.read_bytes() == audio
