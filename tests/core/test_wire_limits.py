"""The limits of parsing (size, nesting, numbers), the same on every path and interpreter.

Each test runs on every way of parsing server messages (the reference, and the
accelerated default when msgspec is installed) and on ``parse_client_message``.
The fuzz test checks h11's invariant: a mutated message is parsed or refused with
``RemoteProtocolError``, never another exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aai_proto
from aai_proto import (
    MAX_MESSAGE_BYTES,
    MAX_NESTING_DEPTH,
    Begin,
    Heartbeat,
    KeepAlive,
    RemoteProtocolError,
    Terminate,
    Turn,
    UnknownMessage,
    UpdateConfiguration,
    Word,
    dump_client_message,
    dump_server_message,
    parse_client_message,
    parse_server_message,
)
from aai_proto import strategies as st_aai
from aai_proto._wire import BACKENDS, _deepest, _nesting_depth

Parse = Callable[..., object]
PARSERS: dict[str, Parse] = {
    **{f"server-{name}": parse for name, parse in BACKENDS.items()},
    "client": parse_client_message,
}
BEGIN = '{"id":"a","expires_at":1,"x":%s,"type":"Begin"}'
KEEP_ALIVE = '{"type":"KeepAlive","x":%s}'


def _message(parser: str, value: str) -> str:
    """A valid message of the parser's side whose unknown key ``x`` holds ``value``."""
    return (KEEP_ALIVE if parser == "client" else BEGIN) % value


def _refusal(parse: Parse, text: str | bytes, **limits: int) -> str | None:
    """What ``parse`` says refusing ``text``, or ``None`` if it took it (any other exception
    fails the test)."""
    try:
        parse(text, **limits)
    except RemoteProtocolError as exc:
        return str(exc)
    return None


def _what(parser: str) -> str:
    return "client message" if parser == "client" else "server message"


def test_the_limits_are_exported() -> None:
    assert MAX_MESSAGE_BYTES == 1_048_576
    assert MAX_NESTING_DEPTH == 64
    assert {"MAX_MESSAGE_BYTES", "MAX_NESTING_DEPTH"} <= set(aai_proto.__all__)


# -- size ---------------------------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
def test_a_message_at_the_size_limit_is_taken_one_byte_more_is_not(parser: str) -> None:
    parse = PARSERS[parser]
    empty = _message(parser, '""')
    at_limit = _message(parser, '"' + "a" * (MAX_MESSAGE_BYTES - len(empty)) + '"')
    assert len(at_limit) == MAX_MESSAGE_BYTES
    parse(at_limit)
    parse(at_limit.encode())
    over = _message(parser, '"' + "a" * (MAX_MESSAGE_BYTES - len(empty) + 1) + '"')
    for text in (over, over.encode()):
        with pytest.raises(RemoteProtocolError) as info:
            parse(text)
        assert str(info.value) == (
            f"{_what(parser)} of 1048577 bytes exceeds the limit of 1048576 bytes"
        )


@pytest.mark.parametrize("parser", PARSERS)
def test_the_size_is_counted_in_utf8_bytes(parser: str) -> None:
    parse = PARSERS[parser]
    text = _message(parser, '"' + "\u20ac" * 100 + '"')  # 3 bytes each in UTF-8
    size = len(text.encode())
    parse(text, max_bytes=size)
    parse(text.encode(), max_bytes=size)
    with pytest.raises(RemoteProtocolError, match=f"of {size} bytes exceeds the limit of"):
        parse(text, max_bytes=size - 1)
    with pytest.raises(RemoteProtocolError, match=f"of {size} bytes exceeds the limit of"):
        parse(text.encode(), max_bytes=size - 1)
    # bytes are counted as given, whatever their encoding
    utf16 = text.encode("utf-16")
    parse(utf16, max_bytes=len(utf16))
    with pytest.raises(RemoteProtocolError, match=f"of {len(utf16)} bytes exceeds"):
        parse(utf16, max_bytes=len(utf16) - 1)


