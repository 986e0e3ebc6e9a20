"""Recording sessions: a local WebSocket proxy in front of the real service.

Strategy: for each client connection the proxy first opens the upstream
connection, with the client's own query and headers (so the client's
``Authorization`` header or ``token`` reaches the service, and an upstream that
refuses the upgrade is answered to the client with the same HTTP status); only
then does it accept the client. Two tasks then copy frames, one each way, and
write an entry for every frame *before* forwarding it, so the file's order is
the order the proxy saw things happen, and a frame's entry is on disk before its
receiver sees it. ``t`` counts seconds since the client's WebSocket opened.

The file describes the client's connection: its ``close`` entry is the close the
client saw (the upstream's code and reason, passed through; 1011 when the
upstream vanished without a close frame; 1001 when the recorder was stopped).

Both TCP streams are opened (or accepted) here and closed here, whatever
happens: trio-websocket leaves a socket open when the peer ends the connection
first. The upgrades run over them with ``wrap_server_stream`` and
``wrap_client_stream``.

Credentials never reach the file or the log: ``token`` (and the webhook secret)
are removed from the recorded query, headers are not recorded at all, the
session writer refuses any entry holding an ``Authorization`` key, and log lines
name the upstream with its credentials masked.
"""

from __future__ import annotations

import json
import logging
import os
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import IO, Final, cast, final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

