"""The ``aai-proto stream`` command and the asyncio example, end to end.

Each test runs a scripted trio-websocket server on 127.0.0.1 (port 0) in its own
nursery, and the program in a worker thread -- ``main()`` starts its own event loop,
trio's or asyncio's -- so both run in this process, output captured by capsys.
Every ``stream`` test runs once per ``--runtime`` and expects the same output of both.
"""

from __future__ import annotations

import importlib.util
import io
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from types import ModuleType

import attrs
import pytest
import trio
import trio_websocket
from trio_websocket import WebSocketConnection, WebSocketRequest

import aai_proto as aai
from aai_proto.trio import _cli
from tests.trio.conftest import WavMaker

KEY = "sk-test-SECRET-KEY-0123"
TOKEN = "tok-SECRET-TOKEN-4567"
BEGIN = aai.Begin(id="session-1", expires_at=1759796682)
ERROR_3007 = aai.ServerError(
    error_code=3007, error="Input duration violation: 20 ms. Expected between 50 and 1000 ms"
)
EXAMPLE = Path(__file__).parents[2] / "examples" / "asyncio_client.py"

Handler = Callable[[WebSocketRequest], Awaitable[None]]


def turn(order: int, text: str, *, end: bool = False, formatted: bool = False) -> str:
    return aai.dump_server_message(
        aai.Turn(
            turn_order=order,
            turn_is_formatted=formatted,
            end_of_turn=end,
            transcript=text,
            end_of_turn_confidence=1.0 if end else 0.5,
            words=(),
        )
    )


# Sent after the first, second and third audio frame, then in answer to Terminate.
DURING_AUDIO = [
    [turn(0, ""), turn(0, "hello")],  # the first partial often has no text yet
    [turn(0, "hello world")],
    [turn(0, "hello world", end=True), turn(0, "Hello world.", end=True, formatted=True)],
]
AT_END = [turn(1, "bye"), turn(1, "Bye.", end=True, formatted=True)]


@attrs.define
class Transcriber:
    """A server that answers audio with scripted turns, as the service would."""

    paths: list[str] = attrs.Factory(list)
    authorization: list[bytes] = attrs.Factory(list)
    audio: bytearray = attrs.Factory(bytearray)
    end: str = "termination"  # or "close": close 1000 without Termination
    abandoned: trio_websocket.CloseReason | None = None  # the client left before Terminate
    done: trio.Event = attrs.Factory(trio.Event)

    async def __call__(self, request: WebSocketRequest) -> None:
        try:
            await self._serve(request)
        finally:
            self.done.set()

    async def _serve(self, request: WebSocketRequest) -> None:
        self.paths.append(request.path)
        self.authorization.append(dict(request.headers).get(b"authorization", b""))
        ws = await accept(request)
        frames = 0
        try:
            while isinstance(message := await ws.get_message(), bytes):
                self.audio += message
                if frames < len(DURING_AUDIO):
                    await send_all(ws, DURING_AUDIO[frames])
                frames += 1
        except trio_websocket.ConnectionClosed as exc:
            self.abandoned = exc.reason
            return
        assert message == '{"type":"Terminate"}'
        if self.end == "close":
            await ws.aclose(1000, "Session Ended")
            return
        await send_all(ws, AT_END)
        seconds = len(self.audio) // 32000
        termination = aai.Termination(audio_duration_seconds=seconds, session_duration_seconds=2)
        await ws.send_message(aai.dump_server_message(termination))
        await ws.aclose(1000, "Session Ended")


async def send_all(ws: WebSocketConnection, messages: list[str]) -> None:
    for message in messages:
        await ws.send_message(message)


async def accept(request: WebSocketRequest) -> WebSocketConnection:
    """Open the WebSocket and send Begin, as every server here does first."""
    ws = await request.accept()
    await ws.send_message(aai.dump_server_message(BEGIN))
    return ws


