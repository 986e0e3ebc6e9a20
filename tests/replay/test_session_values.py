"""Recorded sessions and their entries are plain values: they pickle and copy, equal.

Their JSON objects stay read-only through every copy.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_proto import dump_client_message, dump_server_message
from aai_proto.strategies import client_messages, server_events, streaming_params
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
    load_session,
    loads_session,
    strip_credentials,
)
from aai_replay._session import dumps_session
from tests._values import assert_plain_value, copies

SESSIONS = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "sessions").glob("*.jsonl"))


def _read_only_mappings(entry: Entry | Header | Request) -> list[Mapping[str, Any]]:
    if isinstance(entry, ServerMessage | ClientMessage):
        return [entry.message]
    if isinstance(entry, Header):
        return [entry.extra, entry.request.query]
    if isinstance(entry, Request):
        return [entry.query]
    return []


def assert_read_only(value: Entry | Header | Request) -> None:
    for mapping in _read_only_mappings(value):
        with pytest.raises(TypeError):
            mapping["type"] = "changed"  # type: ignore[index]
        with pytest.raises(TypeError):
            del mapping["type"]  # type: ignore[attr-defined]
        assert not hasattr(mapping, "update")
        assert dict(mapping) == mapping


# -- the shipped sessions ------------------------------------------------------------


def test_the_shipped_sessions_are_here() -> None:
    assert len(SESSIONS) >= 5


@pytest.mark.parametrize("path", SESSIONS, ids=[p.name for p in SESSIONS])
def test_a_shipped_session_is_a_plain_value(path: Path) -> None:
    session = load_session(path)
    assert_plain_value(session)
    assert_plain_value(session.header)
    assert_plain_value(session.header.request)
    for entry in session.entries:
        assert_plain_value(entry)
    for other in copies(session):
        assert other.path == session.path
        assert dumps_session(other) == dumps_session(session)
        assert_read_only(other.header)
        for entry in other.entries:
            assert_read_only(entry)


@pytest.mark.parametrize("path", SESSIONS, ids=[p.name for p in SESSIONS])
def test_an_entry_message_still_reads_as_a_dict(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    session = load_session(path)
    for line, entry in zip(lines, session.entries, strict=True):
        data = json.loads(line)
        if isinstance(entry, ServerMessage):
            expected = data["server"]
        elif isinstance(entry, ClientMessage):
            expected = data["client"]
        else:
            continue
        for other in (entry, *copies(entry)):
            assert other.message == expected
            assert expected == other.message
            assert dict(other.message) == expected
            assert other.message != {**expected, "new key": 1}


def test_a_deep_copy_is_independent_of_the_original() -> None:
    entry = ServerMessage(0.5, {"type": "Turn", "words": [{"text": "hi"}], "more": {"a": [1]}})
    deep = copy.deepcopy(entry)
    assert deep == entry
    assert deep.message is not entry.message
    assert deep.message["words"] is not entry.message["words"]
    assert deep.message["words"][0] is not entry.message["words"][0]
    assert deep.message["more"]["a"] is not entry.message["more"]["a"]


# -- sessions built from Hypothesis-made messages --------------------------------------


def _no_credentials(text: str) -> bool:
    return "authorization" not in text.lower()


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
).filter(lambda v: _no_credentials(json.dumps(v)))
_server_texts = server_events().map(dump_server_message).filter(_no_credentials)
_server_objects = _server_texts.map(json.loads)
_client_objects = client_messages().map(lambda m: json.loads(dump_client_message(m)))


@st.composite
def entries(draw: st.DrawFn) -> list[Entry]:
    """Entries of every kind, holding messages the strategies of aai_proto made."""
    kinds = draw(
        st.lists(st.sampled_from(["server", "raw", "audio", "client"]), min_size=1, max_size=6)
    )
    times = sorted(draw(st.lists(st.floats(0, 1e4), min_size=len(kinds), max_size=len(kinds))))
    out: list[Entry] = []
    for kind, t in zip(kinds, times, strict=True):
        if kind == "server":
            out.append(ServerMessage(t, draw(_server_objects)))
        elif kind == "raw":
            out.append(ServerRaw(t, draw(_server_texts)))
        elif kind == "audio":
            out.append(ClientAudio(t, draw(st.integers(0, 10**6))))
        else:
            out.append(ClientMessage(t, draw(_client_objects)))
    if draw(st.booleans()):
        out.append(Close(times[-1], draw(st.integers(1000, 4999)), "", "server"))
    return out


@st.composite
def sessions(draw: st.DrawFn) -> RecordedSession:
    params = draw(streaming_params())
    query = strip_credentials({**params.wire_values(), **params.extra})
    extra = draw(st.dictionaries(st.sampled_from(["recorder", "notes", "x"]), _json, max_size=2))
    header = Header(Request(query=query), source="synthesized", extra=extra)
    return RecordedSession(header, draw(entries()))


@given(sessions())
def test_any_session_is_a_plain_value(session: RecordedSession) -> None:
    assert_plain_value(session)
    for other in (pickle.loads(pickle.dumps(session)), copy.deepcopy(session)):
        assert loads_session(dumps_session(other)) == session
        assert other.params == session.params
        assert_read_only(other.header)
        for entry in other.entries:
            assert_read_only(entry)


@given(entries())
def test_any_entry_is_a_plain_value_and_stays_read_only(items: list[Entry]) -> None:
    for entry in items:
        assert_plain_value(entry)
        for other in copies(entry):
            assert_read_only(other)
