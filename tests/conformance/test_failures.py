"""Timeouts, failures and errors, for both adapters: terminate never hangs, and a
failure reaches whichever call is waiting, and every call after it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from wsproto.events import CloseConnection

import aai_proto as aai
from tests.conformance._server import BEGIN, TERMINATE, Handler, Peer, dump, serve
from tests.conformance.conftest import NOT_READ, Adapter, both
from tests.conformance.test_a_session import FRAME, KEY, MUCH, PARAMS, TERMINATION

ERROR_3007 = aai.ServerError(
    error_code=3007, error="Input duration violation: 20 ms. Expected between 50 and 1000 ms"
)


def error_then_close(error: aai.ServerError, *, after: int = 1) -> Handler:
    """A server that sends ``error`` and closes with its code after ``after`` messages."""

    async def handler(peer: Peer) -> None:
        await peer.accept()
        for _ in range(after):
            await peer.get_message()
        await peer.send_message(dump(error))
        await peer.aclose(error.error_code or 1011, "See Error message for details")

    return handler


# -- terminate never hangs --------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0.1, 0.4])
@both
async def test_terminate_gives_up_after_terminate_timeout(adapter: Adapter, timeout: float) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.wait_close()  # never answers Terminate

    async with serve(handler) as server:
        async with adapter.open_session(
            PARAMS, api_key=KEY, url=server.url, terminate_timeout=timeout
        ) as session:
            start = anyio.current_time()
            assert await session.terminate() is None
            assert timeout <= anyio.current_time() - start < timeout + 1.0
            assert session.state is aai.State.CLOSED
        await server.peer.closed.wait()
    assert server.peer.received == [TERMINATE]
    assert server.peer.close is not None
    assert server.peer.close.code == 1000


@both
async def test_terminate_gives_up_when_the_server_reads_nothing(
    adapter: Adapter, short_close: float
) -> None:
    go = anyio.Event()
    sender_errors: list[BaseException] = []

    async def handler(peer: Peer) -> None:
        await peer.accept()
        await go.wait()
        await peer.wait_close()

    async def send(session: Any) -> None:
        with pytest.raises(adapter.closed, match="the session was closed") as info:
            await session.send_audio(bytes(MUCH))
        sender_errors.append(info.value)

    async with (
        serve(handler, receive_buffer=NOT_READ) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url, terminate_timeout=0.2) as session,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(send, session)
        await anyio.sleep(0.1)  # the audio fills what the server holds
        start = anyio.current_time()
        assert await session.terminate() is None  # Terminate could not even be sent
        took = anyio.current_time() - start
        assert 0.2 + short_close <= took < 0.2 + short_close + 1.0
        go.set()
        await server.peer.closed.wait()
    assert len(sender_errors) == 1
    peer = server.peer
    assert peer.received
    assert all(message == bytes(FRAME) for message in peer.received)  # no Terminate
    assert peer.close is not None
    assert peer.close.code == 1006  # the close handshake was cut short


@both
async def test_terminate_returns_none_when_the_server_closes_without_termination(
    adapter: Adapter,
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.receive_until_terminate()
        await peer.aclose(1000, "Session Ended")

    async with (
        serve(handler) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url, terminate_timeout=3.0) as session,
    ):
        start = anyio.current_time()
        assert await session.terminate() is None
        assert anyio.current_time() - start < 1.0  # at once: no waiting for the timeout
        assert [event async for event in session] == [BEGIN]
        assert session.state is aai.State.CLOSED


@both
async def test_terminate_raises_an_error_close(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.receive_until_terminate()
        await peer.aclose(1011, "Internal error")

    async with (
        serve(handler) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session,
    ):
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
                await session.send_audio(bytes(2 * FRAME))
            assert sending.value.__cause__ is session._client.failure
            send_depths.add(len(sending.traceback))
        assert len(send_depths) == 1
    # Leaving the block does not raise a failure that was seen already.


@both
async def test_garbage_is_a_remote_protocol_error_and_a_1002_close(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.receive_until_terminate()
        await peer.send_message("this is not JSON")
        await peer.wait_close()

    async with serve(handler) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            with pytest.raises(aai.RemoteProtocolError, match="server message is not valid JSON"):
                await session.terminate()
            assert session.state is aai.State.ERROR
            assert await session.__anext__() == BEGIN
            with pytest.raises(aai.RemoteProtocolError, match="not valid JSON"):
                await session.__anext__()
            assert [event async for event in session] == []
        await server.peer.closed.wait()
    assert server.peer.close is not None
    assert (server.peer.close.code, server.peer.close.reason) == (1002, "protocol error")


async def garbage(peer: Peer) -> None:
    await peer.send_message("not JSON")
    await peer.wait_close()


async def close_1011(peer: Peer) -> None:
    await peer.aclose(1011, "late trouble")


@pytest.mark.parametrize("trouble", [garbage, close_1011], ids=["garbage", "close-1011"])
@both
async def test_trouble_after_termination_is_ignored(adapter: Adapter, trouble: Handler) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.receive_until_terminate()
        await peer.send_message(dump(TERMINATION))
        await trouble(peer)

    async with serve(handler) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            await session.send_audio(bytes(FRAME))
            assert await session.terminate() == TERMINATION
            assert [event async for event in session] == [BEGIN, TERMINATION]
            assert await session.terminate() == TERMINATION
        await server.peer.closed.wait()


@pytest.mark.parametrize("trouble", [garbage, close_1011], ids=["garbage", "close-1011"])
@both
async def test_trouble_after_an_unasked_termination_is_ignored(
    adapter: Adapter, trouble: Handler
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.send_message(dump(TERMINATION))
        await trouble(peer)

    async with serve(handler) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            assert [event async for event in session] == [BEGIN, TERMINATION]
            await anyio.sleep(0.1)  # the trouble has come
            assert await session.terminate() == TERMINATION
        await server.peer.closed.wait()
    assert server.peer.received == []


# -- failures reach whichever call is waiting -------------------------------------------


@both
async def test_a_server_error_surfaces_from_iteration_then_from_every_call(
    adapter: Adapter,
) -> None:
    async with serve(error_then_close(ERROR_3007)) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
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
            calls = (session.keep_alive, session.force_endpoint, session.terminate)
            for call in calls:
                with pytest.raises(aai.StreamingError) as again:
                    await call()
                assert again.value == error
                assert again.value is not error
                assert again.value.__cause__ is error.__cause__
            assert session.state is aai.State.CLOSED  # the core's: the server closed
        await server.peer.closed.wait()
    assert server.peer.received == [bytes(FRAME)]


@both
async def test_a_server_error_surfaces_from_a_send_waiting_on_backpressure(
    adapter: Adapter,
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await anyio.sleep(0.1)  # reads nothing: the client is stuck sending
        await peer.send_message(dump(ERROR_3007))
        await peer.aclose(3007, "See Error message for details")

    async with serve(handler, receive_buffer=NOT_READ) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            with pytest.raises(aai.StreamingError) as info:
                await session.send_audio(bytes(MUCH))
            assert (info.value.code, info.value.message) == (3007, ERROR_3007.error)
        await server.peer.closed.wait()
    assert len(server.peer.received) < MUCH // FRAME  # the audio was cut short


@pytest.mark.parametrize(
    "error",
    [
        aai.ServerError(error_code=3006, error="Session idle for too long"),
        aai.ServerError(error_code=3005, error="Server error"),
    ],
    ids=["3006", "3005"],
)
@both
async def test_a_failure_nobody_saw_is_raised_when_the_block_is_left(
    adapter: Adapter, error: aai.ServerError
) -> None:
    async with serve(error_then_close(error, after=0)) as server:
        with pytest.raises(aai.StreamingError) as info:
            async with adapter.open_session(PARAMS, api_key=KEY, url=server.url):
                await server.peer.closed.wait()
    assert (info.value.code, info.value.message) == (error.error_code, error.error)
    assert server.peer.received == []


@both
async def test_a_failure_after_leaving_by_terminate_is_raised(adapter: Adapter) -> None:
    error = aai.ServerError(error_code=3005, error="Internal server error")
    async with serve(error_then_close(error)) as server:
        with pytest.raises(aai.StreamingError) as info:
            async with adapter.open_session(PARAMS, api_key=KEY, url=server.url):
                pass  # leaving terminates; the server answers Terminate with an error
        await server.peer.closed.wait()
    assert (info.value.code, info.value.message) == (3005, "Internal server error")
    assert server.peer.received == [TERMINATE]


@both
async def test_an_abrupt_close_is_a_1006_streaming_error(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.abort()  # the TCP connection drops: no close frame

    async with serve(handler) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            assert await session.__anext__() == BEGIN
            with pytest.raises(aai.StreamingError) as info:
                await session.__anext__()
            assert (info.value.code, str(info.value)) == (
                1006,
                "1006 connection lost without a close frame",
            )
            assert session.state is aai.State.CLOSED
        assert server.peer.received == []


UNDEFINED_OPCODE = {"trio": "Invalid opcode 0xf", "asyncio": "invalid opcode"}
"""How each adapter's WebSocket library (wsproto, ``websockets``) words a frame with an
undefined opcode: the reason of the 1002 close the client sends, and of the
``StreamingError``. The adapters pass the library's words on rather than translate
every framing error of each library into words of their own."""


@pytest.mark.parametrize("waiting", ["iteration", "terminate"])
@both
async def test_broken_framing_is_a_1002_streaming_error_and_close(
    adapter: Adapter, waiting: str
) -> None:
    """The call waiting raises 1002, and the client fails the connection with a
    1002 close frame, as RFC 6455 asks.

    trio-websocket (0.12.2) sends no close for a framing error wsproto found: the
    trio adapter sends the close wsproto asked for itself
    (``Session._send_failing_close``).
    """

    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.send_raw(b"\x8f\x00")  # a frame with an undefined opcode
        await peer.wait_close()

    async with serve(handler) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            if waiting == "iteration":
                assert await session.__anext__() == BEGIN
            call = session.__anext__ if waiting == "iteration" else session.terminate
            with pytest.raises(aai.StreamingError) as info:
                await call()
            assert (info.value.code, info.value.reason) == (1002, UNDEFINED_OPCODE[adapter.name])
            assert type(info.value.code) is int
            assert session.state is aai.State.CLOSED
        await server.peer.closed.wait()
    assert server.peer.close is not None
    assert (server.peer.close.code, server.peer.close.reason) == (
        1002,
        UNDEFINED_OPCODE[adapter.name],
    )


@both
async def test_a_normal_close_under_a_waiting_send(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await anyio.sleep(0.1)  # reads nothing: the client is stuck sending
        await peer.aclose(1000, "Session Ended")

    async with serve(handler, receive_buffer=NOT_READ) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            with pytest.raises(aai.StreamingError) as info:
                await session.send_audio(bytes(MUCH))
            assert str(info.value) == "1000 normal closure: Session Ended"
            assert session.state is aai.State.CLOSED
            # The core's verdict for the calls that follow a normal close:
            with pytest.raises(aai.LocalProtocolError, match="in state CLOSED"):
                await session.send_audio(bytes(FRAME))
            assert await session.terminate() is None
        await server.peer.closed.wait()


@both
async def test_a_close_before_a_send_raises_the_failure(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.aclose(1011, "Internal error")

    async with (
        serve(handler) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session,
    ):
        await server.peer.closed.wait()  # the close has come and been answered
        with pytest.raises(aai.StreamingError) as info:
            await session.send_audio(bytes(2 * FRAME))
        assert (info.value.code, info.value.reason) == (1011, "Internal error")
        assert session.state is aai.State.CLOSED
    assert server.peer.received == []


@both
async def test_a_send_cut_off_breaks_the_session(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await anyio.sleep_forever()  # reads nothing: the client's send waits for room

    async with serve(handler, receive_buffer=NOT_READ) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            with anyio.move_on_after(0.2) as scope:
                await session.send_audio(bytes(MUCH))
            assert scope.cancelled_caught
            assert session.state is aai.State.BROKEN
            for call in (session.keep_alive, session.terminate):
                with pytest.raises(adapter.broken, match="cancelled midway"):
                    await call()
        assert len(server.peers) == 1


async def send_much(session: Any, started: list[float]) -> None:
    """One call: its frames leave batch after batch."""
    started.append(anyio.current_time())
    await session.send_audio(bytes(MUCH))


async def stream_much(session: Any, started: list[float]) -> None:
    """A send per chunk, each one batch: the one that waits is its call's last write."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MUCH // (10 * FRAME)):
            started.append(anyio.current_time())  # the chunk is taken, then sent
            yield bytes(10 * FRAME)

    await session.stream(chunks(), realtime=False)


