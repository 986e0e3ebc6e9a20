"""Temporary tokens, as the service issues and accepts them, without I/O.

Strategy: a :class:`TokenIssuer` answers ``GET /v3/token`` (checking the API key
and the arguments with the core's :func:`aai_proto.parse_token_request`) with a
fresh random token, and remembers for each token until when it may be used and
how long its session may last. A token opens one session: :meth:`redeem` takes
it away. Time is a parameter (``now``, in seconds on any monotonic clock), never
read here. Tokens are credentials: they appear in no ``repr``, message or log.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Final, final

import attrs

from aai_proto import InvalidParameter, TemporaryToken, parse_token_request

__all__ = ["TokenAnswer", "TokenGrant", "TokenIssuer", "TokenRefusal"]

_TOKEN_BYTES: Final = 24  # 192 random bits, URL-safe text of 32 characters


@final
@attrs.frozen(kw_only=True)
class TokenAnswer:
    """The HTTP answer to a token request: ``status`` and a JSON ``body``."""

    status: int
    body: str = attrs.field(repr=False)  # holds the token on success


@final
@attrs.frozen
class _Grant:
    use_by: float
    session_seconds: int | None


@final
@attrs.frozen(kw_only=True)
class TokenGrant:
    """A token was good: its session may last ``max_session_duration_seconds`` (``None``:
    the service's default)."""

    max_session_duration_seconds: int | None


@final
@attrs.frozen(kw_only=True)
class TokenRefusal:
    """A token was not good: close 1008 with ``reason`` (it never holds the token)."""

    reason: str


@final
class TokenIssuer:
    """Issues temporary tokens and takes each back once, as the service does.

    ``api_key``: the key a token request must present in ``Authorization``
    (``None``: any request may have a token, as with a replay server that checks
    no key).
    """

    def __init__(self, api_key: str | None = None) -> None:
        self._api_key = api_key
        self._grants: dict[str, _Grant] = {}

    def __repr__(self) -> str:
        return f"<TokenIssuer: {len(self._grants)} token(s) outstanding>"

    def answer(self, target: str, authorization: str | None, now: float) -> TokenAnswer:
        """The answer to ``GET target`` with this ``Authorization`` header, at ``now``.

        401 without the key, 400 naming the invalid argument, else 200 with
        ``{"token": ..., "expires_in_seconds": N}``.
        """
        if self._api_key is not None and not (
            authorization is not None
            and hmac.compare_digest(authorization.encode(), self._api_key.encode())
        ):
            return TokenAnswer(status=401, body='{"error": "Invalid API key"}')
        try:
            request = parse_token_request(target)
        except InvalidParameter as exc:
            return TokenAnswer(status=400, body=_error_body(str(exc)))
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        self._forget_expired(now)
        self._grants[token] = _Grant(
            now + request.expires_in_seconds, request.max_session_duration_seconds
        )
        minted = TemporaryToken(token=token, expires_in_seconds=request.expires_in_seconds)
        return TokenAnswer(status=200, body=minted.dump())

    def redeem(self, token: str, now: float) -> TokenGrant | TokenRefusal:
        """Take ``token`` for a session at ``now``.

        A token is good once, before it expires; an unknown, used or expired one
        is refused, with the reason to close 1008 with.
        """
        grant = self._grants.pop(token, None)
        if grant is None:
            return TokenRefusal(reason="Invalid or already used temporary token")
        if now > grant.use_by:
            return TokenRefusal(reason="Temporary token expired")
        return TokenGrant(max_session_duration_seconds=grant.session_seconds)

    def _forget_expired(self, now: float) -> None:
        # Bounded memory: tokens nobody used go once they expire.
        for token in [t for t, g in self._grants.items() if now > g.use_by]:
            del self._grants[token]


def _error_body(text: str) -> str:
    return json.dumps({"error": text})
