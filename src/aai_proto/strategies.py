"""Hypothesis strategies for the protocol's messages and parameters.

The generators aai-proto's own tests use, for fuzzing your code with them::

    from hypothesis import given
    from aai_proto import strategies as st_aai

    @given(st_aai.server_message_texts())
    def test_my_handler_survives(text): ...

Needs Hypothesis (``pip install 'aai-proto[hypothesis]'``).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, get_args

import attrs
from hypothesis import strategies as st

from ._events import (
    Begin,
    Heartbeat,
    LLMGatewayResponse,
    ServerError,
    ServerEvent,
    ServerWarning,
    SessionConfiguration,
    Silence,
    SpeakerRevision,
    SpeakerRevisionItem,
    SpeechStarted,
    Termination,
    Turn,
    UnknownMessage,
    Word,
)
from ._messages import ClientMessage, ForceEndpoint, KeepAlive, Terminate, UpdateConfiguration
from ._params import (
    Domain,
    Encoding,
    LLMGatewayConfig,
    LLMGatewayMessage,
    Mode,
    PiiSubstitution,
    StreamingParams,
    VoiceFocus,
)
from ._wire import _CLIENT_TYPES, _SERVER_TYPES, dump_client_message, dump_server_message

__all__ = [
    "audio_writes",
    "begins",
    "client_message_texts",
    "client_messages",
    "malformed_client_message_texts",
    "malformed_server_message_texts",
    "server_events",
    "server_message_texts",
    "streaming_params",
    "turns",
    "words",
]

_ints = st.integers(min_value=0, max_value=2**31)
_unit = st.floats(min_value=0.0, max_value=1.0)
_text = st.text(max_size=40)
_labels = st.sampled_from(["A", "B", "C", "UNKNOWN"])
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def words() -> st.SearchStrategy[Word]:
    """Valid ``Word`` values."""
    return st.builds(
        Word,
        start=_ints,
        end=_ints,
        text=_text,
        confidence=_unit,
        word_is_final=st.booleans(),
        speaker=_opt(_labels),
    )


def turns(turn_order: st.SearchStrategy[int] = _ints) -> st.SearchStrategy[Turn]:
    """Valid ``Turn`` events, of any era's shape."""
    return st.builds(
        Turn,
        turn_order=turn_order,
        turn_is_formatted=st.booleans(),
        end_of_turn=st.booleans(),
        transcript=_text,
        end_of_turn_confidence=_unit,
        words=st.lists(words(), max_size=6).map(tuple),
        utterance=_opt(_text),
        language_code=_opt(st.sampled_from(["en", "es", "de", "fr"])),
        language_confidence=_opt(_unit),
        speaker_label=_opt(_labels),
        speaker_confidence=_opt(_unit),
    )


def begins() -> st.SearchStrategy[Begin]:
    """Valid ``Begin`` events."""
    return st.builds(
        Begin,
        id=st.uuids().map(str),
        expires_at=_ints,
        configuration=_opt(
            st.builds(
                SessionConfiguration,
                model=_opt(_text),
                mode=_opt(_text),
                api_version=_opt(_text),
            )
        ),
    )


def _unknown_messages() -> st.SearchStrategy[UnknownMessage]:
    names = st.text(min_size=1, max_size=20).filter(lambda t: t not in _SERVER_TYPES)
    return names.flatmap(
        lambda name: st.dictionaries(_text.filter(lambda k: k != "type"), _json, max_size=4).map(
            lambda d: UnknownMessage(type=name, data={**d, "type": name})
        )
    )


def server_events() -> st.SearchStrategy[ServerEvent]:
    """Valid events of every server message type, ``UnknownMessage`` included."""
    revision_items = st.builds(
        SpeakerRevisionItem,
        turn_order=_ints,
        speaker_label=_opt(_labels),
        words=st.lists(words(), max_size=3).map(tuple),
    )
    return st.one_of(
        begins(),
        turns(),
        st.builds(SpeechStarted, timestamp=_ints, confidence=_opt(_unit)),
        st.builds(Termination, audio_duration_seconds=_ints, session_duration_seconds=_ints),
        st.builds(ServerError, error_code=_opt(st.integers(1000, 4999)), error=_text),
        st.builds(ServerWarning, warning_code=_ints, warning=_text),
        st.builds(
            Heartbeat,
            total_audio_received_ms=_ints,
            total_duration_ms=_ints,
            realtime_factor=st.floats(min_value=0, max_value=1e6),
            max_speech_probability=_opt(_unit),
        ),
        st.builds(Silence, start_ms=_ints, end_ms=_ints),
        st.builds(SpeakerRevision, revisions=st.lists(revision_items, max_size=3).map(tuple)),
        st.builds(LLMGatewayResponse, turn_order=_ints, transcript=_text, data=_json),
        _unknown_messages(),
    )


