"""The replay server: trio-websocket I/O around :class:`ReplayConnection`.

Strategy: trio-websocket's own listener loop lets a handler's exception end the
whole server, so this module runs its own: every accepted TCP stream gets a
fresh :class:`ReplayConnection` in its own nursery, behind a guard that logs and
swallows whatever goes wrong there. Per connection it holds one reader task (the
client's frames into the connection) and one writer loop (the connection's
actions out, and waiting for the next deadline). Memory per connection is
bounded: frames are at most ``max_message_size`` bytes, trio-websocket's queue
holds a few of them, and the replay itself is a few counters over a shared plan.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final, final
from urllib.parse import urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_server_stream
from wsproto.frame_protocol import CloseReason

from ._actions import Abort, CloseConnection, Send
from ._connection import DEFAULT_PATH, ReplayConnection, ReplayOptions
from ._faults import Faults
from ._journal import ConnectionRecord, JournalWriter
from ._replay import Pacing, ReplayPlan
from ._session import RecordedSession, load_session

__all__ = ["ReplayServer", "open_replay_server"]

logger = logging.getLogger("aai_replay")

MAX_MESSAGE_SIZE: Final = 1 << 20
"""The largest frame a client may send (1 MiB: over 30 s of 16 kHz PCM)."""
_QUEUE_SIZE: Final = 4
# Read up to 64 KiB per call (trio-websocket's default is 4 KiB): a client streaming
# faster than real time sends many 1600-byte frames back to back, and each read then
# takes dozens of them at once instead of two or three.
_RECEIVE_BYTES: Final = 1 << 16

Timing = Callable[[int, float, float], None]
"""``timing(connection, gate_opened, sent)``: see :class:`ReplayServer`."""
_HANDSHAKE_TIMEOUT: Final = 10.0
_CLOSE_TIMEOUT: Final = 5.0


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _authorization(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            return value.decode("latin-1")
    return None


_BUSY: Final = object()
"""What the writer waits for while it is not waiting: anything wakes it."""


@final
class _Wakeup:
    """Wakes the writer loop when the reader has fed the connection a frame.

    Strategy: most audio frames change nothing the writer waits for (no message
    falls due, no deadline moves), and waking it for each costs a task switch and a
    cancel scope per frame. So while the writer waits, the reader wakes it only when
    the connection's next deadline differs from the one it waits for or the
    connection finished; while the writer is busy (sending), every frame wakes it,
    so that it looks again before it waits.
    """

    def __init__(self) -> None:
        self.event = trio.Event()
        self.waiting_for: float | object | None = _BUSY

    def renew(self) -> trio.Event:
        self.event = trio.Event()
        self.waiting_for = _BUSY
        return self.event

    def poke(self, connection: ReplayConnection) -> None:
        """The reader fed ``connection`` a frame: wake the writer if that may matter."""
        if (
            self.waiting_for is _BUSY
            or connection.finished
            or connection.next_deadline() != self.waiting_for
        ):
            self.event.set()


@final
class ReplayServer:
    """Serves one recorded session at ``ws://HOST:PORT/v3/ws``; each connection gets its own replay.

    ``session`` is a :class:`RecordedSession` or the path of a session file. The
    other arguments are those of :class:`ReplayOptions`, plus where to listen
    (``host`` 127.0.0.1, ``port`` 0 for a free one). Run :meth:`serve` in a
    nursery (``await nursery.start(server.serve)``) or use
    :func:`open_replay_server`; :meth:`serve_stream` serves one connection over
    any trio stream (such as one end of ``trio.testing.memory_stream_pair()``).

    ``timing``, if given, is called after each server message is sent with the
    connection's number (from 1), the time the message's gates opened and the time
    it was sent, in seconds since the connection opened: the server's lateness, for
    benchmarks. Off by default.

    Every WebSocket request is journaled (see :attr:`journal`). ``on_closed``, if
    given, is called with each connection's :class:`ConnectionRecord` once it has
    ended; ``keep_journal=False`` keeps no records once they are handed to it (for
    a server that runs for days with nobody reading :attr:`journal`).
    """

    def __init__(
        self,
        session: RecordedSession | str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pacing: Pacing = "audio",
        speed: float = 1.0,
        strict: bool = False,
        api_key: str | None = None,
        faults: Faults | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
        timing: Timing | None = None,
        keep_journal: bool = True,
        on_closed: Callable[[ConnectionRecord], None] | None = None,
    ) -> None:
        if not isinstance(session, RecordedSession):
            session = load_session(Path(session))
        self.session = session
        self.options = ReplayOptions(
            pacing=pacing,
            speed=speed,
            strict=strict,
            api_key=api_key,
            faults=faults if faults is not None else Faults(),
        )
        self.plan = ReplayPlan(session)
        self.host = host
        self._port = port
        self.max_message_size = max_message_size
        self.timing = timing
        self.keep_journal = keep_journal
        self.on_closed = on_closed
        self.connections = 0
        """Connections served so far."""
        self._listening = False
        self._journal_lock = threading.Lock()
        self._journal: list[JournalWriter] = []
        self._requests = 0

    @property
    def journal(self) -> list[ConnectionRecord]:
        """A record of every WebSocket request so far, in order: a fresh list of snapshots.

        Safe to read from any thread while the server runs; a connection still
        open shows what it carried so far (its ``close`` is ``None``).
        """
        with self._journal_lock:
            writers = list(self._journal)
        return [writer.record() for writer in writers]

    def _next_request(self) -> int:
        self._requests += 1
        return self._requests

    def _keep(self, writer: JournalWriter) -> None:
        if self.keep_journal:
            with self._journal_lock:
                self._journal.append(writer)

    def _close_journal(self, writer: JournalWriter) -> None:
        if self.on_closed is not None:
            self.on_closed(writer.record())

    @property
    def port(self) -> int:
        """The port listened on (the one chosen, once :meth:`serve` started, for port 0)."""
        return self._port

    @property
    def api_host(self) -> str:
        """``ws://HOST:PORT``: what the official SDK takes as ``api_host``."""
        if not self._listening:
            raise RuntimeError("the server is not listening yet")
        return f"ws://{_format_host(self.host)}:{self._port}"

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v3/ws``: the URL a client connects to."""
        return self.api_host + DEFAULT_PATH

    async def serve(
        self, *, task_status: trio.TaskStatus[ReplayServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until cancelled; ``task_status.started(self)`` once listening."""
        listeners = await trio.open_tcp_listeners(self._port, host=self.host)
        try:
            self._port = listeners[0].socket.getsockname()[1]
            self._listening = True
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self.serve_stream, listeners)
                task_status.started(self)
        finally:
            self._listening = False
            for listener in listeners:
                await trio.aclose_forcefully(listener)

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection over ``stream``; never raises but ``Cancelled``."""
        self.connections += 1
        number = self.connections
        try:
            async with trio.open_nursery() as nursery:
                request = None
                with trio.move_on_after(_HANDSHAKE_TIMEOUT):
                    request = await wrap_server_stream(
                        nursery,
                        stream,
                        message_queue_size=_QUEUE_SIZE,
                        max_message_size=self.max_message_size,
                        receive_buffer_size=_RECEIVE_BYTES,
                    )
                if request is not None:
                    await self._serve_request(request, stream, number)
                nursery.cancel_scope.cancel()
        except Exception as exc:  # one connection's failure never ends the server
            logger.warning("connection %d failed: %s", number, exc, exc_info=True)
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve_request(self, request: Any, stream: trio.abc.Stream, number: int) -> None:
        target: str = request.path
        try:
            path = urlsplit(target).path
        except ValueError:
            path = ""
        if path != DEFAULT_PATH:
            logger.info("connection %d: rejected, no such path", number)
            journal = JournalWriter(self._next_request(), target, strict=self.options.strict)
            self._keep(journal)
            journal.violation(0.0, None, f"no such path: {path or target!r} (connect to /v3/ws)")
            await request.reject(404, body=b"Not Found: connect to /v3/ws")
            journal.closed(1006, "HTTP 404: the upgrade was refused", "server")
            self._close_journal(journal)
            return
        ws: WebSocketConnection = await request.accept()
        opened = trio.current_time()
        connection = ReplayConnection(
            self.plan,
            self.options,
            target=target,
            authorization=_authorization(request.headers),
            now_unix=time.time(),
            connection=self._next_request(),
            # Messages are kept only for someone who will read them.
            journal_messages=self.keep_journal or self.on_closed is not None,
        )
        self._keep(connection.journal)
        logger.info("connection %d: open", number)
        wakeup = _Wakeup()

        def now() -> float:
            return trio.current_time() - opened

        def sent(gate_opened: float) -> None:
            if self.timing is not None:
                self.timing(number, gate_opened, now())

        async def read() -> None:
            try:
                while True:
                    message = await ws.get_message()
                    connection.receive_message(message, now())
                    wakeup.poke(connection)
            except ConnectionClosed as exc:
                closed = exc.reason
                if closed is None:  # pragma: no cover - trio-websocket always gives one
                    connection.client_closed()
                else:
                    connection.client_closed(int(closed.code), closed.reason or "")
                wakeup.event.set()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await self._write(ws, stream, connection, wakeup, opened, now, sent)
                nursery.cancel_scope.cancel()
        finally:
            journal = connection.journal
            # Not journaled yet: the client's close that the reader had no time to
            # report (this side's closes are journaled when they are handed out).
            if not journal.is_closed and ws.closed is not None:
                journal.closed(int(ws.closed.code), ws.closed.reason or "", "client")
            self._close_journal(journal)
        closed = ws.closed
        # int(): wsproto gives an IntEnum, which Python 3.10 formats by name.
        logger.info("connection %d: closed (%s)", number, int(closed.code) if closed else "dropped")

    async def _write(
        self,
        ws: WebSocketConnection,
        stream: trio.abc.Stream,
        connection: ReplayConnection,
        wakeup: _Wakeup,
        opened: float,
        now: Callable[[], float],
        sent: Callable[[float], None],
    ) -> None:
        while True:
            event = wakeup.renew()
            for due, action in connection.data_to_send_timed(now()):
                if isinstance(action, Send):
                    try:
                        await ws.send_message(action.data)
                    except ConnectionClosed:
                        return
                    sent(due)
                elif isinstance(action, CloseConnection):
                    await self._close(ws, action)
                    return
                else:
                    assert isinstance(action, Abort)
                    await trio.aclose_forcefully(stream)
                    return
            if connection.finished:
                return
            deadline = connection.next_deadline()
            wakeup.waiting_for = deadline
            with trio.move_on_at(opened + deadline if deadline is not None else math.inf):
                await event.wait()
            connection.advance(now())

    async def _close(self, ws: WebSocketConnection, action: CloseConnection) -> None:
        code: int = action.code
        reason: str | None = action.reason or None
        if code == CloseReason.NO_STATUS_RCVD:
            code, reason = CloseReason.NO_STATUS_RCVD, None  # a close frame without a code
        with trio.move_on_after(_CLOSE_TIMEOUT):
            await ws.aclose(code, reason)


@contextlib.asynccontextmanager
async def open_replay_server(
    session: RecordedSession | str | os.PathLike[str], **options: Any
) -> AsyncIterator[ReplayServer]:
    """Run a :class:`ReplayServer` for the ``async with`` block; yields it, listening.

    ``options`` are :class:`ReplayServer`'s keyword arguments. An exception that
    leaves the block (or a failure to listen) comes out as it is, never wrapped in
    an exception group.
    """
    server = ReplayServer(session, **options)
    # The block runs inside the server's nursery, which would wrap what leaves it
    # in an exception group: hold it, stop the server, then let it go on unchanged.
    held: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            await nursery.start(server.serve)
            yield server
        except BaseException as exc:
            held = exc
        finally:
            nursery.cancel_scope.cancel()
    if held is not None:
        raise held
