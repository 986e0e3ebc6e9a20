"""The pytest plugin's verdict: a test fails at teardown when its client broke the rules.

Each test here writes a small test file that talks to a replay server of
``synth-plain.jsonl`` with a raw WebSocket client (``websockets``' sync client,
over 127.0.0.1, every wait bounded), runs pytest on it with ``pytester`` and
checks the outcome and the exact lines of the verdict.

The clients that break a lifecycle rule use ``pacing="wall"``: with the default
audio pacing the replay answers ``Terminate`` at once, and a frame the client
sends right after it may still be unread when the server starts its close --
which discards it (trio-websocket's ``aclose()`` drops the messages not yet
read), so the violation would be caught only most of the time. Wall pacing
holds the recorded ``Termination`` back 60 ms after the live ``Terminate``, so
the frame is always read first.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aai_replay import ConnectionRecord, Departure, Request, ViolationRecord
from aai_replay._journal import verdict

pytest_plugins = ["pytester"]

SESSION = Path(__file__).resolve().parents[2] / "fixtures" / "sessions" / "synth-plain.jsonl"

# The start of every generated test file: the session and a raw client.
PRELUDE = f"""\
import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from aai_replay import ClientAudio, Faults, ServerMessage, load_session

SESSION = {str(SESSION)!r}
QUERY = "?sample_rate=16000&encoding=pcm_s16le&speech_model=universal-streaming-english"
FRAME = b"\\0" * 1600  # 50 ms of 16 kHz pcm_s16le
TERMINATE = '{{"type":"Terminate"}}'
# The recorded client's frames, all 3362 ms of them.
RECORDED = [b"\\0" * e.nbytes for e in load_session(SESSION).entries if isinstance(e, ClientAudio)]


def talk(url, *frames, query=QUERY, headers=None):
    '''Send ``frames`` at once, then read until the server closes.

    Returns the types of the messages received, the close code and its reason.
    '''
    types = []
    with connect(
        url + query, open_timeout=10, close_timeout=10, additional_headers=headers
    ) as ws:
        for frame in frames:
            ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                types.append(json.loads(ws.recv(timeout=10))["type"])
    close = closed.value.rcvd
    assert close is not None
    return types, close.code, close.reason
"""

FAILED = "aai-replay: the client broke the rules of the session:"
HINT = (
    "(a test that breaks these rules on purpose: pass verdict=False to the "
    "@pytest.mark.aai_replay marker or to aai_replay_server)"
)


def run(pytester: pytest.Pytester, tests: str) -> pytest.RunResult:
    """Run pytest on the prelude followed by ``tests``."""
    pytester.makepyfile(test_inner=PRELUDE + textwrap.dedent(tests))
    return pytester.runpytest("-p", "no:cacheprovider", "-rA")


def assert_verdict(result: pytest.RunResult, test: str, *problems: str) -> None:
    """``test`` failed at teardown listing exactly ``problems`` (fnmatch patterns)."""
    result.stdout.fnmatch_lines(
        [
            f"*ERROR at teardown of {test}*",
            FAILED,
            *(f"  {problem}" for problem in problems),
            HINT,
        ],
        consecutive=True,
    )


def assert_no_verdict(result: pytest.RunResult) -> None:
    out = result.stdout.str()
    assert FAILED not in out
    assert "ERROR at teardown" not in out


# -- lifecycle violations -----------------------------------------------------------


LATE_AUDIO = """
@pytest.mark.aai_replay(SESSION, pacing="wall"{options})
def test_late_audio(aai_replay_url):
    frames = (FRAME, FRAME, FRAME, TERMINATE, FRAME)
    assert talk(aai_replay_url, *frames) == (["Begin", "Termination"], 1000, "Session Ended")
