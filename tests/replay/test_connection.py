"""One replay connection without I/O: the service's checks, the replay, the faults."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from aai_proto import Rejection
from aai_replay import (
    ClientAudio,
    Close,
    CloseConnection,
    Faults,
    RecordedSession,
    ReplayConnection,
    ReplayOptions,
    ReplayPlan,
    Send,
    ServerMessage,
)

MakeSession = Callable[..., RecordedSession]
TARGET = "/v3/ws?sample_rate=16000&encoding=pcm_s16le"
REASON = "See Error message for details"
BEGIN = Send('{"type":"Begin","id":"live","expires_at":10800}')


def connect(
    session: RecordedSession, target: str = TARGET, authorization: str | None = None, **options: Any
) -> ReplayConnection:
    return ReplayConnection(
        ReplayPlan(session),
        ReplayOptions(**options),
        target=target,
        authorization=authorization,
        session_id="live",
    )


def error(code: int, text: str) -> Send:
    return Send(
        json.dumps({"type": "Error", "error_code": code, "error": text}, separators=(",", ":"))
    )


def test_an_accepted_connection_starts_the_replay(basic_session: RecordedSession) -> None:
    conn = connect(basic_session)
    assert conn.replay is not None
    assert conn.rejection is None
    assert conn.data_to_send(0.0) == [BEGIN]
    assert conn.messages_sent == 1
    conn.receive_message(b"\0" * 3200, 0.1)
    assert [
        json.loads(a.data)["transcript"] for a in conn.data_to_send(0.1) if isinstance(a, Send)
    ] == ["hello"]
    conn.receive_message(b"\0" * 3200, 0.2)
    conn.receive_message('{"type": "Terminate"}', 0.3)
    actions = conn.data_to_send(0.3)
    assert actions[-1] == CloseConnection(1000, "Session Ended")
    assert conn.finished
    assert conn.next_deadline() is None


def test_no_options_means_the_defaults(basic_session: RecordedSession) -> None:
    conn = ReplayConnection(ReplayPlan(basic_session), target=TARGET)
    assert conn.options == ReplayOptions()
    assert conn.options.pacing == "audio"
    assert not conn.options.strict


@pytest.mark.parametrize(
    ("target", "authorization", "text"),
    [
        (TARGET, None, "Unauthorized connection: missing API key or token"),
        (TARGET, "nope", "Unauthorized connection: invalid API key or token"),
        (TARGET + "&token=nope", None, "Unauthorized connection: invalid API key or token"),
    ],
)
def test_a_missing_or_wrong_key_gets_1008(
    basic_session: RecordedSession, target: str, authorization: str | None, text: str
) -> None:
    conn = connect(basic_session, target, authorization, api_key="the-key")
    assert conn.replay is None
    assert conn.rejection == Rejection(code=1008, error=text)
    assert conn.data_to_send(0.0) == [error(1008, text), CloseConnection(1008, REASON)]
    assert conn.finished
    conn.receive_message(b"\0" * 3200, 0.1)
    conn.advance(1.0)
    assert conn.data_to_send(1.0) == []


@pytest.mark.parametrize(
    ("target", "authorization"),
    [(TARGET, "the-key"), (TARGET + "&token=the-key", None)],
)
def test_the_right_key_in_the_header_or_the_token_is_accepted(
    basic_session: RecordedSession, target: str, authorization: str | None
) -> None:
    conn = connect(basic_session, target, authorization, api_key="the-key")
    assert conn.data_to_send(0.0) == [BEGIN]


def test_an_invalid_parameter_gets_3006_before_begin(basic_session: RecordedSession) -> None:
    conn = connect(basic_session, "/v3/ws?sample_rate=16000&max_speakers=11")
    text = "User Input Validation Error: Invalid 'max_speakers': must be at most 10, got 11"
    assert conn.data_to_send(0.0) == [error(3006, text), CloseConnection(3006, REASON)]


def test_a_bad_client_message_gets_3006(basic_session: RecordedSession) -> None:
    conn = connect(basic_session)
    conn.receive_message('{"type": "Finish"}', 0.1)
    assert conn.data_to_send(0.1) == [
        BEGIN,
        error(3006, "Invalid client message: unknown client message type 'Finish'"),
        CloseConnection(3006, REASON),
    ]


def test_a_frame_too_long_gets_3007(basic_session: RecordedSession) -> None:
    conn = connect(basic_session)
    conn.receive_message(bytearray(32_002), 0.1)
    assert conn.data_to_send(0.1)[1:] == [
        error(3007, "Input duration violation: 1000.06 ms. Expected between 50 and 1000 ms"),
        CloseConnection(3007, REASON),
    ]


def test_the_recording_s_own_error_text_is_used(make_session: MakeSession) -> None:
    recorded = {"type": "Error", "error_code": 3007, "error": "Input duration violation: 20.000 ms"}
    session = make_session(
        [
            ServerMessage(0.0, {"type": "Begin", "id": "r", "expires_at": 0}),
            ClientAudio(0.1, 100_000),  # never reached: the checks answer first
            ServerMessage(0.2, recorded),
            Close(0.2, 3007, REASON, "server"),
        ]
    )
    conn = connect(session)
    for _ in range(49):
        conn.receive_message(b"\0" * 640, 0.1)
    assert conn.data_to_send(0.1) == [BEGIN]
    conn.receive_message(b"\0" * 640, 0.1)  # the 50th short frame: rejected by the checks
    assert conn.data_to_send(0.1) == [
        Send(json.dumps(recorded, separators=(",", ":"))),
        CloseConnection(3007, REASON),
    ]


def test_faults_apply_to_the_replay(basic_session: RecordedSession) -> None:
    conn = connect(basic_session, faults=Faults(delay=0.5, error_code=3005, error_after=1))
    assert conn.data_to_send(0.0) == []
    assert conn.next_deadline() == 0.5
    assert conn.data_to_send(0.5) == [
        BEGIN,
        error(3005, "Injected error: server error"),
        CloseConnection(3005, REASON),
    ]
    assert conn.finished


def test_a_delayed_rejection_has_a_deadline(basic_session: RecordedSession) -> None:
    conn = connect(basic_session, api_key="k", faults=Faults(delay=1.5))
    assert not conn.finished
    assert conn.data_to_send(1.0) == []
    assert conn.next_deadline() == 1.5
    assert conn.data_to_send(1.5)[1] == CloseConnection(1008, REASON)


def test_wall_pacing_deadlines_come_through(basic_session: RecordedSession) -> None:
    conn = connect(basic_session, pacing="wall", faults=Faults(drop_after_seconds=5))
    assert conn.next_deadline() == 0.0  # Begin, due at once
    assert conn.data_to_send(0.0) == [BEGIN]
    assert conn.next_deadline() == 5
    conn.receive_message(b"\0" * 12_800, 0.02)
    assert conn.next_deadline() == 0.12


def test_a_client_close_ends_the_connection(basic_session: RecordedSession) -> None:
    conn = connect(basic_session)
    conn.client_closed()
    assert conn.finished
    assert conn.data_to_send(0.0) == []
    assert conn.next_deadline() is None
    assert conn.replay is not None
    assert conn.replay.finished
    rejected = connect(basic_session, "/v3/ws?sample_rate=1")
    rejected.client_closed()
    assert rejected.data_to_send(0.0) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pacing": "fast"}, "pacing must be 'audio' or 'wall', got 'fast'"),
        ({"speed": -1}, "speed must be a number > 0, got -1"),
        ({"strict": 1}, "'strict' must be <class 'bool'>"),
        ({"api_key": ""}, "api_key must be a non-empty string"),
        ({"faults": {}}, "'faults' must be <class 'aai_replay._faults.Faults'>"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        ReplayOptions(**options)


def test_the_api_key_never_shows_in_a_repr() -> None:
    assert "the-key" not in repr(ReplayOptions(api_key="the-key"))


def test_the_package_names_only_what_it_has() -> None:
    import aai_replay

    assert aai_replay.ReplayServer.__name__ == "ReplayServer"
    with pytest.raises(AttributeError, match="module 'aai_replay' has no attribute 'Nope'"):
        aai_replay.Nope  # noqa: B018
    assert sorted(aai_replay.__all__) == sorted(set(aai_replay.__all__))
    for name in aai_replay.__all__:
        assert getattr(aai_replay, name) is not None


def test_a_close_reason_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="a close reason holds at most 123 UTF-8 bytes"):
        CloseConnection(1000, "é" * 62)
    assert CloseConnection(1000, "é" * 61).reason == "é" * 61