async def serve(nursery: trio.Nursery, handler: Handler) -> str:
    """Serve ``handler`` on 127.0.0.1; return the URL to give the program."""
    server = await nursery.start(
        partial(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, ssl_context=None)
    )
    return f"ws://127.0.0.1:{server.port}/v3/ws"


@pytest.fixture(params=["trio", "asyncio"])
def runtime(request: pytest.FixtureRequest) -> str:
    """What ``--runtime`` names: each test that takes it runs on both runtimes."""
    return str(request.param)


async def run_cli(runtime: str, *argv: str) -> int:
    """Run ``aai-proto ARGV --runtime RUNTIME`` in a worker thread; its exit status."""
    return await trio.to_thread.run_sync(_cli.main, [*argv, "--runtime", runtime])


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- aai-proto stream ----------------------------------------------------------------------


async def test_stream_prints_finals_as_lines_when_not_a_terminal(
    nursery: trio.Nursery,
    make_wav: WavMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
) -> None:
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
    server = Transcriber()
    url = await serve(nursery, server)
    path = make_wav(seconds=1.0)
    argv = ["stream", str(path), "--url", url, "--fast", "--param", "format_turns=true"]
    assert await run_cli(runtime, *argv) == 0
    out, err = capsys.readouterr()
    assert out == "Hello world.\nBye.\n"
    assert err == "aai-proto: session session-1 ended: 1 s of audio, 2 s session\n"
    assert server.paths == ["/v3/ws?sample_rate=16000&encoding=pcm_s16le&format_turns=true"]
    assert server.authorization == [KEY.encode()]
    assert bytes(server.audio) == b"\x01\x02" * 16000


async def test_stream_sends_a_raw_file_in_the_encoding_its_params_give(
    nursery: trio.Nursery,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
) -> None:
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
    server = Transcriber()
    url = await serve(nursery, server)
    path = tmp_path / "call.raw"
    path.write_bytes(b"\xff" * 8000)  # 1 s of 8 kHz mu-law
    argv = ["stream", str(path), "--url", url, "--fast"]
    params = ["--param", "encoding=pcm_mulaw", "--param", "sample_rate=8000"]
    assert await run_cli(runtime, *argv, *params) == 0
    assert server.paths == ["/v3/ws?sample_rate=8000&encoding=pcm_mulaw"]
    assert bytes(server.audio) == b"\xff" * 8000
    capsys.readouterr()
    # A raw file says nothing of its rate: without one, the encoding cannot be read.
    assert await run_cli(runtime, *argv, "--param", "encoding=pcm_mulaw") == 2
    assert capsys.readouterr().err == (
        "aai-proto: error: Invalid 'sample_rate': required for encoding 'pcm_mulaw'\n"
    )


def test_python_dash_m_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aai_proto.trio", "stream", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: aai-proto stream ")