"""


def test_audio_after_terminate_fails_the_test_at_teardown(pytester: pytest.Pytester) -> None:
    result = run(pytester, LATE_AUDIO.format(options=""))
    result.assert_outcomes(passed=1, errors=1)
    assert_verdict(result, "test_late_audio", "connection 1, t=?.??? s: audio after Terminate")
    result.stdout.fnmatch_lines(["PASSED test_inner.py::test_late_audio"])


def test_verdict_false_in_the_marker_lets_the_test_pass(pytester: pytest.Pytester) -> None:
    result = run(pytester, LATE_AUDIO.format(options=", verdict=False"))
    result.assert_outcomes(passed=1, errors=0)
    assert_no_verdict(result)


def test_the_journal_keeps_a_violation_that_is_not_judged(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION, pacing="wall", verdict=False)
        def test_journal(aai_replay, aai_replay_url):
            assert aai_replay.url == aai_replay_url
            talk(aai_replay_url, FRAME, TERMINATE, FRAME)
            [record] = aai_replay.journal
            assert [(v.code, v.rule) for v in record.violations] == [
                (None, "audio after Terminate")
            ]
            assert record.problems() == [
                f"connection 1, t={record.violations[0].t:.3f} s: audio after Terminate"
            ]
            # Counted as received, though the replay did not take it.
            assert record.audio.frames == 2
        """,
    )
    result.assert_outcomes(passed=1)


def test_the_factory_judges_its_servers_unless_told_not_to(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        def test_judged(aai_replay_server):
            server = aai_replay_server(SESSION, pacing="wall")
            assert talk(server.url, FRAME, TERMINATE, FRAME)[1] == 1000

        def test_not_judged(aai_replay_server):
            server = aai_replay_server(SESSION, pacing="wall", verdict=False)
            assert talk(server.url, FRAME, TERMINATE, FRAME)[1] == 1000
        """,
    )
    result.assert_outcomes(passed=2, errors=1)
    assert_verdict(result, "test_judged", "connection 1, t=?.??? s: audio after Terminate")
    result.stdout.fnmatch_lines(["ERROR test_inner.py::test_judged - Failed: aai-replay: *"])
    result.stdout.no_fnmatch_line("ERROR test_inner.py::test_not_judged*")


def test_the_factory_judges_only_the_servers_it_was_told_to(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        def test_two_servers(aai_replay_server):
            judged = aai_replay_server(SESSION, pacing="wall")
            free = aai_replay_server(SESSION, pacing="wall", verdict=False)
            talk(free.url, FRAME, TERMINATE, FRAME)
            talk(judged.url, FRAME, TERMINATE, TERMINATE)
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    assert_verdict(result, "test_two_servers", "connection 1, t=?.??? s: a second Terminate")


def test_a_second_terminate_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION, pacing="wall")
        def test_terminate_twice(aai_replay_url):
            assert talk(aai_replay_url, FRAME, FRAME, TERMINATE, TERMINATE)[:2] == (
                ["Begin", "Termination"],
                1000,
            )
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    assert_verdict(result, "test_terminate_twice", "connection 1, t=?.??? s: a second Terminate")


def test_every_problem_of_every_connection_is_listed_in_order(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION, pacing="wall")
        def test_connections(aai_replay_url):
            talk(aai_replay_url, FRAME, TERMINATE)  # by the rules
            talk(aai_replay_url, FRAME, TERMINATE, '{"type":"ForceEndpoint"}', FRAME)
            talk(aai_replay_url, FRAME, TERMINATE, TERMINATE)
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    assert_verdict(
        result,
        "test_connections",
        "connection 2, t=?.??? s: ForceEndpoint after Terminate",
        "connection 2, t=?.??? s: audio after Terminate",
        "connection 3, t=?.??? s: a second Terminate",
    )


def test_a_strict_replay_closes_on_a_violation_and_fails_the_test(
    pytester: pytest.Pytester,
) -> None:
    # Every recorded frame, so that the Terminate is on time: the only problem is
    # the frame after it. speed=10 holds the Termination back ~0.3 s behind the
    # recorded turns.
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION, strict=True, pacing="wall", speed=10)
        def test_strict_late_audio(aai_replay_url):
            types, code, reason = talk(aai_replay_url, *RECORDED, TERMINATE, FRAME)
            assert types[0] == "Begin"
            assert "Termination" not in types
            assert code == 4900
            assert reason == "the client sent audio after Terminate"
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    assert_verdict(
        result,
        "test_strict_late_audio",
        "connection 1, t=?.??? s: audio after Terminate (closed 4900)",
    )


# -- departures ---------------------------------------------------------------------


def test_a_strict_replay_fails_the_test_for_a_departure(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION, strict=True)
        def test_other_rate(aai_replay_url):
            query = QUERY.replace("sample_rate=16000", "sample_rate=8000")
            assert talk(aai_replay_url, query=query) == (
                [],
                4900,
                "request differs: sample_rate recorded 16000, got 8000",
            )
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    assert_verdict(
        result,
        "test_other_rate",
        "connection 1, t=0.000 s: departed from the recording: "
        "expected sample_rate=16000, got sample_rate=8000 (closed 4900)",
    )


def test_a_lenient_replay_does_not_judge_departures(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION)
        def test_other_rate(aai_replay, aai_replay_url):
            query = QUERY.replace("sample_rate=16000", "sample_rate=8000")
            types, code, _ = talk(aai_replay_url, FRAME, TERMINATE, query=query)
            assert (types[0], types[-1], code) == ("Begin", "Termination", 1000)
            [record] = aai_replay.journal
            assert record.departures[0].expected == "sample_rate=16000"
            assert record.departures[0].got == "sample_rate=8000"
            assert record.problems() == []
        """,
    )
    result.assert_outcomes(passed=1)
    assert_no_verdict(result)


