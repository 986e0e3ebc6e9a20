"""Scenarios: which recorded connection each live connection plays, and their files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aai_proto import StreamingParams
from aai_replay import Faults, RecordedSession, write_session
from aai_replay._scenario import (
    EXHAUSTED_CODE,
    NO_MATCH_CODE,
    Scenario,
    ScenarioEntry,
    ScenarioFormatError,
    ScenarioPlayer,
    ScenarioRefusal,
    load_scenario,
)

QUERY = {"sample_rate": "16000", "encoding": "pcm_s16le"}
LIVE = StreamingParams(sample_rate=16000, encoding="pcm_s16le")


def params(**fields: Any) -> StreamingParams:
    return StreamingParams(sample_rate=16000, encoding="pcm_s16le", **fields)


@pytest.fixture
def three(make_session: Any, basic_session: RecordedSession) -> list[RecordedSession]:
    """Three sessions alike but for their parameters."""
    return [
        make_session(basic_session.entries, {**QUERY, **extra})
        for extra in (
            {"speech_model": "universal-streaming-english"},
            {"speech_model": "u3-rt-pro"},
            {"speech_model": "universal-streaming-english", "format_turns": "true"},
        )
    ]


def test_in_order_each_connection_gets_the_next_and_then_a_refusal(
    three: list[RecordedSession],
) -> None:
    player = ScenarioPlayer(Scenario(entries=three, name="reconnect.jsonl"))
    chosen = [player.choose(LIVE) for _ in range(3)]
    assert [c.session for c in chosen if isinstance(c, ScenarioEntry)] == three
    assert player.unplayed() == []
    assert player.choose(LIVE) == ScenarioRefusal(
        code=EXHAUSTED_CODE, reason="reconnect.jsonl: connection 4, but 3 recorded connections"
    )
    assert (player.connections, player.played) == (4, (1, 1, 1))


def test_after_last_repeat_plays_the_last_again(three: list[RecordedSession]) -> None:
    player = ScenarioPlayer(Scenario(entries=three[:1], after_last="repeat"))
    for _ in range(3):
        assert player.choose(LIVE) == ScenarioEntry(session=three[0])
    assert player.played == (3,)


def test_unplayed_entries_are_reported(three: list[RecordedSession]) -> None:
    player = ScenarioPlayer(Scenario(entries=three))
    player.choose(LIVE)
    assert player.unplayed() == [1, 2]


def test_by_request_the_matching_recording_plays(three: list[RecordedSession]) -> None:
    player = ScenarioPlayer(Scenario(entries=three, select="request"))
    assert player.choose(params(speech_model="u3-rt-pro")) == ScenarioEntry(session=three[1])
    formatted = params(speech_model="universal-streaming-english", format_turns=True)
    assert player.choose(formatted) == ScenarioEntry(session=three[2])
    # Played once each: a second connection like the first is beyond the scenario.
    refusal = player.choose(params(speech_model="u3-rt-pro"))
    assert isinstance(refusal, ScenarioRefusal)
    assert refusal.code == EXHAUSTED_CODE
    assert player.unplayed() == [0]


def test_by_request_no_match_names_what_differs(three: list[RecordedSession]) -> None:
    player = ScenarioPlayer(Scenario(entries=three, select="request", name="s"))
    refusal = player.choose(params(speech_model="universal-streaming-multilingual"))
    assert refusal == ScenarioRefusal(
        code=NO_MATCH_CODE,
        reason="s: connection 1 matches no recording "
        "(speech_model=universal-streaming-multilingual)",
    )


def test_match_on_compares_only_those_names(three: list[RecordedSession]) -> None:
    scenario = Scenario(entries=three, select="request", match_on=["speech_model"])
    player = ScenarioPlayer(scenario)
    # format_turns differs from entry 0 but is not compared: entry 0 matches first.
    chosen = player.choose(params(speech_model="universal-streaming-english", format_turns=True))
    assert chosen == ScenarioEntry(session=three[0])
    assert scenario.match_on == ("speech_model",)


def test_faults_travel_with_their_entry(three: list[RecordedSession]) -> None:
    broken = ScenarioEntry(session=three[0], faults=Faults(error_code=1011, error_after=0))
    player = ScenarioPlayer(Scenario(entries=[broken, three[1]]))
    assert player.choose(LIVE) == broken
    assert player.choose(LIVE) == ScenarioEntry(session=three[1])


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"entries": []}, "at least one connection"),
        ({"select": "random"}, "select must be one of order, request"),
        ({"after_last": "loop"}, "after_last must be one of refuse, repeat"),
        ({"match_on": "speech_model"}, "match_on must be a sequence"),
    ],
)
def test_bad_scenarios_are_refused(
    three: list[RecordedSession], options: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        Scenario(**{"entries": three, **options})


def test_of_takes_sessions_and_paths(three: list[RecordedSession], tmp_path: Path) -> None:
    write_session(three[1], tmp_path / "b.jsonl")
    scenario = Scenario.of([three[0], tmp_path / "b.jsonl"], after_last="repeat")
    assert [e.session.params for e in scenario.entries] == [three[0].params, three[1].params]
    assert scenario.after_last == "repeat"


# -- on disk -----------------------------------------------------------------------------


def test_the_recorders_numbered_set_is_a_scenario(
    three: list[RecordedSession], tmp_path: Path
) -> None:
    for name, session in zip(("call.jsonl", "call-2.jsonl", "call-3.jsonl"), three, strict=True):
        write_session(session, tmp_path / name)
    write_session(three[0], tmp_path / "call-5.jsonl")  # after a gap: not part of it
    scenario = load_scenario(tmp_path / "call.jsonl")
    assert [e.session.params for e in scenario.entries] == [s.params for s in three]
    assert scenario.name == "call.jsonl"
    # A numbered file on its own is one connection.
    assert len(load_scenario(tmp_path / "call-2.jsonl").entries) == 1


def write_manifest(tmp_path: Path, data: object, name: str = "two.scenario.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_a_manifest_gives_sessions_faults_and_options(
    three: list[RecordedSession], tmp_path: Path
) -> None:
    write_session(three[0], tmp_path / "first.jsonl")
    (tmp_path / "more").mkdir()
    write_session(three[1], tmp_path / "more" / "second.jsonl")
    path = write_manifest(
        tmp_path,
        {
            "aai_scenario": 1,
            "description": "a 1011 before Begin, then a normal session",
            "select": "request",
            "match_on": ["speech_model"],
            "after_last": "repeat",
            "connections": [
                {"session": "first.jsonl", "faults": {"error_code": 1011, "error_after": 0}},
                {"session": "more/second.jsonl"},
            ],
        },
    )
    scenario = load_scenario(path)
    assert scenario == Scenario(
        entries=[
            ScenarioEntry(session=three[0], faults=Faults(error_code=1011, error_after=0)),
            ScenarioEntry(session=three[1]),
        ],
        select="request",
        match_on=("speech_model",),
        after_last="repeat",
        name="two.scenario.json",
        description="a 1011 before Begin, then a normal session",
    )


OK = {"aai_scenario": 1, "connections": [{"session": "first.jsonl"}]}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("{", "not valid JSON (line 1 column 2"),
        ("[" * 100_000, "not valid JSON (nested too deeply)"),
        ('{"aai_scenario": NaN}', "not valid JSON (NaN is not JSON)"),
        ([], "a scenario manifest is a JSON object"),
        ({**OK, "aai_scenario": 2}, '"aai_scenario" must be 1'),
        ({**OK, "aai_scenario": True}, '"aai_scenario" must be 1'),
        ({**OK, "speed": 2}, "unknown key 'speed'"),
        ({**OK, "connections": []}, '"connections" must be a non-empty list'),
        ({**OK, "connections": ["first.jsonl"]}, "connection 1 must be a JSON object"),
        ({**OK, "connections": [{"session": ""}]}, 'connection 1: "session" must name'),
        ({**OK, "connections": [{"file": "x"}]}, "connection 1: unknown key 'file'"),
        ({**OK, "connections": [{"session": "nope.jsonl"}]}, "no session file 'nope.jsonl'"),
        ({**OK, "connections": [{"session": "."}]}, "connection 1: can't read '.'"),
        (
            {**OK, "connections": [{"session": "first.jsonl", "faults": []}]},
            '"faults" must be a JSON object',
        ),
        (
            {**OK, "connections": [{"session": "first.jsonl", "faults": {"drop": 1}}]},
            "connection 1: unknown fault 'drop' (known: delay, drop_after_messages",
        ),
        (
            {**OK, "connections": [{"session": "first.jsonl", "faults": {"error_code": 1006}}]},
            "connection 1: error_code must be a close code a server can send",
        ),
        ({**OK, "select": "random"}, "select must be one of order, request"),
        ({**OK, "match_on": ["speech_model"]}, '"match_on" needs "select": "request"'),
        ({**OK, "select": "request", "match_on": "x"}, '"match_on" must be a list'),
        ({**OK, "description": 5}, '"description" must be a string'),
    ],
)
def test_a_bad_manifest_says_what_is_wrong(
    three: list[RecordedSession], tmp_path: Path, data: object, problem: str
) -> None:
    write_session(three[0], tmp_path / "first.jsonl")
    path = write_manifest(tmp_path, data)
    with pytest.raises(ScenarioFormatError) as raised:
        load_scenario(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert problem in raised.value.problem


def test_equal_entries_are_counted_by_position(three: list[RecordedSession]) -> None:
    # Two entries alike: each is played once, in its place.
    player = ScenarioPlayer(Scenario(entries=[three[0], three[0]]))
    assert [player.choose_index(LIVE), player.choose_index(LIVE)] == [0, 1]
    assert player.played == (1, 1)
