"""Scenarios served: one server, several recorded connections, each with its faults.

Over real sockets on 127.0.0.1, every wait bounded: a client written with
``aai_proto.trio`` that reconnects after a retryable failure plays a
two-connection scenario; connections beyond it are refused; a scenario selects
by request; and the pytest plugin fails a test that leaves a connection unplayed.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import trio
from assemblyai.streaming.v3 import StreamingClient, StreamingClientOptions

from aai_proto import StreamingError, Termination, Turn
from aai_proto.trio import open_session
from aai_replay import (
    BackgroundReplayServer,
    Faults,
    RecordedSession,
    load_session,
    open_replay_server,
    write_session,
)
from aai_replay._scenario import Scenario, ScenarioEntry
from tests._sdk import SDK_WARNINGS, listen, sdk_parameters

pytest_plugins = ["pytester"]

SESSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "sessions"
LIMIT = 30.0


async def transcribe(url: str, session: RecordedSession, *, retries: int = 0) -> list[str]:
    """One session through ``aai_proto.trio``: the final transcripts.

    ``retries`` is ``open_session``'s: how many failed openings it tries again.
    """
    audio = session.audio_path
    assert audio is not None
    finals: list[str] = []
    async with open_session(session.params, url=url, retries=retries, retry_delay=0) as live:
        await live.stream_file(audio, realtime=False)
        await live.terminate()
        async for event in live:
            if isinstance(event, Turn) and event.end_of_turn:
                finals.append(event.transcript)
            assert not isinstance(event, Termination) or live.termination is event
    return finals


@pytest.fixture
def plain() -> RecordedSession:
    return load_session(SESSIONS / "synth-plain.jsonl")


def two_connections(plain: RecordedSession) -> Scenario:
    """Connection 1: the server fails 1011 before Begin; connection 2: as recorded."""
    failing = ScenarioEntry(session=plain, faults=Faults(error_code=1011, error_after=0))
    return Scenario(entries=[failing, plain], name="reconnect")


async def test_a_reconnecting_client_plays_both_connections(plain: RecordedSession) -> None:
    with trio.fail_after(LIMIT):
        async with open_replay_server(two_connections(plain)) as server:
            finals = await transcribe(server.url, plain, retries=2)
            assert server.unplayed() == []
            journal = server.journal
    expected = [
        m.message["transcript"]
        for m in plain.entries
        if hasattr(m, "message") and m.message.get("type") == "Turn" and m.message["end_of_turn"]
    ]
    assert finals == expected
    assert [record.close.code for record in journal if record.close] == [1011, 1000]


async def test_a_client_that_does_not_reconnect_leaves_one_unplayed(
    plain: RecordedSession,
) -> None:
    with trio.fail_after(LIMIT):
        async with open_replay_server(two_connections(plain)) as server:
            with pytest.raises(StreamingError) as failed:
                await transcribe(server.url, plain)
            assert failed.value.code == 1011
            assert server.unplayed() == ["1 recorded connection not played: 2 of 2 in reconnect"]


async def test_a_connection_beyond_the_scenario_is_refused_4901(plain: RecordedSession) -> None:
    scenario = Scenario(entries=[plain], name="once.jsonl")
    with trio.fail_after(LIMIT):
        async with open_replay_server(scenario) as server:
            await transcribe(server.url, plain)
            with pytest.raises(StreamingError) as refused:
                await transcribe(server.url, plain)
            journal = server.journal
    assert (refused.value.code, refused.value.reason) == (
        4901,
        "once.jsonl: connection 2, but 1 recorded connection",
    )
    assert journal[1].violations[0].code == 4901


async def test_by_request_each_client_gets_its_recording() -> None:
    u3 = load_session(SESSIONS / "u3-pro.jsonl")
    english = load_session(SESSIONS / "synth-plain.jsonl")
    scenario = Scenario(entries=[english, u3], select="request", match_on=["speech_model"])
    with trio.fail_after(LIMIT):
        async with open_replay_server(scenario) as server:
            assert await transcribe(server.url, u3) == await transcribe_direct(u3)
            assert await transcribe(server.url, english) == await transcribe_direct(english)
            assert server.unplayed() == []


async def transcribe_direct(session: RecordedSession) -> list[str]:
    async with open_replay_server(session) as server:
        return await transcribe(server.url, session)


async def test_a_manifest_path_is_served(plain: RecordedSession, tmp_path: Path) -> None:
    write_session(plain, tmp_path / "call.jsonl")
    manifest = tmp_path / "call.scenario.json"
    manifest.write_text(
        json.dumps(
            {
                "aai_scenario": 1,
                "connections": [
                    {"session": "call.jsonl", "faults": {"error_code": 1011, "error_after": 0}},
                    {"session": "call.jsonl"},
                ],
            }
        )
    )
    with trio.fail_after(LIMIT):
        async with open_replay_server(manifest) as server:
            await transcribe(server.url, plain, retries=1)
            assert server.unplayed() == []


def test_the_plugin_fails_a_test_that_leaves_a_connection_unplayed(
    pytester: pytest.Pytester,
) -> None:
    session = str(SESSIONS / "synth-plain.jsonl")
    pytester.makepyfile(
        textwrap.dedent(
            f"""
            from websockets.sync.client import connect

            SESSION = {session!r}


            def test_two_sessions_one_connection(aai_replay_server):
                server = aai_replay_server([SESSION, SESSION])
                with connect(server.url + "?sample_rate=16000", open_timeout=10) as ws:
                    ws.recv(timeout=10)  # Begin
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*1 recorded connection not played: 2 of 2 in the test's 2 sessions*"]
    )