# -- clients that follow the rules --------------------------------------------------


def test_a_client_that_follows_the_rules_passes(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION)
        def test_lenient(aai_replay_url):
            types, code, reason = talk(aai_replay_url, FRAME, FRAME, FRAME, TERMINATE)
            assert (types, code, reason) == (["Begin", "Termination"], 1000, "Session Ended")

        @pytest.mark.aai_replay(SESSION, strict=True)
        def test_strict(aai_replay_url):
            types, code, reason = talk(aai_replay_url, *RECORDED, TERMINATE)
            # Every recorded server message, in order.
            assert types == [
                e.message["type"]
                for e in load_session(SESSION).entries
                if isinstance(e, ServerMessage)
            ]
            assert (code, reason) == (1000, "Session Ended")
        """,
    )
    result.assert_outcomes(passed=2, errors=0)
    assert_no_verdict(result)


def test_the_journal_is_read_inside_the_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION)
        def test_journal(aai_replay):
            frames = [FRAME] * 10 + [
                '{"type":"ForceEndpoint"}',
                '{"type":"UpdateConfiguration","max_turn_silence":500}',
                TERMINATE,
            ]
            types, code, _ = talk(aai_replay.url, *frames)
            assert code == 1000
            [record] = aai_replay.journal
            assert record.connection == 1
            assert record.request.path == "/v3/ws"
            assert record.request.query["speech_model"] == "universal-streaming-english"
            assert record.params.sample_rate == 16000
            assert (record.audio.frames, record.audio.bytes, record.audio.ms) == (10, 16000, 500)
            messages = [m.message for m in record.client_messages]
            assert [m.type for m in messages] == [
                "ForceEndpoint",
                "UpdateConfiguration",
                "Terminate",
            ]
            assert messages[1].max_turn_silence == 500
            times = [m.t for m in record.client_messages]
            assert times == sorted(times)
            assert [json.loads(m.data)["type"] for m in record.server_messages] == types
            assert (record.close.code, record.close.reason, record.close.by) == (
                1000,
                "Session Ended",
                "server",
            )
            # A lenient replay adapts to the departures and does not judge them.
            assert [(d.expected, d.got) for d in record.departures] == [
                ("Terminate", "ForceEndpoint"),
                ("3362.062 ms of audio before Terminate", "500 ms"),
            ]
            assert record.violations == ()
            assert record.problems() == []
        """,
    )
    result.assert_outcomes(passed=1, errors=0)
    assert_no_verdict(result)


def test_injected_faults_are_not_the_clients_doing(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION, faults=Faults(error_code=3005))
        def test_fault(aai_replay, aai_replay_url):
            # Begin, then the Error: the server closes at once.
            types, code, _ = talk(aai_replay_url)
            assert (types, code) == (["Begin", "Error"], 3005)
            assert aai_replay.journal[0].close.code == 3005
        """,
    )
    result.assert_outcomes(passed=1, errors=0)
    assert_no_verdict(result)


# -- the service's rejections -------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        pytest.param(
            "talk(aai_replay_url, FRAME, FRAME, 'not json')",
            "Invalid client message: client message is not valid JSON: "
            "Expecting value: line 1 column 1 (char 0) (closed 3006)",
            id="bad-json-3006",
        ),
        pytest.param(
            "talk(aai_replay_url, query='?sample_rate=abc&encoding=pcm_s16le')",
            "User Input Validation Error: Invalid 'sample_rate': expected an integer, "
            "got 'abc' (closed 3006)",
            id="bad-parameter-3006",
        ),
        pytest.param(
            "talk(aai_replay_url, FRAME, b'\\0' * 64000)",
            "Input duration violation: 2000 ms. Expected between 50 and 1000 ms (closed 3007)",
            id="long-frame-3007",
        ),
    ],
)
def test_a_rejection_the_client_caused_fails_the_test(
    pytester: pytest.Pytester, call: str, problem: str
) -> None:
    result = run(
        pytester,
        f"""
        @pytest.mark.aai_replay(SESSION)
        def test_rejected(aai_replay_url):
            types, code, reason = {call}
            assert types[-1] == "Error"
            assert (code, reason) == ({problem[-5:-1]}, "See Error message for details")
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    assert_verdict(result, "test_rejected", f"connection 1, t=?.??? s: {problem}")


