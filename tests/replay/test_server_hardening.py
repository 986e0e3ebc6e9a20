"""The replay server against clients that misbehave below the streaming protocol.

A raw peer (``tests._websocket``), with no WebSocket library under it, sends what
no library would: a Ping during the server's closing handshake, frames that break
RFC 6455, or nothing read at all. Over 127.0.0.1 (each test bounded in time) and
over in-memory streams in virtual time.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Final

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed

import aai_proto as aai
from aai_proto.trio import open_session
from aai_replay import (
    BackgroundReplayServer,
    ClientAudio,
    ClientMessage,
    Close,
    CloseRecord,
    ConnectionRecord,
    RecordedSession,
    ReplayServer,
    ServerMessage,
    ServerRaw,
    ViolationRecord,
    open_replay_server,
)
from tests._websocket import (
    BINARY,
    CLOSE,
    PING,
    TEXT,
    FrameReader,
    close_payload,
    connect,
    frame,
    parse_close,
    raw_client,
    upgrade_request,
)

QUERY: Final = "?sample_rate=16000&encoding=pcm_s16le"
FRAME: Final = b"\0" * 1600
LIMIT: Final = 20  # seconds: no test here needs more than a fraction of it
MakeSession = Callable[..., RecordedSession]


def problems_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records at WARNING or above, and any traceback: none of these tests may log one."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING or r.exc_info is not None
    ]


async def closed_record(server: ReplayServer, index: int = 0) -> ConnectionRecord:
    """The journal's record of connection ``index`` once it has closed."""
    while len(server.journal) <= index or server.journal[index].close is None:
        await trio.sleep(0.01)
    return server.journal[index]


def ended_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The server's log lines but those of openings: how each connection ended (or failed)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aai_replay" and r.levelno >= logging.INFO and ": open" not in r.getMessage()
    ]


async def wait_ended(caplog: pytest.LogCaptureFixture, count: int) -> None:
    """Wait until the server has logged the end (or the failure) of ``count`` connections."""
    while len(ended_lines(caplog)) < count:
        await trio.sleep(0.01)


# -- 1. a Ping during the server's closing handshake ------------------------------------


@pytest.mark.parametrize(
    "during_close",
    [
        pytest.param(frame(PING, b"are you there", mask=True), id="ping"),
        # Over the server's max_message_size: trio-websocket would answer it with a
        # close 1009, which cannot follow the server's own close either.
        pytest.param(frame(BINARY, b"\0" * 5000, mask=True), id="oversized"),
    ],
)
async def test_a_frame_during_the_servers_close_ends_it_cleanly(
    basic_session: RecordedSession, caplog: pytest.LogCaptureFixture, during_close: bytes
) -> None:
    caplog.set_level(logging.DEBUG, logger="aai_replay")
    # strict, and another sample rate: the server closes 4900 at once.
    with trio.fail_after(LIMIT):
        async with (
            open_replay_server(basic_session, strict=True, max_message_size=4000) as server,
            raw_client(server.port, "/v3/ws?sample_rate=8000") as (stream, reader),
        ):
            before, payload = await reader.until(CLOSE)
            assert before == []
            assert payload is not None
            code, _ = parse_close(payload)
            assert code == 4900
            # The frame reaches the server after its close frame went out, then the
            # answer that completes the handshake.
            await stream.send_all(during_close + frame(CLOSE, close_payload(4900), mask=True))
            assert await reader.frame() is None  # the server closes the TCP connection
            record = await closed_record(server)
            await wait_ended(caplog, 1)
    assert problems_logged(caplog) == []
    assert record.close is not None
    assert (record.close.code, record.close.by) == (4900, "server")
    # The handshake completed: the server saw the client's answer.
    assert ended_lines(caplog) == [
        "connection 1: closed by the server: 4900 "
        "'request differs: sample_rate recorded 16000, got 8000'; "
        "the client answered 4900 ''"
    ]


@pytest.mark.parametrize("target", ["/v3/ws" + QUERY, "/elsewhere"])
async def test_a_client_gone_before_the_upgrades_answer_is_journaled_quietly(
    basic_session: RecordedSession,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
    target: str,
) -> None:
    caplog.set_level(logging.INFO, logger="aai_replay")
    server = ReplayServer(basic_session)
    client, served = trio.testing.memory_stream_pair()
    await client.send_all(upgrade_request(target))
    await client.aclose()  # the answer cannot be written
    await server.serve_stream(served)
    assert problems_logged(caplog) == []
    [record] = server.journal
    assert record.close is not None
    assert record.close.code == 1006


