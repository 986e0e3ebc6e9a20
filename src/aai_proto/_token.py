"""Temporary tokens: the request that mints one and the service's answer, without I/O.

A temporary token lets a client that must not hold the API key (a browser, a
device) open one streaming session. A trusted party asks for it with ``GET
/v3/token?expires_in_seconds=N[&max_session_duration_seconds=M]`` on the
streaming host, the API key in ``Authorization``; the answer is ``{"token": ...,
"expires_in_seconds": N}``. These values build that request and read that
answer, for a client (:meth:`TokenRequest.url`, :func:`parse_token_response`) and
for a server that stands in for the service (:func:`parse_token_request`,
:meth:`TemporaryToken.dump`). The token itself is a credential: it is never in a
``repr`` or an error message.
"""

from __future__ import annotations

import json
from typing import Any, Final, final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from ._errors import RemoteProtocolError
from ._params import DEFAULT_URL, InvalidParameter

__all__ = [
    "MAX_SESSION_SECONDS",
    "MAX_TOKEN_SECONDS",
    "MIN_SESSION_SECONDS",
    "MIN_TOKEN_SECONDS",
    "TOKEN_PATH",
    "TemporaryToken",
    "TokenRequest",
    "parse_token_request",
    "parse_token_response",
]

TOKEN_PATH: Final = "/v3/token"
"""The path of the token request on the streaming host."""
MIN_TOKEN_SECONDS: Final = 1
MAX_TOKEN_SECONDS: Final = 600
"""``expires_in_seconds``: how long the token may wait to be used, 1 to 600 seconds."""
MIN_SESSION_SECONDS: Final = 60
MAX_SESSION_SECONDS: Final = 10_800
"""``max_session_duration_seconds``: how long its session may last, 60 to 10,800 seconds."""

_INVALID: Final = object()

# The HTTP scheme of each scheme a streaming URL may have.
_HTTP_SCHEMES: Final = {"wss": "https", "ws": "http", "https": "https", "http": "http"}


def _seconds(name: str, lo: int, hi: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and attribute.default is None:
            return
        if type(value) is not int:  # not a bool, nor a float that happens to be whole
            raise InvalidParameter(name, f"expected an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise InvalidParameter(name, f"must be between {lo} and {hi}, got {value}")

    return check


@final
@attrs.frozen(kw_only=True)
class TokenRequest:
    """The arguments of a token request, checked as the service checks them.

    ``expires_in_seconds`` (1-600) bounds how long the token may wait to be used;
    ``max_session_duration_seconds`` (60-10,800, optional: the service's default
    otherwise) bounds the session it opens. A value out of range, or not an
    ``int``, is an :class:`InvalidParameter`.
    """

    expires_in_seconds: int = attrs.field(
        validator=_seconds("expires_in_seconds", MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS)
    )
    max_session_duration_seconds: int | None = attrs.field(
        default=None,
        validator=_seconds(
            "max_session_duration_seconds", MIN_SESSION_SECONDS, MAX_SESSION_SECONDS
        ),
    )

    @property
    def target(self) -> str:
        """The request target: ``/v3/token?expires_in_seconds=...``."""
        query = [("expires_in_seconds", str(self.expires_in_seconds))]
        if self.max_session_duration_seconds is not None:
            query.append(("max_session_duration_seconds", str(self.max_session_duration_seconds)))
        return f"{TOKEN_PATH}?{urlencode(query)}"

    def url(self, base_url: str = DEFAULT_URL) -> str:
        """The request's URL on the host of ``base_url``.

        ``base_url`` is the streaming URL a client connects to (``wss://`` becomes
        ``https://``, ``ws://`` becomes ``http://``) or an ``http(s)://`` host; its
        path and query are not used. Send it with ``GET`` and the headers of
        :func:`build_headers` with the API key.
        """
        parts = urlsplit(base_url)
        scheme = _HTTP_SCHEMES.get(parts.scheme.lower())
        if scheme is None or not parts.hostname:
            raise ValueError("base_url must be a ws://, wss://, http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("base_url must not carry a user name or password")
        path, _, query = self.target.partition("?")
        return urlunsplit((scheme, parts.netloc, path, query, ""))


def parse_token_request(target: str) -> TokenRequest:
    """Read a token request's target (path and query), as a server does.

    Raises :class:`InvalidParameter` for a missing, repeated or invalid argument
    (naming it, as the service does), and for a path that is not ``/v3/token``.
    Unknown arguments are ignored.
    """
    if type(target) is not str:
        raise TypeError(f"target must be a str, got {type(target).__name__}")
    try:
        parts = urlsplit(target)
    except ValueError as exc:  # an invalid IPv6 netloc, for one
        raise InvalidParameter("target", "not a valid request target") from exc
    if parts.path != TOKEN_PATH:
        raise InvalidParameter("target", f"the path must be {TOKEN_PATH}")
    values: dict[str, int] = {}
    for name, text in parse_qsl(parts.query, keep_blank_values=True):
        if name not in ("expires_in_seconds", "max_session_duration_seconds"):
            continue
        if name in values:
            raise InvalidParameter(name, "given twice")
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise InvalidParameter(name, "expected an integer")
        values[name] = int(text)
    if "expires_in_seconds" not in values:
        raise InvalidParameter("expires_in_seconds", "required")
    return TokenRequest(**values)


@final
@attrs.frozen(kw_only=True)
class TemporaryToken:
    """A token the service minted, and for how long it may wait to be used.

    ``token`` is a credential: it is not in the ``repr``.
    """

    token: str = attrs.field(repr=False)
    expires_in_seconds: int

    def dump(self) -> str:
        """The answer's JSON body, as the service writes it."""
        return json.dumps({"token": self.token, "expires_in_seconds": self.expires_in_seconds})


def parse_token_response(body: str | bytes) -> TemporaryToken:
    """Read the body of the service's answer to a token request (status 200).

    Raises :class:`RemoteProtocolError` for anything but a JSON object with a
    non-empty string ``token`` and an integer ``expires_in_seconds`` (other keys
    are ignored). The message never holds the token.
    """
    if not isinstance(body, (str, bytes)):
        raise TypeError(f"body must be a str or bytes, got {type(body).__name__}")
    # Raised outside the handler: json's error keeps the whole text (the token) in ``doc``.
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        data = _INVALID
    if data is _INVALID:
        raise RemoteProtocolError("the token response is not valid JSON")
    if not isinstance(data, dict):
        raise RemoteProtocolError("the token response is not a JSON object")
    token, seconds = data.get("token"), data.get("expires_in_seconds")
    if type(token) is not str or not token:
        raise RemoteProtocolError("the token response has no token")
    if type(seconds) is not int:
        raise RemoteProtocolError("the token response's expires_in_seconds is not an integer")
    return TemporaryToken(token=token, expires_in_seconds=seconds)
