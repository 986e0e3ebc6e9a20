"""Parsing and serialising messages: JSON text <-> events and client messages.

Strategy: one reference parser, one optional accelerator, and limits of their own.

* The limits are the same on every interpreter and for both paths: a message of more
  than ``max_bytes`` bytes, or nested deeper than ``max_depth`` arrays and objects,
  is refused before the standard ``json`` decoder sees it (its recursion limit
  depends on the interpreter and on the caller's stack: it is never what refuses).
  Only ``msgspec``, which refuses deep nesting safely, may decode a message first.
* The reference is the standard ``json`` module, refusing ``NaN``, ``Infinity`` and
  any number that overflows a float, then one strict ``cattrs`` converter, made by a
  factory (never the global one). Its hooks for ``int``, ``float``, ``str`` and
  ``bool`` refuse to coerce: a string where an int belongs is an error, an int may
  stand for a float, a bool is never a number; an ``int`` field takes a signed
  64-bit integer, a ``float`` field a finite one. A message it refuses is structured
  again with detailed validation, to say where and what is wrong.
* With ``msgspec`` installed (``aai-proto[fast]``) the accelerator (``_accel``)
  tries first. It only ever accepts: what it is not sure of goes to the reference.
  A long message of few containers (long strings, which the standard ``json`` reads
  faster) goes to the reference directly. Either way the time is linear in the text.

Every failure leaves as ``RemoteProtocolError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import accumulate, repeat
from operator import add, mul, sub
from typing import Any, Final, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ._errors import RemoteProtocolError
from ._events import (
    MESSAGE_TYPES,
    ServerError,
    ServerEvent,
    Turn,
    UnknownMessage,
)
from ._messages import ClientMessage, ForceEndpoint, KeepAlive, Terminate, UpdateConfiguration
from ._params import InvalidParameter

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING_DEPTH",
    "dump_client_message",
    "dump_server_message",
    "make_converter",
    "parse_client_message",
    "parse_server_message",
]

MAX_MESSAGE_BYTES: Final = 1_048_576
"""The default limit on a message's size: 1 MiB of UTF-8 text (or of the ``bytes`` given).

``parse_server_message`` and ``parse_client_message`` refuse a longer message with
``RemoteProtocolError``; their ``max_bytes`` argument sets another limit.
"""

MAX_NESTING_DEPTH: Final = 64
"""The default limit on nesting: 64 levels of JSON arrays and objects, the message itself
being the first.

