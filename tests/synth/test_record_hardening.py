"""The recorder proxy under frames it can't write, credentials, kills and bad ``--out`` paths.

Issue 13: one legal frame (a lone surrogate escape, deep nesting) used to end a
recording with 1011; a key in the upstream URL reached the log and the Host
header; a killed recording's WAV header said it held no audio; a bad ``--out``
failed at the first client instead of at start.

Everything listens on 127.0.0.1, port 0, and is stopped by the test that started
it; every test is bounded in time. The upstream is a small trio-websocket server
written here; the client is a raw trio-websocket client.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import wave
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    WebSocketRequest,
)

from aai_replay import ClientAudio, ClientMessage, Close, ServerMessage, ServerRaw, load_session
from aai_replay._record import OutputPathError, record
from tests._websocket import connect
from tests.synth.test_record import KEY, TOKEN, limited, recording, upstream

BEGIN = '{"type":"Begin","id":"x","expires_at":1}'
# Valid JSON texts a peer may send: a lone surrogate is a legal \u escape in JSON.
LONE_SERVER = (
    '{"turn_order":0,"turn_is_formatted":false,"end_of_turn":false,'
    '"transcript":"\\ud800","end_of_turn_confidence":0,"words":[],"type":"Turn"}'
)
LONE_CLIENT = '{"type":"UpdateConfiguration","prompt":"\\udc00"}'
DEEP = 100_000
DEEP_CLIENT = '{"type":"KeepAlive","x":' + "[" * DEEP + "]" * DEEP + "}"
ERROR_REASON = "See Error message for details"


class Upstream:
    """A fake service: ``Begin``, then the frames given, then it reads until the close."""

    def __init__(self, *frames: str | bytes) -> None:
        self.frames = frames
        self.seen: list[str | bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.target = ""
        self.closed: CloseReason | None = None
        self.done = trio.Event()
        self.got_frame = trio.Event()

    async def __call__(self, request: WebSocketRequest, _: trio.abc.Stream) -> None:
        self.headers = list(request.headers)
        self.target = request.path
        ws = await request.accept()
        try:
            await ws.send_message(BEGIN)
            for frame in self.frames:
                await ws.send_message(frame)
            while True:
                self.seen.append(await ws.get_message())
                self.got_frame.set()
                self.got_frame = trio.Event()
        except ConnectionClosed:
            self.closed = ws.closed
        finally:
            self.done.set()


async def _drain(ws: Any) -> list[str | bytes]:
    got: list[str | bytes] = []
    try:
        while True:
            got.append(await ws.get_message())
    except ConnectionClosed:
        return got


# -- task 1: a legal frame never kills a recording ------------------------------------------


@limited
async def test_a_server_message_with_a_lone_surrogate_is_forwarded_and_recorded(
    tmp_path: Path,
) -> None:
    up = Upstream(LONE_SERVER)
    out = tmp_path / "rec.jsonl"
    async with upstream(up) as up_url, recording(out, up_url) as url:
        async with connect(f"{url}?sample_rate=16000") as ws:
            got = [await ws.get_message() for _ in range(2)]
            await ws.send_message('{"type": "KeepAlive"}')
            await ws.aclose(1000, "done")
        await up.done.wait()
    # Forwarded unchanged, and the session went on.
    assert got == [BEGIN, LONE_SERVER]
    assert up.seen == ['{"type": "KeepAlive"}']
    recorded = load_session(out)
    turn = recorded.entries[1]
    # A writer that escapes lone surrogates records the message; one that can't
    # falls back to the frame's text, verbatim.
    if isinstance(turn, ServerMessage):
        assert turn.message == json.loads(LONE_SERVER)
    else:
        assert turn == ServerRaw(turn.t, LONE_SERVER)
    assert recorded.close == Close(recorded.entries[-1].t, 1000, "done", "client")


@limited
async def test_a_client_message_with_a_lone_surrogate_is_forwarded_and_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    up = Upstream()
    out = tmp_path / "rec.jsonl"
    async with upstream(up) as up_url, recording(out, up_url) as url:
        async with connect(f"{url}?sample_rate=16000") as ws:
            assert await ws.get_message() == BEGIN
            await ws.send_message(LONE_CLIENT)
            await ws.send_message('{"type": "Terminate"}')
            await ws.aclose(1000, "done")
        await up.done.wait()
    assert up.seen == [LONE_CLIENT, '{"type": "Terminate"}']
    recorded = load_session(out)
    controls = [e.message for e in recorded.entries if isinstance(e, ClientMessage)]
    # The whole message if the writer can write it, else its type (what the replay
    # server's gates need), with a note in the log.
    assert controls[0] in (json.loads(LONE_CLIENT), {"type": "UpdateConfiguration"})
    if controls[0] == {"type": "UpdateConfiguration"}:
        assert "recorded as its type only" in caplog.text
    assert controls[1] == {"type": "Terminate"}
    assert recorded.close == Close(recorded.entries[-1].t, 1000, "done", "client")


@pytest.mark.parametrize(
    "frame",
    [DEEP_CLIENT, "hello?", "[]", '{"type": "Hello"}', '{"type":"KeepAlive","x":NaN}'],
    ids=["deep", "not-json", "array", "unknown-type", "nan"],
)
@limited
async def test_a_client_message_the_service_refuses_is_answered_as_the_service_does(
    tmp_path: Path, frame: str
) -> None:
    up = Upstream()
    out = tmp_path / "rec.jsonl"
    async with upstream(up) as up_url, recording(out, up_url) as url:
        async with connect(f"{url}?sample_rate=16000") as ws:
            assert await ws.get_message() == BEGIN
            await ws.send_message(b"\x00" * 3200)
            await ws.send_message(frame)
            got = await _drain(ws)
            closed = ws.closed
        await up.done.wait()
    # The client gets the service's answer: Error 3006, then the close 3006.
    [error] = got
    answer = json.loads(error)
    assert (answer["type"], answer["error_code"]) == ("Error", 3006)
    assert answer["error"].startswith("Invalid client message: ")
    assert closed is not None
    assert (closed.code, closed.reason) == (3006, ERROR_REASON)
    # The refused frame never reached the service, which was told the client is gone.
    assert up.seen == [b"\x00" * 3200]
    assert up.closed is not None
    assert up.closed.code == 1001
    recorded = load_session(out)
    kinds = [type(e).__name__ for e in recorded.entries]
    assert kinds == ["ServerMessage", "ClientAudio", "ServerMessage", "Close"]
    last = recorded.entries[-2]
    assert isinstance(last, ServerMessage)
    assert dict(last.message) == answer
    assert recorded.close == Close(recorded.entries[-1].t, 3006, ERROR_REASON, "server")


@limited
async def test_a_frame_too_long_is_a_3007(tmp_path: Path) -> None:
    up = Upstream()
    out = tmp_path / "rec.jsonl"
    async with upstream(up) as up_url, recording(out, up_url, save_audio=True) as url:
        async with connect(f"{url}?sample_rate=16000") as ws:
            assert await ws.get_message() == BEGIN
            await ws.send_message(b"\x00" * 32_002)  # 1000.0625 ms
            got = await _drain(ws)
            closed = ws.closed
        await up.done.wait()
    assert [json.loads(m)["error_code"] for m in got] == [3007]
    assert closed is not None
    assert closed.code == 3007
    assert up.seen == []
    recorded = load_session(out)
    # What the client sent is recorded, refused or not.
    assert [e.nbytes for e in recorded.entries if isinstance(e, ClientAudio)] == [32_002]
    assert recorded.audio_bytes() == b"\x00" * 32_002


# -- task 3: credentials -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        f"ws://user:{KEY}@127.0.0.1:1/v3/ws",
        f"wss://{KEY}@streaming.assemblyai.com/v3/ws",
        f"ws://:{KEY}@127.0.0.1/v3/ws",
        f"http://user:{KEY}@127.0.0.1/v3/ws",
        f"ws://user:{KEY}@127.0.0.1:99999/v3/ws",
    ],
)
@limited
async def test_an_upstream_url_with_credentials_is_refused_before_listening(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    caplog.set_level(logging.DEBUG)
    # Raised at once: a recorder that listened would never return.
    with pytest.raises(ValueError, match="user name or password") as info:
        await record(tmp_path / "rec.jsonl", upstream=bad)
    text = str(info.value)
    assert "user name or password" in text
    assert KEY not in text
    assert KEY not in caplog.text
    assert list(tmp_path.iterdir()) == []


@limited
async def test_a_bad_upstream_port_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid port") as info:
        await record(tmp_path / "rec.jsonl", upstream=f"ws://127.0.0.1:99999/v3/ws?token={TOKEN}")
    assert TOKEN not in str(info.value)


# A token whose URL-encoded form differs from it: both forms must stay out.
ODD_TOKEN = "tmp/token+77==SECRET&x"


def _secrets() -> list[str]:
    return [KEY, ODD_TOKEN, quote(ODD_TOKEN, safe=""), quote(ODD_TOKEN, safe="").lower()]


def _assert_clean(text: str) -> None:
    for secret in _secrets():
        assert secret not in text


@limited
async def test_credentials_never_reach_the_log_the_files_or_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = [(b"Authorization", KEY.encode())]
    query = f"sample_rate=16000&token={quote(ODD_TOKEN, safe='')}"
    seen_errors: list[str] = []
    out = tmp_path / "rec.jsonl"

    # A session: audio, a refused frame (the Error path), the close.
    up = Upstream()
    async with upstream(up) as up_url, recording(out, up_url, save_audio=True) as url:
        async with connect(f"{url}?{query}", headers) as ws:
            assert await ws.get_message() == BEGIN
            await ws.send_message(b"\x00" * 3200)
            await ws.send_message('{"type": "Bad", "token": "x"}')
            got = await _drain(ws)
            assert ws.closed is not None
            seen_errors += [*map(str, got), ws.closed.reason or ""]
        await up.done.wait()
    # The credentials did reach the service (the header, and the query's token).
    assert (b"authorization", KEY.encode()) in [(k.lower(), v) for k, v in up.headers]
    assert f"token={quote(ODD_TOKEN, safe='')}" in up.target

    # An upstream that refuses, one that can't be reached, one that hangs up.
    async def refuse(request: WebSocketRequest, _: trio.abc.Stream) -> None:
        await request.reject(403, body=b"no entry")

    async def hang_up(request: WebSocketRequest, stream: trio.abc.Stream) -> None:
        await trio.aclose_forcefully(stream)

    for handler in (refuse, hang_up):
        async with upstream(handler) as up_url, recording(out, up_url) as url:
            with pytest.RaisesGroup(ConnectionRejected) as info:
                async with connect(f"{url}?{query}", headers):
                    pass
            seen_errors += [repr(e) for e in info.value.exceptions]
            seen_errors += [str(e) for e in info.value.exceptions]
    async with recording(out, "ws://127.0.0.1:1/v3/ws") as url:
        with pytest.RaisesGroup(ConnectionRejected) as info:
            async with connect(f"{url}?{query}", headers):
                pass
        seen_errors += [repr(e) for e in info.value.exceptions]

    for text in seen_errors:
        _assert_clean(text)
    _assert_clean(caplog.text)
    for record_ in caplog.records:
        _assert_clean(record_.getMessage())
    for path in tmp_path.iterdir():
        _assert_clean(path.read_bytes().decode("utf-8", "replace"))
    # The checks above looked at something.
    assert "session 1: recording to" in caplog.text
    assert "connection refused" in caplog.text


# -- task 4: a killed recording's WAV sidecar -----------------------------------------------


@limited
async def test_the_wav_sidecar_of_a_recording_killed_mid_session_holds_its_audio(
    tmp_path: Path,
) -> None:
    # What a kill (SIGKILL, a crash) leaves is what is on disk while the session is
    # live: read the sidecar then, before any close or finalizer runs.
    up = Upstream()
    out = tmp_path / "rec.jsonl"
    frames = [bytes([i]) * n for i, n in enumerate((3200, 1601, 4799, 32000))]
    async with (
        upstream(up) as up_url,
        recording(out, up_url, save_audio=True) as url,
        connect(f"{url}?sample_rate=16000") as ws,
    ):
        assert await ws.get_message() == BEGIN
        sent = b""
        for frame in frames:
            got = up.got_frame
            await ws.send_message(frame)
            await got.wait()  # the recorder wrote it before forwarding it
            sent += frame
            with wave.open(str(out.with_suffix(".wav")), "rb") as wav:
                assert wav.getnframes() == len(sent) // 2
                assert wav.readframes(wav.getnframes()) == sent[: len(sent) // 2 * 2]
        # The session file too: everything so far, loadable, no close yet.
        live = load_session(out)
        assert live.close is None
        assert [e.nbytes for e in live.entries if isinstance(e, ClientAudio)] == [
            len(f) for f in frames
        ]
        assert live.audio_bytes() == sent[: len(sent) // 2 * 2]


def test_the_wav_sidecar_is_right_after_every_write_without_a_close(tmp_path: Path) -> None:
    from aai_replay._record import _AudioSink

    sink = _AudioSink(tmp_path / "s.jsonl", {"sample_rate": "8000"})
    written = b""
    for frame in (b"", b"\x01\x02" * 400, b"\x03", b"\x04" * 1999):
        sink.write(frame)
        written += frame
        # Never closed: the file as a kill would leave it.
        with wave.open(str(sink.path), "rb") as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
            assert wav.getnframes() == len(written) // 2
            assert wav.readframes(wav.getnframes()) == written[: len(written) // 2 * 2]
    sink.close()
    with wave.open(str(sink.path), "rb") as wav:
        assert wav.getnframes() == len(written) // 2


# -- task 5: --out is checked at start --------------------------------------------------------


async def _start(out: Path) -> None:
    """Start a recorder on ``out`` and stop it at once: a failure to start is raised as it is."""
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(record, out, upstream="ws://127.0.0.1:1/v3/ws"))
        nursery.cancel_scope.cancel()


async def _refused(out: Path, **options: Any) -> OutputPathError:
    """The error ``record`` raises at once (a recorder that listened would never return)."""
    with pytest.raises(OutputPathError) as info:
        await record(out, upstream="ws://127.0.0.1:1/v3/ws", **options)
    return info.value


@limited
async def test_a_missing_folder_is_an_error_at_start(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "rec.jsonl"
    error = await _refused(out)
    assert error.path == out
    assert str(error) == (
        f"can't record to {str(out)!r}: the folder {str(out.parent)!r} does not exist"
    )
    assert not out.parent.exists()


@limited
async def test_a_folder_as_out_is_an_error_at_start(tmp_path: Path) -> None:
    assert str(await _refused(tmp_path)) == (
        f"can't record to {str(tmp_path)!r}: it is a folder, not a file"
    )
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "rec.jsonl"
    assert str(await _refused(out)) == (
        f"can't record to {str(out)!r}: {str(out.parent)!r} is not a folder"
    )
    # The audio sidecar's name is checked too, with --save-audio.
    (tmp_path / "rec.wav").mkdir()
    out = tmp_path / "rec.jsonl"
    await _start(out)
    assert str(await _refused(out, save_audio=True)) == (
        f"can't record to {str(out)!r}: its audio file {str(tmp_path / 'rec.wav')!r} "
        "is a folder, not a file"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
@limited
async def test_an_unwritable_folder_or_file_is_an_error_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "rec.jsonl").write_text("")
    (folder / "rec.jsonl").chmod(stat.S_IRUSR)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        error = await _refused(folder / "rec.jsonl")
        assert str(error).endswith("it can't be written: Permission denied")
        error = await _refused(folder / "other.jsonl")
        assert str(error).endswith(
            f"the folder {str(folder)!r} can't be written to: Permission denied"
        )
    finally:
        folder.chmod(stat.S_IRWXU)


def _unwritable_system_folder() -> Path | None:
    """A folder even root can't create a file in (sysfs), if this system has one."""
    probe = Path("/sys/aai-replay-probe.jsonl")
    try:
        probe.open("xb").close()
    except PermissionError:
        return probe.parent
    except OSError:
        return None
    probe.unlink()
    return None