def test_a_lone_surrogate_counts_three_bytes() -> None:
    text = BEGIN % '"\ud800"'
    size = len(text) + 2
    assert parse_server_message(text, max_bytes=size) == Begin(id="a", expires_at=1)
    with pytest.raises(RemoteProtocolError, match=f"of {size} bytes"):
        parse_server_message(text, max_bytes=size - 1)


# -- depth --------------------------------------------------------------------------------


def _arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def _objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("nest", [_arrays, _objects])
def test_64_levels_are_taken_65_are_not(parser: str, nest: Callable[[int], str]) -> None:
    parse = PARSERS[parser]
    parse(_message(parser, nest(63)))  # the message itself is the first level
    for depth in (64, 65, 3000, 100_000):
        with pytest.raises(RemoteProtocolError) as info:
            parse(_message(parser, nest(depth)))
        assert str(info.value) == f"{_what(parser)} nesting deeper than 64 levels"


@pytest.mark.parametrize("parser", PARSERS)
def test_the_depth_limit_is_set_per_call(parser: str) -> None:
    parse = PARSERS[parser]
    parse(_message(parser, _arrays(9)), max_depth=10)
    with pytest.raises(RemoteProtocolError, match="nesting deeper than 10 levels"):
        parse(_message(parser, _arrays(10)), max_depth=10)
    parse(_message(parser, _arrays(199)), max_depth=200)
    with pytest.raises(RemoteProtocolError, match="nesting deeper than 1 levels"):
        parse(_message(parser, "[]"), max_depth=1)


@pytest.mark.parametrize("parser", PARSERS)
def test_depth_counts_brackets_outside_strings_only(parser: str) -> None:
    parse = PARSERS[parser]
    for inside in ('"' + "[" * 500 + '"', '"\\"' + "{" * 500 + '"', '"\\\\\\"' + "[" * 99 + '"'):
        parse(_message(parser, f"[{inside}, {_arrays(62)}]"))
        parse(_message(parser, f"[{inside}, {_arrays(62)}]").encode("utf-16"))
    # A backslash pair ends the string before the brackets.
    with pytest.raises(RemoteProtocolError, match="nesting deeper than 64"):
        parse(_message(parser, '["\\\\", ' + _arrays(64) + "]"))


@pytest.mark.parametrize("parser", PARSERS)
def test_bytes_json_cannot_decode_are_invalid_json_whatever_their_brackets(parser: str) -> None:
    text = ('{"x":' + "[" * 70).encode("utf-16-le") + b"\x00"  # an odd length: not UTF-16
    with pytest.raises(RemoteProtocolError, match="not valid JSON"):
        PARSERS[parser](text)


@pytest.mark.parametrize("parser", PARSERS)
def test_a_long_message_of_many_shallow_values_is_not_deep(parser: str) -> None:
    words = json.dumps([{"text": "[a]", "n": [1, {"b": []}]}] * 5000)
    PARSERS[parser](_message(parser, words))


_WORD = '{"start":1,"end":2,"text":"a","confidence":0.5,"word_is_final":true}'