def _field_names(cls: type) -> set[str]:
    return {a.name for a in attrs.fields(cls)} if attrs.has(cls) else set()


# The names a message may use: an "unknown" key must be none of them, or an optional
# field left out (an UpdateConfiguration without format_turns) could come back as
# noise with a value of the wrong type (Hypothesis also draws names from our source).
_KNOWN_KEYS = frozenset(
    {"type", "error"}.union(
        *(_field_names(cls) for cls in (*_SERVER_TYPES.values(), *_CLIENT_TYPES.values())),
        _field_names(Word),
        _field_names(StreamingParams),
    )
)


def _with_noise(text: str, draw: st.DrawFn) -> str:
    """Reorder the keys of a JSON object and add unknown ones, as newer servers do."""
    data = json.loads(text)
    unknown = st.text(min_size=1, max_size=12).filter(lambda k: k not in _KNOWN_KEYS)
    extra = draw(st.dictionaries(unknown, _json, max_size=3))
    merged = {**{k: v for k, v in extra.items() if k not in data}, **data}
    keys = draw(st.permutations(list(merged)))
    return json.dumps(
        {k: merged[k] for k in keys}, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    )


@st.composite
def server_message_texts(draw: st.DrawFn) -> str:
    """Valid server text frames: any key order, any spacing, unknown keys added."""
    return _with_noise(dump_server_message(draw(server_events())), draw)


def _wrong_value(value: Any) -> st.SearchStrategy[Any]:
    """JSON values of another type than ``value``'s (an int is a fine float, so never that)."""
    if isinstance(value, bool):
        return st.sampled_from([0, 1, "true", []])
    if isinstance(value, int | float):
        return st.sampled_from(["1", True, [], {}])
    if isinstance(value, str):
        return st.sampled_from([1, 0.5, False, [], {}])
    return st.sampled_from([1, "x", True])


# Fields whose value may be any JSON: no wrong type exists.
_ANY_TYPED = frozenset({("LLMGatewayResponse", "data")})


@st.composite
def malformed_server_message_texts(draw: st.DrawFn) -> str:
    """Server text frames that are not valid messages: each must be refused.

    Bad JSON, JSON that is not an object, a missing ``type`` (without the legacy
    ``error``), a required field removed, or a field with a value of a wrong type.
    """
    kind = draw(st.sampled_from(["not_json", "not_object", "no_type", "missing", "wrong_type"]))
    if kind == "not_json":
        text: str = draw(st.text(max_size=30).filter(_is_not_json))
        return text
    if kind == "not_object":
        return json.dumps(draw(st.lists(_json, max_size=3) | _json_scalars))
    event = draw(server_events().filter(lambda e: not isinstance(e, UnknownMessage)))
    data = json.loads(dump_server_message(event))
    if kind == "no_type":
        data.pop("type")
        data.pop("error", None)
        data[draw(st.sampled_from(["Type", "kind"]))] = event.type
        return json.dumps(data)
    cls = _SERVER_TYPES[event.type]
    fields = [a.name for a in attrs.fields(cls) if (event.type, a.name) not in _ANY_TYPED]
    required = [a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING]
    if kind == "missing" and required:
        del data[draw(st.sampled_from(required))]
        return json.dumps(data)
    # Every known type has a field set (optional ones at None are left out when dumped).
    present = [name for name in fields if data.get(name) is not None]
    name = draw(st.sampled_from(present))
    # None is left out: for an optional field it means the same as absent.
    data[name] = draw(_wrong_value(data[name]))
    return json.dumps(data)


def _is_not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def client_messages() -> st.SearchStrategy[ClientMessage]:
    """Valid client messages of every type."""
    updates = st.builds(
        UpdateConfiguration,
        end_of_turn_confidence_threshold=_opt(_unit),
        min_turn_silence=_opt(st.integers(0, 10_000)),
        max_turn_silence=_opt(st.integers(0, 10_000)),
        vad_threshold=_opt(_unit),
        format_turns=_opt(st.booleans()),
        keyterms_prompt=_opt(st.lists(_text, max_size=5).map(tuple)),
        prompt=_opt(_text),
        filter_profanity=_opt(st.booleans()),
        language_codes=_opt(st.lists(st.sampled_from(["en", "es"]), max_size=2).map(tuple)),
    )
    return st.one_of(st.just(Terminate()), st.just(ForceEndpoint()), st.just(KeepAlive()), updates)


