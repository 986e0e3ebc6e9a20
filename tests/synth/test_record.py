"""The recorder proxy: replay server upstream, recorder in front, a client streaming through.

Everything listens on 127.0.0.1, port 0, and is stopped by the test that
started it. The recorder is stopped (cancelled) once the client is done; its
files are read after that, when every session has been closed and written.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import urlencode, urlsplit

import pytest
import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    WebSocketRequest,
    wrap_server_stream,
)

from aai_replay import (
    ClientAudio,
    ClientMessage,
    Close,
    RecordedSession,
    ServerMessage,
    ServerRaw,
    load_session,
)
from aai_replay._record import (
    _close_for_client,
    _close_for_upstream,
    record,
    session_path,
)
from aai_replay._server import open_replay_server
from tests._websocket import connect
from tests.synth._shared import NAMES, server_json

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sessions"
KEY = "sk-test-4f1d9b0e-API-KEY"
TOKEN = "tmp-token-77c2e1aa-SECRET"


P = ParamSpec("P")


def limited(test: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
    """Fail the test after 20 s: real sockets need a safety net (never a synchronisation)."""

    @functools.wraps(test)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        with trio.fail_after(20):
            await test(*args, **kwargs)

    return run


@asynccontextmanager
async def recording(out: Path, upstream: str, **options: Any) -> AsyncIterator[str]:
    """Run the recorder for the block; yields its URL. Its files are complete after the block."""
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(partial(record, out, upstream=upstream, **options))
        yield url
        nursery.cancel_scope.cancel()


async def stream(
    url: str,
    audio: bytes,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    terminate: bool = True,
    frame: int = 1600,
) -> tuple[list[str | bytes], CloseReason | None]:
    """Stream ``audio`` as fast as possible, then Terminate; return what came, and the close."""
    received: list[str | bytes] = []
    async with connect(url, headers) as ws:

        async def read() -> None:
            try:
                while True:
                    received.append(await ws.get_message())
            except ConnectionClosed:
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            try:
                for i in range(0, len(audio), frame):
                    await ws.send_message(audio[i : i + frame])
                if terminate:
                    await ws.send_message('{"type": "Terminate"}')
            except ConnectionClosed:
                pass  # the server ended the session first
    return received, ws.closed


def query_of(session: RecordedSession, **extra: str) -> str:
    return urlencode([*session.header.request.query.items(), *extra.items()])


@pytest.mark.parametrize("name", NAMES)
@limited
async def test_recording_a_replayed_session_reproduces_its_messages(
    name: str, tmp_path: Path
) -> None:
    original = load_session(FIXTURES / f"{name}.jsonl")
    audio = original.audio_bytes()
    terminate = any(isinstance(e, ClientMessage) for e in original.entries)
    out = tmp_path / "rec.jsonl"
    async with (
        open_replay_server(original) as upstream,
        recording(out, upstream.url) as url,
    ):
        received, closed = await stream(f"{url}?{query_of(original)}", audio, terminate=terminate)
    recorded = load_session(out)

    assert server_json(recorded) == server_json(original)
    # What the client got is what was recorded, frame for frame.
    assert [json.loads(m) for m in received] == [
        dict(e.message) for e in recorded.entries if isinstance(e, ServerMessage)
    ]
    original_close, recorded_close = original.close, recorded.close
    assert original_close is not None
    assert recorded_close is not None
    assert (recorded_close.code, recorded_close.reason, recorded_close.by) == (
        original_close.code,
        original_close.reason,
        "server",
    )
    assert closed is not None
    assert (closed.code, closed.reason) == (original_close.code, original_close.reason)
    assert recorded.header.request.query == original.header.request.query
    assert recorded.header.request.path == "/v3/ws"
    assert recorded.header.source == "recorded"
    assert recorded.header.description == "recorded by aai-replay record through 127.0.0.1"
    assert recorded.header.audio is None
    # The client's side: every frame, then Terminate, with t growing from 0.
    frames = [e.nbytes for e in recorded.entries if isinstance(e, ClientAudio)]
    assert frames == [len(audio[i : i + 1600]) for i in range(0, len(audio), 1600)]
    controls = [dict(e.message) for e in recorded.entries if isinstance(e, ClientMessage)]
    assert controls == ([{"type": "Terminate"}] if terminate else [])
    assert recorded.entries[0].t >= 0


@limited
async def test_credentials_are_forwarded_and_never_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    original = load_session(FIXTURES / "synth-plain.jsonl")
    audio = original.audio_bytes()
    headers = [(b"Authorization", KEY.encode()), (b"User-Agent", b"recorder-test/1.0")]
    out = tmp_path / "rec.jsonl"
    # The replay server wants the key first, then the token: the session is only
    # accepted if the recorder passed on the header, then the query's token.
    for expected in (KEY, TOKEN):
        async with (
            open_replay_server(original, api_key=expected) as upstream,
            recording(out, upstream.url, save_audio=True) as url,
        ):
            query = query_of(original, token=TOKEN)
            received, closed = await stream(f"{url}?{query}", audio, headers=headers)
        assert closed is not None
        assert (closed.code, closed.reason) == (1000, "Session Ended")
        assert json.loads(received[0])["type"] == "Begin"
        recorded = load_session(out)
        assert "token" not in recorded.header.request.query
        assert recorded.header.request.query == original.header.request.query
        assert server_json(recorded) == server_json(original)
        for path in tmp_path.iterdir():
            data = path.read_bytes()
            assert KEY.encode() not in data
            assert TOKEN.encode() not in data
            assert b"Authorization" not in data
        assert KEY not in caplog.text
        assert TOKEN not in caplog.text
    # The log did record the sessions (so the check above looked at something).
    assert "session 1: recording to" in caplog.text


@limited
async def test_a_rejected_session_is_recorded_as_the_service_ended_it(tmp_path: Path) -> None:
    original = load_session(FIXTURES / "synth-plain.jsonl")
    out = tmp_path / "rec.jsonl"
    async with (
        open_replay_server(original, api_key=KEY) as upstream,
        recording(out, upstream.url) as url,
    ):
        received, closed = await stream(f"{url}?{query_of(original)}", b"")
    assert closed is not None
    assert closed.code == 1008
    recorded = load_session(out)
    [error] = server_json(recorded)
    assert (error["type"], error["error_code"]) == ("Error", 1008)
    assert [json.loads(m) for m in received] == [error]
    assert recorded.close == Close(recorded.entries[-1].t, 1008, closed.reason or "", "server")


@limited
async def test_each_connection_gets_its_own_file(tmp_path: Path) -> None:
    first = load_session(FIXTURES / "synth-plain.jsonl")
    second = load_session(FIXTURES / "u3-pro.jsonl")
    out = tmp_path / "calls.jsonl"
    async with (
        open_replay_server(first) as up1,
        open_replay_server(second) as up2,
    ):
        async with recording(out, up1.url) as url:
            await stream(f"{url}?{query_of(first)}", first.audio_bytes())
            await stream(f"{url}?{query_of(first)}", first.audio_bytes())
        # Two clients at once: both recorded, each in its own file.
        async with recording(out, up2.url, save_audio=True) as url, trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(stream, f"{url}?{query_of(second)}", second.audio_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "calls-2.jsonl",
        "calls-2.wav",
        "calls.jsonl",
        "calls.wav",
    ]
    # The second run replaced the first run's files.
    for path in (out, tmp_path / "calls-2.jsonl"):
        recorded = load_session(path)
        assert server_json(recorded) == server_json(second)
        assert recorded.audio_bytes() == second.audio_bytes()
    assert session_path(out, 1) == out
    assert session_path(out, 3) == tmp_path / "calls-3.jsonl"
    with pytest.raises(ValueError, match="session index starts at 1, got 0"):
        session_path(out, 0)


@limited
async def test_the_audio_sidecar_holds_what_the_client_sent(tmp_path: Path) -> None:
    original = load_session(FIXTURES / "universal-format-turns.jsonl")
    audio = original.audio_bytes()
    out = tmp_path / "rec.jsonl"
    async with (
        open_replay_server(original) as upstream,
        recording(out, upstream.url, save_audio=True) as url,
    ):
        # Frames of odd sizes: the sidecar is their concatenation all the same.
        await stream(f"{url}?{query_of(original)}", audio, frame=3000)
    recorded = load_session(out)
    assert recorded.header.audio == "rec.wav"
    assert recorded.audio_bytes() == audio
    assert [e.nbytes for e in recorded.entries if isinstance(e, ClientAudio)] == [
        len(audio[i : i + 3000]) for i in range(0, len(audio), 3000)
    ]


# -- against a small upstream written here, for what a replay server never does ---------------

Handler = Callable[[WebSocketRequest, trio.abc.Stream], Awaitable[None]]


@asynccontextmanager
async def upstream(handler: Handler) -> AsyncIterator[str]:
    """A WebSocket server on 127.0.0.1 running ``handler(request, stream)`` per connection."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def serve(stream: trio.abc.Stream) -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, stream)
            await handler(request, stream)
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, serve, listeners)
        yield f"ws://127.0.0.1:{port}/v3/ws"
        nursery.cancel_scope.cancel()


