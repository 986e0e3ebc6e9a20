"""Leaving a session, for both adapters: by an exception, by a cancellation, by
``aclose()``, and the closing handshake with a server that pings during it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import aai_proto as aai
from tests.conformance._server import BEGIN, TERMINATE, Peer, dump, serve
from tests.conformance.conftest import NOT_READ, Adapter, both, elapsed
from tests.conformance.test_a_session import FRAME, KEY, MUCH, PARAMS, TERMINATION, answering

AT_ONCE = 1.0
"""Seconds within which a thing done "at once" is done: well under ``CLOSE_TIMEOUT`` (2 s)."""


async def silent(peer: Peer) -> None:
    """A server that sends Begin, then only reads."""
    await peer.accept()
    await peer.wait_close()


# -- leaving by an exception or a cancellation -----------------------------------------


@both
async def test_an_exception_in_the_block_is_reraised_unchanged_and_at_once(
    adapter: Adapter,
) -> None:
    error = KeyError("boom")
    raised_at: list[float] = []

    async def block(url: str) -> None:
        async with adapter.open_session(PARAMS, api_key=KEY, url=url) as session:
            await session.send_audio(bytes(FRAME))
            raised_at.append(anyio.current_time())
            raise error

    async with serve(silent) as server:
        with pytest.raises(KeyError) as info:
            await block(server.url)
        assert anyio.current_time() - raised_at[0] < AT_ONCE  # the socket closed, no waiting
        await server.peer.closed.wait()
    assert info.value is error
    assert info.value.__context__ is None
    assert server.peer.received == [bytes(FRAME)]  # no Terminate
    assert server.peer.close is not None
    assert server.peer.close.code == 1006  # no close frame: the TCP connection just ended


@both
async def test_a_cancelled_block_closes_the_socket_at_once(adapter: Adapter) -> None:
    async with serve(silent) as server:
        start = anyio.current_time()
        with anyio.move_on_after(0.3) as scope:
            async with adapter.open_session(PARAMS, api_key=KEY, url=server.url):
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        assert 0.3 <= anyio.current_time() - start < 0.3 + AT_ONCE
        await server.peer.closed.wait()
    assert server.peer.received == []
    assert server.peer.close is not None
    assert server.peer.close.code == 1006


@both
async def test_a_cancelled_graceful_exit_still_closes(adapter: Adapter) -> None:
    async with serve(silent) as server:
        start = anyio.current_time()
        with anyio.move_on_after(0.3) as scope:
            async with adapter.open_session(PARAMS, api_key=KEY, url=server.url):
                pass  # leaving terminates; the server never answers; the scope expires first
        assert scope.cancelled_caught
        assert 0.3 <= anyio.current_time() - start < 0.3 + AT_ONCE
        await server.peer.closed.wait()
    assert server.peer.received == [TERMINATE]
    assert server.peer.close is not None


@both
async def test_a_cancelled_graceful_exit_sends_no_close_frame(adapter: Adapter) -> None:
    """Leaving by a cancellation closes the socket at once, even once ``terminate()`` runs."""
    async with serve(silent) as server:
        with anyio.move_on_after(0.3):
            async with adapter.open_session(PARAMS, api_key=KEY, url=server.url):
                pass  # leaving terminates; the server never answers; the scope expires first
        await server.peer.closed.wait()
    assert server.peer.close is not None
    assert server.peer.close.code == 1006  # cancelled: the socket closed, no close frame


@both
async def test_cancelling_a_send_midway_breaks_the_session(adapter: Adapter) -> None:
    go = anyio.Event()

    async def handler(peer: Peer) -> None:
        await peer.accept()
        await go.wait()  # reads nothing until then: the audio waits for room
        await peer.wait_close()

    async with (
        serve(handler, receive_buffer=NOT_READ) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session,
    ):
        start = anyio.current_time()
        with anyio.move_on_after(0.3) as scope:
            await session.send_audio(bytes(MUCH))
        assert scope.cancelled_caught
        assert anyio.current_time() - start < 0.3 + AT_ONCE
        go.set()
        await server.peer.closed.wait()
        assert server.peer.close is not None
        assert server.peer.close.code == 1006  # the socket was closed at once
        assert len(server.peer.received) < MUCH // FRAME
        assert all(message == bytes(FRAME) for message in server.peer.received)
        assert session.state is aai.State.BROKEN
        with pytest.raises(adapter.broken, match="a send was cancelled midway"):
            await session.keep_alive()
        with pytest.raises(adapter.broken, match="a send was cancelled midway"):
            await session.terminate()
    # Leaving the block after that raises nothing more.


@both
async def test_a_cancelled_send_that_had_not_started_changes_nothing(adapter: Adapter) -> None:
    go = anyio.Event()
    handler = answering(reading_after=go)

    async with serve(handler, receive_buffer=NOT_READ) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(session.send_audio, bytes(MUCH))
                await anyio.sleep(0.1)  # the audio holds the send lock, waiting for room
                with anyio.move_on_after(0.2) as scope:
                    await session.force_endpoint()  # waits for the send lock, then gives up
                assert scope.cancelled_caught
                go.set()
            assert session.state is aai.State.STREAMING
        await server.peer.closed.wait()
    assert session.termination == TERMINATION
    frames = -(-MUCH // FRAME)  # the tail padded to a whole frame of zeros
    assert server.peer.received == [*[bytes(FRAME)] * frames, TERMINATE]
    assert server.peer.close is not None
    assert server.peer.close.code == 1000


# -- aclose -------------------------------------------------------------------------------


@both
async def test_aclose_stops_a_session_without_terminate(adapter: Adapter) -> None:
    async with serve(silent) as server:
        async with adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session:
            await session.aclose()
            await session.aclose()  # idempotent
            assert session.state is aai.State.CLOSED
            assert [event async for event in session] == [BEGIN]
            with pytest.raises(aai.LocalProtocolError, match="can't send_audio in state CLOSED"):
                await session.send_audio(bytes(FRAME))
            assert await session.terminate() is None
        await server.peer.closed.wait()
    assert server.peer.received == []
    assert server.peer.close is not None
    assert (server.peer.close.code, server.peer.close.reason) == (1000, "")


# -- a server that pings during the closing handshake -----------------------------------
# A Ping that follows the client's close must not make the client wait CLOSE_TIMEOUT
# for the server's answering close (trio-websocket would answer it with a Pong,
# which wsproto refuses once the client has closed: its reader would end there).


@both
async def test_a_ping_during_the_clients_close_does_not_hold_it(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.answer_close(ping=b"still there?")

    async with (
        serve(handler) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session,
    ):
        assert await elapsed(session.aclose()) < AT_ONCE  # not CLOSE_TIMEOUT
        assert session.state is aai.State.CLOSED
        assert [event async for event in session] == [BEGIN]
    assert server.peer.close is not None
    assert (server.peer.close.code, server.peer.close.reason) == (1000, "")


@both
async def test_a_ping_during_the_close_after_termination_does_not_hold_it(
    adapter: Adapter,
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.receive_until_terminate()
        await peer.send_message(dump(TERMINATION))
        await peer.answer_close(ping=b"still there?")

    results: list[Any] = []

    async def terminate(session: Any) -> None:
        results.append(await session.terminate())

    async with (
        serve(handler) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session,
    ):
        assert await elapsed(terminate(session)) < AT_ONCE
        assert results == [TERMINATION]
    assert server.peer.close is not None
    assert (server.peer.close.code, server.peer.close.reason) == (1000, "")


@both
async def test_a_ping_during_the_close_after_garbage_does_not_hold_it(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.send_message("not JSON")
        await peer.answer_close(ping=b"")

    async with (
        serve(handler) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session,
    ):
        start = anyio.current_time()
        with pytest.raises(aai.RemoteProtocolError, match="not valid JSON"):
            await session.terminate()
        assert anyio.current_time() - start < AT_ONCE
        with pytest.raises(aai.RemoteProtocolError, match="not valid JSON"):
            await session.keep_alive()
    assert server.peer.close is not None
    assert (server.peer.close.code, server.peer.close.reason) == (1002, "protocol error")


@both
async def test_a_server_that_never_closes_tcp_after_a_ping_costs_short_close(
    adapter: Adapter, short_close: float
) -> None:
    # The bound still holds when the server answers the close but keeps the socket.
    async def handler(peer: Peer) -> None:
        await peer.accept()
        await peer.answer_close(ping=b"", hang_up=False)

    async with (
        serve(handler) as server,
        adapter.open_session(PARAMS, api_key=KEY, url=server.url) as session,
    ):
        took = await elapsed(session.aclose())
        assert short_close <= took < short_close + AT_ONCE
        assert session.state is aai.State.CLOSED
    assert server.peer.close is not None
    assert server.peer.close.code == 1000
