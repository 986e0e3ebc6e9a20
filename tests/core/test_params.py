"""StreamingParams, build_url/parse_url, build_headers, redact_url."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aai_proto import (
    DEFAULT_URL,
    InvalidParameter,
    LLMGatewayConfig,
    LLMGatewayMessage,
    StreamingParams,
    __version__,
    build_headers,
    build_url,
    parse_url,
    redact_url,
)
from aai_proto.strategies import streaming_params


def test_defaults_and_minimal_url() -> None:
    params = StreamingParams()
    assert (params.sample_rate, params.encoding, params.format_turns) == (16000, "pcm_s16le", None)
    assert build_url(params) == f"{DEFAULT_URL}?sample_rate=16000&encoding=pcm_s16le"


def test_url_encoding_of_each_kind() -> None:
    params = StreamingParams(
        sample_rate=8000,
        encoding="pcm_mulaw",
        speech_model="universal-streaming-english",
        format_turns=True,
        language_detection=False,
        end_of_turn_confidence_threshold=0.4,
        keyterms_prompt=["foo bar", "baz"],
        inactivity_timeout=30,
        extra={"formatted_finals": "true", "a_param": "x y"},
    )
    assert build_url(params, base_url="ws://127.0.0.1:9/v3/ws", token="tok") == (
        "ws://127.0.0.1:9/v3/ws?sample_rate=8000&encoding=pcm_mulaw"
        "&speech_model=universal-streaming-english&format_turns=true"
        "&end_of_turn_confidence_threshold=0.4"
        "&keyterms_prompt=%5B%22foo+bar%22%2C%22baz%22%5D"
        "&language_detection=false&inactivity_timeout=30"
        "&a_param=x+y&formatted_finals=true&token=tok"
    )


def test_llm_gateway_is_one_json_parameter() -> None:
    gateway = LLMGatewayConfig(
        model="claude", messages=[{"role": "system", "content": "Be brief."}], max_tokens=100
    )
    assert gateway.messages == (LLMGatewayMessage(role="system", content="Be brief."),)
    url = build_url(StreamingParams(llm_gateway=gateway))
    assert url.endswith(
        "&llm_gateway=%7B%22model%22%3A%22claude%22%2C%22messages%22%3A%5B%7B%22role%22%3A"
        "%22system%22%2C%22content%22%3A%22Be+brief.%22%7D%5D%2C%22max_tokens%22%3A100%7D"
    )
    assert parse_url(url).llm_gateway == gateway


@pytest.mark.parametrize("messages", ["Be brief.", ["Be brief."], None])
def test_llm_gateway_messages_are_checked(messages: object) -> None:
    with pytest.raises(InvalidParameter, match="Invalid 'messages': expected a list of messages"):
        LLMGatewayConfig(model="m", messages=messages, max_tokens=1)  # type: ignore[arg-type]


def test_base_url_query_is_kept() -> None:
    url = build_url(StreamingParams(), base_url="ws://h/v3/ws?region=eu")
    assert url == "ws://h/v3/ws?region=eu&sample_rate=16000&encoding=pcm_s16le"
    assert build_url(
        StreamingParams(sample_rate=None, encoding="opus"), base_url="ws://h/x?a=1"
    ) == ("ws://h/x?a=1&encoding=opus")


@pytest.mark.parametrize(
    ("kwargs", "name", "problem"),
    [
        ({"sample_rate": 7999}, "sample_rate", "must be at least 8000, got 7999"),
        ({"sample_rate": True}, "sample_rate", "expected an integer, got True"),
        ({"sample_rate": "16000"}, "sample_rate", "expected an integer, got '16000'"),
        ({"sample_rate": None}, "sample_rate", "required for encoding 'pcm_s16le'"),
        (
            {"encoding": "mp3"},
            "encoding",
            "must be one of pcm_s16le, pcm_mulaw, opus, ogg_opus, aac",
        ),
        ({"vad_threshold": 1.01}, "vad_threshold", "must be between 0 and 1, got 1.01"),
        ({"vad_threshold": float("nan")}, "vad_threshold", "must be between 0 and 1, got nan"),
        (
            {"end_of_turn_confidence_threshold": False},
            "end_of_turn_confidence_threshold",
            "expected a number",
        ),
        ({"format_turns": 1}, "format_turns", "expected true or false, got 1"),
        ({"keyterms_prompt": "one two"}, "keyterms_prompt", "expected a list of strings"),
        ({"keyterms_prompt": ["a", 1]}, "keyterms_prompt", "expected a list of strings"),
        ({"keyterms_prompt": ["k"] * 101}, "keyterms_prompt", "at most 100 items, got 101"),
        ({"language_codes": ["en"] * 11}, "language_codes", "at most 10 items, got 11"),
        ({"prompt": "x" * 1751}, "prompt", "at most 1750 characters, got 1751"),
        ({"agent_context": "x" * 1751}, "agent_context", "at most 1750 characters"),
        ({"inactivity_timeout": 4}, "inactivity_timeout", "must be at least 5, got 4"),
        ({"inactivity_timeout": 3601}, "inactivity_timeout", "must be at most 3600, got 3601"),
        ({"max_speakers": 0}, "max_speakers", "must be at least 1"),
        ({"max_speakers": 11}, "max_speakers", "must be at most 10"),
        ({"min_turn_silence": -1}, "min_turn_silence", "must be at least 0"),
        ({"mode": "fast"}, "mode", "must be one of min_latency, balanced, max_accuracy"),
        ({"voice_focus": "mid-field"}, "voice_focus", "must be one of near-field, far-field"),
        ({"redact_pii_sub": "mask"}, "redact_pii_sub", "must be one of hash, entity_name"),
        ({"domain": "legal"}, "domain", "must be one of medical-v1"),
        ({"speech_model": 3}, "speech_model", "expected a string, got 3"),
        ({"llm_gateway": {"model": "m"}}, "llm_gateway", "expected an LLMGatewayConfig"),
        ({"extra": {"sample_rate": "8000"}}, "extra", "'sample_rate' is a known parameter"),
        ({"extra": {"token": "t"}}, "extra", "'token' is a known parameter"),
        ({"extra": {"x": 1}}, "extra", "expected str keys and values"),
        ({"extra": [("x", "y")]}, "extra", "expected a mapping"),
        (
            {"min_turn_silence": 100, "min_end_of_turn_silence_when_confident": 200},
            "min_end_of_turn_silence_when_confident",
            "deprecated name of 'min_turn_silence'; give only one of them",
        ),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, Any], name: str, problem: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        StreamingParams(**kwargs)
    assert info.value.name == name
    assert problem in info.value.problem
    assert str(info.value).startswith(f"Invalid {name!r}: ")
    assert isinstance(info.value, ValueError)


def test_ints_stand_for_floats_and_lists_become_tuples() -> None:
    params = StreamingParams(vad_threshold=1, keyterms_prompt=["a"], language_codes=["en", "es"])
    assert params.vad_threshold == 1.0
    assert type(params.vad_threshold) is float
    assert params.keyterms_prompt == ("a",)
    assert params.language_codes == ("en", "es")
    assert hash(params) == hash(
        StreamingParams(vad_threshold=1.0, keyterms_prompt=("a",), language_codes=("en", "es"))
    )


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("min_end_of_turn_silence_when_confident", "min_turn_silence", 300),
        ("noise_suppression_model", "voice_focus", "far-field"),
        ("noise_suppression_threshold", "voice_focus_threshold", 0.5),
    ],
)
def test_deprecated_names_are_sent_as_the_new_ones(old: str, new: str, value: Any) -> None:
    params = StreamingParams(**{old: value})
    assert params == StreamingParams(**{new: value})
    assert getattr(params, old) is None
    assert getattr(params, new) == value
    assert old not in build_url(params)
    assert f"{new}=" in build_url(params)
    assert StreamingParams(**{old: value, new: value}) == params
    assert parse_url(f"/v3/ws?sample_rate=16000&{old}={value}") == params


def test_compressed_encodings_need_no_sample_rate() -> None:
    params = StreamingParams(encoding="ogg_opus", sample_rate=None)
    assert build_url(params) == f"{DEFAULT_URL}?encoding=ogg_opus"
    assert parse_url(build_url(params)) == params


def test_parse_accepts_what_real_clients_send() -> None:
    # The official SDK: booleans as True, its own order; Node: token in the query;
    # lists with commas left unescaped; pipecat's v2 leftover.
    url = (
        "ws://127.0.0.1:1/v3/ws?format_turns=True&encoding=pcm_s16le&sample_rate=16000"
        '&keyterms_prompt=["a,b","c"]&token=secret&formatted_finals=true&language_detection=FALSE'
    )
    assert parse_url(url) == StreamingParams(
        format_turns=True,
        keyterms_prompt=("a,b", "c"),
        language_detection=False,
        extra={"formatted_finals": "true"},
    )
    assert parse_url("/v3/ws?sample_rate=8000&vad_threshold=1e-1") == StreamingParams(
        sample_rate=8000, vad_threshold=0.1
    )


@pytest.mark.parametrize(
    ("query", "name", "problem"),
    [
        ("sample_rate=16k", "sample_rate", "expected an integer, got '16k'"),
        ("sample_rate=0x10", "sample_rate", "expected an integer"),
        ("sample_rate=", "sample_rate", "expected an integer, got ''"),
        ("sample_rate=" + "9" * 5000, "sample_rate", "expected an integer, got '999"),
        ("encoding=pcm_s16le", "sample_rate", "required for encoding 'pcm_s16le'"),
        ("sample_rate=16000&vad_threshold=nan", "vad_threshold", "expected a number, got 'nan'"),
        ("sample_rate=16000&vad_threshold=1_0", "vad_threshold", "expected a number"),
        ("sample_rate=16000&format_turns=yes", "format_turns", "expected true or false, got 'yes'"),
        (
            "sample_rate=16000&keyterms_prompt=['a', 'b']",
            "keyterms_prompt",
            "expected a JSON value",
        ),
        ('sample_rate=16000&keyterms_prompt="a"', "keyterms_prompt", "expected a JSON list"),
        ("sample_rate=16000&keyterms_prompt=[1]", "keyterms_prompt", "expected a list of strings"),
        ("sample_rate=16000&llm_gateway={}", "llm_gateway", 'expected {"model"'),
        ("sample_rate=16000&llm_gateway=[]", "llm_gateway", 'expected {"model"'),
        (
            'sample_rate=16000&llm_gateway={"model":"m","messages":[1],"max_tokens":1}',
            "llm_gateway",
            "expected {",
        ),
        (
            'sample_rate=16000&llm_gateway={"model":"m","messages":[{"role":"u"}],"max_tokens":1}',
            "llm_gateway",
            "expected {",
        ),
        ("sample_rate=16000&sample_rate=8000", "sample_rate", "given more than once"),
        ("sample_rate=16000&x=1&x=2", "x", "given more than once"),
        ("sample_rate=16000&p=%ff", "query", "not valid UTF-8"),
    ],
)
def test_parse_errors_name_the_parameter(query: str, name: str, problem: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_url(f"wss://h/v3/ws?{query}")
    assert (info.value.name, problem in info.value.problem) == (name, True), info.value


@given(streaming_params(), st.none() | st.text(min_size=1))
def test_url_round_trip(params: StreamingParams, token: str | None) -> None:
    assert parse_url(build_url(params, token=token)) == params


def test_secrets_stay_out_of_repr_and_redacted_urls() -> None:
    params = StreamingParams(webhook_url="https://h/x", webhook_auth_header_value="s3cr3t-value")
    assert "s3cr3t-value" not in repr(params)
    url = build_url(params, token="tok-123456")
    assert "s3cr3t-value" in url
    assert "tok-123456" in url
    redacted = redact_url(url)
    assert "s3cr3t-value" not in redacted
    assert "tok-123456" not in redacted
    assert redacted.endswith("webhook_auth_header_value=***&token=***")
    assert redact_url("ws://h/v3/ws") == "ws://h/v3/ws"


def test_headers() -> None:
    user_agent = f"AssemblyAI/1.0 (integration=aai-proto/{__version__})"
    assert build_headers(api_key="key-1") == [
        ("Authorization", "key-1"),
        ("User-Agent", user_agent),
    ]
    assert build_headers(token="tok") == [("Authorization", "tok"), ("User-Agent", user_agent)]
    assert build_headers() == [("User-Agent", user_agent)]
    assert build_headers(user_agent="X/1 (a b)") == [("User-Agent", "X/1 (a b)")]
    assert build_headers(api_key="k") == [("Authorization", "k"), ("User-Agent", user_agent)]
    with pytest.raises(ValueError, match="not both"):
        build_headers(api_key="a", token="b")


@pytest.mark.parametrize(
    "bad",
    ["", "s3cr3t\r\nX-Evil: 1", " s3cr3t", "s3cr3t\n", "s3\x00cr3t", "s3cr3t\x7f", "s3cr3t\t"],
)
def test_header_values_are_checked_without_echoing_them(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^api_key must be a non-empty string") as info:
        build_headers(api_key=bad)
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("url", ["//]", "//[]", "//[::1", "//\uff03"])
def test_a_url_urllib_refuses_is_an_invalid_parameter(url: str) -> None:
    # urllib raises a plain ValueError for some of these (which ones depends on the
    # Python version: 3.10 takes "//[]"): found by fuzz/run.py.
    try:
        urlsplit(url)
    except ValueError:
        refused = True
    else:
        refused = False
    with pytest.raises(InvalidParameter) as info:
        parse_url(url)
    if refused:
        assert str(info.value).startswith("Invalid 'url': not a URL (")