def _long_turn(
    words: int, *, first: str = "", extra: str = "", word_extra: str = "", text: str = "a"
) -> str:
    """A Turn of ``words`` words (more brackets than the depth limit), the service's way."""
    word = _WORD[:-1] + "%s}"
    word = word.replace('"a"', json.dumps(text))
    items = [word % (word_extra if i == words // 2 else "") for i in range(words)]
    return (
        '{"turn_order":1,"turn_is_formatted":false,"end_of_turn":false,"transcript":"",'
        f'"end_of_turn_confidence":0,{first}"words":[{",".join(items)}]{extra},"type":"Turn"}}'
    )


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_long_turns_are_measured_exactly(name: str) -> None:
    parse = BACKENDS[name]
    turn = parse(_long_turn(500, text="[[[{{{" * 20))
    assert isinstance(turn, Turn)
    assert len(turn.words) == 500
    # At the message's level: 1 + 63 levels; in a word: 3 + 61.
    parse(_long_turn(100, extra=',"x":' + _arrays(63)))
    parse(_long_turn(100, word_extra=',"x":' + _objects(61)))
    parse(_long_turn(100, first=f'"words":[{_WORD[:-1]},"x":{_objects(61)}}}],'))
    for text in (
        _long_turn(100, extra=',"x":' + _arrays(64)),
        _long_turn(100, word_extra=',"x":' + _objects(62)),
        _long_turn(100, word_extra=',"x":' + _arrays(62), text="]]]]]]" * 50),
        # A duplicate "words" holding the depth: the last one wins, the first still counts.
        _long_turn(100, first=f'"words":[{_WORD[:-1]},"x":{_objects(62)}}}],'),
    ):
        with pytest.raises(RemoteProtocolError, match="nesting deeper than 64 levels"):
            parse(text)


def _depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth_of, value.values()), default=0)
    return 0


_TRICKY_TEXT = st.text(alphabet='[]{}"\\/ab\u00e9\u20ac\U0001f600\n', max_size=8)
_JSON_VALUES = st.recursive(
    st.none() | st.integers() | _TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY_TEXT, inner, max_size=3),
    max_leaves=30,
)


