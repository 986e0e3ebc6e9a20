"""Connection parameters: the typed ``StreamingParams``, and the URL and headers built from them.

Strategy: every parameter is declared once, as an attrs field whose metadata says
its wire *kind* (``int``, ``float``, ``bool``, ``str``, ``list``, ``object``).
Validation at construction, URL building and URL parsing are all driven by that
one declaration, so the three can never disagree about a parameter. The metadata
also says whether ``UpdateConfiguration`` may change the setting mid-session: that
class takes its checks, and ``UPDATABLE_FIELDS`` its names, from here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar, cast, final, get_args
from urllib.parse import SplitResult, parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

import attrs

from ._version import __version__

__all__ = [
    "DEFAULT_URL",
    "Encoding",
    "InvalidParameter",
    "LLMGatewayConfig",
    "LLMGatewayMessage",
    "StreamingParams",
    "build_headers",
    "build_url",
    "parse_url",
    "redact_url",
]

DEFAULT_URL: Final = "wss://streaming.assemblyai.com/v3/ws"
"""The production endpoint. Regional ones: ``streaming.us.`` and ``streaming.eu.``."""

DEFAULT_USER_AGENT: Final = f"AssemblyAI/1.0 (integration=aai-proto/{__version__})"

Encoding = Literal["pcm_s16le", "pcm_mulaw", "opus", "ogg_opus", "aac"]
"""Audio encodings. The PCM ones need ``sample_rate``; the others describe themselves."""
Mode = Literal["min_latency", "balanced", "max_accuracy"]
VoiceFocus = Literal["near-field", "far-field"]
PiiSubstitution = Literal["hash", "entity_name"]
Domain = Literal["medical-v1"]

PCM_ENCODINGS: Final = frozenset({"pcm_s16le", "pcm_mulaw"})

# Old wire names, accepted on input and always sent under the new name.
_ALIASES: Final = MappingProxyType(
    {
        "min_end_of_turn_silence_when_confident": "min_turn_silence",
        "noise_suppression_model": "voice_focus",
        "noise_suppression_threshold": "voice_focus_threshold",
    }
)
# Query parameters that carry credentials: never parameters, masked by redact_url.
_SECRET_QUERY_KEYS: Final = frozenset({"token", "webhook_auth_header_value"})
# Names (in any case, spaces around ignored) whose values redact_url and the repr of
# StreamingParams.extra mask: the secret keys, and what else names a credential.
_CREDENTIAL_NAMES: Final = _SECRET_QUERY_KEYS | {"authorization", "api_key", "access_token"}
# Not shown: what the error messages about a credential say instead of its value.
_NOT_SHOWN: Final = "a credential: its value is not shown"
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _is_credential_name(name: str) -> bool:
    return name.strip().lower() in _CREDENTIAL_NAMES


def _lone_surrogate(text: str) -> str | None:
    """The first lone surrogate of ``text`` (no UTF-8 can encode one), or ``None``."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    return None if found is None else found[0]


_K = TypeVar("_K")
_T = TypeVar("_T")


@final
class FrozenDict(Mapping[_K, _T]):
    """A read-only mapping that, unlike ``types.MappingProxyType``, pickles and copies.

    Strategy: the value classes (``StreamingParams.extra``, and the JSON objects of
    aai_replay's recorded sessions) hold their mappings in this, so that they stay
    immutable *and* survive ``pickle``, ``copy.copy`` and ``copy.deepcopy``. It
    keeps its own shallow copy of the items it is given (nested values are kept as
    they are), equals any mapping with the same items, has no method that changes
    it, and is unhashable, as a dict is.
    """

    __slots__ = ("_data",)
    _data: dict[_K, _T]

    def __init__(self, items: Mapping[_K, _T] = MappingProxyType({})) -> None:
        self._data = dict(items)

    def __getitem__(self, key: _K) -> _T:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    # The dict's own read-only views: dict(m.items()) and iteration at C speed.
    def keys(self) -> KeysView[_K]:
        return self._data.keys()

    def items(self) -> ItemsView[_K, _T]:
        return self._data.items()

    def values(self) -> ValuesView[_T]:
        return self._data.values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, dict):
            return self._data == other
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as a dict: the values may be lists

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenDict[_K, _T]], tuple[dict[_K, _T]]]:
        # Rebuilt from a plain dict: deepcopy copies that dict, pickle writes it.
        return (type(self), (self._data,))