@limited
async def test_an_upstream_refusal_reaches_the_client_and_writes_nothing(tmp_path: Path) -> None:
    async def refuse(request: WebSocketRequest, _: trio.abc.Stream) -> None:
        await request.reject(403, body=b"no entry")

    async with upstream(refuse) as up, recording(tmp_path / "rec.jsonl", up) as url:
        with pytest.RaisesGroup(ConnectionRejected) as info:
            await stream(f"{url}?sample_rate=16000", b"")
    [rejected] = info.value.exceptions
    assert isinstance(rejected, ConnectionRejected)
    assert (rejected.status_code, rejected.body) == (403, b"no entry")
    assert list(tmp_path.iterdir()) == []


@limited
async def test_an_unreachable_upstream_is_a_502(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = f"ws://127.0.0.1:{port}/v3/ws"
    async with recording(tmp_path / "rec.jsonl", gone) as url:
        with pytest.RaisesGroup(ConnectionRejected) as info:
            await stream(f"{url}?sample_rate=16000", b"")
    [rejected] = info.value.exceptions
    assert isinstance(rejected, ConnectionRejected)
    assert rejected.status_code == 502
    assert rejected.body == b"aai-replay record: can't connect to the upstream server\n"
    assert list(tmp_path.iterdir()) == []


@limited
async def test_odd_frames_and_a_close_by_the_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str | bytes] = []
    upstream_closed: list[CloseReason | None] = []

    async def chatty(request: WebSocketRequest, _: trio.abc.Stream) -> None:
        ws = await request.accept()
        await ws.send_message('{"type":"Begin","id":"x","expires_at":1}')
        await ws.send_message("not json {")
        await ws.send_message(b"\x00\x01")  # binary from a server: forwarded, not recorded
        await ws.send_message("[1, 2]")
        try:
            while True:
                seen.append(await ws.get_message())
        except ConnectionClosed:
            upstream_closed.append(ws.closed)

    out = tmp_path / "rec.jsonl"
    async with upstream(chatty) as up, recording(out, up, save_audio=True) as url:
        target = f"{url}?sample_rate=8000&encoding=pcm_mulaw&token={TOKEN}"
        async with connect(target) as ws:
            got = [await ws.get_message() for _ in range(4)]
            await ws.send_message(b"\xff" * 400)
            await ws.send_message('{"type": "KeepAlive"}')
            await ws.aclose(4001, "bye now")
    assert got == ['{"type":"Begin","id":"x","expires_at":1}', "not json {", b"\x00\x01", "[1, 2]"]
    assert seen == [b"\xff" * 400, '{"type": "KeepAlive"}']
    assert [(c.code, c.reason) for c in upstream_closed if c is not None] == [(4001, "bye now")]
    recorded = load_session(out)
    kinds = [type(e).__name__ for e in recorded.entries]
    assert kinds == [
        "ServerMessage",
        "ServerRaw",
        "ServerRaw",
        "ClientAudio",
        "ClientMessage",
        "Close",
    ]
    raw = [e.text for e in recorded.entries if isinstance(e, ServerRaw)]
    assert raw == ["not json {", "[1, 2]"]
    assert recorded.close == Close(recorded.entries[-1].t, 4001, "bye now", "client")
    # pcm_mulaw is written as it came, in a .raw sidecar.
    assert recorded.header.audio == "rec.raw"
    assert recorded.audio_bytes() == b"\xff" * 400
    assert recorded.header.request.query == {"sample_rate": "8000", "encoding": "pcm_mulaw"}
    assert "binary frame (2 bytes)" in caplog.text


