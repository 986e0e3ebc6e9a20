"""aai_proto.trio against an in-test trio-websocket server over in-memory streams.

Each test scripts the server side as a handler; ``serve`` runs it in the test's
nursery (stopped with the test). Timing is checked in virtual time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import attrs
import pytest
import trio
import trio.testing
import trio_websocket
from trio_websocket import CloseReason, WebSocketConnection, WebSocketRequest

import aai_proto as aai
from aai_proto.trio import CLOSE_TIMEOUT, Session, open_session

KEY = "sk-test-SECRET-KEY-0123"
URL = "ws://aai.test/v3/ws"
PARAMS = aai.StreamingParams(sample_rate=16000)
FRAME = 1600  # bytes in 50 ms of 16 kHz pcm_s16le
BEGIN = aai.Begin(id="session-1", expires_at=1759796682)
TERMINATION = aai.Termination(audio_duration_seconds=3, session_duration_seconds=4)
TERMINATE = '{"type":"Terminate"}'

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


# trio only: ``stream=`` (asyncio's open_session has none) -- a whole session over an
# in-memory stream; over a socket, on both adapters, it is tests/conformance/test_a_session.py.
async def test_a_whole_session_over_a_given_stream(nursery: trio.Nursery) -> None:
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


# trio only: counting the server's sends needs a lockstep stream (real sockets buffer);
# the bound itself is in tests/conformance (test_backpressure_keeps_every_event_in_order).
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


# -- failures reach whichever call is waiting -------------------------------------------


# trio only: a close frame under buffers that are full but no send waiting needs a
# lockstep stream; on a real socket the buffers fill only under a waiting send.
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
