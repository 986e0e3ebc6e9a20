"""The optional accelerator: ``msgspec`` decodes a server message straight into its event.

Strategy: this path only ever *accepts*. It returns the event for a message it is
sure of, and ``None`` for anything else (an error, a message type it does not
handle, an input outside its guarantees); the caller then parses the message the
reference way, which decides and says what is wrong. So it can be stricter than the
reference, never more lenient, and the events it returns must be equal to the
reference's (a differential test checks both on valid and malformed messages, and
another that it takes every valid fixture of the types it handles).

The caller applies the limits: the size first (``as_utf8``), the nesting depth
after decoding (``shapes`` counts the brackets); nesting deeper than msgspec can
take is a ``RecursionError`` inside it, and ``None`` here. msgspec builds the attrs
events without running converters: no event field has one (a test checks it).

``msgspec`` in its default (strict) mode checks types as the reference does: no
string for an int, no bool for a number, an int taken for a float (as a float);
unknown keys are skipped; the last of duplicate keys wins; ``NaN``, ``Infinity``
and lone surrogates are refused, and so is a number beyond a float's range in a
``float`` field. Where it differs from the reference, the input is left to it:

* bytes must be strict UTF-8 with no NUL (``json`` also takes UTF-16 and UTF-32, a
  BOM, and encoded surrogates; ``msgspec`` skips unknown values unchecked), and a
  ``str`` must have no lone surrogate;
* a text that may hold a number the reference refuses and ``msgspec`` takes: a run
  of 19 digits or more (an integer beyond 64 bits in an ``int`` field, or beyond
  ``sys.get_int_max_str_digits()`` anywhere) or an exponent of three digits or more
  (a float that overflows, in an unknown key that msgspec skips). One translation of
  the bytes (shared with the caller's depth check), then two substring searches:
  linear, at C speed;
* the legacy ``{"error": ...}`` form, ``LLMGatewayResponse`` (its ``data`` is any
  JSON, kept as decoded: rare, and not worth proving two decoders build equal
  values of every kind), and unknown types (their ``data`` likewise).

What it leaves to the reference anyway it leaves without a pass of its own over the
text where the text says so: a ``type`` at the end that it does not handle, no
``"type"`` key at all (the legacy form). And it finds the type without decoding the
text twice when the service's order is kept (``type`` last) or, failing that, when
``type`` comes first and no other key can be a ``type`` (``"type"`` appears once and
no ``\\u`` escape could spell another).
"""

from __future__ import annotations

import re
import sys
from typing import Any, Final

import msgspec

from ._events import MESSAGE_TYPES, LLMGatewayResponse, ServerEvent

__all__ = ["as_utf8", "decode", "parse_server_message", "shapes"]

# 0.18.5 fixed decoding frozen slotted attrs classes with defaults; 0.19 fixed
# decoding some integers over 64 bits. An older msgspec is not used at all.
_version = re.match(r"(\d+)\.(\d+)", getattr(msgspec, "__version__", ""))
if _version is None or (int(_version[1]), int(_version[2])) < (0, 19):  # pragma: no cover
    raise ImportError("aai-proto's accelerator needs msgspec 0.19 or newer")


class _Head(msgspec.Struct):
    """The message's ``type``; every other key is skipped (and checked to be JSON)."""

    type: str = ""


_HEAD: Final = msgspec.json.Decoder(_Head)
# Every known type but LLMGatewayResponse, whose ``data`` is any JSON: the reference takes it.
_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    cls.type: msgspec.json.Decoder(cls) for cls in MESSAGE_TYPES if cls is not LLMGatewayResponse
}

_SHAPES: Final = bytes.maketrans(b"123456789E+", b"000000000e0")
# 2**63 has 19 digits; a float overflows only with 309 digits or a 3-digit exponent
# (which follows a digit). With + as a digit, 1e+400 is 0e0000 (and 1e+16 is a false
# alarm: a float the service writes no larger than that).
_LONG_DIGIT_RUN: Final = b"0" * 19
_LONG_EXPONENT: Final = b"0e000"


def shapes(data: bytes) -> bytes:
    """What ``decode`` and the caller's depth check look at, in one translation.

    ``data`` with every digit and ``+`` a ``0``, ``E`` an ``e``, and the opening
    brackets and braces gone: ``len(data) - len(shapes(data))`` is their number.
    """
    return data.translate(_SHAPES, b"[{")


def _may_hold_a_big_number(shaped: bytes) -> bool:
    """Whether a text may hold a number ``msgspec`` takes and the reference refuses.

    ``shaped`` is ``shapes(text)``. Conservative: digits inside strings count too
    (such a message goes to the reference).
    """
    return _LONG_DIGIT_RUN in shaped or _LONG_EXPONENT in shaped


