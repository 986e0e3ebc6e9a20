"""Recorded sessions: format version 1, read and written by one module.

Strategy: a file is checked line by line as it is read, and each problem found is
reported with the file name, the line number and what is wrong, so a person can fix
it with an editor: the loader stops at the first, ``aai-replay check`` lists them
all (``_read_file``). Whatever is wrong, the one error is ``SessionFormatError``
(a file that is plainly something else, a WAV file say, is one problem, in words).
The same checks run when a session is built in code and when one is written (all
at once, or entry by entry as a recorder does), so that loading and writing accept
the same sessions: a written file always loads back equal, and whatever loads can
be written. That is why a JSON value must read back as itself (no tuple, no key
that is not a string), and a string may hold any code point but a surrogate pair
split in two (JSON text can only write it as the one character it encodes); lone
surrogates are written as ``\\udXXX`` escapes, the file staying UTF-8. Credentials
are refused everywhere: a ``token`` (or webhook secret) in the query, in any case,
an ``Authorization`` key anywhere.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import struct
import wave
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal, TypeAlias, final
from urllib.parse import urlencode

import attrs

from aai_proto import AudioFormat, InvalidParameter, StreamingParams, parse_url
from aai_proto._params import FrozenDict, _is_credential_name

__all__ = [
    "CREDENTIAL_QUERY_KEYS",
    "FORMAT_VERSION",
    "ClientAudio",
    "ClientMessage",
    "Close",
    "Entry",
    "Header",
    "RecordedSession",
    "Request",
    "ServerMessage",
    "ServerRaw",
    "SessionFormatError",
    "SessionWriter",
    "Source",
    "dumps_session",
    "load_session",
    "loads_session",
    "strip_credentials",
    "write_session",
]

FORMAT_VERSION: Final = 1
"""The version of the recorded-session format this module reads and writes."""

CREDENTIAL_QUERY_KEYS: Final = frozenset({"token", "webhook_auth_header_value"})
"""Query parameters that carry credentials: never written to, or read from, a file.

Matched in any case, spaces around ignored, as are ``authorization``, ``api_key`` and
``access_token`` (what ``aai_proto.redact_url`` masks)."""

Source = Literal["recorded", "synthesized", "handwritten"]
"""Where a session came from."""

_SOURCES: Final = ("recorded", "synthesized", "handwritten")
_HEADER_KEYS: Final = frozenset({"aai_session", "request", "audio", "source", "description"})
_ENTRY_KINDS: Final = ("server", "server_raw", "client_audio", "client", "close")


class SessionFormatError(ValueError):
    """A session file (or a session built in code) breaks format version 1.

    ``path`` names the file (``"<string>"`` or ``"<session>"`` when there is none),
    ``line`` is the 1-based line number of the problem (``None`` when it concerns
    the file as a whole) and ``problem`` says what is wrong. ``str()`` reads
    ``<path>:<line>: <problem>``.
    """

    path: str
    line: int | None
    problem: str

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[type[SessionFormatError], tuple[str, int | None, str]]:
        # Rebuilt from what __init__ takes, so that it pickles (to another process).
        return type(self), (self.path, self.line, self.problem)


# -- small helpers -------------------------------------------------------------------


_SHOWN_DEPTH: Final = 100
_SHOWN_NODES: Final = 10_000


def _deeper_than(value: object, depth: int) -> bool:
    """Whether lists, tuples and mappings nest in ``value`` deeper than ``depth``.

    Looks at no more than ``_SHOWN_NODES`` containers (a wide value is not deep).
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    seen = 0
    while stack and seen < _SHOWN_NODES:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[object] = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        seen += 1
        if level >= depth:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def _shown(value: object) -> str:
    """A short rendering of a refused value, whatever it is (never an exception)."""
    if type(value) is int and value.bit_length() > 10_000:
        # repr() takes time quadratic in the digits, and refuses over 4300 of them.
        return f"an integer of {value.bit_length()} bits"
    if _deeper_than(value, _SHOWN_DEPTH):
        # Not left to repr(): where it gives up (RecursionError) depends on the interpreter.
        return f"a deeply nested {type(value).__name__}"
    try:
        text = repr(value)
    except RecursionError:  # pragma: no cover - nesting through other containers
        return f"a deeply nested {type(value).__name__}"
    except Exception:  # a repr() of its own that fails: the value is refused all the same
        return f"a {type(value).__name__} that can't be shown"
    return text if len(text) <= 60 else text[:57] + "..."