@limited
async def test_stopping_the_recorder_closes_live_sessions_with_1001(tmp_path: Path) -> None:
    accepted = trio.Event()
    upstream_closed: list[CloseReason | None] = []

    async def silent(request: WebSocketRequest, _: trio.abc.Stream) -> None:
        ws = await request.accept()
        await ws.send_message('{"type":"Begin","id":"x","expires_at":1}')
        accepted.set()
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed:
            upstream_closed.append(ws.closed)

    out = tmp_path / "rec.jsonl"
    recorder_scope = trio.CancelScope()

    async def run_recorder(*, task_status: trio.TaskStatus[str]) -> None:
        with recorder_scope:
            await record(out, upstream=up, save_audio=True, task_status=task_status)

    async with upstream(silent) as up, trio.open_nursery() as nursery:
        url = await nursery.start(run_recorder)
        async with connect(f"{url}?sample_rate=16000") as ws:
            assert json.loads(await ws.get_message())["type"] == "Begin"
            await ws.send_message(b"\x00" * 3200)
            await accepted.wait()
            recorder_scope.cancel()
            with pytest.raises(ConnectionClosed):
                await ws.get_message()
            closed = ws.closed
    assert closed is not None
    assert (closed.code, closed.reason) == (1001, "recorder stopped")
    assert [(c.code, c.reason) for c in upstream_closed if c is not None] == [
        (1001, "recorder stopped")
    ]
    recorded = load_session(out)
    assert recorded.close == Close(recorded.entries[-1].t, 1001, "recorder stopped", "server")
    assert recorded.audio_bytes() == b"\x00" * 3200


