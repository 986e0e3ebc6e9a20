"""Credentials never leak, and URLs urllib trips on are an ``InvalidParameter``.

``redact_url`` masks every credential a URL can carry (userinfo, any case of a
secret query key, the fragment); no secret value reaches an exception message or
a repr, whatever its type; ``parse_url`` and ``build_url`` refuse what urllib can't
read with the documented error.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_proto import (
    InvalidParameter,
    StreamingParams,
    build_headers,
    build_url,
    parse_url,
    redact_url,
)

SECRET = "s3cr3t-Value"


# -- redact_url -------------------------------------------------------------------------

_USERINFO = {"": "", "user@": "***@", f"user:{SECRET}@": "***@", f":{SECRET}@": "***@"}
_SECRET_KEYS = [
    "token",
    "TOKEN",
    "Token",
    "webhook_auth_header_value",
    "Webhook_Auth_Header_Value",
    "%74oken",
    "TO%4BEN",
    "authorization",
    "api_key",
    "Access_Token",
]
_FRAGMENTS = ["", f"#token={SECRET}", f"#{SECRET}", "#frag", f"#a=1&TOKEN={SECRET}"]


@pytest.mark.parametrize(
    ("userinfo", "key", "fragment"),
    list(itertools.product(_USERINFO, _SECRET_KEYS, _FRAGMENTS)),
)
def test_redact_url_masks_userinfo_any_case_of_a_secret_key_and_the_fragment(
    userinfo: str, key: str, fragment: str
) -> None:
    url = f"ws://{userinfo}host:8765/v3/ws?sample_rate=16000&{key}={SECRET}&x=%C3%A9+1{fragment}"
    assert redact_url(url) == (
        f"ws://{_USERINFO[userinfo]}host:8765/v3/ws?sample_rate=16000&{key}=***&x=%C3%A9+1"
    )


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("ws://h/v3/ws", "ws://h/v3/ws"),
        ("ws://h/v3/ws?a=1", "ws://h/v3/ws?a=1"),
        (f"ws://h/v3/ws?token={SECRET}&token={SECRET}", "ws://h/v3/ws?token=***&token=***"),
        (f"ws://h/v3/ws?a=1;TOKEN={SECRET}", "ws://h/v3/ws?a=1;TOKEN=***"),
        (f"ws://h/v3/ws?%20Token%20={SECRET}", "ws://h/v3/ws?%20Token%20=***"),
        ("ws://h/v3/ws?token=&token", "ws://h/v3/ws?token=&token"),
        (f"/v3/ws?sample_rate=1&Token={SECRET}", "/v3/ws?sample_rate=1&Token=***"),
        (f"ws://{SECRET}@h/", "ws://***@h/"),
        (f"ws://u@{SECRET}@h/", "ws://***@h/"),
        (f"ws://h/#{SECRET}", "ws://h/"),
        (f"?token={SECRET}\ud800", "?token=***"),
    ],
)
def test_redact_url_keeps_everything_but_credentials_as_given(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    "url",
    [
        f"ws://[{SECRET}/v3/ws?token={SECRET}",
        f"ws://u:{SECRET}@[::1/v3/ws",
        f"ws://u:{SECRET}\uff03@h/v3/ws",
    ],
)
def test_redact_url_of_a_url_urllib_refuses_shows_no_part_of_it(url: str) -> None:
    redacted = redact_url(url)
    assert SECRET not in redacted
    assert redacted == "<a URL that can't be parsed: not shown, it may hold credentials>"


@given(st.text())
def test_redact_url_takes_any_text(url: str) -> None:
    redact_url(url)


# -- secrets in errors and reprs ----------------------------------------------------------

_WRONG_TYPES: list[Any] = [
    SECRET.encode(),
    bytearray(SECRET.encode()),
    [SECRET],
    (SECRET,),
    {SECRET: SECRET},
    {SECRET},
    memoryview(SECRET.encode()),
]


class _Shows:
    """A value whose str() and repr() are the secret."""

    def __repr__(self) -> str:
        return SECRET

    __str__ = __repr__


_WRONG_TYPES.append(_Shows())


def _assert_not_shown(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), *map(str, exc.args)):
        assert SECRET not in text
        assert SECRET.lower() not in text.lower()
    # No exception in the chain either: a traceback prints it.
    assert exc.__context__ is None or SECRET not in repr(exc.__context__)
    assert exc.__cause__ is None


@pytest.mark.parametrize("value", _WRONG_TYPES, ids=lambda v: type(v).__name__)
def test_a_wrong_type_of_webhook_secret_is_refused_without_showing_it(value: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        StreamingParams(webhook_auth_header_value=value)
    assert info.value.name == "webhook_auth_header_value"
    assert info.value.problem == (
        f"expected a string, got {type(value).__name__} (a credential: its value is not shown)"
    )
    _assert_not_shown(info.value)


@pytest.mark.parametrize("value", [SECRET + "\ud800", "\udfff" + SECRET])
def test_a_webhook_secret_that_is_no_text_is_refused_without_showing_it(value: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        StreamingParams(webhook_auth_header_value=value)
    assert info.value.problem == (
        "must be Unicode text, with no lone surrogate (a credential: its value is not shown)"
    )
    _assert_not_shown(info.value)


@pytest.mark.parametrize("value", [*_WRONG_TYPES, SECRET + "\ud800", 12345])
def test_a_wrong_token_is_refused_by_build_url_without_showing_it(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        build_url(StreamingParams(), token=value)
    _assert_not_shown(info.value)
    assert str(info.value).startswith("token must be ")


@pytest.mark.parametrize("value", [*_WRONG_TYPES, SECRET + "\ud800", SECRET + "\n", " " + SECRET])
@pytest.mark.parametrize("name", ["api_key", "token"])
def test_a_wrong_credential_header_is_refused_without_showing_it(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match="must be a non-empty string of printable ASCII") as info:
        build_headers(**{name: value})
    _assert_not_shown(info.value)


@pytest.mark.parametrize(
    "extra",
    [
        {"Token": SECRET},
        {"TOKEN": SECRET},
        {"Webhook_Auth_Header_Value": SECRET},
        {"api_KEY": SECRET},
    ],
)
def test_a_credential_in_extra_is_masked_in_the_repr(extra: dict[str, str]) -> None:
    params = StreamingParams(extra=extra)
    assert SECRET not in repr(params)
    assert repr(params).endswith(f"extra=FrozenDict({{{next(iter(extra))!r}: '***'}}))")
    assert params.extra == extra  # kept, and sent: only the repr masks it


def test_a_credential_in_any_case_in_a_url_stays_out_of_the_repr() -> None:
    params = parse_url(f"?sample_rate=16000&TOKEN={SECRET}&webhook_auth_header_value={SECRET}")
    assert SECRET not in repr(params)
    assert params.webhook_auth_header_value == SECRET


@pytest.mark.parametrize(
    "extra", [f"token={SECRET}", [("token", SECRET)], {"Token": SECRET.encode()}, {1: SECRET}]
)
def test_a_wrong_extra_is_refused_without_showing_its_values(extra: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        StreamingParams(extra=extra)
    _assert_not_shown(info.value)


def test_a_secret_given_twice_in_a_url_is_not_shown() -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_url(f"?webhook_auth_header_value={SECRET}&webhook_auth_header_value={SECRET}")
    assert str(info.value) == "Invalid 'webhook_auth_header_value': given more than once"


# -- urllib's errors are InvalidParameter ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ws://[x/v3/ws",
        "ws://[x/v3/ws?sample_rate=16000",
        "wss://h]/v3/ws?sample_rate=16000",
        "ws://[::1/v3/ws?sample_rate=16000",
        "ws://\uff03@h/v3/ws?sample_rate=16000",
        "//[x?sample_rate=16000",
    ],
)
def test_a_url_with_a_broken_host_is_an_invalid_parameter(url: str) -> None:
    # urllib's ValueError (found by fuzz/run.py), on every supported Python.
    with pytest.raises(InvalidParameter, match=r"^Invalid 'url': not a URL \("):
        parse_url(url)


@pytest.mark.parametrize(
    "target", ["?sample_rate=16000", "/v3/ws?sample_rate=16000&x=[", "?x=//[y&sample_rate=8000"]
)
def test_a_request_target_has_no_host_to_break(target: str) -> None:
    assert parse_url(target).sample_rate in (16000, 8000)


def test_parse_url_wants_text() -> None:
    with pytest.raises(TypeError, match=r"^parse_url takes str, not bytes$"):
        parse_url(b"?sample_rate=16000")  # type: ignore[arg-type]


@pytest.mark.parametrize("base_url", ["ws://[x/v3/ws", "ws://\uff03@h/v3/ws"])
def test_a_base_url_urllib_refuses_is_an_invalid_parameter(base_url: str) -> None:
    with pytest.raises(InvalidParameter, match=r"^Invalid 'base_url': not a URL \("):
        build_url(StreamingParams(), base_url=base_url)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        (StreamingParams(prompt="a\ud800"), "prompt"),
        (StreamingParams(keyterms_prompt=["\udc00"]), "keyterms_prompt"),
        (StreamingParams(extra={"x_y": "\ud800"}), "x_y"),
    ],
)
def test_a_value_no_url_can_carry_is_an_invalid_parameter(
    params: StreamingParams, name: str
) -> None:
    # urlencode would raise UnicodeEncodeError: a lone surrogate is no UTF-8.
    with pytest.raises(
        InvalidParameter, match=rf"^Invalid '{name}': holds a lone surrogate \(U\+D[8C]00\)"
    ):
        build_url(params)


def test_a_url_urllib_refuses_is_refused_without_showing_its_userinfo() -> None:
    # urllib's own message quotes the host, with what comes before '@'.
    with pytest.raises(InvalidParameter) as info:
        parse_url(f"wss://user:{SECRET}\uff03@h/v3/ws?sample_rate=16000")
    assert str(info.value) == (
        "Invalid 'url': not a URL (its host holds characters that NFKC turns into delimiters)"
    )
    with pytest.raises(InvalidParameter) as info:
        build_url(StreamingParams(), base_url=f"wss://user:{SECRET}\uff03@h/v3/ws")
    _assert_not_shown(info.value)


@pytest.mark.parametrize("value", ["ké", "k\u2028", "\u00a0k"])
def test_a_header_value_h11_could_not_encode_is_refused(value: str) -> None:
    # h11 encodes header values as ASCII: it would raise UnicodeEncodeError, holding the key.
    with pytest.raises(
        ValueError,
        match=r"^api_key must be a non-empty string of printable ASCII, without surrounding "
        r"spaces \(its value is not shown\)$",
    ):
        build_headers(api_key=value)


def test_a_webhook_secret_that_is_not_utf8_is_refused_without_showing_it() -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_url(f"?sample_rate=16000&webhook_auth_header_value={SECRET}%FF")
    assert str(info.value) == "Invalid 'query': is not valid UTF-8 once percent-decoded"
    _assert_not_shown(info.value)
    assert info.value.__context__ is None
