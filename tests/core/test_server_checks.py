"""ClientChecker: the checks a server makes of a client, as the service answers them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_proto import (
    SHORT_FRAME_LIMIT,
    TRANSITIONS,
    AudioFormat,
    Client,
    ClientChecker,
    ForceEndpoint,
    Input,
    LocalProtocolError,
    Rejection,
    ServerError,
    State,
    StreamingParams,
    Terminate,
    Termination,
    UpdateConfiguration,
    Violation,
    build_url,
    parse_server_message,
)
from aai_proto.strategies import client_message_texts, malformed_client_message_texts

TARGET = "/v3/ws?sample_rate=16000&encoding=pcm_s16le"
MS = 32  # bytes per millisecond of 16 kHz pcm_s16le


def accepted(target: str = TARGET, **kwargs: str | None) -> ClientChecker:
    checker = ClientChecker()
    assert checker.receive_request(target, **kwargs) is None
    return checker


# -- Rejection ------------------------------------------------------------------------


def test_rejection_message_is_the_error_frame_the_service_sends() -> None:
    rejection = Rejection(code=3007, error="Input duration violation: 20 ms.")
    assert rejection.message == (
        '{"type":"Error","error_code":3007,"error":"Input duration violation: 20 ms."}'
    )
    assert Rejection.reason == "See Error message for details"
    assert rejection.event == ServerError(error_code=3007, error="Input duration violation: 20 ms.")
    assert parse_server_message(rejection.message) == rejection.event


# -- the request ----------------------------------------------------------------------


def test_a_valid_request_sets_params_and_format() -> None:
    params = StreamingParams(sample_rate=8000, encoding="pcm_mulaw", format_turns=True)
    checker = ClientChecker()
    assert (checker.params, checker.audio_format) == (None, None)
    assert checker.receive_request(build_url(params)) is None
    assert checker.params == params
    assert checker.audio_format == AudioFormat(encoding="pcm_mulaw", sample_rate=8000)
    assert checker.rejection is None


def test_the_sdk_spelling_of_booleans_is_accepted() -> None:
    checker = accepted("/v3/ws?sample_rate=16000&format_turns=True&language_detection=FALSE")
    assert checker.params is not None
    assert checker.params.format_turns is True
    assert checker.params.language_detection is False


@pytest.mark.parametrize(
    ("target", "error"),
    [
        (
            "/v3/ws?sample_rate=100",
            "User Input Validation Error: Invalid 'sample_rate': must be at least 8000, got 100",
        ),
        (
            "/v3/ws?sample_rate=16000&format_turns=yes",
            "User Input Validation Error: Invalid 'format_turns': expected true or false, "
            "got 'yes'",
        ),
        (
            "/v3/ws?encoding=pcm_s16le",
            "User Input Validation Error: Invalid 'sample_rate': required for encoding 'pcm_s16le'",
        ),
        (
            "/v3/ws?sample_rate=16000&sample_rate=8000",
            "User Input Validation Error: Invalid 'sample_rate': given more than once",
        ),
        ("//[x/v3/ws?sample_rate=16000", "User Input Validation Error: invalid request target"),
    ],
)
def test_an_invalid_parameter_is_rejected_with_3006(target: str, error: str) -> None:
    checker = ClientChecker()
    rejection = checker.receive_request(target)
    assert rejection == Rejection(code=3006, error=error)
    assert checker.rejection == rejection
    assert checker.params is None


def test_a_value_python_cannot_convert_is_a_3006_not_a_crash() -> None:
    rejection = ClientChecker().receive_request("/v3/ws?sample_rate=" + "1" * 5000)
    assert rejection is not None
    assert rejection.code == 3006
    assert rejection.error.startswith(
        "User Input Validation Error: Invalid 'sample_rate': expected an integer, got '111"
    )


def test_without_an_api_key_no_credentials_are_needed() -> None:
    accepted(TARGET)


@pytest.mark.parametrize(
    ("target", "authorization"),
    [
        (TARGET, "secret-key"),
        (TARGET + "&token=secret-key", None),
        (TARGET + "&token=wrong", "secret-key"),
        (TARGET + "&token=secret-key", "wrong"),
    ],
)
def test_the_api_key_is_accepted_in_the_header_or_the_token(
    target: str, authorization: str | None
) -> None:
    checker = ClientChecker(api_key="secret-key")
    assert checker.receive_request(target, authorization=authorization) is None
    assert checker.params == StreamingParams(sample_rate=16000)


@pytest.mark.parametrize(
    ("target", "authorization", "error"),
    [
        (TARGET, None, "Unauthorized connection: missing API key or token"),
        (TARGET, "wrong-key", "Unauthorized connection: invalid API key or token"),
        (TARGET + "&token=wrong-token", None, "Unauthorized connection: invalid API key or token"),
        (TARGET, "", "Unauthorized connection: invalid API key or token"),
    ],
)
def test_a_missing_or_wrong_credential_is_rejected_with_1008(
    target: str, authorization: str | None, error: str
) -> None:
    checker = ClientChecker(api_key="secret-key")
    rejection = checker.receive_request(target, authorization=authorization)
    assert rejection == Rejection(code=1008, error=error)
    assert "secret-key" not in rejection.message
    assert "wrong" not in rejection.message


def test_credentials_are_checked_before_parameters() -> None:
    rejection = ClientChecker(api_key="k").receive_request("/v3/ws?sample_rate=1")
    assert rejection is not None
    assert rejection.code == 1008


@pytest.mark.parametrize("api_key", ["", 5])
def test_an_empty_or_non_string_api_key_is_refused(api_key: object) -> None:
    with pytest.raises(ValueError, match="api_key must be a non-empty string"):
        ClientChecker(api_key=api_key)  # type: ignore[arg-type]


# -- audio ----------------------------------------------------------------------------


def test_frames_of_50_to_1000_ms_are_counted() -> None:
    checker = accepted()
    assert checker.receive_audio(b"\0" * 50 * MS) is None
    assert checker.receive_audio(bytearray(1000 * MS)) is None
    assert checker.receive_audio(memoryview(b"\0" * 100 * MS)) is None
    assert checker.audio_bytes == 1150 * MS
    assert checker.audio_ms == 1150.0


def test_a_frame_over_1000_ms_is_rejected_with_3007() -> None:
    checker = accepted()
    rejection = checker.receive_audio(b"\0" * (1000 * MS + 2))
    assert rejection == Rejection(
        code=3007,
        error="Input duration violation: 1000.06 ms. Expected between 50 and 1000 ms",
    )
    assert checker.audio_bytes == 0


def test_one_short_frame_is_tolerated_but_sustained_short_frames_are_rejected() -> None:
    checker = accepted()
    for _ in range(SHORT_FRAME_LIMIT - 1):
        assert checker.receive_audio(b"\0" * 20 * MS) is None
    rejection = checker.receive_audio(b"\0" * 20 * MS)
    assert rejection == Rejection(
        code=3007, error="Input duration violation: 20 ms. Expected between 50 and 1000 ms"
    )
    assert SHORT_FRAME_LIMIT == 50


def test_a_second_of_short_frames_is_rejected_before_the_count() -> None:
    checker = accepted()
    for _ in range(24):
        assert checker.receive_audio(b"\0" * 40 * MS) is None  # 960 ms of 40 ms frames
    rejection = checker.receive_audio(b"\0" * 40 * MS)
    assert rejection == Rejection(
        code=3007, error="Input duration violation: 40 ms. Expected between 50 and 1000 ms"
    )


def test_a_legal_frame_resets_the_run_of_short_frames() -> None:
    checker = accepted()
    for _ in range(3):
        for _ in range(SHORT_FRAME_LIMIT - 1):
            assert checker.receive_audio(b"\0" * 10 * MS) is None
        assert checker.receive_audio(b"\0" * 50 * MS) is None
        for _ in range(24):
            assert checker.receive_audio(b"\0" * 40 * MS) is None
        assert checker.receive_audio(b"\0" * 60 * MS) is None
    assert checker.rejection is None
    assert checker.audio_ms == 3 * ((SHORT_FRAME_LIMIT - 1) * 10 + 50 + 24 * 40 + 60)


def test_compressed_audio_is_not_timed() -> None:
    checker = accepted("/v3/ws?encoding=opus")
    assert checker.receive_audio(b"\1" * 100_000) is None
    for _ in range(SHORT_FRAME_LIMIT + 5):
        assert checker.receive_audio(b"\1") is None
    assert checker.audio_bytes == 100_000 + SHORT_FRAME_LIMIT + 5
    assert checker.audio_ms == 0.0


def test_audio_must_be_bytes_like() -> None:
    checker = accepted()
    with pytest.raises(TypeError, match="frame must be bytes-like, not str"):
        checker.receive_audio("audio")  # type: ignore[arg-type]
    assert checker.rejection is None


# -- text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "Terminate"}', Terminate()),
        (b'{"type":"ForceEndpoint","extra":1}', ForceEndpoint()),
        (
            '{"type":"UpdateConfiguration","max_turn_silence":400}',
            UpdateConfiguration(max_turn_silence=400),
        ),
    ],
)
def test_valid_client_messages_are_returned(text: str | bytes, message: object) -> None:
    assert accepted().receive_text(text) == message


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "Invalid client message: client message is not valid JSON: "),
        ("[]", "Invalid client message: client message must be a JSON object, got list"),
        ('{"type":"Nope"}', "Invalid client message: unknown client message type 'Nope'"),
        (
            '{"type":"UpdateConfiguration","vad_threshold":2}',
            "Invalid client message: invalid UpdateConfiguration: Invalid 'vad_threshold'",
        ),
    ],
)
def test_invalid_client_messages_are_rejected_with_3006(text: str, error: str) -> None:
    checker = accepted()
    result = checker.receive_text(text)
    assert isinstance(result, Rejection)
    assert result.code == 3006
    assert result.error.startswith(error)
    assert checker.rejection == result


@given(client_message_texts())
def test_any_valid_client_text_is_accepted(text: str) -> None:
    assert not isinstance(accepted().receive_text(text), Rejection)


@given(malformed_client_message_texts())
def test_any_malformed_client_text_is_a_3006_rejection(text: str) -> None:
    result = accepted().receive_text(text)
    assert isinstance(result, Rejection)
    assert result.code == 3006
    assert json.loads(result.message)["error_code"] == 3006


@given(st.binary(max_size=4000))
def test_any_frame_is_accepted_or_a_3007(frame: bytes) -> None:
    result = accepted().receive_audio(frame)
    assert result is None or (isinstance(result, Rejection) and result.code == 3007)


# -- misuse ---------------------------------------------------------------------------


def test_frames_before_the_request_are_misuse() -> None:
    checker = ClientChecker()
    with pytest.raises(LocalProtocolError, match=r"can't receive audio before receive_request"):
        checker.receive_audio(b"\0" * 3200)
    with pytest.raises(LocalProtocolError, match=r"can't receive a text message before"):
        checker.receive_text('{"type":"Terminate"}')
    assert checker.receive_request(TARGET) is None


def test_a_second_request_is_misuse() -> None:
    checker = accepted()
    with pytest.raises(LocalProtocolError, match=r"can't receive a request after receive_request"):
        checker.receive_request(TARGET)


def test_nothing_is_checked_after_a_rejection() -> None:
    checker = accepted()
    rejection = checker.receive_text("{}")
    assert isinstance(rejection, Rejection)
    with pytest.raises(LocalProtocolError, match="can't receive audio: the client was rejected"):
        checker.receive_audio(b"\0" * 3200)
    with pytest.raises(LocalProtocolError, match="the client was rejected"):
        checker.receive_text('{"type":"Terminate"}')
    assert checker.rejection is rejection


def test_a_rejected_request_is_final() -> None:
    checker = ClientChecker()
    assert checker.receive_request("/v3/ws?sample_rate=1") is not None
    with pytest.raises(LocalProtocolError, match="the client was rejected"):
        checker.receive_request(TARGET)


# -- the client's lifecycle -----------------------------------------------------------

FRAME = b"\0" * 50 * MS
CONTROL_TEXTS = {
    "Terminate": '{"type":"Terminate"}',
    "ForceEndpoint": '{"type":"ForceEndpoint"}',
    "KeepAlive": '{"type":"KeepAlive"}',
    "UpdateConfiguration": '{"type":"UpdateConfiguration","max_turn_silence":500}',
}


def test_the_checker_follows_the_client_from_connecting_to_terminating() -> None:
    checker = accepted()
    states = [checker.state]
    assert checker.receive_audio(FRAME) is None
    for name in ("ForceEndpoint", "KeepAlive", "UpdateConfiguration"):
        message = checker.receive_text(CONTROL_TEXTS[name])
        assert not isinstance(message, Rejection | Violation)
        assert message.type == name
    states.append(checker.state)
    assert checker.receive_text(CONTROL_TEXTS["Terminate"]) == Terminate()
    states.append(checker.state)
    assert states == [State.CONNECTING, State.CONNECTING, State.TERMINATING_EARLY]


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("ForceEndpoint", "ForceEndpoint after Terminate"),
        ("KeepAlive", "KeepAlive after Terminate"),
        ("UpdateConfiguration", "UpdateConfiguration after Terminate"),
        ("Terminate", "a second Terminate"),
    ],
)
def test_a_control_message_after_terminate_is_a_violation(name: str, rule: str) -> None:
    checker = accepted()
    checker.receive_text(CONTROL_TEXTS["Terminate"])
    violation = checker.receive_text(CONTROL_TEXTS[name])
    assert isinstance(violation, Violation)
    assert violation.rule == rule
    assert violation.message is not None
    assert violation.message.type == name
    # A violation is a finding, not the end: the checker goes on, in the same state.
    assert checker.rejection is None
    assert checker.state is State.TERMINATING_EARLY
    assert checker.receive_text(CONTROL_TEXTS[name]) == violation


def test_audio_after_terminate_is_a_violation_and_not_counted() -> None:
    checker = accepted()
    checker.receive_audio(FRAME)
    checker.receive_text(CONTROL_TEXTS["Terminate"])
    assert checker.receive_audio(FRAME) == Violation(rule="audio after Terminate")
    # Not even a frame the service would refuse for its length: the lifecycle comes first.
    assert checker.receive_audio(b"\0" * 2000 * MS) == Violation(rule="audio after Terminate")
    assert (checker.audio_bytes, checker.audio_ms) == (len(FRAME), 50.0)


def test_the_table_lets_server_messages_change_nothing_a_client_may_send() -> None:
    # Why the checker can follow the client without seeing what the server sends:
    # the states a server message moves between allow the same client inputs.
    # (Closing the connection and failed sends are not messages: a server never sees them.)
    client_inputs = set(Input) - {Input.CONNECTION_CLOSED, Input.CLOSE, Input.SEND_FAILED}

    def allowed(state: State) -> set[Input]:
        return {i for i in client_inputs if i in TRANSITIONS[state]}

    # Every server message but Termination (after which the server closes: a client
    # that sends on is talking to a connection that is going away).
    for state, row in TRANSITIONS.items():
        for action, target in row.items():
            if not isinstance(action, Input) and action is not Termination:
                assert allowed(target) == allowed(state), (state, action, target)
    assert allowed(State.CONNECTING) == allowed(State.STREAMING) == client_inputs
    assert allowed(State.TERMINATING_EARLY) == allowed(State.TERMINATING) == set()
    assert allowed(State.TERMINATED) == set()


_ACTIONS = ("audio", "ForceEndpoint", "KeepAlive", "UpdateConfiguration", "Terminate", "Begin")


@given(st.lists(st.sampled_from(_ACTIONS), max_size=12))
def test_the_checker_refuses_exactly_what_the_client_refuses(actions: list[str]) -> None:
    # Both roles, one table: each action the Client refuses (LocalProtocolError) is a
    # Violation for the checker, and each it takes, the checker takes, wherever the
    # server's Begin falls (the checker never sees it).
    client = Client(StreamingParams(sample_rate=16000))
    checker = accepted()
    for action in actions:
        if action == "Begin":
            if client.begin is None and client.state is State.CONNECTING:
                client.receive_message('{"type":"Begin","id":"x","expires_at":1}')
            continue
        try:
            if action == "audio":
                client.send_audio(FRAME)
            elif action == "Terminate":
                client.terminate()
            elif action == "UpdateConfiguration":
                client.update_configuration(max_turn_silence=500)
            else:
                getattr(
                    client, {"ForceEndpoint": "force_endpoint", "KeepAlive": "keep_alive"}[action]
                )()
        except LocalProtocolError:
            refused = True
        else:
            refused = False
        if action == "audio":
            result: object = checker.receive_audio(FRAME)
        else:
            result = checker.receive_text(CONTROL_TEXTS[action])
        assert isinstance(result, Violation) is refused, (action, result)


def test_the_parsing_limits_are_the_checkers_to_set() -> None:
    checker = ClientChecker(max_message_bytes=30)
    assert checker.receive_request(TARGET) is None
    result = checker.receive_text('{"type":"UpdateConfiguration","prompt":"a long prompt"}')
    assert isinstance(result, Rejection)
    assert result.code == 3006
    assert "exceeds the limit of 30 bytes" in result.error
    deep = ClientChecker(max_nesting_depth=2)
    assert deep.receive_request(TARGET) is None
    result = deep.receive_text('{"type":"KeepAlive","x":[[1]]}')
    assert isinstance(result, Rejection)
    assert "nesting deeper than 2 levels" in result.error
    with pytest.raises(ValueError, match="max_message_bytes must be at least 1"):
        ClientChecker(max_message_bytes=0)


def test_a_credential_with_a_lone_surrogate_is_a_wrong_key() -> None:
    # Found by fuzz/run.py: it raised UnicodeEncodeError.
    for kwargs in ({"target": "?token=\ud800"}, {"target": "?", "authorization": "\udc00"}):
        checker = ClientChecker(api_key="the-key")
        rejection = checker.receive_request(**kwargs)
        assert isinstance(rejection, Rejection)
        assert rejection.code == 1008
