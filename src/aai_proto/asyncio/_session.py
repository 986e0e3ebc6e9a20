"""A streaming session over ``websockets``' asyncio client: ``open_session`` and ``Session``.

Strategy: the same shape as ``aai_proto.trio``, which is the reference for every
behaviour. The adapter moves frames, keeps time and buffers events; the core
``Client`` decides the rest (what is legal, whether the session failed, ended
well or was abandoned). One reader task feeds every message and the close to the
core and appends the events to a deque; each action takes the send lock, calls the
core, and sends what it queued. The end of a session is recorded by the core the
moment the reader reads it and wakes whichever call waits.

Where asyncio differs from trio: ``websockets`` writes each frame whole into the
transport's buffer before it waits for room, so a cancelled send never leaves
half a frame; it can still leave the frames after it unsent, which breaks the
connection just the same (the core's ``send_failed``). Timeouts use
``asyncio.wait_for`` (3.10 has no ``asyncio.timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, ClassVar, Final, TypeVar, final

import websockets
from websockets.asyncio.client import ClientConnection, connect

from aai_proto import (
    DEFAULT_URL,
    DEFAULT_USER_AGENT,
    Begin,
    Client,
    ConnectionClosed,
    Input,
    RemoteProtocolError,
    ServerEvent,
    StreamingError,
    StreamingParams,
    TailPolicy,
    Termination,
    build_headers,
    build_url,
    redact_url,
)
from aai_proto._adapter.errors import (
    HANG_UP,
    ConnectError,
    ConnectTimeout,
    HandshakeRejected,
    describe_connect_error,
)
from aai_proto._adapter.frames import batches, encode_client_frames
from aai_proto._adapter.retry import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY, Attempts
from aai_proto._adapter.session import SessionBase, check_options
from aai_proto._adapter.sources import Chunk, Chunks, file_chunks, pace
from aai_proto._adapter.target import Target

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "BrokenSessionError",
    "ClosedSessionError",
    "Session",
    "open_session",
]

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
"""Seconds ``open_session`` allows for the connection, the upgrade and ``Begin``."""
CLOSE_TIMEOUT: Final = 2.0
"""Seconds allowed for the WebSocket closing handshake before the socket is closed anyway."""
_MAX_MESSAGE_BYTES: Final = 1 << 20  # as trio-websocket's default: a longer one closes 1009

_T = TypeVar("_T")


class BrokenSessionError(Exception):
    """A send was cancelled midway, so the session's connection was closed (trio's
    ``BrokenResourceError``)."""


class ClosedSessionError(Exception):
    """A send was interrupted by :meth:`Session.aclose` from another task (trio's
    ``ClosedResourceError``)."""


async def _within(seconds: float, awaitable: Awaitable[_T]) -> tuple[bool, _T | None]:
    """Await ``awaitable`` for at most ``seconds``: ``(True, result)`` or ``(False, None)``."""
    try:
        return True, await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        return False, None


class _Connection(ClientConnection):
    """``websockets``' client connection, which also says when it begins to close.

    ``websockets`` notes that a close frame (the server's, or its own when it fails
    the connection) means the socket should close soon, but enforces its
    ``close_timeout`` only in a call that waits for the close: not in a send
    waiting for room, which waits for ever if the server reads no more, nor in
    ``recv()``, which waits for the server to hang up. ``closing`` is set then,
    and the session bounds the rest (``Session._bound_closing``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closing = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.protocol.close_expected():  # "schedule closing the TCP connection", it says
            self.closing.set()


class Session(SessionBase):
    """One open streaming session. Made by :func:`open_session`, not directly.

    The same as ``aai_proto.trio.Session`` (see the README), on asyncio: iterate it
    for the server's events, ``Begin`` first; a failure is raised by whichever call
    waits when it happens and by every call after it; calls the protocol does not
    allow raise the core's :class:`~aai_proto.LocalProtocolError`.
    """

    def __init__(
        self,
        ws: _Connection,
        client: Client,
        *,
        chunk_ms: int,
        terminate_timeout: float,
        max_buffered_events: int,
    ) -> None:
        self._ws = ws
        self._client = client
        self._chunk_ms = chunk_ms
        self._terminate_timeout = terminate_timeout
        self._max_buffered = max_buffered_events
        self._send_lock = asyncio.Lock()  # fair: waiters get it in order
        self._events: deque[ServerEvent] = deque()
        self._arrived = asyncio.Event()  # an event was buffered, or the reader ended
        self._room = asyncio.Event()  # an event was taken: the reader may go on
        self._draining = False  # the session is ending: read past the bound
        # What happened is the core's (termination, failure, closed); these only wake.
        self._begun = asyncio.Event()  # Begin came, or the reader ended
        self._finished = asyncio.Event()  # Termination or a failure came, or the reader ended
        self._reader_done = asyncio.Event()
        self._failure_seen = False  # some call raised the failure: leaving need not
        self._iteration_over = False  # iteration ended: it stays ended
        self._terminated: asyncio.Event | None = None  # terminate() was called; set when done
        self._reader: asyncio.Task[None] | None = None
        self._bounder: asyncio.Task[None] | None = None  # _bound_closing, stopped with the reader

    # -- actions of its own (the others are SessionBase's) ----------------------------

    async def stream(self, source: Chunks, *, realtime: bool = True) -> None:
        """Send the audio of ``source``, an iterable (or async iterable) of byte chunks.

        As ``aai_proto.trio.Session.stream``: with ``realtime`` no faster than it
        plays (PCM only), else as fast as the connection takes it.
        """
        loop = asyncio.get_running_loop()

        async def sleep_until(deadline: float) -> None:
            await asyncio.sleep(max(0.0, deadline - loop.time()))

        send: Callable[[Chunk], Awaitable[None]] = self.send_audio
        await pace(
            send,
            source,
            self.audio_format,
            chunk_ms=self._chunk_ms,
            realtime=realtime,
            now=loop.time,
            sleep_until=sleep_until,
        )

    async def stream_file(self, path: str | os.PathLike[str], *, realtime: bool = True) -> None:
        """Send the audio of a WAV or raw (``.raw``, ``.pcm``) file, paced as :meth:`stream`."""
        chunks = file_chunks(path, self.audio_format, chunk_ms=self._chunk_ms, realtime=realtime)
        with contextlib.closing(chunks):
            await self.stream(chunks, realtime=realtime)

    async def terminate(self) -> Termination | None:
        """End the session: the audio tail and ``Terminate``, then wait for ``Termination``.

        As ``aai_proto.trio.Session.terminate``: at most ``terminate_timeout``
        seconds (sending included), then the connection is closed (at most
        ``CLOSE_TIMEOUT`` more). Returns the ``Termination`` or ``None``; raises the
        session's failure. Calling it again returns the same result.
        """
        if self._terminated is not None:
            await self._terminated.wait()
            self._raise_failure()
            return self._client.termination
        self._terminated = done = asyncio.Event()
        try:
            self._check()
            self._drain()
            await _within(self._terminate_timeout, self._terminate_and_wait())
        except asyncio.CancelledError:
            # Cancelled: the socket closes at once, with no close frame (aclose()
            # then sends none), as trio's aclose() in a cancelled scope.
            self._abort()
            raise
        finally:
            await self.aclose()
            done.set()
        self._raise_failure()
        return self._client.termination

    async def _terminate_and_wait(self) -> None:
        try:
            # Decided under the send lock: the session may have ended while another
            # task was sending.
            await self._act(self._terminate_if_open)
        except StreamingError:
            if self._client.failure is not None:
                raise
            # The server closed normally as Terminate went out: no failure, says the core.
        await self._finished.wait()

    async def aclose(self) -> None:
        """Close the connection now, without ``Terminate`` (the server ends the session).

        Sends a close frame and waits for the server's at most ``CLOSE_TIMEOUT``
        seconds; closes the socket at once if cancelled. Idempotent. Events already
        received stay available to iteration.
        """
        if self._client.allows(Input.CLOSE):
            self._client.close()
        self._drain()
        try:
            if not self._ws.transport.is_closing():  # else closed, or aborted: no handshake
                await _within(CLOSE_TIMEOUT, self._close_handshake())
        finally:
            self._abort()
        await asyncio.shield(self._reader_done.wait())

    async def _close_handshake(self) -> None:
        await self._ws.close()
        await self._reader_done.wait()

    def _abort(self) -> None:
        """Close the socket at once (a no-op once it is closed)."""
        self._ws.transport.abort()

    # -- iteration ------------------------------------------------------------------

    def __aiter__(self) -> Session:
        return self

    async def __anext__(self) -> ServerEvent:
        if self._iteration_over:
            raise StopAsyncIteration
        while not self._events:
            if self._reader_done.is_set():
                self._iteration_over = True
                self._raise_failure()
                raise StopAsyncIteration
            self._arrived.clear()
            await self._arrived.wait()
        event = self._events.popleft()
        self._room.set()
        if isinstance(event, Termination):
            self._iteration_over = True
        return event

    # -- internals ------------------------------------------------------------------

    _batching: ClassVar[bool] = True
    """Send several frames per write where websockets allows it (see _send_together)."""

    def _broken_error(self) -> Exception:
        return BrokenSessionError(
            "a send was cancelled midway, so the session's connection was closed"
        )

    def _drain(self) -> None:
        # The session is ending: read on past the buffer's bound so that its end
        # (Termination, the close, an error) is seen even if nobody takes the events.
        self._draining = True
        self._room.set()

    async def _act(self, action: Callable[[], object]) -> None:
        self._check()
        async with self._send_lock:
            self._check()
            action()  # the core decides: LocalProtocolError or ValueError leave nothing queued
            frames = self._client.data_to_send()
            sent = 0
            try:
                if frames:
                    sent = await self._send_together(frames)
                for frame in frames[sent:]:
                    await self._ws.send(frame)
                    sent += 1
            except websockets.ConnectionClosed:
                await self._closed_while_sending()
            except BaseException:
                # Cancelled with frames still to go: what the core queued did not all
                # leave, so nothing can follow. Close the socket now.
                if sent < len(frames) and self._client.allows(Input.SEND_FAILED):
                    self._client.send_failed()
                    self._abort()
                raise
            if frames and self._ws.transport.is_closing():
                # The socket was closed under the last write, which then returns
                # quietly (websockets' drain()): what it held did not all leave.
                await self._closed_while_sending()

    async def _send_together(self, frames: list[bytes | str]) -> int:
        """Send ``frames`` as ``send`` would one by one, but a batch per write.

        Returns how many were sent, all of them unless this version of
        ``websockets`` does not allow it (none then). One ``send`` per frame
        would check, frame, write and drain each time: a second of audio (twenty
        frames) would be twenty writes to the socket. Here each batch is framed
        by ``encode_client_frames`` into the protocol's outgoing data, under
        ``send_context`` (its checks and errors, one write and drain): the frames
        ``send_binary`` and ``send_text`` would queue (no extensions, no
        fragments), without a ``Frame`` object and a serialization each. Where
        the connection logs each frame (debug), they go through ``send``.
        """
        ws = self._ws
        protocol = getattr(ws, "protocol", None)
        if not (
            self._batching
            and hasattr(ws, "send_context")
            and type(getattr(protocol, "writes", None)) is list
            and not getattr(protocol, "extensions", True)
            and getattr(protocol, "expect_continuation_frame", True) is False
            and getattr(protocol, "debug", True) is False
        ):
            return 0
        assert protocol is not None
        for batch in batches(frames):
            async with ws.send_context():  # checks that it is open; writes and drains
                protocol.writes.append(encode_client_frames(batch))
        return len(frames)

    async def _closed_while_sending(self) -> None:
        # The reader sees why the connection closed; wait for it to get there.
        self._drain()
        finished, _ = await _within(CLOSE_TIMEOUT, self._reader_done.wait())
        if not finished:
            self._abort()
            await self._reader_done.wait()
        self._raise_failure()
        closed = self._client.closed
        if closed is None or closed.local:
            raise ClosedSessionError("the session was closed")
        raise StreamingError(closed.code, closed.reason)

    async def _wait_for_room(self) -> None:
        # Backpressure: while max_buffered_events wait to be taken, read no more.
        while not self._draining and len(self._events) >= self._max_buffered:
            self._room.clear()
            await self._room.wait()

    async def _read(self) -> None:
        """The one reader: every message goes to the core, every event to the buffer."""
        try:
            while True:
                if not self._draining and len(self._events) >= self._max_buffered:
                    await self._wait_for_room()  # (checked here first: no coroutine per message)
                try:
                    message = await self._ws.recv()
                except websockets.ConnectionClosed as exc:
                    code, text = _close_of(exc)
                    self._client.connection_closed(code, text)  # the core says what it means
                    return
                try:
                    events = self._client.receive_message(message)
                except RemoteProtocolError:
                    self._finished.set()
                    await _within(CLOSE_TIMEOUT, self._ws.close(1002, "protocol error"))
                    self._abort()
                    return
                for event in events:
                    if isinstance(event, Begin):
                        self._begun.set()
                    elif isinstance(event, Termination):
                        self._finished.set()
                    assert not isinstance(event, ConnectionClosed)
                    self._events.append(event)
                self._arrived.set()
        except Exception:
            # Anything else the connection raises ends it: as a dropped connection.
            self._abort()
            if self._client.allows(Input.CONNECTION_CLOSED):
                self._client.connection_closed(1006, "")
        finally:
            if self._bounder is not None:
                self._bounder.cancel()
            self._reader_done.set()
            self._arrived.set()
            self._begun.set()
            self._finished.set()

    async def _bound_closing(self) -> None:
        """Once the connection began to close, give the closing handshake ``CLOSE_TIMEOUT``.

        Runs beside the reader, until it ends. A send waiting for room waits for
        ever if the server reads no more, and the reader waits for the server to
        hang up: so the socket is closed under both. The send then raises the
        session's failure, which the reader sees.
        """
        await self._ws.closing.wait()
        await asyncio.sleep(CLOSE_TIMEOUT)
        self._abort()

    async def _stop(self) -> None:
        """Stop the reader task (the block is over) and wait for it."""
        for task in (self._reader, self._bounder):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def open_session(
    params: StreamingParams,
    *,
    api_key: str | None = None,
    token: str | None = None,
    url: str = DEFAULT_URL,
    chunk_ms: int = 50,
    tail: TailPolicy = "pad",
    terminate_timeout: float = 5.0,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    retry_delay: float = DEFAULT_RETRY_DELAY,
    max_buffered_events: int = 10_000,
    user_agent: str = DEFAULT_USER_AGENT,
) -> AbstractAsyncContextManager[Session]:
    """Open a streaming session; an async context manager that yields a :class:`Session`.

    The same arguments and behaviour as ``aai_proto.trio.open_session`` (but no
    ``stream=``): connects, sends the key or token in the ``Authorization``
    header, and returns once ``Begin`` came, within ``connect_timeout`` an attempt;
    makes a failed attempt again up to ``retries`` times, ``retry_delay`` seconds
    apart (never after an HTTP rejection, 1008 or 3006: see ``retryable``); raises
    :class:`ConnectError`, :class:`HandshakeRejected`, :class:`ConnectTimeout` or
    the session's failure, the last attempt's, with a note for each earlier one.
    Leaving the block normally terminates the session;
    leaving it by an exception closes the socket at once and lets that exception
    through unchanged. Bad arguments raise ``ValueError`` at the call.
    """
    client = Client(params, chunk_ms=chunk_ms, tail=tail)
    headers = build_headers(api_key=api_key, token=token, user_agent=user_agent)
    full_url = build_url(params, base_url=url)
    target = Target.from_url(full_url, shown=redact_url(url))
    check_options(
        terminate_timeout=terminate_timeout,
        connect_timeout=connect_timeout,
        max_buffered_events=max_buffered_events,
        retries=retries,
        retry_delay=retry_delay,
    )

    async def open_(client: Client) -> Session:
        ws = await _connect(full_url, target, headers)
        try:
            session = Session(
                ws,
                client,
                chunk_ms=chunk_ms,
                terminate_timeout=terminate_timeout,
                max_buffered_events=max_buffered_events,
            )
            loop = asyncio.get_running_loop()
            session._reader = loop.create_task(session._read())
            session._bounder = loop.create_task(session._bound_closing())
            try:
                await session._begun.wait()
                if client.begin is None:
                    session._raise_failure()
                    code = client.closed.code if client.closed else 1006
                    raise ConnectError(
                        target.shown, f"the server closed the session ({code}) before Begin"
                    )
            except BaseException:
                await session._stop()
                raise
            return session
        except BaseException:
            ws.transport.abort()
            raise

    async def attempt(client: Client) -> Session:
        opened, session = await _within(connect_timeout, open_(client))
        if not opened or session is None:
            raise ConnectTimeout(target.shown, f"no Begin within {connect_timeout:g} s")
        return session

    async def open_within() -> Session:
        attempts = Attempts(retries=retries, delay=retry_delay)
        this_client = client
        while True:
            try:
                return await attempt(this_client)
            except Exception as exc:
                if not attempts.retry(exc, this_client.closed):
                    raise
            await asyncio.sleep(attempts.delay)
            this_client = Client(params, chunk_ms=chunk_ms, tail=tail)

    return _SessionContext(open_within)


def _close_of(exc: websockets.ConnectionClosed) -> tuple[int, str]:
    """The close that ended the connection, for the core: code and reason.

    The server's close frame if one came. Else, if ``websockets`` failed the
    connection itself -- broken framing (1002), text that is not UTF-8 (1007), a
    message over ``max_size`` (1009) -- the close it sent for that, which it records
    in ``sent`` only (it reads nothing after it): trio-websocket reports those as
    the close, and so does this. Else 1006: the connection dropped. (Our own close
    is 1000, and after it the server's answer, or 1006, is what happened.)
    """
    received, sent = exc.rcvd, exc.sent
    if received is not None:
        return int(received.code), received.reason
    if sent is not None and sent.code != 1000:
        return int(sent.code), sent.reason
    return 1006, ""


async def _connect(url: str, target: Target, headers: list[tuple[str, str]]) -> _Connection:
    """The WebSocket upgrade; errors as ``aai_proto.trio`` raises them."""
    try:
        ws = await connect(
            url,
            additional_headers=headers,
            user_agent_header=None,  # build_headers has the User-Agent
            open_timeout=None,  # open_session's connect_timeout covers it, Begin included
            close_timeout=CLOSE_TIMEOUT,
            ping_interval=None,  # as the trio adapter: the protocol has KeepAlive
            max_size=_MAX_MESSAGE_BYTES,
            proxy=None,  # no proxy from the environment: connect where the URL says
            compression=None,  # the service does not negotiate it
            create_connection=_Connection,
        )
    except websockets.InvalidStatus as exc:
        response = exc.response
        raise HandshakeRejected(
            target.shown, response.status_code, bytes(response.body or b"")
        ) from None
    except (websockets.InvalidHandshake, websockets.InvalidMessage, EOFError) as exc:
        raise ConnectError(target.shown, HANG_UP) from exc
    except OSError as exc:
        raise ConnectError(
            target.shown, describe_connect_error(exc, target.host, target.port)
        ) from exc
    assert isinstance(ws, _Connection)
    return ws


@final
class _SessionContext:
    """``open_session``'s context manager: the block's exception goes on unchanged."""

    def __init__(self, open_: Callable[[], Awaitable[Session]]) -> None:
        self._open = open_
        self._session: Session | None = None
        self._entered = False

    async def __aenter__(self) -> Session:
        if self._entered:
            raise RuntimeError("open_session(...) can be entered only once")
        self._entered = True
        self._session = await self._open()
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._session
        assert session is not None
        try:
            if exc is None:
                await session._leave()
            else:
                session._abort()  # at once: no Terminate, no waiting
        finally:
            await session._stop()
