"""Cassettes end to end: record a reconnecting client once, replay it forever.

A local replay server stands in for the service as the upstream (no network): its
first connection fails 1011 before ``Begin``, its second plays ``synth-plain``. The
client under test is written with ``aai_proto.trio``, whose ``open_session`` tries a
failed opening again (``retries``), as the SDKs do. pytester runs the generated test file with each
record mode; every socket is on 127.0.0.1 and every wait bounded.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from aai_replay import BackgroundReplayServer, Faults, load_session
from aai_replay._scenario import Scenario, ScenarioEntry

pytest_plugins = ["pytester"]

SESSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "sessions"
PLAIN = SESSIONS / "synth-plain.jsonl"


def agent_test(attempts: int) -> str:
    """A test file: an agent that streams synth-plain, opening in at most ``attempts`` tries."""
    audio = load_session(PLAIN).audio_path
    return textwrap.dedent(
        f"""
        import trio
        from aai_proto import StreamingError, StreamingParams, Turn
        from aai_proto.trio import open_session

        PARAMS = StreamingParams(sample_rate=16000, speech_model="universal-streaming-english")


        async def agent(url):
            with trio.fail_after(30):
                try:
                    async with open_session(
                        PARAMS, url=url, api_key="my-key", retries={attempts - 1}, retry_delay=0
                    ) as live:
                        await live.stream_file({str(audio)!r}, realtime=False)
                        await live.terminate()
                        return [e.transcript async for e in live
                                if isinstance(e, Turn) and e.end_of_turn]
                except StreamingError as exc:
                    assert exc.retryable
                    return None  # gave up quietly


        def test_agent(aai_cassette):
            finals = trio.run(agent, aai_cassette.url)
            assert finals is None or len(finals) == 2
        """
    )


@pytest.fixture
def upstream() -> Iterator[BackgroundReplayServer]:
    """The stand-in service: 1011 before Begin on the first connection, then the session."""
    plain = load_session(PLAIN)
    scenario = Scenario(
        entries=[
            ScenarioEntry(session=plain, faults=Faults(error_code=1011, error_after=0)),
            plain,
        ],
        after_last="repeat",
        name="service",
    )
    with BackgroundReplayServer(scenario) as server:
        yield server


def cassette(pytester: pytest.Pytester) -> Path:
    return pytester.path / "cassettes" / "test_agent" / "test_agent.jsonl"


def run(pytester: pytest.Pytester, *args: str, ci: bool = False) -> pytest.RunResult:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AAI_REPLAY_UPSTREAM", raising=False)
        if ci:
            patch.setenv("CI", "1")
        else:
            patch.delenv("CI", raising=False)
        return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_record_once_then_replay_without_the_upstream(
    pytester: pytest.Pytester, upstream: BackgroundReplayServer
) -> None:
    pytester.makepyfile(test_agent=agent_test(attempts=3))
    recorded = run(pytester, "--aai-record-mode=once", f"--aai-upstream={upstream.url}")
    recorded.assert_outcomes(passed=1)
    first, second = cassette(pytester), cassette(pytester).with_name("test_agent-2.jsonl")
    assert load_session(first).close.code == 1011  # type: ignore[union-attr]
    assert load_session(second).close.code == 1000  # type: ignore[union-attr]
    assert not cassette(pytester).with_name("test_agent-3.jsonl").exists()
    assert "my-key" not in first.read_text() + second.read_text()
    assert len(upstream.journal) == 2
    upstream.stop()  # no service at all from here on

    replayed = run(pytester)  # mode none: replay
    replayed.assert_outcomes(passed=1)

    # A client that no longer reconnects plays one recorded connection of two.
    pytester.makepyfile(test_agent=agent_test(attempts=1))
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*1 recorded connection not played: 2 of 2 in test_agent.jsonl*"])


def test_none_without_a_cassette_says_how_to_record(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_agent=agent_test(attempts=3))
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*aai-replay: no cassette at {cassette(pytester)}; record it with: "
            "pytest --aai-record-mode=once 'test_agent.py::test_agent'*"
        ]
    )


def test_ci_refuses_to_record_unless_the_mode_is_on_the_command_line(
    pytester: pytest.Pytester, upstream: BackgroundReplayServer
) -> None:
    pytester.makepyfile(test_agent=agent_test(attempts=3))
    pytester.makeini("[pytest]\naai_record_mode = once\n")
    refused = run(pytester, f"--aai-upstream={upstream.url}", ci=True)
    refused.assert_outcomes(errors=1)
    refused.stdout.fnmatch_lines(["*recording * is refused: CI is set*"])
    assert not cassette(pytester).exists()
    assert upstream.journal == []
    allowed = run(pytester, "--aai-record-mode=once", f"--aai-upstream={upstream.url}", ci=True)
    allowed.assert_outcomes(passed=1)
    assert cassette(pytester).exists()


def test_all_records_again(pytester: pytest.Pytester, upstream: BackgroundReplayServer) -> None:
    pytester.makepyfile(test_agent=agent_test(attempts=3))
    run(pytester, "--aai-record-mode=once", f"--aai-upstream={upstream.url}").assert_outcomes(
        passed=1
    )
    stale = cassette(pytester).with_name("test_agent-3.jsonl")
    stale.write_text(cassette(pytester).with_name("test_agent-2.jsonl").read_text())
    before = cassette(pytester).read_text()
    again = run(pytester, "--aai-record-mode=all", f"--aai-upstream={upstream.url}")
    again.assert_outcomes(passed=1)
    # Recorded anew (the stand-in repeats its session now: no 1011 first) and the
    # stale third connection is gone.
    assert cassette(pytester).read_text() != before
    assert not stale.exists()
    assert json.loads(cassette(pytester).read_text().splitlines()[-1])["close"]["code"] == 1000


def test_new_episodes_appends_exactly_the_new_connections(
    pytester: pytest.Pytester, upstream: BackgroundReplayServer
) -> None:
    pytester.makepyfile(test_agent=agent_test(attempts=3))
    run(pytester, "--aai-record-mode=once", f"--aai-upstream={upstream.url}").assert_outcomes(
        passed=1
    )
    recorded = [cassette(pytester), cassette(pytester).with_name("test_agent-2.jsonl")]
    before = [path.read_text() for path in recorded]
    assert len(upstream.journal) == 2
    # The agent now opens one session more: its first two connections are replayed
    # (a 1011, then the session: it reconnects), the third is recorded and appended.
    pytester.makepyfile(
        test_agent=agent_test(attempts=3).replace(
            "finals = trio.run(agent, aai_cassette.url)",
            "finals = trio.run(agent, aai_cassette.url)\n"
            "    assert trio.run(agent, aai_cassette.url) is not None",
        )
    )
    result = run(pytester, "--aai-record-mode=new_episodes", f"--aai-upstream={upstream.url}")
    result.assert_outcomes(passed=1)
    assert [path.read_text() for path in recorded] == before  # replayed, not rewritten
    third = cassette(pytester).with_name("test_agent-3.jsonl")
    assert load_session(third).close.code == 1000  # type: ignore[union-attr]
    assert len(upstream.journal) == 3  # only the new connection reached the service
    replayed = run(pytester)
    replayed.assert_outcomes(passed=1)


SDK_TEST = textwrap.dedent(
    f"""
    import pytest
    from aai_replay import BackgroundRecorder
    from assemblyai.streaming.v3 import (
        StreamingClient, StreamingClientOptions, StreamingEvents, StreamingParameters,
    )

    pytestmark = [
        pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    ]


    def call(api_host):
        client = StreamingClient(StreamingClientOptions(api_key="my-key", api_host=api_host))
        seen = []
        client.on(StreamingEvents.Begin, lambda _c, m: seen.append("Begin"))
        client.on(StreamingEvents.Termination, lambda _c, m: seen.append("Termination"))
        client.connect(StreamingParameters(**{{"sample_rate": 16000}}))
        with open({str(load_session(PLAIN).audio_path)!r}, "rb") as wav:
            wav.read(44)
            client.stream(iter(lambda: wav.read(1600), b""))
        client.disconnect(terminate=True)
        return seen


    def test_two_calls(aai_cassette):
        assert call(aai_cassette.api_host) == ["Begin", "Termination"]
        assert call(aai_cassette.api_host) == ["Begin", "Termination"]
        # Recording, the proxy keeps no journal; replaying, both connections are in it.
        recording = isinstance(aai_cassette, BackgroundRecorder)
        assert len(aai_cassette.journal) == (0 if recording else 2)
    """
)


def test_the_official_sdk_records_two_sessions_once_and_replays_them(
    pytester: pytest.Pytester,
) -> None:
    with BackgroundReplayServer(PLAIN) as service:
        pytester.makepyfile(test_sdk=SDK_TEST)
        run(pytester, "--aai-record-mode=once", f"--aai-upstream={service.url}").assert_outcomes(
            passed=1
        )
        assert len(service.journal) == 2
    folder = pytester.path / "cassettes" / "test_sdk"
    assert sorted(p.name for p in folder.iterdir()) == [
        "test_two_calls-2.jsonl",
        "test_two_calls.jsonl",
    ]
    run(pytester).assert_outcomes(passed=1)  # no service at all