within_4s: Callable[[Callable[..., Awaitable[None]]], Callable[..., None]] = both(limit=4.0)
"""``@both(limit=4.0)``, typed (``both`` returns ``Any``): a hang fails fast."""


@pytest.mark.parametrize(
    ("error", "code", "send"),
    [
        (aai.ServerError(error_code=3005, error="Internal server error"), 3005, send_much),
        (aai.ServerError(error="Internal error"), 1011, stream_much),
    ],
    ids=["3005-send_audio", "1011-stream"],
)
@within_4s
async def test_a_send_waiting_when_the_server_closes_and_reads_no_more_is_bounded(
    adapter: Adapter,
    short_close: float,
    error: aai.ServerError,
    code: int,
    send: Callable[[Any, list[float]], Awaitable[None]],
) -> None:
    """The server's close comes while a send waits for room, and the server reads no
    more but keeps the TCP connection open: the client cannot even answer the close.
    The send gets ``CLOSE_TIMEOUT`` at most; then the socket is closed under it and
    it raises the session's failure."""
    go = anyio.Event()
    close_sent: list[float] = []
    started: list[float] = []

    async def handler(peer: Peer) -> None:
        await peer.accept()
        await anyio.sleep(0.1)  # reads nothing: the client's send waits for room
        await peer.send_message(dump(error))
        close = CloseConnection(code=code, reason="See Error message for details")
        await peer.send_raw(peer.ws.send(close))  # and waits for no answer
        close_sent.append(anyio.current_time())
        await go.wait()  # the TCP connection stays open, unread
        await peer.wait_close()  # now reads what came, to the end

    async with (
        serve(handler, receive_buffer=NOT_READ) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session,
    ):
        with pytest.raises(aai.StreamingError) as info:
            await send(session, started)
        assert started[-1] < close_sent[0]  # the send that waited raised, not a later one
        took = anyio.current_time() - close_sent[0]
        assert took < short_close + 0.5
        assert (info.value.code, info.value.message) == (code, error.error)
        assert info.value.__cause__ is session._client.failure
        assert session.state is aai.State.CLOSED
        for call in (session.keep_alive, lambda: session.send_audio(bytes(FRAME))):
            with pytest.raises(aai.StreamingError) as again:
                await call()
            assert again.value == info.value
            assert again.value.__cause__ is session._client.failure
        go.set()
        with anyio.fail_after(1.0):  # the client closed its socket already: the server sees EOF
            await server.peer.closed.wait()
    peer = server.peer
    assert peer.close is not None
    assert peer.close.code == 1006  # no answer to the server's close: the socket was closed
    assert len(peer.received) < MUCH // FRAME  # the audio was cut short
