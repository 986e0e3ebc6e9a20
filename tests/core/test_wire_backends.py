"""The accelerator against the reference parser, and what every way of parsing shares.

The reference is the standard ``json`` plus the strict ``cattrs`` converter
(``_parse_reference``, backend ``json``); without ``msgspec`` it is what
``parse_server_message`` runs. With ``msgspec`` (the ``fast`` extra) the default
(backend ``msgspec``) tries the accelerator first. The differential tests compare
it with the reference, and call the accelerator itself too: whatever it accepts,
the reference accepts, as an equal event. Since a fallback would hide an
accelerator that declines everything, another test checks that it *takes* every
valid fixture of the types it handles.
"""

from __future__ import annotations

import json
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from aai_proto import (
    Begin,
    RemoteProtocolError,
    ServerEvent,
    ServerWarning,
    UnknownMessage,
    dump_server_message,
    parse_server_message,
)
from aai_proto import strategies as st_aai
from aai_proto._events import MESSAGE_TYPES, LLMGatewayResponse
from aai_proto._wire import BACKENDS, _parse_reference

Parse = Callable[[str | bytes], ServerEvent]
NAMES = sorted(BACKENDS)
SERVER_FIXTURES = sorted(
    (Path(__file__).parents[2] / "fixtures" / "messages" / "server").glob("ok-*.json")
)

_accel: ModuleType | None
try:
    from aai_proto import _accel
except ImportError:  # pragma: no cover - depends on what is installed
    _accel = None

needs_msgspec = pytest.mark.skipif(_accel is None, reason="msgspec (the fast extra) is missing")


def _outcome(parse: Parse, text: str | bytes) -> ServerEvent | str:
    try:
        return parse(text)
    except RemoteProtocolError:
        return "refused"


def _agree(text: str | bytes) -> None:
    """The default path and the accelerator itself agree with the reference on ``text``."""
    assert _accel is not None
    expected = _outcome(_parse_reference, text)
    got = _outcome(parse_server_message, text)
    assert got == expected
    if not isinstance(got, str):
        assert type(got) is type(expected)
        # Floats stay floats, ints stay ints.
        assert repr(got) == repr(expected)
    direct = _accel.parse_server_message(text)
    if direct is not None:  # it declines, or returns the reference's event: never more
        assert not isinstance(expected, str), "the accelerator took what the reference refuses"
        assert repr(direct) == repr(expected)


def test_msgspec_backend_is_tested_when_installed() -> None:
    pytest.importorskip("msgspec")
    assert "msgspec" in BACKENDS
    assert _accel is not None


# -- the accelerator takes what it handles ----------------------------------------------

# What the accelerator leaves to the reference by design (see _accel's docstring).
DECLINED_BY_DESIGN = {"ok-error-legacy", "ok-llm-gateway-response", "ok-unknown-type"}


@needs_msgspec
@pytest.mark.parametrize("path", SERVER_FIXTURES, ids=[p.stem for p in SERVER_FIXTURES])
def test_the_accelerator_takes_every_valid_fixture(path: Path) -> None:
    assert _accel is not None
    text = path.read_text(encoding="utf-8")
    for given_as in (text, text.encode()):
        event = _accel.parse_server_message(given_as)
        if path.stem in DECLINED_BY_DESIGN:
            assert event is None
            continue
        assert event is not None, f"the accelerator declined {path.name}"
        assert repr(event) == repr(_parse_reference(given_as))


def test_the_declined_fixtures_exist() -> None:
    assert {p.stem for p in SERVER_FIXTURES} >= DECLINED_BY_DESIGN


_HANDLED = st_aai.server_events().filter(
    lambda e: not isinstance(e, UnknownMessage | LLMGatewayResponse)
)


@needs_msgspec
@given(event=_HANDLED)
def test_the_accelerator_takes_every_valid_event_dumped(event: ServerEvent) -> None:
    assert _accel is not None
    text = dump_server_message(event)
    # It declines a text (strings included) with a long run of digits or a long
    # exponent: its documented limit, not a failure.
    assume(not _accel._may_hold_a_big_number(_accel.shapes(text.encode())))
    assert _accel.parse_server_message(text) == event


