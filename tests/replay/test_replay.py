"""The replay engine without I/O: gates, departures (lenient and strict), pacing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aai_proto import ClientMessage as CoreMessage
from aai_proto import (
    ForceEndpoint,
    KeepAlive,
    StreamingParams,
    Terminate,
    UpdateConfiguration,
    parse_url,
)
from aai_replay import (
    Abort,
    ClientAudio,
    ClientMessage,
    Close,
    CloseConnection,
    RecordedSession,
    Replay,
    ReplayPlan,
    Send,
    ServerMessage,
    ServerRaw,
    load_session,
)
from tests.replay._replay import BEGIN_LIVE, PARAMS, replay, sent

MakeSession = Callable[..., RecordedSession]
FRAME = 1600
TERMINATION = {"type": "Termination", "audio_duration_seconds": 0, "session_duration_seconds": 0}


# -- the audio and control gates ------------------------------------------------------


def test_a_lone_surrogate_goes_out_escaped(make_session: MakeSession) -> None:
    # A recording may hold one (a server sent the escape); a text frame is UTF-8.
    warning = {"type": "Warning", "warning_code": 1, "warning": "odd \ud800 text"}
    r = replay(
        make_session(
            [
                ServerMessage(0, {"type": "Begin", "id": "x", "expires_at": 1}),
                ServerMessage(0, warning),
            ]
        )
    )
    frames = [a.data for a in r.data_to_send() if isinstance(a, Send)]
    assert frames[1] == '{"type":"Warning","warning_code":1,"warning":"odd \\ud800 text"}'
    frames[1].encode()  # UTF-8 without complaint
    assert json.loads(frames[1]) == warning


def test_begin_is_sent_at_once_with_a_fresh_id_and_expiry(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session)
    actions = r.data_to_send()
    assert actions == [
        Send('{"type":"Begin","id":"live-id","expires_at":1800010800}'),
    ]
    assert r.data_to_send() == []
    assert not r.finished


def test_begin_keeps_its_other_keys_in_order(make_session: MakeSession) -> None:
    begin = {
        "type": "Begin",
        "id": "x",
        "configuration": {"model": "m"},
        "expires_at": 1,
        "new": True,
    }
    r = replay(make_session([ServerMessage(0, begin)]))
    assert r.data_to_send() == [
        Send(
            '{"type":"Begin","id":"live-id","configuration":{"model":"m"},'
            '"expires_at":1800010800,"new":true}'
        )
    ]


def test_every_replay_gets_its_own_begin_id(basic_session: RecordedSession) -> None:
    plan = ReplayPlan(basic_session)
    ids = set()
    for _ in range(5):
        r = Replay(plan, PARAMS)
        (begin,) = sent(r.data_to_send())
        ids.add(begin["id"])
        assert begin["id"] != "rec-id"
    assert len(ids) == 5


def test_messages_wait_for_the_recorded_audio(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session)
    r.data_to_send()
    r.receive_audio(FRAME, 0.01)
    assert r.data_to_send() == []
    r.receive_audio(FRAME - 2, 0.02)
    assert r.data_to_send() == []
    r.receive_audio(2, 0.03)
    assert sent(r.data_to_send()) == [turn(0, "hello")]
    r.receive_audio(2 * FRAME, 0.04)  # any chunking: only the amount counts
    assert sent(r.data_to_send()) == [turn(0, "hello world", end=True)]
    r.receive_audio(10 * FRAME, 0.05)  # more audio than recorded: Termination still waits
    assert r.data_to_send() == []
    assert r.live_audio == 700.0
    r.receive_message(Terminate(), 0.06)
    assert sent(r.data_to_send()) == [TERMINATION, CloseConnection(1000, "Session Ended")]
    assert r.finished
    assert r.next_deadline() is None


def test_audio_is_timed_in_the_live_format(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session, parse_url("?sample_rate=8000&encoding=pcm_mulaw"))
    r.data_to_send()
    r.receive_audio(800, 0.1)  # 100 ms of 8 kHz mu-law
    assert sent(r.data_to_send()) == [turn(0, "hello")]


def test_unanswered_client_messages_are_never_waited_for(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ClientMessage(0.0, {"type": "KeepAlive"}),
            ClientMessage(0.0, {"type": "UpdateConfiguration", "max_turn_silence": 100}),
            ServerMessage(0.1, turn(0, "a")),
        ]
    )
    r = replay(session)
    assert sent(r.data_to_send()) == [turn(0, "a")]
    r.receive_message(KeepAlive(), 0.2)
    r.receive_message(UpdateConfiguration(max_turn_silence=5), 0.2)
    assert r.data_to_send() == []
    assert r.waiting_for_client


def test_a_recorded_force_endpoint_gates_its_answer(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ClientAudio(0.05, FRAME),
            ServerMessage(0.06, turn(0, "a")),
            ClientMessage(0.07, {"type": "ForceEndpoint"}),
            ServerMessage(0.08, turn(0, "a", end=True)),
            ServerRaw(0.09, "raw frame"),
        ]
    )
    r = replay(session)
    r.receive_audio(FRAME, 0.1)
    assert sent(r.data_to_send()) == [turn(0, "a")]
    r.receive_audio(FRAME, 0.2)
    assert r.data_to_send() == []
    r.receive_message(ForceEndpoint(), 0.3)
    assert r.data_to_send() == [
        Send(json.dumps(turn(0, "a", end=True), separators=(",", ":"))),
        Send("raw frame"),
    ]
    assert r.waiting_for_client
    assert not r.finished


# -- lenient departures ---------------------------------------------------------------


def test_an_early_terminate_drops_what_the_audio_never_reached(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session)
    r.receive_audio(2 * FRAME, 0.1)
    assert sent(r.data_to_send()) == [BEGIN_LIVE, turn(0, "hello")]
    r.receive_message(Terminate(), 0.2)
    assert sent(r.data_to_send()) == [TERMINATION, CloseConnection(1000, "Session Ended")]


def test_a_short_tail_still_reaches_the_last_messages(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session)
    r.receive_audio(3 * FRAME + 100, 0.1)  # 46.9 ms short of the recorded 200 ms
    assert sent(r.data_to_send()) == [BEGIN_LIVE, turn(0, "hello")]
    r.receive_message(Terminate(), 0.2)
    assert sent(r.data_to_send()) == [
        turn(0, "hello world", end=True),
        TERMINATION,
        CloseConnection(1000, "Session Ended"),
    ]


def test_an_unrecorded_force_endpoint_releases_the_next_end_of_turn(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ServerMessage(0.1, turn(0, "a")),
            ClientAudio(0.2, 10 * FRAME),
            ServerMessage(0.3, turn(0, "a b")),
            ClientAudio(0.4, 10 * FRAME),
            ServerMessage(0.5, turn(0, "a b", end=True)),
            ServerMessage(0.5, turn(0, "A b.", end=True, formatted=True)),
            ServerMessage(0.6, turn(1, "c")),
            ClientAudio(0.7, 10 * FRAME),
            ServerMessage(0.8, turn(1, "c", end=True)),
            ClientMessage(0.9, {"type": "Terminate"}),
            ServerMessage(1.0, turn(2, "d", end=True)),
        ]
    )
    r = replay(session)
    assert sent(r.data_to_send()) == [turn(0, "a")]
    r.receive_message(ForceEndpoint(), 0.1)
    assert sent(r.data_to_send()) == [
        turn(0, "a b"),
        turn(0, "a b", end=True),
        turn(0, "A b.", end=True, formatted=True),
    ]
    r.receive_audio(FRAME, 0.2)
    assert r.data_to_send() == []
    r.receive_message(ForceEndpoint(), 0.3)
    assert sent(r.data_to_send()) == [turn(1, "c"), turn(1, "c", end=True)]
    # No end of turn left before the recorded Terminate: nothing to release.
    r.receive_message(ForceEndpoint(), 0.4)
    assert r.data_to_send() == []
    # An early Terminate: the turn recorded after Terminate waits for audio that never came.
    r.receive_message(Terminate(), 0.5)
    assert r.data_to_send() == []
    assert r.waiting_for_client


def test_an_end_of_turn_followed_by_a_raw_frame_is_released_alone(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ClientAudio(0.1, FRAME),
            ServerMessage(0.2, turn(0, "a", end=True)),
            ServerRaw(0.3, "raw"),
        ]
    )
    r = replay(session)
    r.receive_message(ForceEndpoint(), 0.0)
    assert sent(r.data_to_send()) == [turn(0, "a", end=True)]
    r.receive_audio(FRAME, 0.1)
    assert r.data_to_send() == [Send("raw")]


def test_a_force_endpoint_with_no_end_of_turn_left_is_not_answered(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(make_session([ClientAudio(0.1, FRAME), ServerMessage(0.2, turn(0, "a"))]))
    r.receive_message(ForceEndpoint(), 0.0)
    assert r.data_to_send() == []


def test_a_force_endpoint_of_another_order_is_answered_in_lenient_mode(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ClientAudio(0.1, FRAME),
            ServerMessage(0.2, turn(0, "a", end=True)),
            ClientMessage(0.3, {"type": "Terminate"}),
            ClientMessage(0.4, {"type": "ForceEndpoint"}),
        ]
    )
    r = replay(session)
    r.receive_message(ForceEndpoint(), 0.0)  # recorded next: Terminate
    assert sent(r.data_to_send()) == [turn(0, "a", end=True)]


def test_a_recording_without_terminate_answers_one_with_a_termination(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ServerMessage(0.1, turn(0, "a")),
            ClientAudio(0.2, 50 * FRAME),
            ServerMessage(0.3, turn(0, "a", end=True)),
            Close(4.0, 1001, "going away", "client"),
        ]
    )
    r = replay(session)
    r.receive_audio(51 * FRAME, 1.0)
    assert sent(r.data_to_send()) == [turn(0, "a"), turn(0, "a", end=True)]
    assert r.waiting_for_client
    r.receive_message(Terminate(), 3.6)
    assert sent(r.data_to_send()) == [
        {"audio_duration_seconds": 3, "session_duration_seconds": 4, "type": "Termination"},
        CloseConnection(1000, "Session Ended"),
    ]
    assert r.finished


def test_a_termination_is_made_even_before_the_recording_is_played_out(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ClientAudio(0.2, 50 * FRAME),
            ServerMessage(0.3, turn(0, "a", end=True)),
            Close(4.0, 1000, "", "client"),
        ]
    )
    r = replay(session)
    r.receive_audio(FRAME, 0.4)
    r.receive_message(Terminate(), 0.4)
    assert sent(r.data_to_send()) == [
        {"audio_duration_seconds": 0, "session_duration_seconds": 0, "type": "Termination"},
        CloseConnection(1000, "Session Ended"),
    ]


def test_a_made_up_termination_sends_what_was_due_first(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ClientAudio(0.1, FRAME),
            ServerMessage(1.0, turn(0, "a", end=True)),
            Close(2.0, 1000, "", "client"),
        ]
    )
    r = replay(session, pacing="wall")
    r.receive_audio(FRAME, 0.1)
    assert r.data_to_send() == []
    r.receive_message(Terminate(), 0.2)
    assert sent(r.data_to_send()) == [
        turn(0, "a", end=True),
        {"audio_duration_seconds": 0, "session_duration_seconds": 0, "type": "Termination"},
        CloseConnection(1000, "Session Ended"),
    ]


def test_a_recorded_error_close_is_played_rather_than_a_termination(
    make_session: MakeSession,
) -> None:
    error = {"type": "Error", "error_code": 3005, "error": "Server error"}
    session = make_session(
        [
            ClientAudio(0.2, FRAME),
            ServerMessage(0.3, error),
            Close(0.3, 3005, "See Error message for details", "server"),
        ]
    )
    r = replay(session, pacing="wall")
    r.receive_audio(FRAME, 0.0)
    assert r.data_to_send() == []
    assert r.next_deadline() == 0.3
    r.receive_message(Terminate(), 0.1)  # the recording has no Terminate
    assert sent(r.data_to_send()) == [
        error,
        CloseConnection(3005, "See Error message for details"),
    ]


def test_a_second_terminate_is_not_answered(make_session: MakeSession) -> None:
    session = make_session(
        [
            ClientMessage(0.1, {"type": "Terminate"}),
            ServerMessage(0.2, TERMINATION),
            Close(0.3, 1000, "", "client"),
        ]
    )
    r = replay(session)
    r.receive_message(Terminate(), 0.0)
    assert sent(r.data_to_send()) == [TERMINATION]
    r.receive_message(Terminate(), 0.1)
    assert r.data_to_send() == []
    assert not r.finished


def test_lost_connections_are_replayed_as_drops(make_session: MakeSession) -> None:
    r = replay(make_session([ServerRaw(0, "x"), Close(0.1, 1006, "", "server")]))
    assert r.data_to_send() == [Send("x"), Abort()]
    assert r.finished


def test_a_close_reason_is_cut_to_fit_a_close_frame(make_session: MakeSession) -> None:
    r = replay(make_session([Close(0.1, 4000, "é" * 100, "server")]))
    (close,) = r.data_to_send()
    assert close == CloseConnection(4000, "é" * 60 + "...")
    assert len(close.reason.encode()) == 123


def test_compressed_audio_is_gated_by_bytes(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [ClientAudio(0.1, 500), ServerMessage(0.2, turn(0, "a"))], query={"encoding": "opus"}
    )
    r = replay(session, parse_url("?encoding=opus"))
    r.receive_audio(499, 0.1)
    assert r.data_to_send() == []
    assert r.live_audio == 499.0
    r.receive_audio(1, 0.1)
    assert sent(r.data_to_send()) == [turn(0, "a")]


def test_an_invalid_recorded_request_gates_by_bytes(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [ClientAudio(0.1, 500), ServerMessage(0.2, turn(0, "a"))], query={"sample_rate": "1"}
    )
    plan = ReplayPlan(session)
    assert plan.format is None
    assert plan.recorded_format is None
    r = Replay(plan, PARAMS, strict=True)
    r.receive_audio(500, 0.1)
    assert sent(r.data_to_send()) == [turn(0, "a")]


def test_nothing_happens_after_the_replay_finished(basic_session: RecordedSession) -> None:
    r = replay(basic_session)
    r.client_closed()
    assert r.finished
    r.receive_audio(100 * FRAME, 0.1)
    r.receive_message(Terminate(), 0.1)
    r.advance(10)
    assert sent(r.data_to_send()) == [BEGIN_LIVE]


# -- strict departures ----------------------------------------------------------------


def mismatch(reason: str) -> CloseConnection:
    return CloseConnection(4900, reason)


def test_strict_refuses_another_audio_format(basic_session: RecordedSession) -> None:
    r = replay(basic_session, StreamingParams(sample_rate=8000), strict=True)
    assert r.data_to_send() == [mismatch("request differs: sample_rate recorded 16000, got 8000")]
    assert r.finished
    r = replay(basic_session, parse_url("?encoding=opus"), strict=True)
    assert r.data_to_send() == [
        mismatch(
            "request differs: encoding recorded pcm_s16le, got opus; "
            "sample_rate recorded 16000, got (not sent)"
        )
    ]


def test_strict_refuses_another_control_message(basic_session: RecordedSession) -> None:
    r = replay(basic_session, strict=True)
    r.receive_message(ForceEndpoint(), 0.1)
    assert sent(r.data_to_send()) == [BEGIN_LIVE, mismatch("expected Terminate, got ForceEndpoint")]


def test_strict_refuses_a_control_message_the_recording_lacks(
    basic_session: RecordedSession,
) -> None:
    r = replay(basic_session, strict=True)
    r.receive_audio(4 * FRAME, 0.1)
    r.receive_message(KeepAlive(), 0.1)  # never part of the comparison
    r.receive_message(Terminate(), 0.2)
    assert sent(r.data_to_send())[-2:] == [TERMINATION, CloseConnection(1000, "Session Ended")]
    session = RecordedSession(basic_session.header, basic_session.entries[:-4])
    r = replay(session, strict=True)
    r.receive_message(Terminate(), 0.2)
    assert r.data_to_send()[-1] == mismatch("expected no more control messages, got Terminate")


def test_strict_accepts_the_recorded_control_messages(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ClientMessage(0.1, {"type": "ForceEndpoint"}),
            ServerMessage(0.2, turn(0, "a", end=True)),
            ClientMessage(0.3, {"type": "Terminate"}),
            ServerMessage(0.4, TERMINATION),
        ]
    )
    r = replay(session, strict=True)
    r.receive_message(UpdateConfiguration(max_turn_silence=5), 0.0)
    r.receive_message(ForceEndpoint(), 0.1)
    assert sent(r.data_to_send()) == [turn(0, "a", end=True)]
    r.receive_message(Terminate(), 0.2)
    assert sent(r.data_to_send()) == [TERMINATION]


def test_strict_refuses_a_terminate_before_the_recorded_audio(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session, strict=True)
    r.receive_audio(2 * FRAME, 0.1)
    r.receive_message(Terminate(), 0.2)
    assert sent(r.data_to_send()) == [
        BEGIN_LIVE,
        turn(0, "hello"),
        mismatch("expected 200 ms of audio before Terminate, got 100 ms"),
    ]


def test_strict_accepts_a_short_tail(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session, strict=True)
    r.receive_audio(3 * FRAME + 200, 0.1)
    r.receive_message(Terminate(), 0.2)
    assert sent(r.data_to_send())[2:] == [
        turn(0, "hello world", end=True),
        TERMINATION,
        CloseConnection(1000, "Session Ended"),
    ]


def test_strict_counts_bytes_of_compressed_audio(make_session: MakeSession) -> None:
    session = make_session(
        [
            ClientAudio(0.1, 500),
            ServerRaw(0.2, "x"),
            ClientMessage(0.3, {"type": "Terminate"}),
        ],
        query={"encoding": "opus"},
    )
    r = replay(session, parse_url("?encoding=opus"), strict=True)
    r.receive_audio(100, 0.1)
    r.receive_message(Terminate(), 0.2)
    assert r.data_to_send() == [
        mismatch("expected 500 bytes of audio before Terminate, got 100 bytes")
    ]


# -- wall-clock pacing ----------------------------------------------------------------


def test_wall_pacing_waits_for_the_recorded_time(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session, pacing="wall", speed=2)
    assert sent(r.data_to_send()) == [BEGIN_LIVE]  # Begin waits for nothing, not even time
    assert r.next_deadline() is None  # the next entry waits for audio
    r.receive_audio(4 * FRAME, 0.01)
    assert r.data_to_send() == []
    assert r.next_deadline() == 0.06
    r.advance(0.1)
    assert sent(r.data_to_send()) == [turn(0, "hello")]
    assert r.next_deadline() == 0.125
    r.advance(0.125)
    assert sent(r.data_to_send()) == [turn(0, "hello world", end=True)]
    r.receive_message(Terminate(), 0.15)
    assert r.data_to_send() == []
    assert r.next_deadline() == 0.2
    r.advance(0.3)
    assert sent(r.data_to_send()) == [TERMINATION, CloseConnection(1000, "Session Ended")]


def test_an_early_terminate_with_wall_pacing_keeps_the_recorded_latency(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session, pacing="wall")
    r.advance(0.01)
    r.receive_audio(2 * FRAME, 0.11)
    r.advance(0.12)
    assert sent(r.data_to_send()) == [BEGIN_LIVE, turn(0, "hello")]
    r.receive_message(Terminate(), 0.13)  # recorded at 0.30; Termination 0.10 s later
    assert r.data_to_send() == []
    due = r.next_deadline()
    assert due is not None
    assert due == pytest.approx(0.23)
    r.advance(due)
    assert sent(r.data_to_send()) == [TERMINATION]
    assert r.next_deadline() == pytest.approx(0.24)
    r.advance(0.25)
    assert r.data_to_send() == [CloseConnection(1000, "Session Ended")]


def test_a_reached_but_not_yet_due_message_survives_an_early_terminate(
    basic_session: RecordedSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(basic_session, pacing="wall")
    r.receive_audio(4 * FRAME, 0.02)
    r.receive_message(Terminate(), 0.02)
    r.advance(0.02)
    assert sent(r.data_to_send()) == [BEGIN_LIVE]
    r.advance(0.25)
    assert sent(r.data_to_send()) == [
        turn(0, "hello"),
        turn(0, "hello world", end=True),
        TERMINATION,
        CloseConnection(1000, "Session Ended"),
    ]


def test_an_unrecorded_force_endpoint_answers_at_once_with_wall_pacing(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    r = replay(make_session([ServerMessage(5.0, turn(0, "a", end=True))]), pacing="wall")
    assert r.next_deadline() == 5.0
    r.receive_message(ForceEndpoint(), 0.5)
    assert sent(r.data_to_send()) == [turn(0, "a", end=True)]


# -- options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pacing": "fast"}, "pacing must be 'audio' or 'wall', got 'fast'"),
        ({"speed": 0}, "speed must be a number > 0, got 0"),
        ({"speed": float("inf")}, "speed must be a number > 0, got inf"),
        ({"speed": "2"}, "speed must be a number > 0, got '2'"),
    ],
)
def test_bad_options_are_refused(
    basic_session: RecordedSession, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Replay(ReplayPlan(basic_session), PARAMS, **options)


def test_a_plan_needs_a_session() -> None:
    with pytest.raises(TypeError, match="expected a RecordedSession, not str"):
        ReplayPlan("session.jsonl")  # type: ignore[arg-type]


# -- properties over the shipped fixtures ----------------------------------------------


def recorded_server_texts(session: RecordedSession) -> list[Any]:
    out: list[Any] = []
    for entry in session.entries:
        if isinstance(entry, ServerMessage):
            message = dict(entry.message)
            if message.get("type") == "Begin":
                message.update(id="live-id", expires_at=BEGIN_LIVE["expires_at"])
            out.append(message)
        elif isinstance(entry, ServerRaw):
            out.append(entry.text)
        elif isinstance(entry, Close) and entry.by == "server":
            out.append(CloseConnection(entry.code, entry.reason))
    return out


def fixture_sessions() -> list[RecordedSession]:
    directory = Path(__file__).resolve().parents[2] / "fixtures" / "sessions"
    return [load_session(p) for p in sorted(directory.glob("*.jsonl"))]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_client_that_sends_the_recorded_audio_gets_the_recording(data: st.DataObject) -> None:
    sessions = fixture_sessions()
    session = data.draw(st.sampled_from(sessions))
    total = sum(e.nbytes for e in session.entries if isinstance(e, ClientAudio))
    cuts = sorted(data.draw(st.lists(st.integers(0, total), max_size=20)))
    r = replay(session)
    out = r.data_to_send()
    previous = 0
    for t, cut in enumerate([*cuts, total]):
        r.receive_audio(cut - previous, t * 0.01)
        previous = cut
        out += r.data_to_send()
    for entry in session.entries:
        if isinstance(entry, ClientMessage):
            messages: dict[str, CoreMessage] = {
                "Terminate": Terminate(),
                "ForceEndpoint": ForceEndpoint(),
            }
            message = messages[entry.type]
            r.receive_message(message, 1.0)
            out += r.data_to_send()
    assert sent(out) == recorded_server_texts(session)


@settings(max_examples=200, deadline=None)
@given(
    st.data(),
    st.lists(
        st.one_of(
            st.integers(0, 40_000),
            st.sampled_from([Terminate(), ForceEndpoint(), KeepAlive()]),
            st.floats(0, 10),
        ),
        max_size=30,
    ),
    st.booleans(),
    st.sampled_from(["audio", "wall"]),
)
def test_whatever_the_client_does_only_recorded_messages_come_in_order(
    data: st.DataObject, inputs: list[Any], strict: bool, pacing: Any
) -> None:
    session = data.draw(st.sampled_from(fixture_sessions()))
    r = replay(session, strict=strict, pacing=pacing)
    out = r.data_to_send()
    now = 0.0
    for item in inputs:
        if isinstance(item, float):
            now += item
            r.advance(now)
        elif isinstance(item, int):
            r.receive_audio(item, now)
        else:
            r.receive_message(item, now)
        out += r.data_to_send()
        deadline = r.next_deadline()
        assert deadline is None or deadline > now
    recorded = recorded_server_texts(session)
    got = sent(out)
    ends = [a for a in got if isinstance(a, CloseConnection | Abort)]
    assert len(ends) <= 1
    if ends:
        assert got[-1] is ends[0]
        assert r.finished
    # Everything else is a subsequence of the recording, or the made-up Termination.
    position = 0
    for item in got:
        if isinstance(item, CloseConnection) and item.code in (4900, 1000) and item not in recorded:
            continue
        if isinstance(item, dict) and item.get("type") == "Termination" and item not in recorded:
            continue
        position = recorded.index(item, position) + 1


def test_a_compressed_live_client_is_gated_by_the_recorded_bytes(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    # Recorded as PCM (gates in ms), streamed live as opus: bytes against bytes.
    session = make_session(
        [
            ClientAudio(0.1, 16000),  # 500 ms, 16000 bytes
            ServerMessage(0.2, turn(0, "a")),
            ClientMessage(0.3, {"type": "Terminate"}),
            ServerMessage(0.4, TERMINATION),
        ]
    )
    r = replay(session, parse_url("?encoding=opus"))
    r.receive_audio(500, 0.1)
    assert r.data_to_send() == []  # 500 bytes are not 500 ms
    r.receive_audio(15_500, 0.2)
    assert sent(r.data_to_send()) == [turn(0, "a")]
    strict = replay(session, parse_url("?encoding=opus"), strict=True)
    strict.receive_audio(400, 0.1)
    strict.receive_message(Terminate(), 0.2)
    assert strict.data_to_send()[-1] == mismatch(
        "request differs: encoding recorded pcm_s16le, got opus; "
        "sample_rate recorded 16000, got (not sent)"
    )
    lenient = replay(session, parse_url("?encoding=opus"))
    lenient.receive_audio(400, 0.1)
    lenient.receive_message(Terminate(), 0.2)
    assert [(d.expected, d.got) for d in lenient.departures][-1] == (
        "16000 bytes of audio before Terminate",
        "400 bytes",
    )


def test_a_raw_begin_is_sent_first_and_at_once_too(make_session: MakeSession) -> None:
    raw_begin = '{"type":"Begin","id":"recorded","expires_at":1}'
    session = make_session(
        [ClientAudio(0.05, FRAME), ServerRaw(0.1, "x"), ServerRaw(0.2, raw_begin)]
    )
    r = replay(session, pacing="wall")
    assert r.data_to_send() == [Send(raw_begin)]  # verbatim: a raw frame is not rewritten
    r.receive_audio(FRAME, 0.2)
    assert r.data_to_send() == [Send("x")]


def test_a_terminate_that_skips_a_recorded_force_endpoint_is_a_lenient_departure(
    make_session: MakeSession, turn: Callable[..., dict[str, Any]]
) -> None:
    session = make_session(
        [
            ClientAudio(0.1, FRAME),
            ClientMessage(0.2, {"type": "ForceEndpoint"}),
            ServerMessage(0.3, turn(0, "a", end=True)),
            ClientMessage(0.4, {"type": "Terminate"}),
            ServerMessage(0.5, TERMINATION),
        ]
    )
    r = replay(session)
    r.receive_audio(FRAME, 0.1)
    r.receive_message(Terminate(), 0.2)
    # Not early: the audio is all there; what the ForceEndpoint gated comes out too.
    assert sent(r.data_to_send()) == [turn(0, "a", end=True), TERMINATION]
    assert [(d.t, d.expected, d.got) for d in r.departures] == [(0.2, "ForceEndpoint", "Terminate")]
