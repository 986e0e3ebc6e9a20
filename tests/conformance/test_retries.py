"""``open_session`` retries a failed opening as the official SDKs do, on both adapters.

Each scripted server counts the connections it gets (``server.peers``): one per
attempt. Delays are small and every wait is bounded (the suite's ``LIMIT``).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import trio
import trio.testing

import aai_proto as aai
import aai_proto.trio
from aai_proto.trio import ConnectError, ConnectTimeout, HandshakeRejected
from tests.conformance._server import BEGIN, Peer, Server, dump, serve
from tests.conformance.conftest import Adapter, both

KEY = "sk-test-SECRET-KEY-0123"
PARAMS = aai.StreamingParams(sample_rate=16000)
TERMINATION = aai.Termination(audio_duration_seconds=0, session_duration_seconds=1)
DELAY = 0.05
SLACK = 3.0
"""Seconds an opening may take beyond its delays on a busy machine: the upper bound."""


def notes(error: BaseException) -> list[str]:
    return list(getattr(error, "__notes__", []))


async def hang_up(peer: Peer) -> None:
    """Read the upgrade request, then hang up: the handshake fails."""
    await peer.read_request()
    await peer.abort()


async def session(peer: Peer) -> None:
    """A session that goes well: Begin, then Termination when the client terminates."""
    await peer.accept()
    await peer.receive_until_terminate()
    await peer.send_message(dump(TERMINATION))
    await peer.wait_close()


def closing(code: int, reason: str = "") -> Callable[[Peer], Awaitable[None]]:
    """Accept the upgrade and close with ``code`` before Begin."""

    async def handler(peer: Peer) -> None:
        await peer.accept(begin=False)
        await peer.aclose(code, reason)

    return handler


def first_then(
    server: list[Server], first: Callable[[Peer], Awaitable[None]]
) -> Callable[[Peer], Awaitable[None]]:
    """``first`` for the first connection, a good session for the next ones."""

    async def handler(peer: Peer) -> None:
        if server[0].peers.index(peer) == 0:
            await first(peer)
        else:
            await session(peer)

    return handler


async def open_and_fail(adapter: Adapter, url: str, **options: Any) -> BaseException:
    """Open a session that must fail; return what it raised."""
    with pytest.raises(Exception) as info:  # noqa: PT011 -- each test checks the type
        async with adapter.open_session(PARAMS, api_key=KEY, url=url, **options):
            pytest.fail("the session opened")
    assert KEY not in str(info.value)
    assert not any(KEY in note for note in notes(info.value))
    return info.value


@both
async def test_a_failed_handshake_is_tried_three_times_then_raised(adapter: Adapter) -> None:
    async with serve(hang_up) as server:
        start = anyio.current_time()
        error = await open_and_fail(adapter, server.url, retry_delay=DELAY)
        took = anyio.current_time() - start
    assert type(error) is ConnectError
    assert len(server.peers) == 3  # the first attempt and the default 2 retries
    assert str(error) == (
        f"can't connect to {server.url}: the server closed the connection during the "
        "WebSocket handshake"
    )
    assert notes(error) == [f"attempt {n} failed too: ConnectError: {error}" for n in (1, 2)]
    assert 2 * DELAY <= took < 2 * DELAY + SLACK


@both
async def test_retries_zero_is_one_attempt(adapter: Adapter) -> None:
    async with serve(hang_up) as server:
        error = await open_and_fail(adapter, server.url, retries=0)
    assert type(error) is ConnectError
    assert len(server.peers) == 1
    assert notes(error) == []


@both
async def test_retries_is_how_many_attempts_follow_the_first(adapter: Adapter) -> None:
    async with serve(hang_up) as server:
        error = await open_and_fail(adapter, server.url, retries=4, retry_delay=0)
    assert len(server.peers) == 5
    assert len(notes(error)) == 4


@both
async def test_a_refused_connection_is_retried(adapter: Adapter) -> None:
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/v3/ws"
    start = anyio.current_time()
    error = await open_and_fail(adapter, url, retries=2, retry_delay=DELAY)
    took = anyio.current_time() - start
    assert type(error) is ConnectError
    assert str(error).startswith(f"can't connect to {url}: ")
    assert [note.split(": ")[0] for note in notes(error)] == [
        "attempt 1 failed too",
        "attempt 2 failed too",
    ]
    assert 2 * DELAY <= took < 2 * DELAY + SLACK


@both
async def test_the_second_attempt_opens_the_session(adapter: Adapter) -> None:
    servers: list[Server] = []
    async with serve(first_then(servers, hang_up)) as server:
        servers.append(server)
        start = anyio.current_time()
        async with adapter.open_session(
            PARAMS, api_key=KEY, url=server.url, retry_delay=DELAY
        ) as live:
            took = anyio.current_time() - start
            assert live.begin == BEGIN
            assert await live.terminate() == TERMINATION
            assert [event async for event in live] == [BEGIN, TERMINATION]
        await server.peers[1].closed.wait()
    assert len(server.peers) == 2
    assert server.peers[1].received == ['{"type":"Terminate"}']
    assert DELAY <= took < DELAY + SLACK


@both
async def test_the_delay_is_kept_between_attempts(adapter: Adapter) -> None:
    delay = 0.3
    async with serve(hang_up) as server:
        start = anyio.current_time()
        await open_and_fail(adapter, server.url, retries=1, retry_delay=delay)
        took = anyio.current_time() - start
    assert len(server.peers) == 2
    assert delay <= took < delay + SLACK


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
@both
async def test_an_http_rejection_is_never_retried(adapter: Adapter, status: int) -> None:
    async def reject(peer: Peer) -> None:
        await peer.reject(status, b'{"error": "no"}')

    async with serve(reject) as server:
        error = await open_and_fail(adapter, server.url, retry_delay=DELAY)
    assert isinstance(error, HandshakeRejected)
    assert error.status_code == status
    assert len(server.peers) == 1
    assert notes(error) == []


@pytest.mark.parametrize("code", [1008, 3006, 3007, 4001, 4101, 4900])
@both
async def test_a_final_close_before_begin_is_never_retried(adapter: Adapter, code: int) -> None:
    async with serve(closing(code, "no")) as server:
        error = await open_and_fail(adapter, server.url, retry_delay=DELAY)
    assert error == aai.StreamingError(code, "no")
    assert len(server.peers) == 1
    assert notes(error) == []


@both
async def test_a_normal_close_before_begin_is_not_retried(adapter: Adapter) -> None:
    async with serve(closing(1000)) as server:
        error = await open_and_fail(adapter, server.url, retry_delay=DELAY)
    assert type(error) is ConnectError
    assert str(error) == (
        f"can't connect to {server.url}: the server closed the session (1000) before Begin"
    )
    assert len(server.peers) == 1


@pytest.mark.parametrize("code", [1011, 1013, 3005, 3009])
@both
async def test_a_retryable_close_before_begin_is_retried(adapter: Adapter, code: int) -> None:
    async with serve(closing(code, "busy")) as server:
        error = await open_and_fail(adapter, server.url, retry_delay=DELAY)
    assert error == aai.StreamingError(code, "busy")
    assert len(server.peers) == 3
    assert notes(error) == [f"attempt {n} failed too: StreamingError: {error}" for n in (1, 2)]


@both
async def test_a_1011_before_begin_then_a_session(adapter: Adapter) -> None:
    servers: list[Server] = []
    async with serve(first_then(servers, closing(1011, "overloaded"))) as server:
        servers.append(server)
        async with adapter.open_session(
            PARAMS, api_key=KEY, url=server.url, retry_delay=DELAY
        ) as live:
            assert live.begin == BEGIN
            assert await live.terminate() == TERMINATION
        await server.peers[1].closed.wait()
    assert len(server.peers) == 2
    assert server.peers[0].close is not None  # it answered the server's 1011
    assert server.peers[1].received == ['{"type":"Terminate"}']


@both
async def test_connect_timeout_bounds_each_attempt(adapter: Adapter) -> None:
    async def no_begin(peer: Peer) -> None:
        await peer.accept(begin=False)
        await peer.wait_close()

    timeout = 0.2
    async with serve(no_begin) as server:
        start = anyio.current_time()
        error = await open_and_fail(
            adapter, server.url, connect_timeout=timeout, retries=1, retry_delay=DELAY
        )
        took = anyio.current_time() - start
    assert type(error) is ConnectTimeout
    assert str(error) == f"can't connect to {server.url}: no Begin within 0.2 s"
    assert notes(error) == [f"attempt 1 failed too: ConnectTimeout: {error}"]
    assert len(server.peers) == 2
    assert 2 * timeout + DELAY <= took < 2 * timeout + DELAY + SLACK


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries must be a whole number, at least 0; got -1"),
        ({"retries": 1.0}, "retries must be a whole number, at least 0; got 1.0"),
        ({"retries": True}, "retries must be a whole number, at least 0; got True"),
        ({"retry_delay": -0.1}, "retry_delay must be a finite number of seconds, at least 0"),
        ({"retry_delay": math.nan}, "retry_delay must be a finite number of seconds"),
        ({"retry_delay": math.inf}, "retry_delay must be a finite number of seconds"),
        ({"retry_delay": "1"}, "retry_delay must be a finite number of seconds"),
    ],
)
def test_bad_retry_options_raise_at_the_call(
    adapter: Adapter, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        adapter.open_session(PARAMS, url="ws://127.0.0.1:9/v3/ws", **options)


def test_a_given_trio_stream_is_one_attempt() -> None:
    """``stream=`` is one connection: there is nothing to connect again."""

    async def main() -> None:
        client_end, server_end = trio.testing.memory_stream_pair()
        await server_end.aclose()  # the "server" hangs up before the handshake
        with trio.fail_after(5), pytest.raises(ConnectError) as info:
            async with aai_proto.trio.open_session(
                PARAMS, url="ws://127.0.0.1/v3/ws", stream=client_end, retry_delay=DELAY
            ):
                pytest.fail("the session opened")
        assert type(info.value) is ConnectError
        assert notes(info.value) == []

    trio.run(main)
