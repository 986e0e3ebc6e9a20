"""Parameters, events and messages are plain values: they pickle and copy, equal.

And the settings ``UpdateConfiguration`` may change are declared once, on
``StreamingParams``.
"""

from __future__ import annotations

import copy
import pickle
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_proto import (
    UPDATABLE_FIELDS,
    ConnectionClosed,
    InvalidParameter,
    LLMGatewayConfig,
    LLMGatewayMessage,
    StreamingError,
    StreamingParams,
    UnknownMessage,
    UpdateConfiguration,
)
from aai_proto._messages import _checked_as_params
from aai_proto._params import FrozenDict
from aai_proto.strategies import client_messages, server_events, streaming_params, words
from tests._values import assert_plain_value

# The settings an UpdateConfiguration may change, in the protocol's order (protocol notes, §2).
PROTOCOL_UPDATABLE = (
    "end_of_turn_confidence_threshold",
    "min_turn_silence",
    "max_turn_silence",
    "vad_threshold",
    "format_turns",
    "keyterms_prompt",
    "prompt",
    "agent_context",
    "filter_profanity",
    "interruption_delay",
    "turn_left_pad_ms",
    "language_codes",
    "session_heartbeat",
    "acknowledge_silence",
    "continuous_partials",
)


@given(streaming_params())
def test_streaming_params_are_plain_values(params: StreamingParams) -> None:
    assert_plain_value(params)
    hash(params)  # always hashable: ``extra`` takes no part in the hash
    for other in (pickle.loads(pickle.dumps(params)), copy.deepcopy(params)):
        assert other.extra == dict(params.extra)
        with pytest.raises(TypeError):
            other.extra["x_new"] = "v"  # type: ignore[index]


@given(server_events())
def test_server_events_are_plain_values(event: Any) -> None:
    assert_plain_value(event)


@given(client_messages())
def test_client_messages_are_plain_values(message: Any) -> None:
    assert_plain_value(message)
    hash(message)


@given(
    st.builds(
        ConnectionClosed,
        code=st.integers(1000, 4999),
        reason=st.text(max_size=20),
        error=st.none()
        | st.builds(
            StreamingError,
            st.integers(1000, 4999),
            st.text(max_size=20),
            st.none() | st.text(max_size=20),
        ),
    )
    | words()
)
def test_transport_events_and_nested_values_are_plain_values(value: Any) -> None:
    assert_plain_value(value)


def test_a_deprecated_name_stays_resolved_through_pickle_and_copy() -> None:
    params = StreamingParams(min_end_of_turn_silence_when_confident=300, extra={"x_a": "b"})
    update = UpdateConfiguration(min_end_of_turn_silence_when_confident=300)
    for value in (params, update):
        assert_plain_value(value)
        for other in (pickle.loads(pickle.dumps(value)), copy.deepcopy(value)):
            assert other.min_turn_silence == 300
            assert other.min_end_of_turn_silence_when_confident is None


def test_llm_gateway_config_is_a_plain_value() -> None:
    config = LLMGatewayConfig(
        model="m", messages=[{"role": "system", "content": "be brief"}], max_tokens=10
    )
    assert config.messages == (LLMGatewayMessage(role="system", content="be brief"),)
    assert_plain_value(config)
    assert_plain_value(StreamingParams(llm_gateway=config))


def test_unknown_message_data_is_copied_deeply() -> None:
    event = UnknownMessage(type="Future", data={"type": "Future", "items": [{"a": 1}]})
    assert_plain_value(event)


# -- the read-only mapping --------------------------------------------------------------


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.lists(st.integers(), max_size=2)))
def test_frozen_dict_is_a_plain_value_equal_to_any_equal_mapping(items: dict[str, Any]) -> None:
    frozen = FrozenDict(items)
    assert_plain_value(frozen)
    assert frozen == items
    assert items == frozen
    assert frozen == MappingProxyType(items)
    assert MappingProxyType(items) == frozen
    assert dict(frozen) == items
    assert list(frozen) == list(items)
    assert len(frozen) == len(items)
    assert frozen != {**items, "extra key": 1}
    assert {**items, "extra key": 1} != frozen