def _freeze(value: Any) -> Any:
    # A read-only copy that pickles and deep-copies (a MappingProxyType does neither);
    # shallow, as the values within are. Anything but a mapping is left as it is, for
    # the validator to refuse.
    return FrozenDict(value) if isinstance(value, Mapping) else value


# A high surrogate then a low one: JSON text writes the two as the character they encode.
_SPLIT_PAIR: Final = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _check_split_pair(name: str, text: str) -> None:
    """Refuse ``text`` (a string, or JSON text written with ``ensure_ascii=False``)
    if it holds a surrogate pair split in two code points.

    Escaped as JSON writes it (``\\ud83d\\ude00``), such a pair reads back as one
    character: no file holds those two code points side by side.
    """
    found = _SPLIT_PAIR.search(text)
    if found is not None:
        high, low = (ord(c) for c in found[0])
        raise ValueError(
            f"{name!r} holds a surrogate pair split in two code points "
            f"(U+{high:04X} U+{low:04X}): JSON writes them as one character"
        )


def _check_no_surrogate(name: str, text: str, what: str) -> None:
    found = _SURROGATE.search(text)
    if found is not None:
        raise ValueError(
            f"{name!r} holds a lone surrogate (U+{ord(found[0]):04X}): {what} is UTF-8 "
            "and can't carry it"
        )


def _credential_key(obj: Any) -> str | None:
    """The first ``Authorization`` key (any case) in a JSON value, or ``None``."""
    # Strategy: walk the value only if its JSON text holds the word. No false
    # negative: a key whose lower() is "authorization" is written as it is (no
    # escapes in it) and lowers to the word; a value json can't write is walked.
    try:
        value = dict(obj.items()) if isinstance(obj, Mapping) else obj
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        pass
    else:
        if "authorization" not in text.lower():
            return None
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if isinstance(key, str) and key.lower() == "authorization":
                    return key
                stack.append(value)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _raw_credential_key(text: str) -> str | None:
    try:
        return _credential_key(json.loads(text))
    except (ValueError, RecursionError):
        return "Authorization" if "authorization" in text.lower() else None


def strip_credentials(query: Mapping[str, str]) -> dict[str, str]:
    """Return ``query`` without the parameters that carry credentials (``token``, ...).

    A recorder calls this on the live request's query before writing a header.
    """
    return {k: v for k, v in query.items() if not _is_credential_name(k)}


def _check_finite_t(_: Any, __: Any, value: float) -> None:
    if type(value) is not float or not math.isfinite(value) or value < 0:
        raise ValueError(f"'t' must be a finite number of seconds >= 0, got {_shown(value)}")


def _to_float(value: Any) -> Any:
    # An int stands for a float; one beyond a float's range stays as it is, for the
    # validator to refuse (float() would raise OverflowError).
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return value
    return value


def _json_object(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name!r} must be a JSON object, got {_shown(value)}")
        data = dict(value.items())
        try:
            text = json.dumps(data, ensure_ascii=False, allow_nan=False)
            # What a file holds is what json reads: anything that reads back as
            # another value (a tuple as a list, a key 1 as "1") would load unequal.
            same = json.loads(text) == data
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"{name!r} is not JSON: {exc}") from None
        if not same:
            raise ValueError(
                f"{name!r} holds values JSON reads back as others "
                "(a tuple, a key that is not a string, ...)"
            )
        _check_split_pair(name, text)

    return check


def _exact(kind: type) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, a: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not kind:
            raise ValueError(f"{a.name!r} must be {kind.__name__}, got {_shown(value)}")

    return check


def _string(_: Any, a: attrs.Attribute[Any], value: Any) -> None:
    _exact(str)(_, a, value)
    _check_split_pair(a.name, value)


def _optional_str(_: Any, a: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        if type(value) is not str:
            raise ValueError(f"{a.name!r} must be a string, got {_shown(value)}")
        _check_split_pair(a.name, value)


# -- the header ---------------------------------------------------------------------


def _check_query(_: Any, __: Any, value: Mapping[str, str]) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"'query' must be a JSON object, got {_shown(value)}")
    for key, item in value.items():
        if type(key) is not str or type(item) is not str:
            raise ValueError(
                f"'query' must map strings to strings, got {_shown(key)}: {_shown(item)}"
            )
        if _is_credential_name(key):
            raise ValueError(
                f"credentials present: {key!r} in the query; a session file never holds credentials"
            )
        _check_split_pair("query", key)
        _check_split_pair("query", item)


