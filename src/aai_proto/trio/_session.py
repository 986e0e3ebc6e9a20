"""A streaming session over trio-websocket: ``open_session`` and ``Session``.

Strategy: the adapter only moves messages, keeps time and buffers events; the core
``Client`` decides everything else, the end of the session included. One reader
task feeds every server message and the close to the core and puts the events it
returns in a memory channel. Every action takes the send lock, calls the core, and
sends all that ``data_to_send()`` returns before letting go, so frames leave in the
order the core queued them. What the runtime does to the connection -- closing it
(``aclose``), or a write cut short -- is reported to the core as well, so whether
the session ended well, failed, or was abandoned is the core's answer
(``Client.termination``, ``Client.failure``, ``Client.closed``), read when needed.
The reader only wakes whichever call waits for the end.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import ClassVar, Final, final

import trio
import trio_websocket
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

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
from aai_proto._adapter.frames import batches, encode_client_frames
from aai_proto._adapter.retry import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY, Attempts
from aai_proto._adapter.session import SessionBase, check_options

from ._audio import Chunks, file_chunks, pace
from ._connect import Target, handshake, open_stream
from ._errors import ConnectError, ConnectTimeout

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "Session", "open_session"]

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
"""Seconds ``open_session`` allows each attempt for the connection, the upgrade and ``Begin``."""
CLOSE_TIMEOUT: Final = 2.0
"""Seconds allowed for the WebSocket closing handshake before the socket is closed anyway."""


class Session(SessionBase, trio.abc.AsyncResource):
    """One open streaming session. Made by :func:`open_session`, not directly.

    Iterate it (``async for event in session``) for the server's events in order,
    ``Begin`` first. Iteration ends after ``Termination`` or when the connection
    closes normally; if the session fails it raises that failure once the events
    received before it have been taken.

    A failure -- the server's ``Error`` and close (:class:`~aai_proto.StreamingError`,
    with the close code and the server's message), any close but 1000 before
    ``Termination``, or a message that breaks the protocol
    (:class:`~aai_proto.RemoteProtocolError`) -- is raised by whichever call is
    waiting when it happens, and by every call after it. A failure that has come
    after ``Termination`` is ignored: the session had already ended well.

    Calls the protocol does not allow in the session's state (``send_audio`` after
    ``terminate``, for instance) raise the core's
    :class:`~aai_proto.LocalProtocolError` and send nothing.
    """

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        client: Client,
        *,
        reading_over: trio.Event,
        chunk_ms: int,
        terminate_timeout: float,
        max_buffered_events: int,
    ) -> None:
        self._ws = ws
        self._stream = stream  # the WebSocket's; closed here, as trio-websocket may leave it open
        # Set once nothing reads the connection (see _connect): no close frame can come.
        self._reading_over = reading_over
        self._client = client
        self._chunk_ms = chunk_ms
        self._terminate_timeout = terminate_timeout
        self._max_buffered = max_buffered_events
        self._send_lock = trio.StrictFIFOLock()
        # Unbounded as a channel; _wait_for_room keeps it at max_buffered_events
        # while the session runs, and lets the last few messages in when it ends.
        self._events_in, self._events_out = trio.open_memory_channel[ServerEvent](math.inf)
        self._room = trio.Event()  # an event was taken: the reader may go on
        self._draining = False  # the session is ending: read past the bound
        # What happened is the core's (termination, failure, closed); these only wake.
        self._begun = trio.Event()  # Begin came, or the reader ended
        self._finished = trio.Event()  # Termination or a failure came, or the reader ended
        self._reader_done = trio.Event()
        self._reading = trio.CancelScope()  # cancelled when the reader ends (_bound_closing)
        self._failure_seen = False  # some call raised the failure: leaving need not
        self._iteration_over = False  # iteration ended: it stays ended
        self._terminated: trio.Event | None = None  # terminate() was called; set when done

    # -- actions of its own (the others are SessionBase's) ----------------------------

    async def stream(self, source: Chunks, *, realtime: bool = True) -> None:
        """Send the audio of ``source``, an iterable (or async iterable) of byte chunks.

        The chunks are in the session's format, of any size. With ``realtime`` the
        audio leaves no faster than it plays, one ``chunk_ms`` frame at a time, as
        from a microphone (PCM only: ``ValueError`` for compressed audio); without
        it, as fast as the connection takes it (fine for local servers; the service
        may answer 3007 "Audio Transmission Rate Exceeded"). Does not terminate the
        session.
        """
        await pace(
            self.send_audio, source, self.audio_format, chunk_ms=self._chunk_ms, realtime=realtime
        )

    async def stream_file(self, path: str | os.PathLike[str], *, realtime: bool = True) -> None:
        """Send the audio of a file, paced as :meth:`stream` does.

        A WAV file must hold mono 16-bit PCM at the session's sample rate (see
        :func:`aai_proto.trio.read_wav_format`; ``ValueError`` otherwise, before
        anything is sent). A file whose name ends in ``.raw`` or ``.pcm`` is raw
        audio in the session's encoding. Does not terminate the session.
        """
        chunks = file_chunks(path, self.audio_format, chunk_ms=self._chunk_ms, realtime=realtime)
        with contextlib.closing(chunks):  # the file closes now, even if this is cancelled
            await self.stream(chunks, realtime=realtime)

    async def terminate(self) -> Termination | None:
        """End the session: send the audio tail and ``Terminate``, wait for ``Termination``.

        Waits at most ``terminate_timeout`` seconds (sending included), then closes
        the connection whatever happened (see :meth:`aclose`: at most
        ``CLOSE_TIMEOUT`` more). Returns the ``Termination``, or ``None``
        if none came in time or the server closed normally without one. Raises the
        session's failure if it failed. Calling it again returns the same result
        without sending anything.
        """
        if self._terminated is not None:
            await self._terminated.wait()
            self._raise_failure()
            return self._client.termination
        self._terminated = done = trio.Event()
        try:
            self._check()
            self._drain()
            with trio.move_on_after(self._terminate_timeout):
                try:
                    # Decided under the send lock: the session may have ended while
                    # another task was sending.
                    await self._act(self._terminate_if_open)
                except StreamingError:
                    if self._client.failure is not None:
                        raise
                    # The server closed normally as Terminate went out: the core says
                    # that is no failure (None, as when no send was on the way).
                await self._finished.wait()
        finally:
            await self.aclose()
            done.set()
        self._raise_failure()
        return self._client.termination

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
            with trio.move_on_after(CLOSE_TIMEOUT):
                await self._close_websocket(1000, None)
                await self._reader_done.wait()  # the reader has seen the close
        finally:
            await _close_now(self._stream)
        await self._reader_done.wait()

    async def _close_websocket(self, code: int, reason: str | None) -> None:
        """Send a close frame and wait for the server's, but no longer than anything reads.

        trio-websocket's ``aclose()`` waits for the server's close frame; when its
        reader task has ended without one (see ``_connect``), none can come.
        """
        async with trio.open_nursery() as nursery:

            async def stop_when_reading_is_over() -> None:
                await self._reading_over.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_when_reading_is_over)
            # In this task, and before anything else runs: of two closes that race
            # (the reader's 1002 and a caller's aclose), the first called is sent.
            await self._ws.aclose(code, reason)
            nursery.cancel_scope.cancel()

    # -- iteration ------------------------------------------------------------------

    def __aiter__(self) -> Session:
        return self

    async def __anext__(self) -> ServerEvent:
        if self._iteration_over:
            raise StopAsyncIteration
        try:
            event = await self._events_out.receive()
        except trio.EndOfChannel:
            self._iteration_over = True
            self._raise_failure()
            raise StopAsyncIteration from None
        self._room.set()
        if isinstance(event, Termination):
            self._iteration_over = True
        return event

    # -- internals ------------------------------------------------------------------

    _batching: ClassVar[bool] = True
    """Send several frames per write where trio-websocket allows it (see _send_frames)."""

    def _broken_error(self) -> Exception:
        return trio.BrokenResourceError(
            "a send was cancelled midway, so the session's connection was closed"
        )

    def _drain(self) -> None:
        # The session is ending: read on past the buffer's bound so that its end
        # (Termination, the close, an error) is seen even if nobody takes the events.
        self._draining = True
        self._room.set()

    async def _act(self, action: Callable[[], object]) -> None:
        self._check()
        async with self._send_lock:  # waiting here is cancelled cleanly: nothing done yet
            self._check()
            action()  # the core decides: LocalProtocolError or ValueError leave nothing queued
            frames = self._client.data_to_send()
            try:
                await self._send_frames(frames)
            except trio_websocket.ConnectionClosed:
                await self._closed_while_sending()
            except BaseException:
                # Cancelled mid-write: the stream may end in half a frame. Nothing can
                # follow it, so close the socket now.
                if self._client.allows(Input.SEND_FAILED):
                    self._client.send_failed()
                await _close_now(self._stream)
                raise

    async def _send_frames(self, frames: list[bytes | str]) -> None:
        ws = self._ws
        # Frames leave a batch at a time (a second of audio is twenty frames), each
        # batch in one write under trio-websocket's own send lock, framed by
        # encode_client_frames -- not a send_message each, with its lock,
        # checkpoints and write. This reaches into the connection (its wsproto
        # state, lock and abort); without those, frames go one at a time, and once
        # the connection is closing, send_message raises what it says.
        proto = getattr(ws, "_wsproto", None)
        lock: trio.StrictFIFOLock | None = getattr(ws, "_stream_lock", None)
        abort: Callable[[], Awaitable[None]] | None = getattr(ws, "_abort_web_socket", None)
        if len(frames) < 2 or not self._batching or proto is None or lock is None or abort is None:
            for frame in frames:
                await ws.send_message(frame)
            return
        for batch in batches(frames):
            if len(batch) == 1:
                await ws.send_message(batch[0])
                continue
            data = encode_client_frames(batch)
            async with lock:
                if ws.closed is None and proto.state is ConnectionState.OPEN:
                    try:
                        await self._stream.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        # As send_message: the connection records an abnormal close.
                        await abort()
                        reason = ws.closed
                        assert reason is not None
                        raise trio_websocket.ConnectionClosed(reason) from None
                    continue
            for frame in batch:  # closing: send_message raises what the connection says
                await ws.send_message(frame)

    async def _closed_while_sending(self) -> None:
        # The reader sees why the connection closed; wait for it to get there. It
        # may be stuck answering the server's close frame to a server that reads
        # no more: then close the socket under it.
        self._drain()
        with trio.move_on_after(CLOSE_TIMEOUT):
            await self._reader_done.wait()
        if not self._reader_done.is_set():
            await _close_now(self._stream)
            await self._reader_done.wait()
        self._raise_failure()
        closed = self._client.closed
        if closed is None or closed.local:
            raise trio.ClosedResourceError("the session was closed")
        raise StreamingError(closed.code, closed.reason)

    async def _wait_for_room(self) -> None:
        # Backpressure: while max_buffered_events wait to be taken, read no more.
        while (
            not self._draining
            and self._events_out.statistics().current_buffer_used >= self._max_buffered
        ):
            self._room = trio.Event()
            await self._room.wait()

    async def _read(self) -> None:
        """The one reader: every message goes to the core, every event to the channel."""
        try:
            while True:
                await self._wait_for_room()
                try:
                    message = await self._ws.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    reason = exc.reason
                    # trio-websocket's codes may be IntEnum members: keep plain ints.
                    code, text = (int(reason.code), reason.reason or "") if reason else (1006, "")
                    self._client.connection_closed(code, text)  # the core says what it means
                    if self._failed_unanswered():
                        self._finished.set()
                        self._events_in.close()
                        try:
                            with trio.move_on_after(CLOSE_TIMEOUT):
                                await self._send_failing_close(code, text)
                                await self._reading_over.wait()  # the server hangs up
                        finally:
                            await _close_now(self._stream)
                    return
                try:
                    events = self._client.receive_message(message)
                except RemoteProtocolError:
                    self._finished.set()
                    self._events_in.close()
                    try:
                        with trio.move_on_after(CLOSE_TIMEOUT):
                            await self._close_websocket(1002, "protocol error")
                    finally:
                        await _close_now(self._stream)
                    return
                for event in events:
                    if isinstance(event, Begin):
                        self._begun.set()
                    elif isinstance(event, Termination):
                        self._finished.set()
                    assert not isinstance(event, ConnectionClosed)
                    self._events_in.send_nowait(event)
        finally:
            self._reading.cancel()
            self._events_in.close()
            self._begun.set()
            self._finished.set()
            self._reader_done.set()

    async def _bound_closing(self) -> None:
        """Once the server's close frame came, give the closing handshake ``CLOSE_TIMEOUT``.

        Runs beside the reader, until it ends. The answer to the server's close
        waits for trio-websocket's send lock; a send that holds it, waiting for
        room, waits for ever if the server reads no more. So the socket is closed
        under both: the send raises the session's failure, which the reader sees.
        trio-websocket says when the close came only with an event named for its
        tests; a version without it leaves this bound to ``aclose()``.
        """
        came: trio.Event | None = getattr(self._ws, "_for_testing_peer_closed_connection", None)
        if came is None:
            return
        with self._reading:
            await came.wait()
            await trio.sleep(CLOSE_TIMEOUT)
            await _close_now(self._stream)

    def _failed_unanswered(self) -> bool:
        """Whether wsproto failed the connection and no close frame went out for it.

        On broken framing (an undefined opcode, a bad length, text that is not
        UTF-8) wsproto yields the close to send (1002, 1007) but stays ``OPEN``;
        trio-websocket (0.12.2) records that close, which ends ``get_message()``,
        but sends nothing, so the server would see the connection drop (1006).
        Every other close leaves wsproto past ``OPEN``: a close frame went out,
        or came in and was answered, or the connection was aborted.
        """
        proto = getattr(self._ws, "_wsproto", None)
        return proto is not None and proto.state is ConnectionState.OPEN

    async def _send_failing_close(self, code: int, reason: str) -> None:
        """Send the close frame wsproto asked for (see ``_failed_unanswered``).

        Through trio-websocket's own ``_send``, as its reader sends its answers:
        under its lock, and recording an abort if the stream is broken. Without
        it (another version), nothing is sent and the server sees 1006.
        """
        send: Callable[[CloseConnection], Awaitable[None]] | None = getattr(self._ws, "_send", None)
        if send is None:
            return
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            await send(CloseConnection(code=code, reason=reason or None))


async def _close_now(stream: trio.abc.Stream) -> None:
    """Close ``stream`` at once, even in a cancelled scope (closing a trio stream never waits)."""
    with trio.CancelScope(shield=True):
        await trio.aclose_forcefully(stream)


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
    stream: trio.abc.Stream | None = None,
) -> AbstractAsyncContextManager[Session]:
    """Open a streaming session; an async context manager that yields a :class:`Session`.

    Connects to ``url`` (``wss://`` or ``ws://``) with ``params`` in the query and the
    ``api_key`` or temporary ``token`` in the ``Authorization`` header, and waits
    for the server's ``Begin``, within ``connect_timeout`` seconds an attempt. Raises
    :class:`ConnectError` (DNS, refused, TLS, hang-up), :class:`HandshakeRejected`
    (an HTTP status), :class:`ConnectTimeout`, or the session's failure if the
    server refuses the session itself (``StreamingError`` 1008 for a bad key, 3006
    for an invalid parameter). Bad arguments raise ``ValueError`` at the call.

    A failed attempt is made again, as the official SDKs do, up to ``retries``
    more times, ``retry_delay`` seconds apart (each attempt has its own
    ``connect_timeout``): a ``ConnectError`` or ``ConnectTimeout``, or a close
    before ``Begin`` that :attr:`~aai_proto.StreamingError.retryable` allows (so
    1011, not 1008 or 3006). Never an HTTP rejection (``HandshakeRejected``), and
    never with ``stream=``, which can carry one attempt only. The last attempt's
    exception is raised, with a note for each earlier failure.

    Leaving the block normally terminates the session (see
    :meth:`Session.terminate`) and raises a failure nobody has seen yet; leaving it
    by an exception or a cancellation closes the socket at once and lets that
    exception through unchanged.

    ``chunk_ms`` and ``tail`` shape the audio frames (see
    :class:`~aai_proto.AudioChunker`). At most ``max_buffered_events`` events wait
    to be taken; beyond that the session stops reading until some are taken
    (backpressure), except while it ends, so that ``terminate()`` always sees the
    end. ``stream``, if given, is an open byte stream to run the WebSocket over
    instead of connecting to ``url``'s host (``url`` still gives the request's
    host and path); the session closes it.
    """
    client = Client(params, chunk_ms=chunk_ms, tail=tail)
    headers = build_headers(api_key=api_key, token=token, user_agent=user_agent)
    target = Target.from_url(build_url(params, base_url=url), shown=redact_url(url))
    check_options(
        terminate_timeout=terminate_timeout,
        connect_timeout=connect_timeout,
        max_buffered_events=max_buffered_events,
        retries=retries,
        retry_delay=retry_delay,
    )

    async def connect(nursery: trio.Nursery, client: Client) -> Session:
        conn = stream if stream is not None else await open_stream(target)
        try:
            ws, reading_over = await handshake(nursery, conn, target, headers)
            session = Session(
                ws,
                conn,
                client,
                reading_over=reading_over,
                chunk_ms=chunk_ms,
                terminate_timeout=terminate_timeout,
                max_buffered_events=max_buffered_events,
            )
            nursery.start_soon(session._read)
            nursery.start_soon(session._bound_closing)
            await session._begun.wait()
            if client.begin is None:
                session._raise_failure()
                code = client.closed.code if client.closed else 1006
                raise ConnectError(
                    target.shown, f"the server closed the session ({code}) before Begin"
                )
            return session
        except BaseException:
            await _close_now(conn)
            raise

    async def attempt(nursery: trio.Nursery, client: Client) -> Session:
        with trio.move_on_after(connect_timeout):
            return await connect(nursery, client)
        raise ConnectTimeout(target.shown, f"no Begin within {connect_timeout:g} s")

    async def open_(nursery: trio.Nursery) -> Session:
        # A stream given to us carries one attempt: there is no second connection.
        attempts = Attempts(retries=retries if stream is None else 0, delay=retry_delay)
        this_client = client
        while True:
            try:
                return await attempt(nursery, this_client)
            except Exception as exc:
                if not attempts.retry(exc, this_client.closed):
                    raise
            await trio.sleep(attempts.delay)
            this_client = Client(params, chunk_ms=chunk_ms, tail=tail)

    return _SessionContext(open_)


@final
class _SessionContext:
    """``open_session``'s context manager.

    Strategy: the session's tasks run in a nursery entered here by hand, and the
    block runs inside it -- but the nursery never sees the block's exception. On
    the way out the tasks are cancelled under a shield, so only our own
    cancellation reaches them and the nursery exits cleanly; whatever left the
    block then goes on unchanged, never wrapped in an exception group.
    """

    def __init__(self, open_: Callable[[trio.Nursery], Awaitable[Session]]) -> None:
        self._open = open_
        self._nursery_manager: AbstractAsyncContextManager[trio.Nursery] | None = None

    async def __aenter__(self) -> Session:
        if self._nursery_manager is not None:
            raise RuntimeError("open_session(...) can be entered only once")
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        try:
            self._session: Session = await self._open(self._nursery)
        except BaseException:
            await self._close_nursery()
            raise
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                await self._session._leave()
            else:
                await trio.aclose_forcefully(self._session)
        finally:
            await self._close_nursery()

    async def _close_nursery(self) -> None:
        assert self._nursery_manager is not None
        scope = self._nursery.cancel_scope
        scope.shield = True
        scope.cancel()
        await self._nursery_manager.__aexit__(None, None, None)