@limited
async def test_stopping_the_recorder_while_the_upstream_stalls(tmp_path: Path) -> None:
    # An upstream that takes the TCP connection and never answers the upgrade.
    arrived = trio.Event()

    async def stall(stream: trio.abc.Stream) -> None:
        arrived.set()
        await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    recorder_scope = trio.CancelScope()

    async def run_recorder(*, task_status: trio.TaskStatus[str]) -> None:
        with recorder_scope:
            await record(
                tmp_path / "rec.jsonl",
                upstream=f"ws://127.0.0.1:{port}/v3/ws",
                task_status=task_status,
            )

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, stall, listeners)
        url = urlsplit(await nursery.start(run_recorder))
        assert url.hostname is not None
        assert url.port is not None
        # A bare HTTP upgrade request (trio-websocket's own client would wait forever
        # for an answer that never comes).
        client = await trio.open_tcp_stream(url.hostname, url.port)
        async with client:
            await client.send_all(
                b"GET /v3/ws?sample_rate=16000 HTTP/1.1\r\n"
                + f"Host: {url.netloc}\r\n".encode()
                + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            await arrived.wait()
            recorder_scope.cancel()
            # Stopping hangs up on the client at once, with no answer.
            assert await client.receive_some() == b""
        nursery.cancel_scope.cancel()
    assert list(tmp_path.iterdir()) == []


@limited
async def test_an_upstream_that_vanishes_is_a_1011_for_the_client(tmp_path: Path) -> None:
    async def vanish(request: WebSocketRequest, stream: trio.abc.Stream) -> None:
        ws: WebSocketConnection = await request.accept()
        await ws.send_message('{"type":"Begin","id":"x","expires_at":1}')
        await ws.get_message()
        await trio.aclose_forcefully(stream)  # no close frame

    out = tmp_path / "rec.jsonl"
    async with upstream(vanish) as up, recording(out, up) as url:
        received, closed = await stream(f"{url}?sample_rate=16000", b"\x00" * 1600)
    assert closed is not None
    assert (closed.code, closed.reason) == (1011, "upstream connection lost")
    assert [json.loads(m)["type"] for m in received] == ["Begin"]
    recorded = load_session(out)
    close = recorded.close
    assert close is not None
    assert (close.code, close.reason, close.by) == (1011, "upstream connection lost", "server")


def test_close_codes_that_cannot_be_sent_are_mapped() -> None:
    assert _close_for_client(CloseReason(1000, "Session Ended")) == (1000, "Session Ended")
    assert _close_for_client(CloseReason(3005, None)) == (3005, "")
    assert _close_for_client(CloseReason(1005, None)) == (1000, "")
    assert _close_for_client(CloseReason(1006, None)) == (1011, "upstream connection lost")
    assert _close_for_client(CloseReason(1015, None)) == (1011, "upstream connection lost")
    assert _close_for_client(None) == (1011, "upstream connection lost")
    assert _close_for_upstream(1000, "") == (1000, "")
    assert _close_for_upstream(4001, "bye") == (4001, "bye")
    assert _close_for_upstream(1005, "") == (1000, "")
    assert _close_for_upstream(1006, "") == (1001, "client went away")


@limited
async def test_a_bad_upstream_url_is_refused_at_once(tmp_path: Path) -> None:
    for bad in ("http://example.com/v3/ws", "ws:///v3/ws", "streaming.assemblyai.com"):
        with pytest.raises(ValueError, match="upstream must be a ws:// or wss:// URL with a host"):
            await record(tmp_path / "x.jsonl", upstream=bad)
    with pytest.raises(ValueError, match=r"token=\*\*\*"):
        await record(tmp_path / "x.jsonl", upstream=f"http://h/?token={TOKEN}")


def test_session_writer_refusals_do_not_stop_a_recording(tmp_path: Path) -> None:
    # A frame holding an "Authorization" key is refused by the session writer: a
    # server message is left out, a client message is recorded as its type only,
    # and both are forwarded all the same (checked without sockets).
    from aai_replay import Header, Request, SessionWriter
    from aai_replay._record import FrameRelay

    path = tmp_path / "s.jsonl"
    notes: list[str] = []
    relay = FrameRelay(
        SessionWriter(path, Header(Request("/v3/ws", {}))),
        target="/v3/ws?sample_rate=16000",
        on_note=notes.append,
    )
    begin = '{"type": "Begin", "id": "x", "expires_at": 1}'
    leaky_turn = '{"type": "Turn", "Authorization": "leak"}'
    leaky_update = '{"type": "UpdateConfiguration", "authorization": "leak"}'
    assert relay.server_frame(begin, 0.0).name == "forwarded, recorded server"
    outcome = relay.server_frame(leaky_turn, 0.1)
    assert (outcome.forward, outcome.recorded) == (leaky_turn, None)
    outcome = relay.client_frame(leaky_update, 0.2)
    assert (outcome.forward, outcome.recorded) == (leaky_update, "client")
    assert relay.close(1000, "Session Ended", "server", 0.3)
    assert not relay.close(1000, "again", "client", 0.4)
    assert relay.server_frame('{"type": "late"}', 0.5).name == "dropped, not recorded"
    assert relay.client_frame(b"late", 0.6).name == "dropped, not recorded"
    relay.finish()
    relay.finish()  # idempotent
    text = path.read_text()
    session = load_session(path)
    assert "leak" not in text
    assert [type(e).__name__ for e in session.entries] == [
        "ServerMessage",
        "ClientMessage",
        "Close",
    ]
    assert session.entries[1] == ClientMessage(0.2, {"type": "UpdateConfiguration"})
    assert [n.split(":")[0] for n in notes] == [
        "a server message not recorded",
        "a client message recorded as its type only",
    ]
    assert all("credentials present" in n and "leak" not in n for n in notes)


@pytest.mark.parametrize("save_audio", [False, True])
@limited
async def test_a_session_file_that_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, save_audio: bool
) -> None:
    # The folder is checked at start (see test_record_hardening); one removed after
    # that fails the first session.
    original = load_session(FIXTURES / "synth-plain.jsonl")
    out = tmp_path / "vanishing-folder" / "rec.jsonl"
    out.parent.mkdir()
    async with (
        open_replay_server(original) as upstream_server,
        recording(out, upstream_server.url, save_audio=save_audio) as url,
    ):
        out.parent.rmdir()
        received, closed = await stream(f"{url}?{query_of(original)}", original.audio_bytes())
    assert closed is not None
    assert (closed.code, closed.reason) == (1011, "aai-replay record can't write the session file")
    sidecar = out.with_suffix(".wav") if save_audio else out
    assert f"session 1: can't write {sidecar}: No such file or directory" in caplog.text
    assert not out.parent.exists()
    # The upstream's Begin may have been on its way; nothing else came.
    assert [json.loads(m)["type"] for m in received] in ([], ["Begin"])