from ._session import (
    CREDENTIAL_QUERY_KEYS,
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

__all__ = ["record", "session_path"]

logger = logging.getLogger("aai_replay.record")

CONNECT_TIMEOUT: Final = 10.0
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
    parts = urlsplit(upstream)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(
            f"upstream must be a ws:// or wss:// URL with a host, got "
            f"{aai_proto.redact_url(upstream)!r}"
        )


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


@asynccontextmanager
async def _upstream_connection(
    url: str, headers: list[tuple[bytes, bytes]], shown: str
) -> AsyncIterator[WebSocketConnection]:
    """Open ``url`` (TCP, TLS for wss, then the upgrade); always close the socket after.

    Raises :class:`_UpstreamFailed` if it can't be opened.
    """
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream: trio.abc.Stream = await (
                trio.open_ssl_over_tcp_stream(host, port, https_compatible=True)
                if secure
                else trio.open_tcp_stream(host, port)
            )
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


@final
class _AudioSink:
    """The audio sidecar: a WAV file for ``pcm_s16le`` with a sample rate, else raw bytes."""

    def __init__(self, session: Path, query: dict[str, str]) -> None:
        rate: int | None = None
        try:
            params = aai_proto.parse_url("?" + urlencode(list(query.items())))
            fmt = aai_proto.AudioFormat.from_params(params)
        except ValueError:  # InvalidParameter too: the upstream will say what is wrong
            fmt = None
        if fmt is not None and fmt.encoding == "pcm_s16le":
            rate = fmt.sample_rate
        self._wav: wave.Wave_write | None = None
        self.path = session.with_suffix(".raw" if rate is None else ".wav")
        # Opened here, not by the wave module: a failed wave.open leaves an object
        # behind that complains when collected.
        self._file: IO[bytes] | None = self.path.open("wb")
        if rate is not None:
            self._wav = wave.open(self._file, "wb")  # noqa: SIM115 - closed in close()
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(rate)

    def write(self, data: bytes) -> None:
        if self._wav is not None:
            self._wav.writeframesraw(data)
        elif self._file is not None:
            self._file.write(data)

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()  # writes the final sizes into the header
            self._wav = None
        if self._file is not None:
            self._file.close()
            self._file = None


@final
class _Recording:
    """One session being written: entries in the order they happen, ``close`` last."""

    def __init__(self, writer: SessionWriter, audio: _AudioSink | None, index: int) -> None:
        self.writer = writer
        self.audio = audio
        self.index = index
        self.closed = False
        self._t0 = trio.current_time()

    def _t(self) -> float:
        return round(max(0.0, trio.current_time() - self._t0), 3)

    def _write(self, entry: Entry) -> None:
        try:
            self.writer.write(entry)
        except SessionFormatError as exc:
            # Only a frame holding an "Authorization" key gets here: leave it out.
            logger.warning("session %d: frame not recorded: %s", self.index, exc.problem)

    def server(self, message: str | bytes) -> None:
        if self.closed:
            return
        if isinstance(message, bytes):
            logger.warning(
                "session %d: the server sent a binary frame (%d bytes); the session "
                "format has no place for it",
                self.index,
                len(message),
            )
            return
        try:
            data = json.loads(message)
        except ValueError:
            data = None
        if isinstance(data, dict):
            self._write(ServerMessage(self._t(), data))
        else:
            self._write(ServerRaw(self._t(), message))

    def client(self, message: str | bytes) -> None:
        if self.closed:
            return
        if isinstance(message, bytes):
            self._write(ClientAudio(self._t(), len(message)))
            if self.audio is not None:
                self.audio.write(message)
            return
        try:
            data = json.loads(message)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            self._write(ClientMessage(self._t(), data))
        else:
            logger.warning(
                "session %d: the client sent a text frame that is not a JSON message "
                "with a 'type'; the session format has no place for it",
                self.index,
            )

    def close(self, code: int, reason: str, by: str) -> bool:
        """Write the close; ``False`` (and nothing written) if the session already closed."""
        if self.closed:
            return False
        self.closed = True
        self._write(Close(self._t(), code, reason, "client" if by == "client" else "server"))
        return True

    def finish(self) -> None:
        self.writer.close()
        if self.audio is not None:
            self.audio.close()


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


@final
class _Recorder:
    def __init__(self, out: Path, upstream: str, save_audio: bool) -> None:
        self.out = out
        self.upstream = upstream
        self.shown = aai_proto.redact_url(upstream)
        self.save_audio = save_audio
        self._count = 0
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
        secrets: list[str] = []
        try:
            async with trio.open_nursery() as nursery:
                self._opening.add(nursery.cancel_scope)
                if self.stopping:
                    nursery.cancel_scope.cancel()
                request = None
                with trio.move_on_after(CONNECT_TIMEOUT):
                    request = await wrap_server_stream(nursery, stream)
                if request is not None:
                    target = urlsplit(request.path)
                    pairs = parse_qsl(target.query, keep_blank_values=True)
                    secrets += [v for k, v in pairs if k in CREDENTIAL_QUERY_KEYS]
                    secrets += [
                        v.decode("latin-1")
                        for k, v in request.headers
                        if k.lower() == b"authorization"
                    ]
                    await self._proxy(
                        request, target.path or "/v3/ws", target.query, dict(pairs), nursery
                    )
                nursery.cancel_scope.cancel()
        except Exception as exc:  # one connection's failure never stops the recorder
            logger.error("connection failed: %s", _scrub(_describe(exc), secrets))
        finally:
            self._opening.discard(nursery.cancel_scope)
            await trio.aclose_forcefully(stream)

    async def _proxy(
        self,
        request: WebSocketRequest,
        path: str,
        raw_query: str,
        query: dict[str, str],
        connection: trio.Nursery,
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
                await self._session(client, upstream, path, query)
        except _UpstreamFailed as exc:
            logger.warning("connection refused: %s", exc)
            await request.reject(exc.status, body=exc.body or None)

    async def _session(
        self,
        client: WebSocketConnection,
        upstream: WebSocketConnection,
        path: str,
        query: dict[str, str],
    ) -> None:
        self._count += 1
        index = self._count
        where = session_path(self.out, index)
        recorded_query = strip_credentials(query)
        audio: _AudioSink | None = None
        try:
            audio = _AudioSink(where, recorded_query) if self.save_audio else None
            header = Header(
                Request(path, recorded_query),
                audio=None if audio is None else audio.path.name,
                source="recorded",
                description=self.description,
            )
            writer = SessionWriter(where, header)
        except OSError as exc:
            if audio is not None:
                audio.close()
            logger.error(
                "session %d: can't write %s: %s", index, exc.filename or where, exc.strerror
            )
            reason = "aai-replay record can't write the session file"
            with trio.CancelScope(shield=True):
                await _aclose(client, 1011, reason)
                await _aclose(upstream, 1001, reason)
            return
        logger.info("session %d: recording to %s", index, where)
        rec = _Recording(writer, audio, index)
        copying = trio.CancelScope()
        self._copying.add(copying)
        try:
            with copying:
                if self.stopping:
                    copying.cancel()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._downstream, upstream, client, rec, copying)
                    nursery.start_soon(self._upstream, client, upstream, rec, copying)
        finally:
            self._copying.discard(copying)
            # Stopped, or failed: the file still ends with the close the client gets.
            ending = (1001, "recorder stopped") if self.stopping else (1011, "recorder error")
            if rec.close(*ending, "server"):
                with trio.CancelScope(shield=True):
                    await _aclose(client, *ending)
                    await _aclose(upstream, 1001, ending[1])
            rec.finish()
            logger.info("session %d: written to %s", index, where)

    @staticmethod
    async def _downstream(
        upstream: WebSocketConnection,
        client: WebSocketConnection,
        rec: _Recording,
        scope: trio.CancelScope,
    ) -> None:
        while True:
            try:
                message = await upstream.get_message()
            except ConnectionClosed:
                code, reason = _close_for_client(upstream.closed)
                if rec.close(code, reason, "server"):
                    await _aclose(client, code, reason)
                    scope.cancel()
                return
            rec.server(message)
            try:
                await client.send_message(message)
            except ConnectionClosed:
                return  # the client is gone: the other task records how

    @staticmethod
    async def _upstream(
        client: WebSocketConnection,
        upstream: WebSocketConnection,
        rec: _Recording,
        scope: trio.CancelScope,
    ) -> None:
        while True:
            try:
                message = await client.get_message()
            except ConnectionClosed:
                closed = client.closed
                code = 1006 if closed is None else int(closed.code)
                reason = "" if closed is None else closed.reason or ""
                if rec.close(code, reason, "client"):
                    await _aclose(upstream, *_close_for_upstream(code, reason))
                    scope.cancel()
                return
            rec.client(message)
            try:
                await upstream.send_message(message)
            except ConnectionClosed:
                return  # the upstream is gone: the other task forwards its close


async def record(
    out: str | os.PathLike[str],
    *,
    upstream: str = aai_proto.DEFAULT_URL,
    host: str = "127.0.0.1",
    port: int = 0,
    save_audio: bool = False,
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

    Stopping the recorder (cancelling this call) closes live connections with 1001
    and completes their files with that close. Raises ``ValueError`` at once for an
    ``upstream`` that is not a ``ws://`` or ``wss://`` URL, ``OSError`` if
    ``host``:``port`` can't be listened on.
    """
    _check_upstream(upstream)
    recorder = _Recorder(Path(out), upstream, save_audio)
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