@final
@attrs.frozen
class Request:
    """The connection's request: its ``path`` and ``query`` (credentials removed)."""

    path: str = attrs.field(default="/v3/ws", validator=_string)
    query: Mapping[str, str] = attrs.field(
        factory=dict, converter=_freeze, validator=_check_query, hash=False
    )

    @property
    def params(self) -> StreamingParams:
        """The query read as parameters; raises ``InvalidParameter`` for an invalid one."""
        # surrogatepass: a lone surrogate becomes bytes that are not UTF-8, which
        # parse_url refuses as an InvalidParameter (urlencode would raise otherwise).
        return parse_url("?" + urlencode(list(self.query.items()), errors="surrogatepass"))


def _check_extra(_: Any, __: Any, value: Mapping[str, Any]) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"'extra' must be a mapping, got {_shown(value)}")
    for key in value:
        if type(key) is not str or key in _HEADER_KEYS:
            raise ValueError(f"'extra' can't hold the header key {_shown(key)}")
    _json_object("extra")(None, None, value)


def _check_source(_: Any, __: Any, value: Any) -> None:
    if value is not None and value not in _SOURCES:
        raise ValueError(f"'source' must be one of {', '.join(_SOURCES)}; got {_shown(value)}")


@final
@attrs.frozen
class Header:
    """The first line of a session file.

    ``audio`` is the path, relative to the file, of the audio the client streamed;
    ``extra`` keeps header keys this version does not know, to be written back.
    """

    request: Request = attrs.field(validator=attrs.validators.instance_of(Request))
    audio: str | None = attrs.field(default=None, validator=_optional_str)
    source: Source | None = attrs.field(default=None, validator=_check_source)
    description: str | None = attrs.field(default=None, validator=_optional_str)
    extra: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_freeze, validator=_check_extra, hash=False
    )


# -- entries ------------------------------------------------------------------------


def _frame_text(what: str) -> Callable[[Any, Any, Any], None]:
    """A string a WebSocket frame carries as it is: UTF-8, so no surrogate at all."""

    def check(_: Any, a: attrs.Attribute[Any], value: Any) -> None:
        _exact(str)(_, a, value)
        _check_no_surrogate(a.name, value, what)

    return check


@final
@attrs.frozen
class ServerMessage:
    """At ``t`` the server sent the text message ``message`` (a JSON object)."""

    t: float = attrs.field(converter=_to_float, validator=_check_finite_t)
    message: Mapping[str, Any] = attrs.field(
        converter=_freeze, validator=_json_object("server"), hash=False
    )


@final
@attrs.frozen
class ServerRaw:
    """At ``t`` the server sent the text frame ``text``, verbatim."""

    t: float = attrs.field(converter=_to_float, validator=_check_finite_t)
    text: str = attrs.field(validator=_frame_text("a text frame"))


def _check_nbytes(_: Any, __: Any, value: int) -> None:
    if type(value) is not int or value < 0:
        raise ValueError(f"'client_audio' must be a byte count >= 0, got {_shown(value)}")
    if value >= 2**63:
        raise ValueError(
            "'client_audio' must be a byte count below 2**63 (a WebSocket frame's "
            f"limit), got {_shown(value)}"
        )


@final
@attrs.frozen
class ClientAudio:
    """At ``t`` the client sent one binary frame of ``nbytes`` bytes."""

    t: float = attrs.field(converter=_to_float, validator=_check_finite_t)
    nbytes: int = attrs.field(validator=_check_nbytes)


def _check_client(_: Any, __: Any, value: Mapping[str, Any]) -> None:
    _json_object("client")(None, None, value)
    if type(value.get("type")) is not str:
        raise ValueError(f"'client' needs a string 'type', got {_shown(value.get('type'))}")