def test_the_marker_takes_a_shipped_session_by_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            """
            import pytest


            @pytest.mark.aai_replay("u3-pro", verdict=False)
            def test_named(aai_replay):
                assert aai_replay.server.session.params.speech_model == "u3-rt-pro"
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@SDK_WARNINGS[0]
@SDK_WARNINGS[1]
def test_the_official_sdk_plays_a_two_session_scenario(plain: RecordedSession) -> None:
    u3 = load_session(SESSIONS / "u3-pro.jsonl")
    scenario = Scenario(entries=[plain, u3], name="two calls")
    with BackgroundReplayServer(scenario) as server:
        names = []
        for session in (plain, u3):
            client = StreamingClient(StreamingClientOptions(api_key="k", api_host=server.api_host))
            received, errors = listen(client)
            client.connect(sdk_parameters(session))
            client.disconnect(terminate=True)
            assert errors == []
            names.append([name for name, _ in received])
        assert server.unplayed() == []
        assert [record.params.speech_model for record in server.journal] == [  # type: ignore[union-attr]
            "universal-streaming-english",
            "u3-rt-pro",
        ]
    assert all(n[0] == "BeginEvent" and n[-1] == "TerminationEvent" for n in names)


def test_the_factory_resolves_paths_from_the_rootdir_and_names(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "sub").mkdir()
    (pytester.path / "data").mkdir()
    write_session(load_session(SESSIONS / "synth-plain.jsonl"), pytester.path / "data/s.jsonl")
    pytester.makepyfile(
        **{
            "sub/test_factory": textwrap.dedent(
                """
                def test_paths(aai_replay_server, monkeypatch, tmp_path):
                    monkeypatch.chdir(tmp_path)  # not where the paths are
                    server = aai_replay_server("data/s.jsonl", verdict=False)
                    assert server.server.session.params.speech_model == (
                        "universal-streaming-english"
                    )
                    named = aai_replay_server(["u3-pro", "data/s.jsonl"], verdict=False)
                    assert len(named.server.scenario.entries) == 2
                """
            )
        }
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--rootdir", str(pytester.path))
    result.assert_outcomes(passed=1)