@needs_msgspec
def test_the_accelerator_declines_only_the_long_numbers() -> None:
    assert _accel is not None
    base = '{"warning_code":1,"warning":"w",%s"type":"Warning"}'
    taken = ['"x":123456789012345678,', '"x":1e99,', '"x":1E-999,', '"x":"e+400",', ""]
    for extra in taken:
        assert _accel.parse_server_message(base % extra) == ServerWarning(
            warning_code=1, warning="w"
        )
    # 1e+16 is a false alarm, and a number in a string too: the reference decides.
    declined = [
        '"x":1234567890123456789,',
        '"x":1e308,',
        '"x":1E+400,',
        '"x":"9e999",',
        '"x":1e+16,',
    ]
    for extra in declined:
        assert _accel.parse_server_message(base % extra) is None


@given(
    before=st.text(alphabet="x ,:[]", max_size=30),
    run=st.integers(1, 40),
    exponent=st.sampled_from(["", "e5", "E+12", "e-400", "e400", "E+0400"]),
    after=st.text(alphabet="x ,:[]", max_size=30),
)
def test_long_digit_runs_and_exponents_are_found(
    before: str, run: int, exponent: str, after: str
) -> None:
    accel = pytest.importorskip("aai_proto._accel")
    text = f"{before}{'7' * run}{exponent}{after}".encode()
    # A + counts as a digit: 1e+16 is a (documented) false alarm.
    long_exponent = len(exponent.lstrip("eE")) >= 3 and "-" not in exponent
    assert accel._may_hold_a_big_number(accel.shapes(text)) == (run >= 19 or long_exponent)


# -- no field the accelerator would build differently -----------------------------------


def _reachable_attrs_classes() -> set[type[Any]]:
    """Every attrs class reachable from the server events' field types."""
    seen: set[type[Any]] = set()
    todo: list[Any] = [*MESSAGE_TYPES, UnknownMessage]
    while todo:
        t = todo.pop()
        if isinstance(t, type) and attrs.has(t):
            if t in seen:
                continue
            seen.add(t)
            todo.extend(typing.get_type_hints(t).values())
        else:
            todo.extend(typing.get_args(t))
    return seen


def test_no_event_field_has_a_converter() -> None:
    # msgspec builds attrs instances without running converters: a converter on an
    # event field would make the accelerator's events differ from the reference's.
    classes = _reachable_attrs_classes()
    assert {"Turn", "Word", "SpeakerRevisionItem", "SessionConfiguration"} <= {
        c.__name__ for c in classes
    }
    with_converters = [
        f"{cls.__name__}.{a.name}"
        for cls in classes
        for a in attrs.fields(cls)
        if a.converter is not None
    ]
    assert with_converters == []


# -- differential -------------------------------------------------------------------------


@needs_msgspec
@given(text=st_aai.server_message_texts())
def test_valid_messages_agree(text: str) -> None:
    _agree(text)
    _agree(text.encode())


@needs_msgspec
@given(text=st_aai.malformed_server_message_texts())
def test_malformed_messages_agree(text: str) -> None:
    _agree(text)


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
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551617",
            "NaN",
            "Infinity",
            "-Infinity",
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
            "[" * 70 + "]" * 70,
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


@needs_msgspec
@given(text=_edge_texts())
def test_edge_values_agree(text: str) -> None:
    _agree(text)


@needs_msgspec
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
        '\ufeff{"type":"Termination","audio_duration_seconds":1,"session_duration_seconds":2}',
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
def test_encodings_duplicates_and_endings_agree(text: str | bytes) -> None:
    _agree(text)


@needs_msgspec
@pytest.mark.parametrize("digits", [18, 19, 20, 308, 309, 400, 4299, 4300, 4301, 5000])
@pytest.mark.parametrize("field", ["x", "expires_at"])
def test_huge_integers_agree(digits: int, field: str) -> None:
    number = "7" * digits
    _agree('{"id":"a","expires_at":1,"' + field + '":' + number + ',"type":"Begin"}')
    heartbeat = (
        '{"total_audio_received_ms":1,"total_duration_ms":1,"realtime_factor":'
        + number
        + ',"type":"Heartbeat"}'
    )
    _agree(heartbeat)


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
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551617",
    "-9223372036854775808",
    "-9223372036854775809",
    "7" * 400,
    "1E2",
    "1e+2",
    "NaN",
    "-Infinity",
    "true",
    '"1"',
]


def _number_texts(number: str) -> list[str]:
    return [
        '{"turn_order":1,"turn_is_formatted":true,"end_of_turn":true,"transcript":"",'
        '"end_of_turn_confidence":' + number + ',"words":[{"start":1,"end":2,"text":"a",'
        '"confidence":' + number + ',"word_is_final":true}],"type":"Turn"}',
        '{"total_audio_received_ms":' + number + ',"total_duration_ms":1,'
        '"realtime_factor":' + number + ',"type":"Heartbeat"}',
    ]


