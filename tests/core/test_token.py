"""Temporary tokens: the request, its checks, and the answer, for both sides."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_proto import (
    InvalidParameter,
    RemoteProtocolError,
    TemporaryToken,
    TokenRequest,
    parse_token_request,
    parse_token_response,
)

SECRET = "tok-8f3a-SECRET"


def test_the_request_target_and_url() -> None:
    request = TokenRequest(expires_in_seconds=60)
    assert request.target == "/v3/token?expires_in_seconds=60"
    assert request.url() == "https://streaming.assemblyai.com/v3/token?expires_in_seconds=60"
    both = TokenRequest(expires_in_seconds=600, max_session_duration_seconds=10_800)
    assert both.target == ("/v3/token?expires_in_seconds=600&max_session_duration_seconds=10800")


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("wss://streaming.eu.assemblyai.com/v3/ws", "https://streaming.eu.assemblyai.com/v3/token"),
        ("ws://127.0.0.1:8765/v3/ws?sample_rate=16000", "http://127.0.0.1:8765/v3/token"),
        ("http://localhost:9000", "http://localhost:9000/v3/token"),
        ("HTTPS://[::1]:443/anything", "https://[::1]:443/v3/token"),
    ],
)
def test_the_url_is_on_the_streaming_host(base: str, url: str) -> None:
    assert TokenRequest(expires_in_seconds=5).url(base) == url + "?expires_in_seconds=5"


@pytest.mark.parametrize(
    "base", ["ftp://host/", "streaming.assemblyai.com", "wss:///v3/ws", "wss://user:KEY@host/"]
)
def test_a_url_that_is_no_streaming_host_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match="base_url must") as raised:
        TokenRequest(expires_in_seconds=5).url(base)
    assert "KEY" not in str(raised.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expires_in_seconds": 0}, "Invalid 'expires_in_seconds': must be between 1 and 600"),
        ({"expires_in_seconds": 601}, "between 1 and 600, got 601"),
        ({"expires_in_seconds": True}, "expected an integer, got bool"),
        ({"expires_in_seconds": 60.0}, "expected an integer, got float"),
        (
            {"expires_in_seconds": 60, "max_session_duration_seconds": 59},
            "Invalid 'max_session_duration_seconds': must be between 60 and 10800, got 59",
        ),
        ({"expires_in_seconds": 60, "max_session_duration_seconds": 10_801}, "got 10801"),
        ({"expires_in_seconds": 60, "max_session_duration_seconds": "60"}, "got str"),
    ],
)
def test_arguments_are_checked_as_the_service_does(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        TokenRequest(**fields)  # type: ignore[arg-type]


@given(
    st.integers(min_value=1, max_value=600),
    st.none() | st.integers(min_value=60, max_value=10_800),
)
def test_a_server_reads_back_what_a_client_builds(expires: int, session: int | None) -> None:
    request = TokenRequest(expires_in_seconds=expires, max_session_duration_seconds=session)
    assert parse_token_request(request.target) == request


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/v3/token", "Invalid 'expires_in_seconds': required"),
        ("/v3/token?expires_in_seconds=", "expected an integer"),
        ("/v3/token?expires_in_seconds=-1", "expected an integer"),
        ("/v3/token?expires_in_seconds=1e3", "expected an integer"),
        ("/v3/token?expires_in_seconds=%EF%BC%91", "expected an integer"),  # a fullwidth 1
        ("/v3/token?expires_in_seconds=" + "9" * 400, "expected an integer"),
        ("/v3/token?expires_in_seconds=700", "between 1 and 600, got 700"),
        ("/v3/token?expires_in_seconds=5&expires_in_seconds=6", "given twice"),
        ("/v3/token?expires_in_seconds=5&max_session_duration_seconds=1", "between 60 and"),
        ("/v3/ws?expires_in_seconds=5", "the path must be /v3/token"),
        ("//[x/v3/token?expires_in_seconds=5", "not a valid request target"),
    ],
)
def test_a_bad_request_is_an_invalid_parameter(target: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        parse_token_request(target)


def test_unknown_arguments_are_ignored() -> None:
    assert parse_token_request("/v3/token?expires_in_seconds=5&x=1") == TokenRequest(
        expires_in_seconds=5
    )


def test_the_answer_round_trips_and_hides_the_token() -> None:
    token = TemporaryToken(token=SECRET, expires_in_seconds=60)
    assert parse_token_response(token.dump()) == token
    assert parse_token_response(token.dump().encode()) == token
    assert SECRET not in repr(token)
    assert pickle.loads(pickle.dumps(token)) == token
    extra = f'{{"token": "{SECRET}", "expires_in_seconds": 60, "more": 1}}'
    assert parse_token_response(extra) == token


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f'{{"token": "{SECRET}", "expires_in_seconds": 60', "not valid JSON"),
        (b"\xff" + SECRET.encode(), "not valid JSON"),
        ("[" * 100_000 + SECRET, "not valid JSON"),
        (f'["{SECRET}"]', "not a JSON object"),
        ('{"expires_in_seconds": 60}', "has no token"),
        ('{"token": "", "expires_in_seconds": 60}', "has no token"),
        ('{"token": 5, "expires_in_seconds": 60}', "has no token"),
        (f'{{"token": "{SECRET}", "expires_in_seconds": "60"}}', "not an integer"),
        (f'{{"token": "{SECRET}", "expires_in_seconds": true}}', "not an integer"),
    ],
)
def test_a_bad_answer_is_a_remote_protocol_error_without_the_token(
    body: str | bytes, message: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=message) as raised:
        parse_token_response(body)
    error = raised.value
    # Nowhere in the error, its cause or its context: json's own error keeps the text.
    assert error.__cause__ is None
    assert error.__context__ is None
    assert SECRET not in str(error)


def test_wrong_types_are_type_errors() -> None:
    with pytest.raises(TypeError, match="body must be a str or bytes"):
        parse_token_response(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="target must be a str"):
        parse_token_request(b"/v3/token")  # type: ignore[arg-type]
