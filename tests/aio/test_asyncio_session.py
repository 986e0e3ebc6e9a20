"""``aai_proto.asyncio``: the trio adapter's contract, on asyncio.

The tests run their own event loop (``asyncio.run``): the suite's async tests
run under trio. Servers: the replay server in a thread, and scripted
``websockets`` servers on 127.0.0.1 in the test's own loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from aai_proto import (
    Begin,
    LocalProtocolError,
    RemoteProtocolError,
    ServerError,
    ServerEvent,
    State,
    StreamingError,
    StreamingParams,
    Termination,
    parse_server_message,
)
from aai_proto.asyncio import (
    CLOSE_TIMEOUT,
    ConnectError,
    ConnectTimeout,
    HandshakeRejected,
    open_session,
)
from aai_replay import BackgroundReplayServer, Faults, ServerMessage, load_session

SESSIONS = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "sessions").glob("*.jsonl"))
PARAMS = StreamingParams(sample_rate=16000)
BEGIN = '{"type":"Begin","id":"s-1","expires_at":1764000000}'
TERMINATION = '{"type":"Termination","audio_duration_seconds":1,"session_duration_seconds":1}'


def run(main: Callable[[], Awaitable[Any]], *, limit: float = 30.0) -> Any:
    """Run ``main`` in a fresh event loop, bounded in time."""

    async def bounded() -> Any:
        return await asyncio.wait_for(main(), limit)

    return asyncio.run(bounded())


@pytest.mark.parametrize("path", SESSIONS, ids=[p.stem for p in SESSIONS])
def test_every_shipped_session_gives_the_recorded_events(path: Path) -> None:
    recording = load_session(path)
    audio = recording.audio_path
    assert audio is not None
    received: list[ServerEvent] = []
    failures: list[StreamingError] = []

    async def main() -> None:
        async with open_session(recording.params, url=server.url) as live:

            async def stream() -> None:
                try:
                    await live.stream_file(audio, realtime=False)
                    await live.terminate()
                except StreamingError:
                    pass  # the iteration reports it too

            sender = asyncio.ensure_future(stream())
            try:
                async for event in live:
                    received.append(event)
            except StreamingError as exc:
                failures.append(exc)
            await sender

    with BackgroundReplayServer(recording) as server:
        run(main)
    expected = [
        parse_server_message(json.dumps(dict(e.message)))
        for e in recording.entries
        if isinstance(e, ServerMessage)
    ]
    assert isinstance(received[0], Begin)
    assert received[0].id != expected[0].id  # type: ignore[union-attr]
    assert received[1:] == expected[1:]
    errors = [e for e in expected if isinstance(e, ServerError)]
    assert [(f.code, f.message) for f in failures] == [(e.error_code, e.error) for e in errors]


def test_a_full_session_and_misuse_after_it() -> None:
    recording = load_session(SESSIONS[0].with_name("universal-format-turns.jsonl"))

    async def main() -> tuple[Termination | None, State]:
        async with open_session(recording.params, url=server.url) as live:
            assert live.session_id
            await live.stream_file(recording.audio_path, realtime=False)  # type: ignore[arg-type]
            termination = await live.terminate()
            assert await live.terminate() is termination  # again: the same, nothing sent
            with pytest.raises(LocalProtocolError, match="can't send_audio in state CLOSED"):
                await live.send_audio(b"\0" * 3200)
            events = [event async for event in live]
            assert isinstance(events[-1], Termination)
            return termination, live.state

    with BackgroundReplayServer(recording) as server:
        termination, state = run(main)
    assert isinstance(termination, Termination)
    assert state is State.CLOSED


def test_a_server_error_is_one_typed_exception_from_every_call() -> None:
    recording = load_session(SESSIONS[0].with_name("universal-format-turns.jsonl"))

    async def main() -> None:
        async with open_session(recording.params, url=server.url) as live:
            with pytest.raises(StreamingError) as first:
                async for _ in live:
                    pass
            assert (first.value.code, first.value.reason) == (3005, "See Error message for details")
            with pytest.raises(StreamingError) as again:
                await live.keep_alive()
            assert again.value == first.value
            assert again.value is not first.value
            assert again.value.__cause__ is first.value.__cause__

    with BackgroundReplayServer(recording, faults=Faults(error_code=3005, error_after=1)) as server:
        run(main)


def test_the_blocks_exception_comes_out_unwrapped_and_at_once() -> None:
    recording = load_session(SESSIONS[0].with_name("universal-format-turns.jsonl"))
    error = ValueError("from the block")

    async def main() -> float:
        start = time.monotonic()
        with pytest.raises(ValueError, match="from the block") as raised:
            async with open_session(recording.params, url=server.url):
                raise error
        assert raised.value is error
        return time.monotonic() - start

    with BackgroundReplayServer(recording) as server:
        assert run(main) < CLOSE_TIMEOUT  # the socket is closed, nothing waited for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_is_a_connect_error() -> None:
    url = f"ws://127.0.0.1:{free_port()}/v3/ws"

    async def main() -> None:
        with pytest.raises(ConnectError, match=f"can't connect to {url}"):
            async with open_session(PARAMS, url=url):
                pytest.fail("no session")

    run(main)


def test_an_http_status_is_handshake_rejected() -> None:
    recording = load_session(SESSIONS[0].with_name("universal-format-turns.jsonl"))

    async def main() -> None:
        url = server.url.replace("/v3/ws", "/v2/ws")
        with pytest.raises(HandshakeRejected) as raised:
            async with open_session(PARAMS, url=url):
                pytest.fail("no session")
        assert raised.value.status_code == 404

    with BackgroundReplayServer(recording) as server:
        run(main)


Handler = Callable[[ServerConnection], Awaitable[None]]


async def scripted(handler: Handler, body: Callable[[str], Awaitable[None]]) -> None:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        await body(f"ws://127.0.0.1:{port}/v3/ws")


def test_terminate_never_hangs_on_a_server_that_stops_answering() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        await ws.wait_closed()  # never answers Terminate, never closes itself

    async def body(url: str) -> None:
        async with open_session(PARAMS, url=url, terminate_timeout=0.5) as live:
            start = time.monotonic()
            assert await live.terminate() is None
            assert time.monotonic() - start < 0.5 + CLOSE_TIMEOUT + 1.0

    run(lambda: scripted(handler, body))


def test_no_begin_in_time_is_a_connect_timeout() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()  # never sends Begin

    async def body(url: str) -> None:
        with pytest.raises(ConnectTimeout, match=r"no Begin within 0\.3 s"):
            async with open_session(PARAMS, url=url, connect_timeout=0.3):
                pytest.fail("no session")

    run(lambda: scripted(handler, body))


def test_garbage_is_a_remote_protocol_error_and_a_1002_close() -> None:
    closes: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        await ws.send("not JSON")
        await ws.wait_closed()
        closes.append(ws.close_code)

    async def body(url: str) -> None:
        async with open_session(PARAMS, url=url) as live:
            with pytest.raises(RemoteProtocolError, match="not valid JSON"):
                async for _ in live:
                    pass

    run(lambda: scripted(handler, body))
    assert closes == [1002]


def test_a_close_after_termination_is_no_failure() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        await ws.send(TERMINATION)
        await ws.close(1011, "late trouble")

    async def body(url: str) -> None:
        async with open_session(PARAMS, url=url) as live:
            events = [event async for event in live]
            assert isinstance(events[-1], Termination)
            assert await live.terminate() == events[-1]

    run(lambda: scripted(handler, body))


@pytest.mark.parametrize(
    "url", ["ws://[::1/v3/ws", "ws://user:KEY\uff03@host/v3/ws", "wss://user:KEY@host/v3/ws"]
)
def test_a_bad_url_is_a_value_error_that_shows_no_credential(url: str) -> None:
    from aai_proto.trio import open_session as open_trio_session

    for opener in (open_session, open_trio_session):
        with pytest.raises(ValueError, match=r"(?i)url") as raised:
            opener(PARAMS, url=url)
        assert "KEY" not in str(raised.value)
        assert raised.value.__cause__ is None
        assert raised.value.__suppress_context__ or raised.value.__context__ is None


# -- the rest of the contract, as the trio adapter's tests hold it ------------------------

TURN = (
    '{"turn_order":0,"turn_is_formatted":false,"end_of_turn":false,"transcript":"hi",'
    '"end_of_turn_confidence":0.1,"words":[],"type":"Turn"}'
)


def test_iteration_stays_ended() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        await ws.send(TERMINATION)
        await ws.wait_closed()

    async def body(url: str) -> None:
        async with open_session(PARAMS, url=url) as live:
            assert len([event async for event in live]) == 2
            with pytest.raises(StopAsyncIteration):
                await live.__anext__()

    run(lambda: scripted(handler, body))


def test_backpressure_keeps_every_event_in_order() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        for _ in range(20):
            await ws.send(TURN)
        await ws.send(TERMINATION)
        await ws.wait_closed()

    async def body(url: str) -> None:
        async with open_session(PARAMS, url=url, max_buffered_events=1) as live:
            await asyncio.sleep(0.1)  # the reader stops at one event waiting
            assert len(live._events) == 1
            names = [type(event).__name__ async for event in live]
        assert names == ["Begin", *["Turn"] * 20, "Termination"]

    run(lambda: scripted(handler, body))


def test_realtime_pacing_takes_as_long_as_the_audio() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        async for message in ws:
            if isinstance(message, str) and "Terminate" in message:
                await ws.send(TERMINATION)
                await ws.close(1000, "Session Ended")

    async def body(url: str) -> None:
        async with open_session(PARAMS, url=url) as live:
            start = time.monotonic()
            await live.stream([b"\0" * 3200] * 4, realtime=True)  # 0.4 s of audio
            assert time.monotonic() - start >= 0.3  # the last frame waits for 350 ms
            assert isinstance(await live.terminate(), Termination)

    run(lambda: scripted(handler, body))


def test_a_send_cut_off_breaks_the_session() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        await ws.wait_closed()  # takes one message, then reads no more: the buffers fill up

    async def body(url: str) -> None:
        from aai_proto.asyncio import BrokenSessionError

        async with open_session(PARAMS, url=url) as live:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(live.send_audio(b"\0" * (32 << 20)), 0.5)
            assert live.state is State.BROKEN
            with pytest.raises(BrokenSessionError, match="cancelled midway"):
                await live.keep_alive()

    async def serve_small(handler: Handler, body: Callable[[str], Awaitable[None]]) -> None:
        async with serve(
            handler, "127.0.0.1", 0, max_queue=1, max_size=None, close_timeout=1
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            await body(f"ws://127.0.0.1:{port}/v3/ws")

    run(lambda: serve_small(handler, body))


def test_a_close_while_sending_raises_the_failure() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        await ws.close(1011, "Internal error")

    async def body(url: str) -> None:
        async with open_session(PARAMS, url=url) as live:
            await asyncio.sleep(0.2)  # the close has come
            with pytest.raises(StreamingError) as failed:
                await live.send_audio(b"\0" * 3200)
            assert (failed.value.code, failed.value.reason) == (1011, "Internal error")

    run(lambda: scripted(handler, body))


def test_a_failure_nobody_saw_is_raised_when_the_block_is_left() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        await ws.send('{"type":"Error","error_code":3005,"error":"Server error"}')
        await ws.close(3005, "See Error message for details")

    async def body(url: str) -> None:
        with pytest.raises(StreamingError) as failed:
            async with open_session(PARAMS, url=url):
                await asyncio.sleep(0.2)
        assert (failed.value.code, failed.value.message) == (3005, "Server error")

    run(lambda: scripted(handler, body))


def test_a_refused_key_is_the_sessions_failure_at_open() -> None:
    recording = load_session(SESSIONS[0].with_name("synth-plain.jsonl"))

    async def main() -> None:
        with pytest.raises(StreamingError) as refused:
            async with open_session(recording.params, url=server.url, api_key="wrong"):
                pytest.fail("no session")
        assert refused.value.code == 1008

    with BackgroundReplayServer(recording, api_key="right") as server:
        run(main)


def test_a_close_before_begin_is_a_connect_error() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close(1000, "bye")

    async def body(url: str) -> None:
        with pytest.raises(ConnectError, match=r"closed the session \(1000\) before Begin"):
            async with open_session(PARAMS, url=url):
                pytest.fail("no session")

    run(lambda: scripted(handler, body))


def test_a_hang_up_during_the_handshake_is_a_connect_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(ConnectError, match="closed the connection during the WebSocket"):
                async with open_session(PARAMS, url=f"ws://127.0.0.1:{port}/v3/ws"):
                    pytest.fail("no session")

    run(main)


def test_the_context_manager_is_entered_once() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(BEGIN)
        await ws.wait_closed()

    async def body(url: str) -> None:
        opener = open_session(PARAMS, url=url, terminate_timeout=0.1)
        async with opener:
            with pytest.raises(RuntimeError, match="entered only once"):
                await opener.__aenter__()

    run(lambda: scripted(handler, body))
