"""The aai-replay command: serve, check, info, synth, record and the demo."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from aai_replay import (
    BackgroundReplayServer,
    ClientAudio,
    ClientMessage,
    Close,
    Header,
    RecordedSession,
    Request,
    ServerMessage,
    load_session,
    write_session,
)
from aai_replay._cli import main, run
from aai_replay._demo import DEFAULT_SESSION, _Printer, find_session
from aai_replay._synth import audio_ref_for, synthesize

QUERY = "?sample_rate=16000&encoding=pcm_s16le"
COMMAND = [sys.executable, "-c", "from aai_replay._cli import main; main()"]


def run_captured(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    status = run(args, out=out)
    return status, out.getvalue()


def silent_wav(path: Path, ms: int) -> None:
    import wave

    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\0" * 32 * ms)


@pytest.fixture
def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AAI_REPLAY_API_KEY", None)
    env["PYTHONWARNINGS"] = "error"
    return env


@pytest.fixture
def serve(command_env: dict[str, str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by a test; any still running at its end are killed."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def start(
    processes: list[subprocess.Popen[str]], args: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    processes.append(process)
    stdout = process.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(stdout.readline()))
    reader.start()
    try:
        first = lines.get(timeout=30)
    except queue.Empty:  # pragma: no cover - a command that never prints its URL
        process.kill()
        pytest.fail("the command printed no URL within 30 s")
    finally:
        reader.join()
    return process, first.rstrip("\n")


# -- serve ----------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_its_url_then_serves_until_a_signal(
    serve: list[subprocess.Popen[str]],
    command_env: dict[str, str],
    sessions_dir: Path,
    sig: signal.Signals,
) -> None:
    process, url = start(serve, ["serve", str(sessions_dir / "synth-plain.jsonl")], command_env)
    assert re.fullmatch(r"ws://127\.0\.0\.1:[0-9]+/v3/ws", url)
    for _ in range(2):
        with connect(url + QUERY) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "Begin"
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert stdout == ""
    assert stderr == ""


def test_serve_writes_a_timing_log_when_asked(
    serve: list[subprocess.Popen[str]],
    command_env: dict[str, str],
    sessions_dir: Path,
    tmp_path: Path,
) -> None:
    log = tmp_path / "timing.log"
    session = sessions_dir / "synth-plain.jsonl"
    process, url = start(serve, ["serve", str(session), "--timing-log", str(log)], command_env)
    with connect(url + QUERY) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "Begin"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    [line] = log.read_text().splitlines()
    connection, gate_opened, sent = line.split()
    assert connection == "1"
    assert 0 <= float(gate_opened) <= float(sent)


def test_serve_reports_a_timing_log_it_cannot_write(
    sessions_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = str(sessions_dir / "synth-plain.jsonl")
    args = ["serve", session, "--timing-log", str(tmp_path / "no" / "such" / "dir.log")]
    status, _ = run_captured(args)
    assert status != 0
    assert "can't write" in capsys.readouterr().err


def test_serve_takes_the_replay_and_fault_options(
    serve: list[subprocess.Popen[str]], command_env: dict[str, str], sessions_dir: Path
) -> None:
    command_env["AAI_REPLAY_API_KEY"] = "from-env"
    args = [
        "serve",
        str(sessions_dir / "synth-plain.jsonl"),
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--api-key",
        "the-key",
        "--strict",
        "--pacing",
        "wall",
        "--speed",
        "100",
        "--inject-error",
        "3005",
        "--error-after",
        "1",
        "--error-text",
        "injected",
        "--send-raw",
        "not json",
        "--raw-after",
        "1",
        "--delay",
        "0",
    ]
    process, url = start(serve, args, command_env)
    # Strict: the request must be the recorded one, parameter for parameter.
    strict_query = QUERY + "&speech_model=universal-streaming-english"
    with connect(url + strict_query, additional_headers={"Authorization": "the-key"}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "Begin"
        assert ws.recv(timeout=10) == "not json"
        assert json.loads(ws.recv(timeout=10)) == {
            "type": "Error",
            "error_code": 3005,
            "error": "injected",
        }
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 3005
    with connect(url + QUERY, additional_headers={"Authorization": "from-env"}) as ws:
        assert json.loads(ws.recv(timeout=10))["error_code"] == 1008
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_serve_drops_connections_when_told(
    serve: list[subprocess.Popen[str]], command_env: dict[str, str], sessions_dir: Path
) -> None:
    args = ["serve", str(sessions_dir / "synth-plain.jsonl"), "--drop-after-messages", "1"]
    process, url = start(serve, args, command_env)
    with connect(url + QUERY) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "Begin"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is None  # no close frame: the connection was dropped
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_serve_reports_a_bad_session_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"aai_session": 3}\n', encoding="utf-8")
    assert run_captured(["serve", str(bad)]) == (1, "")
    assert capsys.readouterr().err == (
        f"aai-replay: error: {bad}:1: unsupported format version 3; this reader knows version 1\n"
    )
    assert run_captured(["serve", str(tmp_path / "none.jsonl")]) == (1, "")
    assert capsys.readouterr().err == (
        f"aai-replay: error: can't read {str(tmp_path / 'none.jsonl')!r}: "
        "No such file or directory\n"
    )


@pytest.fixture
def basic_file(basic_session: RecordedSession, tmp_path: Path) -> Path:
    """``basic_session`` written to a file."""
    path = tmp_path / "s.jsonl"
    write_session(basic_session, path)
    return path


def test_serve_reports_a_busy_port(
    basic_session: RecordedSession, basic_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with BackgroundReplayServer(basic_session) as busy:
        status, _ = run_captured(["serve", str(basic_file), "--port", str(busy.port)])
    assert status == 1
    assert capsys.readouterr().err == (
        f"aai-replay: error: can't listen on 127.0.0.1:{busy.port}: Address already in use\n"
    )


def test_serve_refuses_a_code_that_cannot_be_sent(
    basic_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_captured(["serve", str(basic_file), "--inject-error", "1006"]) == (1, "")
    assert capsys.readouterr().err.startswith(
        "aai-replay: error: error_code must be a close code a server can send"
    )


def test_serve_refuses_an_empty_api_key(
    basic_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_captured(["serve", str(basic_file), "--api-key", ""]) == (1, "")
    assert capsys.readouterr().err == "aai-replay: error: api_key must be a non-empty string\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed", "inf"], "argument --speed: expected a number > 0, got inf"),
        (["--delay", "inf"], "argument --delay: expected a number of seconds >= 0, got inf"),
        (["--speed", "0"], "argument --speed: expected a number > 0, got 0"),
        (["--speed", "x"], "argument --speed: expected a number, got 'x'"),
        (["--delay", "-1"], "argument --delay: expected a number of seconds >= 0, got -1"),
        (["--delay", "soon"], "argument --delay: expected a number of seconds, got 'soon'"),
        (["--port", "-5"], "argument --port: expected a port number from 0 to 65535, got -5"),
        (["--port", "http"], "argument --port: expected a port number, got 'http'"),
        (["--error-after", "one"], "argument --error-after: expected a whole number, got 'one'"),
        (["--pacing", "fast"], "argument --pacing: invalid choice: 'fast'"),
    ],
)
def test_serve_refuses_bad_arguments(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        run(["serve", "s.jsonl", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


# -- check and info -------------------------------------------------------------------


def test_serve_writes_the_journal_as_each_connection_ends(
    serve: list[subprocess.Popen[str]],
    command_env: dict[str, str],
    basic_session: RecordedSession,
    tmp_path: Path,
) -> None:
    # The recording waits for the client to close: the audio after Terminate comes
    # while the connection is open.
    *entries, close = basic_session.entries
    assert isinstance(close, Close)
    waiting = RecordedSession(basic_session.header, [*entries, attrs.evolve(close, by="client")])
    session_file = tmp_path / "waiting.jsonl"
    write_session(waiting, session_file)
    journal = tmp_path / "journal.jsonl"
    process, url = start(
        serve, ["serve", str(session_file), "--journal", str(journal)], command_env
    )
    try:
        headers = {"Authorization": "KEY-SECRET"}
        with connect(f"{url}{QUERY}&token=TOKEN-SECRET", additional_headers=headers) as ws:
            ws.recv(timeout=10)  # Begin
            for _ in range(4):
                ws.send(b"\0" * 1600)
            ws.send('{"type":"ForceEndpoint"}')
            ws.send('{"type":"Terminate"}')
            ws.send(b"\0" * 1600)  # after Terminate: a violation
            while json.loads(ws.recv(timeout=10))["type"] != "Termination":
                pass
        deadline = time.monotonic() + 10
        while not journal.read_text().endswith("\n"):  # written before the server stops
            assert time.monotonic() < deadline, "no journal line"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0
    text = journal.read_text()
    assert "SECRET" not in text
    [line] = text.splitlines()
    record = json.loads(line)
    assert list(record) == [
        "connection",
        "request",
        "params",
        "audio",
        "client_messages",
        "server_messages",
        "close",
        "violations",
        "departures",
    ]
    assert record["request"] == {
        "path": "/v3/ws",
        "query": {"sample_rate": "16000", "encoding": "pcm_s16le"},
    }
    assert record["params"] == {"sample_rate": 16000, "encoding": "pcm_s16le"}
    assert record["audio"] == {"frames": 5, "bytes": 8000, "ms": 200.0}
    assert [m["type"] for m in record["client_messages"]] == ["ForceEndpoint", "Terminate"]
    assert [m["message"]["type"] for m in record["server_messages"]] == [
        "Begin",
        "Turn",
        "Turn",
        "Termination",
    ]
    assert record["close"] == {"code": 1000, "reason": "", "by": "client"}
    assert [(v["code"], v["rule"]) for v in record["violations"]] == [
        (None, "audio after Terminate")
    ]


def test_serve_reports_a_journal_it_cannot_write(
    basic_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = basic_file.parent / "no-such-dir" / "journal.jsonl"
    assert run(["serve", str(basic_file), "--journal", str(missing)]) == 1
    assert capsys.readouterr().err == (
        f"aai-replay: error: can't write {str(missing)!r}: No such file or directory\n"
    )


def test_check_reports_each_file(tmp_path: Path, sessions_dir: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"aai_session": 1, "request": {"path": "/v3/ws", "query": {}}}\n'
        '{"t": 1, "server": {"type": "Turn", "turn_order": "x"}}\n',
        encoding="utf-8",
    )
    good = sessions_dir / "synth-plain.jsonl"
    silent_wav(tmp_path / "long.wav", 100)
    warned = tmp_path / "warned.jsonl"
    header = Header(Request(query={"sample_rate": "16000"}), audio="long.wav")
    write_session(RecordedSession(header, [ClientAudio(0.1, 1600)]), warned)
    status, out = run_captured(["check", str(good), str(warned)])
    assert status == 0
    assert out == (
        f"{good}: ok\n"
        f"{warned}:1: warning: the audio file holds 3200 bytes of audio; "
        "the client_audio entries add up to 1600\n"
    )
    status, out = run_captured(["check", str(good), str(bad), str(tmp_path / "none.jsonl")])
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == f"{good}: ok"
    assert lines[1].startswith(f"{bad}:2: error: malformed Turn message: ")
    assert lines[2].startswith(f"{tmp_path / 'none.jsonl'}: error: can't read: ")


def test_check_reports_format_errors_and_missing_audio(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"aai_session": 1, "request": {"path": "/", "query": {}}}\n{"t": 1}\n')
    session = RecordedSession(Header(Request(query={}), audio="gone.wav"), [])
    write_session(session, tmp_path / "noaudio.jsonl")
    status, out = run_captured(["check", str(bad), str(tmp_path / "noaudio.jsonl")])
    assert status == 1
    assert out == (
        f"{bad}:2: error: an entry holds exactly one of server, server_raw, client_audio, "
        "client, close; got none\n"
        f"{tmp_path / 'noaudio.jsonl'}:1: error: can't read the audio file "
        f"'{tmp_path / 'gone.wav'}': No such file or directory\n"
    )


def test_info_summarizes_a_session(tmp_path: Path) -> None:
    turn = {
        "turn_order": 0,
        "turn_is_formatted": False,
        "end_of_turn": True,
        "transcript": "hi there",
        "end_of_turn_confidence": 0.9,
        "words": [],
        "type": "Turn",
    }
    session = RecordedSession(
        Header(
            Request(query={"sample_rate": "16000", "format_turns": "true"}),
            audio="a.wav",
            source="handwritten",
            description="one turn, formatted",
        ),
        [
            ServerMessage(0.01, {"type": "Begin", "id": "x", "expires_at": 1}),
            ClientAudio(0.05, 1600),
            ClientAudio(0.1, 1600),
            ServerMessage(0.2, turn),
            ServerMessage(0.2, {**turn, "turn_is_formatted": True, "transcript": "Hi there."}),
            ServerMessage(0.3, {"type": "Error", "error_code": 3005, "error": "oops"}),
            ServerMessage(0.3, {"type": "Turn"}),
            ClientMessage(0.4, {"type": "Terminate"}),
            ServerMessage(
                0.5,
                {"type": "Termination", "audio_duration_seconds": 0, "session_duration_seconds": 1},
            ),
            Close(1.25, 1000, "Session Ended", "server"),
        ],
    )
    path = tmp_path / "s.jsonl"
    write_session(session, path)
    status, out = run_captured(["info", str(path)])
    assert status == 0
    assert out == (
        f"session:     {path}\n"
        "description: one turn, formatted\n"
        "source:      handwritten\n"
        "request:     /v3/ws?sample_rate=16000&format_turns=true\n"
        "duration:    1.25 s\n"
        "audio:       2 frames, 3200 bytes (0.10 s); file a.wav\n"
        "client:      Terminate\n"
        "server:      6 messages\n"
        "turns:       1\n"
        "finals:      1\n"
        "  1. Hi there.\n"
        "error:       3005 oops\n"
        "termination: audio 0 s, session 1 s\n"
        "close:       1000 'Session Ended' by server at 1.25 s\n"
    )


def test_info_of_a_bare_session(tmp_path: Path) -> None:
    path = tmp_path / "bare.jsonl"
    write_session(RecordedSession(Header(Request(query={"encoding": "opus"})), []), path)
    assert run_captured(["info", str(path)]) == (
        0,
        f"session:     {path}\n"
        "request:     /v3/ws?encoding=opus\n"
        "duration:    0.00 s\n"
        "audio:       0 frames, 0 bytes\n"
        "client:      none\n"
        "server:      0 messages\n"
        "turns:       0\n"
        "finals:      0\n"
        "close:       none recorded\n",
    )
    write_session(RecordedSession(Header(Request(query={"sample_rate": "1"})), []), path)
    assert run_captured(["info", str(path)])[1].splitlines()[3] == "audio:       0 frames, 0 bytes"


def test_verbose_logs_to_stderr(
    sessions_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    configured: list[dict[str, object]] = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: configured.append(kw))
    assert run_captured(["-v", "check", str(sessions_dir / "synth-plain.jsonl")])[0] == 0
    assert configured == [{"level": logging.INFO, "format": "%(name)s: %(message)s"}]


def test_main_exits_with_the_status(sessions_dir: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", str(sessions_dir / "synth-plain.jsonl")], out=io.StringIO())
    assert info.value.code == 0


# -- synth and record (made by their own modules; wired here) ---------------------------


def test_synth_writes_the_synthesized_session(tmp_path: Path, sessions_dir: Path) -> None:
    audio = sessions_dir.parent / "audio" / "synth-plain.wav"
    out = tmp_path / "made" / "s.jsonl"
    out.parent.mkdir()
    text = "Read back my order. A large coffee."
    status, printed = run_captured(
        [
            "synth",
            str(audio),
            "--text",
            text,
            "--out",
            str(out),
            "--model-style",
            "u3",
            "--format-turns",
        ]
    )
    assert (status, printed) == (0, f"wrote {out}\n")
    expected = synthesize(
        audio, text, model_style="u3", format_turns=True, audio_ref=audio_ref_for(audio, out)
    )
    session = load_session(out)
    assert session == expected
    assert session.audio_path is not None
    assert session.audio_path.resolve() == audio.resolve()


def test_synth_reports_where_it_cannot_write(
    tmp_path: Path, sessions_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = sessions_dir.parent / "audio" / "synth-plain.wav"
    out = tmp_path / "no-such-dir" / "s.jsonl"
    assert run_captured(["synth", str(audio), "--text", "Hi.", "--out", str(out)]) == (1, "")
    assert capsys.readouterr().err == f"aai-replay: error: {out}: No such file or directory\n"


def test_synth_reports_bad_audio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_wav = tmp_path / "x.wav"
    not_wav.write_bytes(b"nope")
    out = tmp_path / "s.jsonl"
    assert run_captured(["synth", str(not_wav), "--text", "hi", "--out", str(out)]) == (1, "")
    assert capsys.readouterr().err.startswith("aai-replay: error: ")
    assert not out.exists()


def test_record_proxies_and_writes_a_session(
    serve: list[subprocess.Popen[str]],
    command_env: dict[str, str],
    tmp_path: Path,
    basic_session: RecordedSession,
) -> None:
    out = tmp_path / "recorded.jsonl"
    with BackgroundReplayServer(basic_session) as upstream:
        process, url = start(
            serve, ["record", "--out", str(out), "--upstream", upstream.url], command_env
        )
        assert re.fullmatch(r"ws://127\.0\.0\.1:[0-9]+/v3/ws", url)
        with connect(url + QUERY) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "Begin"
            for _ in range(4):
                ws.send(b"\0" * 1600)
            ws.send('{"type": "Terminate"}')
            types = [json.loads(ws.recv(timeout=10))["type"] for _ in range(3)]
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
        assert types == ["Turn", "Turn", "Termination"]
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
        assert process.returncode == 0
    session = load_session(out)
    assert [type(e).__name__ for e in session.entries].count("ClientAudio") == 4
    assert session.close is not None
    assert session.close.code == 1000


def test_record_refuses_an_upstream_that_is_not_websocket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.jsonl"
    assert run_captured(["record", "--out", str(out), "--upstream", "http://example"]) == (1, "")
    assert capsys.readouterr().err.startswith("aai-replay: error: ")
    assert not out.exists()


# -- the demo -------------------------------------------------------------------------


def test_the_demo_prints_the_transcript_of_the_shipped_session() -> None:
    status, out = run_captured(["demo"])
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "Replaying universal-format-turns.jsonl through aai_proto.trio, offline:"
    assert lines[1:-1] == [
        "Hi, my name is Sonny.",
        "I'd like a table for two.",
        "",
        "session ended: 4 s of audio, 4 s in all",
    ]
    assert re.fullmatch(
        r"Try next: aai-replay serve \S*universal-format-turns\.jsonl, then aai-proto stream "
        r"\S*universal-format-turns\.wav --fast --url <the URL it prints>",
        lines[-1],
    )


def test_the_demo_plays_another_session_and_reports_its_failure(
    sessions_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run_captured(["demo", "--session", str(sessions_dir / "server-error-3005.jsonl")])
    assert status == 1
    assert out.splitlines()[1:] == ["read back my order"]
    assert capsys.readouterr().err == (
        "aai-replay: error: session failed: 3005 server error: Server error\n"
    )


def test_the_demo_reports_a_missing_or_unusable_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.jsonl"
    assert run_captured(["demo", "--session", str(missing)]) == (1, "")
    assert capsys.readouterr().err == (
        f"aai-replay: error: can't read {str(missing)!r}: No such file or directory\n"
    )
    no_audio = tmp_path / "no-audio.jsonl"
    write_session(RecordedSession(Header(Request(query={"sample_rate": "16000"})), []), no_audio)
    assert run_captured(["demo", "--session", str(no_audio)]) == (1, "")
    assert capsys.readouterr().err == (
        "aai-replay: error: the session names no audio file to stream\n"
    )
    invalid = tmp_path / "invalid.jsonl"
    write_session(RecordedSession(Header(Request(query={"sample_rate": "1"})), []), invalid)
    assert run_captured(["demo", "--session", str(invalid)]) == (1, "")
    assert capsys.readouterr().err.startswith(
        "aai-replay: error: the recorded request is invalid: Invalid 'sample_rate'"
    )


def test_the_demo_reports_a_session_refused_before_begin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    silent_wav(tmp_path / "a.wav", 100)
    error = {"type": "Error", "error_code": 1008, "error": "Unauthorized connection"}
    session = RecordedSession(
        Header(Request(query={"sample_rate": "16000"}), audio="a.wav"),
        [ServerMessage(0.0, error), Close(0.0, 1008, "See Error message for details", "server")],
    )
    write_session(session, tmp_path / "refused.jsonl")
    assert run_captured(["demo", "--session", str(tmp_path / "refused.jsonl")]) == (
        1,
        "Replaying refused.jsonl through aai_proto.trio, offline:\n",
    )
    assert capsys.readouterr().err == (
        "aai-replay: error: session failed: 1008 unauthorized (missing, invalid or expired key "
        "or token, or an account problem): Unauthorized connection\n"
    )


def test_the_demo_reports_audio_it_cannot_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    silent_wav(tmp_path / "a.wav", 100)
    session = RecordedSession(
        Header(Request(query={"sample_rate": "8000"}), audio="a.wav"),
        [ServerMessage(0.0, {"type": "Begin", "id": "x", "expires_at": 1})],
    )
    write_session(session, tmp_path / "s.jsonl")
    status, _ = run_captured(["demo", "--session", str(tmp_path / "s.jsonl")])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("aai-replay: error: session failed: ")
    assert "8000" in err
    assert err.count("\n") == 1


def test_the_demo_reports_a_session_that_ends_without_termination(tmp_path: Path) -> None:
    silent_wav(tmp_path / "a.wav", 100)
    session = RecordedSession(
        Header(Request(query={"sample_rate": "16000"}), audio="a.wav"),
        [
            ServerMessage(0.0, {"type": "Begin", "id": "x", "expires_at": 1}),
            ClientAudio(0.1, 3200),
            ClientMessage(0.2, {"type": "Terminate"}),
            Close(0.3, 1000, "", "server"),
        ],
    )
    write_session(session, tmp_path / "quiet.jsonl")
    status, out = run_captured(["demo", "--session", str(tmp_path / "quiet.jsonl")])
    assert (status, out.splitlines()[-2]) == (0, "session ended without a Termination")


def test_the_shipped_session_is_found(sessions_dir: Path) -> None:
    # The copy inside an installed package, or the checkout's own: the same bytes.
    found = find_session()
    assert found.name == DEFAULT_SESSION
    assert found.read_bytes() == (sessions_dir / DEFAULT_SESSION).read_bytes()
    with pytest.raises(FileNotFoundError, match="run from the project's root or pass --session"):
        find_session("no-such-session.jsonl")


def test_interim_text_is_rewritten_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    printer = _Printer(out)
    printer.interim("hi")
    printer.interim("hi my")
    printer.final("Hi, my.")
    printer.interim("and")
    printer.line("done")
    printer.interim("so")
    printer.finish()
    printer.finish()
    assert out.getvalue() == (
        "\r\x1b[Khi\r\x1b[Khi my\r\x1b[KHi, my.\n\r\x1b[Kand\ndone\n\r\x1b[Kso\n"
    )
    plain = io.StringIO()
    printer = _Printer(plain)
    printer.interim("hi")
    printer.final("Hi.")
    assert plain.getvalue() == "Hi.\n"
