"""Opening a session, for both adapters: refusals and rejections, hang-ups, timeouts,
unreachable servers, bad arguments, and the secrets that must not show."""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import anyio
import anyio.abc
import pytest
import trio

import aai_proto as aai
from tests.conformance._server import Peer, dump, serve
from tests.conformance.conftest import Adapter, both
from tests.conformance.test_a_session import KEY, PARAMS, TERMINATION, TOKEN, answering

AT_ONCE = 1.0
"""Seconds within which a thing done "at once" is done: well under any timeout in play."""
ONE = {"retries": 0}
"""One attempt, for the tests whose subject is not retrying (``test_retries.py``'s is)."""


async def until_hung_up(stream: anyio.abc.ByteReceiveStream) -> None:
    """Read what the client sent until it closes its socket."""
    try:
        while True:
            await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return


async def open_and_fail(adapter: Adapter, url: str, **options: Any) -> BaseException:
    """What opening a session at ``url`` raises (it must raise)."""
    try:
        async with adapter.open_session(PARAMS, api_key=KEY, url=url, **options):
            pass
    except Exception as exc:
        return exc
    raise AssertionError("the session opened")


def free_port() -> int:
    """A port that was free a moment ago: nobody listens on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@both
async def test_open_session_is_entered_once(adapter: Adapter) -> None:
    async with serve(answering()) as server:
        manager = adapter.open_session(PARAMS, api_key=KEY, url=server.url)
        async with manager as session:
            with pytest.raises(
                RuntimeError, match=r"^open_session\(\.\.\.\) can be entered only once$"
            ):
                await manager.__aenter__()
            assert await session.terminate() == TERMINATION
    assert len(server.peers) == 1


# -- the server refuses -----------------------------------------------------------------


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
    ids=["1008", "3006"],
)
@both
async def test_a_session_refused_before_begin_raises_from_open_session(
    adapter: Adapter, error: aai.ServerError, reason: str
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept(begin=False)
        await peer.send_message(dump(error))
        await peer.aclose(error.error_code or 0, reason)

    async with serve(handler) as server:
        raised = await open_and_fail(adapter, server.url)
    assert isinstance(raised, aai.StreamingError)
    assert (raised.code, raised.reason, raised.message) == (error.error_code, reason, error.error)
    assert len(server.peers) == 1  # final: not retried


@both
async def test_a_close_before_begin_is_a_connect_error(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept(begin=False)
        await peer.aclose(1000, "bye")

    async with serve(handler) as server:
        raised = await open_and_fail(adapter, server.url)
    assert isinstance(raised, adapter.module.ConnectError)
    assert str(raised) == (
        f"can't connect to {server.url}: the server closed the session (1000) before Begin"
    )
    assert raised.url == server.url
    assert len(server.peers) == 1


@both
async def test_garbage_before_begin_is_a_remote_protocol_error(adapter: Adapter) -> None:
    async def handler(peer: Peer) -> None:
        await peer.accept(begin=False)
        await peer.send_message(dump(TERMINATION))  # Termination before Begin
        await peer.wait_close()

    async with serve(handler) as server:
        raised = await open_and_fail(adapter, server.url)
        await server.peer.closed.wait()
    assert isinstance(raised, aai.RemoteProtocolError)
    assert str(raised).startswith("unexpected Termination in state CONNECTING")
    assert server.peer.received == []


@pytest.mark.parametrize("status", [403, 404])
@both
async def test_a_rejected_upgrade_names_the_status_and_hides_credentials(
    adapter: Adapter, status: int
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.reject(status, b"echo: " + KEY.encode())

    async with serve(handler) as server:
        raised = await open_and_fail(adapter, f"{server.url}?token={TOKEN}")
        assert server.peer.header("authorization") == KEY
    assert isinstance(raised, adapter.module.HandshakeRejected)
    assert isinstance(raised, adapter.module.ConnectError)
    assert raised.status_code == status
    assert raised.body == b"echo: " + KEY.encode()
    assert raised.url == f"{server.url}?token=***"
    assert str(raised) == (
        f"can't connect to {server.url}?token=***: "
        f"the server rejected the WebSocket upgrade with HTTP {status}"
    )
    for text in (str(raised), repr(raised)):
        assert KEY not in text
        assert TOKEN not in text


# -- the connection fails -----------------------------------------------------------------


@pytest.mark.parametrize("read_request", [True, False], ids=["after-request", "at-once"])
@both
async def test_a_hang_up_during_the_handshake_fails_at_once(
    adapter: Adapter, read_request: bool
) -> None:
    async def handler(peer: Peer) -> None:
        if read_request:
            await peer.read_request()
        await peer.abort()

    async with serve(handler) as server:
        start = anyio.current_time()
        raised = await open_and_fail(adapter, server.url, **ONE)
        assert anyio.current_time() - start < AT_ONCE  # not the connect timeout (10 s)
    assert isinstance(raised, adapter.module.ConnectError)
    assert str(raised) == (
        f"can't connect to {server.url}: "
        "the server closed the connection during the WebSocket handshake"
    )


@pytest.mark.parametrize(
    ("accept", "scheme"),
    [(True, "ws"), (False, "ws"), (False, "wss")],
    ids=["no-begin", "no-upgrade", "no-tls-handshake"],
)
@both
async def test_connect_timeout(adapter: Adapter, accept: bool, scheme: str) -> None:
    async def handler(peer: Peer) -> None:
        if accept:
            await peer.accept(begin=False)
        await anyio.sleep_forever()

    async with serve(handler) as server:
        url = server.url.replace("ws://", f"{scheme}://")
        start = anyio.current_time()
        raised = await open_and_fail(adapter, url, connect_timeout=0.3, **ONE)
        assert 0.3 <= anyio.current_time() - start < 0.3 + AT_ONCE
        await until_hung_up(server.peers[0].stream)  # (a hang fails at the test's limit)
    assert isinstance(raised, adapter.module.ConnectTimeout)
    assert isinstance(raised, adapter.module.ConnectError)
    assert str(raised) == f"can't connect to {url}: no Begin within 0.3 s"
    assert len(server.peers) == 1


@both
async def test_a_refused_connection_is_a_connect_error(adapter: Adapter) -> None:
    url = f"ws://127.0.0.1:{free_port()}/v3/ws"
    start = anyio.current_time()
    raised = await open_and_fail(adapter, url, **ONE)
    assert anyio.current_time() - start < AT_ONCE
    assert isinstance(raised, adapter.module.ConnectError)
    assert not isinstance(raised, adapter.module.ConnectTimeout)
    cause = raised.__cause__
    assert isinstance(cause, OSError)
    # trio's says "all attempts to connect ... failed"; each address's error is in its cause.
    causes = [cause, *getattr(cause.__cause__, "exceptions", ())]
    assert any(isinstance(error, ConnectionRefusedError) for error in causes)
    assert raised.url == url
    assert str(raised).startswith(f"can't connect to {url}: ")


@both
async def test_a_refused_connection_says_so(adapter: Adapter) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/v3/ws"
    raised = await open_and_fail(adapter, url, **ONE)
    assert str(raised) == (
        f"can't connect to {url}: all attempts to connect to 127.0.0.1:{port} failed "
        "(Connection refused)"
    )


class _NoSuchHost(trio.abc.HostnameResolver):
    """A trio resolver that knows no host: DNS fails with no query sent."""

    def __init__(self) -> None:
        self.asked: list[bytes | None] = []

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> NoReturn:
        self.asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        raise NotImplementedError


@asynccontextmanager
async def no_such_host(adapter: Adapter) -> AsyncIterator[list[Any]]:
    """Within the block, looking up any host name fails (and is recorded), offline.

    Each runtime has its own hook: trio a custom hostname resolver, asyncio the
    running loop's ``getaddrinfo`` (``websockets`` connects through the loop).
    """
    if adapter.name == "trio":
        resolver = _NoSuchHost()
        previous = trio.socket.set_custom_hostname_resolver(resolver)
        try:
            yield resolver.asked
        finally:
            trio.socket.set_custom_hostname_resolver(previous)
        return
    loop = asyncio.get_running_loop()
    asked: list[Any] = []

    async def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> NoReturn:
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
    try:
        yield asked
    finally:
        del loop.getaddrinfo  # the class's own again


@both
async def test_dns_failure_names_the_url(adapter: Adapter) -> None:
    url = "wss://nowhere.invalid/v3/ws"
    async with no_such_host(adapter) as asked:
        raised = await open_and_fail(adapter, url, **ONE)
    # trio asks getaddrinfo for the host as bytes (IDNA-encoded), asyncio as str
    assert [h.decode() if isinstance(h, bytes) else h for h in asked] == ["nowhere.invalid"]
    assert isinstance(raised, adapter.module.ConnectError)
    assert isinstance(raised.__cause__, OSError)
    assert str(raised) == f"can't connect to {url}: [Errno -2] Name or service not known"


@both
async def test_tls_to_a_server_that_hangs_up(adapter: Adapter) -> None:
    async def hang_up(peer: Peer) -> None:
        await peer.stream.receive()  # the client's hello
        await peer.abort()

    async with serve(hang_up) as server:
        url = server.url.replace("ws://", "wss://")
        start = anyio.current_time()
        raised = await open_and_fail(adapter, url, **ONE)
        assert anyio.current_time() - start < AT_ONCE
    assert isinstance(raised, adapter.module.ConnectError)
    assert str(raised) == (
        f"can't connect to {url}: the server closed the connection during the WebSocket handshake"
    )


@both
async def test_tls_to_a_server_that_does_not_speak_tls_says_what_ssl_said(adapter: Adapter) -> None:
    async def plain_http(peer: Peer) -> None:
        await peer.stream.receive()  # the client's hello
        await peer.stream.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await anyio.sleep_forever()  # the client gives up first

    async with serve(plain_http) as server:
        url = server.url.replace("ws://", "wss://")
        raised = await open_and_fail(adapter, url, **ONE)
    assert isinstance(raised, adapter.module.ConnectError)
    causes = []
    cause: BaseException | None = raised
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    [tls] = [c for c in causes if isinstance(c, ssl.SSLError)]
    assert str(raised) == f"can't connect to {url}: {tls}"
    assert str(tls).startswith("[SSL: ")


# -- bad arguments and secrets ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "https://aai.test/v3/ws"}, "expected a ws:// or wss:// URL"),
        ({"url": "ws://user:hunter2@aai.test/v3/ws"}, "must not hold a user name or password"),
        ({"url": "wss://user:hunter2@host/v3/ws"}, "must not hold a user name or password"),
        ({"url": "ws:///v3/ws"}, "the URL has no host"),
        ({"url": "ws://aai.test:99999/v3/ws"}, "the URL has an invalid port"),
        ({"url": "ws://[::1/v3/ws"}, "its host has an unbalanced '\\[' or '\\]'"),
        (
            {"url": "ws://user:hunter2\uff03@host/v3/ws"},
            "its host holds characters that NFKC turns into delimiters",
        ),
        ({"terminate_timeout": -1}, "terminate_timeout must be a number of seconds"),
        ({"connect_timeout": math.nan}, "connect_timeout must be a number of seconds"),
        ({"connect_timeout": True}, "connect_timeout must be a number of seconds"),
        ({"max_buffered_events": 0}, "max_buffered_events must be a positive integer"),
        ({"chunk_ms": 20}, "chunk_ms must be an integer from 50 to 1000"),
        ({"token": TOKEN}, "give api_key or token, not both"),
    ],
)
def test_bad_arguments_fail_at_the_call(
    adapter: Adapter, options: dict[str, object], message: str
) -> None:
    # No event loop: the call itself raises, before any I/O.
    with pytest.raises(ValueError, match=message) as info:
        adapter.open_session(PARAMS, api_key=KEY, **options)
    for secret in (KEY, TOKEN, "hunter2"):
        assert secret not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None


@both
async def test_secrets_stay_out_of_reprs(adapter: Adapter) -> None:
    async with serve(answering()) as server:
        manager = adapter.open_session(PARAMS, token=TOKEN, url=server.url)
        async with manager as session:
            for text in (repr(session), repr(manager), repr(vars(session)), repr(vars(manager))):
                assert TOKEN not in text
        await server.peer.closed.wait()
    assert server.peer.header("authorization") == TOKEN  # it did travel, in the header
