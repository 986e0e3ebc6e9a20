"""Recording sessions: a local WebSocket proxy in front of the real service.

Strategy: for each client connection the proxy first opens the upstream
connection, with the client's own query and headers (so the client's
``Authorization`` header or ``token`` reaches the service, and an upstream that
refuses the upgrade is answered to the client with the same HTTP status); only
then does it accept the client. Two tasks then copy frames, one each way. What to
do with each frame -- forward it, record it, answer it for the service -- is
decided without I/O by :class:`FrameRelay`, which writes the frame's entry
*before* the frame is forwarded, so the file's order is the order the proxy saw
things happen, and a frame's entry is on disk before its receiver sees it. ``t``
counts seconds since the client's WebSocket opened.

Recording never costs a peer a frame: a frame the recorder can't write in full is
written in a lesser form or left out, with a warning, and still forwarded. The
recorder answers only what the service would refuse (``aai_proto.ClientChecker``
says what), as the service does.

The file describes the client's connection: its ``close`` entry is the close the
client saw (the upstream's code and reason, passed through; the service's code
when the recorder answered for it; 1011 when the upstream vanished without a
close frame; 1001 when the recorder was stopped).

Both TCP streams are opened (or accepted) here and closed here, whatever
happens: trio-websocket leaves a socket open when the peer ends the connection
first. The upgrades run over them with ``wrap_server_stream`` and
``wrap_client_stream``.

Credentials never reach the file, the log or an error: ``token`` (and the webhook
secret) are removed from the recorded query, headers are not recorded at all, the
session writer refuses any entry holding an ``Authorization`` key, an upstream URL
with a user name or password is refused at start, and every log line of a
connection has the connection's credentials (as sent and as decoded) masked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeAlias, cast, final
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

import attrs
import h11
import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    WebSocketRequest,
    wrap_client_stream,
    wrap_server_stream,
)

import aai_proto
from aai_proto import ClientChecker, Rejection, Violation
from aai_proto._params import _is_credential_name

from ._http import BAD_REQUEST, parse_head, split_token_request
from ._session import (
    ClientAudio,
    ClientMessage,
    Close,
    Entry,
    Header,
    Request,
    ServerMessage,
    ServerRaw,
    SessionFormatError,
    SessionWriter,
    strip_credentials,
)

__all__ = [
    "REFUSED_CLOSE",
    "EntryKind",
    "FrameOutcome",
    "FrameRelay",
    "OutputPathError",
    "record",
    "session_path",
]

logger = logging.getLogger("aai_replay.record")

CONNECT_TIMEOUT: Final = 10.0
_MAX_TOKEN_ANSWER: Final = 1 << 20  # a token answer is a few hundred bytes
"""Seconds allowed for a WebSocket upgrade, the client's or the upstream's."""
DISCONNECT_TIMEOUT: Final = 5.0
"""Seconds allowed for a closing handshake."""

# Headers that belong to one HTTP hop or to the WebSocket handshake itself: the
# upstream connection makes its own. Everything else (Authorization, User-Agent,
# AssemblyAI-Version, ...) is passed on as the client sent it.
_HOP_HEADERS: Final = frozenset(
    {
        b"connection",
        b"upgrade",
        b"host",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"content-length",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    }
)
# Close codes that can't be sent in a close frame (RFC 6455, section 7.4.1).
_LOCAL_ONLY_CODES: Final = frozenset({1005, 1006, 1015})
_UNREACHABLE_BODY: Final = b"aai-replay record: can't connect to the upstream server\n"


def session_path(out: str | os.PathLike[str], index: int) -> Path:
    """Where the recorder writes its ``index``-th session, counting from 1.

    The first is ``out`` itself; with ``--out calls.jsonl`` the second connection
    is written to ``calls-2.jsonl``, the third to ``calls-3.jsonl``, next to ``out``.
    """
    path = Path(out)
    if index < 1:
        raise ValueError(f"session index starts at 1, got {index}")
    return path if index == 1 else path.with_name(f"{path.stem}-{index}{path.suffix}")


def _check_upstream(upstream: str) -> None:
    """Refuse an upstream URL the recorder can't use, in words that hold no credential."""
    try:
        parts = urlsplit(upstream)
    except ValueError:  # an unbalanced "[" in the host
        raise ValueError("upstream must be a ws:// or wss:// URL with a host") from None
    if "@" in parts.netloc:
        # It would reach the log, and the Host header; and the service's credentials
        # are each client's own (its Authorization header or token, passed on).
        raise ValueError(
            "the upstream URL must not hold a user name or password: the recorder "
            "passes on each client's own Authorization header or token"
        )
    shown = aai_proto.redact_url(upstream)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"upstream must be a ws:// or wss:// URL with a host, got {shown!r}")
    try:
        parts.port  # noqa: B018 - read for the check: it raises for a bad port
    except ValueError:
        raise ValueError(f"the upstream URL has an invalid port: {shown!r}") from None