# -- 2. the path / --------------------------------------------------------------------


async def test_the_root_path_is_served_like_v3_ws(basic_session: RecordedSession) -> None:
    frames: list[bytes | str] = [FRAME] * 4 + ['{"type":"Terminate"}']
    results = []
    with trio.fail_after(LIMIT):
        async with open_replay_server(basic_session) as server:
            for path in ("/", "/v3/ws"):
                async with connect(f"{server.api_host}{path}{QUERY}") as ws:
                    received = []
                    for data in frames:
                        await ws.send_message(data)
                    while (message := await ws.get_message()) and "Termination" not in message:
                        received.append(json.loads(message)["type"])
                    results.append(received)
            journal = server.journal
    assert results[0] == results[1] == ["Begin", "Turn", "Turn"]
    assert [record.request.path for record in journal] == ["/", "/v3/ws"]
    assert all(record.violations == () for record in journal)


async def test_the_root_path_checks_the_request_like_v3_ws(
    basic_session: RecordedSession,
) -> None:
    # No query, as a bare api_host with nothing added gives: no sample_rate.
    answers = []
    with trio.fail_after(LIMIT):
        async with open_replay_server(basic_session) as server:
            for path in ("/", "/v3/ws"):
                async with connect(server.api_host + path) as ws:
                    error = json.loads(await ws.get_message())
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.get_message()
                    assert closed.value.reason is not None
                    answers.append((error["error_code"], closed.value.reason.code))
    assert answers == [(3006, 3006)] * 2


# -- 3. the mismatch reason -----------------------------------------------------------


async def test_a_strict_mismatch_says_replay_mismatch_once(
    basic_session: RecordedSession,
) -> None:
    with trio.fail_after(LIMIT):
        async with open_replay_server(basic_session, strict=True) as server:
            with pytest.raises(aai.StreamingError) as raised:
                async with open_session(aai.StreamingParams(sample_rate=8000), url=server.url):
                    pass
    error = raised.value
    reason = "request differs: sample_rate recorded 16000, got 8000"
    assert (error.code, error.reason) == (4900, reason)
    assert str(error) == (
        f"4900 replay mismatch: the client departed from the recorded session: {reason}"
    )


# -- 4. the log line of each connection's end -------------------------------------------


async def test_the_log_names_each_close_both_ways_without_credentials(
    basic_session: RecordedSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aai_replay")
    secret = "tok-SECRET-1234"
    with trio.fail_after(LIMIT):
        async with open_replay_server(basic_session, api_key=secret) as server:
            # The server closes: Session Ended, answered by the client.
            async with connect(server.url + QUERY, [(b"Authorization", secret.encode())]) as ws:
                for data in [FRAME] * 4 + ['{"type":"Terminate"}']:
                    await ws.send_message(data)
                messages = []
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        messages.append(await ws.get_message())
                assert "Termination" in messages[-1]
            # The client closes, with a reason that holds its own credential.
            async with connect(f"{server.url}{QUERY}&token={secret}") as ws:
                await ws.get_message()
                await ws.aclose(4000, f"bye {secret}")
            # The client vanishes without a close frame.
            async with raw_client(server.port, f"/v3/ws{QUERY}&token={secret}"):
                pass
            records = [await closed_record(server, i) for i in range(3)]
            await wait_ended(caplog, 3)
    assert ended_lines(caplog) == [
        "connection 1: closed by the server: 1000 'Session Ended'; "
        "the client answered 1000 'Session Ended'",
        "connection 2: closed by the client: 4000 'bye [credential]'",
        "connection 3: lost: the client went away without a close frame (1006)",
    ]
    assert secret not in caplog.text
    assert [r.close for r in records] == [
        CloseRecord(code=1000, reason="Session Ended", by="server"),
        CloseRecord(code=4000, reason="bye [credential]", by="client"),
        CloseRecord(code=1006, reason="", by="client"),
    ]


# -- 5. a client that does not read ---------------------------------------------------

BIG: Final = "x" * (64 * 1024)


def flood(make_session: MakeSession, messages: int) -> RecordedSession:
    """Begin, then ``messages`` frames of 64 KiB that wait for nothing (with audio pacing)."""
    entries: list[Any] = [ServerMessage(0.0, {"type": "Begin", "id": "x", "expires_at": 1})]
    entries += [ServerRaw(0.01, BIG) for _ in range(messages)]
    entries += [ClientAudio(0.05, 1600), ClientMessage(0.1, {"type": "Terminate"})]
    entries.append(Close(0.2, 1000, "Session Ended", "server"))
    return make_session(entries)


async def test_a_client_that_reads_nothing_is_dropped_in_virtual_time(
    make_session: MakeSession, autojump_clock: trio.testing.MockClock
) -> None:
    server = ReplayServer(flood(make_session, 4), send_timeout=3.0)
    client, served = trio.testing.lockstep_stream_pair()  # a write waits for its reader
    reader = FrameReader(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, served)
        await client.send_all(upgrade_request("/v3/ws" + QUERY))
        assert await reader.head() is not None
        start = trio.current_time()
        while not server.journal or server.journal[0].close is None:
            await trio.sleep(0.1)  # reading nothing
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.2)
    [record] = server.journal
    reason = "send_timeout: the client read nothing for 3 s"
    assert record.close == CloseRecord(code=1006, reason=reason, by="server")
    assert record.violations == (
        ViolationRecord(
            t=record.violations[0].t,
            code=1006,
            rule="the client read nothing for 3 s while the server had frames to send",
        ),
    )