@pytest.mark.skipif(_unwritable_system_folder() is None, reason="no read-only folder here")
@limited
async def test_a_read_only_system_folder_is_an_error_at_start() -> None:
    folder = _unwritable_system_folder()
    assert folder is not None
    error = await _refused(folder / "rec.jsonl")
    assert str(error).endswith(f"the folder {str(folder)!r} can't be written to: Permission denied")


@limited
async def test_a_good_out_path_leaves_nothing_behind_until_a_client_comes(tmp_path: Path) -> None:
    await _start(tmp_path / "rec.jsonl")
    (tmp_path / "old.jsonl").write_text("keep me")
    await _start(tmp_path / "old.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.jsonl"]
    assert (tmp_path / "old.jsonl").read_text() == "keep me"


@pytest.mark.parametrize("rate", ["2147483648", "3000000000", "9" * 30])
def test_a_sample_rate_no_wav_header_can_say_gets_a_raw_sidecar(tmp_path: Path, rate: str) -> None:
    from aai_replay._record import _AudioSink

    sink = _AudioSink(tmp_path / "s.jsonl", {"sample_rate": rate})
    sink.write(b"\x01\x02\x03")
    sink.close()
    assert sink.path == tmp_path / "s.raw"
    assert sink.path.read_bytes() == b"\x01\x02\x03"


