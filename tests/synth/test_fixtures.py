"""The committed session fixtures: valid, parseable, plausible, and reproducible."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import aai_proto
from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    RecordedSession,
    ServerMessage,
    dumps_session,
    load_session,
)
from tests.synth._shared import NAMES, SESSIONS, assert_server_follows_audio

ROOT = SESSIONS.parents[1]

# Sessions the server ended with an error: no Terminate, no Termination.
FAILED = {"server-error-3005": 3005, "inactivity-timeout": 3006}


@pytest.fixture(scope="module")
def make_fixtures() -> ModuleType:
    """The fixture script, imported from its file (it runs espeak-ng only when asked to)."""
    spec = importlib.util.spec_from_file_location(
        "make_fixtures", ROOT / "fixtures" / "make_fixtures.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(name: str) -> RecordedSession:
    return load_session(SESSIONS / f"{name}.jsonl")


def server_messages(session: RecordedSession) -> Iterator[tuple[float, dict[str, Any]]]:
    for entry in session.entries:
        if isinstance(entry, ServerMessage):
            yield entry.t, json.loads(json.dumps(dict(entry.message)))


def turns(session: RecordedSession) -> list[dict[str, Any]]:
    return [m for _, m in server_messages(session) if m["type"] == "Turn"]


def ends(session: RecordedSession) -> list[tuple[int, bool, str]]:
    return [
        (m["turn_order"], m["turn_is_formatted"], m["transcript"])
        for m in turns(session)
        if m["end_of_turn"]
    ]


def test_the_fixture_list_is_complete() -> None:
    assert sorted(p.stem for p in SESSIONS.glob("*.jsonl")) == sorted(NAMES)
    audio = sorted(p.name for p in (ROOT / "fixtures" / "audio").iterdir())
    assert audio == sorted(f"{n}.wav" for n in NAMES)
    total = sum(p.stat().st_size for p in (ROOT / "fixtures" / "audio").iterdir())
    assert total < 1024 * 1024


@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_loads_and_every_server_message_parses(name: str) -> None:
    session = load(name)
    assert session.header.source in ("synthesized", "handwritten")
    assert session.header.description
    assert session.header.request.path == "/v3/ws"
    params = session.params  # the query is valid
    assert (params.sample_rate, params.encoding) == (16000, "pcm_s16le")
    parsed = [aai_proto.parse_server_message(json.dumps(m)) for _, m in server_messages(session)]
    assert not any(isinstance(e, aai_proto.UnknownMessage) for e in parsed)
    assert isinstance(parsed[0], aai_proto.Begin)
    # Written exactly as the session module writes: a load/dump round trip is the file.
    assert dumps_session(session) == (SESSIONS / f"{name}.jsonl").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_has_a_plausible_client(name: str) -> None:
    session = load(name)
    frames = [e.nbytes for e in session.entries if isinstance(e, ClientAudio)]
    # 50 ms frames at 16 kHz, and a last one that is shorter.
    assert set(frames[:-1]) == {1600}
    assert 0 < frames[-1] <= 1600
    # The sidecar is exactly the audio the client sent.
    assert sum(frames) == len(session.audio_bytes())
    assert frames[-1] < 1600
    controls = [e.message["type"] for e in session.entries if isinstance(e, ClientMessage)]
    assert controls == ([] if name in FAILED else ["Terminate"])
    close = session.close
    assert close is not None
    assert close.by == "server"
    if name in FAILED:
        assert (close.code, close.reason) == (FAILED[name], "See Error message for details")
        *_, (_, error) = server_messages(session)
        assert error["type"] == "Error"
        assert error["error_code"] == FAILED[name]
    else:
        assert (close.code, close.reason) == (1000, "Session Ended")
        *_, (_, last) = server_messages(session)
        assert last["type"] == "Termination"
        seconds = sum(frames) / 32000
        assert last["audio_duration_seconds"] == int(seconds + 0.5)


@pytest.mark.parametrize("name", NAMES)
def test_server_messages_never_run_ahead_of_the_audio(name: str) -> None:
    assert_server_follows_audio(load(name))


@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_can_be_made_again_from_its_committed_audio(
    name: str, make_fixtures: ModuleType
) -> None:
    fixture = next(f for f in make_fixtures.FIXTURES if f.name == name)
    target = SESSIONS / f"{name}.jsonl"
    session = load(name)
    assert session.audio_path is not None
    remade = fixture.build(session.audio_path, session.header.audio)
    assert dumps_session(remade) == target.read_text(encoding="utf-8")


def test_universal_format_turns() -> None:
    session = load("universal-format-turns")
    assert session.header.request.query["format_turns"] == "true"
    assert ends(session) == [
        (0, False, "hi my name is sonny"),
        (0, True, "Hi, my name is Sonny."),
        (1, False, "i'd like a table for two"),
        (1, True, "I'd like a table for two."),
    ]
    first = turns(session)[0]
    assert (first["transcript"], len(first["words"]), first["words"][0]["word_is_final"]) == (
        "",
        1,
        False,
    )


def test_universal_2026_formatted() -> None:
    session = load("universal-2026-formatted")
    assert ends(session) == [
        (0, True, "What's the weather in Boston?"),
        (1, True, "Thanks."),
    ]
    assert all(not m["turn_is_formatted"] for m in turns(session) if not m["end_of_turn"])


def test_u3_pro() -> None:
    session = load("u3-pro")
    assert session.header.request.query["speech_model"] == "u3-rt-pro"
    kinds = [(m["type"], m.get("turn_order")) for _, m in server_messages(session)]
    assert kinds == [
        ("Begin", None),
        ("SpeechStarted", None),
        ("Turn", 0),
        ("Turn", 0),
        ("SpeechStarted", None),
        ("Turn", 1),
        ("Termination", None),
    ]
    partials = [m for m in turns(session) if not m["end_of_turn"]]
    assert [m["transcript"] for m in partials] == ["I was thinking—"]
    assert all(m["end_of_turn_confidence"] == 0 for m in partials)
    assert all(not w["word_is_final"] for m in partials for w in m["words"])
    finals = [m for m in turns(session) if m["end_of_turn"]]
    assert [m["transcript"] for m in finals] == ["I was thinking, maybe tomorrow.", "Okay?"]
    for m in finals:
        assert (m["turn_is_formatted"], m["end_of_turn_confidence"]) == (True, 1)
        assert m["utterance"] == m["transcript"]


def test_language_detection() -> None:
    session = load("language-detection")
    query = session.header.request.query
    assert (query["language_detection"], query["speech_model"]) == (
        "true",
        "universal-streaming-multilingual",
    )
    assert {(m["turn_order"], m["language_code"]) for m in turns(session)} == {(0, "en"), (1, "es")}
    assert all(0 < m["language_confidence"] <= 1 for m in turns(session))
    assert ends(session)[-1] == (1, True, "Buenos días.")


def test_diarization() -> None:
    session = load("diarization")
    assert session.header.request.query["speaker_labels"] == "true"
    finals = [m for m in turns(session) if m["end_of_turn"] and m["turn_is_formatted"]]
    assert [(m["transcript"], m["speaker_label"]) for m in finals] == [
        ("Ready to order?", "A"),
        ("Yes, the soup.", "B"),
        ("And water.", "A"),
    ]
    assert all(w["speaker"] == m["speaker_label"] for m in turns(session) for w in m["words"])
    entries = session.entries
    terminate = next(i for i, e in enumerate(entries) if isinstance(e, ClientMessage))
    revision = next(
        i
        for i, e in enumerate(entries)
        if isinstance(e, ServerMessage) and e.message["type"] == "SpeakerRevision"
    )
    assert terminate < revision
    after = entries[revision + 1]
    assert isinstance(after, ServerMessage)
    assert after.message["type"] == "Termination"
    revised = entries[revision]
    assert isinstance(revised, ServerMessage)
    event = aai_proto.parse_server_message(json.dumps(dict(revised.message)))
    assert isinstance(event, aai_proto.SpeakerRevision)
    [item] = event.revisions
    assert (item.turn_order, item.speaker_label) == (2, "B")
    assert [(w.text, w.speaker) for w in item.words] == [("And", "B"), ("water.", "B")]


def test_heartbeat() -> None:
    session = load("heartbeat")
    assert session.header.request.query["session_heartbeat"] == "true"
    beats = [(t, m) for t, m in server_messages(session) if m["type"] == "Heartbeat"]
    assert [t for t, _ in beats] == [1.0, 2.0]
    for t, beat in beats:
        assert beat["total_duration_ms"] == int(t * 1000)
        assert beat["realtime_factor"] == round(beat["total_audio_received_ms"] / (t * 1000), 3)


def test_server_error_3005() -> None:
    session = load("server-error-3005")
    assert isinstance(session.entries[-1], Close)
    assert all(m["type"] != "Termination" for _, m in server_messages(session))
    # Turn 0 ended; turn 1 never did.
    assert [(o, f) for o, f, _ in ends(session)] == [(0, False)]
    assert max(m["turn_order"] for m in turns(session)) == 1


def test_inactivity_timeout() -> None:
    session = load("inactivity-timeout")
    assert session.header.request.query["inactivity_timeout"] == "5"
    last_audio = max(e.t for e in session.entries if isinstance(e, ClientAudio))
    error_t, error = next((t, m) for t, m in server_messages(session) if m["type"] == "Error")
    assert error_t == round(last_audio + 5.0, 3)
    assert error["error_code"] == 3006
    # The turn had ended before the client fell silent.
    assert ends(session) == [
        (0, False, "hello is anyone there"),
        (0, True, "Hello? Is anyone there?"),
    ]


def test_synth_plain_is_the_synthesizers_own_output() -> None:
    from aai_replay._synth import synthesize

    session = load("synth-plain")
    assert session.header.source == "synthesized"
    assert session.audio_path is not None
    made = synthesize(
        session.audio_path, "Hello there. This was synthesized.", audio_ref=session.header.audio
    )
    assert dumps_session(made) == dumps_session(session)