``parse_server_message`` and ``parse_client_message`` refuse a message nested deeper
(in any value, an unknown key's included) with ``RemoteProtocolError``; their
``max_depth`` argument sets another limit.
"""

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1

_SERVER_TYPES: Final[dict[str, type[Any]]] = {cls.type: cls for cls in MESSAGE_TYPES}
_CLIENT_TYPES: Final[dict[str, type[Any]]] = {
    cls.type: cls for cls in (Terminate, ForceEndpoint, KeepAlive, UpdateConfiguration)
}


def _shown(value: object) -> str:
    try:
        text = repr(value)
    except RecursionError:  # pragma: no cover - only with a max_depth in the thousands
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _strict_int(v: Any, _: Any) -> int:
    if type(v) is not int:
        raise ValueError(f"expected an integer, got {_shown(v)}")
    if not _INT_MIN <= v <= _INT_MAX:
        raise ValueError(f"number out of range, got {_shown(v)}")
    return v


def _strict_float(v: Any, _: Any) -> float:
    if type(v) is float:
        if v - v == 0.0:  # neither NaN nor an infinity
            return v
        raise ValueError(f"number out of range, got {_shown(v)}")
    if type(v) is int:
        try:
            return float(v)
        except OverflowError:
            raise ValueError(f"number out of range, got {_shown(v)}") from None
    raise ValueError(f"expected a number, got {_shown(v)}")


def _strict_str(v: Any, _: Any) -> str:
    if type(v) is not str:
        raise ValueError(f"expected a string, got {_shown(v)}")
    return v


def _strict_bool(v: Any, _: Any) -> bool:
    if type(v) is not bool:
        raise ValueError(f"expected true or false, got {_shown(v)}")
    return v


def _is_homogeneous_tuple(t: Any) -> bool:
    args = get_args(t)
    return get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def make_converter(*, detailed_validation: bool = False) -> cattrs.Converter:
    """Return a new strict converter for the protocol's messages.

    Primitives are never coerced; an ``int`` takes a signed 64-bit integer and a
    ``float`` a finite number; ``tuple[X, ...]`` fields take JSON arrays only;
    unknown keys are ignored; optional fields whose value is ``None`` are left out
    when unstructuring.
    """
    conv = cattrs.Converter(detailed_validation=detailed_validation, forbid_extra_keys=False)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)

    def tuple_hook(t: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        item = conv.get_structure_hook(get_args(t)[0])
        item_type = get_args(t)[0]

        def structure(v: Any, _: Any) -> tuple[Any, ...]:
            if type(v) is not list:
                raise ValueError(f"expected a list, got {_shown(v)}")
            return tuple([item(x, item_type) for x in v])

        return structure

    conv.register_structure_hook_factory(_is_homogeneous_tuple, tuple_hook)

    def record_hook(t: Any) -> Callable[[Any, Any], Any]:
        inner = conv.gen_structure_attrs_fromdict(t)

        def structure(v: Any, _: Any) -> Any:
            if type(v) is not dict:
                raise ValueError(f"expected a JSON object, got {_shown(v)}")
            return inner(v, t)

        return structure

    conv.register_structure_hook_factory(attrs.has, record_hook)

    def unstructure_hook(t: Any) -> Callable[[Any], dict[str, Any]]:
        omit = {
            a.name: override(omit_if_default=True) for a in attrs.fields(t) if a.default is None
        }
        return make_dict_unstructure_fn(t, conv, **omit)  # type: ignore[arg-type]

    conv.register_unstructure_hook_factory(attrs.has, unstructure_hook)
    return conv


_FAST: Final = make_converter()
_DETAILED: Final = make_converter(detailed_validation=True)


# -- the limits ---------------------------------------------------------------------------
#
# Strategy: both checks cost next to nothing on an ordinary message. Its size is its
# length unless it holds non-ASCII text and might be near the limit. A message with no
# more opening brackets than ``max_depth`` cannot nest deeper (a typical Turn has one per
# word, plus two). Otherwise the depth is measured, in time linear in the text, on its
# UTF-8 bytes: strings removed (escaped backslashes and quotes first, then everything
# between an unescaped quote and the next), the brackets left counted. With the
# accelerator, the brackets are counted in the translation it makes anyway, and a long
# Turn it decoded is bounded by arithmetic (``_a_shallow_turn``) instead.


def _limit(name: str, value: object) -> int:
    if type(value) is not int:  # a bool is not a limit either
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


# Everything but quotes and brackets: deleted from the text whose depth is measured.
_NOT_SKELETON: Final = bytes(set(range(256)) - set(b'"[]{}'))
# Objects count as arrays do: a nesting level is a level.
_ONE_KIND: Final = bytes.maketrans(b"{}", b"[]")


def _utf8(text: str | bytes | bytearray) -> bytes | None:
    """The message as UTF-8 (as ``json`` would read it), or ``None`` if ``json`` can't."""
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")
    encoding = json.detect_encoding(text)
    if encoding == "utf-8":
        return bytes(text)
    try:
        return bytes(text).decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None  # json.loads refuses it


def _nesting_depth(data: bytes) -> int:
    """How deeply the JSON text ``data`` (UTF-8) nests arrays and objects, in linear time.

    Exact for valid JSON; for any text, no less than the depth a decoder reaches before
    it finds the text invalid (on the prefix it accepted, strings are where it saw them).
    """
    if b"\\" in data:
        # Pairs, left to right, as a decoder reads escapes: \\ first, then \".
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = data.translate(_ONE_KIND, _NOT_SKELETON)
    # Quotes pair up in order. If every run of quotes is even, no string holds a
    # bracket (each string is a "" of its own): drop the quotes. Otherwise take
    # what lies between strings.
    quotes = skeleton.count(b'"')
    if skeleton.count(b'""') * 2 == quotes:
        brackets = skeleton.translate(None, b'"')
    else:
        brackets = b"".join(skeleton.split(b'"')[::2])
    # Strategy: measure the runs of [ then ] (``_deepest``) when they are few for the
    # length. Many runs means many innermost pairs: a pass removes them all, one level
    # (a long Turn is flat after one pass). Adding the levels the passes took is exact
    # when the brackets balance, as in valid JSON (more, never less, when they don't).
    rest = brackets
    for passes in range(9):
        if not rest:
            return passes
        if passes == 8 or rest.count(b"][") * 16 < len(rest):
            return passes + _deepest(rest)
        rest = rest.replace(b"[]", b"")
    raise AssertionError("unreachable")  # pragma: no cover


def _deepest(brackets: bytes) -> int:
    """The most brackets open at once in a string of ``[`` and ``]``, at C speed.

    Cut it into runs of ``[`` then ``]``: the deepest point is at the end of the
    ``[`` of some run, where what the runs before left open, plus its ``[``, are open.
    """
    runs = brackets.replace(b"][", b"]\x00[").split(b"\x00")
    opens = list(map(bytes.count, runs, repeat(b"[")))
    left_open = map(sub, map(mul, opens, repeat(2)), map(len, runs))  # [ minus ] of a run
    return max(map(add, accumulate(left_open, initial=0), opens), default=0)


def _too_deep(what: str, max_depth: int) -> RemoteProtocolError:
    return RemoteProtocolError(f"{what} nesting deeper than {max_depth} levels")


def _a_shallow_turn(event: ServerEvent | None, opening: int, max_depth: int) -> bool:
    """Whether ``event``, a Turn decoded from a text with ``opening`` opening brackets,
    nests ``max_depth`` levels at most: the cheap answer for long Turns.

    Its own containers (the message, ``words`` and one object per word) account for
    ``2 + len(words)`` of the brackets, three levels deep; any other container (in an
    unknown key, at any level) is among the rest, and so is any bracket in a string.
    So nothing nests deeper than three levels plus the rest.
    """
    return type(event) is Turn and 3 + (opening - 2 - len(event.words)) <= max_depth


def _check_limits(text: str | bytes, max_bytes: int, max_depth: int, what: str) -> None:
    """Refuse a message over ``max_bytes`` bytes or nested deeper than ``max_depth``."""
    if isinstance(text, str):
        size = len(text)
        if size * 4 > max_bytes and not text.isascii():
            size = len(text.encode("utf-8", "surrogatepass"))
        opening = text.count("[") + text.count("{")
    elif isinstance(text, bytes | bytearray):
        size = len(text)
        # In UTF-16 or UTF-32 a byte may look like a bracket: an over-count, never under.
        opening = text.count(b"[") + text.count(b"{")
    else:
        raise TypeError(
            f"the JSON object must be str, bytes or bytearray, not {type(text).__name__}"
        )
    if size > max_bytes:
        raise RemoteProtocolError(f"{what} of {size} bytes exceeds the limit of {max_bytes} bytes")
    if opening > max_depth:
        data = _utf8(text)
        if data is not None and _nesting_depth(data) > max_depth:
            raise _too_deep(what, max_depth)


# -- decoding -----------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if value - value == 0.0:  # neither NaN nor an infinity
        return value
    raise ValueError(f"number {_shown(literal)} is out of range")


_DECODER: Final = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)