@limited
async def test_a_query_parameter_named_authorization_is_not_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    up = Upstream()
    out = tmp_path / "rec.jsonl"
    async with upstream(up) as up_url, recording(out, up_url) as url:
        async with connect(f"{url}?sample_rate=16000&Authorization={KEY}") as ws:
            assert await ws.get_message() == BEGIN
            await ws.aclose(1000, "done")
        await up.done.wait()
    assert f"Authorization={KEY}" in up.target  # passed on, as the client sent it
    recorded = load_session(out)
    assert recorded.header.request.query == {"sample_rate": "16000"}
    assert recorded.close == Close(recorded.entries[-1].t, 1000, "done", "client")
    assert KEY not in out.read_text()
    assert KEY not in caplog.text


@limited
async def test_a_failing_connection_masks_a_token_as_sent_and_as_decoded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aai_replay._record import _Recorder

    encoded = quote(ODD_TOKEN, safe="")

    async def fail(self: _Recorder, *args: Any) -> None:
        raise RuntimeError(f"broke on /v3/ws?token={encoded} ({ODD_TOKEN}), key {KEY}")

    monkeypatch.setattr(_Recorder, "_proxy", fail)
    async with recording(tmp_path / "rec.jsonl", "ws://127.0.0.1:1/v3/ws") as url:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        # A bare upgrade request: the failing connection is hung up on.
        async with await trio.open_tcp_stream(parts.hostname, parts.port) as bare:
            await bare.send_all(
                f"GET /v3/ws?sample_rate=16000&token={encoded} HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\nAuthorization: {KEY}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            assert await bare.receive_some() == b""
    assert (
        "connection failed: RuntimeError: broke on /v3/ws?token=*** (***), key ***" in caplog.text
    )
    _assert_clean(caplog.text)
