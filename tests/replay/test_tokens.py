"""The replay server's token issuer: the service's rules, without I/O."""

from __future__ import annotations

import json

import pytest

from aai_proto import TokenRequest, parse_token_response
from aai_replay._tokens import TokenGrant, TokenIssuer, TokenRefusal

KEY = "test-key-123"


def mint(issuer: TokenIssuer, now: float = 0.0, **fields: int) -> str:
    request = TokenRequest(**{"expires_in_seconds": 60, **fields})
    answer = issuer.answer(request.target, KEY, now)
    assert answer.status == 200
    return parse_token_response(answer.body).token


def test_a_token_opens_one_session() -> None:
    issuer = TokenIssuer(KEY)
    token = mint(issuer, max_session_duration_seconds=600)
    assert issuer.redeem(token, 1.0) == TokenGrant(max_session_duration_seconds=600)
    assert issuer.redeem(token, 2.0) == TokenRefusal(
        reason="Invalid or already used temporary token"
    )


def test_an_expired_token_is_refused() -> None:
    issuer = TokenIssuer(KEY)
    token = mint(issuer, now=100.0, expires_in_seconds=5)
    assert issuer.redeem(token, 105.5) == TokenRefusal(reason="Temporary token expired")


def test_tokens_are_unique_and_hidden() -> None:
    issuer = TokenIssuer(KEY)
    tokens = {mint(issuer) for _ in range(50)}
    assert len(tokens) == 50
    answer = issuer.answer("/v3/token?expires_in_seconds=60", KEY, 0.0)
    assert json.loads(answer.body)["token"] not in repr(answer)
    assert not any(token in repr(issuer) for token in tokens)


def test_unused_tokens_are_forgotten_once_expired() -> None:
    issuer = TokenIssuer(KEY)
    old = mint(issuer, now=0.0, expires_in_seconds=1)
    mint(issuer, now=10.0)
    assert repr(issuer) == "<TokenIssuer: 1 token(s) outstanding>"
    assert isinstance(issuer.redeem(old, 10.0), TokenRefusal)


@pytest.mark.parametrize("authorization", [None, "", "wrong", KEY + "x"])
def test_without_the_key_401(authorization: str | None) -> None:
    answer = TokenIssuer(KEY).answer("/v3/token?expires_in_seconds=60", authorization, 0.0)
    assert (answer.status, json.loads(answer.body)) == (401, {"error": "Invalid API key"})


def test_without_a_key_to_check_anyone_gets_a_token() -> None:
    answer = TokenIssuer().answer("/v3/token?expires_in_seconds=60", None, 0.0)
    assert answer.status == 200


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("/v3/token", "Invalid 'expires_in_seconds': required"),
        ("/v3/token?expires_in_seconds=601", "Invalid 'expires_in_seconds': must be between"),
        (
            "/v3/token?expires_in_seconds=5&max_session_duration_seconds=20000",
            "Invalid 'max_session_duration_seconds'",
        ),
    ],
)
def test_bad_arguments_400_naming_them(target: str, error: str) -> None:
    answer = TokenIssuer(KEY).answer(target, KEY, 0.0)
    assert answer.status == 400
    assert json.loads(answer.body)["error"].startswith(error)