class OutputPathError(ValueError):
    """The recorder can't write sessions where its ``out`` path says: raised at start.

    ``path`` is the ``out`` path given, ``problem`` says what is wrong, in words;
    ``str()`` reads ``can't record to '<path>': <problem>``.
    """

    path: Path
    problem: str

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"can't record to {str(path)!r}: {problem}")

    def __reduce__(self) -> tuple[type[OutputPathError], tuple[Path, str]]:
        # Rebuilt from what __init__ takes, so that it pickles.
        return type(self), (self.path, self.problem)


def _output_problem(out: Path, save_audio: bool) -> str | None:
    """Why sessions can't be written at ``out`` (and next to it), or ``None``."""
    folder = out.parent
    if not folder.exists():
        return f"the folder {str(folder)!r} does not exist"
    if not folder.is_dir():
        return f"{str(folder)!r} is not a folder"
    if out.is_dir():
        return "it is a folder, not a file"
    if out.exists() and not out.is_file():
        return "it is not a regular file"
    if save_audio:
        for sidecar in (out.with_suffix(".wav"), out.with_suffix(".raw")):
            if sidecar.exists() and not sidecar.is_file():
                what = "a folder" if sidecar.is_dir() else "not a regular file"
                return f"its audio file {str(sidecar)!r} is {what}, not a file"
    # Written to (an existing file, opened to append nothing) or created in (a file
    # made and removed), without touching what is there: root may write anywhere,
    # so access() can't say.
    try:
        if out.exists():
            with out.open("ab"):
                pass
    except OSError as exc:
        return f"it can't be written: {exc.strerror or exc}"
    if not out.exists():
        try:
            fd, probe = tempfile.mkstemp(prefix=".aai-replay-", suffix=".probe", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return f"the folder {str(folder)!r} can't be written to: {exc.strerror or exc}"
    return None


def _check_output(out: Path, save_audio: bool) -> None:
    """Raise :class:`OutputPathError` if sessions can't be written at ``out``."""
    try:
        problem = _output_problem(out, save_audio)
    except OSError as exc:  # a folder on the way that can't be looked into
        problem = f"it can't be reached: {exc.strerror or exc}"
    except ValueError as exc:  # a NUL in the path
        problem = f"it is not a usable path: {exc}"
    if problem is not None:
        raise OutputPathError(out, problem)


def _upstream_url(upstream: str, query: str) -> str:
    parts = urlsplit(upstream)
    joined = "&".join(q for q in (parts.query, query) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, or of each one inside an exception group."""
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple):
        return "; ".join(_describe(e) for e in inner)
    return f"{type(exc).__name__}: {exc}"


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# -- the upstream connection --------------------------------------------------------


class _UpstreamFailed(Exception):
    """The upstream connection could not be opened; ``status`` is what the client gets."""

    def __init__(self, status: int, body: bytes, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.body = body


@final
class _ReaderNursery:
    """What trio-websocket is handed as the nursery of an upstream connection's reader.

    trio-websocket raises a refused upgrade from its reader task, into the nursery
    the task runs in, rather than from the call waiting for the handshake. This
    runs the task in the real nursery, keeps what it raised, and stops the wait
    for the handshake as soon as the task ends, so a refusal is reported at once.
    """

    def __init__(self, nursery: trio.Nursery, waiting: trio.CancelScope) -> None:
        self._nursery = nursery
        self._waiting = waiting
        self.failure: Exception | None = None

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        self._nursery.start_soon(self._run, fn, *args)

    async def _run(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        try:
            await fn(*args)
        except Exception as exc:  # kept: the handshake's caller reports it
            self.failure = exc
        finally:
            self._waiting.cancel()  # after the handshake, a no-op


async def _open_stream(url: str) -> trio.abc.Stream:
    """The TCP connection to a ``ws://`` URL's host, TLS for ``wss://``, within CONNECT_TIMEOUT.

    Raises ``OSError`` or ``trio.TooSlowError``.
    """
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    with trio.fail_after(CONNECT_TIMEOUT):
        if secure:
            return await trio.open_ssl_over_tcp_stream(host, port, https_compatible=True)
        return await trio.open_tcp_stream(host, port)


@asynccontextmanager
async def _upstream_connection(
    url: str, headers: list[tuple[bytes, bytes]], shown: str
) -> AsyncIterator[WebSocketConnection]:
    """Open ``url`` (TCP, TLS for wss, then the upgrade); always close the socket after.

    Raises :class:`_UpstreamFailed` if it can't be opened.
    """
    parts = urlsplit(url)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        stream = await _open_stream(url)
    except (OSError, trio.TooSlowError) as exc:
        raise _UpstreamFailed(502, _UNREACHABLE_BODY, f"can't reach {shown}: {exc}") from None
    ws: WebSocketConnection | None = None
    try:
        async with trio.open_nursery() as nursery:
            with trio.move_on_after(CONNECT_TIMEOUT) as waiting:
                reader = _ReaderNursery(nursery, waiting)
                ws = await wrap_client_stream(
                    cast(trio.Nursery, reader),
                    cast(trio.SocketStream, stream),
                    parts.netloc,
                    resource,
                    extra_headers=headers,
                )
            if ws is not None:
                try:
                    yield ws
                finally:
                    with trio.CancelScope(shield=True):
                        await _aclose(ws, 1000, "")
            nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)
    if ws is None:
        failure = reader.failure
        if isinstance(failure, ConnectionRejected):
            raise _UpstreamFailed(
                failure.status_code,
                failure.body or b"",
                f"{shown} refused the upgrade: HTTP {failure.status_code}",
            )
        raise _UpstreamFailed(
            502, _UNREACHABLE_BODY, f"{shown} did not complete the WebSocket upgrade"
        )


async def _aclose(ws: WebSocketConnection, code: int, reason: str) -> None:
    # A peer that never answers the close frame must not hold the session open.
    with trio.move_on_after(DISCONNECT_TIMEOUT):
        await ws.aclose(code, reason)


# -- writing a session -------------------------------------------------------------------

_WAV_HEADER: Final = struct.Struct("<4sI4s4sIHHIIHH4sI")
# The most a RIFF file's 32-bit sizes can say (3 h of 16 kHz audio is 346 MB).
_MAX_WAV_DATA: Final = 0xFFFF_FFFF - 36
_MAX_WAV_RATE: Final = 0xFFFF_FFFF // 2  # its byte rate, 2 bytes a frame, is 32 bits too


@final
class _AudioSink:
    """The audio sidecar: a WAV file for ``pcm_s16le`` with a sample rate, else raw bytes.

    Strategy: the file is right after every write, so that a recorder killed at any
    moment leaves a sidecar that holds, and says it holds, every byte written so
    far. Each write goes to the operating system at once, then the WAV header's two
    sizes are rewritten (44 bytes at the start of the file: cheap), data first, so
    the header never claims more than the file holds.
    """

    def __init__(self, session: Path, query: Mapping[str, str]) -> None:
        rate: int | None = None
        try:
            params = aai_proto.parse_url("?" + urlencode(list(query.items())))
            fmt = aai_proto.AudioFormat.from_params(params)
        except ValueError:  # InvalidParameter too: the upstream will say what is wrong
            fmt = None
        if fmt is not None and fmt.encoding == "pcm_s16le":
            rate = fmt.sample_rate
        if rate is not None and not 0 < rate <= _MAX_WAV_RATE:
            rate = None  # no WAV header can say it: the bytes as sent
        self._rate = rate
        self._size = 0
        self.path = session.with_suffix(".raw" if rate is None else ".wav")
        self._file: IO[bytes] | None = self.path.open("wb")
        if rate is not None:
            self._file.write(self._header())
            self._file.flush()

    def _header(self) -> bytes:
        assert self._rate is not None
        size = min(self._size, _MAX_WAV_DATA)
        rate = self._rate
        # PCM (format 1), mono, 16-bit: 2 bytes a frame.
        return _WAV_HEADER.pack(
            b"RIFF", 36 + size, b"WAVE", b"fmt ", 16, 1, 1, rate, 2 * rate, 2, 16, b"data", size
        )

    def write(self, data: bytes) -> None:
        """Append ``data``; the file on disk says it holds it when this returns."""
        file = self._file
        if file is None:
            return
        file.write(data)
        file.flush()
        self._size += len(data)
        if self._rate is not None:
            file.seek(0)
            file.write(self._header())
            file.seek(0, os.SEEK_END)
            file.flush()

    def close(self) -> None:
        """Close the file (its header is already right). Idempotent."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


EntryKind: TypeAlias = Literal["server", "server_raw", "client", "client_audio"]
"""The kind of entry a recorded frame became (the session format's key for it)."""

REFUSED_CLOSE: Final = (1001, "aai-replay record: the client broke the protocol")
"""How the recorder closes the upstream after answering a client frame the service refuses."""


@final
@attrs.frozen(kw_only=True)
class FrameOutcome:
    """What the recorder does with one frame: see :class:`FrameRelay`."""

    forward: str | bytes | None = None
    """The frame to send on to its receiver -- the very object received -- or ``None``."""
    recorded: EntryKind | None = None
    """The entry the frame became in the session file; ``None`` if it became none."""
    answer: Rejection | None = None
    """For a client frame the service refuses: send ``answer.message`` to the client, close
    it with ``answer.code`` and ``Rejection.reason``, and close the upstream with
    :data:`REFUSED_CLOSE`. The ``Error`` and the close are already recorded."""

    @property
    def name(self) -> str:
        """The outcome in a few words, for counting: ``forwarded, recorded server_raw``, ..."""
        if self.answer is not None:
            what = f"answered {self.answer.code}"
        elif self.forward is not None:
            what = "forwarded"
        else:
            what = "dropped"
        return f"{what}, {'not recorded' if self.recorded is None else 'recorded ' + self.recorded}"


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateKey("a key appears twice")
    return out


def _json_object(text: str) -> dict[str, Any] | None:
    """``text`` read as a JSON object; ``None`` for anything else.

    Not JSON, another JSON value, a key twice (the parsed object would not say what
    was sent), nested too deep for the parser: none of these can be a parsed entry.
    """
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):  # JSONDecodeError, _DuplicateKey, over 4300 digits
        return None
    return data if isinstance(data, dict) else None


def _why(exc: BaseException) -> str:
    if isinstance(exc, SessionFormatError):
        return exc.problem
    if isinstance(exc, RecursionError):
        return "nested too deep to write"
    return str(exc) or type(exc).__name__


def _no_note(_: str) -> None:
    pass


@final
class FrameRelay:
    """What the recorder does with each frame of one connection: forward, record, answer.

    The proxy's decisions, without sockets or clocks: made with the session's
    ``writer`` (its header already written; ``None`` records nothing), the client's
    request ``target`` (path and query) and the audio sidecar, if any. Feed it each
    frame with :meth:`server_frame` or :meth:`client_frame` and ``t`` (seconds since
    the client's WebSocket opened), and do what the :class:`FrameOutcome` says; tell
    it how the connection closed with :meth:`close`; then :meth:`finish`. Nothing
    here raises for what a peer sent; ``on_note`` hears, in words, about each frame
    that was not recorded, or not in full.

    Strategy: recording never decides what is forwarded.

    - A server frame is always forwarded unchanged (the client is its judge). A text
      frame is recorded as a ``server`` entry when it is a JSON object the writer
      takes, else verbatim as ``server_raw``, else (a credential in it, say) not at all.
    - A client frame goes through :class:`aai_proto.ClientChecker`, the service's
      own rules. What the service accepts -- lifecycle violations included, whose
      answer is the service's to give -- is forwarded unchanged and recorded as a
      ``client`` entry (only its ``type`` when the writer can't take the rest), or
      ``client_audio``. What the service refuses is answered as the service does
      (:attr:`FrameOutcome.answer`: ``Error`` 3006 or 3007, then that close), and
      not forwarded. A request the checker refuses is the upstream's to answer: the
      client's frames are then forwarded unchecked.
    - A write that fails for what the frame holds (``ValueError``, ``RecursionError``)
      falls back as above; one that fails for the disk (``OSError``) stops the
      recording, never the connection.
    """

    def __init__(
        self,
        writer: SessionWriter | None,
        *,
        target: str,
        audio: _AudioSink | None = None,
        on_note: Callable[[str], None] = _no_note,
    ) -> None:
        self._writer = writer
        self._recording = writer is not None
        self._audio = audio
        self._on_note = on_note
        self._last_t = 0.0
        self._closed = False
        checker = ClientChecker()
        rejection = checker.receive_request(target)
        self._checker: ClientChecker | None = checker if rejection is None else None
        if rejection is not None:
            self._note(
                f"the service would refuse this request ({rejection.error}): the upstream "
                "answers it, and the client's frames are forwarded unchecked"
            )

    def _note(self, text: str) -> None:
        # A lone surrogate (quoted from a frame) can't be written to a UTF-8 log.
        self._on_note(text.encode("utf-8", "backslashreplace").decode("utf-8"))

    @property
    def closed(self) -> bool:
        """Whether the connection is over for the recorder: later frames are dropped."""
        return self._closed

    def _time(self, t: float) -> float:
        # Entries need t finite, >= 0 and never going back, whatever the clock did.
        if not math.isfinite(t) or not t > self._last_t:
            t = self._last_t
        self._last_t = round(t, 3)
        return self._last_t

    def _write(self, build: Callable[[], Entry]) -> str | None:
        """Build an entry and write it; ``None`` when written, else why not."""
        if self._writer is None or not self._recording:
            return "the session file is not being written"
        try:
            self._writer.write(build())
        except OSError as exc:
            # A line may be half written: nothing more goes after it.
            self._recording = False
            self._note(
                f"the session file can't be written ({exc.strerror or exc}): the recording "
                "stops here, the connection goes on"
            )
            return "the session file can't be written"
        except (ValueError, RecursionError) as exc:
            # What the frame holds (a lone surrogate, NaN, a credential, deep nesting):
            # SessionFormatError, UnicodeEncodeError, an entry's own check.
            return _why(exc)
        return None

    def _record_server_text(self, text: str, t: float) -> EntryKind | None:
        data = _json_object(text)
        problem = None
        if data is not None:
            problem = self._write(lambda: ServerMessage(t, data))
            if problem is None:
                return "server"
        raw_problem = self._write(lambda: ServerRaw(t, text))
        if raw_problem is None:
            if problem is not None:
                self._note(f"a server message recorded verbatim (server_raw): {problem}")
            return "server_raw"
        if self._recording:
            self._note(f"a server message not recorded: {raw_problem}")
        return None

    def server_frame(self, message: str | bytes, t: float) -> FrameOutcome:
        """The upstream sent ``message`` (``str``: a text frame, ``bytes``: binary) at ``t``."""
        if self._closed:
            return FrameOutcome()
        t = self._time(t)
        if not isinstance(message, str):
            self._note(
                f"the server sent a binary frame ({len(message)} bytes); the session format "
                "has no place for it"
            )
            return FrameOutcome(forward=message)
        return FrameOutcome(forward=message, recorded=self._record_server_text(message, t))

    def client_frame(self, message: str | bytes, t: float) -> FrameOutcome:
        """The client sent ``message`` (``str``: a text frame, ``bytes``: audio) at ``t``."""
        if self._closed:
            return FrameOutcome()
        t = self._time(t)
        checker = self._checker
        recorded: EntryKind | None
        result: aai_proto.ClientMessage | Rejection | Violation | None
        if isinstance(message, str):
            result = None if checker is None else checker.receive_text(message)
            if isinstance(result, Rejection):
                return self._answer(result, t, None)
            recorded = self._record_client_text(message, t, result)
        else:
            result = None if checker is None else checker.receive_audio(message)
            recorded = self._record_audio(message, t)
            if isinstance(result, Rejection):
                return self._answer(result, t, recorded)
        if isinstance(result, Violation):
            self._note(f"the client sent {result.rule}: forwarded, for the service to answer")
        return FrameOutcome(forward=message, recorded=recorded)

    def _record_client_text(
        self, text: str, t: float, result: aai_proto.ClientMessage | Violation | None
    ) -> EntryKind | None:
        data = _json_object(text)
        kind: str | None = None
        problem = "not a JSON object"
        if data is not None and type(data.get("type")) is str:
            failed = self._write(lambda: ClientMessage(t, data))
            if failed is None:
                return "client"
            problem, kind = failed, data["type"]
        message = result.message if isinstance(result, Violation) else result
        if message is not None:
            kind = message.type  # what the service read, whatever the text holds
        if kind is None:
            self._note(
                "the client sent a text frame that is not a JSON message with a 'type'; "
                "the session format has no place for it"
            )
            return None
        # The type is what a replay's gates wait for: record that much.
        only = kind
        if self._write(lambda: ClientMessage(t, {"type": only})) is None:
            self._note(f"a client message recorded as its type only: {problem}")
            return "client"
        if self._recording:
            self._note(f"a client message not recorded: {problem}")
        return None

    def _record_audio(self, frame: bytes, t: float) -> EntryKind | None:
        nbytes = len(frame)
        if self._write(lambda: ClientAudio(t, nbytes)) is not None:
            return None
        if self._audio is not None:
            try:
                self._audio.write(frame)
            except OSError as exc:
                self._audio = None
                self._note(
                    f"the audio file can't be written ({exc.strerror or exc}): "
                    "no more audio is saved"
                )
        return "client_audio"

    def _answer(self, rejection: Rejection, t: float, recorded: EntryKind | None) -> FrameOutcome:
        self._note(
            f"the client sent what the service refuses: answered for it with Error "
            f"{rejection.code} ({rejection.error}), not forwarded"
        )
        self._closed = True
        self._record_server_text(rejection.message, t)
        self._write(lambda: Close(t, rejection.code, Rejection.reason, "server"))
        return FrameOutcome(recorded=recorded, answer=rejection)

    def close(self, code: int, reason: str, by: Literal["server", "client"], t: float) -> bool:
        """The connection closed at ``by``'s wish: record it; ``False`` if it was already over."""
        if self._closed:
            return False
        self._closed = True
        t = self._time(t)
        problem = self._write(lambda: Close(t, code, reason, by))
        if problem is not None and self._recording:
            self._note(f"the close not recorded: {problem}")
        return True

    def finish(self) -> None:
        """Close the session file and the audio sidecar. Idempotent."""
        for resource in (self._writer, self._audio):
            if resource is not None:
                try:
                    resource.close()
                except OSError as exc:
                    self._note(f"a file of the session can't be closed: {exc.strerror or exc}")
        self._writer = None
        self._audio = None
        self._recording = False


def _close_for_client(closed: CloseReason | None) -> tuple[int, str]:
    """The close to give the client when the upstream connection ended as ``closed``."""
    if closed is None:
        return 1011, "upstream connection lost"
    code, reason = int(closed.code), closed.reason or ""
    if code in (1006, 1015):
        return 1011, "upstream connection lost"
    if code == 1005:
        return 1000, ""
    return code, reason


def _close_for_upstream(code: int, reason: str) -> tuple[int, str]:
    """The close to give the upstream when the client's connection ended with ``code``."""
    if code == 1005:
        return 1000, ""
    if code in _LOCAL_ONLY_CODES:
        return 1001, "client went away"
    return code, reason


# -- the proxy --------------------------------------------------------------------------


def _is_credential(key: str) -> bool:
    # A query parameter named like the header (any case) is refused by the session
    # writer as a credential: it is one.
    return _is_credential_name(key)


def _recordable_query(query: Mapping[str, str]) -> dict[str, str]:
    """The query as a session header holds it: without any credential."""
    return {k: v for k, v in strip_credentials(query).items() if not _is_credential(k)}


def _credentials(raw_query: str, headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every credential a request holds, as sent and as decoded: no log line may show one.

    Longest first, so that one holding another is masked whole.
    """
    found: set[str] = set()
    for part in raw_query.split("&"):
        key, _, value = part.partition("=")
        if _is_credential(unquote_plus(key)):
            found |= {value, unquote_plus(value)}
    for name, raw in headers:
        if name.lower() in (b"authorization", b"proxy-authorization"):
            found |= {raw.decode("latin-1"), raw.decode("utf-8", "replace")}
    return sorted((s for s in found if s), key=len, reverse=True)


@final
class _Recorder:
    def __init__(
        self,
        out: Path,
        upstream: str,
        save_audio: bool,
        hook: Callable[[Entry], Entry | None] | None = None,
        first: int = 1,
    ) -> None:
        self.out = out
        self.hook = hook
        self.upstream = upstream
        self.shown = aai_proto.redact_url(upstream)
        # The upstream URL's own query may hold a token: masked wherever a client's is.
        self.secrets = _credentials(urlsplit(upstream).query, ())
        self.save_audio = save_audio
        self._count = first - 1
        self.description = f"recorded by aai-replay record through {urlsplit(upstream).hostname}"
        self.stopping = False
        # What stop() cancels: each connection still in its handshakes, and the
        # frame copying of each live session (whose closes then still run).
        self._opening: set[trio.CancelScope] = set()
        self._copying: set[trio.CancelScope] = set()

    def stop(self) -> None:
        """End every connection: live sessions close with 1001 and complete their files."""
        self.stopping = True
        for scope in (*self._opening, *self._copying):
            scope.cancel()

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one client connection; never raises but ``Cancelled``."""
        secrets = list(self.secrets)
        try:
            async with trio.open_nursery() as nursery:
                self._opening.add(nursery.cancel_scope)
                if self.stopping:
                    nursery.cancel_scope.cancel()
                request = None
                with trio.move_on_after(CONNECT_TIMEOUT):
                    head, rest = await split_token_request(stream)
                    if head is not None:
                        await self._pass_token_request(stream, head)
                        return
                    request = await wrap_server_stream(nursery, rest)
                if request is not None:
                    target = urlsplit(request.path)
                    secrets = _credentials(target.query, request.headers) + secrets
                    pairs = parse_qsl(target.query, keep_blank_values=True)
                    await self._proxy(
                        request,
                        target.path or "/v3/ws",
                        target.query,
                        dict(pairs),
                        nursery,
                        secrets,
                    )
                nursery.cancel_scope.cancel()
        except Exception as exc:  # one connection's failure never stops the recorder
            logger.error("connection failed: %s", _scrub(_describe(exc), secrets))
        finally:
            self._opening.discard(nursery.cancel_scope)
            await trio.aclose_forcefully(stream)

    async def _pass_token_request(self, client: trio.abc.Stream, head: bytes) -> None:
        """Pass ``GET /v3/token`` to the upstream's host and its answer back; record nothing."""
        parsed = parse_head(head)
        if parsed is None:
            await client.send_all(BAD_REQUEST)
            return
        _, event = parsed
        parts = urlsplit(self.upstream)
        kept = [(k, v) for k, v in event.headers if k not in (b"host", b"connection")]
        request = h11.Request(
            method="GET",
            target=event.target,
            headers=[(b"host", parts.netloc.encode()), (b"connection", b"close"), *kept],
        )
        answer = b""
        try:
            async with await _open_stream(self.upstream) as upstream:
                outgoing = h11.Connection(h11.CLIENT)
                await upstream.send_all(outgoing.send(request) + outgoing.send(h11.EndOfMessage()))
                with trio.fail_after(CONNECT_TIMEOUT):
                    while len(answer) < _MAX_TOKEN_ANSWER and (
                        data := await upstream.receive_some(1 << 16)
                    ):
                        answer += data
        except (OSError, trio.TooSlowError, trio.BrokenResourceError):
            answer = b""
        if not answer.startswith(b"HTTP/1.1 "):
            logger.warning("token request: can't reach %s", self.shown)
            answer = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        else:
            logger.info("token request passed to %s (not recorded)", self.shown)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await client.send_all(answer)

    async def _proxy(
        self,
        request: WebSocketRequest,
        path: str,
        raw_query: str,
        query: dict[str, str],
        connection: trio.Nursery,
        secrets: list[str],
    ) -> None:
        url = _upstream_url(self.upstream, raw_query)
        headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP_HEADERS]
        try:
            async with _upstream_connection(url, headers, self.shown) as upstream:
                try:
                    client = await request.accept()
                except ConnectionClosed:
                    return  # the client left during the handshake
                # From here stop() ends the session, no longer the whole connection.
                self._opening.discard(connection.cancel_scope)
                target = f"{path}?{raw_query}" if raw_query else path
                await self._session(client, upstream, path, target, query, secrets)
        except _UpstreamFailed as exc:
            logger.warning("connection refused: %s", _scrub(str(exc), secrets))
            await request.reject(exc.status, body=exc.body or None)

    async def _session(
        self,
        client: WebSocketConnection,
        upstream: WebSocketConnection,
        path: str,
        target: str,
        query: dict[str, str],
        secrets: list[str],
    ) -> None:
        self._count += 1
        index = self._count
        where = session_path(self.out, index)
        recorded_query = _recordable_query(query)
        audio: _AudioSink | None = None
        try:
            audio = _AudioSink(where, recorded_query) if self.save_audio else None
            header = Header(
                Request(path, recorded_query),
                audio=None if audio is None else audio.path.name,
                source="recorded",
                description=self.description,
            )
            writer = SessionWriter(where, header, hook=self.hook)
        except (OSError, ValueError) as exc:
            if audio is not None:
                audio.close()
            if isinstance(exc, OSError):
                logger.error(
                    "session %d: can't write %s: %s", index, exc.filename or where, exc.strerror
                )
            else:  # a header the session format refuses
                logger.error("session %d: can't record it: %s", index, _scrub(str(exc), secrets))
            reason = "aai-replay record can't write the session file"
            with trio.CancelScope(shield=True):
                await _aclose(client, 1011, reason)
                await _aclose(upstream, 1001, reason)
            return
        logger.info("session %d: recording to %s", index, where)

        def note(text: str) -> None:
            logger.warning("session %d: %s", index, _scrub(text, secrets))

        t0 = trio.current_time()

        def now() -> float:
            return trio.current_time() - t0

        relay = FrameRelay(writer, target=target, audio=audio, on_note=note)
        copying = trio.CancelScope()
        self._copying.add(copying)
        try:
            with copying:
                if self.stopping:
                    copying.cancel()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._downstream, upstream, client, relay, now, copying)
                    nursery.start_soon(self._upstream, client, upstream, relay, now, copying)
        finally:
            self._copying.discard(copying)
            # Stopped, or failed: the file still ends with the close the client gets.
            ending = (1001, "recorder stopped") if self.stopping else (1011, "recorder error")
            if relay.close(*ending, "server", now()):
                with trio.CancelScope(shield=True):
                    await _aclose(client, *ending)
                    await _aclose(upstream, 1001, ending[1])
            relay.finish()
            logger.info("session %d: written to %s", index, where)

    @staticmethod
    async def _downstream(
        upstream: WebSocketConnection,
        client: WebSocketConnection,
        relay: FrameRelay,
        now: Callable[[], float],
        scope: trio.CancelScope,
    ) -> None:
        while True:
            try:
                message = await upstream.get_message()
            except ConnectionClosed:
                code, reason = _close_for_client(upstream.closed)
                if relay.close(code, reason, "server", now()):
                    await _aclose(client, code, reason)
                    scope.cancel()
                return
            outcome = relay.server_frame(message, now())
            if outcome.forward is None:
                continue  # the session is over: its close is on its way
            try:
                await client.send_message(outcome.forward)
            except ConnectionClosed:
                return  # the client is gone: the other task records how

    @staticmethod
    async def _upstream(
        client: WebSocketConnection,
        upstream: WebSocketConnection,
        relay: FrameRelay,
        now: Callable[[], float],
        scope: trio.CancelScope,
    ) -> None:
        while True:
            try:
                message = await client.get_message()
            except ConnectionClosed:
                closed = client.closed
                code = 1006 if closed is None else int(closed.code)
                reason = "" if closed is None else closed.reason or ""
                if relay.close(code, reason, "client", now()):
                    await _aclose(upstream, *_close_for_upstream(code, reason))
                    scope.cancel()
                return
            outcome = relay.client_frame(message, now())
            answer = outcome.answer
            if answer is not None:
                # The service's answer to what it refuses, given for it.
                with suppress(ConnectionClosed):
                    await client.send_message(answer.message)
                await _aclose(client, answer.code, Rejection.reason)
                await _aclose(upstream, *REFUSED_CLOSE)
                scope.cancel()
                return
            if outcome.forward is None:
                continue
            try:
                await upstream.send_message(outcome.forward)
            except ConnectionClosed:
                return  # the upstream is gone: the other task forwards its close