class InvalidParameter(ValueError):
    """A parameter has a value the protocol does not allow.

    ``name`` is the wire name of the parameter and ``problem`` says what is wrong;
    ``str()`` reads ``Invalid '<name>': <problem>``, the server's own wording.
    """

    name: str
    problem: str

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"Invalid {name!r}: {problem}")

    def __reduce__(self) -> tuple[type[InvalidParameter], tuple[str, str]]:
        # Rebuilt from what __init__ takes, so that it pickles (to another process).
        return type(self), (self.name, self.problem)


def _shown(value: object) -> str:
    """A short, safe rendering of a rejected value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_V = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _int(lo: int | None = None, hi: int | None = None) -> _V:
    def check(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
        if v is None:
            return
        if type(v) is not int:
            raise InvalidParameter(a.name, f"expected an integer, got {_shown(v)}")
        if lo is not None and v < lo:
            raise InvalidParameter(a.name, f"must be at least {lo}, got {v}")
        if hi is not None and v > hi:
            raise InvalidParameter(a.name, f"must be at most {hi}, got {v}")

    return check


def _float01(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
    if v is None:
        return
    if type(v) is not float:
        raise InvalidParameter(a.name, f"expected a number, got {_shown(v)}")
    if not 0.0 <= v <= 1.0:
        raise InvalidParameter(a.name, f"must be between 0 and 1, got {v}")


def _to_float(v: Any) -> Any:
    # An int stands for a float (1 -> 1.0); a bool is not a number.
    return float(v) if type(v) is int else v


def _bool(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
    if v is not None and type(v) is not bool:
        raise InvalidParameter(a.name, f"expected true or false, got {_shown(v)}")


def _str(max_len: int | None = None) -> _V:
    def check(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
        if v is None:
            return
        if type(v) is not str:
            raise InvalidParameter(a.name, f"expected a string, got {_shown(v)}")
        if max_len is not None and len(v) > max_len:
            raise InvalidParameter(a.name, f"must be at most {max_len} characters, got {len(v)}")

    return check


def _secret_str(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
    """A credential: checked like a string, and never shown, whatever it is.

    Unicode text only (a lone surrogate can't travel in a URL or a header).
    """
    if v is None:
        return
    if type(v) is not str:
        raise InvalidParameter(a.name, f"expected a string, got {type(v).__name__} ({_NOT_SHOWN})")
    if _lone_surrogate(v) is not None:
        raise InvalidParameter(
            a.name, f"must be Unicode text, with no lone surrogate ({_NOT_SHOWN})"
        )


def _choice(choices: Iterable[str]) -> _V:
    allowed = tuple(choices)

    def check(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
        if v is not None and (type(v) is not str or v not in allowed):
            raise InvalidParameter(a.name, f"must be one of {', '.join(allowed)}; got {_shown(v)}")

    return check


def _to_tuple(v: list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    # Anything else (a str, say) is left for the validator to refuse.
    return tuple(v) if isinstance(v, list) else v


def _str_list(max_items: int | None = None) -> _V:
    def check(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
        if v is None:
            return
        if type(v) is not tuple or not all(type(item) is str for item in v):
            raise InvalidParameter(a.name, f"expected a list of strings, got {_shown(v)}")
        if max_items is not None and len(v) > max_items:
            raise InvalidParameter(a.name, f"must have at most {max_items} items, got {len(v)}")

    return check


def _param(
    kind: str, validator: _V, *, default: Any = None, updatable: bool = False, **kw: Any
) -> Any:
    """A parameter field; ``updatable`` ones may be changed by ``UpdateConfiguration``."""
    converter = {"float": _to_float}.get(kind)
    return attrs.field(
        default=default,
        validator=validator,
        converter=converter,
        metadata={"kind": kind, "updatable": updatable},
        **kw,
    )


@final
@attrs.frozen(kw_only=True)
class LLMGatewayMessage:
    """One message of an ``llm_gateway`` prompt."""

    role: str = attrs.field(validator=_str())
    content: str = attrs.field(validator=_str())


def _to_messages(
    v: Iterable[LLMGatewayMessage | Mapping[str, str]],
) -> tuple[LLMGatewayMessage, ...]:
    items: Any = v
    if isinstance(items, list | tuple):
        return tuple(LLMGatewayMessage(**m) if isinstance(m, Mapping) else m for m in items)
    return cast("tuple[LLMGatewayMessage, ...]", items)  # not a list: the validator refuses it


def _messages(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
    if type(v) is not tuple or not all(type(m) is LLMGatewayMessage for m in v):
        raise InvalidParameter(a.name, f"expected a list of messages, got {_shown(v)}")


@final
@attrs.frozen(kw_only=True)
class LLMGatewayConfig:
    """The ``llm_gateway`` parameter: an LLM run over each finished turn."""

    model: str = attrs.field(validator=_str())
    messages: tuple[LLMGatewayMessage, ...] = attrs.field(
        converter=_to_messages, validator=_messages
    )
    max_tokens: int = attrs.field(validator=_int(lo=1))

    def to_json(self) -> dict[str, Any]:
        """The JSON object sent on the wire."""
        return {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "max_tokens": self.max_tokens,
        }


def _llm_gateway(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
    if v is not None and type(v) is not LLMGatewayConfig:
        raise InvalidParameter(a.name, f"expected an LLMGatewayConfig, got {_shown(v)}")


def _apply_aliases(obj: object) -> None:
    """Move values given under deprecated names (attrs fields of ``obj``) to the new names."""
    for old, new in _ALIASES.items():
        value = getattr(obj, old, None)
        if value is None:
            continue
        if getattr(obj, new) not in (None, value):
            raise InvalidParameter(old, f"deprecated name of {new!r}; give only one of them")
        object.__setattr__(obj, new, value)
        object.__setattr__(obj, old, None)


def _freeze_extra(v: Any) -> Any:
    return FrozenDict(v) if isinstance(v, Mapping) else v


def _extra_repr(extra: Mapping[str, str]) -> str:
    # A parameter named like a credential ('Token', 'api_key') shows as '***'.
    masked = {k: "***" if _is_credential_name(k) else v for k, v in extra.items()}
    return f"{type(extra).__name__}({masked!r})"


def _check_extra(_: Any, a: attrs.Attribute[Any], v: Any) -> None:
    # The values may be credentials (a 'Token' is no known parameter): never shown.
    if not isinstance(v, Mapping):
        raise InvalidParameter("extra", f"expected a mapping of str to str, got {type(v).__name__}")
    for key, value in v.items():
        if type(key) is not str or not key:
            raise InvalidParameter(
                "extra", f"expected non-empty str keys, got {type(key).__name__} {_shown(key)}"
            )
        if type(value) is not str:
            raise InvalidParameter(
                "extra", f"expected str keys and values, got {type(value).__name__} for {key!r}"
            )
        if key in _KNOWN or key in _SECRET_QUERY_KEYS:
            raise InvalidParameter(
                "extra", f"{key!r} is a known parameter; set it by its own field"
            )


@final
@attrs.frozen(kw_only=True)
class StreamingParams:
    """Every connection parameter of Universal Streaming v3, typed and validated.

    Fields hold wire names; ``None`` means *not sent* (the server's default applies).
    Invalid values raise :class:`InvalidParameter` (a ``ValueError``) naming the field.
    ``speech_model`` is an open string: new models appear often. Parameters this
    version does not know go in ``extra`` (names and values as sent). The deprecated
    names ``min_end_of_turn_silence_when_confident``, ``noise_suppression_model`` and
    ``noise_suppression_threshold`` are accepted and stored (and sent) under their new
    names ``min_turn_silence``, ``voice_focus`` and ``voice_focus_threshold``.
    The settings a running session may change (:data:`~aai_proto.UPDATABLE_FIELDS`)
    are declared here, ``updatable=True``; :class:`~aai_proto.UpdateConfiguration`
    checks them with these same validators. ``webhook_auth_header_value`` is a
    credential: it never shows in ``repr()`` nor in an error message, whatever its
    type; an ``extra`` parameter named like one (``Token``, ``api_key``) shows as
    ``'***'`` in ``repr()``.
    """

    sample_rate: int | None = _param("int", _int(lo=8000), default=16000)
    encoding: Encoding = _param("str", _choice(get_args(Encoding)), default="pcm_s16le")
    speech_model: str | None = _param("str", _str())
    format_turns: bool | None = _param("bool", _bool, updatable=True)
    end_of_turn_confidence_threshold: float | None = _param("float", _float01, updatable=True)
    min_turn_silence: int | None = _param("int", _int(lo=0), updatable=True)
    max_turn_silence: int | None = _param("int", _int(lo=0), updatable=True)
    vad_threshold: float | None = _param("float", _float01, updatable=True)
    keyterms_prompt: tuple[str, ...] | None = attrs.field(
        default=None,
        converter=_to_tuple,
        validator=_str_list(100),
        metadata={"kind": "list", "updatable": True},
    )
    prompt: str | None = _param("str", _str(1750), updatable=True)
    agent_context: str | None = _param("str", _str(1750), updatable=True)
    language_detection: bool | None = _param("bool", _bool)
    language_codes: tuple[str, ...] | None = attrs.field(
        default=None,
        converter=_to_tuple,
        validator=_str_list(10),
        metadata={"kind": "list", "updatable": True},
    )
    language_code: str | None = _param("str", _str())
    inactivity_timeout: int | None = _param("int", _int(5, 3600))
    speaker_labels: bool | None = _param("bool", _bool)
    max_speakers: int | None = _param("int", _int(1, 10))
    speaker_labels_revision_interval_ms: int | None = _param("int", _int(lo=0))
    filter_profanity: bool | None = _param("bool", _bool, updatable=True)
    session_heartbeat: bool | None = _param("bool", _bool, updatable=True)
    acknowledge_silence: bool | None = _param("bool", _bool, updatable=True)
    continuous_partials: bool | None = _param("bool", _bool, updatable=True)
    include_partial_turns: bool | None = _param("bool", _bool)
    redact_pii: bool | None = _param("bool", _bool)
    redact_pii_policies: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_tuple, validator=_str_list(), metadata={"kind": "list"}
    )
    redact_pii_sub: PiiSubstitution | None = _param("str", _choice(get_args(PiiSubstitution)))
    mode: Mode | None = _param("str", _choice(get_args(Mode)))
    domain: Domain | None = _param("str", _choice(get_args(Domain)))
    interruption_delay: int | None = _param("int", _int(lo=0), updatable=True)
    turn_left_pad_ms: int | None = _param("int", _int(lo=0), updatable=True)
    previous_context_n_turns: int | None = _param("int", _int(lo=0))
    voice_focus: VoiceFocus | None = _param("str", _choice(get_args(VoiceFocus)))
    voice_focus_threshold: float | None = _param("float", _float01)
    webhook_url: str | None = _param("str", _str())
    webhook_auth_header_name: str | None = _param("str", _str())
    # A credential: kept out of repr() so it never reaches a log line.
    webhook_auth_header_value: str | None = _param("str", _secret_str, repr=False)
    llm_gateway: LLMGatewayConfig | None = _param("object", _llm_gateway)
    extra: Mapping[str, str] = attrs.field(
        factory=dict, converter=_freeze_extra, validator=_check_extra, hash=False, repr=_extra_repr
    )
    # Deprecated spellings: moved to their new fields by __attrs_post_init__.
    min_end_of_turn_silence_when_confident: int | None = _param(
        "int", _int(lo=0), updatable=True, repr=False, eq=False
    )
    noise_suppression_model: VoiceFocus | None = _param(
        "str", _choice(get_args(VoiceFocus)), repr=False, eq=False
    )
    noise_suppression_threshold: float | None = _param("float", _float01, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        _apply_aliases(self)
        if self.sample_rate is None and self.encoding in PCM_ENCODINGS:
            raise InvalidParameter("sample_rate", f"required for encoding {self.encoding!r}")

    def wire_values(self) -> dict[str, str]:
        """The known parameters that are set, as the text the URL carries, in URL order.

        Names are the current wire names; ``extra`` is not included. Holds
        ``webhook_auth_header_value`` when it is set: a credential, so never log it.
        """
        return {
            f.name: _encode(f.metadata["kind"], value)
            for f in _WIRE_FIELDS
            if (value := getattr(self, f.name)) is not None
        }


# Wire parameters in declaration order, and every name accepted on input.
_WIRE_FIELDS: Final = tuple(
    f for f in attrs.fields(StreamingParams) if "kind" in f.metadata and f.name not in _ALIASES
)
_KIND: Final = MappingProxyType(
    {f.name: f.metadata["kind"] for f in attrs.fields(StreamingParams) if "kind" in f.metadata}
)
_KNOWN: Final = frozenset(_KIND)


def _encode(kind: str, value: Any) -> str:
    if kind == "bool":
        return "true" if value else "false"
    if kind == "list":
        return json.dumps(list(value), separators=(",", ":"), ensure_ascii=False)
    if kind == "object":
        return json.dumps(value.to_json(), separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _urllib_problem(exc: ValueError) -> str:
    """What is wrong with a URL urllib refuses, in words of our own.

    urllib's message may quote the host, and a host may follow credentials
    (``user:key@``): it is never shown.
    """
    text = str(exc)
    if "NFKC" in text:
        return "not a URL (its host holds characters that NFKC turns into delimiters)"
    if "IPv6" in text or "IPv4" in text or "bracket" in text:
        return "not a URL (its host has an unbalanced '[' or ']', or no IP address within)"
    return "not a URL (urllib can't split it)"


def _split(url: str, name: str) -> SplitResult:
    """``urlsplit(url)``; what urllib refuses is an :class:`InvalidParameter` ``name``.

    Raised outside the ``except``: no ``__context__`` holds urllib's error (and the
    credentials its message may quote).
    """
    try:
        return urlsplit(url)
    except ValueError as exc:  # urllib's own: "Invalid IPv6 URL", a bad netloc, ...
        problem = _urllib_problem(exc)
    raise InvalidParameter(name, problem)


def _check_url_text(name: str, value: str) -> None:
    char = _lone_surrogate(value)
    if char is not None:
        raise InvalidParameter(
            name,
            f"holds a lone surrogate (U+{ord(char):04X}): a URL carries UTF-8, which can't "
            "encode it",
        )


def build_url(
    params: StreamingParams, *, base_url: str = DEFAULT_URL, token: str | None = None
) -> str:
    """Return the WebSocket URL that opens a session with ``params``.

    Parameters are written in a fixed order, unset ones left out; booleans read
    ``true``/``false``; lists and objects are one parameter holding a JSON text.
    ``extra`` parameters follow in name order, then ``token`` when given.
    The result may carry credentials: log :func:`redact_url` of it, never it.
    A value no URL can carry (a lone surrogate) or a ``base_url`` urllib can't
    split is an :class:`InvalidParameter`; a ``token`` that is not Unicode text a
    ``TypeError`` or ``ValueError`` (neither shows it).
    """
    if token is not None:
        if type(token) is not str:
            raise TypeError(f"token must be a str, not {type(token).__name__} ({_NOT_SHOWN})")
        if _lone_surrogate(token) is not None:
            raise ValueError(f"token must be Unicode text, with no lone surrogate ({_NOT_SHOWN})")
    pairs = list(params.wire_values().items())
    pairs.extend(sorted(params.extra.items()))
    for name, value in pairs:
        _check_url_text(name, name)
        _check_url_text(name, value)
    if token is not None:
        pairs.append(("token", token))
    parts = _split(base_url, "base_url")
    query = urlencode(pairs)
    if parts.query:
        query = f"{parts.query}&{query}" if query else parts.query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


_INT_RE: Final = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT_RE: Final = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


def _json_value(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidParameter(name, f"expected a JSON value, got {_shown(text)}") from None


def _decode(name: str, kind: str, text: str) -> Any:
    if kind == "int":
        # A digit string too long for int() (over 4300 digits) is no valid value either.
        if not _INT_RE.match(text) or len(text) > 20:
            raise InvalidParameter(name, f"expected an integer, got {_shown(text)}")
        return int(text)
    if kind == "float":
        if not _FLOAT_RE.match(text):
            raise InvalidParameter(name, f"expected a number, got {_shown(text)}")
        return float(text)
    if kind == "bool":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise InvalidParameter(name, f"expected true or false, got {_shown(text)}")
        return lowered == "true"
    if kind == "list":
        value = _json_value(name, text)
        if type(value) is not list:
            raise InvalidParameter(name, f"expected a JSON list of strings, got {_shown(text)}")
        return value
    if kind == "object":
        value = _json_value(name, text)
        return _llm_gateway_from_json(name, value)
    return text


def _llm_gateway_from_json(name: str, value: Any) -> LLMGatewayConfig:
    try:
        if type(value) is not dict or type(value.get("messages")) is not list:
            raise TypeError
        messages = []
        for m in value["messages"]:
            if type(m) is not dict:
                raise TypeError
            messages.append(LLMGatewayMessage(role=m["role"], content=m["content"]))
        return LLMGatewayConfig(
            model=value["model"], messages=tuple(messages), max_tokens=value["max_tokens"]
        )
    except (TypeError, KeyError, InvalidParameter):
        raise InvalidParameter(
            name,
            'expected {"model": str, "messages": [{"role": str, "content": str}], '
            '"max_tokens": int}',
        ) from None


def parse_url(url: str) -> StreamingParams:
    """Read the parameters of a session from its URL (or from just its path and query).

    The inverse of :func:`build_url`: any parameter order, any percent-escaping,
    ``true``/``True``/``TRUE`` for booleans. Unknown parameters land in ``extra``;
    ``token`` is a credential, not a parameter, and is ignored; the deprecated names
    are read as their new ones. Raises :class:`InvalidParameter` for a value the
    protocol does not allow, or for a parameter given twice.
    """
    if not isinstance(url, str):
        raise TypeError(f"parse_url takes str, not {type(url).__name__}")
    query = _split(url, "url").query
    try:
        pairs: list[tuple[str, str]] | None = parse_qsl(
            query, keep_blank_values=True, errors="strict"
        )
    except UnicodeDecodeError:
        pairs = None  # raised below, with no context: the decode error holds the bytes
    if pairs is None:
        raise InvalidParameter("query", "is not valid UTF-8 once percent-decoded")
    values: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for name, text in pairs:
        if name == "token":
            continue
        if name in values or name in extra:
            raise InvalidParameter(name, "given more than once")
        kind = _KIND.get(name)
        if kind is None:
            extra[name] = text
        else:
            values[name] = _decode(name, kind, text)
    # A URL without a sample rate did not send one: that is None, not the class default.
    values.setdefault("sample_rate", None)
    return StreamingParams(**values, extra=extra)


_UNPARSEABLE: Final = "<a URL that can't be parsed: not shown, it may hold credentials>"
_QUERY_SEPARATORS: Final = re.compile("([&;])")


def _mask_query(query: str) -> str:
    # Piece by piece, as written: only the values of credentials change.
    pieces = _QUERY_SEPARATORS.split(query)
    for i in range(0, len(pieces), 2):
        name, equals, value = pieces[i].partition("=")
        if equals and value and _is_credential_name(unquote_plus(name, errors="replace")):
            pieces[i] = f"{name}=***"
    return "".join(pieces)


def redact_url(url: str) -> str:
    """Return ``url`` with every credential it may carry masked, for a log line.

    Masked: the userinfo (``ws://***@host``); the value of each query parameter
    named like a credential (``token``, ``webhook_auth_header_value``,
    ``authorization``, ``api_key``, ``access_token``), in any case, however
    percent-escaped, separated by ``&`` or ``;``. The fragment is dropped (no
    client sends it; RFC 6455 allows none). The rest is kept as written. A URL
    urllib can't split is not shown at all. Never raises for a ``str``.
    """
    if not isinstance(url, str):
        raise TypeError(f"redact_url takes str, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError:
        return _UNPARSEABLE
    _, at, host = parts.netloc.rpartition("@")
    netloc = f"***@{host}" if at else parts.netloc
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if "?" in url.partition("#")[0]:
        shown += "?" + _mask_query(parts.query)
    return shown


# Printable ASCII, no space at either end: h11 encodes a header value as ASCII, and
# HTTP allows no control characters in one.
_HEADER_VALUE_RE: Final = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?\Z")


def _header_value(name: str, value: str) -> str:
    # Checked without echoing the value: it is a credential (h11 would quote it).
    if type(value) is not str or not _HEADER_VALUE_RE.match(value):
        raise ValueError(
            f"{name} must be a non-empty string of printable ASCII, without surrounding spaces "
            "(its value is not shown)"
        )
    return value


def build_headers(
    *, api_key: str | None = None, token: str | None = None, user_agent: str = DEFAULT_USER_AGENT
) -> list[tuple[str, str]]:
    """Return the HTTP headers of the WebSocket upgrade request.

    ``Authorization`` carries the raw API key (no ``Bearer`` prefix) or a temporary
    token; give at most one of them (a token may travel in the URL instead, see
    :func:`build_url`). ``User-Agent`` follows AssemblyAI's convention for integrations.
    """
    if api_key is not None and token is not None:
        raise ValueError("give api_key or token, not both")
    headers = []
    if api_key is not None:
        headers.append(("Authorization", _header_value("api_key", api_key)))
    elif token is not None:
        headers.append(("Authorization", _header_value("token", token)))
    headers.append(("User-Agent", _header_value("user_agent", user_agent)))
    return headers