def test_frozen_dict_is_read_only() -> None:
    source = {"a": 1}
    frozen = FrozenDict(source)
    source["b"] = 2  # a copy of the items is kept
    assert frozen == {"a": 1}
    with pytest.raises(TypeError):
        frozen["a"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        del frozen["a"]  # type: ignore[attr-defined]
    for name in ("update", "pop", "popitem", "clear", "setdefault", "__ior__"):
        assert not hasattr(frozen, name)
    with pytest.raises(TypeError):
        hash(frozen)


def test_frozen_dict_reads_as_a_mapping() -> None:
    frozen = FrozenDict({"a": 1})
    assert frozen["a"] == 1
    assert frozen.get("b") is None
    assert "a" in frozen
    assert "b" not in frozen
    assert list(frozen.items()) == [("a", 1)]
    assert repr(frozen) == "FrozenDict({'a': 1})"
    assert FrozenDict() == {}
    assert frozen != [("a", 1)]
    assert frozen != FrozenDict({"a": 2})


# -- the updatable settings, declared once ------------------------------------------------


def test_updatable_fields_are_the_ones_the_protocol_lists() -> None:
    assert frozenset(PROTOCOL_UPDATABLE) == UPDATABLE_FIELDS
    # UpdateConfiguration writes them in the protocol's order.
    names = [a.name for a in attrs.fields(UpdateConfiguration)]
    assert [n for n in names if n in UPDATABLE_FIELDS] == list(PROTOCOL_UPDATABLE)


def test_update_configuration_takes_its_checks_from_streaming_params() -> None:
    params = {a.name: a for a in attrs.fields(StreamingParams)}
    updatable = {a.name for a in params.values() if a.metadata.get("updatable")}
    assert updatable == UPDATABLE_FIELDS | {"min_end_of_turn_silence_when_confident"}
    for a in attrs.fields(UpdateConfiguration):
        source = params[a.name]
        assert a.type == source.type
        assert a.validator is source.validator
        assert a.converter is source.converter
        assert a.metadata == source.metadata
        assert (a.repr, a.eq, a.hash) == (source.repr, source.eq, source.hash)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("vad_threshold", 1.5),
        ("end_of_turn_confidence_threshold", "0.5"),
        ("min_turn_silence", -1),
        ("max_turn_silence", True),
        ("format_turns", "true"),
        ("keyterms_prompt", "one two"),
        ("keyterms_prompt", ["x"] * 101),
        ("prompt", "x" * 1751),
        ("agent_context", "x" * 1751),
        ("interruption_delay", 1.0),
        ("language_codes", ["en"] * 11),
        ("session_heartbeat", 1),
        ("min_end_of_turn_silence_when_confident", -5),
    ],
)
def test_update_configuration_refuses_what_streaming_params_refuses(name: str, value: Any) -> None:
    with pytest.raises(InvalidParameter) as from_params:
        StreamingParams(**{name: value})
    with pytest.raises(InvalidParameter) as from_update:
        UpdateConfiguration(**{name: value})
    assert str(from_update.value) == str(from_params.value)


_SETTING_VALUES = {
    "end_of_turn_confidence_threshold": st.floats(0, 1) | st.integers(0, 1),
    "min_turn_silence": st.integers(0, 10_000),
    "max_turn_silence": st.integers(0, 10_000),
    "vad_threshold": st.floats(0, 1),
    "format_turns": st.booleans(),
    "keyterms_prompt": st.lists(st.text(max_size=5), max_size=3),
    "prompt": st.text(max_size=20),
    "agent_context": st.text(max_size=20),
    "filter_profanity": st.booleans(),
    "interruption_delay": st.integers(0, 1000),
    "turn_left_pad_ms": st.integers(0, 1000),
    "language_codes": st.lists(st.sampled_from(["en", "es"]), max_size=2),
    "session_heartbeat": st.booleans(),
    "acknowledge_silence": st.booleans(),
    "continuous_partials": st.booleans(),
}


@given(st.fixed_dictionaries({}, optional=_SETTING_VALUES))
def test_any_update_holds_what_streaming_params_holds(settings: dict[str, Any]) -> None:
    update = UpdateConfiguration(**settings)
    params = StreamingParams(**settings)
    expected = {name: getattr(params, name) for name in settings}
    assert update.fields() == {k: list(v) if type(v) is tuple else v for k, v in expected.items()}
    assert_plain_value(update)


def _fields(cls: type) -> list[attrs.Attribute[Any]]:
    return list(attrs.fields(cls))


def test_a_class_that_names_other_settings_is_refused_when_made() -> None:
    with pytest.raises(TypeError, match=r"^Partial must have the updatable settings"):

        @attrs.frozen(kw_only=True, field_transformer=_checked_as_params)
        class Partial:
            vad_threshold: float | None = None


def test_a_setting_that_is_not_updatable_is_refused() -> None:
    fields = _fields(UpdateConfiguration)
    not_updatable = attrs.fields(StreamingParams).speech_model
    with pytest.raises(TypeError, match=r"not updatable \['speech_model'\]"):
        _checked_as_params(UpdateConfiguration, [*fields, not_updatable])
    with pytest.raises(TypeError, match=r"missing \['vad_threshold'\]"):
        _checked_as_params(UpdateConfiguration, [a for a in fields if a.name != "vad_threshold"])


def test_a_setting_of_another_type_is_refused() -> None:
    fields = [
        a.evolve(type="str | None") if a.name == "vad_threshold" else a
        for a in _fields(UpdateConfiguration)
    ]
    with pytest.raises(TypeError, match=r"UpdateConfiguration\.vad_threshold is str \| None"):
        _checked_as_params(UpdateConfiguration, fields)
    fields = [
        a.evolve(converter=str) if a.name == "prompt" else a for a in _fields(UpdateConfiguration)
    ]
    with pytest.raises(TypeError, match=r"UpdateConfiguration\.prompt is str \| None \(converter"):
        _checked_as_params(UpdateConfiguration, fields)


def test_the_documented_errors_pickle() -> None:
    from aai_proto import InvalidParameter, LocalProtocolError, RemoteProtocolError, StreamingError
    from aai_replay import SessionFormatError

    errors: list[Exception] = [
        InvalidParameter("sample_rate", "must be at least 8000"),
        StreamingError(3006, "See Error message for details", "Invalid 'x'"),
        RemoteProtocolError("unexpected Turn in state CONNECTING"),
        LocalProtocolError("can't send_audio in state TERMINATING"),
        SessionFormatError("a.jsonl", 3, "'t' goes backwards"),
    ]
    for error in errors:
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error)
        assert str(again) == str(error)
        assert vars(again) == vars(error)
