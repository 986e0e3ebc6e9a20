"""The replay server: trio-websocket I/O around :class:`ReplayConnection`.

Strategy: trio-websocket's own listener loop lets a handler's exception end the
whole server, so this module runs its own: every accepted TCP stream gets a
fresh :class:`ReplayConnection` in its own nursery, behind a guard that logs and
swallows whatever goes wrong there. Per connection it holds one reader task (the
client's frames into the connection) and one writer loop (the connection's
actions out, and waiting for the next deadline). Memory per connection is
bounded: frames are at most ``max_message_size`` bytes, trio-websocket's queue
holds a few of them, and the replay itself is a few counters over a shared plan.

Three things trio-websocket (0.12.2, on wsproto 1.3) does not do for a server
are done here, around it rather than in it:

- After its own close frame went out it still answers a client's Ping with a Pong
  (and an oversized message with a close 1009). wsproto refuses to write either in
  state ``LOCAL_CLOSING`` and raises ``LocalProtocolError``, which ends
  trio-websocket's reader task: the closing handshake is cut short and the error
  escapes into the connection's nursery. Neither answer is owed -- the client is
  about to read our close -- so :class:`_ReaderNursery`, which trio-websocket takes
  for its nursery, runs the reader task again when it fails so. wsproto keeps
  the frames it has not handed out yet, so the task goes on with the next one,
  and the client's answering close completes the handshake.
- A frame that breaks RFC 6455 (reserved bits, an unmasked frame, an unknown
  opcode, invalid UTF-8 text...) makes wsproto report a close with the code the
  RFC asks for (1002, 1007) as if the client had sent it; trio-websocket then
  closes the socket without sending that close frame. :class:`_Transport`, the
  stream trio-websocket reads and writes, sees that no close frame went out,
  keeps the socket open, and the server writes the close frame itself.
- It waits for ever on a write to a client that reads nothing. :class:`_Transport`
  drops the connection when a write makes no progress for ``send_timeout``
  seconds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Final, cast, final
from urllib.parse import parse_qsl, urlsplit

import attrs
import h11
import trio
import wsproto.utilities
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_server_stream
from wsproto.frame_protocol import CloseReason

from aai_proto import ClientChecker

from ._actions import Abort, CloseConnection, Send, close_reason
from ._connection import DEFAULT_PATH, ReplayConnection, ReplayOptions
from ._faults import Faults
from ._http import BAD_REQUEST, parse_head, split_token_request
from ._journal import CloseRecord, ConnectionRecord, JournalWriter
from ._replay import Pacing, ReplayPlan
from ._scenario import (
    SCENARIO_SUFFIX,
    Scenario,
    ScenarioPlayer,
    ScenarioRefusal,
    load_scenario,
)
from ._session import RecordedSession, load_session
from ._tokens import TokenGrant, TokenIssuer

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
_PROTOCOL_CODES: Final = frozenset({1002, 1007})  # wsproto's: a broken frame, bad UTF-8
DEFAULT_SEND_TIMEOUT: Final = 60.0
"""Seconds a write may make no progress before the client is dropped (see :class:`ReplayServer`)."""
_SEND_STEP: Final = 1 << 14
"""Bytes handed to the socket at a time: a write progresses when the client takes this many."""
_PATHS: Final = frozenset({DEFAULT_PATH, "/"})
"""The paths that take the WebSocket upgrade: AssemblyAI's, and the self-hosted stack's."""


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _authorization(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            return value.decode("latin-1")
    return None


@final
class _Transport(trio.abc.Stream):
    """The client's stream as trio-websocket reads and writes it (see the module's strategy).

    It notes what trio-websocket wrote -- the upgrade, a close frame -- and whether
    the stream ended under it, and drops a connection whose write makes no progress
    (less than ``_SEND_STEP`` bytes taken) for ``send_timeout`` seconds.
    trio-websocket writes each frame wsproto makes with one ``send_all`` call, so
    a write's first byte is a frame's first byte.
    """

    def __init__(self, stream: trio.abc.Stream, send_timeout: float | None) -> None:
        self.stream = stream
        self.send_timeout = send_timeout
        self.upgraded = False
        """The 101 response went out: every write since is one frame."""
        self.close_started = False
        """A close frame was written, or begun."""
        self.lost = False
        """The client's end of the stream ended (it hung up, or the stream broke), or this
        side dropped it. (``ClosedResourceError`` comes only after this side closed it.)"""
        self.stalled = False
        """A write made no progress for ``send_timeout`` seconds: the socket was closed."""

    def protocol_failure(self, ws: WebSocketConnection) -> bool:
        """Whether trio-websocket gave up on ``ws`` without a close frame, the stream still fine.

        It does that only when wsproto found a frame that breaks RFC 6455: a close
        the client sent was answered, one this side sent went out, and a lost
        stream is ``lost``.
        """
        # The codes wsproto reports for a broken frame: a client's own close (1000,
        # 1001...) read before its answer went out is no failure of the protocol.
        closed = ws.closed
        return closed is not None and closed.code in _PROTOCOL_CODES and self._closed_unanswered()

    def _closed_unanswered(self) -> bool:
        return self.upgraded and not self.close_started and not self.lost

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if not self.upgraded:
            self.upgraded = bytes(view[:12]) == b"HTTP/1.1 101"
        elif len(view) and (view[0] & 0x0F) == 0x8:  # a close frame
            self.close_started = True
        try:
            if self.send_timeout is None:
                await self.stream.send_all(view)
                return
            for start in range(0, len(view), _SEND_STEP):
                with trio.move_on_after(self.send_timeout) as waited:
                    await self.stream.send_all(view[start : start + _SEND_STEP])
                if waited.cancelled_caught:
                    # Half a frame may be out: nothing can follow it but the end.
                    self.stalled = True
                    await trio.aclose_forcefully(self.stream)
                    raise trio.BrokenResourceError("the client read nothing for send_timeout")
        except trio.BrokenResourceError:
            self.lost = True
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self.stream.receive_some(max_bytes)
        except trio.BrokenResourceError:
            self.lost = True
            raise
        if not data:
            self.lost = True
        return data

    async def aclose(self) -> None:
        if self._closed_unanswered():
            # trio-websocket drops a client that broke RFC 6455 without telling it
            # why: the socket stays open for the server's close frame (send_close),
            # and the server closes it then.
            await trio.lowlevel.checkpoint()
            return
        await self.stream.aclose()

    async def abort(self) -> None:
        """Close the socket now: the connection is dropped."""
        self.lost = True
        await trio.aclose_forcefully(self.stream)

    async def send_close(self, code: int, reason: str) -> None:
        """Write the close frame (a server's, unmasked) that trio-websocket left out."""
        payload = struct.pack("!H", code) + close_reason(reason).encode()
        await self.send_all(bytes((0x88, len(payload))) + payload)


@final
class _ReaderNursery:
    """What trio-websocket takes for a nursery: it starts its reader task there.

    The task runs in ``nursery``, and runs again each time it fails with wsproto's
    ``LocalProtocolError``: an answer (a Pong, a close 1009) that cannot follow
    this side's close frame, and is not owed (see the module's strategy). Each such
    failure used up the frame that asked for the answer, so the task goes on.
    """

    def __init__(self, nursery: trio.Nursery, number: int) -> None:
        self._nursery = nursery
        self._number = number

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        self._nursery.start_soon(self._run, fn, *args)

    async def _run(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        while True:
            try:
                await fn(*args)
            except wsproto.utilities.LocalProtocolError as exc:
                logger.debug("connection %d: not answered after the close: %s", self._number, exc)
                await trio.lowlevel.checkpoint()
                continue
            return


@final
@attrs.frozen
class _Handshake:
    """A closing handshake this side began: the client's answering close, if it came in time."""

    answer: tuple[int, str] | None


def _ending(close: CloseRecord | None, handshake: _Handshake | None) -> str:
    """How a connection ended, for the log: who closed, the code and the reason."""
    if close is None:  # pragma: no cover - every way out journals a close
        return "ended"
    if close.by == "client":
        if close.code == 1006:
            return "lost: the client went away without a close frame (1006)"
        return f"closed by the client: {close.code} {close.reason!r}"
    if close.code == 1006:
        return "dropped by the server (1006)" + (f": {close.reason}" if close.reason else "")
    text = f"closed by the server: {close.code} {close.reason!r}"
    if handshake is None:
        return text
    if handshake.answer is None:
        return text + "; the client did not answer"
    code, reason = handshake.answer
    return text + f"; the client answered {code} {reason!r}"


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

    The upgrade is taken on ``/`` too (the self-hosted stack's path, and what a
    client given a bare ``ws://HOST:PORT`` asks for), with the same behaviour; any
    other path gets HTTP 404.

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

    ``send_timeout`` (seconds, 60 by default; ``None``: never) drops a client that
    does not read: when a write to it -- a message, a Pong, a close frame -- makes
    no progress for that long (the client took less than 16 KiB of it, so the
    socket buffers between them are full), the server closes the socket at once,
    with no close frame (the client would not read one), and journals the close as
    the server's, code 1006, and a violation. Only writes are timed: a client that
    sends nothing is not dropped (the service keeps a silent session open unless
    asked otherwise with ``inactivity_timeout``), and one that sends audio but
    never reads is. So clients that stop reading cannot pile up and use up the
    server's file descriptors. (The closing handshake has its own bound, 5 s.)
    """

    def __init__(
        self,
        session: RecordedSession | Scenario | str | os.PathLike[str],
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
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        if send_timeout is not None and (
            type(send_timeout) not in (int, float) or not send_timeout > 0
        ):
            raise ValueError(
                f"send_timeout must be a number of seconds > 0, or None; got {send_timeout!r}"
            )
        scenario = _scenario_of(session)
        self.scenario = scenario
        """The connections served: one session for all (``after_last="repeat"``), or a scenario."""
        self.session = scenario.entries[0].session
        """The (first) recorded session."""
        self.options = ReplayOptions(
            pacing=pacing,
            speed=speed,
            strict=strict,
            api_key=api_key,
            faults=faults if faults is not None else Faults(),
        )
        self._plans = [ReplayPlan(entry.session) for entry in scenario.entries]
        self.plan = self._plans[0]
        self._player = ScenarioPlayer(scenario)
        self.host = host
        self._port = port
        self.max_message_size = max_message_size
        self.timing = timing
        self.keep_journal = keep_journal
        self.on_closed = on_closed
        self.send_timeout = send_timeout
        """Seconds a write may make no progress before the client is dropped (``None``: never)."""
        self.tokens = TokenIssuer(api_key)
        """The temporary tokens it issued (``GET /v3/token``), each good for one session."""
        self.connections = 0
        """Connections served so far."""
        self._listening = False
        self._journal_lock = threading.Lock()
        self._journal: list[JournalWriter] = []
        self._requests = 0

    def unplayed(self) -> list[str]:
        """What a test that expected every recorded connection to be played should hear.

        One line per entry of a scenario that no connection played (none for a
        single session served to every connection).
        """
        missing = self._player.unplayed()
        if not missing or (self.scenario.after_last == "repeat" and len(self._plans) == 1):
            return []
        total = len(self._plans)
        noun = "connection" if len(missing) == 1 else "connections"
        which = ", ".join(str(i + 1) for i in missing)
        return [
            f"{len(missing)} recorded {noun} not played: {which} of {total} in {self.scenario.name}"
        ]

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
        transport: _Transport | None = None
        try:
            async with trio.open_nursery() as nursery:
                request = None
                with trio.move_on_after(_HANDSHAKE_TIMEOUT):
                    head, rest = await split_token_request(stream)
                    if head is not None:
                        await self._answer_token_request(stream, head)
                        return
                    transport = _Transport(rest, self.send_timeout)
                    request = await wrap_server_stream(
                        cast(trio.Nursery, _ReaderNursery(nursery, number)),
                        transport,
                        message_queue_size=_QUEUE_SIZE,
                        max_message_size=self.max_message_size,
                        receive_buffer_size=_RECEIVE_BYTES,
                    )
                if request is not None:
                    assert transport is not None
                    await self._serve_request(request, transport, number)
                nursery.cancel_scope.cancel()
        except Exception as exc:  # one connection's failure never ends the server
            logger.warning("connection %d failed: %s", number, exc, exc_info=True)
        finally:
            await trio.aclose_forcefully(stream)

    async def _answer_token_request(self, stream: trio.abc.Stream, head: bytes) -> None:
        """Answer ``GET /v3/token`` (its whole ``head``) as the service does."""
        parsed = parse_head(head)
        if parsed is None:
            await stream.send_all(BAD_REQUEST)
            return
        http, event = parsed
        authorization = next(
            (v.decode("latin-1") for k, v in event.headers if k == b"authorization"), None
        )
        answer = self.tokens.answer(event.target.decode("latin-1"), authorization, time.monotonic())
        body = answer.body.encode()
        response = h11.Response(
            status_code=answer.status,
            headers=[("content-type", "application/json"), ("content-length", str(len(body)))],
        )
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(
                http.send(response) + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage())
            )
        logger.info("token request: %d", answer.status)

    def _redeemed(self, target: str, authorization: str | None) -> str | None:
        """The ``Authorization`` a request counts as having: the key, for a good token.

        A token this server issued (in the ``token`` query parameter or the
        ``Authorization`` header) opens one session before it expires; a used or
        expired one is left as it is, for the key check to refuse (1008).
        """
        key = self.options.api_key
        if key is None:
            return authorization
        try:
            query = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        except ValueError:
            return authorization
        for candidate in (query.get("token"), authorization):
            if candidate and candidate != key:
                grant = self.tokens.redeem(candidate, time.monotonic())
                if isinstance(grant, TokenGrant):
                    return key
        return authorization

    async def _serve_request(self, request: Any, transport: _Transport, number: int) -> None:
        target: str = request.path
        try:
            path = urlsplit(target).path
        except ValueError:
            path = ""
        if path not in _PATHS:
            logger.info("connection %d: rejected, no such path", number)
            journal = JournalWriter(self._next_request(), target, strict=self.options.strict)
            self._keep(journal)
            journal.violation(0.0, None, f"no such path: {path or target!r} (connect to /v3/ws)")
            # ConnectionClosed: the client went away first; refused all the same.
            with contextlib.suppress(ConnectionClosed):
                await request.reject(404, body=b"Not Found: connect to /v3/ws")
            journal.closed(1006, "HTTP 404: the upgrade was refused", "server")
            self._close_journal(journal)
            return
        authorization = self._redeemed(target, _authorization(request.headers))
        chosen = self._choose(target, authorization)
        if isinstance(chosen, ScenarioRefusal):
            await self._refuse(request, target, number, chosen)
            return
        plan, options = chosen
        connection = ReplayConnection(
            plan,
            options,
            target=target,
            authorization=authorization,
            now_unix=time.time(),
            connection=self._next_request(),
            # Messages are kept only for someone who will read them.
            journal_messages=self.keep_journal or self.on_closed is not None,
        )
        self._keep(connection.journal)
        try:
            ws: WebSocketConnection = await request.accept()
        except ConnectionClosed:
            connection.client_closed()  # 1006: gone before the upgrade's answer
            self._close_journal(connection.journal)
            logger.info("connection %d: %s", number, _ending(connection.journal.close, None))
            return
        opened = trio.current_time()
        logger.info("connection %d: open", number)
        wakeup = _Wakeup()

        def now() -> float:
            return trio.current_time() - opened

        def sent(gate_opened: float) -> None:
            if self.timing is not None:
                self.timing(number, gate_opened, now())

        def ended() -> None:
            """trio-websocket reports the connection closed: tell the connection why."""
            closed = ws.closed
            # int(): wsproto gives an IntEnum, which Python 3.10 formats by name.
            code, reason = (int(closed.code), closed.reason or "") if closed else (1006, "")
            if transport.stalled:
                seconds = f"{self.send_timeout:g}"
                connection.transport_violation(
                    now(),
                    f"the client read nothing for {seconds} s while the server had frames to send",
                    1006,
                    f"send_timeout: the client read nothing for {seconds} s",
                )
            elif transport.protocol_failure(ws):
                connection.transport_violation(
                    now(), f"WebSocket protocol error: {reason}", code, reason
                )
            else:
                connection.client_closed(code, reason)

        async def read() -> None:
            try:
                while True:
                    message = await ws.get_message()
                    connection.receive_message(message, now())
                    wakeup.poke(connection)
            except ConnectionClosed:
                ended()
                wakeup.event.set()

        handshake: _Handshake | None = None
        journal = connection.journal
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                handshake = await self._write(ws, transport, connection, wakeup, opened, now, sent)
                nursery.cancel_scope.cancel()
            if transport.protocol_failure(ws) and journal.close is not None:
                # After any frame on its way (the writer has finished): RFC 6455 fails
                # the connection with a close frame, then closes the socket.
                with trio.move_on_after(_CLOSE_TIMEOUT):
                    await transport.send_close(journal.close.code, journal.close.reason)
        finally:
            # Not journaled yet: the close that the reader had no time to report
            # (this side's closes are journaled when they are handed out).
            if not journal.is_closed and ws.closed is not None:
                ended()
            self._close_journal(journal)
        logger.info("connection %d: %s", number, _ending(journal.close, handshake))

    def _choose(
        self, target: str, authorization: str | None
    ) -> tuple[ReplayPlan, ReplayOptions] | ScenarioRefusal:
        """The recording (and options) this request plays, or why there is none.

        A request the service would refuse gets the first one without counting it:
        the connection only gets the service's answer.
        """
        checker = ClientChecker(api_key=self.options.api_key)
        if checker.receive_request(target, authorization=authorization) is not None:
            return self._plans[0], self.options
        assert checker.params is not None
        index = self._player.choose_index(checker.params)
        if isinstance(index, ScenarioRefusal):
            return index
        chosen = self.scenario.entries[index]
        options = self.options
        if chosen.faults.active:  # the entry's own faults replace the server's
            options = attrs.evolve(options, faults=chosen.faults)
        return self._plans[index], options

    async def _refuse(
        self, request: Any, target: str, number: int, refusal: ScenarioRefusal
    ) -> None:
        """Close a connection no recorded connection is left for: journaled as a violation."""
        journal = JournalWriter(self._next_request(), target, strict=self.options.strict)
        self._keep(journal)
        journal.violation(0.0, refusal.code, refusal.reason)
        logger.info("connection %d: refused, %s", number, refusal.reason)
        with contextlib.suppress(ConnectionClosed):
            ws = await request.accept()
            with trio.move_on_after(_CLOSE_TIMEOUT):
                await ws.aclose(refusal.code, close_reason(refusal.reason))
        journal.closed(refusal.code, close_reason(refusal.reason), "server")
        self._close_journal(journal)

    async def _write(
        self,
        ws: WebSocketConnection,
        transport: _Transport,
        connection: ReplayConnection,
        wakeup: _Wakeup,
        opened: float,
        now: Callable[[], float],
        sent: Callable[[float], None],
    ) -> _Handshake | None:
        """Send what the connection hands out until it is finished.

        Returns the closing handshake, when the connection closed it.
        """
        while True:
            event = wakeup.renew()
            for due, action in connection.data_to_send_timed(now()):
                if isinstance(action, Send):
                    try:
                        await ws.send_message(action.data)
                    except ConnectionClosed:
                        return None
                    sent(due)
                elif isinstance(action, CloseConnection):
                    answer = await self._close(ws, transport, action)
                    return _Handshake(
                        None if answer is None else (answer[0], connection.redact(answer[1]))
                    )
                else:
                    assert isinstance(action, Abort)
                    await transport.abort()
                    return None
            if connection.finished:
                return None
            deadline = connection.next_deadline()
            wakeup.waiting_for = deadline
            with trio.move_on_at(opened + deadline if deadline is not None else math.inf):
                await event.wait()
            connection.advance(now())

    async def _close(
        self, ws: WebSocketConnection, transport: _Transport, action: CloseConnection
    ) -> tuple[int, str] | None:
        """Close ``ws``; return the client's answering close, if it came in time."""
        code: int = action.code
        reason: str | None = action.reason or None
        if code == CloseReason.NO_STATUS_RCVD:
            code, reason = CloseReason.NO_STATUS_RCVD, None  # a close frame without a code
        with trio.move_on_after(_CLOSE_TIMEOUT) as waited:
            await ws.aclose(code, reason)
        # The handshake ends with the client's close, or with the stream (lost);
        # trio-websocket then holds the close the client sent.
        answer = ws.closed
        if waited.cancelled_caught or transport.lost or answer is None:
            return None
        return int(answer.code), answer.reason or ""


@contextlib.asynccontextmanager
async def open_replay_server(
    session: RecordedSession | Scenario | str | os.PathLike[str], **options: Any
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


def _scenario_of(session: RecordedSession | Scenario | str | os.PathLike[str]) -> Scenario:
    """What a server is given, as a scenario: one session plays to every connection."""
    if isinstance(session, Scenario):
        return session
    if isinstance(session, RecordedSession):
        return Scenario(entries=[session], after_last="repeat", name="session")
    path = Path(session)
    if path.name.endswith(SCENARIO_SUFFIX):
        return load_scenario(path)
    return Scenario(entries=[load_session(path)], after_last="repeat", name=path.name)