# The endings the service writes: ``type`` last, compact or with a space.
_TAILS: Final = {
    f'"type":{space}"{kind}"}}'.encode(): decoder
    for kind, decoder in _DECODERS.items()
    for space in ("", " ")
}
# Any such ending: one whose type is not in _TAILS is left to the reference.
_ANY_TAIL: Final = re.compile(rb'"type": ?"[^"\\]*"}')
# ``type`` first, compact or spaced: '{"type":"Begin",'.
_HEADS: Final = {
    f'{{"type":{space}"{kind}",'.encode(): decoder
    for kind, decoder in _DECODERS.items()
    for space in ("", " ")
}
_LONGEST_HEAD: Final = max(map(len, _HEADS))


def as_utf8(text: str | bytes, max_bytes: int | None = None) -> bytes | None:
    """The message as UTF-8 bytes, or ``None`` to leave it to the reference.

    ``None`` for a text of more than ``max_bytes`` bytes, a ``str`` with a lone
    surrogate (msgspec refuses it, json does not), and for ``bytes`` that are not
    strict UTF-8 or hold a NUL byte (json may read them as UTF-16 or UTF-32, or with
    a BOM, or with encoded surrogates; msgspec skips unknown values unchecked).
    """
    if max_bytes is None:
        max_bytes = sys.maxsize
    if isinstance(text, str):
        if len(text) > max_bytes:  # a str has at least as many bytes as characters
            return None
        try:
            data = text.encode()
        except UnicodeEncodeError:
            return None
    elif type(text) is bytes:  # not a bytearray: the reference takes those
        if len(text) > max_bytes or b"\x00" in text:
            return None
        data = text
        if not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError:
                return None
    else:
        return None
    return data if len(data) <= max_bytes else None


def _decoder_for(data: bytes) -> msgspec.json.Decoder[Any] | None:
    """The decoder of the message ``data``; ``None`` to leave it to the reference.

    Strategy: the service writes ``type`` last. A valid JSON object that ends in
    ``"type":"Turn"}``, where the quote before ``type`` is not escaped, has ``type``
    as its last key (an unescaped quote delimits a string; a string before ``:`` is
    a key; the last ``}`` closes the object), and the last of duplicate keys wins;
    the decoder then checks that the whole text is valid JSON. An ending that names
    a type it does not handle is left to the reference: declining is always safe. A
    text that starts ``{"type":"Begin",`` names its type when ``"type"`` appears
    nowhere else and no ``\\u`` escape could spell another ``type`` key (the only
    escape that makes letters). A text with no ``"type"`` at all is the legacy error
    form, or invalid, or has its key escaped: the reference's. Otherwise, decode the
    ``type`` alone first.
    """
    i = data.rfind(b'"type":', -48)  # in the last 48 bytes: the longest tail is 26
    if i > 0 and data[i - 1 : i] != b"\\":
        decoder = _TAILS.get(data[i:])
        if decoder is not None:
            return decoder
        if _ANY_TAIL.fullmatch(data, i):
            return None
    j = data.find(b'",', 9, _LONGEST_HEAD)
    if j > 0:
        decoder = _HEADS.get(data[: j + 2])
        if decoder is not None and data.count(b'"type"') == 1 and b"\\u" not in data:
            return decoder
    if b'"type"' not in data:
        return None
    return _DECODERS.get(_HEAD.decode(data).type)


def decode(data: bytes, shaped: bytes) -> ServerEvent | None:
    """The event of the message ``data`` (from ``as_utf8``), or ``None``.

    ``shaped`` is ``shapes(data)``.
    """
    if _may_hold_a_big_number(shaped):
        return None
    try:
        decoder = _decoder_for(data)
        if decoder is None:
            return None
        event: ServerEvent = decoder.decode(data)
    except (ValueError, RecursionError):
        # msgspec.DecodeError and ValidationError are ValueErrors.
        return None
    return event


def parse_server_message(text: str | bytes) -> ServerEvent | None:
    """Return the event of a server message, or ``None`` to leave it to the reference.

    The accelerator alone, for tests, within the default limits that
    ``aai_proto.parse_server_message`` applies: it declines a text of more than
    ``MAX_MESSAGE_BYTES`` bytes, or nested deeper than ``MAX_NESTING_DEPTH`` levels.
    """
    from . import _wire  # the caller's module, which imports this one

    data = as_utf8(text, _wire.MAX_MESSAGE_BYTES)
    if data is None:
        return None
    shaped = shapes(data)
    event = decode(data, shaped)
    opening = len(data) - len(shaped)
    depth = _wire.MAX_NESTING_DEPTH
    if (
        opening > depth
        and not _wire._a_shallow_turn(event, opening, depth)
        and _wire._nesting_depth(data) > depth
    ):
        return None
    return event
