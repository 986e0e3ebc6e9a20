"""The optional accelerator: ``msgspec`` decodes a server message straight into its event.

Strategy: this path only ever *accepts*. It returns the event for a message it is
sure of, and ``None`` for anything else (an error, a message type it does not
handle, an input outside its guarantees); the caller then parses the message the
pure way, which decides and says what is wrong. So it can be stricter than the
pure path, never more lenient, and the events it returns must be equal to the
pure path's (a differential test checks both on valid and malformed messages).

``msgspec`` in its default (strict) mode checks types as the pure path does: no
string for an int, no bool for a number, an int taken for a float (as a float);
unknown keys are skipped; the last of duplicate keys wins; ``NaN``, ``Infinity``
and lone surrogates are refused. Where it differs from the standard ``json``,
the input is left to the pure path:

* bytes are decoded as strict UTF-8 first (``json`` also takes UTF-16 and UTF-32,
  a BOM, and encoded surrogates; ``msgspec`` skips unknown values unchecked);
* a text long enough to hold an integer literal over ``sys.get_int_max_str_digits()``
  digits (``json`` refuses it, ``msgspec`` skips it);
* the legacy ``{"error": ...}`` form, ``LLMGatewayResponse`` (its ``data`` is any
  JSON, kept as decoded: rare, and not worth proving two decoders build equal
  values of every kind), and unknown types (their ``data`` likewise).

Deep nesting: both refuse it, with ``RecursionError`` inside, once it exhausts the
interpreter's recursion budget. Where exactly depends on the caller's stack in
either path (the pure path itself gives up one level earlier when called one frame
deeper), so the paths agree on nesting well below that limit (both take it) and
well above it (both refuse); within a few levels of it, as for the pure path
alone, the answer depends on the stack.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Final

import msgspec

from ._events import MESSAGE_TYPES, LLMGatewayResponse, ServerEvent

__all__ = ["parse_server_message"]

# 0.18.5 fixed decoding frozen slotted attrs classes with defaults; 0.19 fixed
# decoding some integers over 64 bits. An older msgspec is not used at all.
_version = re.match(r"(\d+)\.(\d+)", getattr(msgspec, "__version__", ""))
if _version is None or (int(_version[1]), int(_version[2])) < (0, 19):  # pragma: no cover
    raise ImportError("aai-proto's accelerator needs msgspec 0.19 or newer")


class _Head(msgspec.Struct):
    """The message's ``type``; every other key is skipped (and checked to be JSON)."""

    type: str = ""


_HEAD: Final = msgspec.json.Decoder(_Head)
# Every known type but LLMGatewayResponse, whose ``data`` is any JSON: the pure path takes it.
_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    cls.type: msgspec.json.Decoder(cls) for cls in MESSAGE_TYPES if cls is not LLMGatewayResponse
}

_DIGITS: Final = frozenset("0123456789")
_RUNS: Final = re.compile(r"[0-9]+")
_int_digits_limit = getattr(sys, "get_int_max_str_digits", lambda: 0)
# sys.set_int_max_str_digits takes 0 (no limit) or at least this.
_MIN_INT_DIGITS_LIMIT: Final = 640


def _maybe_huge_int(text: str, limit: int) -> bool:
    """Whether ``text`` may hold a run of more than ``limit`` digits.

    Such a run covers a multiple of ``limit``, and more than ``limit`` digits of it lie
    within ``limit`` characters either side of it: look only there.
    """
    return any(
        text[m] in _DIGITS
        and any(len(run) > limit for run in _RUNS.findall(text, m - limit, m + limit + 1))
        for m in range(limit, len(text), limit)
    )


# The endings the service writes: ``type`` last, compact or with a space.
_TAILS: Final = {
    f'"type":{space}"{kind}"}}': decoder
    for kind, decoder in _DECODERS.items()
    for space in ("", " ")
}


def parse_server_message(text: str | bytes) -> ServerEvent | None:
    """Return the event of a server message, or ``None`` to leave it to the pure path."""
    if not isinstance(text, str):
        if type(text) is not bytes:  # a bytearray, say: as the pure path does
            return None
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if len(text) > _MIN_INT_DIGITS_LIMIT:
        limit = _int_digits_limit()
        if limit and len(text) > limit and _maybe_huge_int(text, limit):
            return None
    # Strategy: the service writes ``type`` last. A valid JSON object that ends in
    # ``"type":"Turn"}``, where the quote before ``type`` is not escaped, has ``type``
    # as its last key (an unescaped quote delimits a string; a string before ``:`` is
    # a key; the last ``}`` closes the object), and the last of duplicate keys wins;
    # the decoder then checks that the whole text is valid JSON. For any other
    # ending, decode the ``type`` alone first.
    i = text.rfind('"type":', -48)  # in the last 48 characters: the longest tail is 26
    decoder = _TAILS.get(text[i:]) if i > 0 and text[i - 1] != "\\" else None
    try:
        if decoder is None:
            decoder = _DECODERS.get(_HEAD.decode(text).type)
            if decoder is None:
                return None
        event: ServerEvent = decoder.decode(text)
    except (ValueError, RecursionError):
        # msgspec.DecodeError and ValidationError are ValueErrors, as is the
        # UnicodeEncodeError of a str holding a lone surrogate.
        return None
    return event