async def test_a_slow_reader_is_not_dropped(
    make_session: MakeSession, autojump_clock: trio.testing.MockClock
) -> None:
    # It takes a frame (or 16 KiB of a long one) every 2.5 s: progress, each time
    # within the 3 s allowed.
    server = ReplayServer(flood(make_session, 4), send_timeout=3.0)
    client, served = trio.testing.lockstep_stream_pair()
    reader = FrameReader(client)
    frames: list[tuple[int, bytes]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, served)
        await client.send_all(upgrade_request("/v3/ws" + QUERY))
        assert await reader.head() is not None
        while len(frames) < 5:
            await trio.sleep(2.5)
            got = await reader.frame()
            assert got is not None
            frames.append(got)
        await client.send_all(frame(BINARY, FRAME, mask=True))
        await client.send_all(frame(TEXT, b'{"type":"Terminate"}', mask=True))
        _, payload = await reader.until(CLOSE)
        assert payload is not None
        assert parse_close(payload) == (1000, "Session Ended")
        await client.send_all(frame(CLOSE, payload, mask=True))
    assert [len(p) for _, p in frames[1:]] == [len(BIG)] * 4
    [record] = server.journal
    assert record.close == CloseRecord(code=1000, reason="Session Ended", by="server")
    assert record.violations == ()


async def test_a_client_that_reads_nothing_over_tcp_is_dropped(
    make_session: MakeSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aai_replay")
    # 12.5 MiB to send, more than the socket buffers hold (the client's is kept small).
    session = flood(make_session, 200)
    with trio.fail_after(LIMIT):
        async with open_replay_server(session, send_timeout=0.5) as server:
            async with raw_client(server.port, "/v3/ws" + QUERY, receive_buffer=4096):
                record = await closed_record(server)  # reading nothing
                await wait_ended(caplog, 1)
            # The server goes on serving.
            async with connect(server.url + QUERY) as ws:
                assert json.loads(await ws.get_message())["type"] == "Begin"
    assert record.close == CloseRecord(
        code=1006, reason="send_timeout: the client read nothing for 0.5 s", by="server"
    )
    assert [v.code for v in record.violations] == [1006]
    assert (
        "connection 1: dropped by the server (1006): "
        "send_timeout: the client read nothing for 0.5 s" in ended_lines(caplog)
    )
    assert problems_logged(caplog) == []


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), "60", True])
def test_send_timeout_is_checked(basic_session: RecordedSession, value: Any) -> None:
    with pytest.raises(ValueError, match="send_timeout must be"):
        ReplayServer(basic_session, send_timeout=value)


def test_send_timeout_defaults_to_a_minute_and_can_be_off(
    basic_session: RecordedSession,
) -> None:
    assert ReplayServer(basic_session).send_timeout == 60.0
    assert ReplayServer(basic_session, send_timeout=None).send_timeout is None


def test_send_timeout_reaches_the_background_server(basic_session: RecordedSession) -> None:
    assert BackgroundReplayServer(basic_session, send_timeout=2.5).server.send_timeout == 2.5
    with pytest.raises(ValueError, match="send_timeout must be"):
        BackgroundReplayServer(basic_session, send_timeout=0)