@st.composite
def client_message_texts(draw: st.DrawFn) -> str:
    """Valid client text frames, in any key order and spacing."""
    return _with_noise(dump_client_message(draw(client_messages())), draw)


@st.composite
def malformed_client_message_texts(draw: st.DrawFn) -> str:
    """Client text frames a server must refuse (``Error`` 3006)."""
    kind = draw(st.sampled_from(["not_json", "not_object", "bad_type", "bad_setting"]))
    if kind == "not_json":
        text: str = draw(st.text(max_size=30).filter(_is_not_json))
        return text
    if kind == "not_object":
        return json.dumps(draw(st.lists(_json, max_size=3) | _json_scalars))
    if kind == "bad_type":
        bad = draw(_json.filter(lambda v: not (isinstance(v, str) and v in _CLIENT_TYPES)))
        return json.dumps({"type": bad})
    name, value = draw(
        st.sampled_from(
            [
                ("vad_threshold", 1.5),
                ("vad_threshold", "0.5"),
                ("format_turns", "true"),
                ("min_turn_silence", -1),
                ("keyterms_prompt", "one two"),
                ("prompt", "x" * 1751),
            ]
        )
    )
    return json.dumps({"type": "UpdateConfiguration", name: value})


def streaming_params() -> st.SearchStrategy[StreamingParams]:
    """Valid ``StreamingParams``, with every field set or unset."""
    pcm = st.sampled_from(["pcm_s16le", "pcm_mulaw"])
    other = st.sampled_from([e for e in get_args(Encoding) if not e.startswith("pcm")])
    audio = st.one_of(
        st.tuples(pcm, st.integers(8000, 192_000)),
        st.tuples(other, _opt(st.integers(8000, 48_000))),
    )
    short = st.text(max_size=20)
    llm = st.builds(
        LLMGatewayConfig,
        model=short,
        messages=st.lists(
            st.builds(LLMGatewayMessage, role=st.sampled_from(["system", "user"]), content=_text),
            max_size=2,
        ).map(tuple),
        max_tokens=st.integers(1, 4096),
    )
    extra_names = st.from_regex(r"x_[a-z_]{1,10}", fullmatch=True)
    return audio.flatmap(
        lambda enc_rate: st.builds(
            StreamingParams,
            encoding=st.just(enc_rate[0]),
            sample_rate=st.just(enc_rate[1]),
            speech_model=_opt(
                st.sampled_from(["universal-streaming-english", "u3-rt-pro"]) | short
            ),
            format_turns=_opt(st.booleans()),
            end_of_turn_confidence_threshold=_opt(_unit),
            min_turn_silence=_opt(st.integers(0, 10_000)),
            max_turn_silence=_opt(st.integers(0, 10_000)),
            vad_threshold=_opt(_unit),
            keyterms_prompt=_opt(st.lists(_text, max_size=5).map(tuple)),
            prompt=_opt(_text),
            agent_context=_opt(_text),
            language_detection=_opt(st.booleans()),
            language_codes=_opt(
                st.lists(st.sampled_from(["en", "es", "fr"]), max_size=3).map(tuple)
            ),
            inactivity_timeout=_opt(st.integers(5, 3600)),
            speaker_labels=_opt(st.booleans()),
            max_speakers=_opt(st.integers(1, 10)),
            redact_pii=_opt(st.booleans()),
            redact_pii_policies=_opt(
                st.lists(st.sampled_from(["person_name", "email_address"]), max_size=2).map(tuple)
            ),
            redact_pii_sub=_opt(st.sampled_from(get_args(PiiSubstitution))),
            mode=_opt(st.sampled_from(get_args(Mode))),
            domain=_opt(st.sampled_from(get_args(Domain))),
            voice_focus=_opt(st.sampled_from(get_args(VoiceFocus))),
            voice_focus_threshold=_opt(_unit),
            webhook_url=_opt(st.just("https://example.com/hook?a=1&b=2")),
            llm_gateway=_opt(llm),
            extra=st.dictionaries(extra_names, short, max_size=2),
        )
    )


def audio_writes(
    max_bytes: int = 8000,
) -> st.SearchStrategy[tuple[bytes, list[int]]]:
    """Audio bytes and a way to split them into writes (the sizes of the writes)."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[bytes, list[int]]:
        data = draw(st.binary(max_size=max_bytes))
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
        bounds = [0, *cuts, len(data)]
        return data, [b - a for a, b in itertools.pairwise(bounds)]

    return build()