@final
@attrs.frozen
class ClientMessage:
    """At ``t`` the client sent the text message ``message`` (a JSON object with ``type``)."""

    t: float = attrs.field(converter=_to_float, validator=_check_finite_t)
    message: Mapping[str, Any] = attrs.field(converter=_freeze, validator=_check_client, hash=False)

    @property
    def type(self) -> str:
        """The message's ``type``: ``Terminate``, ``ForceEndpoint``, ..."""
        kind: str = self.message["type"]
        return kind


def _check_code(_: Any, __: Any, value: int) -> None:
    if type(value) is not int or not 1000 <= value <= 4999:
        raise ValueError(f"'code' must be a close code from 1000 to 4999, got {_shown(value)}")


def _check_by(_: Any, __: Any, value: str) -> None:
    if value not in ("server", "client"):
        raise ValueError(f"'by' must be 'server' or 'client', got {_shown(value)}")


@final
@attrs.frozen
class Close:
    """At ``t`` the WebSocket closed with ``code`` and ``reason``, at the ``by`` side's wish."""

    t: float = attrs.field(converter=_to_float, validator=_check_finite_t)
    code: int = attrs.field(validator=_check_code)
    reason: str = attrs.field(validator=_frame_text("a close frame's reason"))
    by: Literal["server", "client"] = attrs.field(validator=_check_by)


Entry: TypeAlias = ServerMessage | ServerRaw | ClientAudio | ClientMessage | Close
"""One line after the header."""

_ENTRY_TYPES: Final = (ServerMessage, ServerRaw, ClientAudio, ClientMessage, Close)


class _Order:
    """Checks, entry by entry, the rules that span lines.

    ``t`` never goes backwards, nothing follows ``close``, no entry holds an
    ``Authorization`` key. ``check`` returns the problem, or ``None``.
    """

    def __init__(self) -> None:
        self.last_t = 0.0
        self.close_line: int | None = None

    def check(self, entry: object, line: int) -> str | None:
        if not isinstance(entry, _ENTRY_TYPES):
            return f"not an entry: {_shown(entry)}"
        if self.close_line is not None:
            return f"entry after 'close' (line {self.close_line}); 'close' must be last"
        if entry.t < self.last_t:
            return f"'t' goes backwards: {entry.t!r} after {self.last_t!r}"
        key = None
        if isinstance(entry, ServerMessage | ClientMessage):
            key = _credential_key(entry.message)
        elif isinstance(entry, ServerRaw):
            key = _raw_credential_key(entry.text)
        if key is not None:
            return f"credentials present: {key!r}; a session file never holds credentials"
        self.last_t = entry.t
        if isinstance(entry, Close):
            self.close_line = line
        return None


def _check_header_credentials(header: Header) -> str | None:
    key = _credential_key(dict(header.extra)) or _credential_key(dict(header.request.query))
    if key is not None:
        return f"credentials present: {key!r}; a session file never holds credentials"
    return None


# -- the session --------------------------------------------------------------------


def _to_entries(value: Iterable[Entry]) -> tuple[Entry, ...]:
    return tuple(value)


@final
@attrs.frozen
class RecordedSession:
    """A recorded session: its header and entries, and the file it came from, if any.

    Building one checks the same rules a file must follow (``SessionFormatError``,
    with the line number each entry would have in a file).
    """

    header: Header = attrs.field(validator=attrs.validators.instance_of(Header))
    entries: tuple[Entry, ...] = attrs.field(converter=_to_entries)
    path: Path | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        name = self._name
        problem = _check_header_credentials(self.header)
        if problem is not None:
            raise SessionFormatError(name, 1, problem)
        order = _Order()
        for index, entry in enumerate(self.entries):
            problem = order.check(entry, index + 2)
            if problem is not None:
                raise SessionFormatError(name, index + 2, problem)

    @property
    def _name(self) -> str:
        return str(self.path) if self.path is not None else "<session>"

    @property
    def params(self) -> StreamingParams:
        """The recorded request's parameters (raises ``InvalidParameter`` if one is invalid)."""
        return self.header.request.params

    @property
    def audio_format(self) -> AudioFormat:
        """The format of the audio the recorded client streamed."""
        return AudioFormat.from_params(self.params)

    @property
    def duration(self) -> float:
        """Seconds from the opening of the connection to the last entry."""
        return self.entries[-1].t if self.entries else 0.0

    @property
    def close(self) -> Close | None:
        """The ``close`` entry, if the recording has one (it is then the last)."""
        last = self.entries[-1] if self.entries else None
        return last if isinstance(last, Close) else None

    @property
    def audio_path(self) -> Path | None:
        """Where the audio sidecar is: ``header.audio`` resolved relative to the file."""
        if self.header.audio is None:
            return None
        audio = Path(self.header.audio)
        return self.path.parent / audio if self.path is not None else audio

    def audio_bytes(self) -> bytes:
        """The audio the client streamed: the PCM frames of the WAV file, or the ``.raw`` file.

        Raises ``SessionFormatError`` when there is no sidecar, it can't be read,
        or a WAV file does not match the recorded request (mono, 16-bit for
        ``pcm_s16le``, the same sample rate).
        """
        where = self.audio_path
        name = self._name
        if where is None:
            raise SessionFormatError(name, 1, "the header names no 'audio' file")
        try:
            data = where.read_bytes()
        except OSError as exc:
            raise SessionFormatError(
                name, 1, f"can't read the audio file {str(where)!r}: {exc.strerror}"
            ) from None
        except ValueError:  # a NUL, or a lone surrogate: a name no file can have
            raise SessionFormatError(
                name, 1, f"can't read the audio file {str(where)!r}: no file can have that name"
            ) from None
        if where.suffix.lower() == ".raw":
            return data
        return _wav_frames(data, where, self, name)


