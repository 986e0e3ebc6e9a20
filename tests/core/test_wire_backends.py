"""Differential tests: every way of parsing server messages agrees with the reference.

The reference is the standard ``json`` plus the detailed ``cattrs`` converter; the
backends are the generated structuring functions and, when installed, ``msgspec``.
On every message they give the same event, or all refuse.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_proto import Begin, RemoteProtocolError, ServerEvent, parse_server_message
from aai_proto import strategies as st_aai
from aai_proto._wire import BACKENDS, _parse_reference

Parse = Callable[[str | bytes], ServerEvent]
NAMES = sorted(BACKENDS)


def _outcome(parse: Parse, text: str | bytes) -> ServerEvent | str:
    try:
        return parse(text)
    except RemoteProtocolError:
        return "refused"


def _agree(name: str, text: str | bytes) -> None:
    expected = _outcome(_parse_reference, text)
    got = _outcome(BACKENDS[name], text)
    assert got == expected
    if not isinstance(got, str):
        assert type(got) is type(expected)
        # Floats stay floats, ints stay ints.
        assert repr(got) == repr(expected)


def test_msgspec_backend_is_tested_when_installed() -> None:
    pytest.importorskip("msgspec")
    assert "msgspec" in BACKENDS


@pytest.mark.parametrize("name", NAMES)
@given(text=st_aai.server_message_texts())
def test_valid_messages_agree(name: str, text: str) -> None:
    _agree(name, text)
    _agree(name, text.encode())


@pytest.mark.parametrize("name", NAMES)
@given(text=st_aai.malformed_server_message_texts())
def test_malformed_messages_agree(name: str, text: str) -> None:
    _agree(name, text)


_EDGE_VALUES = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**65),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.sampled_from(
        [
            "1e400",
            "-1e400",
            "1e-400",
            "-0.0",
            "4.9e-324",
            "2.2250738585072011e-308",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "0.1000000000000000055511151231257827021181583404541015625",
            "9007199254740993",
            "18446744073709551617",
            "-9223372036854775809",
            "NaN",
            "Infinity",
            '"\\ud800"',
            '"\\udc00x"',
            "1" * 30,
            "1" * 30 + ".5",
            "-0",
            "0.1e1",
            "01",
            "1.",
            '"\\q"',
            '"\x01"',
        ]
    ),
)


@st.composite
def _edge_texts(draw: st.DrawFn) -> str:
    """Valid messages with one value replaced by an edge case, or a key duplicated."""
    text = draw(st_aai.server_message_texts())
    data = json.loads(text)
    key = draw(st.sampled_from(sorted(data)))
    value = draw(_EDGE_VALUES)
    raw = value if isinstance(value, str) and draw(st.booleans()) else json.dumps(value)
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data.items() if k != key)
    where = draw(st.sampled_from(["replace", "before", "after"]))
    if where == "replace":
        items = [body, f"{json.dumps(key)}: {raw}"]
    elif where == "before":  # a duplicate key: the last one wins
        items = [f"{json.dumps(key)}: {raw}", body, f"{json.dumps(key)}: {json.dumps(data[key])}"]
    else:
        items = [body, f"{json.dumps(key)}: {json.dumps(data[key])}", f"{json.dumps(key)}: {raw}"]
    return "{" + ", ".join(i for i in items if i) + "}"


@pytest.mark.parametrize("name", NAMES)
@given(text=_edge_texts())
def test_edge_values_agree(name: str, text: str) -> None:
    _agree(name, text)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "text",
    [
        b'{"type":"Termination","audio_duration_seconds":1,"session_duration_seconds":2,'
        b'"x":"\xff"}',
        b'{"type":"Termination","audio_duration_seconds":1,"session_duration_seconds":2,'
        b'"x":"\xed\xa0\x80"}',
        b'\xef\xbb\xbf{"type":"Termination","audio_duration_seconds":1,'
        b'"session_duration_seconds":2}',
        '{"type":"Termination","audio_duration_seconds":1,"session_duration_seconds":2}'.encode(
            "utf-16"
        ),
        '{"type":"Begin","id":"\ud800","expires_at":1}',
        '{"type":"Begin","id":"a","expires_at":1,"x":"\ud800"}',
        '{"id":"a","expires_at":1,"type":"Begin","type":"Turn"}',
        '{"id":"a","expires_at":1,"type":"Turn","type":"Begin"}',
        '{"id":"a","expires_at":1,"x":"\\",\\"type\\":\\"Begin"}',
        '{"id":"a","expires_at":1,"type": "Begin"}',
        # The key is 'x"type', not 'type': the shortcut for the service's ending
        # must see the escaped quote.
        '{"id":"a","expires_at":1,"x\\"type":"Begin"}',
        '{"id":"a","expires_at":1,"type":"Begin","x\\"type":"Termination"}',
        '{"id":"a","expires_at":1,"x":"\\\\","type":"Begin"}',
        '{"id":"a","expires_at":1,"type":"Begin"} ',
        '{"id":"a","expires_at":1,"type":"Begin"}}',
        '{"error":"x","type":"Error"}',
        '{"error":"x"}',
    ],
)
def test_encodings_duplicates_and_endings_agree(name: str, text: str | bytes) -> None:
    _agree(name, text)


def _nested(depth: int, key: str = "x") -> str:
    return (
        '{"id":"a","expires_at":1,"' + key + '":' + "[" * depth + "]" * depth + ',"type":"Begin"}'
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("depth", [1, 199, 200, 3000, 100_000])
def test_deep_nesting_agrees(name: str, depth: int) -> None:
    _agree(name, _nested(depth))
    _agree(name, _nested(depth).replace("[", '{"a":').replace("]", "}").replace("{}", "1"))


@pytest.mark.parametrize("name", NAMES)
def test_nesting_well_below_the_recursion_limit_is_taken(name: str) -> None:
    # Where the standard json gives up depends on the caller's stack (called one
    # frame deeper, it refuses one level less), in every path: compare away from it.
    depth = sys.getrecursionlimit() // 2
    _agree(name, _nested(depth))
    assert isinstance(BACKENDS[name](_nested(depth)), Begin)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("digits", [19, 20, 308, 309, 400, 4299, 4300, 4301, 5000])
@pytest.mark.parametrize("field", ["x", "expires_at"])
def test_huge_integers_agree(name: str, digits: int, field: str) -> None:
    number = "7" * digits
    _agree(name, '{"id":"a","expires_at":1,"' + field + '":' + number + ',"type":"Begin"}')
    heartbeat = (
        '{"total_audio_received_ms":1,"total_duration_ms":1,"realtime_factor":'
        + number
        + ',"type":"Heartbeat"}'
    )
    _agree(name, heartbeat)


def test_default_is_the_fastest_backend() -> None:
    text = '{"audio_duration_seconds":1,"session_duration_seconds":2,"type":"Termination"}'
    assert parse_server_message(text) == BACKENDS[NAMES[-1]](text)


@pytest.mark.parametrize("name", NAMES)
def test_an_integer_too_big_for_a_float_is_refused_not_a_crash(name: str) -> None:
    # The standard json reads it as an int; float() of it overflows.
    text = (
        '{"total_audio_received_ms":1,"total_duration_ms":1,"realtime_factor":'
        + "7" * 400
        + ',"type":"Heartbeat"}'
    )
    with pytest.raises(RemoteProtocolError, match=r"number out of range.* @ \$\.realtime_factor"):
        BACKENDS[name](text)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "text",
    [
        '{"error_code":3005,"type":"Error"}',
        '{"type":"Error"}',
        '{"turn_order":1,"turn_is_formatted":true,"end_of_turn":true,"transcript":"",'
        '"end_of_turn_confidence":1,"words":[{"start":1}],"type":"Turn"}',
    ],
)
def test_a_required_field_after_an_optional_one_is_required(name: str, text: str) -> None:
    with pytest.raises(RemoteProtocolError, match="required field missing"):
        BACKENDS[name](text)


@pytest.mark.parametrize("name", NAMES)
def test_errors_say_what_and_where_in_every_backend(name: str) -> None:
    with pytest.raises(RemoteProtocolError, match=r"expected an integer, got '1' @ \$\.turn_order"):
        BACKENDS[name]('{"type": "Turn", "turn_order": "1"}')
    with pytest.raises(RemoteProtocolError, match=r"expected a string, got 5 @ \$\.words"):
        BACKENDS[name](
            '{"turn_order":1,"turn_is_formatted":true,"end_of_turn":true,"transcript":"",'
            '"end_of_turn_confidence":1,"words":[{"start":1,"end":2,"text":5,"confidence":1,'
            '"word_is_final":true}],"type":"Turn"}'
        )


@given(
    before=st.integers(0, 9000),
    run=st.integers(1, 9000),
    after=st.integers(0, 9000),
    limit=st.sampled_from([640, 4300]),
)
def test_long_digit_runs_are_found(before: int, run: int, after: int, limit: int) -> None:
    accel = pytest.importorskip("aai_proto._accel")
    text = "x" * before + "7" * run + " 12," * (after // 4)
    if run > limit:
        assert accel._maybe_huge_int(text, limit)
    assert not accel._maybe_huge_int("x" * before + " 12," * (after // 4), limit)


_NUMBERS = [
    "0",
    "-0",
    "-0.0",
    "1",
    "1.0",
    "1e400",
    "-1e400",
    "1e-400",
    "4.9e-324",
    "2.2250738585072011e-308",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "0.1000000000000000055511151231257827021181583404541015625",
    "0.30000000000000004",
    "9007199254740993",
    "18446744073709551617",
    "-9223372036854775809",
    "7" * 400,
    "1E2",
    "1e+2",
    "true",
    '"1"',
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("number", _NUMBERS)
def test_numbers_in_number_fields_agree(name: str, number: str) -> None:
    _agree(
        name,
        '{"turn_order":1,"turn_is_formatted":true,"end_of_turn":true,"transcript":"",'
        '"end_of_turn_confidence":' + number + ',"words":[{"start":1,"end":2,"text":"a",'
        '"confidence":' + number + ',"word_is_final":true}],"type":"Turn"}',
    )
    _agree(
        name,
        '{"total_audio_received_ms":' + number + ',"total_duration_ms":1,'
        '"realtime_factor":' + number + ',"type":"Heartbeat"}',
    )


@pytest.mark.parametrize("name", NAMES)
def test_a_bytearray_is_read_as_bytes_are(name: str) -> None:
    text = b'{"audio_duration_seconds":1,"session_duration_seconds":2,"type":"Termination"}'
    parse: Callable[[bytearray], ServerEvent] = BACKENDS[name]  # type: ignore[assignment]
    assert parse(bytearray(text)) == _parse_reference(text)