def _load_object(text: str | bytes, what: str) -> dict[str, Any]:
    try:
        # What json.loads does, with a decoder that refuses non-finite numbers.
        if isinstance(text, str):
            if text.startswith("\ufeff"):
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        else:
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        data = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, bad UTF-8 in bytes, a number out of
        # range, and an integer of more digits than int() reads. RecursionError only
        # with a max_depth beyond what the interpreter's decoder can nest.
        raise RemoteProtocolError(f"{what} is not valid JSON: {exc}") from None
    if type(data) is not dict:
        raise RemoteProtocolError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _format_exception(exc: BaseException, _: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    return str(exc)


def _problems(exc: cattrs.BaseValidationError) -> str:
    return "; ".join(cattrs.transform_error(exc, format_exception=_format_exception))


def _message_type(data: dict[str, Any]) -> str:
    """The ``type`` of a server message; ``Error`` for the legacy ``{"error": ...}`` form."""
    if "type" not in data and "error" in data:
        return ServerError.type
    kind = data.get("type")
    if type(kind) is not str:
        raise RemoteProtocolError(f"server message has no string 'type': {_shown(kind)}")
    return kind


def _structure_server(data: dict[str, Any]) -> ServerEvent:
    kind = _message_type(data)
    cls = _SERVER_TYPES.get(kind)
    if cls is None:
        return UnknownMessage(type=kind, data=data)
    try:
        event: ServerEvent = _FAST.structure(data, cls)
    except (KeyError, ValueError, TypeError, RecursionError):
        # Refused: structure it again, with detailed validation, to say what and where.
        try:
            _DETAILED.structure(data, cls)
        except cattrs.BaseValidationError as exc:
            raise RemoteProtocolError(f"malformed {kind} message: {_problems(exc)}") from None
        raise AssertionError(  # pragma: no cover - the same hooks decide both
            "the fast and the detailed structuring disagree"
        ) from None
    return event


def _parse_reference(
    text: str | bytes,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
) -> ServerEvent:
    """Parse with the standard ``json`` and the strict ``cattrs`` converter alone.

    The slow, obviously right way: ``parse_server_message`` without the accelerator.
    """
    _check_limits(
        text, _limit("max_bytes", max_bytes), _limit("max_depth", max_depth), "server message"
    )
    return _structure_server(_load_object(text, "server message"))


try:
    from . import _accel

    _ACCELERATED = True
except ImportError:  # pragma: no cover - depends on what is installed
    _ACCELERATED = False

# Strategy: a long message of few containers is mostly long strings, which the
# standard json reads faster than msgspec does (with \\u escapes, twice as fast) and
# without the accelerator's number scan: such a message goes to the reference. Below
# about 4 KiB of text per container msgspec is faster (it builds objects at a
# fraction of the cost); short messages always try it.
_LONG_MESSAGE: Final = 16_384
_BYTES_PER_CONTAINER: Final = 4096


def _mostly_strings(size: int, opening: int) -> bool:
    """Whether a text of ``size`` bytes with ``opening`` brackets is the reference's to read."""
    return size >= _LONG_MESSAGE and size >= _BYTES_PER_CONTAINER * opening


BACKENDS: Final[dict[str, Callable[[str | bytes], ServerEvent]]] = {"json": _parse_reference}
"""Each way of parsing, by name: ``json`` is the reference; ``msgspec`` (when installed)
the default, accelerated one. For tests and benchmarks."""


def parse_server_message(
    text: str | bytes,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
) -> ServerEvent:
    """Parse one server text frame into its event.

    A message of an unknown ``type`` becomes :class:`UnknownMessage`; an object
    with no ``type`` but an ``error`` string is the legacy form of ``Error``.
    Raises :class:`RemoteProtocolError` for anything else that is not a valid
    message: bad JSON (``NaN``, ``Infinity`` and numbers beyond a float's range
    included), not an object, a missing field, a value of the wrong type or out of
    its type's range (an ``int`` field takes a signed 64-bit integer), a message of
    more than ``max_bytes`` bytes (:data:`MAX_MESSAGE_BYTES`) or nested deeper than
    ``max_depth`` levels (:data:`MAX_NESTING_DEPTH`). A limit that is not a positive
    int is a ``TypeError`` or ``ValueError``.
    """
    if max_bytes is not MAX_MESSAGE_BYTES or max_depth is not MAX_NESTING_DEPTH:
        _limit("max_bytes", max_bytes)
        _limit("max_depth", max_depth)
    if _ACCELERATED:  # pragma: no branch - depends on what is installed
        # The limits as _check_limits applies them, on the UTF-8 text the accelerator
        # decodes, with one translation of it for both (see _accel.shapes).
        data = _accel.as_utf8(text, max_bytes)
        if data is not None:
            shaped = _accel.shapes(data)
            opening = len(data) - len(shaped)
            # msgspec refuses deep nesting safely: it may decode before the depth check.
            event = None if _mostly_strings(len(data), opening) else _accel.decode(data, shaped)
            if (
                opening > max_depth
                and not _a_shallow_turn(event, opening, max_depth)
                and _nesting_depth(data) > max_depth
            ):
                raise _too_deep("server message", max_depth)
            if event is not None:
                return event
            return _structure_server(_load_object(text, "server message"))
    _check_limits(text, max_bytes, max_depth, "server message")
    return _structure_server(_load_object(text, "server message"))


if _ACCELERATED:  # pragma: no branch - depends on what is installed
    BACKENDS["msgspec"] = parse_server_message


def _dumps(data: object, what: str) -> str:
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        # JSON has no NaN or Infinity: a message holding one could not be read back.
        raise ValueError(f"cannot write {what} as JSON: {exc}") from None


def dump_server_message(event: ServerEvent) -> str:
    """Serialise a server event as the compact JSON text the server sends.

    Optional fields that are ``None`` are left out and ``type`` comes last, as the
    service writes it. ``parse_server_message(dump_server_message(e)) == e``.
    An event holding a NaN or an infinity (JSON has neither) is a ``ValueError``.
    """
    if isinstance(event, UnknownMessage):
        return _dumps(event.data, f"{event.type} message")
    data = _FAST.unstructure(event)
    data["type"] = event.type
    return _dumps(data, f"{event.type} message")


# The settings of UpdateConfiguration that hold numbers, by their wire kind.
_CLIENT_NUMBERS: Final[dict[str, str]] = {
    a.name: a.metadata["kind"]
    for a in attrs.fields(UpdateConfiguration)
    if a.metadata.get("kind") in ("int", "float")
}


def _number_out_of_range(kind: str, value: object) -> bool:
    """Whether ``value`` is an integer beyond the range of a setting of wire ``kind``."""
    if type(value) is not int:
        return False  # a float is finite (the decoder saw to it); other types: the validators
    if kind == "int":
        return not _INT_MIN <= value <= _INT_MAX
    try:
        float(value)
    except OverflowError:
        return True
    return False


def parse_client_message(
    text: str | bytes,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
) -> ClientMessage:
    """Parse one client text frame, as a server checks it.

    Raises :class:`RemoteProtocolError` for what the service answers with ``Error``
    3006: bad JSON (``NaN``, ``Infinity`` and numbers beyond a float's range
    included), not an object, an unknown ``type``, an invalid setting (a number out
    of its type's range included), a message of more than ``max_bytes`` bytes or
    nested deeper than ``max_depth`` levels. Unknown keys are ignored. A limit that
    is not a positive int is a ``TypeError`` or ``ValueError``.
    """
    _check_limits(
        text, _limit("max_bytes", max_bytes), _limit("max_depth", max_depth), "client message"
    )
    data = _load_object(text, "client message")
    kind = data.get("type")
    cls = _CLIENT_TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        raise RemoteProtocolError(f"unknown client message type {_shown(kind)}")
    if cls is not UpdateConfiguration:
        message: ClientMessage = cls()
        return message
    known = {a.name for a in attrs.fields(UpdateConfiguration)}
    fields = {k: v for k, v in data.items() if k in known}
    try:
        for name, value in fields.items():
            kind_of = _CLIENT_NUMBERS.get(name)
            if kind_of is not None and _number_out_of_range(kind_of, value):
                raise InvalidParameter(name, f"number out of range, got {_shown(value)}")
        return UpdateConfiguration(**fields)
    except InvalidParameter as exc:
        raise RemoteProtocolError(f"invalid UpdateConfiguration: {exc}") from None


def dump_client_message(message: ClientMessage) -> str:
    """Serialise a client message as a compact JSON text frame, ``type`` first.

    A message holding a NaN or an infinity (JSON has neither) is a ``ValueError``.
    """
    data: dict[str, Any] = {"type": message.type}
    if isinstance(message, UpdateConfiguration):
        data.update(message.fields())
    return _dumps(data, f"{message.type} message")
