"""aai_proto.trio against an in-test trio-websocket server over in-memory streams.

Each test scripts the server side as a handler; ``serve`` runs it in the test's
nursery (stopped with the test). Timing is checked in virtual time.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import NoReturn

import attrs
import pytest
import trio
import trio.testing
import trio_websocket
from trio_websocket import CloseReason, WebSocketConnection, WebSocketRequest

import aai_proto as aai
from aai_proto.trio import (
    CLOSE_TIMEOUT,
    ConnectError,
    ConnectTimeout,
    HandshakeRejected,
    Session,
    open_session,
    read_wav_format,
)
from tests._websocket import (
    CLOSE,
    PING,
    TEXT,
    accept_upgrade,
    frame,
    parse_close,
)
from tests.trio.conftest import WavMaker

KEY = "sk-test-SECRET-KEY-0123"
TOKEN = "tok-SECRET-TOKEN-4567"
URL = "ws://aai.test/v3/ws"
PARAMS = aai.StreamingParams(sample_rate=16000)
FRAME = 1600  # bytes in 50 ms of 16 kHz pcm_s16le
BEGIN = aai.Begin(id="session-1", expires_at=1759796682)
TERMINATION = aai.Termination(audio_duration_seconds=3, session_duration_seconds=4)
TERMINATE = '{"type":"Terminate"}'
ERROR_3007 = aai.ServerError(
    error_code=3007, error="Input duration violation: 20 ms. Expected between 50 and 1000 ms"
)

Handler = Callable[[WebSocketRequest], Awaitable[None]]


def dump(event: aai.ServerEvent) -> str:
    return aai.dump_server_message(event)


def turn(order: int, text: str, *, end: bool = False) -> aai.Turn:
    return aai.Turn(
        turn_order=order,
        turn_is_formatted=end,
        end_of_turn=end,
        transcript=text,
        end_of_turn_confidence=1.0 if end else 0.0,
        words=(),
    )


@attrs.define
class Server:
    """What a scripted server saw: the request, the messages, and how the client closed."""

    request: WebSocketRequest | None = None
    received: list[str | bytes] = attrs.Factory(list)
    close: CloseReason | None = None
    closed: trio.Event = attrs.Factory(trio.Event)

    async def accept(self, request: WebSocketRequest, *, begin: bool = True) -> WebSocketConnection:
        self.request = request
        ws = await request.accept()
        if begin:
            await ws.send_message(dump(BEGIN))
        return ws

    async def receive_until_terminate(self, ws: WebSocketConnection) -> None:
        while True:
            message = await ws.get_message()
            self.received.append(message)
            if isinstance(message, str) and message == TERMINATE:
                return

    async def wait_close(self, ws: WebSocketConnection) -> None:
        """Read (and record) until the client closes."""
        try:
            while True:
                self.received.append(await ws.get_message())
        except trio_websocket.ConnectionClosed as exc:
            self.close = exc.reason
        self.closed.set()

    def header(self, name: bytes) -> bytes:
        assert self.request is not None
        return dict(self.request.headers)[name]


def serve(
    nursery: trio.Nursery, handler: Handler, *, lockstep: bool = False
) -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """Start ``handler`` as the server of a new in-memory connection; return (client, server)."""
    pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
    client, server = pair()

    async def run() -> None:
        await handler(await trio_websocket.wrap_server_stream(nursery, server))

    nursery.start_soon(run)
    return client, server


def answering(server: Server, *before_end: str) -> Handler:
    """A server that answers Terminate with ``before_end`` messages, then Termination."""

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await server.receive_until_terminate(ws)
        for message in before_end:
            await ws.send_message(message)
        await ws.send_message(dump(TERMINATION))
        await server.wait_close(ws)

    return handler


def begun(event: trio.Event) -> Handler:
    """A server that sends Begin, sets ``event``, and leaves the socket to the test."""

    async def handler(request: WebSocketRequest) -> None:
        await Server().accept(request)
        event.set()

    return handler


def session_for(
    stream: trio.abc.Stream,
    *,
    terminate_timeout: float = 5.0,
    connect_timeout: float = 10.0,
    max_buffered_events: int = 10_000,
) -> AbstractAsyncContextManager[Session]:
    return open_session(
        PARAMS,
        api_key=KEY,
        url=URL,
        stream=stream,
        terminate_timeout=terminate_timeout,
        connect_timeout=connect_timeout,
        max_buffered_events=max_buffered_events,
    )


async def events_of(session: Session) -> list[aai.ServerEvent]:
    return [event async for event in session]


# -- a session that goes well ---------------------------------------------------------


async def test_session_sends_in_order_and_terminates(nursery: trio.Nursery) -> None:
    server = Server()
    partial, final = turn(0, "hel"), turn(0, "hello", end=True)
    client_stream, _ = serve(nursery, answering(server, dump(partial), dump(final)))
    async with session_for(client_stream) as session:
        assert session.begin == BEGIN
        assert session.session_id == "session-1"
        assert session.state.value == "STREAMING"
        assert session.audio_format == aai.AudioFormat(sample_rate=16000)
        audio = bytes(range(256)) * 13  # 3328 bytes: two frames and 128 bytes
        await session.send_audio(audio)
        await session.force_endpoint()
        await session.keep_alive()
        await session.update_configuration(max_turn_silence=500, keyterms_prompt=["aai"])
        assert await session.terminate() == TERMINATION
        assert session.termination == TERMINATION
        assert session.state is aai.State.CLOSED
        assert await events_of(session) == [BEGIN, partial, final, TERMINATION]
    assert server.received == [
        audio[:FRAME],
        audio[FRAME : 2 * FRAME],
        '{"type":"ForceEndpoint"}',
        '{"type":"KeepAlive"}',
        '{"type":"UpdateConfiguration","max_turn_silence":500,"keyterms_prompt":["aai"]}',
        audio[2 * FRAME :] + bytes(FRAME - 128),  # the tail, padded to 50 ms
        TERMINATE,
    ]
    assert server.request is not None
    assert server.request.path == "/v3/ws?sample_rate=16000&encoding=pcm_s16le"
    assert server.header(b"authorization") == KEY.encode()
    assert server.header(b"user-agent") == aai.DEFAULT_USER_AGENT.encode()
    assert server.close is not None
    assert server.close.code == 1000


async def test_token_travels_in_the_authorization_header(nursery: trio.Nursery) -> None:
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    async with open_session(
        PARAMS, token=TOKEN, url="ws://aai.test:8080/v3/ws", stream=client_stream
    ) as session:
        assert await session.terminate() == TERMINATION
    assert server.header(b"authorization") == TOKEN.encode()
    assert server.request is not None
    assert TOKEN not in server.request.path


async def test_leaving_the_block_terminates_once(nursery: trio.Nursery) -> None:
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    async with session_for(client_stream) as session:
        await session.send_audio(bytes(FRAME))
    assert session.termination == TERMINATION
    assert server.received == [bytes(FRAME), TERMINATE]
    assert server.close is not None
    assert server.close.code == 1000


async def test_terminate_twice_returns_the_same_and_sends_once(nursery: trio.Nursery) -> None:
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    results: list[aai.Termination | None] = []

    async def terminate(session: Session) -> None:
        results.append(await session.terminate())

    async with session_for(client_stream) as session:
        async with trio.open_nursery() as both:
            both.start_soon(terminate, session)
            both.start_soon(terminate, session)
        assert await session.terminate() == TERMINATION
    assert results == [TERMINATION, TERMINATION]
    assert server.received == [TERMINATE]


async def test_actions_after_terminate_raise_local_protocol_error(nursery: trio.Nursery) -> None:
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    async with session_for(client_stream) as session:
        await session.terminate()
        with pytest.raises(aai.LocalProtocolError, match="can't send_audio in state CLOSED"):
            await session.send_audio(bytes(FRAME))
        with pytest.raises(aai.LocalProtocolError, match="can't force_endpoint in state CLOSED"):
            await session.force_endpoint()
    assert server.received == [TERMINATE]


async def test_invalid_update_sends_nothing(nursery: trio.Nursery) -> None:
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    async with session_for(client_stream) as session:
        with pytest.raises(ValueError, match="can't update sample_rate"):
            await session.update_configuration(sample_rate=8000)
        with pytest.raises(aai.InvalidParameter, match="Invalid 'vad_threshold'"):
            await session.update_configuration(vad_threshold=2.0)
        assert await session.terminate() == TERMINATION
    assert server.received == [TERMINATE]


async def test_iteration_ends_after_termination_without_waiting_for_the_close(
    nursery: trio.Nursery,
) -> None:
    server = Server()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await ws.send_message(dump(TERMINATION))  # unasked, and the server keeps the socket
        await server.wait_close(ws)

    client_stream, _ = serve(nursery, handler)
    async with session_for(client_stream) as session:
        assert await events_of(session) == [BEGIN, TERMINATION]
        assert await events_of(session) == []
        with pytest.raises(StopAsyncIteration):
            await session.__anext__()
    assert server.received == []  # already terminated: no Terminate is sent
    assert server.close is not None
    assert server.close.code == 1000


async def test_events_wait_for_a_caller_that_never_iterates(nursery: trio.Nursery) -> None:
    server = Server()
    turns = [turn(n, f"turn {n}", end=True) for n in range(50)]
    client_stream, _ = serve(nursery, answering(server, *map(dump, turns)))
    async with session_for(client_stream, max_buffered_events=2) as session:
        # The bound is lifted while the session ends: Termination is seen.
        assert await session.terminate() == TERMINATION
        assert await events_of(session) == [BEGIN, *turns, TERMINATION]


async def test_backpressure_at_the_buffer_bound(nursery: trio.Nursery) -> None:
    sent = 0
    turns = [turn(n, f"turn {n}", end=True) for n in range(10)]

    async def handler(request: WebSocketRequest) -> None:
        nonlocal sent
        ws = await request.accept()
        messages: list[aai.ServerEvent] = [BEGIN, *turns]
        for message in messages:
            await ws.send_message(dump(message))
            sent += 1
        await ws.aclose()

    client_stream, _ = serve(nursery, handler, lockstep=True)
    async with session_for(client_stream, max_buffered_events=3) as session:
        await trio.testing.wait_all_tasks_blocked()
        # 3 events wait in the session; trio-websocket holds one message in its
        # queue and one in its reader; the server's next send waits.
        assert sent == 5
        assert await session.__anext__() == BEGIN
        await trio.testing.wait_all_tasks_blocked()
        assert sent == 6
        assert await events_of(session) == turns
    assert sent == 11


async def test_sends_are_serialised(nursery: trio.Nursery) -> None:
    server = Server()
    go = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await go.wait()
        await server.receive_until_terminate(ws)
        await ws.send_message(dump(TERMINATION))
        await server.wait_close(ws)

    audio = bytes(range(200)) * 32  # four frames
    client_stream, _ = serve(nursery, handler, lockstep=True)
    async with session_for(client_stream) as session:
        async with trio.open_nursery() as senders:
            senders.start_soon(session.send_audio, audio)
            await trio.testing.wait_all_tasks_blocked()  # the audio is half sent
            senders.start_soon(session.force_endpoint)
            await trio.testing.wait_all_tasks_blocked()
            go.set()
        assert await session.terminate() == TERMINATION
    frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
    assert server.received == [*frames, '{"type":"ForceEndpoint"}', TERMINATE]


# -- terminate never hangs --------------------------------------------------------------


@pytest.mark.parametrize("timeout", [5.0, 0.25])
async def test_terminate_gives_up_after_terminate_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, timeout: float
) -> None:
    server = Server()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await server.wait_close(ws)  # never answers Terminate

    client_stream, _ = serve(nursery, handler)
    async with session_for(client_stream, terminate_timeout=timeout) as session:
        start = trio.current_time()
        assert await session.terminate() is None
        assert trio.current_time() - start == timeout
        assert session.state is aai.State.CLOSED
    assert server.received == [TERMINATE]
    assert server.close is not None
    assert server.close.code == 1000


async def test_terminate_gives_up_when_the_server_reads_nothing(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = Server()
    go = trio.Event()
    sender_error: list[BaseException] = []

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await go.wait()
        await server.wait_close(ws)

    async def send(session: Session) -> None:
        with pytest.raises(trio.ClosedResourceError, match="the session was closed") as info:
            await session.send_audio(bytes(100 * FRAME))
        sender_error.append(info.value)

    client_stream, _ = serve(nursery, handler, lockstep=True)
    async with session_for(client_stream) as session, trio.open_nursery() as tasks:
        tasks.start_soon(send, session)
        await trio.testing.wait_all_tasks_blocked()  # the audio fills what the server holds
        start = trio.current_time()
        assert await session.terminate() is None  # Terminate could not even be sent
        assert trio.current_time() - start == 5.0 + CLOSE_TIMEOUT
        go.set()
        await server.closed.wait()
    assert len(sender_error) == 1
    assert server.received
    assert all(message == bytes(FRAME) for message in server.received)  # no Terminate
    assert server.close is not None
    assert server.close.code == 1006  # the close handshake was cut short


async def test_terminate_returns_none_when_the_server_closes_without_termination(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = Server()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await server.receive_until_terminate(ws)
        await ws.aclose(1000, "Session Ended")

    client_stream, _ = serve(nursery, handler)
    async with session_for(client_stream) as session:
        start = trio.current_time()
        assert await session.terminate() is None
        assert trio.current_time() == start
        assert await events_of(session) == [BEGIN]


async def test_terminate_raises_an_error_close(nursery: trio.Nursery) -> None:
    server = Server()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await server.receive_until_terminate(ws)
        await ws.aclose(1011, "Internal error")

    client_stream, _ = serve(nursery, handler)
    async with session_for(client_stream) as session:
        with pytest.raises(aai.StreamingError) as info:
            await session.terminate()
        assert (info.value.code, info.value.reason, info.value.message) == (
            1011,
            "Internal error",
            None,
        )
        assert info.value.retryable
        # Every call raises the failure afresh, chained to the one the core keeps,
        # so tracebacks do not grow with each call.
        depth = len(info.traceback)
        send_depths = set()
        for _ in range(3):
            with pytest.raises(aai.StreamingError) as again:
                await session.terminate()
            assert again.value == info.value
            assert again.value is not info.value
            assert again.value.__cause__ is info.value.__cause__ is session._client.failure
            assert len(again.traceback) == depth
            with pytest.raises(aai.StreamingError) as sending:
                await session.send_audio(b"\x00" * 3200)
            assert sending.value.__cause__ is session._client.failure
            send_depths.add(len(sending.traceback))
        assert len(send_depths) == 1
    # Leaving the block does not raise a failure that was seen already.


async def test_terminate_raises_on_garbage(nursery: trio.Nursery) -> None:
    server = Server()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await server.receive_until_terminate(ws)
        await ws.send_message("this is not JSON")
        await server.wait_close(ws)

    client_stream, _ = serve(nursery, handler)
    async with session_for(client_stream) as session:
        with pytest.raises(aai.RemoteProtocolError, match="server message is not valid JSON"):
            await session.terminate()
        assert session.state is aai.State.ERROR
        assert await session.__anext__() == BEGIN
        with pytest.raises(aai.RemoteProtocolError, match="not valid JSON"):
            await session.__anext__()
        assert await events_of(session) == []
    assert server.close is not None
    assert (server.close.code, server.close.reason) == (1002, "protocol error")


async def test_trouble_after_termination_is_ignored(nursery: trio.Nursery) -> None:
    server = Server()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await server.receive_until_terminate(ws)
        await ws.send_message(dump(TERMINATION))
        await ws.send_message("not JSON")
        await server.wait_close(ws)

    client_stream, _ = serve(nursery, handler)
    async with session_for(client_stream) as session:
        assert await session.terminate() == TERMINATION
        assert await events_of(session) == [BEGIN, TERMINATION]


# -- failures reach whichever call is waiting -------------------------------------------


def error_then_close(server: Server, error: aai.ServerError, *, after: int = 1) -> Handler:
    """A server that sends ``error`` and closes with its code after ``after`` messages."""

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        for _ in range(after):
            server.received.append(await ws.get_message())
        await ws.send_message(dump(error))
        await ws.aclose(error.error_code or 1011, "See Error message for details")
        server.closed.set()

    return handler


async def test_server_error_3007_surfaces_from_iteration(nursery: trio.Nursery) -> None:
    server = Server()
    client_stream, _ = serve(nursery, error_then_close(server, ERROR_3007))
    async with session_for(client_stream) as session:
        await session.send_audio(bytes(FRAME))
        assert await session.__anext__() == BEGIN
        assert await session.__anext__() == ERROR_3007
        with pytest.raises(aai.StreamingError) as info:
            await session.__anext__()
        error = info.value
        assert (error.code, error.reason, error.message) == (
            3007,
            "See Error message for details",
            ERROR_3007.error,
        )
        assert str(error) == (
            "3007 audio chunk duration violation, or audio sent too fast: "
            "Input duration violation: 20 ms. Expected between 50 and 1000 ms"
        )
        for call in (session.keep_alive, session.force_endpoint, session.terminate):
            with pytest.raises(aai.StreamingError) as again:
                await call()
            assert again.value == error
            assert again.value.__cause__ is error.__cause__
    assert server.received == [bytes(FRAME)]


async def test_server_error_surfaces_from_a_send_waiting_on_backpressure(
    nursery: trio.Nursery,
) -> None:
    server = Server()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await trio.testing.wait_all_tasks_blocked()  # the client is stuck sending
        await ws.send_message(dump(ERROR_3007))
        await ws.aclose(3007, "See Error message for details")

    client_stream, _ = serve(nursery, handler, lockstep=True)
    async with session_for(client_stream) as session:
        with pytest.raises(aai.StreamingError) as info:
            await session.send_audio(bytes(20 * FRAME))
        assert (info.value.code, info.value.message) == (3007, ERROR_3007.error)


async def test_a_failure_nobody_saw_is_raised_when_leaving(nursery: trio.Nursery) -> None:
    server = Server()
    error = aai.ServerError(error_code=3006, error="Session idle for too long")
    client_stream, _ = serve(nursery, error_then_close(server, error, after=0))
    with pytest.raises(aai.StreamingError) as info:
        async with session_for(client_stream):
            await server.closed.wait()
    assert (info.value.code, info.value.message) == (3006, "Session idle for too long")


async def test_a_failure_after_leaving_by_terminate_is_raised(nursery: trio.Nursery) -> None:
    server = Server()
    error = aai.ServerError(error_code=3005, error="Internal server error")
    client_stream, _ = serve(nursery, error_then_close(server, error))
    with pytest.raises(aai.StreamingError) as info:
        async with session_for(client_stream):
            pass  # leaving terminates; the server answers Terminate with an error
    assert (info.value.code, info.value.message) == (3005, "Internal server error")
    assert server.received == [TERMINATE]


async def test_an_abrupt_close_is_a_1006_streaming_error(nursery: trio.Nursery) -> None:
    closing = trio.Event()
    client_stream, server_stream = serve(nursery, begun(closing))
    async with session_for(client_stream) as session:
        await closing.wait()
        await server_stream.aclose()  # the TCP connection drops: no close frame
        assert await session.__anext__() == BEGIN
        with pytest.raises(aai.StreamingError) as info:
            await session.__anext__()
        assert (info.value.code, str(info.value)) == (
            1006,
            "1006 connection lost without a close frame",
        )


async def test_broken_framing_is_a_1002_streaming_error(nursery: trio.Nursery) -> None:
    opened = trio.Event()
    client_stream, server_stream = serve(nursery, begun(opened))
    async with session_for(client_stream) as session:
        await opened.wait()
        await server_stream.send_all(b"\x8f\x00")  # a frame with an undefined opcode
        assert await session.__anext__() == BEGIN
        with pytest.raises(aai.StreamingError) as info:
            await session.__anext__()
        assert (info.value.code, info.value.reason) == (1002, "Invalid opcode 0xf")
        assert type(info.value.code) is int


async def test_a_normal_close_under_a_waiting_send(nursery: trio.Nursery) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await Server().accept(request)
        await trio.testing.wait_all_tasks_blocked()  # the client is stuck sending
        await ws.aclose(1000, "Session Ended")

    client_stream, _ = serve(nursery, handler, lockstep=True)
    async with session_for(client_stream) as session:
        with pytest.raises(aai.StreamingError) as info:
            await session.send_audio(bytes(20 * FRAME))
        assert str(info.value) == "1000 normal closure: Session Ended"
        assert session.state is aai.State.CLOSED
        # The core's verdict for the calls that follow a normal close:
        with pytest.raises(aai.LocalProtocolError, match="in state CLOSED"):
            await session.send_audio(bytes(FRAME))
        assert await session.terminate() is None


async def test_a_close_the_client_cannot_answer_does_not_hang_a_send(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async def handler(request: WebSocketRequest) -> None:
        await Server().accept(request)
        await trio.sleep_forever()  # reads nothing: its side holds two frames, then no more

    client_stream, server_stream = serve(nursery, handler, lockstep=True)
    async with session_for(client_stream) as session:
        await session.send_audio(bytes(2 * FRAME))
        # A close frame (3007), written under the server's WebSocket: the client's
        # answer to it cannot be sent, as the server reads nothing.
        await server_stream.send_all(b"\x88\x02\x0b\xbf")
        start = trio.current_time()
        with pytest.raises(aai.StreamingError) as info:
            await session.send_audio(bytes(FRAME))
        assert trio.current_time() - start == CLOSE_TIMEOUT
        assert (info.value.code, info.value.message) == (3007, None)


# -- leaving by an exception or a cancellation -----------------------------------------


def silent(server: Server) -> Handler:
    """A server that sends Begin, then only reads."""

    async def handler(request: WebSocketRequest) -> None:
        await server.wait_close(await server.accept(request))

    return handler


async def test_an_exception_in_the_block_is_reraised_unchanged(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = Server()
    client_stream, _ = serve(nursery, silent(server))
    error = KeyError("boom")

    async def block() -> None:
        async with session_for(client_stream) as session:
            await session.send_audio(bytes(FRAME))
            raise error

    with pytest.raises(KeyError) as info:
        await block()
    assert info.value is error
    assert trio.current_time() == 0  # closed at once
    await server.closed.wait()
    assert server.received == [bytes(FRAME)]  # no Terminate
    assert server.close is not None
    assert server.close.code == 1006


async def test_a_cancelled_block_closes_the_socket_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = Server()
    client_stream, _ = serve(nursery, silent(server))
    with trio.move_on_after(3) as scope:
        async with session_for(client_stream):
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() == 3
    await server.closed.wait()
    assert server.received == []
    assert server.close is not None
    assert server.close.code == 1006


async def test_a_cancelled_graceful_exit_still_closes(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = Server()
    client_stream, _ = serve(nursery, silent(server))
    with trio.move_on_after(1) as scope:
        async with session_for(client_stream):
            pass  # leaving terminates; the server never answers; the scope expires first
    assert scope.cancelled_caught
    assert trio.current_time() == 1
    await server.closed.wait()
    assert server.received == [TERMINATE]


async def test_cancelling_a_send_midway_breaks_the_session(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = Server()
    go = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await go.wait()
        await server.wait_close(ws)

    client_stream, _ = serve(nursery, handler, lockstep=True)
    async with session_for(client_stream) as session:
        with trio.move_on_after(1) as scope:
            await session.send_audio(bytes(100 * FRAME))  # the server reads nothing
        assert scope.cancelled_caught
        assert trio.current_time() == 1
        go.set()
        await server.closed.wait()
        assert server.close is not None
        assert server.close.code == 1006  # the socket was closed at once
        assert all(message == bytes(FRAME) for message in server.received)
        with pytest.raises(trio.BrokenResourceError, match="a send was cancelled midway"):
            await session.keep_alive()
        with pytest.raises(trio.BrokenResourceError, match="a send was cancelled midway"):
            await session.terminate()
    # Leaving the block after that raises nothing more.


async def test_a_cancelled_send_that_had_not_started_changes_nothing(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = Server()
    go = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        await go.wait()
        await server.receive_until_terminate(ws)
        await ws.send_message(dump(TERMINATION))
        await server.wait_close(ws)

    client_stream, _ = serve(nursery, handler, lockstep=True)
    async with session_for(client_stream) as session, trio.open_nursery() as tasks:
        tasks.start_soon(session.send_audio, bytes(4 * FRAME))
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1) as scope:
            await session.force_endpoint()  # waits for the send lock, then gives up
        assert scope.cancelled_caught
        go.set()
    assert session.termination == TERMINATION
    assert server.received == [*[bytes(FRAME)] * 4, TERMINATE]


async def test_aclose_stops_a_session_without_terminate(nursery: trio.Nursery) -> None:
    server = Server()
    client_stream, _ = serve(nursery, silent(server))
    async with session_for(client_stream) as session:
        await session.aclose()
        await session.aclose()  # idempotent
        assert session.state is aai.State.CLOSED
        assert await events_of(session) == [BEGIN]
        with pytest.raises(aai.LocalProtocolError, match="can't send_audio in state CLOSED"):
            await session.send_audio(bytes(FRAME))
        assert await session.terminate() is None
    assert server.received == []
    assert server.close is not None
    assert server.close.code == 1000


def pinging_closer(
    server_stream: trio.abc.Stream, closes: list[tuple[int, str]], *, terminate: bool = False
) -> Callable[[], Awaitable[None]]:
    """A raw server (no WebSocket library) that pings right after the client's close.

    It sends Begin (and, with ``terminate``, answers Terminate with Termination),
    reads up to the client's close frame, then writes a Ping and its own close, and
    closes the TCP connection, as a server should.
    """

    async def run() -> None:
        reader = await accept_upgrade(server_stream)
        await server_stream.send_all(frame(TEXT, dump(BEGIN).encode(), mask=False))
        if terminate:
            await reader.until(TEXT)  # Terminate
            await server_stream.send_all(frame(TEXT, dump(TERMINATION).encode(), mask=False))
        _, payload = await reader.until(CLOSE)
        assert payload is not None
        closes.append(parse_close(payload))
        await server_stream.send_all(
            frame(PING, b"still there?", mask=False) + frame(CLOSE, payload, mask=False)
        )
        await server_stream.aclose()

    return run


async def test_a_ping_during_the_clients_close_does_not_hold_it(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # trio-websocket would answer the Ping with a Pong, which wsproto refuses after
    # the client's close: its reader task ends, and nothing reads the server's close.
    client_stream, server_stream = trio.testing.memory_stream_pair()
    closes: list[tuple[int, str]] = []
    nursery.start_soon(pinging_closer(server_stream, closes))
    async with session_for(client_stream) as session:
        start = trio.current_time()
        await session.aclose()
        assert trio.current_time() == start  # not CLOSE_TIMEOUT later
        assert session.state is aai.State.CLOSED
        assert await events_of(session) == [BEGIN]
    assert closes == [(1000, "")]


async def test_a_ping_during_the_close_after_termination_does_not_hold_it(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    closes: list[tuple[int, str]] = []
    nursery.start_soon(pinging_closer(server_stream, closes, terminate=True))
    async with session_for(client_stream) as session:
        start = trio.current_time()
        assert await session.terminate() == TERMINATION
        assert trio.current_time() == start
    assert closes == [(1000, "")]


async def test_a_ping_during_the_close_after_garbage_does_not_hold_it(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    closes: list[tuple[int, str]] = []

    async def run() -> None:
        reader = await accept_upgrade(server_stream)
        await server_stream.send_all(frame(TEXT, dump(BEGIN).encode(), mask=False))
        await server_stream.send_all(frame(TEXT, b"not JSON", mask=False))
        _, payload = await reader.until(CLOSE)
        assert payload is not None
        closes.append(parse_close(payload))
        await server_stream.send_all(frame(PING, mask=False) + frame(CLOSE, payload, mask=False))
        await server_stream.aclose()

    nursery.start_soon(run)
    start = trio.current_time()
    with pytest.raises(aai.RemoteProtocolError, match="not valid JSON"):
        async with session_for(client_stream) as session:
            await session.terminate()
    assert trio.current_time() == start
    assert closes == [(1002, "protocol error")]


async def test_a_server_that_never_closes_tcp_after_a_ping_costs_close_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # The bound still holds when the server answers the close but keeps the socket.
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def run() -> None:
        reader = await accept_upgrade(server_stream)
        await server_stream.send_all(frame(TEXT, dump(BEGIN).encode(), mask=False))
        _, payload = await reader.until(CLOSE)
        assert payload is not None
        await server_stream.send_all(frame(PING, mask=False) + frame(CLOSE, payload, mask=False))
        await trio.sleep_forever()

    nursery.start_soon(run)
    async with session_for(client_stream) as session:
        start = trio.current_time()
        await session.aclose()
        assert trio.current_time() - start == CLOSE_TIMEOUT
        assert session.state is aai.State.CLOSED


async def test_open_session_is_entered_once(nursery: trio.Nursery) -> None:
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    manager = session_for(client_stream)
    async with manager:
        with pytest.raises(RuntimeError, match="can be entered only once"):
            await manager.__aenter__()


# -- opening: refusals, rejections, timeouts --------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (aai.ServerError(error_code=1008, error="Invalid API key"), "Unauthorized"),
        (
            aai.ServerError(
                error_code=3006,
                error="User Input Validation Error: Invalid 'sample_rate': must be at least 8000",
            ),
            "See Error message for details",
        ),
    ],
)
async def test_a_session_refused_before_begin_raises_from_open_session(
    nursery: trio.Nursery, error: aai.ServerError, reason: str
) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message(dump(error))
        await ws.aclose(error.error_code or 0, reason)

    client_stream, _ = serve(nursery, handler)
    with pytest.raises(aai.StreamingError) as info:
        async with session_for(client_stream):
            raise AssertionError("unreachable")  # pragma: no cover
    assert (info.value.code, info.value.reason, info.value.message) == (
        error.error_code,
        reason,
        error.error,
    )


async def test_a_close_before_begin_is_a_connect_error(nursery: trio.Nursery) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.aclose(1000)

    client_stream, _ = serve(nursery, handler)
    with pytest.raises(ConnectError) as info:
        async with session_for(client_stream):
            raise AssertionError("unreachable")  # pragma: no cover
    assert str(info.value) == (
        f"can't connect to {URL}: the server closed the session (1000) before Begin"
    )
    assert info.value.url == URL


async def test_garbage_before_begin_is_a_remote_protocol_error(nursery: trio.Nursery) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message(dump(TERMINATION))  # Termination before Begin
        await trio.sleep_forever()

    client_stream, _ = serve(nursery, handler)
    with pytest.raises(aai.RemoteProtocolError, match="unexpected Termination in state CONNECTING"):
        async with session_for(client_stream):
            raise AssertionError("unreachable")  # pragma: no cover


async def test_a_rejected_upgrade_names_the_status_and_hides_credentials(
    nursery: trio.Nursery,
) -> None:
    async def handler(request: WebSocketRequest) -> None:
        await request.reject(403, body=b"echo: " + dict(request.headers)[b"authorization"])

    client_stream, _ = serve(nursery, handler)
    url = f"{URL}?token={TOKEN}"
    with pytest.raises(HandshakeRejected) as info:
        async with open_session(PARAMS, api_key=KEY, url=url, stream=client_stream):
            raise AssertionError("unreachable")  # pragma: no cover
    error = info.value
    assert error.status_code == 403
    assert error.body == b"echo: " + KEY.encode()
    assert error.url == "ws://aai.test/v3/ws?token=***"
    assert str(error) == (
        "can't connect to ws://aai.test/v3/ws?token=***: "
        "the server rejected the WebSocket upgrade with HTTP 403"
    )
    for text in (str(error), repr(error)):
        assert KEY not in text
        assert TOKEN not in text


async def test_a_hang_up_during_the_handshake_fails_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    await server_stream.aclose()
    with pytest.raises(ConnectError) as info:
        async with session_for(client_stream):
            raise AssertionError("unreachable")  # pragma: no cover
    assert str(info.value) == (
        f"can't connect to {URL}: the server closed the connection during the WebSocket handshake"
    )
    assert trio.current_time() == 0


@pytest.mark.parametrize("accept", [True, False])
async def test_connect_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, accept: bool
) -> None:
    async def handler(request: WebSocketRequest) -> None:
        if accept:
            await request.accept()  # but no Begin
        await trio.sleep_forever()

    client_stream, _ = serve(nursery, handler)
    with pytest.raises(ConnectTimeout) as info:
        async with session_for(client_stream, connect_timeout=2.5):
            raise AssertionError("unreachable")  # pragma: no cover
    assert trio.current_time() == 2.5
    assert str(info.value) == f"can't connect to {URL}: no Begin within 2.5 s"
    assert isinstance(info.value, ConnectError)


async def test_connect_refused_names_the_url() -> None:
    with trio.socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/v3/ws"
    with pytest.raises(ConnectError) as info:
        async with open_session(PARAMS, api_key=KEY, url=url):
            raise AssertionError("unreachable")  # pragma: no cover
    assert str(info.value) == (
        f"can't connect to {url}: all attempts to connect to 127.0.0.1:{port} failed "
        "(Connection refused)"
    )
    assert isinstance(info.value.__cause__, OSError)


class _NoSuchHost(trio.abc.HostnameResolver):
    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> NoReturn:
        raise trio.socket.gaierror(trio.socket.EAI_NONAME, "Name or service not known")

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        raise NotImplementedError


async def test_dns_failure_names_the_url() -> None:
    previous = trio.socket.set_custom_hostname_resolver(_NoSuchHost())
    try:
        with pytest.raises(ConnectError) as info:
            async with open_session(PARAMS, api_key=KEY, url="wss://nowhere.invalid/v3/ws"):
                raise AssertionError("unreachable")  # pragma: no cover
    finally:
        trio.socket.set_custom_hostname_resolver(previous)
    assert str(info.value) == (
        "can't connect to wss://nowhere.invalid/v3/ws: [Errno -2] Name or service not known"
    )


async def test_tls_to_a_server_that_hangs_up(nursery: trio.Nursery) -> None:
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.aclose()

    [listener] = await nursery.start(partial(trio.serve_tcp, hang_up, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    url = f"wss://127.0.0.1:{port}/v3/ws"
    with pytest.raises(ConnectError) as info:
        async with open_session(PARAMS, api_key=KEY, url=url):
            raise AssertionError("unreachable")  # pragma: no cover
    assert str(info.value) == (
        f"can't connect to {url}: the server closed the connection during the WebSocket handshake"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "https://aai.test/v3/ws"}, "expected a ws:// or wss:// URL"),
        ({"url": "ws://user:hunter2@aai.test/v3/ws"}, "must not hold a user name or password"),
        ({"url": "ws:///v3/ws"}, "the URL has no host"),
        ({"url": "ws://aai.test:99999/v3/ws"}, "the URL has an invalid port"),
        ({"terminate_timeout": -1}, "terminate_timeout must be a number of seconds"),
        ({"connect_timeout": math.nan}, "connect_timeout must be a number of seconds"),
        ({"connect_timeout": True}, "connect_timeout must be a number of seconds"),
        ({"max_buffered_events": 0}, "max_buffered_events must be a positive integer"),
        ({"chunk_ms": 20}, "chunk_ms must be an integer from 50 to 1000"),
        ({"token": TOKEN}, "give api_key or token, not both"),
    ],
)
def test_bad_arguments_fail_at_the_call(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        open_session(PARAMS, api_key=KEY, **options)  # type: ignore[arg-type]
    for secret in (KEY, TOKEN, "hunter2"):
        assert secret not in str(info.value)


async def test_secrets_stay_out_of_reprs(nursery: trio.Nursery) -> None:
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    manager = open_session(PARAMS, token=TOKEN, url=URL, stream=client_stream)
    async with manager as session:
        for text in (repr(session), repr(manager), repr(vars(session)), repr(vars(manager))):
            assert TOKEN not in text


# -- streaming a WAV file -----------------------------------------------------------------


def timed(server: Server, times: list[float]) -> Handler:
    """A server that records when each message arrives, and answers Terminate."""

    async def handler(request: WebSocketRequest) -> None:
        ws = await server.accept(request)
        while True:
            message = await ws.get_message()
            times.append(trio.current_time())
            server.received.append(message)
            if isinstance(message, str) and message == TERMINATE:
                break
        await ws.send_message(dump(TERMINATION))
        await server.wait_close(ws)

    return handler


async def test_stream_file_in_real_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, make_wav: WavMaker
) -> None:
    path = make_wav(seconds=1.0)
    server = Server()
    times: list[float] = []
    client_stream, _ = serve(nursery, timed(server, times))
    async with session_for(client_stream) as session:
        start = trio.current_time()
        await session.stream_file(path)
        assert trio.current_time() - start == 1.0
        assert await session.terminate() == TERMINATION
    assert server.received == [b"\x01\x02" * 800] * 20 + [TERMINATE]
    # Frame n leaves once the n frames before it have played.
    assert times[:20] == [start + 800 * n / 16000 for n in range(20)]


async def test_stream_file_fast(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, make_wav: WavMaker
) -> None:
    path = make_wav(seconds=0.125, rate=8000)
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    params = aai.StreamingParams(sample_rate=8000)
    async with open_session(params, url=URL, stream=client_stream, chunk_ms=100) as session:
        await session.stream_file(str(path), realtime=False)
        assert trio.current_time() == 0
    # 100 ms frames of 8 kHz audio, and the 25 ms tail padded to 50 ms.
    assert server.received == [
        b"\x01\x02" * 800,
        b"\x01\x02" * 200 + bytes(400),
        TERMINATE,
    ]


@pytest.mark.parametrize(
    ("wav", "params", "message"),
    [
        ({"channels": 2}, PARAMS, "speech.wav: 2-channel 16-bit audio; only mono 16-bit PCM"),
        ({"width": 1}, PARAMS, "speech.wav: 1-channel 8-bit audio; only mono 16-bit PCM"),
        (
            {"rate": 44100},
            PARAMS,
            "speech.wav holds pcm_s16le at 44100 Hz audio; "
            "the session expects pcm_s16le at 16000 Hz",
        ),
        (
            {"rate": 8000},
            aai.StreamingParams(sample_rate=8000, encoding="pcm_mulaw"),
            "speech.wav holds pcm_s16le at 8000 Hz audio; the session expects pcm_mulaw at 8000 Hz",
        ),
        (
            {},
            aai.StreamingParams(sample_rate=None, encoding="opus"),
            "speech.wav holds pcm_s16le at 16000 Hz audio; the session expects opus",
        ),
    ],
)
async def test_stream_file_checks_the_format_first(
    nursery: trio.Nursery,
    make_wav: WavMaker,
    wav: dict[str, int],
    params: aai.StreamingParams,
    message: str,
) -> None:
    path = make_wav(**wav)
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    async with open_session(params, url=URL, stream=client_stream) as session:
        with pytest.raises(ValueError, match="^" + re.escape(f"{path.parent}/{message}")):
            await session.stream_file(path)
    assert server.received == [TERMINATE]


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "truncated"), (b"RIFX not a wave file", "file does not start with RIFF id")],
)
def test_read_wav_format_rejects_other_files(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "notes.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a PCM WAV file") as info:
        read_wav_format(path)
    assert str(info.value) == f"{path}: not a PCM WAV file ({problem})"


def test_read_wav_format(make_wav: WavMaker, tmp_path: Path) -> None:
    assert read_wav_format(make_wav(rate=22050)) == aai.AudioFormat(sample_rate=22050)
    with pytest.raises(FileNotFoundError):
        read_wav_format(tmp_path / "missing.wav")


async def test_stream_paces_any_source_in_real_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # An async iterable of uneven chunks: the frames still leave as the audio plays.
    async def microphone() -> AsyncIterator[bytes]:
        yield b"\x01\x02" * 2400  # 150 ms at once
        yield b"\x01\x02" * 800  # 50 ms
        yield b"\x01\x02" * 800

    server = Server()
    times: list[float] = []
    client_stream, _ = serve(nursery, timed(server, times))
    async with session_for(client_stream) as session:
        start = trio.current_time()
        await session.stream(microphone())
        elapsed = trio.current_time() - start
        assert await session.terminate() == TERMINATION
    assert elapsed == pytest.approx(0.25)
    assert server.received == [b"\x01\x02" * 800] * 5 + [TERMINATE]
    assert times[:5] == pytest.approx([start + 0.05 * n for n in range(5)])


async def test_stream_takes_a_plain_iterable_as_fast_as_it_goes(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    async with session_for(client_stream) as session:
        await session.stream([b"\x01\x02" * 300, bytearray(b"\x01\x02" * 500)], realtime=False)
        assert trio.current_time() == 0
    assert server.received == [b"\x01\x02" * 800, TERMINATE]


async def test_stream_file_reads_raw_audio(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "speech.raw"
    path.write_bytes(b"\xff" * 2400)  # 300 ms of 8 kHz mu-law
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    params = aai.StreamingParams(sample_rate=8000, encoding="pcm_mulaw")
    async with open_session(params, url=URL, stream=client_stream) as session:
        start = trio.current_time()
        await session.stream_file(path)
        elapsed = trio.current_time() - start
    assert elapsed == pytest.approx(0.3)
    assert server.received == [b"\xff" * 400] * 6 + [TERMINATE]


async def test_real_time_pacing_needs_pcm(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "speech.pcm"
    path.write_bytes(b"opus bytes")
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    params = aai.StreamingParams(sample_rate=None, encoding="opus")
    async with open_session(params, url=URL, stream=client_stream) as session:
        with pytest.raises(ValueError, match=r"^real-time pacing needs PCM audio; opus has"):
            await session.stream_file(path)
        await session.stream_file(path, realtime=False)
    assert server.received == [b"opus bytes", TERMINATE]


async def test_a_missing_raw_file_is_an_error_at_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server()
    client_stream, _ = serve(nursery, answering(server))
    async with session_for(client_stream) as session:
        with pytest.raises(FileNotFoundError):
            await session.stream_file(tmp_path / "missing.raw")
    assert server.received == [TERMINATE]