@needs_msgspec
@pytest.mark.parametrize("number", _NUMBERS)
def test_numbers_in_number_fields_agree(number: str) -> None:
    for text in _number_texts(number):
        _agree(text)


# -- what every way of parsing does -------------------------------------------------------


def _nested(depth: int, objects: bool = False) -> str:
    """A Begin whose unknown key nests ``depth`` arrays (or objects): ``depth + 1`` levels."""
    value = '{"a":' * depth + "1" + "}" * depth if objects else "[" * depth + "]" * depth
    return '{"id":"a","expires_at":1,"x":' + value + ',"type":"Begin"}'


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("depth", [1, 62, 63])
def test_nesting_up_to_the_limit_is_taken(name: str, depth: int) -> None:
    assert BACKENDS[name](_nested(depth)) == Begin(id="a", expires_at=1)
    assert BACKENDS[name](_nested(depth, objects=True)) == Begin(id="a", expires_at=1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("depth", [64, 199, 200, 1000, 3000, 100_000])
def test_nesting_beyond_the_limit_is_refused_on_every_interpreter(name: str, depth: int) -> None:
    # Refused by the limit, not by the decoder's recursion limit (which lets 3,000
    # levels through on CPython 3.13 and not on 3.11).
    for text in (_nested(depth), _nested(depth, objects=True)):
        with pytest.raises(
            RemoteProtocolError, match=r"^server message nesting deeper than 64 levels$"
        ):
            BACKENDS[name](text)


@pytest.mark.parametrize("name", NAMES)
def test_brackets_in_strings_are_not_nesting(name: str) -> None:
    strings = ['"' + "[" * 100 + '"', '"\\"' + "{" * 100 + '"', '"\\\\"', '"\\\\\\"[["']
    for value in strings:
        text = '{"id":"a","expires_at":1,"x":[' + value + ',[[[1]]]],"type":"Begin"}'
        assert BACKENDS[name](text) == Begin(id="a", expires_at=1)


@pytest.mark.parametrize("name", NAMES)
def test_an_int_field_takes_64_bits(name: str) -> None:
    for number in (2**63 - 1, -(2**63)):
        text = '{"id":"a","expires_at":' + str(number) + ',"type":"Begin"}'
        assert BACKENDS[name](text) == Begin(id="a", expires_at=number)
    for number in (2**63, -(2**63) - 1, 10**400):
        text = '{"id":"a","expires_at":' + str(number) + ',"type":"Begin"}'
        with pytest.raises(RemoteProtocolError, match=r"number out of range.* @ \$\.expires_at"):
            BACKENDS[name](text)


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
@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused_everywhere(name: str, number: str) -> None:
    for text in _number_texts(number):
        with pytest.raises(RemoteProtocolError, match="not valid JSON"):
            BACKENDS[name](text)
    for value in (number, f'[1, {{"a": {number}}}]'):
        text = '{"id":"a","expires_at":1,"x":' + value + ',"type":"Begin"}'
        with pytest.raises(RemoteProtocolError, match="not valid JSON"):
            BACKENDS[name](text)


@pytest.mark.parametrize("name", NAMES)
def test_huge_integers_outside_int_fields_are_what_json_reads(name: str) -> None:
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    taken = '{"id":"a","expires_at":1,"x":' + "7" * 400 + ',"type":"Begin"}'
    assert BACKENDS[name](taken) == Begin(id="a", expires_at=1)
    if limit:
        over = '{"id":"a","expires_at":1,"x":' + "7" * (limit + 1) + ',"type":"Begin"}'
        with pytest.raises(RemoteProtocolError, match="not valid JSON"):
            BACKENDS[name](over)


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


@pytest.mark.parametrize("name", NAMES)
def test_a_bytearray_is_read_as_bytes_are(name: str) -> None:
    text = b'{"audio_duration_seconds":1,"session_duration_seconds":2,"type":"Termination"}'
    parse: Callable[[bytearray], ServerEvent] = BACKENDS[name]  # type: ignore[assignment]
    assert parse(bytearray(text)) == _parse_reference(text)


def test_the_default_is_the_accelerated_backend_when_installed() -> None:
    if _accel is None:  # pragma: no cover - depends on what is installed
        assert NAMES == ["json"]
    else:
        assert NAMES == ["json", "msgspec"]
        assert BACKENDS["msgspec"] is parse_server_message
    assert BACKENDS["json"] is _parse_reference