@limited
async def test_an_upstream_that_hangs_up_during_the_upgrade_is_a_502(tmp_path: Path) -> None:
    async def hang_up(stream: trio.abc.Stream) -> None:
        await stream.receive_some()
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, hang_up, listeners)
        async with recording(tmp_path / "rec.jsonl", f"ws://127.0.0.1:{port}/v3/ws") as url:
            with pytest.RaisesGroup(ConnectionRejected) as info:
                await stream(f"{url}?sample_rate=16000", b"")
        nursery.cancel_scope.cancel()
    [rejected] = info.value.exceptions
    assert isinstance(rejected, ConnectionRejected)
    assert rejected.status_code == 502
    assert list(tmp_path.iterdir()) == []


@limited
async def test_a_failing_connection_is_logged_without_secrets_and_others_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aai_replay._record import _Recorder

    proxy = _Recorder._proxy
    calls = 0

    async def fail_once(self: _Recorder, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError(f"something broke near {TOKEN} and {KEY}")
        await proxy(self, *args)

    monkeypatch.setattr(_Recorder, "_proxy", fail_once)
    original = load_session(FIXTURES / "synth-plain.jsonl")
    out = tmp_path / "rec.jsonl"
    async with (
        open_replay_server(original) as upstream_server,
        recording(out, upstream_server.url) as url,
    ):
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        # A bare upgrade request: the failing connection is hung up on.
        async with await trio.open_tcp_stream(parts.hostname, parts.port) as bare:
            await bare.send_all(
                f"GET /v3/ws?sample_rate=16000&token={TOKEN} HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\nAuthorization: {KEY}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            assert await bare.receive_some() == b""
        # The next connection is served and recorded.
        _, closed = await stream(f"{url}?{query_of(original)}", original.audio_bytes())
    assert closed is not None
    assert closed.code == 1000
    assert "connection failed: RuntimeError: something broke near *** and ***" in caplog.text
    assert TOKEN not in caplog.text
    assert KEY not in caplog.text
    assert server_json(load_session(out)) == server_json(original)


def test_an_unreadable_query_gets_a_raw_sidecar(tmp_path: Path) -> None:
    from aai_replay._record import _AudioSink

    sink = _AudioSink(tmp_path / "s.jsonl", {"sample_rate": "fast", "encoding": "pcm_s16le"})
    sink.write(b"\x01\x02")
    sink.close()
    sink.close()  # idempotent
    assert sink.path == tmp_path / "s.raw"
    assert sink.path.read_bytes() == b"\x01\x02"