@given(value=_JSON_VALUES, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_the_depth_is_exact_on_valid_json(value: Any, ascii_only: bool, indent: int | None) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert _nesting_depth(text.encode()) == _depth_of(value)


def _naive_deepest(brackets: bytes) -> int:
    depth = deepest = 0
    for c in brackets:
        depth += 1 if c in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


@given(brackets=st.binary().map(lambda b: bytes(b"[]"[x & 1] for x in b)))
def test_the_depth_of_any_brackets_is_never_underestimated(brackets: bytes) -> None:
    assert _deepest(brackets) == _naive_deepest(brackets)
    assert _nesting_depth(brackets) >= _naive_deepest(brackets)


@given(depths=st.lists(st.integers(0, 80), max_size=30))
def test_the_depth_of_balanced_brackets_is_exact(depths: list[int]) -> None:
    brackets = b"".join(b"[" * d + b"]" * d for d in depths)
    assert _nesting_depth(brackets) == max(depths, default=0)
    assert _nesting_depth(b"{" + brackets.replace(b"[]", b"[{}]") + b"}") == 1 + max(
        (d + 1 if d else 0 for d in depths), default=0
    )


@given(text=st.text(alphabet='[]{}"\\ a1:,', max_size=60))
def test_any_text_is_parsed_or_refused(text: str) -> None:
    for parse in PARSERS.values():
        _refusal(parse, text, max_depth=3)


# -- the limit arguments ------------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("name", ["max_bytes", "max_depth"])
def test_the_limits_must_be_positive_ints(parser: str, name: str) -> None:
    parse = PARSERS[parser]
    text = _message(parser, "1")
    for wrong in (True, 1.0, "10", None):
        with pytest.raises(TypeError, match=f"{name} must be an int"):
            parse(text, **{name: wrong})
    for wrong in (0, -1):
        with pytest.raises(ValueError, match=f"{name} must be at least 1"):
            parse(text, **{name: wrong})
    with pytest.raises(TypeError):
        parse(text, 100)  # keyword-only


@pytest.mark.parametrize("parser", PARSERS)
def test_other_inputs_are_a_type_error(parser: str) -> None:
    with pytest.raises(TypeError, match="must be str, bytes or bytearray, not memoryview"):
        PARSERS[parser](memoryview(b"{}"))


# -- numbers ------------------------------------------------------------------------------

NON_FINITE = ["1e400", "-1e400", "1E+309", "NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("number", NON_FINITE)
def test_non_finite_numbers_are_refused_anywhere(parser: str, number: str) -> None:
    parse = PARSERS[parser]
    for value in (number, f"[{number}]", f'{{"a": [1, {{"b": {number}}}]}}'):
        with pytest.raises(RemoteProtocolError, match="not valid JSON"):
            parse(_message(parser, value))


@pytest.mark.parametrize("number", NON_FINITE)
def test_non_finite_numbers_are_refused_in_client_settings(number: str) -> None:
    with pytest.raises(RemoteProtocolError, match="not valid JSON"):
        parse_client_message(f'{{"type":"UpdateConfiguration","vad_threshold":{number}}}')


def test_tiny_numbers_are_zero_not_an_error() -> None:
    heartbeat = parse_server_message(
        '{"total_audio_received_ms":1,"total_duration_ms":1,"realtime_factor":1e-400,'
        '"max_speech_probability":-4.9e-330,"type":"Heartbeat"}'
    )
    assert heartbeat == Heartbeat(
        total_audio_received_ms=1,
        total_duration_ms=1,
        realtime_factor=0.0,
        max_speech_probability=0.0,
    )


@pytest.mark.parametrize(
    ("setting", "number"),
    [
        ("vad_threshold", "7" * 400),
        ("end_of_turn_confidence_threshold", "-" + "7" * 400),
        ("min_turn_silence", str(2**63)),
        ("max_turn_silence", str(-(2**63) - 1)),
        ("interruption_delay", "9" * 400),
        ("min_end_of_turn_silence_when_confident", str(2**64)),
    ],
)
def test_client_numbers_out_of_range_are_refused(setting: str, number: str) -> None:
    text = f'{{"type":"UpdateConfiguration","{setting}":{number}}}'
    with pytest.raises(RemoteProtocolError) as info:
        parse_client_message(text)
    assert str(info.value).startswith(
        f"invalid UpdateConfiguration: Invalid '{setting}': number out of range, got "
    )


def _update(setting: str, number: int) -> str:
    return f'{{"type":"UpdateConfiguration","{setting}":{number}}}'


def test_client_numbers_in_range_are_checked_as_before() -> None:
    assert parse_client_message(_update("min_turn_silence", 2**63 - 1)) == UpdateConfiguration(
        min_turn_silence=2**63 - 1
    )
    with pytest.raises(RemoteProtocolError, match="must be between 0 and 1"):
        parse_client_message(_update("vad_threshold", 2**80))
    with pytest.raises(RemoteProtocolError, match="must be at least 0"):
        parse_client_message(_update("min_turn_silence", -(2**63)))


def test_the_converter_refuses_non_finite_floats() -> None:
    converter = aai_proto.make_converter()
    word = {"start": 1, "end": 2, "text": "a", "word_is_final": True}
    assert converter.structure({**word, "confidence": 1}, Word).confidence == 1.0
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError, match="number out of range"):
            converter.structure({**word, "confidence": bad}, Word)


# -- dumping --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_dumping_a_non_finite_number_is_a_value_error(bad: float) -> None:
    event = Heartbeat(total_audio_received_ms=1, total_duration_ms=1, realtime_factor=bad)
    with pytest.raises(ValueError, match=r"^cannot write Heartbeat message as JSON: Out of range"):
        dump_server_message(event)
    unknown = UnknownMessage(type="New", data={"type": "New", "x": [1, {"y": bad}]})
    with pytest.raises(ValueError, match=r"^cannot write New message as JSON"):
        dump_server_message(unknown)


def test_dumping_a_client_message_never_writes_nan() -> None:
    assert dump_client_message(KeepAlive()) == '{"type":"KeepAlive"}'
    message = UpdateConfiguration(vad_threshold=0.5)
    object.__setattr__(message, "vad_threshold", math.nan)  # what the validators prevent
    with pytest.raises(ValueError, match=r"^cannot write UpdateConfiguration message as JSON"):
        dump_client_message(message)


# -- fuzz: mutated messages are parsed or refused, nothing else ------------------------------


class _Raw(str):
    """A JSON text written as it is: a number no json.dumps would write, or deep nesting."""


def _write(value: Any) -> str:
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(map(_write, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_write(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


_MUTATIONS = st.one_of(
    st.integers(min_value=2**62, max_value=2**66).map(str),
    st.integers(min_value=-(2**66), max_value=-(2**62)).map(str),
    st.integers(1, 5000).map(lambda n: "9" * n),
    st.integers(1, 400).map(lambda n: "1" * n + ".5"),
    st.integers(300, 330).map(lambda n: f"1e{n}"),
    st.sampled_from(
        [
            *NON_FINITE,
            "1e-400",
            "-0.0",
            "4.9e-324",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "-9223372036854775809",
        ]
    ),
    st.integers(1, 80).map(_arrays),
    st.integers(1, 80).map(_objects),
    st.just("[" * 5000 + "]" * 5000),
    st.floats(allow_nan=False).map(json.dumps),
)


@st.composite
def _mutated(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> tuple[str, str]:
    """A valid message with one value, anywhere, replaced or added: (text, the new value)."""
    data = json.loads(draw(texts))
    raw = _Raw(draw(_MUTATIONS))
    # Walk down to a random container, then replace one of its values or add a key.
    node: Any = data
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        children = [k for k in keys if isinstance(node[k], dict | list)]
        if not children or draw(st.booleans()):
            break
        node = node[draw(st.sampled_from(children))]
    if isinstance(node, dict):
        key = draw(st.sampled_from([*node, "unknown_key"]))
        node[key] = raw
    elif node:
        node[draw(st.integers(0, len(node) - 1))] = raw
    else:
        node.append(raw)
    return _write(data), raw


def _non_finite(raw: str) -> bool:
    """Whether the JSON text ``raw`` is a float literal beyond a float's range (or NaN)."""
    if raw in NON_FINITE:
        return True
    if raw[0] in "[{" or not any(c in raw for c in ".eE"):
        return False  # nesting, or an integer
    return math.isinf(float(raw))


def _check(parse: Parse, text: str, raw: str) -> None:
    """``parse`` takes ``text`` (as str and as bytes) or refuses it, and refuses it if it must."""
    must_refuse = _non_finite(raw)
    too_deep = _nesting_depth(text.encode()) > MAX_NESTING_DEPTH
    for given_as in (text, text.encode()):
        refusal = _refusal(parse, given_as)
        if refusal is None:
            assert not must_refuse
            assert not too_deep
        else:
            assert ("nesting deeper than 64 levels" in refusal) == too_deep


@given(mutated=_mutated(st_aai.server_message_texts()))
def test_mutated_server_messages_are_parsed_or_refused(mutated: tuple[str, str]) -> None:
    text, raw = mutated
    for parse in BACKENDS.values():
        _check(parse, text, raw)


@given(mutated=_mutated(st_aai.client_message_texts()))
def test_mutated_client_messages_are_parsed_or_refused(mutated: tuple[str, str]) -> None:
    text, raw = mutated
    _check(parse_client_message, text, raw)


@given(text=st_aai.malformed_client_message_texts(), raw=_MUTATIONS)
def test_malformed_client_messages_with_big_numbers_are_refused(text: str, raw: str) -> None:
    for candidate in (text, text.replace("1", raw, 1), text.replace("0", raw, 1)):
        _refusal(parse_client_message, candidate)


def test_terminate_takes_no_fields_but_unknown_keys_are_still_read() -> None:
    assert parse_client_message('{"type":"Terminate","x":1e308}') == Terminate()
    with pytest.raises(RemoteProtocolError, match="not valid JSON"):
        parse_client_message('{"type":"Terminate","x":1e309}')