async def test_stream_redraws_interim_text_on_a_terminal(
    nursery: trio.Nursery,
    make_wav: WavMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("COLUMNS", "10")
    url = await serve(nursery, Transcriber())
    path = make_wav(seconds=0.2)
    argv = ["stream", str(path), "--url", url, "--token", TOKEN, "--param", "format_turns=true"]
    assert await run_cli(runtime, *argv) == 0  # paced in real time: 0.2 s
    clear = "\r\x1b[2K"
    assert terminal.getvalue() == (
        f"{clear}hello{clear}... world{clear}... world{clear}Hello world.\n{clear}bye{clear}Bye.\n"
    )
    _, err = capsys.readouterr()
    assert err == "aai-proto: session session-1 ended: 0 s of audio, 2 s session\n"


async def test_stream_json_prints_every_event(
    nursery: trio.Nursery, make_wav: WavMaker, capsys: pytest.CaptureFixture[str], runtime: str
) -> None:
    url = await serve(nursery, Transcriber())
    path = make_wav(seconds=1.0)
    assert await run_cli(runtime, "stream", str(path), "--url", url, "--fast", "--json") == 0
    out, _ = capsys.readouterr()
    termination = aai.Termination(audio_duration_seconds=1, session_duration_seconds=2)
    expected = [
        aai.dump_server_message(BEGIN),
        *(message for messages in DURING_AUDIO for message in messages),
        *AT_END,
        aai.dump_server_message(termination),
    ]
    assert out.splitlines() == expected


async def test_stream_keeps_an_interim_line_when_the_session_fails(
    nursery: trio.Nursery,
    make_wav: WavMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)

    async def handler(request: WebSocketRequest) -> None:
        ws = await accept(request)
        await ws.get_message()
        await send_all(ws, [turn(0, "so far"), aai.dump_server_message(ERROR_3007)])
        await ws.aclose(3007, "See Error message for details")

    url = await serve(nursery, handler)
    path = make_wav(seconds=1.0)
    assert (
        await run_cli(runtime, "stream", str(path), "--url", url, "--fast", "--api-key", KEY) == 1
    )
    assert terminal.getvalue() == "\r\x1b[2Kso far\n"
    _, err = capsys.readouterr()
    assert err == (
        "aai-proto: error: 3007 audio chunk duration violation, or audio sent too fast: "
        "Input duration violation: 20 ms. Expected between 50 and 1000 ms\n"
    )


async def test_stream_reports_a_missing_termination(
    nursery: trio.Nursery, make_wav: WavMaker, capsys: pytest.CaptureFixture[str], runtime: str
) -> None:
    url = await serve(nursery, Transcriber(end="close"))
    path = make_wav(seconds=0.1)
    assert await run_cli(runtime, "stream", str(path), "--url", url, "--fast") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "aai-proto: error: session session-1 ended without Termination; "
        "the last transcripts may be missing\n"
    )


@pytest.mark.parametrize("credential", ["--token", "--api-key"])
async def test_stream_hides_credentials_when_rejected(
    nursery: trio.Nursery,
    make_wav: WavMaker,
    capsys: pytest.CaptureFixture[str],
    credential: str,
    runtime: str,
) -> None:
    secret = TOKEN if credential == "--token" else KEY

    async def handler(request: WebSocketRequest) -> None:
        # A server that echoes the request: the body holds the credential twice.
        echoed = dict(request.headers)[b"authorization"]
        await request.reject(401, body=b"Unauthorized: " + echoed + b" ?token=" + echoed)

    url = await serve(nursery, handler)
    path = make_wav(seconds=0.1)
    assert await run_cli(runtime, "stream", str(path), "--url", url, credential, secret) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"aai-proto: error: can't connect to {url}: "
        "the server rejected the WebSocket upgrade with HTTP 401: Unauthorized: *** ?token=***\n"
    )
    assert secret not in err


async def test_stream_shows_why_the_server_rejected_the_upgrade(
    nursery: trio.Nursery, make_wav: WavMaker, capsys: pytest.CaptureFixture[str], runtime: str
) -> None:
    async def handler(request: WebSocketRequest) -> None:
        body = (
            b"404 page not found:\n  no endpoint at " + request.path.encode() + b"\r\n" + b"x" * 300
        )
        await request.reject(404, body=body)

    url = await serve(nursery, handler)
    path = make_wav(seconds=0.1)
    assert (
        await run_cli(runtime, "stream", str(path), "--url", url.replace("/v3/ws", "/v2/ws")) == 1
    )
    out, err = capsys.readouterr()
    assert out == ""
    prefix = (
        f"aai-proto: error: can't connect to {url.replace('/v3/ws', '/v2/ws')}: the server "
        "rejected the WebSocket upgrade with HTTP 404: 404 page not found: no endpoint at "
        "/v2/ws?sample_rate=16000&encoding=pcm_s16le "
    )
    assert err.startswith(prefix)
    assert err.endswith("xxx...\n")
    assert err.count("\n") == 1
    assert len(err) - len(prefix) < 200  # the body is cut short


