"""Mutations of JSON texts: on the parsed structure, and on the text itself.

Strategy: a structure-aware mutation (a value of another type, a huge number, a
deleted or duplicated key) keeps the rest of a message valid, so it reaches the
checks past the JSON decoder; a text mutation (a flipped character, a truncation,
an inserted ``NaN``) tests the decoder itself. A JSON text is parsed into ``Obj``
(an object as its list of pairs, so that keys can repeat) and ``Raw`` (a token
written verbatim: ``1e400``, ``NaN``, a 5000-digit integer, 3000 levels of
nesting), mutated, and written back by :func:`dump`.

Every choice comes from the ``random.Random`` passed in, so a seed reproduces a run.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from collections.abc import Sequence
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Final, TypeAlias

__all__ = [
    "Json",
    "Obj",
    "Raw",
    "deep_nesting",
    "dump",
    "interesting_value",
    "load",
    "mutate_structure",
    "mutate_text",
    "shorten",
    "to_bytes",
]


class Raw:
    """A JSON token (or any text) written as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Obj:
    """A JSON object as its ``(key, value)`` pairs, in order; a key may repeat."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Json]]) -> None:
        self.pairs = pairs


Json: TypeAlias = "bool | int | float | str | Raw | Obj | list[Json] | None"


MAX_TREE_DEPTH: Final = 200


def _shallow(value: Json) -> bool:
    """Whether ``value`` nests at most ``MAX_TREE_DEPTH`` levels (the walkers here recurse)."""
    level: list[Json] = [value]
    for _ in range(MAX_TREE_DEPTH):
        level = [
            item
            for v in level
            if isinstance(v, Obj | list)
            for item in (v if isinstance(v, list) else [p[1] for p in v.pairs])
        ]
        if not level:
            return True
    return False


def load(text: str) -> Json | None:
    """Parse ``text`` into the mutable form, or ``None`` when it is not JSON (or is ``null``).

    A text nested deeper than ``MAX_TREE_DEPTH`` is ``None`` too: its mutations are
    text mutations.
    """
    try:
        value: Json = json.loads(text, object_pairs_hook=lambda pairs: Obj(list(pairs)))
    except (ValueError, RecursionError):
        return None
    return value if _shallow(value) else None


def _scalar(v: bool | int | float | str | None, ascii_only: bool) -> str:
    # What json.dumps writes, without its per-call overhead (the writer's hot spot).
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return encode_basestring_ascii(v) if ascii_only else encode_basestring(v)
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (math.inf, -math.inf):
            return "Infinity" if v > 0 else "-Infinity"
        return float.__repr__(v)
    return int.__repr__(v)


def dump(value: Json, *, compact: bool = True, ascii_only: bool = True) -> str:
    """Write ``value`` as JSON text (``NaN`` and ``Infinity`` as Python's json writes them)."""
    out: list[str] = []
    item_sep, key_sep = (",", ":") if compact else (", ", ": ")

    def put(v: Json) -> None:
        if isinstance(v, Raw):
            out.append(v.text)
        elif isinstance(v, Obj):
            out.append("{")
            for i, (key, item) in enumerate(v.pairs):
                if i:
                    out.append(item_sep)
                out.append(_scalar(key, ascii_only))
                out.append(key_sep)
                put(item)
            out.append("}")
        elif isinstance(v, list):
            out.append("[")
            for i, item in enumerate(v):
                if i:
                    out.append(item_sep)
                put(item)
            out.append("]")
        else:
            out.append(_scalar(v, ascii_only))

    put(value)
    return "".join(out)


def copy(value: Json) -> Json:
    """A deep copy (the ``Raw`` tokens are shared: they are never changed in place)."""
    if isinstance(value, Obj):
        return Obj([(k, copy(v)) for k, v in value.pairs])
    if isinstance(value, list):
        return [copy(v) for v in value]
    return value


def shorten(value: object, limit: int = 160) -> str:
    """``repr(value)``, shortened in the middle to about ``limit`` characters."""
    text = repr(value)
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    tail = limit - head
    return f"{text[:head]}...<{len(text) - limit} more chars>...{text[-tail:]}"


# -- the values and tokens a mutation inserts -----------------------------------------


@functools.cache
def deep_nesting(depth: int, kind: str = "list") -> str:
    """``[[[...]]]`` (or ``{"a":{"a":...}}``) ``depth`` levels deep."""
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "0" + "}" * depth


_HUGE_TOKENS: Final = (
    "1e400",
    "-1e400",
    "1E+999999999",
    "1e-400",
    "1" + "0" * 400,
    "-" + "9" * 400,
    "9" * 4301,  # over sys.get_int_max_str_digits(): json refuses it, msgspec does not
    "123456789012345678901234567890.5e-10",
    str(2**63),
    str(2**64),
    str(-(2**63) - 1),
    "-0",
    "-0.0",
    "0e0",
)
_NON_FINITE: Final = ("NaN", "Infinity", "-Infinity", "-NaN", "nan", "inf", "+1")
_BAD_STRINGS: Final = (
    '"\\ud800"',
    '"\\udfff"',
    '"\\udc00\\ud800"',
    '"a\\ud800b"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"\\u00"',
    '"\\x41"',
    '"\t"',
    '"\x00"',
    '"\\"',
)
_SWAPS: Final[tuple[Json, ...]] = (
    None,
    True,
    False,
    0,
    1,
    -1,
    0.5,
    -0.0,
    1.0,
    "",
    "x",
    "1",
    "0.5",
    "true",
    "null",
    "Turn",
    "\ud800",
    "\udc80",
    "\x00",
    "\u2028",
    "é",
    "\U0001f600",
)


# Keys of the protocol's messages and of a session file: a mutation that adds or
# renames a key to one of these reaches the field checks.
KEYS: Final = (
    "type",
    "error",
    "error_code",
    "id",
    "expires_at",
    "configuration",
    "turn_order",
    "turn_is_formatted",
    "end_of_turn",
    "transcript",
    "end_of_turn_confidence",
    "words",
    "start",
    "end",
    "text",
    "confidence",
    "word_is_final",
    "speaker",
    "utterance",
    "language_code",
    "speaker_label",
    "timestamp",
    "audio_duration_seconds",
    "session_duration_seconds",
    "warning",
    "warning_code",
    "total_audio_received_ms",
    "realtime_factor",
    "revisions",
    "data",
    "start_ms",
    "end_ms",
    "vad_threshold",
    "format_turns",
    "keyterms_prompt",
    "min_turn_silence",
    "min_end_of_turn_silence_when_confident",
    "language_codes",
    "prompt",
    "t",
    "server",
    "server_raw",
    "client",
    "client_audio",
    "close",
    "code",
    "reason",
    "by",
    "aai_session",
    "request",
    "path",
    "query",
    "audio",
    "source",
    "description",
    "Authorization",
    "token",
    "",
    "Type",
    "type ",
    "\ud800",
)
TYPE_NAMES: Final = (
    "Begin",
    "Turn",
    "Termination",
    "Error",
    "Warning",
    "SpeechStarted",
    "Heartbeat",
    "Silence",
    "SpeakerRevision",
    "LLMGatewayResponse",
    "Terminate",
    "ForceEndpoint",
    "KeepAlive",
    "UpdateConfiguration",
    "turn",
    "Turn ",
    "",
    "X",
)


def _depth(rng: random.Random) -> int:
    """A nesting depth: around a limit a parser may set, or past Python's recursion limit."""
    roll = rng.random()
    if roll < 0.3:
        return rng.choice((31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 512))
    if roll < 0.6:
        return rng.randint(900, 1100)  # around sys.getrecursionlimit()
    return 3000 if rng.random() < 0.95 else 20_000


# Sizes around 1 MiB, a limit a message parser may set (the text around it adds a few bytes).
_SIZES: Final = (1751, 10_000, 200_000, 2**20 - 300, 2**20, 2**20 + 1)


@functools.cache
def _big_text(kind: int, size: int) -> Raw:
    # Written once as a token: as a tree, it would make every later mutation walk it.
    if kind == 0:
        return Raw(json.dumps("x" * size))
    if kind == 1:
        return Raw(json.dumps("\U0001f600" * (size // 4), ensure_ascii=False))
    if kind == 2:
        return Raw(json.dumps(list(range(size // 6))))
    if kind == 3:
        word = '{"start":0,"end":1,"text":"a","confidence":0.5,"word_is_final":true}'
        return Raw("[" + ",".join([word] * (size // 70)) + "]")
    return Raw(json.dumps({f"k{i}": i for i in range(size // 10)}))


def _big_value(rng: random.Random) -> Json:
    return _big_text(rng.randrange(5), rng.choice(_SIZES))


def interesting_value(rng: random.Random) -> Json:
    """A value that tests a parser's edges: another type, huge, non-finite, deep, odd text."""
    roll = rng.random()
    if roll < 0.30:
        return rng.choice(_SWAPS)
    if roll < 0.50:
        return Raw(rng.choice(_HUGE_TOKENS))
    if roll < 0.60:
        return Raw(rng.choice(_NON_FINITE))
    if roll < 0.72:
        return Raw(deep_nesting(_depth(rng), rng.choice(("list", "list", "object"))))
    if roll < 0.85:
        return Raw(rng.choice(_BAD_STRINGS))
    if roll < 0.98:
        return [] if rng.random() < 0.5 else Obj([])
    return _big_value(rng)  # rare: a big input costs as much as a hundred small ones


# -- mutations of the structure -------------------------------------------------------

_Slot: TypeAlias = "tuple[list[Json] | Obj, int]"


def _slots(root: list[Json]) -> list[_Slot]:
    """Every place that holds a value, the root (``root[0]``) first."""
    found: list[_Slot] = []
    stack: list[list[Json] | Obj] = [root]
    while stack:
        container = stack.pop()
        if isinstance(container, Obj):
            for i, (_, v) in enumerate(container.pairs):
                found.append((container, i))
                if isinstance(v, Obj | list):
                    stack.append(v)
        else:
            for i, v in enumerate(container):
                found.append((container, i))
                if isinstance(v, Obj | list):
                    stack.append(v)
    return found


def _get(slot: _Slot) -> Json:
    container, i = slot
    return container.pairs[i][1] if isinstance(container, Obj) else container[i]


def _set(slot: _Slot, value: Json) -> None:
    container, i = slot
    if isinstance(container, Obj):
        container.pairs[i] = (container.pairs[i][0], value)
    else:
        container[i] = value


def _number_edge(rng: random.Random, v: int | float) -> Json:
    choices: list[Json] = [-v, v + 1, v - 1, str(v), v > 0, None]
    if isinstance(v, float):
        choices.append(int(v) if abs(v) < 1e300 else 0)  # never NaN: json.loads makes none
        choices.append(Raw(repr(v) + "e400"))
    else:
        choices.extend([v * 10**20, v * 10**400, 2**31, 2**63])
        if abs(v) < 2**1000:
            choices.append(float(v))
    return rng.choice(choices)


def _string_edge(rng: random.Random, v: str) -> Json:
    i = rng.randint(0, len(v))
    insert = rng.choice(("\ud800", "\udfff", "\x00", "\n", '"', "\\", "\u2028", "\ufeff", "é"))
    choices: list[Json] = [v[:i] + insert + v[i:], v.upper(), v[:i], "", len(v)]
    if len(v) < 1000:
        choices.append(v * 20)
    return rng.choice(choices)


def mutate_structure(
    rng: random.Random, value: Json, others: Sequence[Json] = (), *, rounds: int = 0
) -> Json:
    """A mutated deep copy of ``value``: 1-3 (or ``rounds``) changes to its values and keys.

    ``others`` are values to splice subtrees from.
    """
    root: list[Json] = [copy(value)]
    for _ in range(rounds or rng.choice((1, 1, 1, 2, 3))):
        slots = _slots(root)
        slot = rng.choice(slots)
        current = _get(slot)
        objects = [s for s in slots if isinstance(_get(s), Obj)]
        op = rng.randrange(12)
        if op <= 2:
            _set(slot, interesting_value(rng))
        elif op == 3 and isinstance(current, int | float) and not isinstance(current, bool):
            _set(slot, _number_edge(rng, current))
        elif op == 3 and isinstance(current, str):
            _set(slot, _string_edge(rng, current))
        elif op == 4 and slot[0] is not root:
            container, i = slot
            if isinstance(container, Obj):
                del container.pairs[i]
            else:
                del container[i]
        elif op == 5 and objects:
            # A duplicate key: the same key again, before or after, with another value.
            obj = _get(rng.choice(objects))
            assert isinstance(obj, Obj)
            if obj.pairs:
                key, v = rng.choice(obj.pairs)
                new = interesting_value(rng) if rng.random() < 0.7 else copy(v)
                obj.pairs.insert(rng.randint(0, len(obj.pairs)), (key, new))
        elif op == 6 and objects:
            obj = _get(rng.choice(objects))
            assert isinstance(obj, Obj)
            key = rng.choice(KEYS)
            obj.pairs.insert(rng.randint(0, len(obj.pairs)), (key, interesting_value(rng)))
        elif op == 7 and objects:
            obj = _get(rng.choice(objects))
            assert isinstance(obj, Obj)
            if obj.pairs:
                i = rng.randrange(len(obj.pairs))
                key, v = obj.pairs[i]
                new_key = rng.choice((*KEYS, key.upper(), key + " ", key[:-1], key + key))
                obj.pairs[i] = (new_key, v)
        elif op == 8 and objects:
            # Another message type for the same fields (and for any nested "type").
            obj = _get(rng.choice(objects))
            assert isinstance(obj, Obj)
            for i, (key, _) in enumerate(obj.pairs):
                if key == "type":
                    obj.pairs[i] = (key, rng.choice(TYPE_NAMES))
        elif op == 9 and others:
            donor = [copy(rng.choice(others))]
            _set(slot, _get(rng.choice(_slots(donor))))
        elif op == 10:
            _set(slot, [current] if rng.random() < 0.5 else Obj([("type", current)]))
        else:
            _set(slot, rng.choice(_SWAPS))
    return root[0]


# -- mutations of the text ------------------------------------------------------------

_CHARS: Final = '{}[]",:\\ 0123456789.eE+-tfnul\t\n\r\x00\x1f\x7f\u2028\ud800\udc00\uffff\ufeffé'
_TOKENS: Final = (
    *_HUGE_TOKENS,
    *_NON_FINITE,
    *_BAD_STRINGS,
    "\\ud800",
    "\ud800",
    "\udcff",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"',
    "\\",
    "\\u",
    "null",
    "true",
    "false",
    " ",
    "\x00",
    "\ufeff",
    "\r\n",
    '"type":"Turn",',
    '"type":"Begin",',
    '"type":"Error","error":"x",',
    '"type":1,',
    '"":"",',
    "//",
    "/*",
)


_NUMBER: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _flip_bit(rng: random.Random, text: str) -> str:
    data = bytearray(text.encode("utf-8", "surrogatepass"))
    if not data:
        return text
    for _ in range(rng.choice((1, 1, 2, 8))):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    # Bytes that are not UTF-8 become lone surrogates (U+DC80-U+DCFF).
    return bytes(data).decode("utf-8", "surrogateescape")


def mutate_text(rng: random.Random, text: str, others: Sequence[str] = ()) -> str:
    """``text`` with one change: a flipped character or bit, an insertion, a cut, a splice."""
    n = len(text)
    i = rng.randint(0, n)
    j = rng.randint(i, min(n, i + rng.choice((1, 4, 32, n or 1))))
    op = rng.randrange(11)
    if op == 0 and n:
        k = min(i, n - 1)
        c = rng.choice(_CHARS) if rng.random() < 0.8 else chr(rng.randrange(0x110000))
        return text[:k] + c + text[k + 1 :]
    if op == 1:
        return _flip_bit(rng, text)
    if op in (2, 3):
        return text[:i] + rng.choice(_TOKENS) + text[i:]
    if op == 4:
        nest = deep_nesting(_depth(rng))
        if rng.random() < 0.5:
            nest = nest[: len(nest) // 2]  # unclosed
        return text[:i] + nest + text[i:]
    if op == 5:
        return text[:i] + text[j:]
    if op == 6:
        return text[:i]  # truncated
    if op == 7:
        return text[:j] + text[i:j] + text[j:]  # a span repeated
    if op == 8 and others:
        other = rng.choice(others)
        return text[:i] + other[rng.randint(0, len(other)) :]
    if op == 9:
        return text + rng.choice(("", " ", "\n", text if n < 100_000 else "", "{}", "x", "\x00"))
    # A number in the text (the first after a random place) made huge or non-finite.
    number = _NUMBER.search(text, i) or _NUMBER.search(text)
    if number is None:
        return text[:i] + rng.choice(_HUGE_TOKENS) + text[i:]
    return text[: number.start()] + rng.choice((*_HUGE_TOKENS, *_NON_FINITE)) + text[number.end() :]


def mutate_texts(
    rng: random.Random, text: str, others: Sequence[str] = (), *, rounds: int = 0
) -> str:
    """``text`` with 1-4 (or ``rounds``) text mutations."""
    for _ in range(rounds or rng.choice((1, 1, 2, 3, 4))):
        text = mutate_text(rng, text, others)
    return text


_ENCODINGS: Final = ("utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32")


def to_bytes(rng: random.Random, text: str) -> bytes:
    """``text`` as the bytes of a frame: UTF-8 mostly, sometimes UTF-16/32 or with bad bytes."""
    data = text.encode(rng.choice(_ENCODINGS), "surrogatepass")
    if data and rng.random() < 0.3:
        i = rng.randrange(len(data))
        bad = rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\x00"))
        data = data[:i] + bad + data[i:]
    return data