def _wav_frames(data: bytes, where: Path, session: RecordedSession, name: str) -> bytes:
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, RuntimeError, struct.error, ValueError, OverflowError) as exc:
        # What the wave module raises for a malformed file: wave.Error mostly, but a
        # chunk that claims more bytes than there are is an EOFError or RuntimeError.
        detail = str(exc) or ("it ends too soon" if isinstance(exc, EOFError) else "malformed")
        raise SessionFormatError(
            name, 1, f"the audio file {str(where)!r} is not a PCM WAV file: {detail}"
        ) from None
    try:
        fmt = session.audio_format
    except (InvalidParameter, ValueError) as exc:
        raise SessionFormatError(name, 1, f"the recorded request is invalid: {exc}") from None
    expected = (1, fmt.bytes_per_sample if fmt.is_pcm else width, fmt.sample_rate or rate)
    if (channels, width, rate) != expected:
        raise SessionFormatError(
            name,
            1,
            f"the audio file {str(where)!r} holds {channels} channel(s) of {8 * width}-bit "
            f"audio at {rate} Hz; the request wants mono {fmt.encoding} at "
            f"{fmt.sample_rate} Hz",
        )
    return frames


# -- reading ------------------------------------------------------------------------


class _LineError(Exception):
    def __init__(self, problem: str) -> None:
        self.problem = problem