async def test_stream_warns_of_an_unknown_parameter_and_still_sends_it(
    nursery: trio.Nursery, make_wav: WavMaker, capsys: pytest.CaptureFixture[str], runtime: str
) -> None:
    server = Transcriber()
    url = await serve(nursery, server)
    path = make_wav(seconds=0.1)
    params = ["--param", "format_turn=true", "--param", "zzz=1"]
    assert await run_cli(runtime, "stream", str(path), "--url", url, "--fast", *params) == 0
    _, err = capsys.readouterr()
    assert err.splitlines()[:2] == [
        "aai-proto: warning: 'format_turn' is not a parameter aai-proto knows (did you mean "
        "'format_turns'?); it is sent as given, and the service ignores parameters it does "
        "not know",
        "aai-proto: warning: 'zzz' is not a parameter aai-proto knows; it is sent as given, "
        "and the service ignores parameters it does not know",
    ]
    assert server.paths == ["/v3/ws?sample_rate=16000&encoding=pcm_s16le&format_turn=true&zzz=1"]


async def test_stream_stops_when_standard_output_breaks(
    nursery: trio.Nursery,
    make_wav: WavMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
) -> None:
    class BrokenPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", BrokenPipe())
    server = Transcriber()
    url = await serve(nursery, server)
    path = make_wav(seconds=30.0)  # paced in real time, were it not stopped at once
    start = trio.current_time()
    # Quiet, as a Unix tool whose reader went away, with 128 + SIGPIPE (as a shell shows it).
    assert await run_cli(runtime, "stream", str(path), "--url", url, "--json") == 141
    assert trio.current_time() - start < 10
    _, err = capsys.readouterr()
    assert err == ""
    await server.done.wait()
    assert server.abandoned is not None
    assert server.abandoned.code == 1006  # the socket was closed at once


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["--param", "vad_threshold=2"], 2, "aai-proto: error: Invalid 'vad_threshold': "),
        (["--param", "nonsense"], 2, "argument --param: expected name=value, got 'nonsense'"),
        (["--param", f"token={TOKEN}"], 2, "a token is not a parameter: give it with --token"),
        (["--api-key", KEY, "--token", TOKEN], 2, "not allowed with argument --api-key"),
        (
            ["--param", "sample_rate=8000"],
            1,
            "holds pcm_s16le at 16000 Hz audio; the session expects pcm_s16le at 8000 Hz",
        ),
    ],
)
def test_stream_usage_errors(
    make_wav: WavMaker,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    status: int,
    message: str,
    runtime: str,
) -> None:
    path = make_wav()
    argv = ["stream", str(path), "--url", "ws://127.0.0.1:9/v3/ws", "--runtime", runtime, *argv]
    assert _cli.main(argv) == status
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err
    assert KEY not in err
    assert TOKEN not in err


def test_stream_needs_a_key_for_the_service(
    make_wav: WavMaker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    assert _cli.main(["stream", str(make_wav())]) == 2
    assert capsys.readouterr().err == (
        "aai-proto: error: no API key: give --api-key or --token, or set ASSEMBLYAI_API_KEY\n"
    )


@pytest.mark.parametrize(
    ("wav", "message"),
    [
        (
            "stereo.wav",
            "{tmp}/stereo.wav: 2-channel 16-bit audio; only mono 16-bit PCM (pcm_s16le)",
        ),
        ("missing.wav", "no such file: {tmp}/missing.wav"),
        ("missing.raw", "no such file: {tmp}/missing.raw"),
        ("folder.wav", "{tmp}/folder.wav is a directory, not a file"),
        ("folder.pcm", "{tmp}/folder.pcm is a directory, not a file"),
        ("text.wav", "{tmp}/text.wav: not a PCM WAV file"),
    ],
)
def test_stream_file_errors(
    make_wav: WavMaker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    wav: str,
    message: str,
    runtime: str,
) -> None:
    make_wav("stereo.wav", channels=2)
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "folder.pcm").mkdir()
    (tmp_path / "text.wav").write_text("not audio")
    path = tmp_path / wav
    argv = ["stream", str(path), "--url", "ws://127.0.0.1:9/v3/ws", "--runtime", runtime]
    assert _cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("aai-proto: error: " + message.format(tmp=tmp_path))
    assert "Error" not in err  # words, not Python's class names
    assert err.count("\n") == 1


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"aai-proto {aai.__version__}\n"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["stream", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--realtime" in out
    assert "--runtime {trio,asyncio}" in out


def test_interrupt(
    make_wav: WavMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
) -> None:
    async def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "_stream", interrupted)
    argv = ["stream", str(make_wav()), "--url", "ws://127.0.0.1:9/v3/ws", "--runtime", runtime]
    assert _cli.main(argv) == 130
    assert capsys.readouterr().err == "aai-proto: interrupted\n"