# -- 6. WebSocket protocol violations ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(frame(BINARY, FRAME, mask=True, rsv=4), 1002, id="reserved-bit"),
        pytest.param(frame(BINARY, FRAME, mask=False), 1002, id="unmasked"),
        pytest.param(frame(TEXT, b'{"type": "\xff"}', mask=True), 1007, id="invalid-utf8"),
        pytest.param(frame(0x3, b"", mask=True), 1002, id="unknown-opcode"),
        pytest.param(frame(PING, b"", mask=True, fin=False), 1002, id="fragmented-ping"),
        pytest.param(frame(PING, b"x" * 126, mask=True), 1002, id="long-ping"),
        pytest.param(frame(CLOSE, close_payload(999), mask=True), 1002, id="close-code-999"),
    ],
)
async def test_a_websocket_protocol_violation_gets_its_close_code(
    basic_session: RecordedSession, caplog: pytest.LogCaptureFixture, data: bytes, code: int
) -> None:
    caplog.set_level(logging.INFO, logger="aai_replay")
    with trio.fail_after(LIMIT):
        async with (
            open_replay_server(basic_session) as server,
            raw_client(server.port, "/v3/ws" + QUERY) as (stream, reader),
        ):
            begin = await reader.frame()
            assert begin is not None
            assert json.loads(begin[1])["type"] == "Begin"
            await stream.send_all(data)
            before, payload = await reader.until(CLOSE)
            assert before == []
            assert payload is not None
            got, reason = parse_close(payload)
            assert got == code
            assert await reader.frame() is None  # then the server closes the TCP connection
            record = await closed_record(server)
            await wait_ended(caplog, 1)
    assert problems_logged(caplog) == []
    assert record.close == CloseRecord(code=code, reason=reason, by="server")
    assert record.violations == (
        ViolationRecord(
            t=record.violations[0].t, code=code, rule=f"WebSocket protocol error: {reason}"
        ),
    )
    assert ended_lines(caplog) == [f"connection 1: closed by the server: {code} {reason!r}"]


async def test_a_violation_after_the_servers_close_ends_the_connection_quietly(
    basic_session: RecordedSession, caplog: pytest.LogCaptureFixture
) -> None:
    # The server's close went out: no second close frame can follow, the socket closes.
    caplog.set_level(logging.INFO, logger="aai_replay")
    with trio.fail_after(LIMIT):
        async with (
            open_replay_server(basic_session, strict=True) as server,
            raw_client(server.port, "/v3/ws?sample_rate=8000") as (stream, reader),
        ):
            _, payload = await reader.until(CLOSE)
            assert payload is not None
            await stream.send_all(frame(BINARY, FRAME, mask=True, rsv=4))
            assert await reader.frame() is None
            record = await closed_record(server)
            await wait_ended(caplog, 1)
    assert problems_logged(caplog) == []
    assert record.close is not None
    assert (record.close.code, record.close.by) == (4900, "server")


async def test_a_violation_with_a_frame_on_its_way_gets_the_close_after_it(
    make_session: MakeSession, autojump_clock: trio.testing.MockClock
) -> None:
    # The server is writing a long frame when the bad one comes: the close frame
    # follows the whole frame, never inside it.
    server = ReplayServer(flood(make_session, 1))
    client, served = trio.testing.lockstep_stream_pair()
    reader = FrameReader(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, served)
        await client.send_all(upgrade_request("/v3/ws" + QUERY))
        assert await reader.head() is not None
        assert await reader.frame() is not None  # Begin; the long frame waits for us
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as writing:
            writing.start_soon(client.send_all, frame(BINARY, FRAME, mask=True, rsv=1))
            got = await reader.frame()
            assert got == (TEXT, BIG.encode())
            _, payload = await reader.until(CLOSE)
        assert payload is not None
        assert parse_close(payload)[0] == 1002
    [record] = server.journal
    assert record.close is not None
    assert record.close.code == 1002


@pytest.mark.parametrize(
    ("code", "failure"), [(1000, False), (1001, False), (1002, True), (1007, True)]
)
def test_a_close_read_before_its_answer_went_out_is_no_protocol_failure(
    code: int, failure: bool
) -> None:
    # The client's own close can be read (and the connection seen closed) a moment
    # before trio-websocket has written the answering close frame: only the codes
    # wsproto reports for a broken frame make it a protocol failure.
    from types import SimpleNamespace
    from typing import cast

    from trio_websocket import WebSocketConnection

    from aai_replay._server import _Transport

    transport = _Transport(cast(trio.abc.Stream, None), None)
    transport.upgraded = True
    ws = cast(WebSocketConnection, SimpleNamespace(closed=SimpleNamespace(code=code)))
    assert transport.protocol_failure(ws) is failure