def _reject_constant(name: str) -> Any:
    raise _LineError(f"bad JSON: {name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _LineError(f"bad JSON: duplicate key {key!r}")
        out[key] = value
    return out


def _parse_line(text: str) -> dict[str, Any]:
    if not text.strip():
        raise _LineError("blank line (a session file has none)")
    if text.endswith("\r"):
        raise _LineError("line ends with a carriage return; use \\n line endings")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _LineError(f"bad JSON: {exc.msg} (column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise _LineError(f"bad JSON: {exc}") from None
    if type(data) is not dict:
        raise _LineError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _header_from(data: dict[str, Any]) -> Header:
    if "aai_session" not in data:
        raise _LineError("not a session header: no 'aai_session' key (the format version)")
    version = data["aai_session"]
    if type(version) is not int or version != FORMAT_VERSION:
        raise _LineError(
            f"unsupported format version {_shown(version)}; "
            f"this reader knows version {FORMAT_VERSION}"
        )
    request = data.get("request")
    if type(request) is not dict:
        raise _LineError(f"'request' must be a JSON object, got {_shown(request)}")
    unknown = sorted(set(request) - {"path", "query"})
    if unknown:
        raise _LineError(f"unknown request key {unknown[0]!r}")
    for key in ("path", "query"):
        if key not in request:
            raise _LineError(f"'request' has no {key!r}")
    if type(request["query"]) is not dict:
        raise _LineError(f"'request.query' must be a JSON object, got {_shown(request['query'])}")
    try:
        return Header(
            Request(path=request["path"], query=request["query"]),
            audio=data.get("audio"),
            source=data.get("source"),
            description=data.get("description"),
            extra={k: v for k, v in data.items() if k not in _HEADER_KEYS},
        )
    except ValueError as exc:
        raise _LineError(str(exc)) from None


def _entry_from(data: dict[str, Any]) -> Entry:
    unknown = sorted(set(data) - {"t", *_ENTRY_KINDS})
    if unknown:
        raise _LineError(f"unknown entry key {unknown[0]!r}")
    if "t" not in data:
        raise _LineError("entry has no 't'")
    kinds = [k for k in _ENTRY_KINDS if k in data]
    if len(kinds) != 1:
        found = " and ".join(repr(k) for k in kinds) if kinds else "none"
        raise _LineError(f"an entry holds exactly one of {', '.join(_ENTRY_KINDS)}; got {found}")
    kind = kinds[0]
    t, value = data["t"], data[kind]
    if type(t) not in (int, float):
        raise _LineError(f"'t' must be a number, got {_shown(t)}")
    try:
        if kind == "server":
            return ServerMessage(t, value)
        if kind == "server_raw":
            return ServerRaw(t, value)
        if kind == "client_audio":
            return ClientAudio(t, value)
        if kind == "client":
            return ClientMessage(t, value)
        return _close_from(t, value)
    except ValueError as exc:
        raise _LineError(str(exc)) from None


def _close_from(t: float, value: Any) -> Close:
    if type(value) is not dict:
        raise _LineError(f"'close' must be a JSON object, got {_shown(value)}")
    unknown = sorted(set(value) - {"code", "reason", "by"})
    if unknown:
        raise _LineError(f"unknown close key {unknown[0]!r}")
    for key in ("code", "reason", "by"):
        if key not in value:
            raise _LineError(f"'close' has no {key!r}")
    return Close(t, value["code"], value["reason"], value["by"])


# Files that are plainly no session, by their first bytes: (offset, bytes, what it is).
_MAGIC: Final = (
    (0, b"OggS", "an Ogg file (Ogg Opus audio?)"),
    (0, b"fLaC", "a FLAC audio file"),
    (0, b"ID3", "an MP3 audio file"),
    (4, b"ftyp", "an MP4 (M4A) file"),
    (0, b"\x1aE\xdf\xa3", "a WebM (Matroska) file"),
    (0, b"\x1f\x8b", "a gzip-compressed file"),
    (0, b"PK\x03\x04", "a zip file"),
    (0, b"\xff\xfe", "UTF-16 text"),
    (0, b"\xfe\xff", "UTF-16 text"),
)
_HEAD_BYTES: Final = 4096


def _what_file(head: bytes) -> str | None:
    if head.startswith(b"RIFF"):
        return "a WAV audio file" if head[8:12] == b"WAVE" else "a RIFF file"
    if head.startswith(b"FORM") and head[8:11] == b"AIF":
        return "an AIFF audio file"
    for at, magic, what in _MAGIC:
        if head[at : at + len(magic)] == magic:
            return what
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "an MP3 or AAC audio file"  # an MPEG frame's sync bits, no ID3 tag
    if b"\x00" in head.split(b"\n", 1)[0]:
        return "a binary file"  # no JSON text holds a NUL byte
    return None


def _not_a_session(head: bytes) -> str | None:
    """The problem of a file that starts with ``head`` if it is plainly no session file.

    A known magic number (a WAV, an Ogg file, ...), or a NUL byte in the first line:
    one problem, of the whole file, in words rather than as a JSON error.
    """
    what = _what_file(head)
    if what is None:
        return None
    return f"this is {what}, not a recorded session (.jsonl)"


def _text_head(text: str) -> bytes:
    # The bytes the text's first characters were, if it was read as UTF-8 (as
    # load_session reads a file): the same decision for a file and for its text.
    return text[:_HEAD_BYTES].encode("utf-8", "surrogatepass")


@attrs.define
class _Reading:
    """What reading the lines of a file found: its header, the entries that loaded
    (with their line numbers) and each problem (line, what), in line order."""

    header: Header | None = None
    entries: list[tuple[int, Entry]] = attrs.Factory(list)
    problems: list[tuple[int | None, str]] = attrs.Factory(list)


def _read(lines: Iterable[str | _LineError], *, first_only: bool) -> _Reading:
    """Read a file's lines: line 1 is the header, every other an entry.

    A line that breaks a rule is a problem and is left out (an entry out of order
    too: the next is compared with the last one kept). With ``first_only`` the
    reading stops at the first problem.
    """
    reading = _Reading()
    order = _Order()
    for number, line in enumerate(lines, start=1):
        try:
            if isinstance(line, _LineError):
                raise line
            data = _parse_line(line)
            if number == 1:
                reading.header = _header_from(data)
                problem = _check_header_credentials(reading.header)
            else:
                entry = _entry_from(data)
                problem = order.check(entry, number)
                if problem is None:
                    reading.entries.append((number, entry))
        except _LineError as exc:
            problem = exc.problem
        if problem is not None:
            reading.problems.append((number, problem))
            if first_only:
                break
    return reading


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return lines


def loads_session(
    text: str, *, name: str = "<string>", path: Path | None = None
) -> RecordedSession:
    """Read a session from the text of a file; ``name`` names it in errors.

    ``path`` (used by :func:`load_session`) is where the file is, to find its audio.
    Raises :class:`SessionFormatError` at the first problem, and nothing else for
    any text (a ``TypeError`` if ``text`` is not a ``str``).
    """
    if not isinstance(text, str):
        raise TypeError(f"loads_session takes str, not {type(text).__name__}")
    if not text:
        raise SessionFormatError(name, None, "empty file: no header line")
    problem = _not_a_session(_text_head(text))
    if problem is not None:
        raise SessionFormatError(name, None, problem)
    reading = _read(_split_lines(text), first_only=True)
    if reading.problems:
        raise SessionFormatError(name, *reading.problems[0])
    assert reading.header is not None
    return RecordedSession(reading.header, tuple(e for _, e in reading.entries), path)


def load_session(path: str | os.PathLike[str]) -> RecordedSession:
    """Read the session file at ``path`` (UTF-8 JSON Lines, format version 1).

    Raises :class:`SessionFormatError` naming the file, the line and the problem
    (a file that is plainly something else, a WAV file say, is one problem, of the
    whole file), or ``OSError`` if the file can't be read.
    """
    where = Path(path)
    data = where.read_bytes()
    problem = _not_a_session(data[:_HEAD_BYTES])
    if problem is not None:
        raise SessionFormatError(str(where), None, problem)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # The first problem, in line order, each line decoded on its own (as check does).
        reading = _read(_decoded_lines(data), first_only=True)
        raise SessionFormatError(str(where), *reading.problems[0]) from None
    return loads_session(text, name=str(where), path=where)


def _decoded_lines(data: bytes) -> list[str | _LineError]:
    """The lines of a file, each decoded on its own: a line that is not UTF-8 is a problem."""
    try:
        return list(_split_lines(data.decode("utf-8")))
    except UnicodeDecodeError:
        pass
    lines: list[str | _LineError] = []
    raw = data.split(b"\n")
    if raw[-1] == b"":
        raw.pop()
    for line in raw:
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append(_LineError(f"not UTF-8: {exc.reason}"))
    return lines


@final
@attrs.frozen
class _FileReading:
    """A whole file read, for ``aai-replay check``: every problem, and what loaded.

    ``session`` holds the header and the entries that loaded (``None`` when the
    header did not, or the file is plainly something else); ``entry_lines`` is the
    line of each of its entries; ``errors`` has one error per problem, in line order.
    """

    session: RecordedSession | None
    entry_lines: tuple[int, ...]
    errors: tuple[SessionFormatError, ...]


def _read_file(path: str | os.PathLike[str]) -> _FileReading:
    """Read the session file at ``path`` to its end (``OSError`` if it can't be read)."""
    where = Path(path)
    name = str(where)
    data = where.read_bytes()
    problem = "empty file: no header line" if not data else _not_a_session(data[:_HEAD_BYTES])
    if problem is not None:
        return _FileReading(None, (), (SessionFormatError(name, None, problem),))
    reading = _read(_decoded_lines(data), first_only=False)
    errors = tuple(SessionFormatError(name, line, problem) for line, problem in reading.problems)
    session = None
    if reading.header is not None:
        # Credentials in the header refuse the session: a problem of line 1, reported.
        with contextlib.suppress(SessionFormatError):
            session = RecordedSession(reading.header, [e for _, e in reading.entries], where)
    lines = tuple(line for line, _ in reading.entries) if session is not None else ()
    return _FileReading(session, lines, errors)


# -- writing ------------------------------------------------------------------------


def _escape_surrogate(found: re.Match[str]) -> str:
    return f"\\u{ord(found[0]):04x}"


def _escape_lone_surrogates(json_text: str) -> str:
    """``json_text`` (written with ``ensure_ascii=False``) with each lone surrogate as
    JSON's ``\\udXXX`` escape: UTF-8 text that reads back as the same value.

    A lone surrogate is no UTF-8; in JSON text only a string holds one, and the
    escape reads back as it, unless a high surrogate and a low one stand side by
    side (the escaped pair reads as one character): a session's validators refuse that.
    """
    if json_text.isascii():
        return json_text
    return _SURROGATE.sub(_escape_surrogate, json_text)


def _dump_line(obj: Mapping[str, Any]) -> str:
    # Characters are written as they are (a file people read), lone surrogates escaped.
    return _escape_lone_surrogates(json.dumps(obj, ensure_ascii=False, allow_nan=False))


def _header_json(header: Header) -> dict[str, Any]:
    data: dict[str, Any] = {
        "aai_session": FORMAT_VERSION,
        "request": {"path": header.request.path, "query": dict(header.request.query)},
    }
    for key in ("audio", "source", "description"):
        value = getattr(header, key)
        if value is not None:
            data[key] = value
    data.update(header.extra)
    return data


def _entry_json(entry: Entry) -> dict[str, Any]:
    if isinstance(entry, ServerMessage):
        return {"t": entry.t, "server": dict(entry.message)}
    if isinstance(entry, ServerRaw):
        return {"t": entry.t, "server_raw": entry.text}
    if isinstance(entry, ClientAudio):
        return {"t": entry.t, "client_audio": entry.nbytes}
    if isinstance(entry, ClientMessage):
        return {"t": entry.t, "client": dict(entry.message)}
    return {"t": entry.t, "close": {"code": entry.code, "reason": entry.reason, "by": entry.by}}


def dumps_session(session: RecordedSession) -> str:
    """Write a session as the text of a file: header line, one line per entry, ``\\n`` each."""
    lines = [_dump_line(_header_json(session.header))]
    lines.extend(_dump_line(_entry_json(entry)) for entry in session.entries)
    return "\n".join(lines) + "\n"


def write_session(session: RecordedSession, path: str | os.PathLike[str]) -> None:
    """Write ``session`` to the file at ``path`` (replacing it), UTF-8 with ``\\n`` endings."""
    Path(path).write_bytes(dumps_session(session).encode("utf-8"))


@final
class SessionWriter:
    """Writes a session file line by line, as the session happens (for a recorder).

    The header is written when the writer is made; each :meth:`write` checks the
    entry against the ones before it (``t`` never going backwards, nothing after
    ``close``, no credentials), then writes and flushes its line. A refused entry
    raises :class:`SessionFormatError` and writes nothing. Use it as a context
    manager, or call :meth:`close`.

    ``hook``, if given, sees each entry first and returns what to write: the entry,
    changed or not, or ``None`` to write nothing (see :func:`aai_replay.mask_text`:
    a recording made safe to commit).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: Header,
        *,
        hook: Callable[[Entry], Entry | None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.hook = hook
        if not isinstance(header, Header):
            raise TypeError(f"header must be a Header, not {type(header).__name__}")
        problem = _check_header_credentials(header)
        if problem is not None:
            raise SessionFormatError(str(self.path), 1, problem)
        self.header = header
        self._order = _Order()
        self._line = 1
        self._file: IO[bytes] | None = self.path.open("wb")
        self._put(_dump_line(_header_json(header)))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._file is None

    def _put(self, line: str) -> None:
        assert self._file is not None
        self._file.write(line.encode("utf-8") + b"\n")
        self._file.flush()

    def write(self, entry: Entry) -> None:
        """Check ``entry`` and write its line."""
        if self._file is None:
            raise ValueError("the session writer is closed")
        if self.hook is not None:
            kept = self.hook(entry)
            if kept is None:
                return
            entry = kept
        problem = self._order.check(entry, self._line + 1)
        if problem is not None:
            raise SessionFormatError(str(self.path), self._line + 1, problem)
        self._put(_dump_line(_entry_json(entry)))
        self._line += 1

    def close(self) -> None:
        """Close the file. Idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