def test_an_unknown_runtime_is_a_usage_error(
    make_wav: WavMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["stream", str(make_wav()), "--url", "ws://127.0.0.1:9/v3/ws", "--runtime", "curio"]
    assert _cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    last = err.splitlines()[-1]
    # argparse's own line; how it quotes the choices varies between Python versions.
    assert last.startswith("aai-proto stream: error: argument --runtime: invalid choice: 'curio'")
    assert "trio" in last
    assert "asyncio" in last


def test_the_runtime_is_trio_by_default(
    make_wav: WavMaker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    async def record(runtime: object, *args: object) -> None:
        seen.append(type(runtime).__name__)
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "_stream", record)
    assert _cli.main(["stream", str(make_wav()), "--url", "ws://127.0.0.1:9/v3/ws"]) == 130
    assert seen == ["_Trio"]
    capsys.readouterr()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("runtime", ["trio", "asyncio"])
async def test_stream_says_the_connection_was_refused(
    make_wav: WavMaker, capsys: pytest.CaptureFixture[str], runtime: str
) -> None:
    port = closed_port()
    url = f"ws://127.0.0.1:{port}/v3/ws"
    assert await run_cli(runtime, "stream", str(make_wav(seconds=0.1)), "--url", url) == 1
    assert capsys.readouterr() == (
        "",
        f"aai-proto: error: can't connect to {url}: all attempts to connect to "
        f"127.0.0.1:{port} failed (Connection refused)\n",
    )


# -- examples/asyncio_client.py ---------------------------------------------------------------


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asyncio_client_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_asyncio_example_streams_a_file(
    nursery: trio.Nursery,
    make_wav: WavMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
    server = Transcriber()
    url = await serve(nursery, server)
    path = make_wav(seconds=1.0)
    example = load_example()
    assert await trio.to_thread.run_sync(example.main, [str(path), "--url", url, "--fast"]) == 0
    out, err = capsys.readouterr()
    assert out == "Hello world.\nBye.\n"
    assert err == "[1 s of audio]\n"
    assert server.paths == ["/v3/ws?sample_rate=16000&encoding=pcm_s16le&format_turns=true"]
    assert server.authorization == [KEY.encode()]
    assert bytes(server.audio) == b"\x01\x02" * 16000


async def test_asyncio_example_reports_a_server_error(
    nursery: trio.Nursery,
    make_wav: WavMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)

    async def handler(request: WebSocketRequest) -> None:
        ws = await accept(request)
        await ws.get_message()
        await ws.send_message(aai.dump_server_message(ERROR_3007))
        await ws.aclose(3007, "See Error message for details")

    url = await serve(nursery, handler)
    path = make_wav(seconds=1.0)
    example = load_example()
    assert await trio.to_thread.run_sync(example.main, [str(path), "--url", url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "error: 3007 audio chunk duration violation, or audio sent too fast: "
        "Input duration violation: 20 ms. Expected between 50 and 1000 ms\n"
    )
