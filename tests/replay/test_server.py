"""The replay server over real sockets (127.0.0.1) and in-memory streams (virtual time)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
import trio.testing
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection

from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    Faults,
    RecordedSession,
    ReplayServer,
    ServerMessage,
    load_session,
    open_replay_server,
)
from tests._websocket import connect as connect_url

QUERY = "?sample_rate=16000&encoding=pcm_s16le"
FRAME = b"\0" * 1600
REASON = "See Error message for details"


async def exchange(
    ws: WebSocketConnection, frames: Sequence[bytes | str]
) -> tuple[list[Any], int | None, str | None]:
    """Send ``frames`` while reading; return the messages (JSON parsed) and the close."""
    received: list[Any] = []

    async def send() -> None:
        try:
            for frame in frames:
                await ws.send_message(frame)
        except ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        try:
            while True:
                message = await ws.get_message()
                try:
                    received.append(json.loads(message))
                except ValueError:
                    received.append(message)
        except ConnectionClosed as exc:
            reason = exc.reason
    assert reason is not None
    return received, reason.code, reason.reason


def session_frames(session: RecordedSession) -> list[bytes | str]:
    """The frames a client sends to play ``session`` back: its audio and its messages."""
    frames: list[bytes | str] = []
    for entry in session.entries:
        if isinstance(entry, ClientAudio):
            frames.append(b"\0" * entry.nbytes)
        elif isinstance(entry, ClientMessage):
            frames.append(json.dumps(dict(entry.message)))
    return frames


def server_messages(session: RecordedSession) -> list[Any]:
    return [dict(e.message) for e in session.entries if isinstance(e, ServerMessage)]


def without_begin_ids(messages: list[Any]) -> list[Any]:
    out = []
    for message in messages:
        if isinstance(message, dict) and message.get("type") == "Begin":
            message = {**message, "id": "*", "expires_at": "*"}
        out.append(message)
    return out


async def memory_connection(
    server: ReplayServer,
    nursery: trio.Nursery,
    target: str = "/v3/ws" + QUERY,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> WebSocketConnection:
    client, served = trio.testing.memory_stream_pair()
    nursery.start_soon(server.serve_stream, served)
    return await trio_websocket.wrap_client_stream(
        nursery,
        client,  # type: ignore[arg-type]
        "localhost",
        target,
        extra_headers=headers,
    )


def connect(
    server: ReplayServer,
    target: str = "/v3/ws" + QUERY,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> contextlib.AbstractAsyncContextManager[WebSocketConnection]:
    """A WebSocket client to ``server`` over a socket it always closes (see tests._websocket)."""
    return connect_url(f"ws://{urlsplit(server.url).netloc}{target}", headers or ())


# -- over real sockets ----------------------------------------------------------------


async def test_every_connection_gets_its_own_full_replay(sessions_dir: Path) -> None:
    session = load_session(sessions_dir / "universal-format-turns.jsonl")
    async with open_replay_server(session) as server:
        assert server.url == f"ws://127.0.0.1:{server.port}/v3/ws"
        assert server.api_host == f"ws://127.0.0.1:{server.port}"
        results: list[tuple[list[Any], int | None, str | None]] = []

        async def one() -> None:
            async with connect(server) as ws:
                results.append(await exchange(ws, session_frames(session)))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
        async with connect(server) as ws:
            results.append(await exchange(ws, session_frames(session)))
    assert len(results) == 4
    ids = set()
    for messages, code, reason in results:
        assert without_begin_ids(messages) == without_begin_ids(server_messages(session))
        assert (code, reason) == (1000, "Session Ended")
        ids.add(messages[0]["id"])
    assert len(ids) == 4
    assert server.connections == 4


@pytest.mark.parametrize("error", [ValueError("from the block"), KeyboardInterrupt()])
async def test_the_blocks_exception_comes_out_unwrapped(
    basic_session: RecordedSession, error: BaseException
) -> None:
    port = 0

    async def block() -> None:
        nonlocal port
        async with open_replay_server(basic_session) as server:
            port = server.port
            raise error

    with pytest.raises(type(error)) as raised:
        await block()
    assert raised.value is error
    # ... and the server stopped listening.
    with pytest.raises(OSError, match="connect"):
        await trio.open_tcp_stream("127.0.0.1", port)


async def test_a_failure_to_listen_comes_out_unwrapped(basic_session: RecordedSession) -> None:
    async with open_replay_server(basic_session) as first:
        with pytest.raises(OSError, match="in use") as raised:
            async with open_replay_server(basic_session, port=first.port):
                pytest.fail("the second server cannot listen on the same port")
    assert raised.value.errno is not None  # the OSError itself (a group is no OSError)


async def test_a_cancelled_block_stops_the_server(basic_session: RecordedSession) -> None:
    with trio.move_on_after(0.05) as scope:
        async with open_replay_server(basic_session) as server:
            port = server.port
            await trio.sleep_forever()
    assert scope.cancelled_caught
    with pytest.raises(OSError, match="connect"):
        await trio.open_tcp_stream("127.0.0.1", port)


async def test_begin_expires_in_the_future(basic_session: RecordedSession) -> None:
    async with (
        open_replay_server(basic_session) as server,
        connect(server) as ws,
    ):
        begin = json.loads(await ws.get_message())
    assert begin["id"] != "rec-id"
    assert time.time() + 3 * 3600 - 60 < begin["expires_at"] <= time.time() + 3 * 3600


@pytest.mark.parametrize("target", [b"/v2/realtime/ws", b"//[x/v3/ws"])
async def test_another_path_is_not_found(basic_session: RecordedSession, target: bytes) -> None:
    async with open_replay_server(basic_session) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(
                b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            response = b""
            while chunk := await stream.receive_some():
                response += chunk
    assert response.startswith(b"HTTP/1.1 404 ")
    assert response.endswith(b"\r\n\r\nNot Found: connect to /v3/ws")


async def test_a_required_key_is_checked(basic_session: RecordedSession) -> None:
    async with open_replay_server(basic_session, api_key="the-key") as server:
        async with connect(server) as ws:
            messages, code, reason = await exchange(ws, [])
        assert messages == [
            {
                "type": "Error",
                "error_code": 1008,
                "error": "Unauthorized connection: missing API key or token",
            }
        ]
        assert (code, reason) == (1008, REASON)
        headers = [(b"Authorization", b"the-key")]
        async with connect(server, headers=headers) as ws:
            assert json.loads(await ws.get_message())["type"] == "Begin"
        async with connect(server, "/v3/ws" + QUERY + "&token=the-key") as ws:
            assert json.loads(await ws.get_message())["type"] == "Begin"


async def test_a_bad_client_never_disturbs_another(
    basic_session: RecordedSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aai_replay")
    async with open_replay_server(basic_session) as server:
        async with connect(server) as good:
            assert json.loads(await good.get_message())["type"] == "Begin"
            await good.send_message(FRAME * 2)
            assert json.loads(await good.get_message())["transcript"] == "hello"

            # Not HTTP at all, then gone.
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(b"\x16\x03\x01 garbage\r\n\r\n")
            await stream.aclose()
            # A WebSocket that vanishes without a close frame.
            async with trio.open_nursery() as nursery:
                raw = await trio.open_tcp_stream("127.0.0.1", server.port)
                ws = await trio_websocket.wrap_client_stream(
                    nursery, raw, "127.0.0.1", "/v3/ws" + QUERY
                )
                await ws.get_message()
                await trio.aclose_forcefully(raw)
                nursery.cancel_scope.cancel()
            # Protocol breakers.
            async with connect(server) as bad:
                messages, code, _ = await exchange(bad, [b"\0" * 40_000])
                assert code == 3007
            async with connect(server) as bad:
                messages, code, _ = await exchange(bad, ["{]"])
                assert code == 3006
            async with connect(server, "/v3/ws?sample_rate=x") as bad:
                messages, code, _ = await exchange(bad, [])
                assert messages[0]["error"].startswith("User Input Validation Error")
                assert code == 3006

            messages, code, reason = await exchange(good, [FRAME * 2, '{"type":"Terminate"}'])
            assert [m["type"] for m in messages] == ["Turn", "Termination"]
            assert (code, reason) == (1000, "Session Ended")
        async with connect(server) as later:
            assert json.loads(await later.get_message())["type"] == "Begin"
    assert server.connections == 7
    assert "connection 1: open" in caplog.text
    assert (
        "connection 1: closed by the server: 1000 'Session Ended'; "
        "the client answered 1000 'Session Ended'" in caplog.text
    )


async def test_a_connection_that_fails_is_logged_and_contained(
    basic_session: RecordedSession, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(trio.abc.Stream):
        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            raise RuntimeError("boom")

        async def wait_send_all_might_not_block(self) -> None:
            raise RuntimeError("boom")

        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            raise RuntimeError("boom")

        async def aclose(self) -> None:
            pass

    server = ReplayServer(basic_session)
    await server.serve_stream(Exploding())  # returns: the failure stays in its connection
    assert "connection 1 failed" in caplog.text
    with pytest.raises(RuntimeError, match="the server is not listening yet"):
        server.url  # noqa: B018


async def test_ipv6_hosts_are_bracketed_in_the_url(basic_session: RecordedSession) -> None:
    async with open_replay_server(basic_session, host="::1") as server:
        assert server.url == f"ws://[::1]:{server.port}/v3/ws"
        async with connect(server) as ws:
            assert json.loads(await ws.get_message())["type"] == "Begin"


async def test_a_session_file_path_is_loaded(sessions_dir: Path) -> None:
    server = ReplayServer(sessions_dir / "synth-plain.jsonl")
    assert server.session == load_session(sessions_dir / "synth-plain.jsonl")
    server = ReplayServer(str(sessions_dir / "synth-plain.jsonl"), strict=True, speed=2)
    assert server.options.strict
    assert server.options.speed == 2


# -- in memory, in virtual time -------------------------------------------------------


async def test_wall_pacing_plays_the_recorded_times(
    basic_session: RecordedSession, autojump_clock: trio.testing.MockClock
) -> None:
    server = ReplayServer(basic_session, pacing="wall", speed=2)
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        ws = await memory_connection(server, nursery)
        times: list[tuple[str, float]] = []

        async def read() -> None:
            try:
                while True:
                    message = json.loads(await ws.get_message())
                    times.append((message["type"], trio.current_time() - start))
            except ConnectionClosed:
                pass

        nursery.start_soon(read)
        for _ in range(4):
            await ws.send_message(FRAME)
        await trio.sleep(1)
        await ws.send_message('{"type":"Terminate"}')
    assert [name for name, _ in times] == ["Begin", "Turn", "Turn", "Termination"]
    assert [at for _, at in times] == pytest.approx([0.0, 0.06, 0.125, 1.0])


async def test_delay_holds_messages_back(
    basic_session: RecordedSession, autojump_clock: trio.testing.MockClock
) -> None:
    server = ReplayServer(basic_session, faults=Faults(delay=2.5))
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        ws = await memory_connection(server, nursery)
        assert json.loads(await ws.get_message())["type"] == "Begin"
        assert trio.current_time() - start == pytest.approx(2.5)
        nursery.cancel_scope.cancel()


async def test_a_drop_after_seconds_loses_the_connection(
    basic_session: RecordedSession, autojump_clock: trio.testing.MockClock
) -> None:
    server = ReplayServer(basic_session, faults=Faults(drop_after_seconds=7))
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        ws = await memory_connection(server, nursery)
        messages, code, reason = await exchange(ws, [])
        assert trio.current_time() - start == pytest.approx(7)
    assert [m["type"] for m in messages] == ["Begin"]
    assert (code, reason) == (1006, None)


async def test_a_drop_after_messages_loses_the_connection(
    basic_session: RecordedSession, autojump_clock: trio.testing.MockClock
) -> None:
    server = ReplayServer(basic_session, faults=Faults(drop_after_messages=2))
    async with trio.open_nursery() as nursery:
        ws = await memory_connection(server, nursery)
        messages, code, _ = await exchange(ws, [FRAME] * 4)
    assert [m["type"] for m in messages] == ["Begin", "Turn"]
    assert code == 1006


async def test_injected_error_and_raw_frames(
    basic_session: RecordedSession, autojump_clock: trio.testing.MockClock
) -> None:
    faults = Faults(raw=b"\x01binary", raw_after=1, error_code=3005, error_after=2)
    server = ReplayServer(basic_session, faults=faults)
    async with trio.open_nursery() as nursery:
        ws = await memory_connection(server, nursery)
        messages, code, reason = await exchange(ws, [FRAME] * 4)
    assert messages[1] == b"\x01binary"
    assert [m["type"] for m in messages if isinstance(m, dict)] == ["Begin", "Turn", "Error"]
    assert messages[-1] == {
        "type": "Error",
        "error_code": 3005,
        "error": "Injected error: server error",
    }
    assert (code, reason) == (3005, REASON)


async def test_strict_departures_close_4900_with_an_explanation(
    basic_session: RecordedSession, autojump_clock: trio.testing.MockClock
) -> None:
    server = ReplayServer(basic_session, strict=True)
    async with trio.open_nursery() as nursery:
        ws = await memory_connection(server, nursery, "/v3/ws?sample_rate=8000")
        messages, code, reason = await exchange(ws, [])
    assert messages == []
    assert code == 4900
    assert reason == "request differs: sample_rate recorded 16000, got 8000"


async def test_close_reasons_fit_a_close_frame(
    make_session: Any, autojump_clock: trio.testing.MockClock
) -> None:
    session = make_session([Close(0.1, 4000, "x" * 300, "server")])
    async with trio.open_nursery() as nursery:
        ws = await memory_connection(ReplayServer(session), nursery)
        _, code, reason = await exchange(ws, [])
    assert code == 4000
    assert reason == "x" * 120 + "..."


async def test_a_recorded_close_without_a_code_is_replayed(
    make_session: Any, autojump_clock: trio.testing.MockClock
) -> None:
    session = make_session([Close(0.1, 1005, "", "server")])
    async with trio.open_nursery() as nursery:
        ws = await memory_connection(ReplayServer(session), nursery)
        _, code, reason = await exchange(ws, [])
    assert (code, reason) == (1005, None)


async def test_a_client_close_entry_waits_for_the_client(
    make_session: Any, autojump_clock: trio.testing.MockClock
) -> None:
    session = make_session(
        [
            ServerMessage(0.0, {"type": "Begin", "id": "x", "expires_at": 1}),
            Close(0.1, 1000, "bye", "client"),
        ]
    )
    server = ReplayServer(session)
    async with trio.open_nursery() as nursery:
        ws = await memory_connection(server, nursery)
        assert json.loads(await ws.get_message())["type"] == "Begin"
        await trio.sleep(60)
        assert [ws.closed] == [None]
        await ws.aclose(1000, "bye")
    closed = ws.closed
    assert closed is not None
    assert closed.code == 1000


async def test_a_frame_over_the_size_limit_closes_1009(
    basic_session: RecordedSession, autojump_clock: trio.testing.MockClock
) -> None:
    server = ReplayServer(basic_session, max_message_size=4000)
    async with trio.open_nursery() as nursery:
        ws = await memory_connection(server, nursery)
        messages, code, _ = await exchange(ws, [b"\0" * 5000])
    assert [m["type"] for m in messages] == ["Begin"]
    assert code == 1009


async def test_a_client_that_never_finishes_its_handshake_is_let_go(
    basic_session: RecordedSession, autojump_clock: trio.testing.MockClock
) -> None:
    server = ReplayServer(basic_session)
    client, served = trio.testing.memory_stream_pair()
    start = trio.current_time()
    await server.serve_stream(served)
    assert trio.current_time() - start == pytest.approx(10)
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"GET / HTTP/1.1\r\n")


async def test_timing_reports_when_each_message_was_due_and_sent(
    basic_session: RecordedSession, autojump_clock: trio.testing.MockClock
) -> None:
    times: list[tuple[int, float, float]] = []
    server = ReplayServer(
        basic_session, faults=Faults(delay=0.5), timing=lambda *t: times.append(t)
    )
    async with trio.open_nursery() as nursery:
        ws = await memory_connection(server, nursery)
        messages, _, _ = await exchange(ws, session_frames(basic_session))
    sent = [m for m in messages if isinstance(m, dict)]
    assert len(times) == len(sent) > 1
    assert {number for number, _, _ in times} == {1}
    for _, due, at in times:
        assert due >= 0.5  # the gates opened, then the delay passed
        assert at == pytest.approx(due, abs=0.01)  # and nothing held the server back


async def test_timing_is_off_by_default(basic_session: RecordedSession) -> None:
    assert ReplayServer(basic_session).timing is None