@pytest.mark.parametrize(
    ("credentials", "problem"),
    [
        pytest.param(
            "headers={'Authorization': 'wrong-key'}",
            "Unauthorized connection: invalid API key or token (closed 1008)",
            id="wrong-header",
        ),
        pytest.param(
            "query=QUERY + '&token=wrong-key'",
            "Unauthorized connection: invalid API key or token (closed 1008)",
            id="wrong-token",
        ),
        pytest.param(
            "",
            "Unauthorized connection: missing API key or token (closed 1008)",
            id="missing",
        ),
    ],
)
def test_a_refused_key_fails_the_test(
    pytester: pytest.Pytester, credentials: str, problem: str
) -> None:
    result = run(
        pytester,
        f"""
        @pytest.mark.aai_replay(SESSION, api_key="the-key")
        def test_key(aai_replay, aai_replay_url):
            assert talk(aai_replay_url, {credentials})[:2] == (["Error"], 1008)
            [record] = aai_replay.journal
            assert record.params is None
            assert "token" not in record.request.query
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    assert_verdict(result, "test_key", f"connection 1, t=0.000 s: {problem}")
    assert "wrong-key" not in "".join(result.outlines[result.outlines.index(FAILED) :])


def test_a_request_for_another_path_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.aai_replay(SESSION)
        def test_path(aai_replay_url):
            with pytest.raises(InvalidStatus) as refused:
                talk(aai_replay_url.replace("/v3/ws", "/v2/ws"))
            assert refused.value.response.status_code == 404
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    assert_verdict(
        result, "test_path", "connection 1, t=0.000 s: no such path: '/v2/ws' (connect to /v3/ws)"
    )


# -- ConnectionRecord.problems() and verdict() ---------------------------------------


def _record(connection: int, *, strict: bool) -> ConnectionRecord:
    return ConnectionRecord(
        connection=connection,
        request=Request(query={"sample_rate": "8000"}),
        params=None,
        strict=strict,
        violations=(
            ViolationRecord(t=0.0004, code=None, rule="audio after Terminate"),
            ViolationRecord(t=1.5, code=3007, rule="Input duration violation: 2000 ms"),
        ),
        departures=(
            Departure(t=0.0, expected="sample_rate=16000", got="sample_rate=8000"),
            Departure(t=12.34567, expected="Terminate", got="ForceEndpoint"),
        ),
    )


def test_problems_lists_violations_then_a_strict_replays_departures() -> None:
    assert _record(2, strict=True).problems() == [
        "connection 2, t=0.000 s: audio after Terminate",
        "connection 2, t=1.500 s: Input duration violation: 2000 ms (closed 3007)",
        "connection 2, t=0.000 s: departed from the recording: "
        "expected sample_rate=16000, got sample_rate=8000 (closed 4900)",
        "connection 2, t=12.346 s: departed from the recording: "
        # Only the first departure of a strict replay closed the connection.
        "expected Terminate, got ForceEndpoint",
    ]


def test_problems_leaves_out_a_lenient_replays_departures() -> None:
    assert _record(1, strict=False).problems() == [
        "connection 1, t=0.000 s: audio after Terminate",
        "connection 1, t=1.500 s: Input duration violation: 2000 ms (closed 3007)",
    ]
    clean = ConnectionRecord(connection=1, request=Request(), params=None, strict=True)
    assert clean.problems() == []


def test_verdict_takes_the_records_in_order() -> None:
    records = [_record(1, strict=False), _record(2, strict=True)]
    lines = verdict(records)
    assert lines == records[0].problems() + records[1].problems()
    assert [line.split(",")[0] for line in lines] == ["connection 1"] * 2 + ["connection 2"] * 4
    assert verdict([]) == []