def check_options(
    out: str | os.PathLike[str],
    *,
    upstream: str = aai_proto.DEFAULT_URL,
    save_audio: bool = False,
    **_: object,
) -> None:
    """Raise what :func:`record` would raise for ``upstream`` and ``out``, without listening."""
    _check_upstream(upstream)
    _check_output(Path(out), save_audio)


async def record(
    out: str | os.PathLike[str],
    *,
    upstream: str = aai_proto.DEFAULT_URL,
    host: str = "127.0.0.1",
    port: int = 0,
    save_audio: bool = False,
    hook: Callable[[Entry], Entry | None] | None = None,
    first: int = 1,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a recording proxy to ``upstream`` on ``host``:``port`` until cancelled.

    Point a client at the URL given to ``task_status.started()``
    (``ws://HOST:PORT/v3/ws``) instead of the service. Each connection is proxied
    to ``upstream`` with the client's query and headers, and written as a session
    file: the first to ``out``, later ones to ``NAME-2.jsonl``, ``NAME-3.jsonl``...
    next to it, numbered in the order their upgrades complete (see
    :func:`session_path`); connections may overlap, existing files are replaced. A
    connection the upstream refuses is refused with the same HTTP status and body
    (502 when the upstream can't be reached) and writes no file. ``t`` counts
    seconds from the client's WebSocket opening; the recorded query has no
    ``token``; no header is recorded.

    With ``save_audio``, the audio the client sent is written next to each session
    and named in its header: ``NAME.wav`` for ``pcm_s16le`` audio, otherwise
    ``NAME.raw`` (the bytes as sent).

    The proxy forwards every frame a peer sends legally, unchanged, whatever it
    can or can't record (see :class:`FrameRelay`): a server message the session
    format can't hold parsed is recorded verbatim (``server_raw``), one it can't hold
    at all is left out, with a warning in the log. A client frame the service would
    refuse is answered as the service does (``Error`` 3006 or 3007, then that
    close; the upstream is closed with 1001) and not forwarded.

    ``first`` numbers the first connection's file (``first=3``: ``NAME-3.jsonl``
    first, as when new connections are added to a recorded set).

    ``hook``, if given, sees each entry before it is written and returns what to
    write, or ``None`` for nothing (:func:`aai_replay.mask_text` masks what was
    said); the frames themselves are forwarded as they came.

    Stopping the recorder (cancelling this call) closes live connections with 1001
    and completes their files with that close; a recorder killed at once leaves
    files that hold everything written so far (the WAV header included).

    Raises, at once and before listening: ``ValueError`` for an ``upstream`` that is
    not a ``ws://`` or ``wss://`` URL with a host and a valid port, or that holds a
    user name or password (the message never holds one);
    :class:`OutputPathError` (a ``ValueError``) when ``out`` can't be written: its
    folder is missing or is not a folder, ``out`` (or, with ``save_audio``, its
    sidecar's name) is a folder, or the file or folder can't be written. Then
    ``OSError`` if ``host``:``port`` can't be listened on.
    """
    _check_upstream(upstream)
    _check_output(Path(out), save_audio)
    if type(first) is not int or first < 1:
        raise ValueError(f"first must be a session number from 1, got {first!r}")
    recorder = _Recorder(Path(out), upstream, save_audio, hook, first)
    listeners = await trio.open_tcp_listeners(port, host=host)
    try:
        bound = listeners[0].socket.getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        url = f"ws://{shown_host}:{bound}/v3/ws"
        # Connections run in a nursery shielded from this call's cancellation:
        # cancelling record() stops the accept loop at once, then stops each
        # connection through recorder.stop(), which closes its session properly
        # while the connection's reader tasks still run.
        stopped = trio.Event()

        async def hold_connections(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
            with trio.CancelScope(shield=True) as shield:
                async with trio.open_nursery() as connections:
                    task_status.started(connections)
                    await stopped.wait()
                    recorder.stop()
                    # Closes that hang are bounded too.
                    shield.deadline = trio.current_time() + 2 * DISCONNECT_TIMEOUT

        async with trio.open_nursery() as nursery:
            connections = await nursery.start(hold_connections)
            try:
                await nursery.start(
                    partial(
                        trio.serve_listeners,
                        recorder.serve_stream,
                        listeners,
                        handler_nursery=connections,
                    )
                )
                logger.info("recording proxy to %s listening on %s", recorder.shown, url)
                task_status.started(url)
                await trio.sleep_forever()
            finally:
                stopped.set()
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
